package kernels

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// ulpsOff is |got - want| in units of the float32 spacing at want.
func ulpsOff(got float32, want float64) float64 {
	w := float32(want)
	ulp := math.Abs(float64(math.Nextafter32(w, float32(math.Inf(1)))) - float64(w))
	if d := math.Abs(float64(w) - float64(math.Nextafter32(w, float32(math.Inf(-1))))); d < ulp {
		ulp = d // just below a power of two the spacing halves
	}
	return math.Abs(float64(got)-want) / ulp
}

// sweep returns every float32 value spaced step apart in [lo, hi].
func sweep(lo, hi, step float64) []float32 {
	var xs []float32
	for x := lo; x <= hi; x += step {
		xs = append(xs, float32(x))
	}
	return xs
}

// The float32 erf of vec.c stays within 3 float32 ulps of math.Erf on a dense
// sweep of [-6, 6] (2.4M points; measured maximum 1.6 ulps). Beyond |x| = 4
// erf rounds to ±1 in float32.
func TestErf32(t *testing.T) {
	xs := sweep(-6, 6, 5e-6)
	ys := make([]float32, len(xs))
	erf32(xs, ys)
	var worst float64
	var at float32
	for i, x := range xs {
		if d := ulpsOff(ys[i], math.Erf(float64(x))); d > worst {
			worst, at = d, x
		}
	}
	t.Logf("erf32: max error %.2f ulps at x=%g over %d points", worst, at, len(xs))
	if worst > 3 {
		t.Errorf("erf32: max error %.2f ulps at x=%g", worst, at)
	}
	for _, x := range []float32{0, float32(math.Copysign(0, -1)), 1e-30, -1e-30, 50, -50} {
		erf32([]float32{x}, ys[:1])
		if want := math.Erf(float64(x)); ulpsOff(ys[0], want) > 1 {
			t.Errorf("erf32(%g) = %g, want %g", x, ys[0], want)
		}
	}
}

// vec.c's exp is within 3 ulps of math.Exp on [-87, 88] (measured 0.9).
func TestExp32(t *testing.T) {
	xs := sweep(-87, 88, 1e-4)
	ys := make([]float32, len(xs))
	exp32(xs, ys)
	var worst float64
	var at float32
	for i, x := range xs {
		if d := ulpsOff(ys[i], math.Exp(float64(x))); d > worst {
			worst, at = d, x
		}
	}
	t.Logf("exp32: max error %.2f ulps at x=%g", worst, at)
	if worst > 3 {
		t.Errorf("exp32: max error %.2f ulps at x=%g", worst, at)
	}
}

// The float32 GELU (x·Φ(x)) and its derivative against float64 references:
// GELU within 6 ulps of the result (measured 4.8) where |x| <= 6 (the lower tail keeps its
// relative accuracy because Φ there is erfc/2, not 1+erf), and in absolute
// terms within 2e-7·max(1, |x|) everywhere on [-12, 12].
func TestGELU32Accuracy(t *testing.T) {
	xs := sweep(-12, 12, 2e-5)
	ys := make([]float32, len(xs))
	gelu32(xs, nil, ys)
	ones := make([]float32, len(xs))
	for i := range ones {
		ones[i] = 1
	}
	gs := make([]float32, len(xs))
	gelu32(xs, ones, gs)
	var worstUlp, worstAbs, worstGrad float64
	for i, x := range xs {
		v := float64(x)
		want := v * 0.5 * math.Erfc(-v/math.Sqrt2)
		if math.Abs(v) <= 6 && want != 0 {
			worstUlp = math.Max(worstUlp, ulpsOff(ys[i], want))
		}
		worstAbs = math.Max(worstAbs, math.Abs(float64(ys[i])-want)/math.Max(1, math.Abs(v)))
		dwant := 0.5*math.Erfc(-v/math.Sqrt2) + v*math.Exp(-0.5*v*v)/math.Sqrt(2*math.Pi)
		worstGrad = math.Max(worstGrad, math.Abs(float64(gs[i])-dwant))
	}
	t.Logf("gelu32: max %.2f ulps (|x|<=6), max abs/max(1,|x|) %.3g; grad max abs %.3g", worstUlp, worstAbs, worstGrad)
	if worstUlp > 6 || worstAbs > 2e-7 || worstGrad > 3e-7 {
		t.Errorf("gelu32: %.2f ulps, abs %.3g, grad abs %.3g", worstUlp, worstAbs, worstGrad)
	}
}

