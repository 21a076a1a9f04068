package model

// magma quantize: a checkpoint's weights rewritten as ggml blocks in one
// GGUF file (GGUFFileName) beside config.json, the preprocessor config and
// the tokenizer; tensors keep the checkpoint's names, so the model's
// `weights:"..."` tags bind unchanged.
//
// Which tensors are quantized, to what (QuantTypeFor, one table):
//
//	tensor                                   q8_0   q4_k   q4_k_m
//	decoder q/k/o_proj, gate/up_proj         Q8_0   Q4_K   Q4_K
//	decoder v_proj, down_proj                Q8_0   Q4_K   Q6_K in llama.cpp's
//	                                                       "more bits" layers
//	                                                       (first and last 1/8,
//	                                                       every third between),
//	                                                       Q4_K in the others
//	lm_head                                  Q8_0   Q4_K   Q6_K
//	vision mlp.fc1/fc2, projector proj.0/2   Q8_0   Q4_K   Q4_K
//	embed_tokens                             kept (bf16/f32 as stored)
//	norms, biases, layer scales (gamma),     kept (as stored; F64 as F32)
//	conv kernels (stem, downsample, conv_dw),
//	the row separator, unused tensors
//
// A matrix whose input dimension is not a multiple of 256 (the K-quants'
// super-block) takes Q8_0 instead (32-weight blocks; e.g. ConvNeXt's first
// stage, 192 or 384 wide); one whose input dimension is not a multiple of
// 32 is kept. The embedding stays as stored: decoding gathers one row of
// it per token (no memory-bandwidth gain), and llama.cpp's own mix keeps it
// at the base type only to save disk. q4_k is the pure mix (every
// quantized tensor Q4_K), q4_k_m llama.cpp's LLAMA_FTYPE_MOSTLY_Q4_K_M.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"gorgonia.org/tensor"

	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/model/ckpt"
	"github.com/magma-go/magma/model/gguf"
)

// GGUFFileName is the weights file of a quantized checkpoint folder.
const GGUFFileName = "model.gguf"

// QuantTypes are the --type values of magma quantize.
var QuantTypes = []string{"q8_0", "q4_k", "q4_k_m"}

// GGUF metadata keys of a quantized Magma folder.
const (
	ggufKeyQuantType = "magma.quantize.type"
	ggufKeySource    = "magma.quantize.source"
)

var (
	decoderLinear = regexp.MustCompile(`^language_model\.model\.layers\.(\d+)\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj)\.weight$`)
	visionLinear  = regexp.MustCompile(`^(vision_tower\..*\.mlp\.fc[12]|multi_modal_projector\.proj\.\d+)\.weight$`)
)

// moreBits is llama.cpp's use_more_bits: the layers of a Q4_K_M model whose
// attn_v and ffn_down take Q6_K.
func moreBits(i, n int) bool { return i < n/8 || i >= 7*n/8 || (i-n/8)%3 == 2 }

// QuantTypeFor is the dtype the tensor name of logical shape takes in mix
// qt (one of QuantTypes) for a decoder of nLayers layers, and why; the
// zero dtype means kept as stored.
func QuantTypeFor(name string, shape []int, nLayers int, qt string) (tensor.Dtype, string) {
	var base tensor.Dtype
	switch qt {
	case "q8_0":
		base = kernels.Q8_0
	case "q4_k", "q4_k_m":
		base = kernels.Q4K
	default:
		return tensor.Dtype{}, "unknown type " + qt
	}
	want, why := base, ""
	switch {
	case name == "language_model.lm_head.weight":
		why = "output projection"
		if qt == "q4_k_m" {
			want, why = kernels.Q6K, "output projection (Q4_K_M: Q6_K)"
		}
	case decoderLinear.MatchString(name):
		m := decoderLinear.FindStringSubmatch(name)
		why = "decoder linear"
		if qt == "q4_k_m" && (strings.HasSuffix(m[2], "v_proj") || strings.HasSuffix(m[2], "down_proj")) {
			if l, _ := strconv.Atoi(m[1]); moreBits(l, nLayers) {
				want, why = kernels.Q6K, "decoder v_proj/down_proj in a more-bits layer (Q4_K_M: Q6_K)"
			}
		}
	case visionLinear.MatchString(name):
		why = "vision/projector linear"
	case name == "language_model.model.embed_tokens.weight":
		return tensor.Dtype{}, "kept: token embedding (a decode step gathers one row)"
	default:
		return tensor.Dtype{}, "kept: not a linear weight (norm, bias, layer scale, conv kernel, row separator)"
	}
	if len(shape) != 2 {
		return tensor.Dtype{}, fmt.Sprintf("kept: shape %v is not a matrix", shape)
	}
	in := shape[1]
	if in%kernels.BlockWeights(want) != 0 {
		if in%kernels.BlockWeights(kernels.Q8_0) != 0 {
			return tensor.Dtype{}, fmt.Sprintf("kept: input dimension %d is not a multiple of 32", in)
		}
		want, why = kernels.Q8_0, fmt.Sprintf("%s; input dimension %d not a multiple of %d: Q8_0", why, in, kernels.BlockWeights(want))
	}
	return want, why
}

