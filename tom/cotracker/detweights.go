package cotracker

import (
	"fmt"
	"math"
	"strings"
)

// DetWeights returns the deterministic test weights of parameter name with
// the given shape (row-major), the formula the parity goldens of
// testdata/ were produced with (scripts/cotracker/goldens.py): element i
// gets
//
//	h = splitmix64(fnv1a64(name) XOR i*0x9E3779B97F4A7C15), u = (h>>40)/2^24, r = 2u-1
//	ndim >= 2: r/sqrt(prod(shape[1:]))
//	ndim <= 1: 1 + 0.1r when name ends with ".weight", else 0.1r
//
// (all integer arithmetic mod 2^64). It covers the model's parameters only;
// buffers (time_emb) are what the official constructor computes. A shape
// with a negative dimension or more than 2^31 elements is an error.
func DetWeights(name string, shape []int) ([]float64, error) {
	n := 1
	for i, d := range shape {
		if d < 0 {
			return nil, fmt.Errorf("cotracker: DetWeights %q: dimension %d is %d", name, i, d)
		}
		if d > 0 && n > (1<<31)/d {
			return nil, fmt.Errorf("cotracker: DetWeights %q: shape %v has more than 2^31 elements", name, shape)
		}
		n *= d
	}
	fan := 1.0
	if len(shape) >= 2 {
		p := 1
		for _, d := range shape[1:] {
			p *= d
		}
		fan = math.Sqrt(float64(p))
	}
	oneD := len(shape) <= 1
	isWeight := strings.HasSuffix(name, ".weight")
	seed := fnv1a64(name)
	out := make([]float64, n)
	for i := range out {
		h := splitmix64(seed ^ (uint64(i) * 0x9E3779B97F4A7C15))
		// float64(...) conversions keep the compiler from fusing a*b+c
		// into an FMA, so the values equal numpy's bit for bit.
		r := float64(2*(float64(h>>40)/(1<<24))) - 1
		switch {
		case !oneD:
			out[i] = r / fan
		case isWeight:
			out[i] = 1 + float64(0.1*r)
		default:
			out[i] = 0.1 * r
		}
	}
	return out, nil
}

func fnv1a64(s string) uint64 {
	h := uint64(0xCBF29CE484222325)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 0x100000001B3
	}
	return h
}

func splitmix64(x uint64) uint64 {
	x += 0x9E3779B97F4A7C15
	z := x
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}
