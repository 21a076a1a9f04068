package rlds

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// MaskedCRC is TFRecord's masked CRC32C: ((crc >> 15) | (crc << 17)) + 0xa282ead8.
func MaskedCRC(b []byte) uint32 {
	c := crc32.Checksum(b, castagnoli)
	return ((c >> 15) | (c << 17)) + 0xa282ead8
}

// MaxRecordBytes bounds one record (an episode with all its images); a
// larger length field is reported as corrupt rather than allocated.
const MaxRecordBytes = 1 << 30

// CorruptError is a record that cannot be read: bad CRC, truncated data or
// an impossible length. Index is the 0-based record number in the file,
// Offset the byte offset of its header.
type CorruptError struct {
	Path   string
	Index  int
	Offset int64
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("%s: record %d (offset %d): %s", e.Path, e.Index, e.Offset, e.Reason)
}

// Reader reads TFRecord records in order, checking both CRCs of each.
// After a *CorruptError in the length header the rest of the file cannot
// be framed and every further Next returns the same error; a bad payload
// CRC only spoils that record (Next continues with the following one).
type Reader struct {
	path   string
	r      *bufio.Reader
	off    int64
	index  int
	buf    []byte
	fatal  error
	Verify bool // check the payload CRC (default true via NewReader)
}

// NewReader reads records from r; path names the file in errors.
func NewReader(r io.Reader, path string) *Reader {
	return &Reader{path: path, r: bufio.NewReaderSize(r, 1<<20), Verify: true}
}

// Record is one record: its index in the file, the offset of its header
// and the payload (valid until the next call to Next).
type Record struct {
	Index  int
	Offset int64
	Data   []byte
}

// Next returns the next record, io.EOF at a clean end of file, or a
// *CorruptError.
func (t *Reader) Next() (Record, error) {
	if t.fatal != nil {
		return Record{}, t.fatal
	}
	var hdr [12]byte
	off, idx := t.off, t.index
	n, err := io.ReadFull(t.r, hdr[:])
	if err == io.EOF {
		return Record{}, io.EOF
	}
	bad := func(format string, args ...any) error {
		return &CorruptError{Path: t.path, Index: idx, Offset: off, Reason: fmt.Sprintf(format, args...)}
	}
	if err != nil {
		t.fatal = bad("truncated header (%d of 12 bytes): %v", n, err)
		return Record{}, t.fatal
	}
	length := binary.LittleEndian.Uint64(hdr[:8])
	if MaskedCRC(hdr[:8]) != binary.LittleEndian.Uint32(hdr[8:]) {
		t.fatal = bad("length CRC mismatch (the file is corrupt from here on)")
		return Record{}, t.fatal
	}
	if length > MaxRecordBytes {
		t.fatal = bad("record length %d exceeds %d", length, MaxRecordBytes)
		return Record{}, t.fatal
	}
	if cap(t.buf) < int(length)+4 {
		t.buf = make([]byte, int(length)+4)
	}
	b := t.buf[:int(length)+4]
	if n, err := io.ReadFull(t.r, b); err != nil {
		t.fatal = bad("truncated record: %d of %d bytes: %v", n, length+4, err)
		return Record{}, t.fatal
	}
	t.off += 12 + int64(length) + 4
	t.index++
	data := b[:length]
	if t.Verify && MaskedCRC(data) != binary.LittleEndian.Uint32(b[length:]) {
		return Record{Index: idx, Offset: off}, bad("data CRC mismatch")
	}
	return Record{Index: idx, Offset: off, Data: data}, nil
}

// ReadRecordAt reads and checks the record whose header starts at off in r
// (random access after an indexing pass).
func ReadRecordAt(r io.ReaderAt, path string, index int, off int64) ([]byte, error) {
	bad := func(format string, args ...any) error {
		return &CorruptError{Path: path, Index: index, Offset: off, Reason: fmt.Sprintf(format, args...)}
	}
	var hdr [12]byte
	if _, err := r.ReadAt(hdr[:], off); err != nil {
		return nil, bad("header: %v", err)
	}
	length := binary.LittleEndian.Uint64(hdr[:8])
	if MaskedCRC(hdr[:8]) != binary.LittleEndian.Uint32(hdr[8:]) {
		return nil, bad("length CRC mismatch")
	}
	if length > MaxRecordBytes {
		return nil, bad("record length %d exceeds %d", length, MaxRecordBytes)
	}
	b := make([]byte, length+4)
	if _, err := r.ReadAt(b, off+12); err != nil {
		return nil, bad("truncated record: %v", err)
	}
	if MaskedCRC(b[:length]) != binary.LittleEndian.Uint32(b[length:]) {
		return nil, bad("data CRC mismatch")
	}
	return b[:length], nil
}

// Writer writes TFRecord framing.
type Writer struct{ w io.Writer }

// NewWriter writes records to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Write appends one record.
func (w *Writer) Write(data []byte) error {
	var hdr [12]byte
	binary.LittleEndian.PutUint64(hdr[:8], uint64(len(data)))
	binary.LittleEndian.PutUint32(hdr[8:], MaskedCRC(hdr[:8]))
	var tail [4]byte
	binary.LittleEndian.PutUint32(tail[:], MaskedCRC(data))
	for _, b := range [][]byte{hdr[:], data, tail[:]} {
		if _, err := w.w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// IsCorrupt reports whether err is a *CorruptError.
func IsCorrupt(err error) (*CorruptError, bool) {
	var ce *CorruptError
	ok := errors.As(err, &ce)
	return ce, ok
}