// QuantizeOptions controls Quantize.
type QuantizeOptions struct {
	Type string // one of QuantTypes
	// Progress, when set, is called after every chunk with the source
	// bytes done and in total and the tensor being written.
	Progress func(done, total int64, tensor string)
}

// QuantizedTensor is one tensor of a quantized folder: its GGUF type and
// why (QuantTypeFor).
type QuantizedTensor struct {
	Name   string `json:"name"`
	Shape  []int  `json:"shape"`
	Type   string `json:"type"`
	Reason string `json:"reason"`
	Bytes  int64  `json:"bytes"`
}

// QuantizeReport is what Quantize wrote.
type QuantizeReport struct {
	Path        string            `json:"path"`
	Type        string            `json:"type"`
	Tensors     []QuantizedTensor `json:"tensors"`
	BytesByType map[string]int64  `json:"bytes_by_type"`
	SourceBytes int64             `json:"source_bytes"`
	FileBytes   int64             `json:"file_bytes"`
	Seconds     float64           `json:"seconds"`
}

// quantRows is how many rows of a matrix are converted at once: about
// 16 MB of float32, whatever the tensor's size.
func quantRows(rowLen int) int { return max(1, (4<<20)/max(1, rowLen)) }

// Quantize writes the checkpoint in src as a quantized folder dst:
// model.gguf (every tensor of src under its name, quantized or kept as
// QuantTypeFor says), config.json, preprocessor_config.json, the
// tokenizer files and manifest.json (checksums for --verify). It streams: one chunk of rows at a time is read from
// the mapped shards, converted and written, and the pages read are
// released, so memory stays at a few tens of MB whatever the model.
func Quantize(src, dst string, opts QuantizeOptions) (_ *QuantizeReport, err error) {
	t0 := time.Now()
	cfg, pp, err := LoadConfig(src)
	if err != nil {
		return nil, err
	}
	if !validQuantType(opts.Type) {
		return nil, fmt.Errorf("quantize: type %q: want one of %s", opts.Type, strings.Join(QuantTypes, ", "))
	}
	if same, _ := sameDir(src, dst); same {
		return nil, fmt.Errorf("quantize: --out %s is the source checkpoint folder", dst)
	}
	if IsQuantizedDir(src) {
		return nil, fmt.Errorf("quantize: %s is already quantized (%s): quantize the safetensors checkpoint it came from", src, GGUFFileName)
	}
	ck, err := ckpt.Open(src)
	if err != nil {
		return nil, err
	}
	defer ck.Close()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return nil, err
	}
	rep := &QuantizeReport{Path: filepath.Join(dst, GGUFFileName), Type: opts.Type, BytesByType: map[string]int64{}}
	plan := make([]quantItem, 0, len(ck.Names()))
	for _, name := range ck.Names() {
		ti, stored, inPlace, err := ck.Plan(name, tensor.Dtype{})
		if err != nil {
			return nil, fmt.Errorf("quantize %s: %w", src, err)
		}
		it := quantItem{name: name, shape: ti.Shape, stored: stored, inPlace: inPlace, srcBytes: ti.End - ti.Begin}
		it.dt, it.why = QuantTypeFor(name, ti.Shape, cfg.Text.NumHiddenLayers, opts.Type)
		if it.dt == (tensor.Dtype{}) {
			it.dt = stored // F64 is stored as F32 (resolved by Plan)
		}
		plan = append(plan, it)
		rep.SourceBytes += it.srcBytes
	}
	tmp := rep.Path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	w := gguf.NewWriter(f)
	for _, kv := range []gguf.KV{
		{Key: "general.architecture", Value: "magma"},
		{Key: "general.quantization_version", Value: uint32(2)},
		{Key: ggufKeyQuantType, Value: opts.Type},
		{Key: ggufKeySource, Value: filepath.Base(filepath.Clean(src))},
	} {
		if err := w.AddKV(kv.Key, kv.Value); err != nil {
			return nil, err
		}
	}
	for _, it := range plan {
		id, ok := kernels.GGMLType(it.dt)
		if !ok {
			return nil, fmt.Errorf("quantize: tensor %q: dtype %s has no GGUF type", it.name, kernels.DtypeName(it.dt))
		}
		shape := it.shape
		if len(shape) == 0 {
			shape = []int{1}
		}
		if err := w.AddTensor(it.name, gguf.TensorType(id), shape); err != nil {
			return nil, fmt.Errorf("quantize: %w", err)
		}
	}
	var done int64
	for _, it := range plan {
		n, err := quantizeTensor(w, ck, it, func(d int64) {
			if opts.Progress != nil {
				opts.Progress(done+d, rep.SourceBytes, it.name)
			}
		})
		if err != nil {
			return nil, fmt.Errorf("quantize %s: tensor %q: %w", src, it.name, err)
		}
		done += it.srcBytes
		typ := kernels.DtypeName(it.dt)
		rep.BytesByType[typ] += n
		rep.Tensors = append(rep.Tensors, QuantizedTensor{Name: it.name, Shape: it.shape, Type: typ, Reason: it.why, Bytes: n})
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, rep.Path); err != nil {
		return nil, err
	}
	if st, err := os.Stat(rep.Path); err == nil {
		rep.FileBytes = st.Size()
	}
	// Any safetensors weights left in dst from an earlier run would be
	// ambiguous next to model.gguf.
	for _, pat := range []string{"*.safetensors", "*.safetensors.index.json"} {
		if m, _ := filepath.Glob(filepath.Join(dst, pat)); len(m) > 0 {
			return nil, fmt.Errorf("quantize: %s also holds %s: remove it (a folder has one set of weights)", dst, filepath.Base(m[0]))
		}
	}
	if err := SaveConfig(dst, cfg, pp); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(src, "tokenizer.json")); err == nil {
		if err := ckpt.CopyTokenizer(src, dst); err != nil {
			return nil, err
		}
	}
	// The checksums magma --verify checks (the GGUF is read once more).
	if _, err := ckpt.WriteManifest(dst, nil); err != nil {
		return nil, err
	}
	rep.Seconds = time.Since(t0).Seconds()
	return rep, nil
}

