package kernels

import (
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// The ops of this package (and the few Gorgonia ops the models use) as
// Builder methods: each returns nil, and records the error in the Builder,
// instead of returning an error (see Builder). Half (BF16/F16) parameters
// are widened to float32 where an op reads only floats (see Builder.Widen).

// Linear is Linear(x, w, bias) (bias may be nil); a half w is read in
// place, a half bias widened.
func (b *Builder) Linear(x, w, bias *G.Node) *G.Node {
	bias = b.Widen(bias)
	return b.do("Linear", false, func() (*G.Node, error) { return Linear(x, w, bias) }, x, w)
}

// LayerNorm is LayerNorm(x, weight, bias, eps).
func (b *Builder) LayerNorm(x, weight, bias *G.Node, eps float64) *G.Node {
	weight, bias = b.Widen(weight), b.Widen(bias)
	return b.do("LayerNorm", false, func() (*G.Node, error) { return LayerNorm(x, weight, bias, eps) }, x, weight, bias)
}

// RMSNorm is RMSNorm(x, weight, eps).
func (b *Builder) RMSNorm(x, weight *G.Node, eps float64) *G.Node {
	weight = b.Widen(weight)
	return b.do("RMSNorm", false, func() (*G.Node, error) { return RMSNorm(x, weight, eps) }, x, weight)
}

// GELU is GELU(x).
func (b *Builder) GELU(x *G.Node) *G.Node {
	return b.do("GELU", false, func() (*G.Node, error) { return GELU(x) }, x)
}

// SwiGLU is SwiGLU(gate, up).
func (b *Builder) SwiGLU(gate, up *G.Node) *G.Node {
	return b.do("SwiGLU", false, func() (*G.Node, error) { return SwiGLU(gate, up) }, gate, up)
}

// ChannelScale is ChannelScale(x, gamma).
func (b *Builder) ChannelScale(x, gamma *G.Node) *G.Node {
	gamma = b.Widen(gamma)
	return b.do("ChannelScale", false, func() (*G.Node, error) { return ChannelScale(x, gamma) }, x, gamma)
}

// DepthwiseConv2d is DepthwiseConv2d(x, weight, bias, g, pad).
func (b *Builder) DepthwiseConv2d(x, weight, bias *G.Node, g Grid, pad int) *G.Node {
	weight, bias = b.Widen(weight), b.Widen(bias)
	return b.do("DepthwiseConv2d", false, func() (*G.Node, error) { return DepthwiseConv2d(x, weight, bias, g, pad) }, x, weight, bias)
}

// Patchify is Patchify(x, g, k).
func (b *Builder) Patchify(x *G.Node, g Grid, k int) *G.Node {
	return b.do("Patchify", false, func() (*G.Node, error) { return Patchify(x, g, k) }, x)
}

// Rotary is Rotary(x, positions, heads, headDim, theta).
func (b *Builder) Rotary(x, positions *G.Node, heads, headDim int, theta float64) *G.Node {
	return b.do("Rotary", false, func() (*G.Node, error) { return Rotary(x, positions, heads, headDim, theta) }, x, positions)
}

// Attention is Attention(q, k, v, cfg).
func (b *Builder) Attention(q, k, v *G.Node, cfg AttentionConfig) *G.Node {
	return b.do("Attention", false, func() (*G.Node, error) { return Attention(q, k, v, cfg) }, q, k, v)
}

// Gather is Gather(src, idx).
func (b *Builder) Gather(src, idx *G.Node) *G.Node {
	return b.do("Gather", false, func() (*G.Node, error) { return Gather(src, idx) }, src, idx)
}

// CrossEntropy is CrossEntropy(logits, labels, ignoreIndex).
func (b *Builder) CrossEntropy(logits, labels *G.Node, ignoreIndex int) *G.Node {
	return b.do("CrossEntropy", false, func() (*G.Node, error) { return CrossEntropy(logits, labels, ignoreIndex) }, logits, labels)
}

// Add is Gorgonia's elementwise x + y (same shapes: a residual connection).
func (b *Builder) Add(x, y *G.Node) *G.Node {
	x, y = b.Widen(x), b.Widen(y)
	return b.do("add", true, func() (*G.Node, error) { return G.Add(x, y) }, x, y)
}

// Mul is Gorgonia's elementwise (or by-scalar) x · y.
func (b *Builder) Mul(x, y *G.Node) *G.Node {
	x, y = b.Widen(x), b.Widen(y)
	return b.do("mul", true, func() (*G.Node, error) { return G.Mul(x, y) }, x, y)
}

// Concat joins nodes along axis.
func (b *Builder) Concat(axis int, ns ...*G.Node) *G.Node {
	ns = append([]*G.Node(nil), ns...)
	for i := range ns {
		ns[i] = b.Widen(ns[i])
	}
	return b.do("concat", true, func() (*G.Node, error) { return G.Concat(axis, ns...) }, ns...)
}

// Reshape is Gorgonia's Reshape.
func (b *Builder) Reshape(x *G.Node, shape tensor.Shape) *G.Node {
	x = b.Widen(x)
	return b.do("reshape", true, func() (*G.Node, error) { return G.Reshape(x, shape) }, x)
}

// Dropout is Gorgonia's inverted dropout with drop probability p.
func (b *Builder) Dropout(x *G.Node, p float64) *G.Node {
	return b.do("dropout", true, func() (*G.Node, error) { return G.Dropout(x, p) }, x)
}

// Scale multiplies x by the constant s, in x's float type.
func (b *Builder) Scale(x *G.Node, s float64) *G.Node {
	if x == nil || b.err != nil {
		return b.do("scale", true, nil, x)
	}
	var c *G.Node
	if x.Dtype() == tensor.Float64 {
		c = G.NewConstant(s)
	} else {
		c = G.NewConstant(float32(s))
	}
	return b.Mul(x, c)
}
