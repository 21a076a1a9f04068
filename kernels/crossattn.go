package kernels

import (
	"fmt"
	"math"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// CrossAttentionConfig configures CrossAttention.
type CrossAttentionConfig struct {
	Batch      int // independent sequences
	SeqQ, SeqK int // queries and keys per sequence
	Heads      int
	HeadDim    int
}

func (c CrossAttentionConfig) params() string {
	return fmt.Sprintf("B=%d,Tq=%d,Tk=%d,H=%d,D=%d", c.Batch, c.SeqQ, c.SeqK, c.Heads, c.HeadDim)
}

// CrossAttention is unmasked multi-head attention whose keys and values
// come packed side by side, as a PyTorch to_kv projection makes them:
// q [B*Tq, H*D] and kv [B*Tk, 2*H*D] (keys in columns [0, H*D), values in
// [H*D, 2*H*D)) → [B*Tq, H*D]. For batch b, head h and query t:
//
//	s[j] = q[b,t,h]·k[b,j,h]/√D,  p = softmax(s),  out[b,t,h] = Σ_j p[j]·v[b,j,h]
//
// Self-attention is kv = to_kv(x) with Tq = Tk. Softmax sums in float64.
// Forward only (inference): it has no gradient.
func CrossAttention(q, kv *G.Node, cfg CrossAttentionConfig) (*G.Node, error) {
	op, err := newOp("CrossAttention", cfg.params(), 2, q, kv)
	if err != nil {
		return nil, err
	}
	op.shape = func(in []tensor.Shape) (tensor.Shape, error) {
		c := cfg
		if c.Batch <= 0 || c.SeqQ <= 0 || c.SeqK <= 0 || c.Heads <= 0 || c.HeadDim <= 0 {
			return nil, shapeErr("CrossAttention", "bad config %s", c.params())
		}
		hd := c.Heads * c.HeadDim
		if in[0].Dims() != 2 || in[0][0] != c.Batch*c.SeqQ || in[0][1] != hd {
			return nil, shapeErr("CrossAttention", "q must be [B*Tq=%d, H*D=%d], got %v", c.Batch*c.SeqQ, hd, in[0])
		}
		if in[1].Dims() != 2 || in[1][0] != c.Batch*c.SeqK || in[1][1] != 2*hd {
			return nil, shapeErr("CrossAttention", "kv must be [B*Tk=%d, 2*H*D=%d], got %v", c.Batch*c.SeqK, 2*hd, in[1])
		}
		return in[0].Clone(), nil
	}
	op.do = func(in []*tensor.Dense, o *tensor.Dense) (G.Value, error) {
		return dispatch(in[0], func() (G.Value, error) { return crossAttnDo[float32](cfg, in, o), nil },
			func() (G.Value, error) { return crossAttnDo[float64](cfg, in, o), nil })
	}
	op.fullWrite = true
	return apply(op, q, kv)
}

func crossAttnDo[T float](c CrossAttentionConfig, in []*tensor.Dense, o *tensor.Dense) *tensor.Dense {
	q, kv := data[T](in[0]), data[T](in[1])
	hd := c.Heads * c.HeadDim
	t, y := newOut[T](o, c.Batch*c.SeqQ, hd)
	scale := T(1 / math.Sqrt(float64(c.HeadDim)))
	parallelFor(c.Batch*c.Heads, 1, func(lo, hi int) {
		s := make([]T, c.SeqQ*c.SeqK)
		for bh := lo; bh < hi; bh++ {
			b, h := bh/c.Heads, bh%c.Heads
			qb := q[b*c.SeqQ*hd+h*c.HeadDim:]
			kb := kv[b*c.SeqK*2*hd+h*c.HeadDim:]
			vb := kv[b*c.SeqK*2*hd+hd+h*c.HeadDim:]
			// s = q·kᵀ/√D for this head (strided rows, no copies)
			gemmSeq(false, true, c.SeqQ, c.SeqK, c.HeadDim, scale, qb, hd, kb, 2*hd, 0, s, c.SeqK)
			for i := 0; i < c.SeqQ; i++ {
				softmaxRow(s[i*c.SeqK : (i+1)*c.SeqK])
			}
			gemmSeq(false, false, c.SeqQ, c.HeadDim, c.SeqK, 1, s, c.SeqK, vb, 2*hd, 0, y[b*c.SeqQ*hd+h*c.HeadDim:], hd)
		}
	})
	return t
}

// CrossAttention is CrossAttention(q, kv, cfg).
func (b *Builder) CrossAttention(q, kv *G.Node, cfg CrossAttentionConfig) *G.Node {
	return b.do("CrossAttention", false, func() (*G.Node, error) { return CrossAttention(q, kv, cfg) }, q, kv)
}
