package gguf

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/magma-go/magma/llm"
)

// llama.cpp's `llama` architecture: the tensor names, hyperparameter keys
// and Q/K row order its converter (convert_hf_to_gguf.py, LlamaModel)
// writes for a Hugging Face LlamaForCausalLM.

// LlamaTensorName maps a Hugging Face Llama tensor name (relative to the
// LlamaForCausalLM: "model.layers.3.self_attn.q_proj.weight",
// "lm_head.weight") to llama.cpp's ("blk.3.attn_q.weight", "output.weight");
// ok is false for a name llama.cpp's llama has no tensor for.
func LlamaTensorName(hf string) (string, bool) {
	switch hf {
	case "model.embed_tokens.weight":
		return "token_embd.weight", true
	case "model.norm.weight":
		return "output_norm.weight", true
	case "lm_head.weight":
		return "output.weight", true
	}
	rest, ok := strings.CutPrefix(hf, "model.layers.")
	if !ok {
		return "", false
	}
	num, sub, ok := strings.Cut(rest, ".")
	if !ok {
		return "", false
	}
	if n, err := strconv.Atoi(num); err != nil || n < 0 || strconv.Itoa(n) != num {
		return "", false
	}
	names := map[string]string{
		"input_layernorm.weight":          "attn_norm.weight",
		"self_attn.q_proj.weight":         "attn_q.weight",
		"self_attn.k_proj.weight":         "attn_k.weight",
		"self_attn.v_proj.weight":         "attn_v.weight",
		"self_attn.o_proj.weight":         "attn_output.weight",
		"post_attention_layernorm.weight": "ffn_norm.weight",
		"mlp.gate_proj.weight":            "ffn_gate.weight",
		"mlp.up_proj.weight":              "ffn_up.weight",
		"mlp.down_proj.weight":            "ffn_down.weight",
	}
	g, ok := names[sub]
	if !ok {
		return "", false
	}
	return "blk." + num + "." + g, true
}

// LlamaHFNames lists a Llama decoder's Hugging Face tensor names in the
// order llama.cpp's converter writes them: embeddings, each block, final
// norm, head.
func LlamaHFNames(layers int, tied bool) []string {
	names := []string{"model.embed_tokens.weight"}
	for i := 0; i < layers; i++ {
		p := fmt.Sprintf("model.layers.%d.", i)
		names = append(names,
			p+"input_layernorm.weight",
			p+"self_attn.q_proj.weight",
			p+"self_attn.k_proj.weight",
			p+"self_attn.v_proj.weight",
			p+"self_attn.o_proj.weight",
			p+"post_attention_layernorm.weight",
			p+"mlp.gate_proj.weight",
			p+"mlp.up_proj.weight",
			p+"mlp.down_proj.weight",
		)
	}
	names = append(names, "model.norm.weight")
	if !tied {
		names = append(names, "lm_head.weight")
	}
	return names
}

// LlamaQKPermutation returns, for each output row of a q_proj (heads =
// num_attention_heads) or k_proj (heads = num_key_value_heads) weight of
// rows rows, the input row it is taken from. Hugging Face rotates the two
// halves of each head (rotate_half); llama.cpp's `llama` rotates adjacent
// pairs, so its converter reorders each head's rows from [half, pair] to
// [pair, half] order: output row h*hd + 2j + s is input row
// h*hd + s*hd/2 + j (hd = rows/heads, j < hd/2, s in {0, 1}).
func LlamaQKPermutation(rows, heads int) ([]int, error) {
	if heads <= 0 || rows%heads != 0 || (rows/heads)%2 != 0 {
		return nil, fmt.Errorf("gguf: %d rows cannot be split into %d heads of an even size", rows, heads)
	}
	hd := rows / heads
	perm := make([]int, rows)
	for h := 0; h < heads; h++ {
		for j := 0; j < hd/2; j++ {
			for s := 0; s < 2; s++ {
				perm[h*hd+2*j+s] = h*hd + s*hd/2 + j
			}
		}
	}
	return perm, nil
}

// LlamaFileType is general.file_type (llama_ftype) of a file whose weights
// are mostly of type t.
func LlamaFileType(t TensorType) (uint32, error) {
	switch t {
	case TypeF32:
		return 0, nil // LLAMA_FTYPE_ALL_F32
	case TypeF16:
		return 1, nil // MOSTLY_F16
	case TypeQ4_0:
		return 2, nil // MOSTLY_Q4_0
	case TypeQ8_0:
		return 7, nil // MOSTLY_Q8_0
	case TypeQ4_K:
		return 15, nil // MOSTLY_Q4_K_M
	case TypeQ6_K:
		return 18, nil // MOSTLY_Q6_K
	case TypeBF16:
		return 32, nil // MOSTLY_BF16
	}
	return 0, fmt.Errorf("gguf: no llama file type for %v", t)
}

// LlamaHyperparameters returns the llama.* metadata of a text config (the
// keys llama.cpp reads; llama.block_count is the spec's layer count).
func LlamaHyperparameters(c llm.Config) ([]KV, error) {
	if err := c.Resolve(); err != nil {
		return nil, err
	}
	if t := c.RopeScalingType(); t != "" && t != "default" {
		return nil, fmt.Errorf("gguf: rope_scaling %q is not exported (plain RoPE only)", t)
	}
	return []KV{
		{"llama.vocab_size", uint32(c.VocabSize)},
		{"llama.context_length", uint32(c.MaxPositionEmbeddings)},
		{"llama.embedding_length", uint32(c.HiddenSize)},
		{"llama.block_count", uint32(c.NumHiddenLayers)},
		{"llama.feed_forward_length", uint32(c.IntermediateSize)},
		{"llama.rope.dimension_count", uint32(c.HeadDim)},
		{"llama.rope.freq_base", float32(c.RopeTheta)},
		{"llama.attention.head_count", uint32(c.NumAttentionHeads)},
		{"llama.attention.head_count_kv", uint32(c.NumKeyValueHeads)},
		{"llama.attention.layer_norm_rms_epsilon", float32(c.RMSNormEps)},
		{"llama.attention.key_length", uint32(c.HeadDim)},
		{"llama.attention.value_length", uint32(c.HeadDim)},
	}, nil
}
