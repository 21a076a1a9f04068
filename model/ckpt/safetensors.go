package ckpt

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"gorgonia.org/tensor"

	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/nn"
)

// Safetensors dtype names (as written in the JSON header).
const (
	DTypeF64  = "F64"
	DTypeF32  = "F32"
	DTypeF16  = "F16"
	DTypeBF16 = "BF16"
)

// dtypeSizes lists every dtype of the safetensors format with its element
// size in bytes. Tensors of a known dtype can be opened; only the float and
// integer dtypes can be converted to float32 (see Tensor).
var dtypeSizes = map[string]int{
	"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1,
	"I16": 2, "U16": 2, "F16": 2, "BF16": 2,
	"I32": 4, "U32": 4, "F32": 4,
	"I64": 8, "U64": 8, "F64": 8,
}

// maxHeaderSize bounds the JSON header (the official implementation uses 100 MB).
const maxHeaderSize = 100 << 20

// TensorInfo describes one tensor entry of a safetensors header.
type TensorInfo struct {
	Name  string
	DType string
	Shape []int
	// Begin and End are byte offsets relative to the start of the data buffer.
	Begin, End int64
}

// NumElements returns the product of the shape (1 for a scalar).
func (ti TensorInfo) NumElements() int64 {
	n := int64(1)
	for _, d := range ti.Shape {
		n *= int64(d)
	}
	return n
}

// SafetensorsFile is an open .safetensors file. Only the header is read at
// open; tensor data is read on demand with ReadAt, so multi-GB shards cost
// no memory until a tensor is requested. Safe for concurrent reads.
type SafetensorsFile struct {
	Path     string
	Metadata map[string]string

	f         *os.File
	mu        sync.Mutex // guards mapping
	mapping   []byte     // the whole file, mapped read-only on first in-place use
	dataStart int64
	dataLen   int64
	tensors   map[string]TensorInfo
	names     []string
}

type headerEntry struct {
	DType       string  `json:"dtype"`
	Shape       []int   `json:"shape"`
	DataOffsets []int64 `json:"data_offsets"`
}

// OpenSafetensors opens path and validates its header: length, JSON syntax,
// dtypes, shapes and data offsets (in range, consistent with dtype*shape,
// not overlapping). Errors name the file and the offending tensor.
func OpenSafetensors(path string) (*SafetensorsFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("safetensors %s: %w", path, err)
	}
	s, err := parseSafetensors(f, st.Size(), path)
	if err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

func parseSafetensors(f *os.File, size int64, path string) (*SafetensorsFile, error) {
	if size < 8 {
		return nil, fmt.Errorf("safetensors %s: file is %d bytes, shorter than the 8-byte header length", path, size)
	}
	var lenBuf [8]byte
	if _, err := f.ReadAt(lenBuf[:], 0); err != nil {
		return nil, fmt.Errorf("safetensors %s: reading header length: %w", path, err)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > uint64(size-8) {
		return nil, fmt.Errorf("safetensors %s: header length %d exceeds the file size %d (truncated or not a safetensors file)", path, n, size)
	}
	if n > maxHeaderSize {
		return nil, fmt.Errorf("safetensors %s: header length %d exceeds the %d-byte limit", path, n, maxHeaderSize)
	}
	if n < 2 {
		return nil, fmt.Errorf("safetensors %s: header length %d is too small for a JSON object", path, n)
	}
	hdr := make([]byte, n)
	if _, err := f.ReadAt(hdr, 8); err != nil {
		return nil, fmt.Errorf("safetensors %s: reading header: %w", path, err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(hdr, &raw); err != nil {
		return nil, fmt.Errorf("safetensors %s: invalid JSON header: %w", path, err)
	}
	s := &SafetensorsFile{
		Path:      path,
		f:         f,
		dataStart: 8 + int64(n),
		dataLen:   size - 8 - int64(n),
		tensors:   make(map[string]TensorInfo, len(raw)),
	}
	for name, msg := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &s.Metadata); err != nil {
				return nil, fmt.Errorf("safetensors %s: __metadata__ must map strings to strings: %w", path, err)
			}
			continue
		}
		var e headerEntry
		if err := json.Unmarshal(msg, &e); err != nil {
			return nil, fmt.Errorf("safetensors %s: tensor %q: invalid header entry: %w", path, name, err)
		}
		ti, err := s.checkEntry(name, e)
		if err != nil {
			return nil, err
		}
		s.tensors[name] = ti
		s.names = append(s.names, name)
	}
	sort.Strings(s.names)
	// Overlap check: sort by begin offset, each tensor must start at or after
	// the end of the previous one.
	byOff := make([]TensorInfo, 0, len(s.tensors))
	for _, name := range s.names {
		byOff = append(byOff, s.tensors[name])
	}
	sort.SliceStable(byOff, func(i, j int) bool {
		if byOff[i].Begin != byOff[j].Begin {
			return byOff[i].Begin < byOff[j].Begin
		}
		return byOff[i].End < byOff[j].End
	})
	for i := 1; i < len(byOff); i++ {
		prev, cur := byOff[i-1], byOff[i]
		if cur.Begin < prev.End {
			return nil, fmt.Errorf("safetensors %s: tensor %q data [%d,%d) overlaps tensor %q data [%d,%d)",
				path, cur.Name, cur.Begin, cur.End, prev.Name, prev.Begin, prev.End)
		}
	}
	return s, nil
}

