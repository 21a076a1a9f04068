package cotracker

import (
	"strconv"

	G "gorgonia.org/gorgonia"

	"github.com/magma-go/magma/kernels"
)

// The layers' forward passes on channels-last activations ([N*H*W, C] for
// images, [rows, features] for tokens), each reading like its formula.

// Forward is the convolution with stride s and padding p.
func (c *Conv) Forward(b *kernels.Builder, x *G.Node, g kernels.Grid, s, p int) (*G.Node, kernels.Grid) {
	k := 1
	if c.Weight != nil && c.Weight.Shape().Dims() == 4 {
		k = c.Weight.Shape()[2]
	}
	y := b.Conv2d(x, b.In("weight").Param(c.Weight), b.In("bias").Param(c.Bias), g, s, p)
	return y, kernels.Grid{N: g.N, H: (g.H+2*p-k)/s + 1, W: (g.W+2*p-k)/s + 1}
}

// Forward is
//
//	y = ReLU(IN(conv2(ReLU(IN(conv1(x))))));  out = ReLU(shortcut(x) + y)
//
// with shortcut = IN(conv1x1/s(x)) for a strided block, x otherwise.
func (r *ResidualBlock) Forward(b *kernels.Builder, x *G.Node, g kernels.Grid) (*G.Node, kernels.Grid) {
	s := max(r.Stride, 1)
	y, gy := r.Conv1.Forward(b.In("conv1"), x, g, s, 1)
	y = b.ReLU(b.InstanceNorm(y, gy, instanceEps))
	y, gy = r.Conv2.Forward(b.In("conv2"), y, gy, 1, 1)
	y = b.ReLU(b.InstanceNorm(y, gy, instanceEps))
	if r.Downsample != nil {
		bd := b.In("downsample", "0")
		var gx kernels.Grid
		x, gx = r.Downsample.Conv.Forward(bd, x, g, s, 0)
		x = bd.InstanceNorm(x, gx, instanceEps)
	}
	return b.ReLU(b.Add(x, y)), gy
}

func layerForward(b *kernels.Builder, blocks []ResidualBlock, x *G.Node, g kernels.Grid) (*G.Node, kernels.Grid) {
	for i := range blocks {
		x, g = blocks[i].Forward(b.In(strconv.Itoa(i)), x, g)
	}
	return x, g
}

// Forward maps frames x [N*H*W, 3] (values in [-1, 1]) to features
// [N*(H/4)*(W/4), 128]:
//
//	a = layer1(ReLU(IN(conv1 7x7/2(x)))), b = layer2(a), c = layer3(b), d = layer4(c)
//	out = conv3(ReLU(IN(conv2(cat(up(a), up(b), up(c), up(d))))))
//
// with up the align-corners bilinear resize to (H/4, W/4).
func (e *Encoder) Forward(b *kernels.Builder, x *G.Node, g kernels.Grid) (*G.Node, kernels.Grid) {
	out := kernels.Grid{N: g.N, H: g.H / Stride, W: g.W / Stride}
	y, gy := e.Conv1.Forward(b.In("conv1"), x, g, 2, 3)
	y = b.ReLU(b.InstanceNorm(y, gy, instanceEps))
	var feats []*G.Node
	for i, layer := range [][]ResidualBlock{e.Layer1, e.Layer2, e.Layer3, e.Layer4} {
		y, gy = layerForward(b.In("layer"+strconv.Itoa(i+1)), layer, y, gy)
		feats = append(feats, b.ResizeBilinear(y, gy, out.H, out.W))
	}
	z, gz := e.Conv2.Forward(b.In("conv2"), b.Concat(1, feats...), out, 1, 1)
	z = b.ReLU(b.InstanceNorm(z, gz, instanceEps))
	z, gz = e.Conv3.Forward(b.In("conv3"), z, gz, 1, 0)
	return z, gz
}

// Forward is fc2(act(fc1(x))) with act the exact GELU or, with tanh, its
// tanh approximation.
func (m *MLP) Forward(b *kernels.Builder, x *G.Node, tanh bool) *G.Node {
	h := m.FC1.Forward(b.In("fc1"), x)
	if tanh {
		h = b.GELUTanh(h)
	} else {
		h = b.GELU(h)
	}
	return m.FC2.Forward(b.In("fc2"), h)
}

// Forward is to_out(MHA(to_q(x), to_kv(ctx))) over cfg's sequences.
func (a *Attention) Forward(b *kernels.Builder, x, ctx *G.Node, cfg kernels.CrossAttentionConfig) *G.Node {
	q := a.ToQ.Forward(b.In("to_q"), x)
	kv := a.ToKV.Forward(b.In("to_kv"), ctx)
	return a.ToOut.Forward(b.In("to_out"), b.CrossAttention(q, kv, cfg))
}

