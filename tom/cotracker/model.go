package cotracker

import (
	"fmt"

	"gorgonia.org/tensor"

	"github.com/magma-go/magma/nn"
)

// Architecture constants of CoTracker3 (CoTrackerThreeBase).
const (
	Stride       = 4    // feature map stride of the BasicEncoder
	CorrRadius   = 3    // radius of the correlation windows: 7x7 samples
	CorrLevels   = 4    // levels of the feature pyramid
	LatentDim    = 128  // feature channels
	HiddenSize   = 384  // transformer width
	Heads        = 8    // attention heads (48 channels each)
	VirtualN     = 64   // virtual tracks of the space attention
	InputDim     = 1110 // transformer input: 2 + 4·256 + 84
	corrMLPIn    = 49 * 49
	corrMLPOut   = 256
	normEps      = 1e-6 // the attention blocks' affine-free LayerNorms
	contextEps   = 1e-5 // the cross-attention context LayerNorm (PyTorch default)
	instanceEps  = 1e-5 // InstanceNorm2d's default
	posEncDegree = 10   // posenc degrees [0, 10)
)

// Variant is the published checkpoint a model corresponds to.
type Variant string

const (
	Offline Variant = "offline" // scaled_offline.pth: CoTrackerThreeOffline, window 60
	Online  Variant = "online"  // scaled_online.pth: CoTrackerThreeOnline, window 16
)

// Config is the constructor configuration of CoTrackerThreeBase that the
// published checkpoints fix (stride 4, radius 3, 4 levels) plus what varies.
type Config struct {
	Variant Variant
	// WindowLen is the constructor's window_len: the length of the time
	// embedding (offline: 60, interpolated to the clip length; online: 16,
	// the sliding window).
	WindowLen int
	// Resolution is model_resolution (H, W): the size the predictor resizes
	// frames to and the scale of the relative-motion encoding.
	Resolution [2]int
	// Iters is the number of refinement iterations (the predictors use 6).
	Iters int
}

// DefaultConfig is the configuration of the published checkpoint of a variant.
func DefaultConfig(v Variant) (Config, error) {
	switch v {
	case Offline:
		return Config{Variant: Offline, WindowLen: 60, Resolution: [2]int{384, 512}, Iters: 6}, nil
	case Online:
		return Config{Variant: Online, WindowLen: 16, Resolution: [2]int{384, 512}, Iters: 6}, nil
	}
	return Config{}, fmt.Errorf("cotracker: unknown variant %q (want %q or %q)", v, Offline, Online)
}

// Check refuses a configuration the architecture cannot run.
func (c Config) Check() error {
	switch {
	case c.Variant != Offline && c.Variant != Online:
		return fmt.Errorf("cotracker: unknown variant %q (want %q or %q)", c.Variant, Offline, Online)
	case c.WindowLen < 2:
		return fmt.Errorf("cotracker: window length %d, want at least 2", c.WindowLen)
	case c.Variant == Online && c.WindowLen%2 != 0:
		return fmt.Errorf("cotracker: online window length %d must be even", c.WindowLen)
	case c.Resolution[0] <= 0 || c.Resolution[1] <= 0 || c.Resolution[0]%(Stride<<(CorrLevels-1)) != 0 || c.Resolution[1]%(Stride<<(CorrLevels-1)) != 0:
		return fmt.Errorf("cotracker: model resolution %dx%d must be positive multiples of %d", c.Resolution[0], c.Resolution[1], Stride<<(CorrLevels-1))
	case c.Iters < 1:
		return fmt.Errorf("cotracker: %d iterations, want at least 1", c.Iters)
	}
	return nil
}

// Conv is an nn.Conv2d's weight [Cout, Cin, K, K] and bias [Cout].
type Conv struct {
	Weight *tensor.Dense `weights:"weight"`
	Bias   *tensor.Dense `weights:"bias,nodecay"`
}

// Downsample is a ResidualBlock's strided 1x1 shortcut, nn.Sequential(conv,
// InstanceNorm2d): only the conv has parameters.
type Downsample struct {
	Conv Conv `weights:"0"`
}