func validQuantType(t string) bool {
	for _, q := range QuantTypes {
		if q == t {
			return true
		}
	}
	return false
}

func sameDir(a, b string) (bool, error) {
	sa, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	sb, err := os.Stat(b)
	if err != nil {
		return false, err
	}
	return os.SameFile(sa, sb), nil
}

// quantItem is one tensor of a quantize run.
type quantItem struct {
	name     string
	shape    []int
	stored   tensor.Dtype // dtype in memory as stored (F64 read as F32)
	inPlace  bool         // stored dtype usable as a view of the mapping
	dt       tensor.Dtype // dtype written
	why      string
	srcBytes int64
}

// quantizeTensor writes one tensor's bytes to w, chunk of rows by chunk,
// and returns the bytes written.
func quantizeTensor(w *gguf.Writer, ck *ckpt.Checkpoint, it quantItem, progress func(int64)) (int64, error) {
	tw, err := w.BeginTensor(it.name)
	if err != nil {
		return 0, err
	}
	var src *tensor.Dense
	if it.inPlace {
		src, _, err = ck.Dense(it.name, tensor.Dtype{})
	} else { // F64 or unaligned: a converted copy (small tensors in practice)
		src, _, err = ck.Dense(it.name, tensor.Float32)
	}
	if err != nil {
		return 0, err
	}
	n := src.Shape().TotalSize()
	rowLen := n
	if len(it.shape) >= 2 {
		rowLen = it.shape[len(it.shape)-1]
	}
	if rowLen == 0 {
		return 0, nil
	}
	rows := n / rowLen
	step := quantRows(rowLen)
	raw := denseBytes(src)
	es := int64(kernels.ElemSize(src.Dtype()))
	buf := make([]float32, min(rows, step)*rowLen)
	var out []byte
	var written int64
	for r0 := 0; r0 < rows; r0 += step {
		r1 := min(rows, r0+step)
		vals := buf[:(r1-r0)*rowLen]
		var chunk []byte
		switch {
		case kernels.IsQuant(it.dt):
			kernels.Widen32(vals, src, r0*rowLen)
			size := kernels.QuantizedSize(it.dt, len(vals))
			if cap(out) < size {
				out = make([]byte, size)
			}
			chunk = out[:size]
			if err := quantizeRows(it.dt, chunk, vals, rowLen, r0); err != nil {
				return written, err
			}
		case it.dt == src.Dtype():
			chunk = raw[int64(r0*rowLen)*es : int64(r1*rowLen)*es]
		default:
			return written, fmt.Errorf("cannot write dtype %s as %s", kernels.DtypeName(src.Dtype()), kernels.DtypeName(it.dt))
		}
		if _, err := tw.Write(chunk); err != nil {
			return written, err
		}
		written += int64(len(chunk))
		if it.inPlace {
			releasePages(raw[:int64(r1*rowLen)*es])
		}
		progress(int64(r1) * it.srcBytes / int64(rows))
	}
	return written, nil
}