func (s *SafetensorsFile) checkEntry(name string, e headerEntry) (TensorInfo, error) {
	path := s.Path
	size, ok := dtypeSizes[e.DType]
	if !ok {
		return TensorInfo{}, fmt.Errorf("safetensors %s: tensor %q: unknown dtype %q", path, name, e.DType)
	}
	if e.Shape == nil {
		return TensorInfo{}, fmt.Errorf("safetensors %s: tensor %q: missing shape", path, name)
	}
	if len(e.DataOffsets) != 2 {
		return TensorInfo{}, fmt.Errorf("safetensors %s: tensor %q: data_offsets must have 2 entries, got %d", path, name, len(e.DataOffsets))
	}
	numel := int64(1)
	for _, d := range e.Shape {
		if d < 0 {
			return TensorInfo{}, fmt.Errorf("safetensors %s: tensor %q: negative dimension in shape %v", path, name, e.Shape)
		}
		if d != 0 && numel > math.MaxInt64/int64(size)/int64(d) {
			return TensorInfo{}, fmt.Errorf("safetensors %s: tensor %q: shape %v overflows", path, name, e.Shape)
		}
		numel *= int64(d)
	}
	b, en := e.DataOffsets[0], e.DataOffsets[1]
	if b < 0 || en < b {
		return TensorInfo{}, fmt.Errorf("safetensors %s: tensor %q: invalid data_offsets [%d,%d]", path, name, b, en)
	}
	if en > s.dataLen {
		return TensorInfo{}, fmt.Errorf("safetensors %s: tensor %q: data_offsets [%d,%d] out of range (data buffer is %d bytes)", path, name, b, en, s.dataLen)
	}
	if want := numel * int64(size); en-b != want {
		return TensorInfo{}, fmt.Errorf("safetensors %s: tensor %q: data_offsets [%d,%d] span %d bytes but dtype %s shape %v needs %d",
			path, name, b, en, en-b, e.DType, e.Shape, want)
	}
	return TensorInfo{Name: name, DType: e.DType, Shape: append([]int(nil), e.Shape...), Begin: b, End: en}, nil
}

// Close releases the file and its mapping: tensors used in place (Dense
// views) must no longer be read.
func (s *SafetensorsFile) Close() error {
	if s == nil || s.f == nil {
		return nil
	}
	err := errors.Join(s.unmap(), s.f.Close())
	s.f = nil
	return err
}

// Names returns the tensor names in sorted order.
func (s *SafetensorsFile) Names() []string { return append([]string(nil), s.names...) }

