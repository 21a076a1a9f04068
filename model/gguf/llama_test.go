package gguf

import (
	"math"
	"math/rand"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/llm"
	"github.com/magma-go/magma/llm/tokenizer"
	"github.com/magma-go/magma/model/ckpt"
)

// permuteBySwap is the converter's permute written as its reshape:
// view the rows as [heads, 2, hd/2] (row-major strides), swap axes 1 and 2
// and read the result back in row-major order.
func permuteBySwap(rows, heads int) []int {
	hd := rows / heads
	dims := [3]int{heads, 2, hd / 2}
	strides := [3]int{2 * (hd / 2), hd / 2, 1}
	// after swapaxes(1, 2): dims [heads, hd/2, 2], strides permuted alike
	sd := [3]int{dims[0], dims[2], dims[1]}
	ss := [3]int{strides[0], strides[2], strides[1]}
	out := make([]int, 0, rows)
	for a := 0; a < sd[0]; a++ {
		for b := 0; b < sd[1]; b++ {
			for c := 0; c < sd[2]; c++ {
				out = append(out, a*ss[0]+b*ss[1]+c*ss[2])
			}
		}
	}
	return out
}

func TestLlamaQKPermutation(t *testing.T) {
	for _, c := range []struct{ rows, heads int }{{8, 1}, {64, 4}, {32, 2}, {4096, 32}, {1024, 8}} {
		perm, err := LlamaQKPermutation(c.rows, c.heads)
		if err != nil {
			t.Fatal(err)
		}
		if want := permuteBySwap(c.rows, c.heads); !reflect.DeepEqual(perm, want) {
			t.Fatalf("%d rows, %d heads: %v, want %v", c.rows, c.heads, perm[:8], want[:8])
		}
	}
	for _, c := range []struct{ rows, heads int }{{10, 3}, {12, 4}, {8, 0}} {
		if _, err := LlamaQKPermutation(c.rows, c.heads); err == nil {
			t.Errorf("%d rows, %d heads accepted", c.rows, c.heads)
		}
	}
}

// TestLlamaQKPermutationRoPE: what the permutation is for. Hugging Face's
// rotary embedding (rotate_half: pairs i and i+hd/2) of q, then permuted,
// equals llama.cpp's `llama` rotary embedding (adjacent pairs 2i, 2i+1) of
// the permuted q.
func TestLlamaQKPermutationRoPE(t *testing.T) {
	const heads, hd, theta = 3, 8, 10000.0
	r := rand.New(rand.NewSource(3))
	q := make([]float64, heads*hd)
	for i := range q {
		q[i] = r.NormFloat64()
	}
	perm, _ := LlamaQKPermutation(heads*hd, heads)
	for _, pos := range []float64{0, 1, 7, 300} {
		hf := make([]float64, len(q))
		for h := 0; h < heads; h++ {
			x := q[h*hd : (h+1)*hd]
			for i := 0; i < hd/2; i++ {
				a := pos * math.Pow(theta, -2*float64(i)/hd)
				hf[h*hd+i] = x[i]*math.Cos(a) - x[i+hd/2]*math.Sin(a)
				hf[h*hd+i+hd/2] = x[i+hd/2]*math.Cos(a) + x[i]*math.Sin(a)
			}
		}
		pq := make([]float64, len(q))
		for i, s := range perm {
			pq[i] = q[s]
		}
		lc := make([]float64, len(q))
		for h := 0; h < heads; h++ {
			x := pq[h*hd : (h+1)*hd]
			for i := 0; i < hd/2; i++ {
				a := pos * math.Pow(theta, -2*float64(i)/hd)
				lc[h*hd+2*i] = x[2*i]*math.Cos(a) - x[2*i+1]*math.Sin(a)
				lc[h*hd+2*i+1] = x[2*i]*math.Sin(a) + x[2*i+1]*math.Cos(a)
			}
		}
		for i, s := range perm {
			if math.Abs(hf[s]-lc[i]) > 1e-12 {
				t.Fatalf("position %v, row %d: HF RoPE then permute %v, permute then llama.cpp RoPE %v", pos, i, hf[s], lc[i])
			}
		}
	}
}

