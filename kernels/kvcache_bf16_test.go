package kernels

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	"gorgonia.org/tensor"
)

// TestRoundBF16 checks the vector rounding used by appendKV16 against
// Float32ToBF16 bit for bit: ties to even, NaN, infinities, subnormals.
func TestRoundBF16(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	x := []float32{0, float32(math.Copysign(0, -1)), 1, -1, float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()),
		math.Float32frombits(0x3f808000), math.Float32frombits(0x3f818000), math.Float32frombits(0x00000001),
		math.Float32frombits(0x7f7fffff), math.Float32frombits(0x7fc00001), math.Float32frombits(0xff800001)}
	for i := 0; i < 10000; i++ {
		x = append(x, math.Float32frombits(rng.Uint32()))
	}
	d := make([]uint16, len(x))
	roundBF16(x, d)
	for i, v := range x {
		if want := Float32ToBF16(v); d[i] != want {
			t.Fatalf("roundBF16(%#08x) = %#04x, Float32ToBF16 = %#04x", math.Float32bits(v), d[i], want)
		}
	}
}

func roundedF32(x *tensor.Dense) *tensor.Dense {
	src := x.Data().([]float32)
	r := make([]float32, len(src))
	for i, v := range src {
		r[i] = BF16ToFloat32(Float32ToBF16(v))
	}
	return tensor.New(tensor.WithShape(x.Shape().Clone()...), tensor.WithBacking(r))
}

// seqRows picks positions [lo, hi) of every one of B sequences of T rows.
func seqRows(x *tensor.Dense, B, T, lo, hi int) *tensor.Dense {
	w := x.Shape()[1]
	src := x.Data().([]float32)
	var buf []float32
	for b := 0; b < B; b++ {
		buf = append(buf, src[(b*T+lo)*w:(b*T+hi)*w]...)
	}
	return tensor.New(tensor.WithShape(B*(hi-lo), w), tensor.WithBacking(buf))
}

// cachedRun runs a prefill of `prefill` positions and then one-position
// decode steps up to T through cache, returning every step's output.
func cachedRun(t *testing.T, cache *KVCache, cfg AttentionConfig, T, prefill int, q, k, v *tensor.Dense) [][]float32 {
	t.Helper()
	var outs [][]float32
	step := func(lo, hi int) {
		c := cfg
		c.Seq, c.Cache = hi-lo, cache
		o, err := attnForward[float32](c, []*tensor.Dense{seqRows(q, cfg.Batch, T, lo, hi), seqRows(k, cfg.Batch, T, lo, hi), seqRows(v, cfg.Batch, T, lo, hi)}, nil)
		if err != nil {
			t.Fatalf("positions [%d, %d): %v", lo, hi, err)
		}
		outs = append(outs, append([]float32(nil), o.(*tensor.Dense).Data().([]float32)...))
	}
	step(0, prefill)
	for p := prefill; p < T; p++ {
		step(p, p+1)
	}
	return outs
}

