// Package llm is the Llama-3 text decoder of Magma as Gorgonia graphs:
// token embedding, pre-norm decoder layers (RMSNorm, grouped-query attention
// with Hugging Face rotary embeddings, SwiGLU MLP), final norm and an untied
// lm_head, plus KV-cached generation and sampling.
//
// Parameters live in host tensors (*tensor.Dense, PyTorch layouts) held by
// small structs whose `weights` tags spell the Hugging Face checkpoint names;
// graphs are built on demand through a kernels.Builder, so a prefill graph, a
// decode graph and a training graph share one set of weights.
package llm

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/nn"
)

// Model is the Llama decoder. Tensor names relative to the Magma prefix
// "language_model." are model.embed_tokens.weight [V, D],
// model.layers.{i}.{input_layernorm,post_attention_layernorm}.weight [D],
// model.layers.{i}.self_attn.{q,k,v,o}_proj.weight ([H*hd, D], [KV*hd, D],
// [KV*hd, D], [D, H*hd]), model.layers.{i}.mlp.{gate,up,down}_proj.weight
// ([I, D], [I, D], [D, I]), model.norm.weight [D] and lm_head.weight [V, D].
type Model struct {
	Config  Config    // resolved configuration
	Decoder Decoder   `weights:"model"`   // Hugging Face's LlamaModel: embeddings, layers, final norm
	LMHead  nn.Linear `weights:"lm_head"` // [V, D]
	// Kernels are the options the executors of the model's generators and
	// batch decoders run with (--compute bf16; the tests' NaN-poison mode).
	Kernels kernels.Options

	dtype tensor.Dtype
}

// Decoder is the body of the model (Hugging Face's LlamaModel).
type Decoder struct {
	EmbedTokens nn.Embedding `weights:"embed_tokens"`
	Layers      []Layer      `weights:"layers"`
	Norm        nn.RMSNorm   `weights:"norm"`
}

// ForwardOptions describes one decoder graph.
type ForwardOptions struct {
	Batch, Seq int // rows of the input are Batch*Seq, sequence-major within a batch
	// Caches, when set, holds one KV cache per layer (len == num_hidden_layers):
	// each layer appends its keys and values and attends to the whole cache.
	Caches []*kernels.KVCache
}

// New resolves cfg and allocates every parameter tensor with its Hugging Face
// shape, filled with zeros. The element type is float32 unless dtype names
// another (tensor.Float64 is used by gradient checks; kernels.BFloat16 or
// Float16 keep the weights 16-bit, the graphs computing in float32).
func New(cfg Config, dtype ...tensor.Dtype) (*Model, error) {
	dt := tensor.Float32
	if len(dtype) > 1 {
		return nil, fmt.Errorf("llm.New: at most one dtype, got %d", len(dtype))
	}
	if len(dtype) == 1 {
		dt = dtype[0]
	}
	return NewWith(cfg, dt, nn.Zeros)
}