// f32vs64 runs an internal kernel on float64 inputs and on their float32
// roundings and compares the results (relative to the largest |float64|).
func f32vs64(t *testing.T, what string, tol float64, run func(in []*tensor.Dense) *tensor.Dense, ins ...*tensor.Dense) {
	t.Helper()
	want := f64s(run(ins))
	ins32 := make([]*tensor.Dense, len(ins))
	for i, x := range ins {
		ins32[i] = toF32(x)
	}
	checkClose(t, what, f64s(run(ins32)), want, tol)
}

// The vectorised float32 paths (vec.c) against the float64 Go loops, on
// shapes with full 16-lane blocks, tails and border pixels.
func TestVecPathsMatchFloat64(t *testing.T) {
	rng := rand.New(rand.NewSource(21))
	for _, c := range []struct {
		g         Grid
		c, k, pad int
	}{{Grid{2, 11, 13}, 40, 7, 3}, {Grid{1, 9, 10}, 32, 3, 0}, {Grid{1, 8, 21}, 16, 5, 1}, {Grid{1, 6, 7}, 7, 7, 3}} {
		d := dwGeom{Grid: c.g, C: c.c, K: c.k, Pad: c.pad}
		name := fmt.Sprintf("dw_%v_c%d_k%d_p%d", c.g, c.c, c.k, c.pad)
		x := randF64(rng, c.g.N*c.g.H*c.g.W, c.c)
		w := randF64(rng, c.c, 1, c.k, c.k)
		b := randF64(rng, c.c)
		dy := randF64(rng, c.g.N*d.outH()*d.outW(), c.c)
		f32vs64(t, name+"/fwd", f32Tol, func(in []*tensor.Dense) *tensor.Dense {
			return dispatchT(in[0], func() *tensor.Dense { return dwFwd[float32](d, in, nil) }, func() *tensor.Dense { return dwFwd[float64](d, in, nil) })
		}, x, w, b)
		f32vs64(t, name+"/gradX", f32Tol, func(in []*tensor.Dense) *tensor.Dense {
			return dispatchT(in[0], func() *tensor.Dense { return dwBwdX[float32](d, in, nil) }, func() *tensor.Dense { return dwBwdX[float64](d, in, nil) })
		}, w, dy)
		f32vs64(t, name+"/gradW", f32Tol, func(in []*tensor.Dense) *tensor.Dense {
			return dispatchT(in[0], func() *tensor.Dense { return dwBwdW[float32](d, in, nil) }, func() *tensor.Dense { return dwBwdW[float64](d, in, nil) })
		}, x, dy)
	}
	for _, cols := range []int{5, 16, 53, 96} {
		x, w, b, dy := randF64(rng, 37, cols), randF64(rng, cols), randF64(rng, cols), randF64(rng, 37, cols)
		f32vs64(t, fmt.Sprintf("layernorm_%d", cols), f32Tol, func(in []*tensor.Dense) *tensor.Dense {
			return dispatchT(in[0], func() *tensor.Dense { return layerNormFwd[float32](in, 1e-5, nil) }, func() *tensor.Dense { return layerNormFwd[float64](in, 1e-5, nil) })
		}, x, w, b)
		f32vs64(t, fmt.Sprintf("rmsnorm_%d", cols), f32Tol, func(in []*tensor.Dense) *tensor.Dense {
			return dispatchT(in[0], func() *tensor.Dense { return rmsNormFwd[float32](in, 1e-5, nil) }, func() *tensor.Dense { return rmsNormFwd[float64](in, 1e-5, nil) })
		}, x, w)
		f32vs64(t, fmt.Sprintf("channelscale_%d", cols), f32Tol, func(in []*tensor.Dense) *tensor.Dense {
			return dispatchT(in[0], func() *tensor.Dense { return channelScaleDo[float32](in, nil) }, func() *tensor.Dense { return channelScaleDo[float64](in, nil) })
		}, x, w)
		f32vs64(t, fmt.Sprintf("linear_bias_%d", cols), f32Tol, func(in []*tensor.Dense) *tensor.Dense {
			return dispatchT(in[0], func() *tensor.Dense { return linearFwd[float32](in, nil, false) }, func() *tensor.Dense { return linearFwd[float64](in, nil, false) })
		}, x, randF64(rng, 19, cols), randF64(rng, 19))
		for mode := 0; mode < 3; mode++ {
			f32vs64(t, fmt.Sprintf("swiglu%d_%d", mode, cols), f32Tol, func(in []*tensor.Dense) *tensor.Dense {
				return dispatchT(in[0], func() *tensor.Dense { return swigluDo[float32](in, mode, nil) }, func() *tensor.Dense { return swigluDo[float64](in, mode, nil) })
			}, x, dy, dy)
		}
		for _, grad := range []bool{false, true} {
			f32vs64(t, fmt.Sprintf("gelu%v_%d", grad, cols), f32Tol, func(in []*tensor.Dense) *tensor.Dense {
				return dispatchT(in[0], func() *tensor.Dense { return geluDo[float32](in, grad, nil) }, func() *tensor.Dense { return geluDo[float64](in, grad, nil) })
			}, x, dy)
		}
		labels := make([]float64, 37)
		for i := range labels {
			labels[i] = float64(rng.Intn(cols))
		}
		labels[3] = -100
		lab := denseF64(labels, 37)
		ce := func(in []*tensor.Dense, grad bool) *tensor.Dense {
			var v G.Value
			var err error
			if in[0].Dtype() == tensor.Float32 {
				if grad {
					v, err = ceBackward[float32]([]*tensor.Dense{in[0], in[1], tensor.New(tensor.FromScalar(float32(0.7)))}, -100, nil)
				} else {
					v, err = ceForward[float32](in, -100)
				}
			} else if grad {
				v, err = ceBackward[float64]([]*tensor.Dense{in[0], in[1], tensor.New(tensor.FromScalar(0.7))}, -100, nil)
			} else {
				v, err = ceForward[float64](in, -100)
			}
			if err != nil {
				t.Fatal(err)
			}
			return denseF64(f64s(v), len(f64s(v)))
		}
		f32vs64(t, fmt.Sprintf("ce_%d", cols), f32Tol, func(in []*tensor.Dense) *tensor.Dense { return ce(in, false) }, x, lab)
		f32vs64(t, fmt.Sprintf("ce_grad_%d", cols), f32Tol, func(in []*tensor.Dense) *tensor.Dense { return ce(in, true) }, x, lab)
		row := x.Data().([]float64)[:cols]
		r64 := append([]float64(nil), row...)
		r32 := make([]float32, cols)
		for i, v := range row {
			r32[i] = float32(v * 10)
			r64[i] = float64(r32[i])
		}
		softmaxRow(r64)
		softmaxRow(r32)
		got := make([]float64, cols)
		for i, v := range r32 {
			got[i] = float64(v)
		}
		checkClose(t, fmt.Sprintf("softmax_%d", cols), got, r64, f32Tol)
	}
}

func dispatchT(x *tensor.Dense, f32, f64 func() *tensor.Dense) *tensor.Dense {
	if x.Dtype() == tensor.Float32 {
		return f32()
	}
	return f64()
}
