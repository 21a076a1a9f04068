package vision

import (
	"fmt"
	"github.com/magma-go/magma/model/params"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/magma-go/magma/kernels"
)

// The ConvNeXt trunk follows timm's ConvNeXt (conv_mlp=False, the layout of
// Magma's convnextxxlarge tower) on channels-last activations [N*H*W, C]:
//
//	stem:       Conv 4x4/4 (Patchify(4) + Linear) -> LayerNorm2d
//	stage s>=1: LayerNorm2d -> Conv 2x2/2 (Patchify(2) + Linear), then blocks
//	block:      y = DWConv7x7(x) -> LayerNorm -> fc1 -> GELU(erf) -> fc2 -> *gamma
//	            x = x + y
//
// LayerNorm2d normalises over channels at each position, which on a
// channels-last matrix is a row-wise LayerNorm, so every norm here is
// kernels.LayerNorm. The output is the raw last-stage map (stride 32) with no
// head norm, as Magma feeds it to its projector.
//
// Parameter fields carry `weights:"..."` tags: the path segment of the tensor
// (or of a nested struct) in the checkpoint, relative to the trunk
// (`vision_tower.clip_vision_model.trunk.` is added by the caller). Slices of
// structs are indexed ("blocks.0."), and a nil pointer to a struct (stage 0's
// Downsample) means that part does not exist in this architecture.

// WeightBias is a parameter pair {weight, bias} as PyTorch names it for Conv2d,
// Linear and LayerNorm modules.
type WeightBias struct {
	Weight *tensor.Dense `weights:"weight"`
	Bias   *tensor.Dense `weights:"bias"`
}

// Stem is timm's stem: Conv2d(3, C0, 4, stride 4) then LayerNorm2d(C0).
// Tensors: 0.weight [C0,3,4,4], 0.bias [C0], 1.weight [C0], 1.bias [C0].
type Stem struct {
	Conv WeightBias `weights:"0"`
	Norm WeightBias `weights:"1"`
	eps  float64
}

// Downsample opens stages 1..3: LayerNorm2d(Cin) then Conv2d(Cin, Cout, 2,
// stride 2). Tensors: 0.weight/bias [Cin], 1.weight [Cout,Cin,2,2], 1.bias [Cout].
type Downsample struct {
	Norm WeightBias `weights:"0"`
	Conv WeightBias `weights:"1"`
	eps  float64
}

// MLP is the block's pointwise MLP: fc1 [4C, C] and fc2 [C, 4C] (+ biases).
type MLP struct {
	FC1 WeightBias `weights:"fc1"`
	FC2 WeightBias `weights:"fc2"`
}

// Block is one ConvNeXt block (timm ConvNeXtBlock, conv_mlp=False):
// conv_dw [C,1,7,7] (+bias), norm [C], mlp, gamma [C] (layer scale).
type Block struct {
	ConvDW WeightBias    `weights:"conv_dw"`
	Norm   WeightBias    `weights:"norm"`
	MLP    MLP           `weights:"mlp"`
	Gamma  *tensor.Dense `weights:"gamma"`
	eps    float64
}

// Stage is an optional Downsample (nil for stage 0) followed by blocks.
type Stage struct {
	Downsample *Downsample `weights:"downsample"`
	Blocks     []Block     `weights:"blocks"`
}

// ConvNeXt is the vision trunk: stem then four stages.
type ConvNeXt struct {
	Stem   Stem    `weights:"stem"`
	Stages []Stage `weights:"stages"`
	cfg    Config
}

// dwKernel and dwPad are the depthwise convolution size and its "same" padding.
const (
	dwKernel = 7
	dwPad    = 3
	// FeatureStride is the total downsampling of the trunk: 4 (stem) * 2^3.
	FeatureStride = 32
)

func zeros(shape ...int) *tensor.Dense {
	return tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(shape...))
}

func newWB(wShape []int, bLen int) WeightBias {
	return WeightBias{Weight: zeros(wShape...), Bias: zeros(bLen)}
}