func TestLlamaTensorName(t *testing.T) {
	for hf, want := range map[string]string{
		"model.embed_tokens.weight":                      "token_embd.weight",
		"model.norm.weight":                              "output_norm.weight",
		"lm_head.weight":                                 "output.weight",
		"model.layers.0.input_layernorm.weight":          "blk.0.attn_norm.weight",
		"model.layers.31.self_attn.q_proj.weight":        "blk.31.attn_q.weight",
		"model.layers.2.self_attn.k_proj.weight":         "blk.2.attn_k.weight",
		"model.layers.2.self_attn.v_proj.weight":         "blk.2.attn_v.weight",
		"model.layers.2.self_attn.o_proj.weight":         "blk.2.attn_output.weight",
		"model.layers.2.post_attention_layernorm.weight": "blk.2.ffn_norm.weight",
		"model.layers.2.mlp.gate_proj.weight":            "blk.2.ffn_gate.weight",
		"model.layers.2.mlp.up_proj.weight":              "blk.2.ffn_up.weight",
		"model.layers.2.mlp.down_proj.weight":            "blk.2.ffn_down.weight",
		"model.layers.02.mlp.up_proj.weight":             "",
		"model.layers.x.mlp.up_proj.weight":              "",
		"model.layers.1.self_attn.q_proj.lora_A.weight":  "",
		"vision_tower.x.weight":                          "",
	} {
		got, ok := LlamaTensorName(hf)
		if got != want || ok != (want != "") {
			t.Errorf("%s: %q %v, want %q", hf, got, ok, want)
		}
	}
}

// tinyText is a small Llama config with the real Magma vocabulary.
func tinyText() llm.Config {
	pad := 128256
	return llm.Config{VocabSize: 128320, HiddenSize: 32, IntermediateSize: 64, NumHiddenLayers: 2,
		NumAttentionHeads: 4, NumKeyValueHeads: 2, RMSNormEps: 1e-5, RopeTheta: 500000,
		MaxPositionEmbeddings: 2048, BosTokenID: 128000, EosTokenID: 128009, PadTokenID: &pad}
}

// writeLlamaCheckpoint writes random Magma-named decoder tensors (and one
// vision tensor the export must skip) and returns the folder and values.
func writeLlamaCheckpoint(t *testing.T, c llm.Config, dtype string) (string, map[string][]float32) {
	t.Helper()
	c.Resolve()
	dir := t.TempDir()
	r := rand.New(rand.NewSource(5))
	vals := map[string][]float32{}
	var items []ckpt.WriteItem
	d, hd := c.HiddenSize, c.HeadDim
	shapes := map[string][]int{
		"model.embed_tokens.weight": {c.VocabSize, d}, "model.norm.weight": {d}, "lm_head.weight": {c.VocabSize, d},
	}
	for l := 0; l < c.NumHiddenLayers; l++ {
		p := "model.layers." + string(rune('0'+l)) + "."
		shapes[p+"input_layernorm.weight"] = []int{d}
		shapes[p+"post_attention_layernorm.weight"] = []int{d}
		shapes[p+"self_attn.q_proj.weight"] = []int{c.NumAttentionHeads * hd, d}
		shapes[p+"self_attn.k_proj.weight"] = []int{c.NumKeyValueHeads * hd, d}
		shapes[p+"self_attn.v_proj.weight"] = []int{c.NumKeyValueHeads * hd, d}
		shapes[p+"self_attn.o_proj.weight"] = []int{d, c.NumAttentionHeads * hd}
		shapes[p+"mlp.gate_proj.weight"] = []int{c.IntermediateSize, d}
		shapes[p+"mlp.up_proj.weight"] = []int{c.IntermediateSize, d}
		shapes[p+"mlp.down_proj.weight"] = []int{d, c.IntermediateSize}
	}
	shapes["vision_tower.clip_vision_model.trunk.stem.0.weight"] = []int{4, 3}
	for name, shape := range shapes {
		n := 1
		for _, s := range shape {
			n *= s
		}
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(r.NormFloat64())
			if dtype == "BF16" {
				v[i] = kernels.BF16ToFloat32(kernels.Float32ToBF16(v[i]))
			}
		}
		if !strings.HasPrefix(name, "vision_tower") {
			name = "language_model." + name
		}
		vals[name] = v
		items = append(items, ckpt.WriteItem{Name: name, Shape: shape, Data: v})
	}
	if err := ckpt.Save(dir, items, ckpt.SaveOptions{DType: dtype}); err != nil {
		t.Fatal(err)
	}
	return dir, vals
}

