package kernels

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func refAttention(q, k, v []float64, B, T, H, KV, D int, causal bool) []float64 {
	out := make([]float64, B*T*H*D)
	for b := 0; b < B; b++ {
		for h := 0; h < H; h++ {
			g := h / (H / KV)
			for t := 0; t < T; t++ {
				n := T
				if causal {
					n = t + 1
				}
				s := make([]float64, n)
				m := math.Inf(-1)
				for j := 0; j < n; j++ {
					for i := 0; i < D; i++ {
						s[j] += q[(b*T+t)*H*D+h*D+i] * k[(b*T+j)*KV*D+g*D+i]
					}
					s[j] /= math.Sqrt(float64(D))
					m = math.Max(m, s[j])
				}
				var z float64
				for j := range s {
					s[j] = math.Exp(s[j] - m)
					z += s[j]
				}
				for j := range s {
					for i := 0; i < D; i++ {
						out[(b*T+t)*H*D+h*D+i] += s[j] / z * v[(b*T+j)*KV*D+g*D+i]
					}
				}
			}
		}
	}
	return out
}

func TestAttention(t *testing.T) {
	rng := rand.New(rand.NewSource(12))
	cases := []AttentionConfig{
		{Batch: 2, Seq: 5, Heads: 4, KVHeads: 2, HeadDim: 3, Causal: true},
		{Batch: 1, Seq: 4, Heads: 2, KVHeads: 2, HeadDim: 4, Causal: false},
		{Batch: 2, Seq: 3, Heads: 3, KVHeads: 1, HeadDim: 2, Causal: true},
		{Batch: 3, Seq: 1, Heads: 2, KVHeads: 1, HeadDim: 5, Causal: true},
		{Batch: 1, Seq: 1, Heads: 1, KVHeads: 1, HeadDim: 1, Causal: false},
		{Batch: 1, Seq: 7, Heads: 4, KVHeads: 4, HeadDim: 6, Causal: true},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("B%dT%dH%dKV%dD%dc%v", c.Batch, c.Seq, c.Heads, c.KVHeads, c.HeadDim, c.Causal), func(t *testing.T) {
			rows := c.Batch * c.Seq
			q := randF64(rng, rows, c.Heads*c.HeadDim)
			k := randF64(rng, rows, c.KVHeads*c.HeadDim)
			v := randF64(rng, rows, c.KVHeads*c.HeadDim)
			ref := refAttention(q.Data().([]float64), k.Data().([]float64), v.Data().([]float64),
				c.Batch, c.Seq, c.Heads, c.KVHeads, c.HeadDim, c.Causal)
			build := func(in []*G.Node) (*G.Node, error) { return Attention(in[0], in[1], in[2], c) }
			checkForward(t, build, ref, q, k, v)
			gradCheck(t, build, []int{0, 1, 2}, q, k, v)
		})
	}
}

func TestAttentionShapeErrors(t *testing.T) {
	g := G.NewGraph()
	q := G.NewMatrix(g, tensor.Float64, G.WithShape(6, 12), G.WithName("q"))
	k := G.NewMatrix(g, tensor.Float64, G.WithShape(6, 4), G.WithName("k"))
	v := G.NewMatrix(g, tensor.Float64, G.WithShape(6, 4), G.WithName("v"))
	good := AttentionConfig{Batch: 2, Seq: 3, Heads: 3, KVHeads: 1, HeadDim: 4}
	if _, err := Attention(q, k, v, good); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	bad := []AttentionConfig{
		{Batch: 2, Seq: 3, Heads: 4, KVHeads: 1, HeadDim: 3}, // k width 4 != 1*3
		{Batch: 2, Seq: 3, Heads: 3, KVHeads: 2, HeadDim: 4}, // H not multiple of KV
		{Batch: 3, Seq: 3, Heads: 3, KVHeads: 1, HeadDim: 4}, // rows
		{Batch: 2, Seq: 3, Heads: 3, KVHeads: 1, HeadDim: 4, Cache: NewKVCache(1, 1, 4, 8)},
		{Batch: 2, Seq: 3, Heads: 3, KVHeads: 1, HeadDim: 0},
	}
	for i, c := range bad {
		if _, err := Attention(q, k, v, c); err == nil {
			t.Errorf("case %d: want error", i)
		}
	}
}