// norms holds the constant scale (ones) and shift (zeros) of the
// affine-free LayerNorms of one graph.
type norms struct{ one, zero *G.Node }

func (n norms) ln(b *kernels.Builder, x *G.Node) *G.Node {
	return b.LayerNorm(x, n.one, n.zero, normEps)
}

// Forward is, over batch sequences of seq tokens,
//
//	x = x + attn(LN(x));  x = x + mlp(LN(x))
func (a *AttnBlock) Forward(b *kernels.Builder, n norms, x *G.Node, batch, seq int) *G.Node {
	h := n.ln(b, x)
	cfg := kernels.CrossAttentionConfig{Batch: batch, SeqQ: seq, SeqK: seq, Heads: Heads, HeadDim: HiddenSize / Heads}
	x = b.Add(x, a.Attn.Forward(b.In("attn"), h, h, cfg))
	return b.Add(x, a.MLP.Forward(b.In("mlp"), n.ln(b, x), true))
}

// Forward is, for batch groups of sq queries x attending to sk context tokens,
//
//	x = x + attn(LN(x), norm_context(ctx));  x = x + mlp(LN(x))
func (c *CrossAttnBlock) Forward(b *kernels.Builder, n norms, x, ctx *G.Node, batch, sq, sk int) *G.Node {
	cn := c.NormContext.Forward(b.In("norm_context"), ctx)
	cfg := kernels.CrossAttentionConfig{Batch: batch, SeqQ: sq, SeqK: sk, Heads: Heads, HeadDim: HiddenSize / Heads}
	x = b.Add(x, c.CrossAttn.Forward(b.In("cross_attn"), n.ln(b, x), cn, cfg))
	return b.Add(x, c.MLP.Forward(b.In("mlp"), n.ln(b, x), true))
}

// formerIndex holds the row permutations of the update transformer for N
// tracks over T frames (float-coded Gather indices).
type formerIndex struct {
	virt    *G.Node // [64*T]: virtual track v of frame t (rows v*T+t) ← row v
	points  *G.Node // [T*N]: (t, n) ← tokens row n*T+t
	virtTV  *G.Node // [T*64]: (t, v) ← tokens row (N+v)*T+t
	back    *G.Node // [(N+64)*T]: tokens row n*T+t ← cat(points, virtTV)
	n, t    int
	virtual *G.Node // the virtual tracks as [64, 384]
}

// Forward maps the track tokens x [N*T, 1110] (track-major: row n*T+t) to
// the updates [T*N, 2] of the coordinates and of (visibility, confidence)
// (frame-major: row t*N+n):
//
//	tok = cat(input_transform(x), virtual tracks repeated over T)
//	3 times: tok = time_block(tok) over each track's T frames, then per frame
//	  virt = space_virtual(v2p(virt, points)); points = p2v(points, virt)
//	flow = flow_head(points), visconf = vis_conf_head(points)
func (u *UpdateFormer) Forward(b *kernels.Builder, n norms, ix formerIndex, x *G.Node) (flow, visconf *G.Node) {
	N, T := ix.n, ix.t
	tok := u.InputTransform.Forward(b.In("input_transform"), x)
	tok = b.Concat(0, tok, b.Gather(ix.virtual, ix.virt))
	var points *G.Node
	for i := range u.TimeBlocks {
		tok = u.TimeBlocks[i].Forward(b.In("time_blocks", strconv.Itoa(i)), n, tok, N+VirtualN, T)
		points = b.Gather(tok, ix.points)
		virt := b.Gather(tok, ix.virtTV)
		virt = u.SpaceVirtual2Point[i].Forward(b.In("space_virtual2point_blocks", strconv.Itoa(i)), n, virt, points, T, VirtualN, N)
		virt = u.SpaceVirtual[i].Forward(b.In("space_virtual_blocks", strconv.Itoa(i)), n, virt, T, VirtualN)
		points = u.SpacePoint2Virtual[i].Forward(b.In("space_point2virtual_blocks", strconv.Itoa(i)), n, points, virt, T, N, VirtualN)
		if i+1 < len(u.TimeBlocks) {
			tok = b.Gather(b.Concat(0, points, virt), ix.back)
		}
	}
	return u.FlowHead.Forward(b.In("flow_head"), points), u.VisConfHead.Forward(b.In("vis_conf_head"), points)
}