// Has reports whether the file holds a tensor called name.
func (s *SafetensorsFile) Has(name string) bool { _, ok := s.tensors[name]; return ok }

// Info returns the header entry of a tensor.
func (s *SafetensorsFile) Info(name string) (TensorInfo, bool) {
	ti, ok := s.tensors[name]
	if ok {
		ti.Shape = append([]int(nil), ti.Shape...)
	}
	return ti, ok
}

// ReadRaw returns the raw little-endian bytes of a tensor.
func (s *SafetensorsFile) ReadRaw(name string) ([]byte, TensorInfo, error) {
	ti, ok := s.tensors[name]
	if !ok {
		return nil, TensorInfo{}, fmt.Errorf("safetensors %s: tensor %q not found", s.Path, name)
	}
	if s.f == nil {
		return nil, ti, fmt.Errorf("safetensors %s: tensor %q: file is closed", s.Path, name)
	}
	buf := make([]byte, ti.End-ti.Begin)
	if _, err := s.f.ReadAt(buf, s.dataStart+ti.Begin); err != nil {
		return nil, ti, fmt.Errorf("safetensors %s: tensor %q: %w", s.Path, name, err)
	}
	return buf, ti, nil
}

// readChunk is the read granularity of the streaming conversion (elements
// are converted chunk by chunk so a 1 GB bf16 tensor never needs a second
// 1 GB byte buffer next to its float32 result).
const readChunk = 4 << 20

// Tensor reads a tensor and converts it to float32. F32, BF16, F16 and F64
// (rounded) are supported, and also the integer and BOOL dtypes; FP8 dtypes
// give an error naming the file and tensor.
func (s *SafetensorsFile) Tensor(name string) ([]float32, []int, error) {
	ti, ok := s.tensors[name]
	if !ok {
		return nil, nil, fmt.Errorf("safetensors %s: tensor %q not found", s.Path, name)
	}
	conv, err := float32Converter(ti.DType)
	if err != nil {
		return nil, nil, fmt.Errorf("safetensors %s: tensor %q: %w", s.Path, name, err)
	}
	out := make([]float32, ti.NumElements())
	if err := s.stream(ti, func(elemOff int, b []byte) { conv(out[elemOff:], b) }); err != nil {
		return nil, nil, err
	}
	return out, append([]int(nil), ti.Shape...), nil
}

// TensorFloat64 reads a tensor as float64 (exact for F64, F32, BF16, F16).
func (s *SafetensorsFile) TensorFloat64(name string) ([]float64, []int, error) {
	ti, ok := s.tensors[name]
	if !ok {
		return nil, nil, fmt.Errorf("safetensors %s: tensor %q not found", s.Path, name)
	}
	out := make([]float64, ti.NumElements())
	if ti.DType == DTypeF64 {
		err := s.stream(ti, func(off int, b []byte) {
			for i := 0; i+8 <= len(b); i += 8 {
				out[off+i/8] = math.Float64frombits(binary.LittleEndian.Uint64(b[i:]))
			}
		})
		if err != nil {
			return nil, nil, err
		}
		return out, append([]int(nil), ti.Shape...), nil
	}
	conv, err := float32Converter(ti.DType)
	if err != nil {
		return nil, nil, fmt.Errorf("safetensors %s: tensor %q: %w", s.Path, name, err)
	}
	tmp := make([]float32, readChunk/1)
	err = s.stream(ti, func(off int, b []byte) {
		n := len(b) / dtypeSizes[ti.DType]
		conv(tmp[:n], b)
		for i := 0; i < n; i++ {
			out[off+i] = float64(tmp[i])
		}
	})
	if err != nil {
		return nil, nil, err
	}
	return out, append([]int(nil), ti.Shape...), nil
}