// TestAttentionKVCache decodes token by token with a cache and compares with
// one full causal pass (float32).
func TestAttentionKVCache(t *testing.T) {
	rng := rand.New(rand.NewSource(13))
	const B, T, H, KV, D, prefill = 2, 9, 4, 2, 8, 4
	qa := toF32(randF64(rng, B*T, H*D))
	ka := toF32(randF64(rng, B*T, KV*D))
	va := toF32(randF64(rng, B*T, KV*D))
	full := AttentionConfig{Batch: B, Seq: T, Heads: H, KVHeads: KV, HeadDim: D, Causal: true}
	want, _ := forward(t, func(in []*G.Node) (*G.Node, error) { return Attention(in[0], in[1], in[2], full) }, qa, ka, va)

	// rowsOf picks positions [lo, hi) of every sequence.
	rowsOf := func(x *tensor.Dense, lo, hi int) *tensor.Dense {
		w := x.Shape()[1]
		src := x.Data().([]float32)
		var buf []float32
		for b := 0; b < B; b++ {
			buf = append(buf, src[(b*T+lo)*w:(b*T+hi)*w]...)
		}
		return tensor.New(tensor.WithShape(B*(hi-lo), w), tensor.WithBacking(buf))
	}
	cache := NewKVCache(B, KV, D, T)
	got := make([]float64, B*T*H*D)
	collect := func(out []float64, lo, hi int) {
		for b := 0; b < B; b++ {
			copy(got[(b*T+lo)*H*D:(b*T+hi)*H*D], out[b*(hi-lo)*H*D:(b+1)*(hi-lo)*H*D])
		}
	}
	// Prefill graph.
	pre := full
	pre.Seq, pre.Cache = prefill, cache
	out, _ := forward(t, func(in []*G.Node) (*G.Node, error) { return Attention(in[0], in[1], in[2], pre) },
		rowsOf(qa, 0, prefill), rowsOf(ka, 0, prefill), rowsOf(va, 0, prefill))
	collect(out, 0, prefill)
	if cache.Len() != prefill {
		t.Fatalf("cache len %d after prefill", cache.Len())
	}
	// One decode graph, re-run with new inputs.
	g := G.NewGraph()
	qn := G.NodeFromAny(g, rowsOf(qa, 0, 1), G.WithName("q"))
	kn := G.NodeFromAny(g, rowsOf(ka, 0, 1), G.WithName("k"))
	vn := G.NodeFromAny(g, rowsOf(va, 0, 1), G.WithName("v"))
	dec := full
	dec.Seq, dec.Cache = 1, cache
	on, err := Attention(qn, kn, vn, dec)
	if err != nil {
		t.Fatal(err)
	}
	prog, err := Compile(g, CompileOptions{Name: "decode", Outputs: G.Nodes{on}})
	if err != nil {
		t.Fatal(err)
	}
	exec := NewExecutor()
	defer exec.Release() // keeps the arena (and the values read from it) alive to the end
	exec.PoisonFreed(true)
	for pos := prefill; pos < T; pos++ {
		for _, p := range []struct {
			n *G.Node
			x *tensor.Dense
		}{{qn, qa}, {kn, ka}, {vn, va}} {
			if err := G.Let(p.n, rowsOf(p.x, pos, pos+1)); err != nil {
				t.Fatal(err)
			}
		}
		if err := exec.Run(prog, nil); err != nil {
			t.Fatalf("decode %d: %v", pos, err)
		}
		v, err := prog.Value(on)
		if err != nil {
			t.Fatal(err)
		}
		collect(f64s(v), pos, pos+1)
	}
	if d := maxAbsDiff(got, want); d > 1e-5 {
		t.Errorf("cached decode differs from full pass by %g", d)
	}
	// The cache is full: one more step must fail with an error, not a panic.
	if err := exec.Run(prog, nil); err == nil {
		t.Error("append past maxLen: want error")
	}
	if err := cache.Truncate(T + 1); err == nil {
		t.Error("Truncate beyond Len: want error")
	}
	if err := cache.Truncate(prefill); err != nil || cache.Len() != prefill {
		t.Errorf("Truncate: %v, len %d", err, cache.Len())
	}
	cache.Reset()
	if cache.Len() != 0 {
		t.Error("Reset")
	}
}