// ResidualBlock is the encoder's block with instance norms (no parameters).
type ResidualBlock struct {
	Conv1      Conv        `weights:"conv1"`
	Conv2      Conv        `weights:"conv2"`
	Downsample *Downsample `weights:"downsample"` // nil for stride 1
	Stride     int         `weights:"-"`
}

// Encoder is the BasicEncoder feature CNN (fnet): a 7x7/2 stem, four
// stages of two residual blocks (64, 96, 128, 128 channels, strides 1, 2,
// 2, 2), the four stage outputs resized to 1/4 and concatenated, a 3x3 conv
// and a 1x1 conv to 128 channels.
type Encoder struct {
	Conv1  Conv            `weights:"conv1"`
	Layer1 []ResidualBlock `weights:"layer1"`
	Layer2 []ResidualBlock `weights:"layer2"`
	Layer3 []ResidualBlock `weights:"layer3"`
	Layer4 []ResidualBlock `weights:"layer4"`
	Conv2  Conv            `weights:"conv2"`
	Conv3  Conv            `weights:"conv3"`
}

// MLP is timm's Mlp: fc1, GELU (exact in corr_mlp, tanh in the attention
// blocks), fc2.
type MLP struct {
	FC1 nn.Linear `weights:"fc1"`
	FC2 nn.Linear `weights:"fc2"`
}

// Attention holds the projections of CoTracker's Attention: to_q, the
// packed to_kv (keys then values) and to_out.
type Attention struct {
	ToQ   nn.Linear `weights:"to_q"`
	ToKV  nn.Linear `weights:"to_kv"`
	ToOut nn.Linear `weights:"to_out"`
}

// AttnBlock is a pre-norm self-attention block (affine-free LayerNorms).
type AttnBlock struct {
	Attn Attention `weights:"attn"`
	MLP  MLP       `weights:"mlp"`
}

// CrossAttnBlock is a pre-norm cross-attention block; only the context norm
// is affine.
type CrossAttnBlock struct {
	NormContext nn.LayerNorm `weights:"norm_context"`
	CrossAttn   Attention    `weights:"cross_attn"`
	MLP         MLP          `weights:"mlp"`
}

// UpdateFormer is the EfficientUpdateFormer: input projection, 3 time
// blocks each followed by a space step through 64 virtual tracks, and the
// flow and visibility/confidence heads.
type UpdateFormer struct {
	InputTransform     nn.Linear        `weights:"input_transform"`
	FlowHead           nn.Linear        `weights:"flow_head"`
	VisConfHead        nn.Linear        `weights:"vis_conf_head"`
	VirtualTracks      *tensor.Dense    `weights:"virual_tracks"` // sic, the checkpoint's name
	TimeBlocks         []AttnBlock      `weights:"time_blocks"`
	SpaceVirtual       []AttnBlock      `weights:"space_virtual_blocks"`
	SpacePoint2Virtual []CrossAttnBlock `weights:"space_point2virtual_blocks"`
	SpaceVirtual2Point []CrossAttnBlock `weights:"space_virtual2point_blocks"`
}

// Model is CoTracker3 (offline or online) with the official state-dict
// names (fnet.*, updateformer.*, corr_mlp.*). The time_emb buffer is not a
// parameter: it is recomputed from the configuration.
type Model struct {
	FNet         Encoder      `weights:"fnet"`
	UpdateFormer UpdateFormer `weights:"updateformer"`
	CorrMLP      MLP          `weights:"corr_mlp"`

	cfg Config
}

// Config is the model's configuration.
func (m *Model) Config() Config { return m.cfg }

// New allocates a model with float32 zero parameters in the official shapes.
func New(cfg Config) (*Model, error) { return NewWith(cfg, nn.Zeros) }

