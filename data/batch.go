package data

import (
	"context"
	"fmt"
	"github.com/magma-go/magma/llm/tokenizer"
)

// Batches groups samples into batches of size b in order; the last batch
// is shorter when len(samples) is not a multiple of b.
func Batches(samples []Sample, b int) ([]Batch, error) {
	if b <= 0 {
		return nil, fmt.Errorf("data: batch size %d must be positive", b)
	}
	var out []Batch
	for i := 0; i < len(samples); i += b {
		out = append(out, Batch{Samples: samples[i:min(i+b, len(samples))]})
	}
	return out, nil
}

// SliceStream is a Stream over fixed samples, cycled in order (for tests
// and for memorisation runs). Its State is the position as JSON.
type SliceStream struct {
	samples []Sample
	batch   int
	pos     int
}

// NewSliceStream returns a stream that yields batches of b samples,
// wrapping around; state (nil for the start) is from State.
func NewSliceStream(samples []Sample, b int, state []byte) (*SliceStream, error) {
	if b <= 0 || len(samples) == 0 {
		return nil, fmt.Errorf("data: slice stream needs samples and a positive batch size")
	}
	s := &SliceStream{samples: samples, batch: b}
	if len(state) > 0 {
		if _, err := fmt.Sscanf(string(state), `{"pos":%d}`, &s.pos); err != nil || s.pos < 0 {
			return nil, fmt.Errorf("data: slice stream state %q", state)
		}
		s.pos %= len(samples)
	}
	return s, nil
}

func (s *SliceStream) Next(ctx context.Context) (Batch, error) {
	if err := ctx.Err(); err != nil {
		return Batch{}, err
	}
	b := Batch{Samples: make([]Sample, s.batch)}
	for i := range b.Samples {
		b.Samples[i] = s.samples[s.pos]
		s.pos = (s.pos + 1) % len(s.samples)
	}
	return b, nil
}

func (s *SliceStream) State() ([]byte, error) { return fmt.Appendf(nil, `{"pos":%d}`, s.pos), nil }
func (s *SliceStream) Close() error           { return nil }

// Tokens is the total number of token ids in the batch.
func (b Batch) Tokens() int {
	n := 0
	for _, s := range b.Samples {
		n += len(s.IDs)
	}
	return n
}

// MaxLen is the longest sample's length.
func (b Batch) MaxLen() int {
	m := 0
	for _, s := range b.Samples {
		m = max(m, len(s.IDs))
	}
	return m
}

// RoundUp rounds n up to a multiple of m (m <= 1 returns n).
func RoundUp(n, m int) int {
	if m <= 1 {
		return n
	}
	return (n + m - 1) / m * m
}

// Padded is a batch laid out as a rectangle of Len tokens per row for a
// padded forward pass: IDs are padded with Pad, Labels with tokenizer.IgnoreIndex,
// Mask is 1 on real tokens and 0 on padding (right padding).
type Padded struct {
	Rows, Len int
	IDs       []int // Rows*Len
	Labels    []int
	Mask      []int
	// Waste is the share of padding positions (0..1).
	Waste float64
}

// Pad lays the batch out right-padded to its longest sample rounded up to
// a multiple of bucket (bucket <= 1: no rounding). Rounding puts batches of
// similar lengths into the same shape, so graphs compiled per shape are
// reused; Waste reports what that costs.
func (b Batch) Pad(pad, bucket int) Padded {
	p := Padded{Rows: len(b.Samples), Len: RoundUp(b.MaxLen(), bucket)}
	n := p.Rows * p.Len
	p.IDs, p.Labels, p.Mask = make([]int, n), make([]int, n), make([]int, n)
	real := 0
	for r, s := range b.Samples {
		row := r * p.Len
		for j := 0; j < p.Len; j++ {
			if j < len(s.IDs) {
				p.IDs[row+j], p.Labels[row+j], p.Mask[row+j] = s.IDs[j], s.Labels[j], 1
				real++
			} else {
				p.IDs[row+j], p.Labels[row+j] = pad, tokenizer.IgnoreIndex
			}
		}
	}
	if n > 0 {
		p.Waste = float64(n-real) / float64(n)
	}
	return p
}

// BucketStats summarises what rounding lengths to a multiple costs over a
// set of batches: the distinct padded lengths (shapes to compile) and the
// padding share of all positions.
type BucketStats struct {
	Shapes       map[int]int // padded length -> batches
	RealTokens   int
	PaddedTokens int
}

// Waste is the padding share (0..1).
func (s BucketStats) Waste() float64 {
	if s.PaddedTokens == 0 {
		return 0
	}
	return float64(s.PaddedTokens-s.RealTokens) / float64(s.PaddedTokens)
}

// Bucketing reports the shapes and waste of padding each batch to its
// longest sample rounded up to a multiple of bucket.
func Bucketing(batches []Batch, bucket int) BucketStats {
	st := BucketStats{Shapes: map[int]int{}}
	for _, b := range batches {
		l := RoundUp(b.MaxLen(), bucket)
		st.Shapes[l]++
		st.RealTokens += b.Tokens()
		st.PaddedTokens += l * len(b.Samples)
	}
	return st
}