func TestExportLlama(t *testing.T) {
	tokDir, err := tokenizer.Locate("magma")
	if err != nil {
		t.Skip(err)
	}
	c := tinyText()
	tok, err := tokenizer.Load(tokDir)
	if err != nil {
		t.Fatal(err)
	}
	tokKVs, err := llamaTokenizer(tok, c.VocabSize, c)
	if err != nil {
		t.Fatal(err)
	}
	checkTokenizerKVs(t, tokKVs)
	if _, err := llamaTokenizer(tok, 1000, c); err == nil || !strings.Contains(err.Error(), "vocab_size 1000") {
		t.Errorf("vocab_size smaller than the tokenizer: %v", err)
	}
	dir, vals := writeLlamaCheckpoint(t, c, "BF16")
	ck, err := ckpt.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	for _, typ := range []TensorType{TypeBF16, TypeF32} {
		out := filepath.Join(t.TempDir(), "m.gguf")
		rep, err := ExportLlama(out, ck, c, ExportOptions{Type: typ, Prefix: "language_model.", Name: "tiny", Tokenizer: tokKVs})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Tensors != 1+9*c.NumHiddenLayers+2 {
			t.Errorf("%v: %d tensors", typ, rep.Tensors)
		}
		g, err := Open(out)
		if err != nil {
			t.Fatal(err)
		}
		// names in the converter's order, types, values (Q/K permuted)
		hfNames := LlamaHFNames(c.NumHiddenLayers, false)
		if len(g.Tensors) != len(hfNames) {
			t.Fatalf("%d tensors, want %d", len(g.Tensors), len(hfNames))
		}
		for i, hf := range hfNames {
			ti := g.Tensors[i]
			want, _ := LlamaTensorName(hf)
			if ti.Name != want {
				t.Fatalf("tensor %d: %q, want %q", i, ti.Name, want)
			}
			src := vals["language_model."+hf]
			wantType := typ
			if len(ti.Dims) == 1 {
				wantType = TypeF32
			}
			if ti.Type != wantType {
				t.Errorf("%s: type %v, want %v", ti.Name, ti.Type, wantType)
			}
			got, shape, err := g.Tensor(ti.Name)
			if err != nil {
				t.Fatal(err)
			}
			var perm []int
			switch {
			case strings.HasSuffix(ti.Name, "attn_q.weight"):
				perm, _ = LlamaQKPermutation(shape[0], c.NumAttentionHeads)
			case strings.HasSuffix(ti.Name, "attn_k.weight"):
				perm, _ = LlamaQKPermutation(shape[0], c.NumKeyValueHeads)
			}
			cols := shape[len(shape)-1]
			for j := range got {
				r, k := j/cols, j%cols
				if perm != nil {
					r = perm[r]
				}
				if got[j] != src[r*cols+k] { // bf16 source: exact in bf16 and f32
					t.Fatalf("%s[%d]: %v, want %v", ti.Name, j, got[j], src[r*cols+k])
				}
			}
		}
		// metadata
		for key, want := range map[string]any{
			"general.architecture": "llama", "general.name": "tiny", "llama.block_count": uint32(2),
			"llama.embedding_length": uint32(32), "llama.feed_forward_length": uint32(64),
			"llama.attention.head_count": uint32(4), "llama.attention.head_count_kv": uint32(2),
			"llama.rope.dimension_count": uint32(8), "llama.rope.freq_base": float32(500000),
			"llama.attention.layer_norm_rms_epsilon": float32(1e-5), "llama.context_length": uint32(2048),
			"llama.vocab_size": uint32(128320), "tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "llama-bpe",
			"tokenizer.ggml.bos_token_id": uint32(128000), "tokenizer.ggml.eos_token_id": uint32(128009),
			"tokenizer.ggml.padding_token_id": uint32(128256),
		} {
			if v, ok := g.Get(key); !ok || !reflect.DeepEqual(v, want) {
				t.Errorf("%s = %#v, want %#v", key, v, want)
			}
		}
		if ft, _ := g.Uint("general.file_type"); (typ == TypeBF16 && ft != 32) || (typ == TypeF32 && ft != 0) {
			t.Errorf("%v: general.file_type %d", typ, ft)
		}
		g.Close()
	}
	// quantized types need a registered quantizer
	if quantizer(TypeQ8_0) == nil {
		_, err := ExportLlama(filepath.Join(t.TempDir(), "q.gguf"), ck, c, ExportOptions{Type: TypeQ8_0, Prefix: "language_model.", Tokenizer: tokKVs})
		if err == nil || !strings.Contains(err.Error(), "no Q8_0 quantizer") {
			t.Errorf("q8_0 without a quantizer: %v", err)
		}
	}
	// a config that disagrees with the checkpoint is named
	bad := c
	bad.IntermediateSize = 48
	if _, err := ExportLlama(filepath.Join(t.TempDir(), "b.gguf"), ck, bad, ExportOptions{Type: TypeBF16, Prefix: "language_model.", Tokenizer: tokKVs}); err == nil ||
		!strings.Contains(err.Error(), `"language_model.model.layers.0.mlp.gate_proj.weight" has shape [64 32]`) {
		t.Errorf("shape mismatch: %v", err)
	}
}

