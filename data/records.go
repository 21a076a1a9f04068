package data

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// rawRecord is one JSON record of an annotation file and its index there.
type rawRecord struct {
	Index int
	Data  json.RawMessage
}

// maxRecordBytes bounds one JSON-lines record.
const maxRecordBytes = 64 << 20

// readRecords reads an annotation file that is either a JSON array of
// records (LLaVA's .json) or JSON lines (one record per non-blank line,
// .jsonl). The format is chosen by the first non-space byte ('[' means an
// array). In JSON lines a line that is not valid JSON is a bad record
// (index = record number counting blank lines out); in an array a syntax
// error makes the rest of the file unreadable, so it is returned as the
// error (with the index of the element where parsing failed).
func readRecords(path string) ([]rawRecord, []*RecordError, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("data: %w", err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<16)
	for {
		b, err := br.ReadByte()
		if err == io.EOF {
			return nil, nil, fmt.Errorf("data: %s: empty annotation file", path)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("data: %s: %w", path, err)
		}
		if b == ' ' || b == '\t' || b == '\r' || b == '\n' || b == 0xEF || b == 0xBB || b == 0xBF {
			continue
		}
		if err := br.UnreadByte(); err != nil {
			return nil, nil, err
		}
		if b == '[' {
			recs, err := readArray(path, br)
			return recs, nil, err
		}
		return readLines(path, br)
	}
}

// loadRecords reads an annotation file (readRecords) and parses every record
// with parse, which gets the record's index; a record parse rejects becomes
// a RecordError handled by the env's on_error policy. A file without one
// usable record is an error.
func loadRecords[T any](env *SampleBuilder, path string, parse func(index int, data []byte) (T, error)) ([]T, error) {
	raws, bad, err := readRecords(path)
	if err != nil {
		return nil, err
	}
	var recs []T
	for _, r := range raws {
		rec, err := parse(r.Index, r.Data)
		if err != nil {
			bad = append(bad, recordErr(path, r.Index, "%v", err))
			continue
		}
		recs = append(recs, rec)
	}
	if err := env.handleLoadErrors(bad); err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("data: %s: no usable records (%s)", path, rejectedSummary(bad))
	}
	return recs, nil
}

func readArray(path string, r io.Reader) ([]rawRecord, error) {
	dec := json.NewDecoder(r)
	if _, err := dec.Token(); err != nil {
		return nil, recordErr(path, 0, "bad JSON: %v", err)
	}
	var recs []rawRecord
	for i := 0; dec.More(); i++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, recordErr(path, i, "bad JSON (the rest of the array cannot be read): %v", err)
		}
		recs = append(recs, rawRecord{Index: i, Data: raw})
	}
	if _, err := dec.Token(); err != nil {
		return nil, recordErr(path, len(recs), "bad JSON at the end of the array: %v", err)
	}
	return recs, nil
}

func readLines(path string, r io.Reader) ([]rawRecord, []*RecordError, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<16), maxRecordBytes)
	var recs []rawRecord
	var bad []*RecordError
	i := 0
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		if !json.Valid(line) {
			var v any
			err := json.Unmarshal(line, &v)
			bad = append(bad, recordErr(path, i, "bad JSON: %v", err))
		} else {
			recs = append(recs, rawRecord{Index: i, Data: append(json.RawMessage(nil), line...)})
		}
		i++
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, nil, recordErr(path, i, "record longer than %d bytes", maxRecordBytes)
		}
		return nil, nil, fmt.Errorf("data: %s: %w", path, err)
	}
	return recs, bad, nil
}

// strictDecode unmarshals one record, rejecting unknown fields only when
// strict is set (published datasets carry many extra keys, so readers are
// lenient by default).
func strictDecode(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the record")
	}
	return nil
}

// resolve joins a record's relative file name to the image folder, refusing
// empty names.
func resolve(folder, name string) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return "", errors.New("empty file name")
	}
	if filepath.IsAbs(name) {
		return name, nil
	}
	return filepath.Join(folder, name), nil
}