// NewConvNeXt resolves cfg and allocates every parameter as float32 zeros in
// PyTorch's shapes, ready to be filled from a checkpoint.
func NewConvNeXt(cfg Config) (*ConvNeXt, error) {
	if err := cfg.Resolve(); err != nil {
		return nil, err
	}
	eps := cfg.NormEps
	d := cfg.Dims
	m := &ConvNeXt{cfg: cfg}
	m.Stem = Stem{Conv: newWB([]int{d[0], 3, 4, 4}, d[0]), Norm: newWB([]int{d[0]}, d[0]), eps: eps}
	m.Stages = make([]Stage, len(cfg.Depths))
	for s, depth := range cfg.Depths {
		c := d[s]
		st := &m.Stages[s]
		if s > 0 {
			st.Downsample = &Downsample{
				Norm: newWB([]int{d[s-1]}, d[s-1]),
				Conv: newWB([]int{c, d[s-1], 2, 2}, c),
				eps:  eps,
			}
		}
		st.Blocks = make([]Block, depth)
		for b := range st.Blocks {
			st.Blocks[b] = Block{
				ConvDW: newWB([]int{c, 1, dwKernel, dwKernel}, c),
				Norm:   newWB([]int{c}, c),
				MLP: MLP{
					FC1: newWB([]int{4 * c, c}, 4*c),
					FC2: newWB([]int{c, 4 * c}, c),
				},
				Gamma: zeros(c),
				eps:   eps,
			}
		}
	}
	return m, nil
}

// Config returns the resolved configuration the trunk was built with.
func (m *ConvNeXt) Config() Config { return m.cfg }

// OutDim is the channel width of the output map (Dims[3]).
func (m *ConvNeXt) OutDim() int { return m.cfg.Dims[len(m.cfg.Dims)-1] }

// NamedTensor is one parameter with its checkpoint name.
type NamedTensor struct {
	Name     string
	Tensor   *tensor.Dense
	Optional bool
}

// Tensors lists every parameter in declaration order, named by the weights
// tags with prefix prepended (e.g. "vision_tower.clip_vision_model.trunk.").
func (m *ConvNeXt) Tensors(prefix string) []NamedTensor {
	ps, _ := params.List(m, prefix)
	out := make([]NamedTensor, len(ps))
	for i, p := range ps {
		out[i] = NamedTensor{Name: p.Name, Tensor: p.T, Optional: p.Optional}
	}
	return out
}

// Names maps each parameter tensor to its checkpoint name, as
// kernels.NewBuilder wants it.
func (m *ConvNeXt) Names(prefix string) map[*tensor.Dense]string { return params.Names(m, prefix) }

// ParamCount is the total number of scalar parameters.
func (m *ConvNeXt) ParamCount() int {
	n, _ := params.Count(m)
	return int(n)
}

// param returns the graph node of a parameter, or an error (instead of the
// Builder's panic) when the tensor was never allocated.
func param(b *kernels.Builder, t *tensor.Dense, what string) (*G.Node, error) {
	if t == nil {
		return nil, fmt.Errorf("parameter %s is nil (model not initialised)", what)
	}
	return b.Param(t), nil
}

// params resolves a WeightBias pair.
func (wb WeightBias) params(b *kernels.Builder, what string) (w, bias *G.Node, err error) {
	if w, err = param(b, wb.Weight, what+".weight"); err != nil {
		return nil, nil, err
	}
	if bias, err = param(b, wb.Bias, what+".bias"); err != nil {
		return nil, nil, err
	}
	return w, bias, nil
}

