package kernels

import (
	"fmt"
	"math"
	"math/rand"
	"slices"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// halfPaths lists every half.c path this CPU can run (the scalar one, AVX2
// and, where present, AVX-512), so each is tested, not only the best.
func halfPaths() []HalfPath {
	var ps []HalfPath
	for p := HalfScalar; p <= BestHalfPath; p++ {
		ps = append(ps, p)
	}
	return ps
}

func withHalfPath(t *testing.T, p HalfPath) {
	t.Helper()
	old, err := SetHalfPath(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { halfPath = old })
}

// halfPair returns a random float32 tensor rounded to dt and its float32
// upcast (the same values exactly).
func halfPair(t *testing.T, rng *rand.Rand, dt tensor.Dtype, shape ...int) (half, up *tensor.Dense) {
	t.Helper()
	buf := make([]float32, prod(shape))
	for i := range buf {
		buf[i] = float32(rng.NormFloat64())
	}
	h, err := Convert(tensor.New(tensor.WithShape(shape...), tensor.WithBacking(buf)), dt)
	if err != nil {
		t.Fatal(err)
	}
	u, err := Convert(h, tensor.Float32)
	if err != nil {
		t.Fatal(err)
	}
	return h, u
}

func randF32(rng *rand.Rand, shape ...int) *tensor.Dense { return toF32(randF64(rng, shape...)) }

func halfDtypes() []tensor.Dtype { return []tensor.Dtype{BFloat16, Float16} }

// runOne builds f over nodes of ins (named in0...) and runs it.
func runOne(t *testing.T, f func(b *Builder, in []*G.Node) *G.Node, ins ...*tensor.Dense) []float32 {
	t.Helper()
	b := NewBuilder(nil)
	nodes := make([]*G.Node, len(ins))
	for i, x := range ins {
		nodes[i] = b.Param(x)
	}
	out := f(b, nodes)
	if err := b.Err(); err != nil {
		t.Fatal(err)
	}
	v, err := runGraph(b.G, out)
	if err != nil {
		t.Fatal(err)
	}
	return append([]float32(nil), v[0].(*tensor.Dense).Data().([]float32)...)
}

func sameBits(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s: element %d is %v, the float32 op on the upcast weights gives %v", what, i, got[i], want[i])
		}
	}
}

// TestHalfLinearMatchesUpcast: Linear with a BF16/F16 weight equals the
// float32 Linear on the upcast weight up to float32 summation order: within
// 2e-6·Σ|x·w| of the float64 dot product and 4e-6·Σ|x·w| of the float32 op,
// per output, on every code path the CPU has. Prefill sizes (more than
// gemvMaxRows rows: widened tiles + sgemm) are mostly bit-identical: the
// only differences come from OpenBLAS choosing other kernels for other
// block shapes (the float32 op itself changes with its goroutine split);
// decode sizes run half.c's GEMV, its own summation order.
func TestHalfLinearMatchesUpcast(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	cases := []struct {
		rows, out, in int
		bias          bool
	}{
		{1, 9, 5, true},        // tails everywhere
		{1, 37, 67, false},     // 4-row blocks + remainder
		{1, 1100, 2048, true},  // parallel GEMV (out·in ≥ parGemmMin)
		{3, 130, 96, true},     // a few rows through the GEMV
		{4, 64, 1000, false},   // gemvMaxRows
		{5, 70, 33, true},      // first tiled size
		{37, 300, 256, true},   // several tiles
		{64, 5000, 512, false}, // tile boundaries inside the goroutine split
		{200, 96, 4100, true},  // k larger than a tile's row budget
	}
	type variant struct {
		path HalfPath
		tile int // halfTileFloats: small tiles put tile boundaries inside every goroutine's range
	}
	var vs []variant
	for _, p := range halfPaths() {
		vs = append(vs, variant{p, halfTileFloats})
	}
	vs = append(vs, variant{BestHalfPath, 1 << 12})
	for _, dt := range halfDtypes() {
		for _, v := range vs {
			p := v.path
			for _, c := range cases {
				name := fmt.Sprintf("%s/%v/tile%d/%dx%dx%d", DtypeName(dt), p, v.tile, c.rows, c.out, c.in)
				t.Run(name, func(t *testing.T) {
					withHalfPath(t, p)
					old := halfTileFloats
					halfTileFloats = v.tile
					defer func() { halfTileFloats = old }()
					w, wUp := halfPair(t, rng, dt, c.out, c.in)
					x := randF32(rng, c.rows, c.in)
					var bias *tensor.Dense
					ins := []*tensor.Dense{x, w}
					insUp := []*tensor.Dense{x, wUp}
					if c.bias {
						bias, _ = halfPair(t, rng, dt, c.out)
						bUp, _ := Convert(bias, tensor.Float32)
						ins, insUp = append(ins, bias), append(insUp, bUp)
					}
					lin := func(b *Builder, in []*G.Node) *G.Node {
						var bn *G.Node
						if len(in) == 3 {
							bn = in[2]
						}
						return b.Linear(in[0], in[1], bn)
					}
					got := runOne(t, lin, ins...)
					want := runOne(t, lin, insUp...)
					same := 0
					xs, ws := x.Data().([]float32), wUp.Data().([]float32)
					for r := 0; r < c.rows; r++ {
						for o := 0; o < c.out; o++ {
							var ref, mag float64
							for i := 0; i < c.in; i++ {
								p := float64(xs[r*c.in+i]) * float64(ws[o*c.in+i])
								ref += p
								mag += math.Abs(p)
							}
							if bias != nil {
								bv := float64(insUp[2].Data().([]float32)[o])
								ref += bv
								mag += math.Abs(bv)
							}
							g, f := float64(got[r*c.out+o]), float64(want[r*c.out+o])
							if g == f {
								same++
							}
							if math.Abs(g-ref) > 2e-6*mag || math.Abs(g-f) > 4e-6*mag {
								t.Fatalf("y[%d,%d] = %v, float64 reference %v, float32 op %v (Σ|x·w| %v)", r, o, g, ref, f, mag)
							}
						}
					}
					t.Logf("%d of %d outputs bit-identical to the float32 op", same, c.rows*c.out)
				})
			}
		}
	}
}

