package gguf

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"gorgonia.org/tensor"

	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/llm"
	"github.com/magma-go/magma/model/ckpt"
)

// Quantizer encodes len(src) values (a whole number of blocks) into dst
// (exactly the blocks' bytes), in ggml's block layout.
type Quantizer func(dst []byte, src []float32) error

var (
	quantMu sync.RWMutex
	quant   = map[TensorType]Quantizer{}
)

// RegisterQuantizer makes the exporter able to write type t (the kernels
// package's quantizers).
func RegisterQuantizer(t TensorType, fn Quantizer) {
	quantMu.Lock()
	defer quantMu.Unlock()
	quant[t] = fn
}

func quantizer(t TensorType) Quantizer {
	quantMu.RLock()
	defer quantMu.RUnlock()
	return quant[t]
}

// ExportOptions says how ExportLlama writes a Llama decoder.
type ExportOptions struct {
	// Type of the 2-D weights: TypeBF16, TypeF16, TypeF32, TypeQ8_0 or
	// TypeQ4_K (quantized types need a registered Quantizer). 1-D tensors
	// (the norms) are always F32, as llama.cpp's converter writes them.
	// With TypeQ4_K, output.weight is Q6_K (llama.cpp's choice for the head
	// in its Q4_K mixes); a weight whose rows are not a whole number of
	// blocks stays BF16.
	Type TensorType
	// Prefix of the decoder's tensors in the checkpoint ("language_model."
	// in Magma's checkpoints, "" in a plain LlamaForCausalLM).
	Prefix string
	// Name is general.name.
	Name string
	// TokenizerDir holds tokenizer.json (and tokenizer_config.json).
	TokenizerDir string
	// Tokenizer, when set, is the tokenizer metadata to write instead of
	// LlamaTokenizer(TokenizerDir, ...) (computed once for several files).
	Tokenizer []KV
}

// ExportReport says what ExportLlama wrote.
type ExportReport struct {
	Tensors int
	Bytes   int64
	// ByType counts the tensors and their bytes by ggml type.
	ByType map[TensorType][2]int64
}

// llamaTensorType is the type ExportLlama writes a tensor of (row-major)
// shape with.
func llamaTensorType(gname string, shape []int, want TensorType) TensorType {
	if len(shape) < 2 {
		return TypeF32
	}
	t := want
	if want == TypeQ4_K && gname == "output.weight" {
		t = TypeQ6_K
	}
	if shape[len(shape)-1]%t.BlockWeights() != 0 {
		return TypeBF16
	}
	return t
}