// checkTokenizerKVs checks Magma's tokenizer metadata for vocab_size 128320.
func checkTokenizerKVs(t *testing.T, kvs []KV) {
	t.Helper()
	m := map[string]any{}
	for _, kv := range kvs {
		m[kv.Key] = kv.Value
	}
	toks := m["tokenizer.ggml.tokens"].([]string)
	types := m["tokenizer.ggml.token_type"].([]int32)
	if len(toks) != 128320 || len(types) != 128320 {
		t.Fatalf("%d tokens, %d types", len(toks), len(types))
	}
	for _, c := range []struct {
		id  int
		tok string
		typ int32
	}{
		{0, "!", TokenNormal}, {279, "Ġthe", TokenNormal}, {127999, toks[127999], TokenNormal},
		{128000, "<|begin_of_text|>", TokenControl}, {128009, "<|eot_id|>", TokenControl},
		{128256, "<pad>", TokenControl}, {128257, "<image>", TokenControl}, {128258, "[PAD128258]", TokenUnused},
		{128259, "<image_start>", TokenControl}, {128260, "<image_end>", TokenControl}, {128319, "[PAD128319]", TokenUnused},
	} {
		if toks[c.id] != c.tok || types[c.id] != c.typ {
			t.Errorf("token %d: %q type %d, want %q type %d", c.id, toks[c.id], types[c.id], c.tok, c.typ)
		}
	}
	merges := m["tokenizer.ggml.merges"].([]string)
	if len(merges) < 280000 || merges[0] != "Ġ Ġ" {
		t.Errorf("%d merges, first %q", len(merges), merges[0])
	}
}

func TestExportType(t *testing.T) {
	mix := func(src string, shape []int) (TensorType, bool) {
		switch {
		case strings.HasSuffix(src, "embed_tokens.weight"):
			return 0, false // kept
		case strings.HasSuffix(src, "lm_head.weight"):
			return TypeQ6_K, true
		}
		return TypeQ4_K, true
	}
	for _, c := range []struct {
		src, stored string
		shape       []int
		opts        ExportOptions
		want        TensorType
	}{
		{"model.norm.weight", "BF16", []int{4096}, ExportOptions{Type: TypeQ8_0}, TypeF32},
		{"w", "BF16", []int{8, 4096}, ExportOptions{Type: TypeBF16}, TypeBF16},
		{"w", "F32", []int{8, 4096}, ExportOptions{Type: TypeBF16}, TypeBF16},
		{"w", "F32", []int{8, 4096}, ExportOptions{Type: TypeQ8_0}, TypeQ8_0},
		{"w", "F32", []int{8, 4096}, ExportOptions{Type: TypeQ4_K}, TypeQ4_K},
		{"w", "F32", []int{8, 192}, ExportOptions{Type: TypeQ4_K}, TypeQ8_0},  // 192 % 256 != 0
		{"w", "BF16", []int{8, 100}, ExportOptions{Type: TypeQ8_0}, TypeBF16}, // 100 % 32 != 0: stored
		{"w", "F16", []int{8, 100}, ExportOptions{Type: TypeQ4_K}, TypeF16},
		{"model.embed_tokens.weight", "BF16", []int{8, 4096}, ExportOptions{Type: TypeQ4_K, TypeFor: mix}, TypeBF16},
		{"lm_head.weight", "BF16", []int{8, 4096}, ExportOptions{Type: TypeQ4_K, TypeFor: mix}, TypeQ6_K},
		{"lm_head.weight", "BF16", []int{8, 64}, ExportOptions{Type: TypeQ4_K, TypeFor: mix}, TypeQ8_0},
		{"x.q_proj.weight", "F32", []int{8, 4096}, ExportOptions{Type: TypeQ4_K, TypeFor: mix}, TypeQ4_K},
	} {
		if got := exportType(c.src, c.stored, c.shape, c.opts); got != c.want {
			t.Errorf("%s %s %v (%v): %v, want %v", c.src, c.stored, c.shape, c.opts.Type, got, c.want)
		}
	}
}