// NewWith is New with the parameter tensors made by alloc.
func NewWith(cfg Config, alloc nn.Alloc) (*Model, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	conv := func(cout, cin, k int) Conv {
		return Conv{Weight: alloc(tensor.Float32, cout, cin, k, k), Bias: alloc(tensor.Float32, cout)}
	}
	layer := func(cin, c, stride int) []ResidualBlock {
		b0 := ResidualBlock{Conv1: conv(c, cin, 3), Conv2: conv(c, c, 3), Stride: stride}
		if stride != 1 {
			b0.Downsample = &Downsample{Conv: conv(c, cin, 1)}
		}
		return []ResidualBlock{b0, {Conv1: conv(c, c, 3), Conv2: conv(c, c, 3), Stride: 1}}
	}
	const out = LatentDim
	m := &Model{cfg: cfg}
	m.FNet = Encoder{
		Conv1:  conv(out/2, 3, 7),
		Layer1: layer(out/2, out/2, 1),
		Layer2: layer(out/2, out/4*3, 2),
		Layer3: layer(out/4*3, out, 2),
		Layer4: layer(out, out, 2),
		Conv2:  conv(2*out, 3*out+out/4, 3),
		Conv3:  conv(out, 2*out, 1),
	}
	mlp := func(in, hidden, o int) MLP {
		return MLP{FC1: alloc.Linear(true, hidden, in), FC2: alloc.Linear(true, o, hidden)}
	}
	attn := func() Attention {
		return Attention{ToQ: alloc.Linear(true, HiddenSize, HiddenSize), ToKV: alloc.Linear(true, 2*HiddenSize, HiddenSize), ToOut: alloc.Linear(true, HiddenSize, HiddenSize)}
	}
	u := &m.UpdateFormer
	u.InputTransform = alloc.Linear(true, HiddenSize, InputDim)
	u.FlowHead = alloc.Linear(true, 2, HiddenSize)
	u.VisConfHead = alloc.Linear(true, 2, HiddenSize)
	u.VirtualTracks = alloc(tensor.Float32, 1, VirtualN, 1, HiddenSize)
	for i := 0; i < 3; i++ {
		u.TimeBlocks = append(u.TimeBlocks, AttnBlock{Attn: attn(), MLP: mlp(HiddenSize, 4*HiddenSize, HiddenSize)})
		u.SpaceVirtual = append(u.SpaceVirtual, AttnBlock{Attn: attn(), MLP: mlp(HiddenSize, 4*HiddenSize, HiddenSize)})
		for _, dst := range []*[]CrossAttnBlock{&u.SpacePoint2Virtual, &u.SpaceVirtual2Point} {
			*dst = append(*dst, CrossAttnBlock{NormContext: alloc.LayerNorm(HiddenSize, contextEps), CrossAttn: attn(), MLP: mlp(HiddenSize, 4*HiddenSize, HiddenSize)})
		}
	}
	m.CorrMLP = mlp(corrMLPIn, HiddenSize, corrMLPOut)
	return m, nil
}

// Params lists the model's parameters with their official names.
func (m *Model) Params() ([]nn.Param, error) { return nn.Parameters(m, "") }

// SetDtype converts every parameter to dt (tensor.Float32 or
// tensor.Float64); the graph computes in the parameters' dtype.
func (m *Model) SetDtype(dt tensor.Dtype) error {
	if dt != tensor.Float32 && dt != tensor.Float64 {
		return fmt.Errorf("cotracker: dtype %v, want float32 or float64", dt)
	}
	ps, err := m.Params()
	if err != nil {
		return err
	}
	for i := range ps {
		p := &ps[i]
		if p.T.Dtype() == dt {
			continue
		}
		vals, err := nn.Float64s(p.T)
		if err != nil {
			return fmt.Errorf("cotracker: tensor %q: %w", p.Name, err)
		}
		if err := p.Set(denseOf(dt, vals, p.T.Shape()...)); err != nil {
			return err
		}
	}
	return nil
}

// Dtype is the dtype of the parameters (and of the computation).
func (m *Model) Dtype() tensor.Dtype {
	if m.CorrMLP.FC1.Weight == nil {
		return tensor.Float32
	}
	return m.CorrMLP.FC1.Weight.Dtype()
}

// denseOf makes a tensor of dtype dt (float32 or float64) from values.
func denseOf(dt tensor.Dtype, v []float64, shape ...int) *tensor.Dense {
	if dt == tensor.Float64 {
		return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(append([]float64(nil), v...)))
	}
	b := make([]float32, len(v))
	for i, x := range v {
		b[i] = float32(x)
	}
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(b))
}
