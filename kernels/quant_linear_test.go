package kernels

import (
	"fmt"
	"math"
	"math/rand"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// quantPaths lists every quant.c path this CPU can run, so each is tested
// (the ones the CPU lacks are logged as skipped).
func quantPaths(t *testing.T) []QuantPath {
	var ps []QuantPath
	for p := QuantScalar; p <= QuantVNNI; p++ {
		if p <= BestQuantPath {
			ps = append(ps, p)
		} else {
			t.Logf("quant path %v skipped: not supported by this CPU", p)
		}
	}
	return ps
}

func withQuantPath(t *testing.T, p QuantPath) {
	t.Helper()
	old, err := SetQuantPath(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { quantPath = old })
}

func quantDtypes() []tensor.Dtype { return []tensor.Dtype{Q8_0, Q4K, Q6K} }

// randQuant returns a random quantized matrix of logical shape [out, in]
// and its dequantized float32 values.
func randQuant(t *testing.T, rng *rand.Rand, dt tensor.Dtype, out, in int) (*tensor.Dense, []float32) {
	t.Helper()
	s, err := QuantShape(dt, []int{out, in})
	if err != nil {
		t.Fatal(err)
	}
	raw := randQuantBytes(rng, dt, s[0]*s[1])
	w, err := View(dt, s, raw)
	if err != nil {
		t.Fatal(err)
	}
	f := make([]float32, out*in)
	if err := Dequantize(dt, raw, f); err != nil {
		t.Fatal(err)
	}
	return w, f
}

// refProduct returns y = x·wᵀ in float64, Σ|x·w| per output, and the
// 8-bit-activation bound Σ_B max_B|x|/254·Σ_B|w| (blocks of bs).
func refProduct(x, w []float32, rows, out, k, bs int) (y, mag, bound []float64) {
	y, mag, bound = make([]float64, rows*out), make([]float64, rows*out), make([]float64, rows*out)
	for r := 0; r < rows; r++ {
		xr := x[r*k : (r+1)*k]
		amax := make([]float64, k/bs)
		for i, v := range xr {
			amax[i/bs] = math.Max(amax[i/bs], math.Abs(float64(v)))
		}
		for o := 0; o < out; o++ {
			wr := w[o*k : (o+1)*k]
			var s, m, b float64
			for i := range wr {
				s += float64(xr[i]) * float64(wr[i])
				m += math.Abs(float64(xr[i]) * float64(wr[i]))
				b += math.Abs(float64(wr[i])) * amax[i/bs] / 254
			}
			y[r*out+o], mag[r*out+o], bound[r*out+o] = s, m, b
		}
	}
	return
}

func actBlock(dt tensor.Dtype) int { return BlockWeights(dt) }

var quantCases = []struct{ rows, out, in int }{
	{1, 1, 256}, {1, 7, 512}, {2, 67, 768}, {3, 130, 256}, {4, 65, 1024}, // decode GEMV (≤ gemvMaxRows)
	{1, 600, 4096},              // above parGemmMin: split over goroutines in 64-row pieces
	{5, 33, 512}, {9, 131, 768}, // prefill: dequantized tiles + sgemm
	{2, 9, 96}, {1, 5, 160}, {6, 7, 224}, // Q8_0 only: block counts that leave vector-loop tails
}

// TestGEMVQuant: Linear's kernels for quantized weights against the Go
// reference dequantizer and a float64 product, on every path the CPU has:
// exact mode (float32 activations) within 1e-5·Σ|x·w| of the float64
// product per output (the float32 product on the dequantized weights up to
// summation order); 8-bit activations within the bound of quant_linear.go
// (Σ_B max_B|x|/254·Σ_B|w|) plus 1e-5·Σ|x·w|. Prefill sizes (more than
// gemvMaxRows rows) are exact in both modes.
func TestGEMVQuant(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	for _, p := range quantPaths(t) {
		for _, dt := range quantDtypes() {
			for _, c := range quantCases {
				if c.in%BlockWeights(dt) != 0 {
					continue
				}
				w, wf := randQuant(t, rng, dt, c.out, c.in)
				xt := randF32(rng, c.rows, c.in)
				x := xt.Data().([]float32)
				ref, mag, bound := refProduct(x, wf, c.rows, c.out, c.in, actBlock(dt))
				for _, exact := range []bool{true, false} {
					name := fmt.Sprintf("%v/%s/exact=%v/%dx%dx%d", p, DtypeName(dt), exact, c.rows, c.out, c.in)
					t.Run(name, func(t *testing.T) {
						withQuantPath(t, p)
						y := make([]float32, c.rows*c.out)
						linearQuant(x, c.rows, c.in, w, c.out, y, exact)
						worst := 0.0
						for i := range y {
							tol := 1e-5 * mag[i]
							if !exact && c.rows <= gemvMaxRows {
								tol += bound[i]
							}
							e := math.Abs(float64(y[i]) - ref[i])
							if e > tol || math.IsNaN(float64(y[i])) {
								t.Fatalf("y[%d] = %v, float64 reference %v (Σ|x·w| %v, allowed %v)", i, y[i], ref[i], mag[i], tol)
							}
							worst = math.Max(worst, e/mag[i])
						}
						if !exact && c.out == 600 {
							t.Logf("8-bit activations: worst error %.3g of Σ|x·w|", worst)
						}
					})
				}
			}
		}
	}
}

// TestGEMVQuantQ8Paths: the 8-bit-activation GEMV's integer sums are exact,
// so every vector path equals the scalar one up to float32 summation order
// (within 1e-6·Σ|x·w|).
func TestGEMVQuantQ8Paths(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	for _, dt := range quantDtypes() {
		w, wf := randQuant(t, rng, dt, 70, 2048)
		x := randF32(rng, 3, 2048).Data().([]float32)
		_, mag, _ := refProduct(x, wf, 3, 70, 2048, actBlock(dt))
		want := make([]float32, 3*70)
		withQuantPath(t, QuantScalar)
		gemvQuant(x, 3, 2048, w, 70, want, false)
		for _, p := range quantPaths(t)[1:] {
			withQuantPath(t, p)
			got := make([]float32, 3*70)
			gemvQuant(x, 3, 2048, w, 70, got, false)
			for i := range got {
				if math.Abs(float64(got[i]-want[i])) > 1e-6*mag[i] {
					t.Fatalf("%v %s: y[%d] = %v, scalar path %v (Σ|x·w| %v)", p, DtypeName(dt), i, got[i], want[i], mag[i])
				}
			}
		}
	}
}

// TestQuantGradXAndGather: dx = dy·W through a quantized weight and Gather
// from a quantized table, against the dequantized float32 values, on
// every path, through the executor (RunGraph); Grad takes dx through the
// frozen weight, and CheckTrainable refuses the weight by name.
func TestQuantGradXAndGather(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	for _, p := range quantPaths(t) {
		for _, dt := range quantDtypes() {
			t.Run(fmt.Sprintf("%v/%s", p, DtypeName(dt)), func(t *testing.T) {
				withQuantPath(t, p)
				const rows, out, in = 3, 40, 768
				w, wf := randQuant(t, rng, dt, out, in)
				wUp := tensor.New(tensor.WithShape(out, in), tensor.WithBacking(wf))
				dy := randF32(rng, rows, out)
				gx := func(b *Builder, n []*G.Node) *G.Node {
					v, err := linearGradX(n[0], n[1])
					b.Fail(err)
					return v
				}
				got, want := runOne(t, gx, dy, w), runOne(t, gx, dy, wUp)
				for i := range got {
					if math.Abs(float64(got[i]-want[i])) > 1e-5*math.Max(1, math.Abs(float64(want[i]))) {
						t.Fatalf("dx[%d] = %v, float32 op %v", i, got[i], want[i])
					}
				}
				idx := tensor.New(tensor.WithShape(4), tensor.WithBacking([]float32{3, 39, 0, 3}))
				ga := func(b *Builder, n []*G.Node) *G.Node { return b.Gather(n[0], n[1]) }
				sameBits(t, "gather", runOne(t, ga, w, idx), runOne(t, ga, wUp, idx))

				// Linear through the executor (a decode row and a prefill of 6
				// rows), both modes, and dx through Grad.
				for i, exact := range []bool{true, false, true, false} {
					nr := 1 + 5*(i/2)
					x := randF32(rng, nr, in)
					g := G.NewGraph()
					wn := G.NodeFromAny(g, w, G.WithName("model.layers.0.mlp.up_proj.weight"))
					xn := G.NodeFromAny(g, x, G.WithName("x"))
					y, err := Linear(xn, wn, nil)
					if err != nil {
						t.Fatal(err)
					}
					v, err := RunGraphWith(Options{QuantExact: exact}, g, "linear", y)
					if err != nil {
						t.Fatal(err)
					}
					ref := make([]float32, nr*out)
					linearQuant(x.Data().([]float32), nr, in, w, out, ref, exact)
					sameBits(t, fmt.Sprintf("Linear rows=%d exact=%v", nr, exact), v[0].Data().([]float32), ref)
					if err := CheckTrainable(G.Nodes{wn}); err == nil || !strings.Contains(err.Error(), "model.layers.0.mlp.up_proj.weight is "+strings.ToLower(DtypeName(dt))+" and frozen") {
						t.Errorf("CheckTrainable: %v", err)
					}
					loss, err := G.Sum(y)
					if err != nil {
						t.Fatal(err)
					}
					gs, err := G.Grad(loss, xn)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := RunGraph(g, "grad", gs[0]); err != nil {
						t.Fatal(err)
					}
				}
			})
		}
	}
}

// TestQuantRefusals: a quantized weight with float64 x, a non-matrix
// quantized weight, and a float-only op given a quantized node are errors
// naming it; a path beyond the CPU's is refused.
func TestQuantRefusals(t *testing.T) {
	w, _ := randQuant(t, rand.New(rand.NewSource(6)), Q4K, 4, 256)
	g := G.NewGraph()
	wn := G.NodeFromAny(g, w, G.WithName("w4"))
	x := G.NodeFromAny(g, randF64(rand.New(rand.NewSource(2)), 2, 256), G.WithName("x"))
	if _, err := Linear(x, wn, nil); err == nil || !strings.Contains(err.Error(), "q4_k weight (w4) needs float32 x") {
		t.Errorf("float64 x with a q4_k weight: %v", err)
	}
	if _, err := GELU(wn); err == nil || !strings.Contains(err.Error(), "Q4_K") {
		t.Errorf("GELU of a q4_k node: %v", err)
	}
	x32 := G.NodeFromAny(g, randF32(rand.New(rand.NewSource(2)), 2, 255), G.WithName("x32"))
	if _, err := Linear(x32, wn, nil); err == nil || !strings.Contains(err.Error(), "in-dim mismatch") {
		t.Errorf("Linear with 255 features against a [4, 256] q4_k weight: %v", err)
	}
	// An empty input dimension gives zeros (no block to read).
	w0, err := View(Q8_0, []int{3, 0}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, exact := range []bool{false, true} {
		y := []float32{1, 2, 3}
		linearQuant(nil, 1, 0, w0, 3, y, exact)
		if y[0] != 0 || y[1] != 0 || y[2] != 0 {
			t.Errorf("k = 0, exact %v: %v", exact, y)
		}
	}
	if _, err := SetQuantPath(BestQuantPath + 1); err == nil && BestQuantPath < QuantVNNI {
		t.Error("SetQuantPath accepted a path beyond the CPU's")
	}
}

// TestQuantActPaths: the 8-bit activation quantization gives the same
// bytes, scales and sums on every path (ties round to even: 2.5 → 2, 3.5 →
// 4 in a block whose scale is 1), within half a step of x.
func TestQuantActPaths(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	const rows, k = 2, 512
	x := randF32(rng, rows, k).Data().([]float32)
	x[0], x[1], x[2], x[3] = 127, 2.5, 3.5, -2.5 // first block: d = 1
	for _, bs := range []int{32, 256} {
		withQuantPath(t, QuantScalar)
		want := quantAct(x, rows, k, bs, false)
		if want.q[1] != 2 || want.q[2] != 4 || want.q[3] != -2 {
			t.Errorf("bs %d: ties rounded to %d %d %d, want 2 4 -2", bs, want.q[1], want.q[2], want.q[3])
		}
		for i, v := range x {
			if d := want.d[i/bs]; math.Abs(float64(v)-float64(d)*float64(want.q[i])) > float64(d)/2*(1+1e-6) {
				t.Fatalf("bs %d: x[%d] = %v quantized to %d·%v", bs, i, v, want.q[i], d)
			}
		}
		for _, p := range quantPaths(t)[1:] {
			withQuantPath(t, p)
			got := quantAct(x, rows, k, bs, false)
			for i := range got.q {
				if got.q[i] != want.q[i] {
					t.Fatalf("%v bs %d: q[%d] = %d, scalar %d", p, bs, i, got.q[i], want.q[i])
				}
			}
			for i := range got.d {
				if got.d[i] != want.d[i] {
					t.Fatalf("%v bs %d: d[%d] = %v, scalar %v", p, bs, i, got.d[i], want.d[i])
				}
			}
			for i := range got.s {
				if got.s[i] != want.s[i] {
					t.Fatalf("%v bs %d: s16[%d] = %d, scalar %d", p, bs, i, got.s[i], want.s[i])
				}
			}
		}
	}
}