// TestHalfLinearGradX: dx = dy·W through a frozen half weight equals the
// float32 op on the upcast weight within 4e-6·Σ|dy·w| per element (mostly
// bit-identical: as in the forward, only OpenBLAS's kernel choice for other
// block shapes differs), and a gradient graph through it runs (the weight
// itself gets none).
func TestHalfLinearGradX(t *testing.T) {
	rng := rand.New(rand.NewSource(8))
	for _, dt := range halfDtypes() {
		for _, c := range []struct{ rows, out, in, tile int }{{1, 7, 5, 0}, {6, 33, 70, 0}, {40, 3000, 700, 0}, {9, 200, 5000, 0}, {9, 200, 5000, 1 << 12}} {
			t.Run(fmt.Sprintf("%s/%dx%dx%d/tile%d", DtypeName(dt), c.rows, c.out, c.in, c.tile), func(t *testing.T) {
				if c.tile > 0 {
					old := halfTileFloats
					halfTileFloats = c.tile
					defer func() { halfTileFloats = old }()
				}
				w, wUp := halfPair(t, rng, dt, c.out, c.in)
				dy := randF32(rng, c.rows, c.out)
				gx := func(b *Builder, in []*G.Node) *G.Node {
					n, err := linearGradX(in[0], in[1])
					b.Fail(err)
					return n
				}
				got, want := runOne(t, gx, dy, w), runOne(t, gx, dy, wUp)
				dys, ws := dy.Data().([]float32), wUp.Data().([]float32)
				same := 0
				for r := 0; r < c.rows; r++ {
					for i := 0; i < c.in; i++ {
						var mag float64
						for o := 0; o < c.out; o++ {
							mag += math.Abs(float64(dys[r*c.out+o]) * float64(ws[o*c.in+i]))
						}
						g, f := got[r*c.in+i], want[r*c.in+i]
						if g == f {
							same++
						}
						if math.Abs(float64(g)-float64(f)) > 4e-6*mag {
							t.Fatalf("dx[%d,%d] = %v, float32 op %v (Σ|dy·w| %v)", r, i, g, f, mag)
						}
					}
				}
				t.Logf("%d of %d elements bit-identical to the float32 op", same, c.rows*c.in)
			})
		}
	}
	// Through Gorgonia's Grad: loss = Σ (x·Wᵀ)·c, gradient wrt x only.
	for _, dt := range halfDtypes() {
		t.Run("grad/"+DtypeName(dt), func(t *testing.T) {
			w, wUp := halfPair(t, rng, dt, 12, 10)
			x, c := randF32(rng, 6, 10), randF32(rng, 6, 12)
			grad := func(wt *tensor.Dense) []float32 {
				b := NewBuilder(nil)
				xn, wn, cn := b.Input("x", x), b.Param(wt), b.Input("c", c)
				y := b.Linear(xn, wn, nil)
				if err := b.Err(); err != nil {
					t.Fatal(err)
				}
				yc, err := G.HadamardProd(y, cn)
				if err != nil {
					t.Fatal(err)
				}
				loss, err := G.Sum(yc)
				if err != nil {
					t.Fatal(err)
				}
				if err := CheckTrainable(G.Nodes{xn}); err != nil {
					t.Fatal(err)
				}
				gs, err := G.Grad(loss, xn)
				if err != nil {
					t.Fatal(err)
				}
				v, err := runGraph(b.G, gs[0])
				if err != nil {
					t.Fatal(err)
				}
				return append([]float32(nil), v[0].(*tensor.Dense).Data().([]float32)...)
			}
			sameBits(t, "dx through Grad", grad(w), grad(wUp))
		})
	}
}

