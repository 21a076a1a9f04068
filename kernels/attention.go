package kernels

import (
	"fmt"
	"math"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// AttentionConfig configures Attention.
type AttentionConfig struct {
	Batch, Seq     int // rows of q are Batch*Seq, sequence-major within a batch
	Heads, KVHeads int // grouped-query: head h reads kv head h/(Heads/KVHeads)
	HeadDim        int
	Causal         bool
	Cache          *KVCache // optional (inference): keys/values are appended and attended
}

func (c AttentionConfig) params() string {
	return fmt.Sprintf("B=%d,T=%d,H=%d,KV=%d,D=%d,causal=%v,cache=%p", c.Batch, c.Seq, c.Heads, c.KVHeads, c.HeadDim, c.Causal, c.Cache)
}

// Attention is scaled-dot-product attention with grouped KV heads.
// q [B*T, H*D], k and v [B*T, KV*D] → [B*T, H*D]; scale 1/sqrt(D).
//
// For batch b, head h (kv head g = h/(H/KV)) and query t:
//
//	s[j] = q[b,t,h]·k[b,j,g]/sqrt(D), p = softmax(s) (max-subtracted, sums in float64)
//	out[b,t,h] = Σ_j p[j]·v[b,j,g]
//
// With Causal, query t only sees keys j ≤ t. With Cache (inference only, not
// differentiable), every run first appends this call's k/v rows at positions
// [Len, Len+T) and then attends over all cached positions; the query at
// absolute position p = Len+t sees keys 0..p when Causal (all cached keys
// otherwise). Appending past the cache's maxLen makes the run fail.
//
// Without a cache, gradients for q, k and v are computed by one backward op
// that recomputes the softmax.
func Attention(q, k, v *G.Node, cfg AttentionConfig) (*G.Node, error) {
	op, err := newOp("Attention", cfg.params(), 2, q, k, v)
	if err != nil {
		return nil, err
	}
	op.shape = func(in []tensor.Shape) (tensor.Shape, error) {
		if err := cfg.check(in[0], in[1], in[2]); err != nil {
			return nil, err
		}
		return in[0].Clone(), nil
	}
	op.do = func(in []*tensor.Dense, o *tensor.Dense) (G.Value, error) {
		return dispatch(in[0], func() (G.Value, error) { return attnForward[float32](cfg, in, o) },
			func() (G.Value, error) { return attnForward[float64](cfg, in, o) })
	}
	op.sideEffects = cfg.Cache != nil // appends to the cache
	if cfg.Cache == nil {
		op.wrt = []bool{true, true, true}
		op.diff = func(in G.Nodes, _, dy *G.Node) (G.Nodes, error) { return attnGrads(cfg, in, dy) }
	}
	return apply(op, q, k, v)
}

func (c AttentionConfig) check(q, k, v tensor.Shape) error {
	if c.Batch <= 0 || c.Seq <= 0 || c.Heads <= 0 || c.KVHeads <= 0 || c.HeadDim <= 0 {
		return shapeErr("Attention", "bad config %s", c.params())
	}
	if c.Heads%c.KVHeads != 0 {
		return shapeErr("Attention", "Heads %d is not a multiple of KVHeads %d", c.Heads, c.KVHeads)
	}
	rows := c.Batch * c.Seq
	if q.Dims() != 2 || q[0] != rows || q[1] != c.Heads*c.HeadDim {
		return shapeErr("Attention", "q must be [B*T=%d, H*D=%d], got %v", rows, c.Heads*c.HeadDim, q)
	}
	for _, s := range []tensor.Shape{k, v} {
		if s.Dims() != 2 || s[0] != rows || s[1] != c.KVHeads*c.HeadDim {
			return shapeErr("Attention", "k and v must be [B*T=%d, KV*D=%d], got %v", rows, c.KVHeads*c.HeadDim, s)
		}
	}
	if cc := c.Cache; cc != nil {
		if cc.batch != c.Batch || cc.kvHeads != c.KVHeads || cc.headDim != c.HeadDim {
			return shapeErr("Attention", "cache %v does not match config %s", cc, c.params())
		}
		if c.Seq > cc.maxLen {
			return shapeErr("Attention", "Seq %d exceeds cache maxLen %d", c.Seq, cc.maxLen)
		}
	}
	return nil
}

// attnArgs describes one attention computation over raw buffers.
type attnArgs[T float] struct {
	q, k, v, out    []T
	k16, v16        []uint16 // a bfloat16 cache, read by attnDecode (k, v unused)
	b, tq, h, kv, d int
	kvBatch         int // element stride between sequences in k/v
	hs, ldk         int // element strides between kv heads and between positions in k/v
	l               int // number of keys per sequence
	qOff            int // absolute position of query 0
	causal          bool
	scale           float64
}

func attnForward[T float](cfg AttentionConfig, in []*tensor.Dense, o *tensor.Dense) (G.Value, error) {
	q, k, v := data[T](in[0]), data[T](in[1]), data[T](in[2])
	a := attnArgs[T]{q: q, k: k, v: v, b: cfg.Batch, tq: cfg.Seq, h: cfg.Heads, kv: cfg.KVHeads,
		d: cfg.HeadDim, causal: cfg.Causal, scale: 1 / math.Sqrt(float64(cfg.HeadDim))}
	a.kvBatch, a.l = cfg.Seq*cfg.KVHeads*cfg.HeadDim, cfg.Seq
	a.hs, a.ldk = cfg.HeadDim, cfg.KVHeads*cfg.HeadDim // rows of k and v: positions, kv heads side by side
	if c := cfg.Cache; c != nil && c.dtype == BFloat16 {
		return attnForwardBF16(cfg, a, in, o)
	} else if c != nil {
		c.mu.Lock()
		defer c.mu.Unlock()
		kb, vb, start, err := appendKV(c, k, v, cfg.Seq)
		if err != nil {
			return nil, err
		}
		a.k, a.v, a.qOff = kb, vb, start
		a.kvBatch, a.l = c.maxLen*c.kvHeads*c.headDim, start+cfg.Seq
		a.hs, a.ldk = c.maxLen*c.headDim, c.headDim // the cache is head-major
	}
	t, out := newOut[T](o, cfg.Batch*cfg.Seq, cfg.Heads*cfg.HeadDim)
	a.out = out
	attnCore(a)
	return t, nil
}

// attnForwardBF16 is attnForward with a bfloat16 cache: this call's keys and
// values are appended rounded to bfloat16, then positions [0, Len+T) of each
// sequence are widened into pooled float32 scratch and attended as with a
// float32 cache. Prefill therefore attends over its own keys and values
// rounded to bfloat16 too (as llama.cpp does with an f16 cache), so a bf16
// cache gives the same result as a float32 cache fed keys and values
// pre-rounded to bfloat16, bit for bit.
func attnForwardBF16[T float](cfg AttentionConfig, a attnArgs[T], in []*tensor.Dense, o *tensor.Dense) (G.Value, error) {
	c := cfg.Cache
	k, ok1 := any(a.k).([]float32)
	v, ok2 := any(a.v).([]float32)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("kernels: a bfloat16 KV cache needs float32 keys and values, got %v", in[1].Dtype())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	start, err := appendKV16(c, k, v, cfg.Seq)
	if err != nil {
		return nil, err
	}
	l := start + cfg.Seq
	if cfg.Seq == 1 {
		// Decode: attn.c reads the bfloat16 cache in place.
		a.k16, a.v16 = c.k16, c.v16
		a.qOff, a.kvBatch, a.l = start, c.maxLen*c.kvHeads*c.headDim, l
		a.hs, a.ldk = c.maxLen*c.headDim, c.headDim
		t, out := newOut[T](o, cfg.Batch, cfg.Heads*cfg.HeadDim)
		a.out = out
		attnDecode(a)
		return t, nil
	}
	n := c.batch * l * c.kvHeads * c.headDim
	ks, vs := getScratch(n), getScratch(n)
	defer scratch32.Put(ks)
	defer scratch32.Put(vs)
	widenKV16(c, l, *ks, *vs)
	a.k, a.v = any(*ks).([]T), any(*vs).([]T)
	a.qOff, a.kvBatch, a.l = start, l*c.kvHeads*c.headDim, l
	a.hs, a.ldk = l*c.headDim, c.headDim
	t, out := newOut[T](o, cfg.Batch*cfg.Seq, cfg.Heads*cfg.HeadDim)
	a.out = out
	attnCore(a)
	return t, nil
}

// attnCore computes attention for every (batch, head) pair in parallel.
func attnCore[T float](a attnArgs[T]) {
	if a.tq == 1 {
		attnDecode(a)
		return
	}
	group := a.h / a.kv
	ldq, ldk := a.h*a.d, a.ldk
	parallelFor(a.b*a.h, 1, func(lo, hi int) {
		s := make([]T, min(a.tq, attnBlock)*a.l)
		for bh := lo; bh < hi; bh++ {
			b, h := bh/a.h, bh%a.h
			g := h / group
			qb := a.q[b*a.tq*ldq+h*a.d:]
			kb := a.k[b*a.kvBatch+g*a.hs:]
			vb := a.v[b*a.kvBatch+g*a.hs:]
			ob := a.out[b*a.tq*ldq+h*a.d:]
			// Blocks of query rows; with a causal mask a block only needs
			// the keys up to its last row (the lower triangle).
			for t0 := 0; t0 < a.tq; t0 += attnBlock {
				t1 := min(t0+attnBlock, a.tq)
				n := a.keysFor(t1)
				attnProbs(a, qb, kb, s, t0, t1, n)
				gemmSeq(false, false, t1-t0, a.d, n, 1, s, n, vb, ldk, 0, ob[t0*ldq:], ldq)
			}
		}
	})
}

// attnDecode is attnCore for one query per sequence (a decode step). The
// query heads that share a kv head are computed together,
//
//	S = Q_g·K_gᵀ·scale [group, n],  O_g = softmax(S)·V_g [group, D]
//
// (Q_g: the group's heads, contiguous in the query row), so every cached
// key and value is read once per step instead of once per query head (4
// times for Magma-8B's 32 heads over 8 kv heads). In float32 this is
// attn.c, reading the cache in place (a bfloat16 cache widened as it is
// read, never copied whole); float64 runs two small GEMMs.
func attnDecode[T float](a attnArgs[T]) {
	group := a.h / a.kv
	ldq, ldk := a.h*a.d, a.ldk
	n := a.l
	if a.causal {
		n = min(n, a.qOff+1)
	}
	if a32, ok := any(a).(attnArgs[float32]); ok {
		attnDecode32(a32, group, n)
		return
	}
	// float64 (reference runs and gradient checks): two small GEMMs.
	parallelFor(a.b*a.kv, 1, func(lo, hi int) {
		s := make([]T, group*n)
		for bg := lo; bg < hi; bg++ {
			b, g := bg/a.kv, bg%a.kv
			qb := a.q[b*ldq+g*group*a.d:]
			ob := a.out[b*ldq+g*group*a.d:]
			kb, vb := a.k[b*a.kvBatch+g*a.hs:], a.v[b*a.kvBatch+g*a.hs:]
			gemmSeq(false, true, group, n, a.d, T(a.scale), qb, a.d, kb, ldk, 0, s, n)
			for r := 0; r < group; r++ {
				softmaxRow(s[r*n : (r+1)*n])
			}
			gemmSeq(false, false, group, a.d, n, 1, s, n, vb, ldk, 0, ob, a.d)
		}
	})
}

// attnBlock is the number of query rows per block of the prefill/training
// attention: causal blocks skip the keys after their last row.
const attnBlock = 64

// keysFor is the number of keys that queries [.., t1) can see.
func (a attnArgs[T]) keysFor(t1 int) int {
	if a.causal {
		return min(a.l, a.qOff+t1)
	}
	return a.l
}

// attnProbs fills s [t1-t0, n] (leading dimension n) with the masked softmax
// probabilities of query rows [t0, t1) of one (batch, head) pair over keys
// [0, n).
func attnProbs[T float](a attnArgs[T], qb, kb, s []T, t0, t1, n int) {
	ldq := a.h * a.d
	gemmSeq(false, true, t1-t0, n, a.d, T(a.scale), qb[t0*ldq:], ldq, kb, a.ldk, 0, s, n)
	for t := t0; t < t1; t++ {
		row := s[(t-t0)*n : (t-t0+1)*n]
		m := n
		if a.causal {
			m = min(m, a.qOff+t+1)
		}
		softmaxRow(row[:m])
		clear(row[m:])
	}
}

// softmaxRow replaces row by softmax(row), subtracting the max and summing
// in float64.
func softmaxRow[T float](row []T) {
	if len(row) == 0 {
		return
	}
	if r32, ok := any(row).([]float32); ok {
		softmax32(r32) // vec.c: float32 exp within 1 ulp, float64 sum
		return
	}
	m := math.Inf(-1)
	for _, x := range row {
		m = math.Max(m, float64(x))
	}
	var sum float64
	for i, x := range row {
		e := math.Exp(float64(x) - m)
		sum += e
		row[i] = T(e)
	}
	inv := 1 / sum
	for i := range row {
		row[i] = T(float64(row[i]) * inv)
	}
}

// attnGrads builds dq, dk, dv: one backward op producing the packed
// [B*T, H*D + 2*KV*D] matrix [dq | dk | dv], and three column slices.
func attnGrads(cfg AttentionConfig, in G.Nodes, dy *G.Node) (G.Nodes, error) {
	hd, kvd := cfg.Heads*cfg.HeadDim, cfg.KVHeads*cfg.HeadDim
	op, err := newOp("AttentionGrad", cfg.params(), 2, in[0], in[1], in[2], dy)
	if err != nil {
		return nil, err
	}
	op.shape = func(s []tensor.Shape) (tensor.Shape, error) {
		if err := cfg.check(s[0], s[1], s[2]); err != nil {
			return nil, err
		}
		if !s[3].Eq(s[0]) {
			return nil, shapeErr("AttentionGrad", "dy %v does not match q %v", s[3], s[0])
		}
		return tensor.Shape{s[0][0], hd + 2*kvd}, nil
	}
	op.do = func(in []*tensor.Dense, o *tensor.Dense) (G.Value, error) {
		return dispatch(in[0], func() (G.Value, error) { return attnBackward[float32](cfg, in, o), nil },
			func() (G.Value, error) { return attnBackward[float64](cfg, in, o), nil })
	}
	packed, err := apply(op, in[0], in[1], in[2], dy)
	if err != nil {
		return nil, err
	}
	var r G.Nodes
	for _, part := range [][2]int{{0, hd}, {hd, kvd}, {hd + kvd, kvd}} {
		n, err := colSlice(packed, part[0], part[1])
		if err != nil {
			return nil, err
		}
		r = append(r, n)
	}
	return r, nil
}

func attnBackward[T float](cfg AttentionConfig, in []*tensor.Dense, o *tensor.Dense) *tensor.Dense {
	q, k, v, dy := data[T](in[0]), data[T](in[1]), data[T](in[2]), data[T](in[3])
	B, tq, H, KV, D := cfg.Batch, cfg.Seq, cfg.Heads, cfg.KVHeads, cfg.HeadDim
	hd, kvd := H*D, KV*D
	ld := hd + 2*kvd
	t, out := newOut[T](o, B*tq, ld)
	a := attnArgs[T]{q: q, k: k, v: v, b: B, tq: tq, h: H, kv: KV, d: D, kvBatch: tq * kvd, hs: D, ldk: kvd,
		l: tq, causal: cfg.Causal, scale: 1 / math.Sqrt(float64(D))}
	group := H / KV
	parallelFor(B*KV, 1, func(lo, hi int) {
		bs := min(tq, attnBlock)
		p, dp := make([]T, bs*tq), make([]T, bs*tq)
		for bg := lo; bg < hi; bg++ {
			b, g := bg/KV, bg%KV
			kb, vb := k[b*tq*kvd+g*D:], v[b*tq*kvd+g*D:]
			dkb := out[b*tq*ld+hd+g*D:]
			dvb := out[b*tq*ld+hd+kvd+g*D:]
			for h := g * group; h < (g+1)*group; h++ {
				qb, dob := q[b*tq*hd+h*D:], dy[b*tq*hd+h*D:]
				dqb := out[b*tq*ld+h*D:]
				// Blocks of query rows [t0, t1) against keys [0, n).
				for t0 := 0; t0 < tq; t0 += attnBlock {
					t1 := min(t0+attnBlock, tq)
					r, n := t1-t0, a.keysFor(t1)
					attnProbs(a, qb, kb, p, t0, t1, n)
					// dV[:n] += Pᵀ·dO
					gemmSeq(true, false, n, D, r, 1, p, n, dob[t0*hd:], hd, 1, dvb, ld)
					// dP = dO·Vᵀ
					gemmSeq(false, true, r, n, D, 1, dob[t0*hd:], hd, vb, kvd, 0, dp, n)
					// dS = P ⊙ (dP - rowsum(dP ⊙ P)) · scale
					for i := 0; i < r; i++ {
						pr, dr := p[i*n:(i+1)*n], dp[i*n:(i+1)*n]
						var dot float64
						for j, x := range pr {
							dot += float64(x) * float64(dr[j])
						}
						for j, x := range pr {
							dr[j] = T(float64(x) * (float64(dr[j]) - dot) * a.scale)
						}
					}
					// dQ = dS·K, dK[:n] += dSᵀ·Q
					gemmSeq(false, false, r, D, n, 1, dp, n, kb, kvd, 0, dqb[t0*ld:], ld)
					gemmSeq(true, false, n, D, r, 1, dp, n, qb[t0*hd:], hd, 1, dkb, ld)
				}
			}
		}
	})
	return t
}

// colSlice returns columns [off, off+width) of the matrix x.
func colSlice(x *G.Node, off, width int) (*G.Node, error) {
	op, err := newOp("ColSlice", fmt.Sprintf("off=%d,width=%d", off, width), 2, x)
	if err != nil {
		return nil, err
	}
	op.shape = func(s []tensor.Shape) (tensor.Shape, error) {
		if s[0].Dims() != 2 || off < 0 || width < 0 || off+width > s[0][1] {
			return nil, shapeErr("ColSlice", "columns [%d, %d) out of %v", off, off+width, s[0])
		}
		return tensor.Shape{s[0][0], width}, nil
	}
	op.do = func(in []*tensor.Dense, o *tensor.Dense) (G.Value, error) {
		return dispatch(in[0], func() (G.Value, error) { return colSliceDo[float32](in[0], off, width, o), nil },
			func() (G.Value, error) { return colSliceDo[float64](in[0], off, width, o), nil })
	}
	return apply(op, x)
}

func colSliceDo[T float](x *tensor.Dense, off, width int, o *tensor.Dense) *tensor.Dense {
	src := data[T](x)
	rows, cols := x.Shape()[0], x.Shape()[1]
	t, dst := newOut[T](o, rows, width)
	for r := 0; r < rows; r++ {
		copy(dst[r*width:(r+1)*width], src[r*cols+off:])
	}
	return t
}