// stream reads the tensor's bytes in chunks aligned to whole elements and
// calls fn with the element offset of each chunk.
func (s *SafetensorsFile) stream(ti TensorInfo, fn func(elemOff int, b []byte)) error {
	if s.f == nil {
		return fmt.Errorf("safetensors %s: tensor %q: file is closed", s.Path, ti.Name)
	}
	es := int64(dtypeSizes[ti.DType])
	total := ti.End - ti.Begin
	chunk := int64(readChunk) / es * es
	if chunk > total {
		chunk = total
	}
	buf := make([]byte, chunk)
	for done := int64(0); done < total; {
		n := chunk
		if total-done < n {
			n = total - done
		}
		if _, err := s.f.ReadAt(buf[:n], s.dataStart+ti.Begin+done); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("safetensors %s: tensor %q: reading data: %w", s.Path, ti.Name, err)
		}
		fn(int(done/es), buf[:n])
		done += n
	}
	return nil
}

// float32Converter returns a function that decodes little-endian elements
// of dtype from b into dst.
func float32Converter(dtype string) (func(dst []float32, b []byte), error) {
	switch dtype {
	case DTypeF32:
		return func(dst []float32, b []byte) {
			for i := 0; i+4 <= len(b); i += 4 {
				dst[i/4] = math.Float32frombits(binary.LittleEndian.Uint32(b[i:]))
			}
		}, nil
	case DTypeBF16:
		return func(dst []float32, b []byte) {
			for i := 0; i+2 <= len(b); i += 2 {
				dst[i/2] = kernels.BF16ToFloat32(binary.LittleEndian.Uint16(b[i:]))
			}
		}, nil
	case DTypeF16:
		return func(dst []float32, b []byte) {
			for i := 0; i+2 <= len(b); i += 2 {
				dst[i/2] = kernels.F16ToFloat32(binary.LittleEndian.Uint16(b[i:]))
			}
		}, nil
	case DTypeF64:
		return func(dst []float32, b []byte) {
			for i := 0; i+8 <= len(b); i += 8 {
				dst[i/8] = float32(math.Float64frombits(binary.LittleEndian.Uint64(b[i:])))
			}
		}, nil
	case "BOOL", "U8":
		return func(dst []float32, b []byte) {
			for i := range b {
				dst[i] = float32(b[i])
			}
		}, nil
	case "I8":
		return func(dst []float32, b []byte) {
			for i := range b {
				dst[i] = float32(int8(b[i]))
			}
		}, nil
	case "I16":
		return func(dst []float32, b []byte) {
			for i := 0; i+2 <= len(b); i += 2 {
				dst[i/2] = float32(int16(binary.LittleEndian.Uint16(b[i:])))
			}
		}, nil
	case "U16":
		return func(dst []float32, b []byte) {
			for i := 0; i+2 <= len(b); i += 2 {
				dst[i/2] = float32(binary.LittleEndian.Uint16(b[i:]))
			}
		}, nil
	case "I32":
		return func(dst []float32, b []byte) {
			for i := 0; i+4 <= len(b); i += 4 {
				dst[i/4] = float32(int32(binary.LittleEndian.Uint32(b[i:])))
			}
		}, nil
	case "U32":
		return func(dst []float32, b []byte) {
			for i := 0; i+4 <= len(b); i += 4 {
				dst[i/4] = float32(binary.LittleEndian.Uint32(b[i:]))
			}
		}, nil
	case "I64":
		return func(dst []float32, b []byte) {
			for i := 0; i+8 <= len(b); i += 8 {
				dst[i/8] = float32(int64(binary.LittleEndian.Uint64(b[i:])))
			}
		}, nil
	case "U64":
		return func(dst []float32, b []byte) {
			for i := 0; i+8 <= len(b); i += 8 {
				dst[i/8] = float32(binary.LittleEndian.Uint64(b[i:]))
			}
		}, nil
	}
	return nil, fmt.Errorf("dtype %s cannot be converted to float32", dtype)
}