// TestAttentionBF16Cache: attention with a bfloat16 cache equals attention
// with a float32 cache fed keys and values pre-rounded to bfloat16, bit for
// bit (prefill and decode), and stays within a measured tolerance of the
// float32 cache on the unrounded values; Truncate and re-decode repeat the
// same outputs.
func TestAttentionBF16Cache(t *testing.T) {
	for _, tc := range []struct {
		name                    string
		B, T, H, KV, D, prefill int
		causal                  bool
	}{
		{"gqa causal", 2, 11, 4, 2, 8, 5, true},
		{"mha long prefill", 1, 80, 2, 2, 16, 70, true},
		{"non-causal", 2, 6, 2, 1, 4, 3, false},
		{"decode only", 1, 5, 8, 2, 32, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewSource(int64(tc.T)))
			rows := tc.B * tc.T
			q := toF32(randF64(rng, rows, tc.H*tc.D))
			k := toF32(randF64(rng, rows, tc.KV*tc.D))
			v := toF32(randF64(rng, rows, tc.KV*tc.D))
			cfg := AttentionConfig{Batch: tc.B, Heads: tc.H, KVHeads: tc.KV, HeadDim: tc.D, Causal: tc.causal}
			bf, err := NewKVCacheDtype(tc.B, tc.KV, tc.D, tc.T, BFloat16)
			if err != nil {
				t.Fatal(err)
			}
			got := cachedRun(t, bf, cfg, tc.T, tc.prefill, q, k, v)
			ref := cachedRun(t, NewKVCache(tc.B, tc.KV, tc.D, tc.T), cfg, tc.T, tc.prefill, q, roundedF32(k), roundedF32(v))
			f32 := cachedRun(t, NewKVCache(tc.B, tc.KV, tc.D, tc.T), cfg, tc.T, tc.prefill, q, k, v)
			var maxErr, maxRef float64
			for s := range got {
				for i, x := range got[s] {
					if math.Float32bits(x) != math.Float32bits(ref[s][i]) {
						t.Fatalf("step %d element %d: bf16 cache %g, f32 cache on rounded K/V %g", s, i, x, ref[s][i])
					}
					maxErr = math.Max(maxErr, math.Abs(float64(x-f32[s][i])))
					maxRef = math.Max(maxRef, math.Abs(float64(f32[s][i])))
				}
			}
			// bf16 keeps 8 significant bits (relative rounding error <= 2^-9);
			// measured: 2.0e-3 to 2.7e-3 of max |out| on these cases.
			if rel := maxErr / maxRef; rel > 4e-3 {
				t.Errorf("bf16 cache vs f32 cache: max error %.3g relative to max |out| %.3g = %.3g", maxErr, maxRef, rel)
			} else {
				t.Logf("bf16 cache vs f32 cache: max error %.3g relative to max |out| %.3g = %.3g", maxErr, maxRef, rel)
			}
			if bf.Dtype() != BFloat16 || bf.Len() != tc.T {
				t.Fatalf("cache dtype %v len %d", bf.Dtype(), bf.Len())
			}
			// Truncate to the prompt and decode again: the same outputs.
			if err := bf.Truncate(tc.prefill); err != nil {
				t.Fatal(err)
			}
			for p := tc.prefill; p < tc.T; p++ {
				c := cfg
				c.Seq, c.Cache = 1, bf
				o, err := attnForward[float32](c, []*tensor.Dense{seqRows(q, tc.B, tc.T, p, p+1), seqRows(k, tc.B, tc.T, p, p+1), seqRows(v, tc.B, tc.T, p, p+1)}, nil)
				if err != nil {
					t.Fatal(err)
				}
				for i, x := range o.(*tensor.Dense).Data().([]float32) {
					if x != got[1+p-tc.prefill][i] {
						t.Fatalf("after Truncate, position %d element %d: %g, first run %g", p, i, x, got[1+p-tc.prefill][i])
					}
				}
			}
			// Full: one more position fails with an error.
			c := cfg
			c.Seq, c.Cache = 1, bf
			if _, err := attnForward[float32](c, []*tensor.Dense{seqRows(q, tc.B, tc.T, 0, 1), seqRows(k, tc.B, tc.T, 0, 1), seqRows(v, tc.B, tc.T, 0, 1)}, nil); err == nil {
				t.Error("append past maxLen: want error")
			}
			bf.Reset()
			if bf.Len() != 0 {
				t.Error("Reset")
			}
		})
	}
}

func TestKVCacheDtypeOptions(t *testing.T) {
	for _, tc := range []struct {
		dt   tensor.Dtype
		size int
		ok   bool
	}{
		{tensor.Dtype{}, 4, true}, {tensor.Float32, 4, true}, {BFloat16, 2, true},
		{Float16, 0, false}, {tensor.Float64, 0, false},
	} {
		n, err := KVElemSize(tc.dt)
		if (err == nil) != tc.ok || n != tc.size {
			t.Errorf("KVElemSize(%v) = %d, %v", tc.dt, n, err)
		}
		if _, err := NewKVCacheDtype(1, 1, 2, 4, tc.dt); (err == nil) != tc.ok {
			t.Errorf("NewKVCacheDtype(%v): %v", tc.dt, err)
		}
	}
	for s, want := range map[string]tensor.Dtype{"f32": tensor.Float32, "float32": tensor.Float32, "bf16": BFloat16, "bfloat16": BFloat16} {
		if dt, err := ParseKVDtype(s); err != nil || dt != want {
			t.Errorf("ParseKVDtype(%q) = %v, %v", s, dt, err)
		}
	}
	for _, s := range []string{"", "f16", "fp8", "BF-16"} {
		if _, err := ParseKVDtype(s); err == nil {
			t.Errorf("ParseKVDtype(%q): want error", s)
		}
	}
	// float64 graphs cannot use a bfloat16 cache: an error, not a panic.
	c, _ := NewKVCacheDtype(1, 1, 2, 4, BFloat16)
	x := randF64(rand.New(rand.NewSource(1)), 1, 2)
	cfg := AttentionConfig{Batch: 1, Seq: 1, Heads: 1, KVHeads: 1, HeadDim: 2, Causal: true, Cache: c}
	if _, err := attnForward[float64](cfg, []*tensor.Dense{x, x, x}, nil); err == nil {
		t.Error("float64 attention with a bf16 cache: want error")
	}
	if c.Len() != 0 {
		t.Errorf("failed append left %d positions", c.Len())
	}
}

