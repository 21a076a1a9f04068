package gguf

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"unsafe"

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
	// Type of the 2-D weights: TypeBF16, TypeF16, TypeF32, TypeQ8_0,
	// TypeQ4_K or TypeQ6_K; it also sets general.file_type. 1-D tensors
	// (the norms) are always F32, as llama.cpp's converter writes them. A
	// quantized type whose block does not divide a weight's rows falls back
	// to Q8_0, then to the stored type.
	Type TensorType
	// TypeFor, when set, chooses each 2-D weight's type instead (src is the
	// checkpoint's tensor name, shape row-major); ok false keeps the stored
	// type. Used for quantization mixes (magma quantize's table).
	TypeFor func(src string, shape []int) (t TensorType, ok bool)
	// FileType overrides general.file_type (llama_ftype) when non-zero.
	FileType uint32
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
	// Written lists every tensor: GGUF name, checkpoint name, row-major
	// shape and type.
	Written []ExportedTensor
}

// ExportedTensor is one tensor ExportLlama wrote.
type ExportedTensor struct {
	Name   string `json:"name"`
	Source string `json:"source"`
	Shape  []int  `json:"shape"`
	Type   string `json:"type"`
}

// storedType is the GGUF float type of a checkpoint dtype (F64: F32).
func storedType(dtype string) TensorType {
	switch dtype {
	case "BF16":
		return TypeBF16
	case "F16":
		return TypeF16
	}
	return TypeF32
}

// exportType is the type ExportLlama writes a tensor with.
func exportType(src, stored string, shape []int, opts ExportOptions) TensorType {
	if len(shape) < 2 {
		return TypeF32
	}
	t := opts.Type
	if opts.TypeFor != nil {
		var ok bool
		if t, ok = opts.TypeFor(src, shape); !ok {
			return storedType(stored)
		}
	}
	if shape[len(shape)-1]%t.BlockWeights() != 0 {
		if shape[len(shape)-1]%TypeQ8_0.BlockWeights() == 0 {
			return TypeQ8_0
		}
		return storedType(stored)
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
	case TypeQ8_0, TypeQ4_K, TypeQ6_K:
		if quantizer(opts.Type) == nil {
			return nil, fmt.Errorf("gguf: this build has no %v quantizer: only bf16, f16 and f32 can be exported", opts.Type)
		}
	default:
		return nil, fmt.Errorf("gguf: cannot export weights as %v (want bf16, f16, f32, q8_0, q4_k or q6_k)", opts.Type)
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
	if opts.FileType != 0 {
		ftype = opts.FileType
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
		it := item{src: src, dst: g, shape: ti.Shape, typ: exportType(src, ti.DType, ti.Shape, opts)}
		if quantizer(it.typ) == nil && it.typ.BlockWeights() > 1 {
			return nil, fmt.Errorf("gguf: tensor %q: this build has no %v quantizer", src, it.typ)
		}
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
		// the source's mapped bytes, released as rows are done (sequential
		// tensors) or at the end (permuted Q/K)
		srcBytes := sourceBytes(ck, it.src)
		rowBytes := 0
		if rows > 0 {
			rowBytes = len(srcBytes) / rows
		}
		done := 0
		for r := 0; r < rows; r++ {
			if it.perm == nil && rowBytes > 0 && (r-done)*rowBytes >= releaseChunk {
				release(srcBytes[done*rowBytes : r*rowBytes])
				done = r
			}
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
		release(srcBytes)
		c := rep.ByType[it.typ]
		n := int64(rows) * int64(len(out))
		rep.ByType[it.typ] = [2]int64{c[0] + 1, c[1] + n}
		rep.Tensors++
		rep.Bytes += n
		rep.Written = append(rep.Written, ExportedTensor{Name: it.dst, Source: it.src, Shape: it.shape, Type: it.typ.String()})
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

// releaseChunk is how many source bytes are read before their pages are
// released.
const releaseChunk = 32 << 20

// sourceBytes returns tensor name's bytes in its shard's mapping (nil when
// not mapped).
func sourceBytes(ck *ckpt.Checkpoint, name string) []byte {
	ti, path, err := ck.Info(name)
	if err != nil {
		return nil
	}
	sh := ck.Shard(filepath.Base(path))
	if sh == nil {
		return nil
	}
	return sh.MappedBytes(ti)
}

// release drops the pages of mapped source bytes from the process
// (MADV_DONTNEED: the file's pages stay in the page cache but no longer
// count in this process's RSS), so that exporting a model larger than
// memory never holds more than a chunk of it resident. Partial pages at
// both ends (shared with neighbouring bytes) are kept.
func release(b []byte) {
	if len(b) == 0 {
		return
	}
	page := uintptr(os.Getpagesize())
	addr := uintptr(unsafe.Pointer(&b[0]))
	start := int((page - addr%page) % page)
	end := len(b) - int((addr+uintptr(len(b)))%page)
	if end-start >= int(page) {
		_ = syscall.Madvise(b[start:end], syscall.MADV_DONTNEED) // advisory
	}
}
