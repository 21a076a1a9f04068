package action

import (
	"fmt"
	"math"
)

// Action tokens follow OpenVLA's ActionTokenizer, which Magma reuses: each
// normalised action dimension in [-1, 1] is discretised into 256 uniform
// bins and written as one of the last 256 ids of the base (pre-added-token)
// vocabulary, so no new embeddings are needed.
const (
	NumBins        = 256
	LlamaBaseVocab = 128000 // Llama-3's BPE vocabulary; action ids 127744..127999
)

// Tokenizer maps normalised actions to token ids and back.
type Tokenizer struct {
	vocab   int
	bins    []float64 // numpy.linspace(-1, 1, 256)
	centers []float64 // (bins[:-1] + bins[1:]) / 2
}

// NewTokenizer builds the tokenizer for a base vocabulary size
// (LlamaBaseVocab for Magma).
func NewTokenizer(baseVocab int) (*Tokenizer, error) {
	if baseVocab < NumBins {
		return nil, fmt.Errorf("actions: base vocabulary %d is smaller than %d bins", baseVocab, NumBins)
	}
	return &Tokenizer{vocab: baseVocab, bins: linspace(-1, 1, NumBins), centers: centers(linspace(-1, 1, NumBins))}, nil
}

// linspace reproduces numpy.linspace(start, stop, n) bit for bit:
// arange(n)*step + start with step = (stop-start)/(n-1), last set to stop.
// The explicit float64 conversion keeps the compiler from fusing the
// multiply-add (numpy rounds after each operation).
func linspace(start, stop float64, n int) []float64 {
	out := make([]float64, n)
	step := (stop - start) / float64(n-1)
	for i := range out {
		out[i] = float64(float64(i)*step) + start
	}
	out[n-1] = stop
	return out
}

func centers(b []float64) []float64 {
	c := make([]float64, len(b)-1)
	for i := range c {
		c[i] = (b[i] + b[i+1]) / 2
	}
	return c
}

// digitize is numpy.digitize(x, bins, right=False) for increasing bins: the
// i with bins[i-1] <= x < bins[i] (0 below, len(bins) at or above the last).
func digitize(x float64, bins []float64) int {
	lo, hi := 0, len(bins)
	for lo < hi {
		mid := (lo + hi) / 2
		if bins[mid] <= x {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

// MinID and MaxID bound the action ids (127744 and 127999 for Llama-3).
func (t *Tokenizer) MinID() int { return t.vocab - NumBins }
func (t *Tokenizer) MaxID() int { return t.vocab - 1 }

// IsActionID reports whether id is one of the 256 action ids.
func (t *Tokenizer) IsActionID(id int) bool { return id >= t.MinID() && id <= t.MaxID() }

// Token returns vocab - digitize(clip(x, -1, 1)): 1 maps to MinID, -1 to
// MaxID. NaN is rejected (numpy would silently send it to MinID).
func (t *Tokenizer) Token(x float64) (int, error) {
	if math.IsNaN(x) {
		return 0, fmt.Errorf("actions: NaN action value")
	}
	x = math.Max(-1, math.Min(1, x))
	return t.vocab - digitize(x, t.bins), nil
}

// Encode tokenizes every dimension of a normalised action.
func (t *Tokenizer) Encode(action []float64) ([]int, error) {
	ids := make([]int, len(action))
	for i, x := range action {
		id, err := t.Token(x)
		if err != nil {
			return nil, fmt.Errorf("actions: dimension %d: %w", i, err)
		}
		ids[i] = id
	}
	return ids, nil
}

// Value is the bin centre of id: centers[clip(vocab - id - 1, 0, 254)], as
// OpenVLA decodes (ids outside the action range are clipped, not rejected;
// use IsActionID to check first).
func (t *Tokenizer) Value(id int) float64 {
	k := t.vocab - id - 1
	if k < 0 {
		k = 0
	}
	if k > len(t.centers)-1 {
		k = len(t.centers) - 1
	}
	return t.centers[k]
}

// Decode maps ids to bin centres; an id outside the 256 action ids is an
// error here (a generated non-action token means the model went off-format).
func (t *Tokenizer) Decode(ids []int) ([]float64, error) {
	out := make([]float64, len(ids))
	for i, id := range ids {
		if !t.IsActionID(id) {
			return nil, fmt.Errorf("actions: token %d (position %d) is not an action id (%d..%d)", id, i, t.MinID(), t.MaxID())
		}
		out[i] = t.Value(id)
	}
	return out, nil
}

// NormalizeQ99 is OpenVLA's BOUNDS_Q99 normalisation of one dimension:
// clip(2*(a-q01)/(q99-q01+1e-8) - 1, -1, 1).
func NormalizeQ99(a, q01, q99 float64) float64 {
	return math.Max(-1, math.Min(1, 2*(a-q01)/(q99-q01+1e-8)-1))
}

// UnnormalizeQ99 inverts it: 0.5*(a+1)*(q99-q01) + q01.
func UnnormalizeQ99(a, q01, q99 float64) float64 {
	return 0.5*(a+1)*(q99-q01) + q01
}