// TestExportLlamaQ8_0: quantized export through the kernels' quantizer;
// the values read back (kernels' dequantizer) are the source rows (Q/K
// permuted) within Q8_0's bound: half a step d = max|block|/127, plus d's
// fp16 rounding times 127.
func TestExportLlamaQ8_0(t *testing.T) {
	c := tinyText()
	c.VocabSize = 64 // no tokenizer: a few placeholder tokens
	dir, vals := writeLlamaCheckpoint(t, c, "F32")
	ck, err := ckpt.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	toks := make([]string, c.VocabSize)
	types := make([]int32, c.VocabSize)
	for i := range toks {
		toks[i], types[i] = "t"+string(rune('A'+i%26))+string(rune('a'+i/26)), TokenNormal
	}
	out := filepath.Join(t.TempDir(), "q.gguf")
	if _, err := ExportLlama(out, ck, c, ExportOptions{Type: TypeQ8_0, Prefix: "language_model.", Tokenizer: []KV{
		{"tokenizer.ggml.model", "gpt2"}, {"tokenizer.ggml.tokens", toks}, {"tokenizer.ggml.token_type", types},
	}}); err != nil {
		t.Fatal(err)
	}
	g, err := Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if ft, _ := g.Uint("general.file_type"); ft != 7 {
		t.Errorf("general.file_type %d, want 7 (MOSTLY_Q8_0)", ft)
	}
	for _, hf := range LlamaHFNames(c.NumHiddenLayers, false) {
		name, _ := LlamaTensorName(hf)
		ti, _ := g.Info(name)
		want := TypeQ8_0
		if len(ti.Dims) == 1 {
			want = TypeF32
		}
		if ti.Type != want {
			t.Errorf("%s: %v, want %v", name, ti.Type, want)
		}
		got, shape, err := g.Tensor(name)
		if err != nil {
			t.Fatal(err)
		}
		src := vals["language_model."+hf]
		var perm []int
		switch {
		case strings.HasSuffix(name, "attn_q.weight"):
			perm, _ = LlamaQKPermutation(shape[0], c.NumAttentionHeads)
		case strings.HasSuffix(name, "attn_k.weight"):
			perm, _ = LlamaQKPermutation(shape[0], c.NumKeyValueHeads)
		}
		cols := shape[len(shape)-1]
		for b := 0; b < len(got); b += 32 {
			n := min(32, len(got)-b)
			r, k := b/cols, b%cols
			if perm != nil {
				r = perm[r]
			}
			s := src[r*cols+k : r*cols+k+n]
			var amax float64
			for _, v := range s {
				amax = math.Max(amax, math.Abs(float64(v)))
			}
			for i, v := range s {
				if d := math.Abs(float64(got[b+i]) - float64(v)); d > amax/127*(0.5+127.0/2048)+1e-7 && ti.Type == TypeQ8_0 || ti.Type == TypeF32 && d != 0 {
					t.Fatalf("%s[%d]: %v, source %v (block max %v)", name, b+i, got[b+i], v, amax)
				}
			}
		}
	}
}

func TestPlaceholderTokenizer(t *testing.T) {
	c := tinyText()
	c.BosTokenID, c.EosTokenID, c.PadTokenID = 1, 2, nil
	kvs, err := PlaceholderTokenizer(512, c)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{}
	for _, kv := range kvs {
		m[kv.Key] = kv.Value
	}
	toks, types := m["tokenizer.ggml.tokens"].([]string), m["tokenizer.ggml.token_type"].([]int32)
	if len(toks) != 512 || m["tokenizer.ggml.bos_token_id"] != uint32(1) || m["tokenizer.ggml.eos_token_id"] != uint32(2) {
		t.Fatalf("%d tokens, bos %v eos %v", len(toks), m["tokenizer.ggml.bos_token_id"], m["tokenizer.ggml.eos_token_id"])
	}
	// GPT-2's byte-level alphabet: '\n' is Ċ, ' ' is Ġ, printable bytes
	// are themselves, all 256 distinct
	for id, want := range map[int]string{10: "Ċ", 32: "Ġ", 'A': "A", 0xA1: "¡", 0xAD: "Ń", 0xFF: "ÿ", 1: "<|bos|>", 300: "<|reserved_300|>"} {
		if toks[id] != want {
			t.Errorf("token %d = %q, want %q", id, toks[id], want)
		}
	}
	seen := map[string]bool{}
	for _, s := range toks[3:256] {
		seen[s] = true
	}
	if len(seen) != 253 || types[5] != TokenNormal || types[1] != TokenControl || types[400] != TokenControl {
		t.Errorf("%d distinct byte tokens; types %d %d %d", len(seen), types[5], types[1], types[400])
	}
	if _, err := PlaceholderTokenizer(100, c); err == nil {
		t.Error("vocab_size 100 accepted")
	}
}