// WriteItem is the writers' input (WriteSafetensors, Save, SaveOrdered):
// one tensor to be written under its checkpoint name, with where its values
// come from — float32 values in Data, or (Data nil) any parameter tensor in
// Src (BF16, F16, F32, F64: widened chunk by chunk while writing, so an 8B
// bf16 model is never copied to float32 whole), or (both nil) values
// produced by Fill (a random initialisation never held in memory). It is
// not a parameter type: a model's parameters are nn.Param, turned into
// WriteItems by WriteItems; optimizer moments and logits have no nn.Param.
type WriteItem struct {
	Name  string
	Shape []int
	Data  []float32
	Src   *tensor.Dense
	// Fill, when Data and Src are nil, writes the values of elements
	// [off, off+len(dst)) into dst; it is called in element order.
	Fill func(dst []float32, off int)
}

// WriteItems lists the parameters under root (nn.Parameters, same order
// and names) as WriteItems, for Save: float32 tensors as Data slices that
// alias them (no copy), tensors of the other storage dtypes (BF16, F16,
// F64) as Src, widened chunk by chunk when written.
func WriteItems(root any, prefix string) ([]WriteItem, error) {
	ps, err := nn.Parameters(root, prefix)
	if err != nil {
		return nil, err
	}
	out := make([]WriteItem, 0, len(ps))
	for _, p := range ps {
		it := WriteItem{Name: p.Name, Shape: append([]int(nil), p.T.Shape()...)}
		switch {
		case p.T.IsScalar():
			if p.T.Dtype() == tensor.Float32 {
				return nil, fmt.Errorf("weights: tensor %q is a scalar; allocate it with shape [1]", p.Name)
			}
			return nil, fmt.Errorf("weights: tensor %q: scalar, view or non-contiguous tensor (shape %v)", p.Name, p.T.Shape())
		case p.T.Dtype() == tensor.Float32:
			d, ok := p.T.Data().([]float32)
			if !ok {
				return nil, fmt.Errorf("weights: tensor %q: backing data is not []float32", p.Name)
			}
			if len(d) != p.T.Shape().TotalSize() {
				return nil, fmt.Errorf("weights: tensor %q: view or non-contiguous tensor (data %d, shape %v)", p.Name, len(d), p.T.Shape())
			}
			it.Data = d
		case p.T.DataSize() != p.T.Shape().TotalSize():
			return nil, fmt.Errorf("weights: tensor %q: scalar, view or non-contiguous tensor (shape %v)", p.Name, p.T.Shape())
		default:
			it.Src = p.T
		}
		out = append(out, it)
	}
	return out, nil
}

// values writes elements [off, off+len(dst)) of t into dst.
func (t WriteItem) values(dst []float32, off int) {
	switch {
	case t.Data != nil:
		copy(dst, t.Data[off:])
	case t.Src != nil:
		kernels.Widen32(dst, t.Src, off)
	case t.Fill != nil:
		t.Fill(dst, off)
	}
}

// length is the number of values t holds (-1 when it has no source).
func (t WriteItem) length() int64 {
	switch {
	case t.Data != nil:
		return int64(len(t.Data))
	case t.Src != nil:
		return int64(t.Src.Shape().TotalSize())
	case t.Fill != nil:
		return numel(t.Shape)
	}
	if numel(t.Shape) == 0 {
		return 0
	}
	return -1
}

func numel(shape []int) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= int64(d)
	}
	return n
}

// WriteOptions controls WriteSafetensors.
type WriteOptions struct {
	// DType of the stored tensors: "F32" (default), "BF16" or "F16".
	DType string
	// Metadata is stored in __metadata__; "format": "pt" is always set.
	Metadata map[string]string
	// Sums, when set, receives the file's CRC-32C, computed while it is
	// written (for WriteManifest).
	Sums *Sums
}

func normDType(d string) (string, int, error) {
	switch d {
	case "", DTypeF32, "float32", "f32":
		return DTypeF32, 4, nil
	case DTypeBF16, "bfloat16", "bf16":
		return DTypeBF16, 2, nil
	case DTypeF16, "float16", "f16":
		return DTypeF16, 2, nil
	}
	return "", 0, fmt.Errorf("unsupported output dtype %q (F32, BF16 or F16)", d)
}

