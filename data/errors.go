package data

import (
	"errors"
	"fmt"
	"strings"
)

// RecordError reports a bad record: the file (or folder) it came from, its
// 0-based index in that file (the element of a JSON array, the record number
// of a JSON-lines file, the episode number of a robot dataset, ...) and why
// it was rejected.
type RecordError struct {
	Path   string
	Index  int
	Reason string
}

func (e *RecordError) Error() string {
	return fmt.Sprintf("%s: record %d: %s", e.Path, e.Index, e.Reason)
}

func recordErr(path string, index int, format string, args ...any) *RecordError {
	return &RecordError{Path: path, Index: index, Reason: fmt.Sprintf(format, args...)}
}

// AsRecordError unwraps err to a *RecordError if it is one.
func AsRecordError(err error) (*RecordError, bool) {
	var re *RecordError
	ok := errors.As(err, &re)
	return re, ok
}

// ErrorPolicy says what the pipeline does with a bad record.
type ErrorPolicy string

const (
	// OnErrorSkip drops the record, counts it and logs it (the default).
	OnErrorSkip ErrorPolicy = "skip"
	// OnErrorStop fails: the reader constructor or Stream.Next returns the
	// *RecordError.
	OnErrorStop ErrorPolicy = "stop"
)

func (p ErrorPolicy) validate() error {
	switch p {
	case "", OnErrorSkip, OnErrorStop:
		return nil
	}
	return fmt.Errorf("data: on_error %q: want skip or stop", string(p))
}

// handleLoadErrors applies the policy to the records a reader rejected while
// indexing its files: under stop the first is returned, under skip all are
// logged and counted.
func (e *SampleBuilder) handleLoadErrors(errs []*RecordError) error {
	if len(errs) == 0 {
		return nil
	}
	if e.OnError == OnErrorStop {
		return errs[0]
	}
	for _, re := range errs {
		e.logf("data: skipping bad record: %v", re)
	}
	e.addSkipped(len(errs))
	return nil
}

// maxListedRejects is how many rejected records a "no usable records"
// error lists.
const maxListedRejects = 3

// rejectedSummary says why nothing was usable: the number of records
// rejected and the first few with their file, index and reason, or that
// there was nothing to read at all.
func rejectedSummary(bad []*RecordError) string {
	if len(bad) == 0 {
		return "there are no records to read"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d rejected", len(bad))
	for i, re := range bad {
		if i == maxListedRejects {
			fmt.Fprintf(&b, "; and %d more", len(bad)-i)
			break
		}
		sep := ": "
		if i > 0 {
			sep = "; "
		}
		b.WriteString(sep + re.Error())
	}
	return b.String()
}