// Forward applies the stem: a 4x4 stride-4 conv written as Patchify(4)
// (features ordered (c, ky, kx), matching the [C0,3,4,4] weight flattened)
// followed by one GEMM, then a per-position LayerNorm over C0 channels.
// x is [N*H*W, 3]; the result is [N*(H/4)*(W/4), C0].
func (s *Stem) Forward(b *kernels.Builder, x *G.Node, g kernels.Grid) (*G.Node, kernels.Grid, error) {
	cw, cb, err := s.Conv.params(b, "stem.0")
	if err != nil {
		return nil, g, err
	}
	nw, nb, err := s.Norm.params(b, "stem.1")
	if err != nil {
		return nil, g, err
	}
	p, err := kernels.Patchify(x, g, 4)
	if err != nil {
		return nil, g, fmt.Errorf("stem patchify: %w", err)
	}
	y, err := kernels.Linear(p, cw, cb)
	if err != nil {
		return nil, g, fmt.Errorf("stem conv: %w", err)
	}
	g = kernels.Grid{N: g.N, H: g.H / 4, W: g.W / 4}
	if y, err = kernels.LayerNorm(y, nw, nb, s.eps); err != nil {
		return nil, g, fmt.Errorf("stem norm: %w", err)
	}
	return y, g, nil
}

// Forward applies LayerNorm2d over Cin, then the 2x2 stride-2 conv as
// Patchify(2) + Linear: [N*H*W, Cin] -> [N*(H/2)*(W/2), Cout].
func (d *Downsample) Forward(b *kernels.Builder, x *G.Node, g kernels.Grid) (*G.Node, kernels.Grid, error) {
	nw, nb, err := d.Norm.params(b, "downsample.0")
	if err != nil {
		return nil, g, err
	}
	cw, cb, err := d.Conv.params(b, "downsample.1")
	if err != nil {
		return nil, g, err
	}
	y, err := kernels.LayerNorm(x, nw, nb, d.eps)
	if err != nil {
		return nil, g, fmt.Errorf("downsample norm: %w", err)
	}
	if y, err = kernels.Patchify(y, g, 2); err != nil {
		return nil, g, fmt.Errorf("downsample patchify: %w", err)
	}
	if y, err = kernels.Linear(y, cw, cb); err != nil {
		return nil, g, fmt.Errorf("downsample conv: %w", err)
	}
	return y, kernels.Grid{N: g.N, H: g.H / 2, W: g.W / 2}, nil
}

// Forward applies one block, keeping the grid:
//
//	y = gamma ⊙ fc2(GELU(fc1(LN(DWConv7x7(x)))));  out = x + y
//
// The 7x7 depthwise conv (padding 3) mixes space per channel; the MLP mixes
// channels per position; gamma is the per-channel layer scale.
func (bl *Block) Forward(b *kernels.Builder, x *G.Node, g kernels.Grid) (*G.Node, kernels.Grid, error) {
	dw, db, err := bl.ConvDW.params(b, "conv_dw")
	if err != nil {
		return nil, g, err
	}
	nw, nb, err := bl.Norm.params(b, "norm")
	if err != nil {
		return nil, g, err
	}
	w1, b1, err := bl.MLP.FC1.params(b, "mlp.fc1")
	if err != nil {
		return nil, g, err
	}
	w2, b2, err := bl.MLP.FC2.params(b, "mlp.fc2")
	if err != nil {
		return nil, g, err
	}
	gamma, err := param(b, bl.Gamma, "gamma")
	if err != nil {
		return nil, g, err
	}
	y, err := kernels.DepthwiseConv2d(x, dw, db, g, dwPad)
	if err != nil {
		return nil, g, fmt.Errorf("block conv_dw: %w", err)
	}
	if y, err = kernels.LayerNorm(y, nw, nb, bl.eps); err != nil {
		return nil, g, fmt.Errorf("block norm: %w", err)
	}
	if y, err = kernels.Linear(y, w1, b1); err != nil {
		return nil, g, fmt.Errorf("block fc1: %w", err)
	}
	if y, err = kernels.GELU(y); err != nil {
		return nil, g, fmt.Errorf("block gelu: %w", err)
	}
	if y, err = kernels.Linear(y, w2, b2); err != nil {
		return nil, g, fmt.Errorf("block fc2: %w", err)
	}
	if y, err = kernels.ChannelScale(y, gamma); err != nil {
		return nil, g, fmt.Errorf("block gamma: %w", err)
	}
	out, err := G.Add(x, y)
	if err != nil {
		return nil, g, fmt.Errorf("block residual: %w", err)
	}
	return out, g, nil
}