// WriteSafetensors writes tensors to path (sorted by name, header padded
// with spaces to 8-byte alignment). The file is written to a temporary name
// and renamed, so a failed write never leaves a truncated checkpoint.
func WriteSafetensors(path string, tensors []WriteItem, opts WriteOptions) error {
	sorted := append([]WriteItem(nil), tensors...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	return writeSafetensors(path, sorted, opts)
}

// writeChunk is how many values are converted and written at a time.
const writeChunk = 1 << 20

// writeSafetensors writes tensors in the order given (the header lists them
// sorted, as JSON objects are; offsets follow the given order), streaming
// each one's values chunk by chunk.
func writeSafetensors(path string, tensors []WriteItem, opts WriteOptions) error {
	dtype, esize, err := normDType(opts.DType)
	if err != nil {
		return fmt.Errorf("safetensors %s: %w", path, err)
	}
	header := make(map[string]any, len(tensors)+1)
	meta := map[string]string{"format": "pt"}
	for k, v := range opts.Metadata {
		meta[k] = v
	}
	header["__metadata__"] = meta
	var off int64
	for _, t := range tensors {
		if t.Name == "" || t.Name == "__metadata__" {
			return fmt.Errorf("safetensors %s: invalid tensor name %q", path, t.Name)
		}
		if _, dup := header[t.Name]; dup {
			return fmt.Errorf("safetensors %s: duplicate tensor %q", path, t.Name)
		}
		for _, d := range t.Shape {
			if d < 0 {
				return fmt.Errorf("safetensors %s: tensor %q: negative dimension in shape %v", path, t.Name, t.Shape)
			}
		}
		if n := numel(t.Shape); n != t.length() {
			return fmt.Errorf("safetensors %s: tensor %q: shape %v needs %d values, got %d", path, t.Name, t.Shape, n, t.length())
		}
		size := numel(t.Shape) * int64(esize)
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		header[t.Name] = headerEntry{DType: dtype, Shape: shape, DataOffsets: []int64{off, off + size}}
		off += size
	}
	hdr, err := json.Marshal(header)
	if err != nil {
		return fmt.Errorf("safetensors %s: encoding header: %w", path, err)
	}
	for len(hdr)%8 != 0 {
		hdr = append(hdr, ' ')
	}

	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("safetensors %s: %w", path, err)
	}
	// CreateTemp makes the file 0600; checkpoints are shared like any output file.
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("safetensors %s: %w", path, err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	sw := &sumWriter{w: tmp}
	w := bufio.NewWriterSize(sw, 1<<20)
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(hdr)))
	w.Write(lenBuf[:])
	w.Write(hdr)
	vals := make([]float32, writeChunk)
	buf := make([]byte, writeChunk*esize)
	for _, t := range tensors {
		n := int(numel(t.Shape))
		for o := 0; o < n; o += writeChunk {
			v := vals[:min(writeChunk, n-o)]
			t.values(v, o)
			b := buf[:len(v)*esize]
			for i, x := range v {
				switch dtype {
				case DTypeF32:
					binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
				case DTypeBF16:
					binary.LittleEndian.PutUint16(b[2*i:], kernels.Float32ToBF16(x))
				case DTypeF16:
					binary.LittleEndian.PutUint16(b[2*i:], kernels.Float32ToF16(x))
				}
			}
			if _, err := w.Write(b); err != nil {
				return fmt.Errorf("safetensors %s: writing: %w", path, err)
			}
		}
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("safetensors %s: writing: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("safetensors %s: writing: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("safetensors %s: %w", path, err)
	}
	ok = true
	opts.Sums.record(path, sw.n, sw.crc)
	return nil
}

// tensorBytes is the stored size of a tensor in dtype.
func tensorBytes(t WriteItem, dtype string) int64 {
	_, es, err := normDType(dtype)
	if err != nil {
		es = 4
	}
	return numel(t.Shape) * int64(es)
}
