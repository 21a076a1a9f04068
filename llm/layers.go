package llm

import (
	G "gorgonia.org/gorgonia"

	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/nn"
)

// The layer structs below hold parameters only. Their `weights` tags are path
// segments: the checkpoint name of a tensor is the dot-joined chain of tags
// from the Model down to the field, slices adding their index as a segment
// (see (*Model).Tensors). All activations are 2-D: [rows, features] with
// rows = batch*seq, sequence-major within a batch (see package kernels).
// Linear layers are bias-free nn.Linear; errors are recorded in the Builder.

// Attention is Llama's grouped-query self-attention with rotary embeddings
// (Hugging Face rotate-half convention):
//
//	q = RoPE(x·Wqᵀ), k = RoPE(x·Wkᵀ), v = x·Wvᵀ
//	o_h = softmax(q_h·k_gᵀ/sqrt(hd) + causal mask)·v_g,  g = h / (H/KV)
//	y = concat_h(o_h)·Woᵀ
//
// with RoPE rotating feature pairs (i, i+hd/2) of every head by the angle
// pos·rope_theta^(-2i/hd).
type Attention struct {
	Query  nn.Linear `weights:"q_proj"` // [H*hd, D]
	Key    nn.Linear `weights:"k_proj"` // [KV*hd, D]
	Value  nn.Linear `weights:"v_proj"` // [KV*hd, D]
	Output nn.Linear `weights:"o_proj"` // [D, H*hd]
}

// Attend is the core of attention, softmax(q·kᵀ/sqrt(hd) + mask)·v, on
// q [R, H*hd] and k, v [R, KV*hd] after RoPE: the caller decides which keys a
// row sees (causal within Batch sequences, a KV cache, one cache per row).
type Attend func(b *kernels.Builder, q, k, v *G.Node) *G.Node

// Causal attends causally within each of batch sequences of length seq,
// appending to and reading from cache when it is set.
func Causal(cfg *Config, batch, seq int, cache *kernels.KVCache) Attend {
	return func(b *kernels.Builder, q, k, v *G.Node) *G.Node {
		return b.Attention(q, k, v, kernels.AttentionConfig{
			Batch: batch, Seq: seq,
			Heads: cfg.NumAttentionHeads, KVHeads: cfg.NumKeyValueHeads, HeadDim: cfg.HeadDim,
			Causal: true, Cache: cache,
		})
	}
}

// Forward runs attention over x [R, D] whose rows have the positions
// positions [R] (float-coded).
func (a *Attention) Forward(b *kernels.Builder, x, positions *G.Node, cfg *Config, attend Attend) *G.Node {
	q := a.Query.Forward(b.In("q_proj"), x)
	k := a.Key.Forward(b.In("k_proj"), x)
	v := a.Value.Forward(b.In("v_proj"), x)
	q = b.Rotary(q, positions, cfg.NumAttentionHeads, cfg.HeadDim, cfg.RopeTheta)
	k = b.Rotary(k, positions, cfg.NumKeyValueHeads, cfg.HeadDim, cfg.RopeTheta)
	return a.Output.Forward(b.In("o_proj"), attend(b, q, k, v))
}

// MLP is Llama's SwiGLU feed-forward block:
//
//	y = (silu(x·Wgᵀ) ⊙ (x·Wuᵀ))·Wdᵀ,  silu(z) = z·σ(z)
type MLP struct {
	Gate nn.Linear `weights:"gate_proj"` // [I, D]
	Up   nn.Linear `weights:"up_proj"`   // [I, D]
	Down nn.Linear `weights:"down_proj"` // [D, I]
}

// Forward applies the block to x [R, D] → [R, D].
func (m *MLP) Forward(b *kernels.Builder, x *G.Node) *G.Node {
	return m.Down.Forward(b.In("down_proj"), b.SwiGLU(m.Gate.Forward(b.In("gate_proj"), x), m.Up.Forward(b.In("up_proj"), x)))
}

// Layer is one pre-norm Llama decoder layer:
//
//	h   = x + Attention(RMSNorm_in(x))
//	out = h + MLP(RMSNorm_post(h))
type Layer struct {
	InputNorm     nn.RMSNorm `weights:"input_layernorm"`
	SelfAttention Attention  `weights:"self_attn"`
	PostNorm      nn.RMSNorm `weights:"post_attention_layernorm"`
	MLP           MLP        `weights:"mlp"`
}

// Forward runs the layer on x [R, D] at positions [R].
func (l *Layer) Forward(b *kernels.Builder, x, positions *G.Node, cfg *Config, attend Attend) *G.Node {
	h := b.Add(x, l.SelfAttention.Forward(b.In("self_attn"), l.InputNorm.Forward(b.In("input_layernorm"), x, cfg.RMSNormEps), positions, cfg, attend))
	return b.Add(h, l.MLP.Forward(b.In("mlp"), l.PostNorm.Forward(b.In("post_attention_layernorm"), h, cfg.RMSNormEps)))
}