// TestHalfSmallParams: gather from a half table, and norms, layer scale,
// depthwise convolution and arithmetic with half parameters (widened by the
// Builder) are bit-identical to the float32 ops on the upcast values.
func TestHalfSmallParams(t *testing.T) {
	rng := rand.New(rand.NewSource(9))
	for _, dt := range halfDtypes() {
		t.Run(DtypeName(dt), func(t *testing.T) {
			emb, embUp := halfPair(t, rng, dt, 11, 24)
			gam, gamUp := halfPair(t, rng, dt, 24)
			bet, betUp := halfPair(t, rng, dt, 24)
			dw, dwUp := halfPair(t, rng, dt, 24, 1, 3, 3)
			x := randF32(rng, 2*4*4, 24)
			idx := tensor.New(tensor.WithShape(5), tensor.WithBacking([]float32{3, 10, 0, 3, 7}))
			cases := map[string]func(b *Builder, in []*G.Node) *G.Node{
				"gather":    func(b *Builder, in []*G.Node) *G.Node { return b.Gather(in[0], in[5]) },
				"layernorm": func(b *Builder, in []*G.Node) *G.Node { return b.LayerNorm(in[4], in[1], in[2], 1e-6) },
				"rmsnorm":   func(b *Builder, in []*G.Node) *G.Node { return b.RMSNorm(in[4], in[1], 1e-5) },
				"scale":     func(b *Builder, in []*G.Node) *G.Node { return b.ChannelScale(in[4], in[1]) },
				"depthwise": func(b *Builder, in []*G.Node) *G.Node {
					return b.DepthwiseConv2d(in[4], in[3], in[2], Grid{N: 2, H: 4, W: 4}, 1)
				},
				"concat": func(b *Builder, in []*G.Node) *G.Node {
					return b.Concat(0, in[4], b.Reshape(in[1], tensor.Shape{1, 24}))
				},
			}
			for name, f := range cases {
				got := runOne(t, f, emb, gam, bet, dw, x, idx)
				want := runOne(t, f, embUp, gamUp, betUp, dwUp, x, idx)
				sameBits(t, name, got, want)
			}
		})
	}
}

// TestHalfRefusals: ops that read only floats name the half input; a
// gradient with respect to a half parameter is refused by name.
func TestHalfRefusals(t *testing.T) {
	w, _ := halfPair(t, rand.New(rand.NewSource(1)), BFloat16, 4, 3)
	g := G.NewGraph()
	wn := G.NodeFromAny(g, w, G.WithName("model.layers.0.mlp.up_proj.weight"))
	if _, err := GELU(wn); err == nil || !strings.Contains(err.Error(), "BF16") {
		t.Errorf("GELU of a bf16 node: %v", err)
	}
	err := CheckTrainable(G.Nodes{wn})
	if err == nil || !strings.Contains(err.Error(), "model.layers.0.mlp.up_proj.weight is bf16 and frozen; use trainable: lora or --dtype f32") {
		t.Errorf("CheckTrainable: %v", err)
	}
	x := G.NodeFromAny(g, randF64(rand.New(rand.NewSource(2)), 2, 3), G.WithName("x"))
	if _, err := Linear(x, wn, nil); err == nil || !strings.Contains(err.Error(), "float32") {
		t.Errorf("float64 x with a bf16 weight: %v", err)
	}
	if _, err := SetHalfPath(BestHalfPath + 1); err == nil {
		t.Error("SetHalfPath accepted a path beyond the CPU's")
	}
}

