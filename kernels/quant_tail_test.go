package kernels

import (
	"fmt"
	"math"
	"math/rand"
	"testing"
)

// TestQuantQ8_0Tail: the Q8_0 decode GEMV with 8-bit activations on rows
// of a number of blocks that is not a multiple of the vector loop's 4
// (k = 32, 64, 96, 192, 288: the tail blocks), on every path the CPU has,
// within the 8-bit-activation bound of quant_linear.go. The AVX-512 VNNI
// path once returned garbage there (its tail miscompiled into vpdpbusd).
func TestQuantQ8_0Tail(t *testing.T) {
	rng := rand.New(rand.NewSource(9))
	for _, p := range quantPaths(t) {
		for _, k := range []int{32, 64, 96, 192, 288} {
			t.Run(fmt.Sprintf("%v/k=%d", p, k), func(t *testing.T) {
				withQuantPath(t, p)
				const rows, out = 2, 24
				w, wf := randQuant(t, rng, Q8_0, out, k)
				x := randF32(rng, rows, k).Data().([]float32)
				y := make([]float32, rows*out)
				linearQuant(x, rows, k, w, out, y, false)
				ref, mag, bound := refProduct(x, wf, rows, out, k, 32)
				for i := range y {
					if d := math.Abs(float64(y[i]) - ref[i]); d > bound[i]+1e-5*mag[i]+1e-6 {
						t.Fatalf("y[%d] = %v, float64 product %v (bound %v)", i, y[i], ref[i], bound[i])
					}
				}
			})
		}
	}
}
