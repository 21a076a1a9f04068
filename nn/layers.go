package nn

import (
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/magma-go/magma/kernels"
)

// Linear is a dense layer in PyTorch's layout, weight [out, in, ...] (trailing
// dims flattened: a conv weight after kernels.Patchify) and an optional bias [out]:
//
//	y = x·Wᵀ + b
type Linear struct {
	Weight *tensor.Dense `weights:"weight"`
	Bias   *tensor.Dense `weights:"bias,omitnil,nodecay"` // nil: no bias
	// LoRA, when set, adds a low-rank adapter (see LoRA); it is not part
	// of the checkpoint.
	LoRA *LoRA `weights:"-"`
}

// NewLinear allocates a float32 Linear with weight [out, in...] (zeros) and,
// when bias is true, a bias [out].
func NewLinear(bias bool, out int, in ...int) Linear { return Alloc(Zeros).Linear(bias, out, in...) }

// Linear makes a float32 Linear's tensors with a.
func (a Alloc) Linear(bias bool, out int, in ...int) Linear {
	l := Linear{Weight: a(tensor.Float32, append([]int{out}, in...)...)}
	if bias {
		l.Bias = a(tensor.Float32, out)
	}
	return l
}

// Forward applies the layer (and its adapter) to x [R, in] → [R, out].
func (l *Linear) Forward(b *kernels.Builder, x *G.Node) *G.Node {
	var bias *G.Node
	if l.Bias != nil {
		bias = b.Param(l.Bias)
	}
	y := b.Linear(x, b.Param(l.Weight), bias)
	if l.LoRA == nil {
		return y
	}
	return b.Add(y, l.LoRA.Forward(b.In("lora"), x))
}

// LayerNorm normalises every row over its features, with a learned scale and
// shift:
//
//	y[r, c] = (x[r, c] − mean_c x[r, :]) / sqrt(var_c x[r, :] + eps) · weight[c] + bias[c]
type LayerNorm struct {
	Weight *tensor.Dense `weights:"weight,norm"`
	Bias   *tensor.Dense `weights:"bias,nodecay"`
	Eps    float64       `weights:"-"`
}

// NewLayerNorm allocates a float32 LayerNorm over c features.
func NewLayerNorm(c int, eps float64) LayerNorm { return Alloc(Zeros).LayerNorm(c, eps) }

// LayerNorm makes a float32 LayerNorm's tensors with a.
func (a Alloc) LayerNorm(c int, eps float64) LayerNorm {
	return LayerNorm{Weight: a(tensor.Float32, c), Bias: a(tensor.Float32, c), Eps: eps}
}

// Forward normalises every row of x [R, C].
func (n *LayerNorm) Forward(b *kernels.Builder, x *G.Node) *G.Node {
	return b.LayerNorm(x, b.Param(n.Weight), b.Param(n.Bias), n.Eps)
}

// RMSNorm is Llama's root-mean-square norm with a learned scale:
//
//	y[r, c] = x[r, c] / sqrt(mean_c(x[r, :]²) + eps) · weight[c]
type RMSNorm struct {
	Weight *tensor.Dense `weights:"weight,norm"`
}

// Forward normalises every row of x [R, C].
func (n *RMSNorm) Forward(b *kernels.Builder, x *G.Node, eps float64) *G.Node {
	return b.RMSNorm(x, b.Param(n.Weight), eps)
}

// Embedding is a lookup table [V, D]: row id is the vector of id.
type Embedding struct {
	Weight *tensor.Dense `weights:"weight"`
}

// Forward looks up ids [R] (float-coded, the table's dtype) → [R, D].
func (e *Embedding) Forward(b *kernels.Builder, ids *G.Node) *G.Node {
	return b.Gather(b.Param(e.Weight), ids)
}

// Alloc makes a parameter tensor at construction: Zeros for a model to be
// initialised or trained, kernels.Placeholder for a model about to be bound
// to a checkpoint (no memory until the binding replaces it).
type Alloc func(dt tensor.Dtype, shape ...int) *tensor.Dense

// Zeros allocates a zero tensor of dtype dt.
func Zeros(dt tensor.Dtype, shape ...int) *tensor.Dense {
	return tensor.New(tensor.WithShape(shape...), tensor.Of(dt))
}