// Forward applies the optional downsample and then every block.
func (st *Stage) Forward(b *kernels.Builder, x *G.Node, g kernels.Grid) (*G.Node, kernels.Grid, error) {
	var err error
	if st.Downsample != nil {
		if x, g, err = st.Downsample.Forward(b, x, g); err != nil {
			return nil, g, err
		}
	}
	for i := range st.Blocks {
		if x, g, err = st.Blocks[i].Forward(b, x, g); err != nil {
			return nil, g, fmt.Errorf("block %d: %w", i, err)
		}
	}
	return x, g, nil
}

// Forward builds the trunk on x, the channels-last pixels [N*H*W, 3] of N
// crops (H and W multiples of 32), and returns the last-stage feature map
// [N*(H/32)*(W/32), Dims[3]] with its grid.
func (m *ConvNeXt) Forward(b *kernels.Builder, x *G.Node, g kernels.Grid) (*G.Node, kernels.Grid, error) {
	if b == nil || x == nil {
		return nil, g, fmt.Errorf("vision: convnext forward: nil builder or input")
	}
	if g.N <= 0 || g.H <= 0 || g.W <= 0 || g.H%FeatureStride != 0 || g.W%FeatureStride != 0 {
		return nil, g, fmt.Errorf("vision: convnext forward: grid %dx%dx%d must be positive with H and W multiples of %d", g.N, g.H, g.W, FeatureStride)
	}
	if want := (tensor.Shape{g.N * g.H * g.W, 3}); !x.Shape().Eq(want) {
		return nil, g, fmt.Errorf("vision: convnext forward: input shape %v, want %v for grid %+v", x.Shape(), want, g)
	}
	if len(m.Stages) == 0 {
		return nil, g, fmt.Errorf("vision: convnext forward: model has no stages (use NewConvNeXt)")
	}
	var err error
	if x, g, err = m.Stem.Forward(b, x, g); err != nil {
		return nil, g, fmt.Errorf("vision: convnext: %w", err)
	}
	for s := range m.Stages {
		if x, g, err = m.Stages[s].Forward(b, x, g); err != nil {
			return nil, g, fmt.Errorf("vision: convnext: stage %d: %w", s, err)
		}
	}
	return x, g, nil
}

// Encode runs the trunk on preprocessed pixels in a fresh graph and returns
// the feature map [crops*h*w, Dims[3]] (a copy owned by the caller) and its
// grid {crops, h, w} with h = Base/32. Parameter nodes are named by their
// trunk-relative checkpoint names.
func (m *ConvNeXt) Encode(px *Pixels) (*tensor.Dense, kernels.Grid, error) {
	switch {
	case px == nil:
		return nil, kernels.Grid{}, fmt.Errorf("vision: encode: nil pixels")
	case px.Base <= 0 || px.Rows <= 0 || px.Cols <= 0:
		return nil, kernels.Grid{}, fmt.Errorf("vision: encode: invalid crop grid %dx%d of %d px", px.Rows, px.Cols, px.Base)
	case len(px.Data) != px.NumCrops()*px.Base*px.Base*3:
		return nil, kernels.Grid{}, fmt.Errorf("vision: encode: %d pixel values, want %d for %dx%d crops of %d px", len(px.Data), px.NumCrops()*px.Base*px.Base*3, px.Rows, px.Cols, px.Base)
	}
	b := kernels.NewBuilder(m.Names(""))
	x := b.Input("pixel_values", px.Tensor())
	out, g, err := m.Forward(b, x, px.Grid())
	if err != nil {
		return nil, g, err
	}
	vals, err := kernels.RunGraph(b.G, fmt.Sprintf("vision encode crops=%d size=%d", px.NumCrops(), px.Base), out)
	if err != nil {
		return nil, g, fmt.Errorf("vision: encode: %w", err)
	}
	v, ok := vals[0].(*tensor.Dense)
	if !ok {
		return nil, g, fmt.Errorf("vision: encode: output value is %T, want *tensor.Dense", vals[0])
	}
	return v, g, nil
}
