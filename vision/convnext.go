package vision

import (
	"fmt"
	"github.com/magma-go/magma/vision/imaging"
	"strconv"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/nn"
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

// Stem is timm's stem: Conv2d(3, C0, 4, stride 4) then LayerNorm2d(C0).
// Tensors: 0.weight [C0,3,4,4], 0.bias [C0], 1.weight [C0], 1.bias [C0].
type Stem struct {
	Conv nn.Linear    `weights:"0"` // a 4x4/4 conv is a Linear on 4x4 patches
	Norm nn.LayerNorm `weights:"1"`
}

// Downsample opens stages 1..3: LayerNorm2d(Cin) then Conv2d(Cin, Cout, 2,
// stride 2). Tensors: 0.weight/bias [Cin], 1.weight [Cout,Cin,2,2], 1.bias [Cout].
type Downsample struct {
	Norm nn.LayerNorm `weights:"0"`
	Conv nn.Linear    `weights:"1"` // a 2x2/2 conv is a Linear on 2x2 patches
}

// DepthwiseConv is the block's 7x7 depthwise convolution: weight [C,1,7,7],
// bias [C], "same" padding.
type DepthwiseConv struct {
	Weight *tensor.Dense `weights:"weight"`
	Bias   *tensor.Dense `weights:"bias,nodecay"`
}

// MLP is the block's pointwise MLP: fc1 [4C, C] and fc2 [C, 4C] (+ biases).
type MLP struct {
	FC1 nn.Linear `weights:"fc1"`
	FC2 nn.Linear `weights:"fc2"`
}

// Block is one ConvNeXt block (timm ConvNeXtBlock, conv_mlp=False):
// conv_dw [C,1,7,7] (+bias), norm [C], mlp, gamma [C] (layer scale).
type Block struct {
	ConvDW DepthwiseConv `weights:"conv_dw"`
	Norm   nn.LayerNorm  `weights:"norm"`
	MLP    MLP           `weights:"mlp"`
	Gamma  *tensor.Dense `weights:"gamma,nodecay"`
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
	// Kernels are the options Encode's executor runs with (the tests'
	// NaN-poison mode).
	Kernels kernels.Options
	cfg     Config
}

// dwKernel and dwPad are the depthwise convolution size and its "same" padding.
const (
	dwKernel = 7
	dwPad    = 3
	// FeatureStride is the total downsampling of the trunk: 4 (stem) * 2^3.
	FeatureStride = 32
)

// NewConvNeXt resolves cfg and allocates every parameter as float32 zeros in
// PyTorch's shapes, ready to be filled from a checkpoint.
func NewConvNeXt(cfg Config) (*ConvNeXt, error) { return NewConvNeXtWith(cfg, nn.Zeros) }

// NewConvNeXtWith is NewConvNeXt with the parameter tensors made by alloc
// (kernels.Placeholder for a trunk about to be bound to a checkpoint).
func NewConvNeXtWith(cfg Config, alloc nn.Alloc) (*ConvNeXt, error) {
	if err := cfg.Resolve(); err != nil {
		return nil, err
	}
	eps := cfg.NormEps
	d := cfg.Dims
	m := &ConvNeXt{cfg: cfg}
	m.Stem = Stem{Conv: alloc.Linear(true, d[0], 3, 4, 4), Norm: alloc.LayerNorm(d[0], eps)}
	m.Stages = make([]Stage, len(cfg.Depths))
	for s, depth := range cfg.Depths {
		c := d[s]
		st := &m.Stages[s]
		if s > 0 {
			st.Downsample = &Downsample{
				Norm: alloc.LayerNorm(d[s-1], eps),
				Conv: alloc.Linear(true, c, d[s-1], 2, 2),
			}
		}
		st.Blocks = make([]Block, depth)
		for b := range st.Blocks {
			st.Blocks[b] = Block{
				ConvDW: DepthwiseConv{Weight: alloc(tensor.Float32, c, 1, dwKernel, dwKernel), Bias: alloc(tensor.Float32, c)},
				Norm:   alloc.LayerNorm(c, eps),
				MLP:    MLP{FC1: alloc.Linear(true, 4*c, c), FC2: alloc.Linear(true, c, 4*c)},
				Gamma:  alloc(tensor.Float32, c),
			}
		}
	}
	return m, nil
}

// Config returns the resolved configuration the trunk was built with.
func (m *ConvNeXt) Config() Config { return m.cfg }

// OutDim is the channel width of the output map (Dims[3]).
func (m *ConvNeXt) OutDim() int { return m.cfg.Dims[len(m.cfg.Dims)-1] }

// Forward applies the stem: a 4x4 stride-4 conv written as Patchify(4)
// (features ordered (c, ky, kx), matching the [C0,3,4,4] weight flattened)
// followed by one GEMM, then a per-position LayerNorm over C0 channels.
// x is [N*H*W, 3]; the result is [N*(H/4)*(W/4), C0].
func (s *Stem) Forward(b *kernels.Builder, x *G.Node, g kernels.Grid) (*G.Node, kernels.Grid) {
	y := s.Conv.Forward(b.In("0"), b.Patchify(x, g, 4))
	return s.Norm.Forward(b.In("1"), y), kernels.Grid{N: g.N, H: g.H / 4, W: g.W / 4}
}

// Forward applies LayerNorm2d over Cin, then the 2x2 stride-2 conv as
// Patchify(2) + Linear: [N*H*W, Cin] -> [N*(H/2)*(W/2), Cout].
func (d *Downsample) Forward(b *kernels.Builder, x *G.Node, g kernels.Grid) (*G.Node, kernels.Grid) {
	y := d.Norm.Forward(b.In("0"), x)
	y = d.Conv.Forward(b.In("1"), b.Patchify(y, g, 2))
	return y, kernels.Grid{N: g.N, H: g.H / 2, W: g.W / 2}
}

// Forward is the depthwise convolution on the grid g, padding dwPad.
func (c *DepthwiseConv) Forward(b *kernels.Builder, x *G.Node, g kernels.Grid) *G.Node {
	return b.DepthwiseConv2d(x, b.Param(c.Weight), b.Param(c.Bias), g, dwPad)
}

// Forward is fc2(GELU(fc1(x))).
func (m *MLP) Forward(b *kernels.Builder, x *G.Node) *G.Node {
	return m.FC2.Forward(b.In("fc2"), b.GELU(m.FC1.Forward(b.In("fc1"), x)))
}

// Forward applies one block, keeping the grid:
//
//	y = gamma ⊙ fc2(GELU(fc1(LN(DWConv7x7(x)))));  out = x + y
//
// The 7x7 depthwise conv (padding 3) mixes space per channel; the MLP mixes
// channels per position; gamma is the per-channel layer scale.
func (bl *Block) Forward(b *kernels.Builder, x *G.Node, g kernels.Grid) *G.Node {
	y := bl.ConvDW.Forward(b.In("conv_dw"), x, g)
	y = bl.Norm.Forward(b.In("norm"), y)
	y = bl.MLP.Forward(b.In("mlp"), y)
	y = b.ChannelScale(y, b.In("gamma").Param(bl.Gamma))
	return b.Add(x, y)
}

// Forward applies the optional downsample and then every block.
func (st *Stage) Forward(b *kernels.Builder, x *G.Node, g kernels.Grid) (*G.Node, kernels.Grid) {
	if st.Downsample != nil {
		x, g = st.Downsample.Forward(b.In("downsample"), x, g)
	}
	for i := range st.Blocks {
		x = st.Blocks[i].Forward(b.In("blocks", strconv.Itoa(i)), x, g)
	}
	return x, g
}

// Forward builds the trunk on x, the channels-last pixels [N*H*W, 3] of N
// crops (H and W multiples of FeatureStride), and returns the last-stage
// feature map [N*(H/32)*(W/32), Dims[3]] with its grid. Errors are recorded
// in b (see kernels.Builder).
func (m *ConvNeXt) Forward(b *kernels.Builder, x *G.Node, g kernels.Grid) (*G.Node, kernels.Grid) {
	switch {
	case b.Err() != nil:
		return nil, g
	case x == nil:
		b.Failf("convnext: nil input")
		return nil, g
	case g.N <= 0 || g.H <= 0 || g.W <= 0 || g.H%FeatureStride != 0 || g.W%FeatureStride != 0:
		b.Failf("convnext: grid %dx%dx%d must be positive with H and W multiples of %d", g.N, g.H, g.W, FeatureStride)
		return nil, g
	case !x.Shape().Eq(tensor.Shape{g.N * g.H * g.W, 3}):
		b.Failf("convnext: input shape %v, want %v for grid %+v", x.Shape(), tensor.Shape{g.N * g.H * g.W, 3}, g)
		return nil, g
	case len(m.Stages) == 0:
		b.Failf("convnext: model has no stages (use NewConvNeXt)")
		return nil, g
	}
	x, g = m.Stem.Forward(b.In("stem"), x, g)
	for s := range m.Stages {
		x, g = m.Stages[s].Forward(b.In("stages", strconv.Itoa(s)), x, g)
	}
	return x, g
}

// Encode runs the trunk on preprocessed pixels in a fresh graph and returns
// the feature map [crops*h*w, Dims[3]] (a copy owned by the caller) and its
// grid {crops, h, w} with h = Base/32. Parameter nodes are named by their
// trunk-relative checkpoint names.
func (m *ConvNeXt) Encode(px *imaging.Pixels) (*tensor.Dense, kernels.Grid, error) {
	switch {
	case px == nil:
		return nil, kernels.Grid{}, fmt.Errorf("vision: encode: nil pixels")
	case px.Base <= 0 || px.Rows <= 0 || px.Cols <= 0:
		return nil, kernels.Grid{}, fmt.Errorf("vision: encode: invalid crop grid %dx%d of %d px", px.Rows, px.Cols, px.Base)
	case len(px.Data) != px.NumCrops()*px.Base*px.Base*3:
		return nil, kernels.Grid{}, fmt.Errorf("vision: encode: %d pixel values, want %d for %dx%d crops of %d px", len(px.Data), px.NumCrops()*px.Base*px.Base*3, px.Rows, px.Cols, px.Base)
	}
	b := kernels.NewBuilder(nn.ParamNames(m, ""))
	x := b.Input("pixel_values", PixelTensor(px))
	out, g := m.Forward(b, x, CropGrid(px))
	if err := b.Err(); err != nil {
		return nil, g, fmt.Errorf("vision: encode: %w", err)
	}
	vals, err := kernels.RunGraphWith(m.Kernels, b.G, fmt.Sprintf("vision encode crops=%d size=%d", px.NumCrops(), px.Base), out)
	if err != nil {
		return nil, g, fmt.Errorf("vision: encode: %w", err)
	}
	v, ok := vals[0].(*tensor.Dense)
	if !ok {
		return nil, g, fmt.Errorf("vision: encode: output value is %T, want *tensor.Dense", vals[0])
	}
	return v, g, nil
}

// CropGrid is the spatial layout of preprocessed pixels for the kernels: N
// crops of Base x Base.
func CropGrid(p *imaging.Pixels) kernels.Grid {
	return kernels.Grid{N: p.NumCrops(), H: p.Base, W: p.Base}
}

// PixelTensor wraps the pixels (no copy) as the trunk's [crops*Base*Base, 3]
// float32 input.
func PixelTensor(p *imaging.Pixels) *tensor.Dense {
	return tensor.New(tensor.WithShape(p.NumCrops()*p.Base*p.Base, 3), tensor.WithBacking(p.Data))
}