// TestConvert: round trips and rounding of Convert.
func TestConvert(t *testing.T) {
	src := tensor.New(tensor.WithShape(4), tensor.WithBacking([]float32{1, 1.00390625, -2.5e-8, 65504}))
	for _, dt := range halfDtypes() {
		h, err := Convert(src, dt)
		if err != nil {
			t.Fatal(err)
		}
		back, _ := Convert(h, tensor.Float32)
		bs := back.Data().([]float32)
		for i, v := range src.Data().([]float32) {
			var want float32
			if dt == BFloat16 {
				want = BF16ToFloat32(Float32ToBF16(v))
			} else {
				want = F16ToFloat32(Float32ToF16(v))
			}
			if bs[i] != want {
				t.Errorf("%s: %v -> %v, want %v", DtypeName(dt), v, bs[i], want)
			}
		}
	}
}

// TestComputeBF16Error: --compute bf16 (bf16 activations, vdpbf16ps) equals
// the float64 dot product of the bf16-rounded activations with the weights
// up to float32 accumulation (2e-6·Σ|x·w|); against float32 activations its
// error stays within 2^-8·Σ|x·w| (the rounding of x to 8 mantissa bits).
func TestComputeBF16Error(t *testing.T) {
	opts := Options{ComputeBF16: true}
	if !HasBF16Dot {
		if err := opts.Check(); err == nil {
			t.Fatal("Options{ComputeBF16} accepted a CPU without avx512_bf16")
		}
		t.Skip("no avx512_bf16 on this CPU")
	}
	if err := opts.Check(); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(11))
	for _, c := range []struct{ rows, out, in int }{{1, 9, 5}, {1, 37, 67}, {2, 1100, 2048}, {1, 4096, 4096}} {
		w, wUp := halfPair(t, rng, BFloat16, c.out, c.in)
		x := randF32(rng, c.rows, c.in)
		y := make([]float32, c.rows*c.out)
		linearHalf(x.Data().([]float32), c.rows, c.in, w, c.out, y, opts.ComputeBF16)
		xs, ws := x.Data().([]float32), wUp.Data().([]float32)
		var worst float64
		for r := 0; r < c.rows; r++ {
			for o := 0; o < c.out; o++ {
				var exact, rounded, mag float64
				for i := 0; i < c.in; i++ {
					xv := float64(xs[r*c.in+i])
					xr := float64(BF16ToFloat32(Float32ToBF16(xs[r*c.in+i])))
					wv := float64(ws[o*c.in+i])
					exact += xv * wv
					rounded += xr * wv
					mag += math.Abs(xv * wv)
				}
				g := float64(y[r*c.out+o])
				if math.Abs(g-rounded) > 2e-6*mag {
					t.Fatalf("%v: y[%d,%d] = %v, bf16-rounded x gives %v (Σ|x·w| %v)", c, r, o, g, rounded, mag)
				}
				if e := math.Abs(g-exact) / mag; e > 1.0/256 {
					t.Fatalf("%v: y[%d,%d] = %v, float32 activations give %v: error %.3g of Σ|x·w|", c, r, o, g, exact, e)
				} else {
					worst = math.Max(worst, e)
				}
			}
		}
		t.Logf("%dx%dx%d: --compute bf16 error against float32 activations up to %.3g of Σ|x·w|", c.rows, c.out, c.in, worst)
	}
}

// An executor made with Options{ComputeBF16} runs a decode Linear on a bf16
// weight with bf16 activations (what linearHalf computes in that mode);
// one with the default options keeps float32 activations.
func TestExecutorComputeBF16(t *testing.T) {
	if !HasBF16Dot {
		if _, err := NewExecutorWith(Options{ComputeBF16: true}); err == nil || !strings.Contains(err.Error(), "avx512_bf16") {
			t.Fatalf("NewExecutorWith(ComputeBF16) without avx512_bf16: %v", err)
		}
		t.Skip("no avx512_bf16 on this CPU")
	}
	rng := rand.New(rand.NewSource(12))
	w, _ := halfPair(t, rng, BFloat16, 37, 67)
	x := randF32(rng, 1, 67)
	g := G.NewGraph()
	y, err := Linear(G.NodeFromAny(g, x, G.WithName("x")), G.NodeFromAny(g, w, G.WithName("w")), nil)
	if err != nil {
		t.Fatal(err)
	}
	var got [2][]float32
	for i, dot := range []bool{false, true} {
		v, err := RunGraphWith(Options{ComputeBF16: dot}, g, "linear", y)
		if err != nil {
			t.Fatal(err)
		}
		want := make([]float32, 37)
		linearHalf(x.Data().([]float32), 1, 67, w, 37, want, dot)
		if got[i] = v[0].Data().([]float32); !slices.Equal(got[i], want) {
			t.Errorf("ComputeBF16 %v: %v, want %v", dot, got[i], want)
		}
	}
	if slices.Equal(got[0], got[1]) {
		t.Error("ComputeBF16 gave the float32 activations' products")
	}
}