// NewWith is New with the parameter tensors of dtype dt made by alloc
// (kernels.Placeholder for a model about to be bound to a checkpoint).
func NewWith(cfg Config, dt tensor.Dtype, alloc nn.Alloc) (*Model, error) {
	if err := cfg.Resolve(); err != nil {
		return nil, err
	}
	if dt != tensor.Float32 && dt != tensor.Float64 && !kernels.IsHalf(dt) {
		return nil, fmt.Errorf("llm.New: unsupported dtype %v (want Float32, Float64, BF16 or F16)", dt)
	}
	const maxElems = 1 << 40
	d, v, i := cfg.HiddenSize, cfg.VocabSize, cfg.IntermediateSize
	qd, kvd := cfg.NumAttentionHeads*cfg.HeadDim, cfg.NumKeyValueHeads*cfg.HeadDim
	for _, n := range []int{v, i, qd, kvd} {
		if n > maxElems/d {
			return nil, fmt.Errorf("llm.New: config sizes too large (hidden %d × %d elements)", d, n)
		}
	}
	m := &Model{Config: cfg, dtype: dt}
	m.Decoder.EmbedTokens.Weight = alloc(dt, v, d)
	m.Decoder.Layers = make([]Layer, cfg.NumHiddenLayers)
	for l := range m.Decoder.Layers {
		L := &m.Decoder.Layers[l]
		L.InputNorm.Weight = alloc(dt, d)
		L.SelfAttention.Query.Weight = alloc(dt, qd, d)
		L.SelfAttention.Key.Weight = alloc(dt, kvd, d)
		L.SelfAttention.Value.Weight = alloc(dt, kvd, d)
		L.SelfAttention.Output.Weight = alloc(dt, d, qd)
		L.PostNorm.Weight = alloc(dt, d)
		L.MLP.Gate.Weight = alloc(dt, i, d)
		L.MLP.Up.Weight = alloc(dt, i, d)
		L.MLP.Down.Weight = alloc(dt, d, i)
	}
	m.Decoder.Norm.Weight = alloc(dt, d)
	m.LMHead.Weight = alloc(dt, v, d)
	return m, nil
}

// Dtype is the float type the model's graphs compute in: the element type
// of the parameters, float32 for 16-bit (BF16/F16) parameters. It is read
// off the embedding table, so a model whose tensors were replaced (e.g.
// converted to float64 for a gradient check, or to bf16) reports the truth.
func (m *Model) Dtype() tensor.Dtype {
	if w := m.Decoder.EmbedTokens.Weight; w != nil {
		return kernels.ComputeDtype(w.Dtype())
	}
	if m.dtype == (tensor.Dtype{}) {
		return tensor.Float32
	}
	return kernels.ComputeDtype(m.dtype)
}

// InitRandom fills the model with random weights for tests, demos and
// benchmarks: embeddings and linear weights ~ N(0, std²), norm weights
// 1 + N(0, (std·normJitter)²). The values depend only on seed.
func (m *Model) InitRandom(seed uint64, std, normJitter float64) {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	ps, _ := nn.Parameters(m, "")
	slices.SortFunc(ps, func(a, b nn.Param) int { return strings.Compare(a.Name, b.Name) })
	for _, p := range ps {
		t, isNorm := p.T, p.Norm
		fill(t, func() float64 {
			if isNorm {
				return 1 + r.NormFloat64()*std*normJitter
			}
			return r.NormFloat64() * std
		})
	}
}

func fill(t *tensor.Dense, f func() float64) {
	switch d := t.Data().(type) {
	case []float32:
		for i := range d {
			d[i] = float32(f())
		}
	case []float64:
		for i := range d {
			d[i] = f()
		}
	}
}

// Embed looks up token embeddings: ids [R] (float-coded token ids, the
// model's dtype) → embed_tokens[ids] [R, D].
func (m *Model) Embed(b *kernels.Builder, ids *G.Node) *G.Node {
	if ids != nil && ids.Shape().Dims() != 1 {
		b.Failf("llm: Embed wants ids of shape [R], got %v", ids.Shape())
	}
	return m.Decoder.EmbedTokens.Forward(b.In("model", "embed_tokens"), ids)
}

// Forward runs the decoder layers and the final norm on input embeddings
// x [B*T, D] at positions [B*T] (float-coded, same dtype):
//
//	h_0 = x
//	h_{l+1} = Layer_l(h_l)      (see Layer)
//	out = RMSNorm_final(h_L)   [B*T, D]
func (m *Model) Forward(b *kernels.Builder, x, positions *G.Node, opt ForwardOptions) *G.Node {
	if err := m.checkForward(x, positions, opt); err != nil {
		b.Fail(err)
		return nil
	}
	cfg := &m.Config
	h := x
	for i := range m.Decoder.Layers {
		var cache *kernels.KVCache
		if len(opt.Caches) != 0 {
			cache = opt.Caches[i]
		}
		h = m.Decoder.Layers[i].Forward(b.In("model", "layers", strconv.Itoa(i)), h, positions, cfg, Causal(cfg, opt.Batch, opt.Seq, cache))
	}
	return m.Decoder.Norm.Forward(b.In("model", "norm"), h, cfg.RMSNormEps)
}

