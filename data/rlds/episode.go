package rlds

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
)

// Episode is one decoded episode: a tf.train.Example whose "steps/..."
// features hold T steps each.
type Episode struct {
	// Path, Index and Offset locate the record (shard file, record number,
	// byte offset of its header).
	Path   string
	Index  int
	Offset int64
	Ex     Example
	// T is the number of steps (the length of steps/is_first, or of
	// steps/is_last / steps/reward when absent).
	T int
}

// NewEpisode wraps a decoded Example.
func NewEpisode(path string, index int, off int64, ex Example) (*Episode, error) {
	e := &Episode{Path: path, Index: index, Offset: off, Ex: ex, T: -1}
	for _, k := range []string{"steps/is_first", "steps/is_last", "steps/is_terminal", "steps/reward"} {
		if f, ok := ex[k]; ok {
			e.T = f.Len()
			break
		}
	}
	if e.T < 0 {
		return nil, errors.New("no steps/is_first (or is_last, reward) feature to count the steps")
	}
	if e.T == 0 {
		return nil, errors.New("episode has no steps")
	}
	return e, nil
}

// StepKeys is the set of keys NewEpisode needs to count steps; add it to
// a projection.
var StepKeys = []string{"steps/is_first", "steps/is_last", "steps/is_terminal", "steps/reward"}

// Floats returns a step feature as T rows of dim values (dim 0: infer
// from the length). Int64 features are converted.
func (e *Episode) Floats(key string, dim int) ([][]float64, error) {
	f, ok := e.Ex[key]
	if !ok {
		return nil, fmt.Errorf("missing feature %q", key)
	}
	n := f.Len()
	if dim <= 0 {
		if n%e.T != 0 {
			return nil, fmt.Errorf("feature %q has %d values for %d steps", key, n, e.T)
		}
		dim = n / e.T
	}
	if n != e.T*dim {
		return nil, fmt.Errorf("feature %q has %d values, want %d steps x %d", key, n, e.T, dim)
	}
	rows := make([][]float64, e.T)
	flat := make([]float64, n)
	for i := 0; i < n; i++ {
		switch f.Kind {
		case KindFloat:
			flat[i] = float64(f.Floats[i])
		case KindInt64:
			flat[i] = float64(f.Ints[i])
		default:
			return nil, fmt.Errorf("feature %q is a %v, want numbers", key, f.Kind)
		}
		if math.IsNaN(flat[i]) || math.IsInf(flat[i], 0) {
			return nil, fmt.Errorf("feature %q value %d is not finite (%v)", key, i, flat[i])
		}
	}
	for t := range rows {
		rows[t] = flat[t*dim : (t+1)*dim : (t+1)*dim]
	}
	return rows, nil
}

// Strings returns a text feature per step: T values, or one value (an
// episode-level field) repeated.
func (e *Episode) Strings(key string) ([]string, error) {
	f, ok := e.Ex[key]
	if !ok {
		return nil, fmt.Errorf("missing feature %q", key)
	}
	if f.Kind != KindBytes {
		return nil, fmt.Errorf("feature %q is a %v, want bytes", key, f.Kind)
	}
	if len(f.Bytes) != e.T && len(f.Bytes) != 1 {
		return nil, fmt.Errorf("feature %q has %d strings for %d steps", key, len(f.Bytes), e.T)
	}
	out := make([]string, e.T)
	for t := range out {
		out[t] = string(f.Bytes[min(t, len(f.Bytes)-1)])
	}
	return out, nil
}

// Image returns the encoded image of step t under key.
func (e *Episode) Image(key string, t int) ([]byte, error) {
	f, ok := e.Ex[key]
	if !ok {
		return nil, fmt.Errorf("missing feature %q", key)
	}
	if f.Kind != KindBytes || len(f.Bytes) != e.T {
		return nil, fmt.Errorf("feature %q: %d %v values for %d steps, want one encoded image per step", key, f.Len(), f.Kind, e.T)
	}
	if t < 0 || t >= e.T {
		return nil, fmt.Errorf("step %d outside [0,%d)", t, e.T)
	}
	return f.Bytes[t], nil
}

// Keys returns a projection that keeps exactly the given keys.
func Keys(keys ...string) func(string) bool {
	m := map[string]bool{}
	for _, k := range keys {
		m[k] = true
	}
	return func(k string) bool { return m[k] }
}

// ScanShard reads every record of one shard in order, decoding each with
// the projection keep and calling fn with the episode, or with the error
// of a record that cannot be read or decoded (a *CorruptError or an error
// naming the record). fn returning an error stops the scan with it. After
// a corrupt length header the rest of the file is unreadable: fn gets that
// error once and the scan ends.
func ScanShard(path string, keep func(string) bool, fn func(ep *Episode, err error) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := NewReader(f, path)
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			ce, _ := IsCorrupt(err)
			if ferr := fn(nil, err); ferr != nil {
				return ferr
			}
			if ce != nil && rec.Data == nil && r.fatal != nil {
				return nil
			}
			continue
		}
		ep, err := DecodeEpisode(path, rec.Index, rec.Offset, rec.Data, keep)
		if ferr := fn(ep, err); ferr != nil {
			return ferr
		}
	}
}

// DecodeEpisode decodes one record's payload into an Episode; errors name
// the file and record.
func DecodeEpisode(path string, index int, off int64, data []byte, keep func(string) bool) (*Episode, error) {
	if keep != nil {
		inner := keep
		keep = func(k string) bool {
			for _, s := range StepKeys {
				if k == s {
					return true
				}
			}
			return inner(k)
		}
	}
	ex, err := DecodeExample(data, keep)
	if err != nil {
		return nil, &CorruptError{Path: path, Index: index, Offset: off, Reason: err.Error()}
	}
	ep, err := NewEpisode(path, index, off, ex)
	if err != nil {
		return nil, &CorruptError{Path: path, Index: index, Offset: off, Reason: err.Error()}
	}
	return ep, nil
}