// quantizeRows quantizes rows of rowLen values (the first is row r0 of
// the tensor) into dst, the rows split over GOMAXPROCS goroutines.
func quantizeRows(dt tensor.Dtype, dst []byte, vals []float32, rowLen, r0 int) error {
	rows := len(vals) / rowLen
	workers := min(rows, runtime.GOMAXPROCS(0))
	rowBytes := kernels.QuantizedSize(dt, rowLen)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		a, b := rows*w/workers, rows*(w+1)/workers
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := kernels.Quantize(dt, dst[a*rowBytes:b*rowBytes], vals[a*rowLen:b*rowLen]); err != nil {
				var nf *kernels.NonFiniteError
				if errors.As(err, &nf) {
					errs[w] = fmt.Errorf("value %v at flat index %d: NaN and infinite weights cannot be quantized (magma generate --verify names every damaged tensor)", nf.Value, (r0+a)*rowLen+nf.Index)
					return
				}
				errs[w] = fmt.Errorf("rows %d..%d: %w", r0+a, r0+b-1, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// denseBytes is the backing bytes of a contiguous tensor.
func denseBytes(t *tensor.Dense) []byte {
	n := t.MemSize()
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(reflect.ValueOf(t.Data()).UnsafePointer()), n)
}

// releasePages drops the whole pages of b (read-only mapped file data that
// was just read) from the process: the data stays in the page cache, and
// the process's resident set does not grow with the model.
func releasePages(b []byte) {
	if len(b) == 0 {
		return
	}
	pg := uintptr(os.Getpagesize())
	start := uintptr(unsafe.Pointer(&b[0]))
	end := start + uintptr(len(b))
	a0 := (start + pg - 1) &^ (pg - 1)
	a1 := end &^ (pg - 1)
	if a1 <= a0 {
		return
	}
	_ = syscall.Madvise(b[a0-start:a1-start], syscall.MADV_DONTNEED)
}