// checkForward validates the inputs of Forward.
func (m *Model) checkForward(x, positions *G.Node, opt ForwardOptions) error {
	cfg := &m.Config
	if opt.Batch <= 0 || opt.Seq <= 0 {
		return fmt.Errorf("llm: Forward needs positive Batch and Seq, got %d and %d", opt.Batch, opt.Seq)
	}
	rows := opt.Batch * opt.Seq
	if x == nil || !x.Shape().Eq(tensor.Shape{rows, cfg.HiddenSize}) {
		return fmt.Errorf("llm: Forward input must be [%d, %d] (batch %d × seq %d, hidden %d), got %v",
			rows, cfg.HiddenSize, opt.Batch, opt.Seq, cfg.HiddenSize, shapeOf(x))
	}
	if positions == nil || !positions.Shape().Eq(tensor.Shape{rows}) {
		return fmt.Errorf("llm: Forward positions must be [%d], got %v", rows, shapeOf(positions))
	}
	if x.Dtype() != m.Dtype() || positions.Dtype() != m.Dtype() {
		return fmt.Errorf("llm: Forward input dtype %v and positions dtype %v must equal the model's %v",
			x.Dtype(), positions.Dtype(), m.Dtype())
	}
	if len(opt.Caches) != 0 && len(opt.Caches) != len(m.Decoder.Layers) {
		return fmt.Errorf("llm: Forward got %d KV caches for %d layers", len(opt.Caches), len(m.Decoder.Layers))
	}
	for i, c := range opt.Caches {
		if c == nil {
			return fmt.Errorf("llm: KV cache of layer %d is nil", i)
		}
	}
	return nil
}

// Logits projects hidden states [R, D] to vocabulary scores [R, V] with the
// untied lm_head: logits = hidden·W_lmᵀ.
func (m *Model) Logits(b *kernels.Builder, hidden *G.Node) *G.Node {
	if hidden != nil && (hidden.Shape().Dims() != 2 || hidden.Shape()[1] != m.Config.HiddenSize) {
		b.Failf("llm: Logits wants hidden [R, %d], got %v", m.Config.HiddenSize, hidden.Shape())
	}
	return m.LMHead.Forward(b.In("lm_head"), hidden)
}

// CheckShapes verifies that every parameter tensor is present and has its
// Hugging Face shape (useful after a loader replaced the tensors).
func (m *Model) CheckShapes(prefix string) error {
	ref, err := New(m.Config, m.Dtype())
	if err != nil {
		return err
	}
	want, got := paramMap(ref, prefix), paramMap(m, prefix)
	for _, k := range sortedKeys(want) {
		g := got[k]
		if g == nil {
			return fmt.Errorf("llm: tensor %s is missing", k)
		}
		if !g.Shape().Eq(want[k].Shape()) {
			return fmt.Errorf("llm: tensor %s has shape %v, config wants %v", k, g.Shape(), want[k].Shape())
		}
		if kernels.ComputeDtype(g.Dtype()) != m.Dtype() {
			return fmt.Errorf("llm: tensor %s has dtype %v, model computes in %v", k, g.Dtype(), m.Dtype())
		}
	}
	return nil
}

func sortedKeys(m map[string]*tensor.Dense) []string {
	return slices.Sorted(maps.Keys(m))
}

func shapeOf(n *G.Node) any {
	if n == nil {
		return "nil"
	}
	return n.Shape()
}

// paramMap maps the parameter names under root to their tensors.
func paramMap(root any, prefix string) map[string]*tensor.Dense {
	ps, _ := nn.Parameters(root, prefix)
	out := make(map[string]*tensor.Dense, len(ps))
	for _, p := range ps {
		out[p.Name] = p.T
	}
	return out
}