// BenchmarkAttentionDecodeCache: one decode step of one Magma-8B layer
// (32 heads, 8 kv heads, head dim 128) over a cache of L positions, float32
// cache vs bfloat16 cache (widened into scratch each step).
func BenchmarkAttentionDecodeCache(b *testing.B) {
	const H, KV, D = 32, 8, 128
	rng := rand.New(rand.NewSource(1))
	for _, L := range []int{512, 4096} {
		for _, dt := range []tensor.Dtype{tensor.Float32, BFloat16} {
			b.Run(fmt.Sprintf("L%d_%s", L, DtypeName(dt)), func(b *testing.B) {
				c, err := NewKVCacheDtype(1, KV, D, L+1, dt)
				if err != nil {
					b.Fatal(err)
				}
				fill := toF32(randF64(rng, L, KV*D))
				cfg := AttentionConfig{Batch: 1, Seq: L, Heads: H, KVHeads: KV, HeadDim: D, Causal: true, Cache: c}
				if _, err := attnForward[float32](cfg, []*tensor.Dense{toF32(randF64(rng, L, H*D)), fill, fill}, nil); err != nil {
					b.Fatal(err)
				}
				cfg.Seq = 1
				in := []*tensor.Dense{toF32(randF64(rng, 1, H*D)), toF32(randF64(rng, 1, KV*D)), toF32(randF64(rng, 1, KV*D))}
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if err := c.Truncate(L); err != nil {
						b.Fatal(err)
					}
					if _, err := attnForward[float32](cfg, in, nil); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// Decode attention (attn.c) on every vector path the CPU has, with a
// float32 and a bfloat16 cache, for head sizes that fill whole vector
// blocks (128), leave a tail (80) or fit in none (12), and groups of 4, 3
// and 1 query heads per kv head: the decode step's output equals the last
// row of float64 attention over the same (for bf16: rounded) keys and
// values.
func TestAttentionDecodePaths(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	shapes := []struct{ H, KV, D int }{{32, 8, 128}, {6, 2, 80}, {5, 5, 12}}
	const L = 37 // cached positions before the decode step
	for _, p := range halfPaths() {
		for _, sh := range shapes {
			for _, dt := range []tensor.Dtype{tensor.Float32, BFloat16} {
				t.Run(fmt.Sprintf("%v/H%d_KV%d_D%d/%s", p, sh.H, sh.KV, sh.D, DtypeName(dt)), func(t *testing.T) {
					withHalfPath(t, p)
					q := randF64(rng, L+1, sh.H*sh.D)
					k := randF64(rng, L+1, sh.KV*sh.D)
					v := randF64(rng, L+1, sh.KV*sh.D)
					if dt == BFloat16 { // the reference attends over the rounded keys and values
						for _, m := range []*tensor.Dense{k, v} {
							d := m.Data().([]float64)
							for i, x := range d {
								d[i] = float64(BF16ToFloat32(Float32ToBF16(float32(x))))
							}
						}
					}
					full := AttentionConfig{Batch: 1, Seq: L + 1, Heads: sh.H, KVHeads: sh.KV, HeadDim: sh.D, Causal: true}
					ref, err := attnForward[float64](full, []*tensor.Dense{q, k, v}, nil)
					if err != nil {
						t.Fatal(err)
					}
					want := ref.(*tensor.Dense).Data().([]float64)[L*sh.H*sh.D:]

					c, err := NewKVCacheDtype(1, sh.KV, sh.D, L+1, dt)
					if err != nil {
						t.Fatal(err)
					}
					rows := func(m *tensor.Dense, lo, hi int) *tensor.Dense {
						w := m.Shape()[1]
						d := m.Data().([]float64)[lo*w : hi*w]
						return toF32(tensor.New(tensor.WithShape(hi-lo, w), tensor.WithBacking(append([]float64(nil), d...))))
					}
					pre := full
					pre.Seq, pre.Cache = L, c
					if _, err := attnForward[float32](pre, []*tensor.Dense{rows(q, 0, L), rows(k, 0, L), rows(v, 0, L)}, nil); err != nil {
						t.Fatal(err)
					}
					dec := pre
					dec.Seq = 1
					got, err := attnForward[float32](dec, []*tensor.Dense{rows(q, L, L+1), rows(k, L, L+1), rows(v, L, L+1)}, nil)
					if err != nil {
						t.Fatal(err)
					}
					g := got.(*tensor.Dense).Data().([]float32)
					scale, worst := 0.0, 0.0
					for i, w := range want {
						scale = math.Max(scale, math.Abs(w))
						worst = math.Max(worst, math.Abs(float64(g[i])-w))
					}
					if worst > 1e-5*scale {
						t.Errorf("decode output differs from float64 attention by %.3g (max |out| %.3g)", worst, scale)
					}
				})
			}
		}
	}
}