// ExportLlama writes the Llama decoder of checkpoint ck (text config text)
// to path as a llama.cpp `llama` GGUF: llama.cpp's tensor names, Q and K
// rows permuted as its converter does (LlamaQKPermutation), the llama.*
// hyperparameters, general.* keys and the tokenizer (LlamaTokenizer). The
// checkpoint's tensors are read in place and written row by row, so the
// memory used is a few rows whatever the model size. The file is written
// to path+".tmp" and renamed when complete.
func ExportLlama(path string, ck *ckpt.Checkpoint, text llm.Config, opts ExportOptions) (*ExportReport, error) {
	switch opts.Type {
	case TypeBF16, TypeF16, TypeF32:
	case TypeQ8_0, TypeQ4_K:
		need := []TensorType{opts.Type}
		if opts.Type == TypeQ4_K {
			need = append(need, TypeQ6_K)
		}
		for _, t := range need {
			if quantizer(t) == nil {
				return nil, fmt.Errorf("gguf: this build has no %v quantizer: only bf16, f16 and f32 can be exported", t)
			}
		}
	default:
		return nil, fmt.Errorf("gguf: cannot export weights as %v (want bf16, f16, f32, q8_0 or q4_k)", opts.Type)
	}
	if err := text.Resolve(); err != nil {
		return nil, err
	}
	hyper, err := LlamaHyperparameters(text)
	if err != nil {
		return nil, err
	}
	tokKVs := opts.Tokenizer
	if tokKVs == nil {
		if tokKVs, err = LlamaTokenizer(opts.TokenizerDir, text.VocabSize, text); err != nil {
			return nil, err
		}
	}
	ftype, err := LlamaFileType(opts.Type)
	if err != nil {
		return nil, err
	}
	name := opts.Name
	if name == "" {
		name = filepath.Base(ck.Dir)
	}
	kvs := []KV{
		{"general.architecture", "llama"},
		{"general.type", "model"},
		{"general.name", name},
		{"general.file_type", ftype},
		{"general.quantization_version", uint32(2)},
	}
	kvs = append(kvs, hyper...)
	kvs = append(kvs, tokKVs...)

	// the tensors, their shapes checked against the config
	type item struct {
		src, dst string
		shape    []int
		typ      TensorType
		perm     []int
	}
	d, hd := text.HiddenSize, text.HeadDim
	want := map[string][]int{
		"token_embd.weight":  {text.VocabSize, d},
		"output_norm.weight": {d},
		"output.weight":      {text.VocabSize, d},
		"attn_norm.weight":   {d},
		"attn_q.weight":      {text.NumAttentionHeads * hd, d},
		"attn_k.weight":      {text.NumKeyValueHeads * hd, d},
		"attn_v.weight":      {text.NumKeyValueHeads * hd, d},
		"attn_output.weight": {d, text.NumAttentionHeads * hd},
		"ffn_norm.weight":    {d},
		"ffn_gate.weight":    {text.IntermediateSize, d},
		"ffn_up.weight":      {text.IntermediateSize, d},
		"ffn_down.weight":    {d, text.IntermediateSize},
	}
	var items []item
	for _, hf := range LlamaHFNames(text.NumHiddenLayers, text.TieWordEmbeddings) {
		src := opts.Prefix + hf
		g, _ := LlamaTensorName(hf)
		ti, _, err := ck.Info(src)
		if err != nil {
			return nil, err
		}
		key := g
		if i := len("blk."); len(g) > i && g[:i] == "blk." {
			_, key, _ = cutAfterSecondDot(g)
		}
		if w := want[key]; !equalInts(ti.Shape, w) {
			return nil, fmt.Errorf("gguf: checkpoint %s: tensor %q has shape %v, the text config says %v", ck.Dir, src, ti.Shape, w)
		}
		it := item{src: src, dst: g, shape: ti.Shape, typ: llamaTensorType(g, ti.Shape, opts.Type)}
		switch key {
		case "attn_q.weight":
			it.perm, err = LlamaQKPermutation(ti.Shape[0], text.NumAttentionHeads)
		case "attn_k.weight":
			it.perm, err = LlamaQKPermutation(ti.Shape[0], text.NumKeyValueHeads)
		}
		if err != nil {
			return nil, err
		}
		items = append(items, it)
	}

	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	done := false
	defer func() {
		if !done {
			f.Close()
			os.Remove(tmp)
		}
	}()
	w := NewWriter(f)
	for _, kv := range kvs {
		if err := w.AddKV(kv.Key, kv.Value); err != nil {
			return nil, err
		}
	}
	for _, it := range items {
		if err := w.AddTensor(it.dst, it.typ, it.shape); err != nil {
			return nil, err
		}
	}
	rep := &ExportReport{ByType: map[TensorType][2]int64{}}
	for _, it := range items {
		t, _, err := ck.Dense(it.src, tensor.Dtype{})
		if err != nil {
			return nil, err
		}
		tw, err := w.BeginTensor(it.dst)
		if err != nil {
			return nil, err
		}
		rows, cols := 1, it.shape[0]
		if len(it.shape) == 2 {
			rows, cols = it.shape[0], it.shape[1]
		}
		row := make([]float32, cols)
		out := make([]byte, int64(cols)/int64(it.typ.BlockWeights())*int64(it.typ.BlockBytes()))
		enc, err := rowEncoder(it.typ)
		if err != nil {
			return nil, err
		}
		for r := 0; r < rows; r++ {
			sr := r
			if it.perm != nil {
				sr = it.perm[r]
			}
			kernels.Widen32(row, t, sr*cols)
			if err := enc(out, row); err != nil {
				return nil, fmt.Errorf("gguf: tensor %q row %d: %w", it.src, sr, err)
			}
			if _, err := tw.Write(out); err != nil {
				return nil, err
			}
		}
		c := rep.ByType[it.typ]
		n := int64(rows) * int64(len(out))
		rep.ByType[it.typ] = [2]int64{c[0] + 1, c[1] + n}
		rep.Tensors++
		rep.Bytes += n
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	done = true
	return rep, nil
}

// rowEncoder returns the function writing a row of float32 values as t.
func rowEncoder(t TensorType) (func(dst []byte, src []float32) error, error) {
	le := binary.LittleEndian
	switch t {
	case TypeF32:
		return func(dst []byte, src []float32) error {
			for i, v := range src {
				le.PutUint32(dst[4*i:], math.Float32bits(v))
			}
			return nil
		}, nil
	case TypeBF16:
		return func(dst []byte, src []float32) error {
			for i, v := range src {
				le.PutUint16(dst[2*i:], kernels.Float32ToBF16(v))
			}
			return nil
		}, nil
	case TypeF16:
		return func(dst []byte, src []float32) error {
			for i, v := range src {
				le.PutUint16(dst[2*i:], kernels.Float32ToF16(v))
			}
			return nil
		}, nil
	}
	if q := quantizer(t); q != nil {
		return q, nil
	}
	return nil, fmt.Errorf("gguf: no encoder for %v", t)
}

// cutAfterSecondDot splits "blk.3.attn_q.weight" into "blk.3" and
// "attn_q.weight".
func cutAfterSecondDot(s string) (string, string, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			n++
			if n == 2 {
				return s[:i], s[i+1:], true
			}
		}
	}
	return s, "", false
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TypesSummary formats a report's bytes by type, largest first.
func (r *ExportReport) TypesSummary() string {
	types := make([]TensorType, 0, len(r.ByType))
	for t := range r.ByType {
		types = append(types, t)
	}
	sort.Slice(types, func(i, j int) bool { return r.ByType[types[i]][1] > r.ByType[types[j]][1] })
	s := ""
	for i, t := range types {
		if i > 0 {
			s += ", "
		}
		c := r.ByType[t]
		s += fmt.Sprintf("%v: %d tensors, %d bytes", t, c[0], c[1])
	}
	return s
}