func BenchmarkAttention(b *testing.B) {
	rng := rand.New(rand.NewSource(1))
	const T, H, KV, D = 512, 8, 8, 64
	cfg := AttentionConfig{Batch: 1, Seq: T, Heads: H, KVHeads: KV, HeadDim: D, Causal: true}
	q, k, v := toF32(randF64(rng, T, H*D)), toF32(randF64(rng, T, KV*D)), toF32(randF64(rng, T, KV*D))
	b.Run("forward_T512_H8_D64", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := attnForward[float32](cfg, []*tensor.Dense{q, k, v}, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("backward_T512_H8_D64", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			attnBackward[float32](cfg, []*tensor.Dense{q, k, v, q}, nil)
		}
	})
	b.Run("decode_T1_cache512_H32_KV8_D128", func(b *testing.B) {
		cache := NewKVCache(1, 8, 128, 513)
		kk, vv := toF32(randF64(rng, 512, 8*128)), toF32(randF64(rng, 512, 8*128))
		pre := AttentionConfig{Batch: 1, Seq: 512, Heads: 32, KVHeads: 8, HeadDim: 128, Causal: true, Cache: cache}
		if _, err := attnForward[float32](pre, []*tensor.Dense{toF32(randF64(rng, 512, 32*128)), kk, vv}, nil); err != nil {
			b.Fatal(err)
		}
		dec := pre
		dec.Seq = 1
		q1, k1 := toF32(randF64(rng, 1, 32*128)), toF32(randF64(rng, 1, 8*128))
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := cache.Truncate(512); err != nil {
				b.Fatal(err)
			}
			if _, err := attnForward[float32](dec, []*tensor.Dense{q1, k1, k1}, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// Sequences longer than attnBlock exercise the block-wise (lower-triangle)
// forward and backward: the forward against refAttention, the backward by
// directional derivatives of Σ out⊙R along random directions.
func TestAttentionBlocks(t *testing.T) {
	rng := rand.New(rand.NewSource(13))
	for _, c := range []AttentionConfig{
		{Batch: 2, Seq: 2*attnBlock + 22, Heads: 4, KVHeads: 2, HeadDim: 8, Causal: true},
		{Batch: 1, Seq: attnBlock + 1, Heads: 2, KVHeads: 1, HeadDim: 4, Causal: false},
	} {
		rows := c.Batch * c.Seq
		q := randF64(rng, rows, c.Heads*c.HeadDim)
		k := randF64(rng, rows, c.KVHeads*c.HeadDim)
		v := randF64(rng, rows, c.KVHeads*c.HeadDim)
		ref := func(q, k, v []float64) []float64 {
			return refAttention(q, k, v, c.Batch, c.Seq, c.Heads, c.KVHeads, c.HeadDim, c.Causal)
		}
		build := func(in []*G.Node) (*G.Node, error) { return Attention(in[0], in[1], in[2], c) }
		checkForward(t, build, ref(q.Data().([]float64), k.Data().([]float64), v.Data().([]float64)), q, k, v)

		r := randF64(rng, rows, c.Heads*c.HeadDim)
		packed := attnBackward[float64](c, []*tensor.Dense{q, k, v, r}, nil).Data().([]float64)
		hd, kvd := c.Heads*c.HeadDim, c.KVHeads*c.HeadDim
		ld := hd + 2*kvd
		cost := func(q, k, v []float64) float64 {
			var s float64
			for i, o := range ref(q, k, v) {
				s += o * r.Data().([]float64)[i]
			}
			return s
		}
		ins := [][]float64{q.Data().([]float64), k.Data().([]float64), v.Data().([]float64)}
		offs, widths := []int{0, hd, hd + kvd}, []int{hd, kvd, kvd}
		for which := 0; which < 3; which++ {
			for trial := 0; trial < 2; trial++ {
				u := randF64(rng, len(ins[which])).Data().([]float64)
				var analytic float64
				for row := 0; row < rows; row++ {
					for j := 0; j < widths[which]; j++ {
						analytic += packed[row*ld+offs[which]+j] * u[row*widths[which]+j]
					}
				}
				const eps = 1e-5
				shifted := func(sign float64) float64 {
					args := make([][]float64, 3)
					copy(args, ins)
					x := append([]float64(nil), ins[which]...)
					for i := range x {
						x[i] += sign * eps * u[i]
					}
					args[which] = x
					return cost(args[0], args[1], args[2])
				}
				num := (shifted(1) - shifted(-1)) / (2 * eps)
				if d := math.Abs(num-analytic) / math.Max(1, math.Abs(num)); d > 1e-6 {
					t.Errorf("%+v input %d: directional derivative %g, backward gives %g", c, which, num, analytic)
				}
			}
		}
	}
}
