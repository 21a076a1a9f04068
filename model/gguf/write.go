package gguf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// Writer streams a GGUF v3 file: declare the metadata (AddKV) and the
// tensors (AddTensor), then write each tensor's bytes in the order they
// were added (BeginTensor, or WriteTensor), then Close. The header is
// written when the first tensor begins (or at Close), with every offset
// computed from the tensors' shapes and types; nothing but the current
// write buffer is held.
type Writer struct {
	w         *bufio.Writer
	n         int64 // bytes written so far
	kvs       []KV
	keys      map[string]bool
	tensors   []TensorInfo
	names     map[string]bool
	align     uint64
	header    bool  // header written
	next      int   // index of the next tensor to write
	cur       int   // tensor being written (-1: none)
	curN      int64 // its bytes written so far
	dataStart int64
	err       error // sticky
}

// NewWriter returns a Writer writing to w (typically a *os.File).
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: bufio.NewWriterSize(w, 1<<20), keys: map[string]bool{}, names: map[string]bool{}, align: DefaultAlignment, cur: -1}
}

// AddKV adds a metadata pair (value: one of the Go types listed at
// ValueType). general.alignment must be a uint32 power of two; it sets the
// alignment of the tensor data. Keys are unique and non-empty.
func (w *Writer) AddKV(key string, value any) error {
	if w.header {
		return fmt.Errorf("gguf: metadata %q added after the header was written", key)
	}
	if err := checkKey(key); err != nil {
		return err
	}
	if w.keys[key] {
		return fmt.Errorf("gguf: metadata key %q added twice", key)
	}
	if _, _, err := TypeOf(value); err != nil {
		return fmt.Errorf("gguf: metadata %q: %w", key, err)
	}
	if key == KeyAlignment {
		a, ok := value.(uint32)
		if !ok {
			return fmt.Errorf("gguf: metadata %q must be a uint32, got %T", key, value)
		}
		if a == 0 || a&(a-1) != 0 {
			return fmt.Errorf("gguf: metadata %q = %d is not a power of two", key, a)
		}
		w.align = uint64(a)
	}
	w.keys[key] = true
	w.kvs = append(w.kvs, KV{key, value})
	return nil
}

func checkKey(key string) error {
	if key == "" {
		return errors.New("gguf: empty metadata key")
	}
	if len(key) > math.MaxUint16 {
		return fmt.Errorf("gguf: metadata key of %d bytes (at most 65535)", len(key))
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x20 || key[i] > 0x7e {
			return fmt.Errorf("gguf: metadata key %q is not printable ASCII (byte %d)", key, i)
		}
	}
	return nil
}

// AddTensor declares a tensor of type t and row-major shape (outermost
// first; stored in ggml order, see GGMLDims). Its bytes must be written
// later, in the order the tensors were added.
func (w *Writer) AddTensor(name string, t TensorType, shape []int) error {
	if w.header {
		return fmt.Errorf("gguf: tensor %q added after the header was written", name)
	}
	if name == "" {
		return errors.New("gguf: empty tensor name")
	}
	if w.names[name] {
		return fmt.Errorf("gguf: tensor %q added twice", name)
	}
	for i, s := range shape {
		if s < 0 {
			return fmt.Errorf("gguf: tensor %q: negative dimension %d at axis %d", name, s, i)
		}
	}
	dims := GGMLDims(shape)
	size, err := TensorBytes(t, dims)
	if err != nil {
		return fmt.Errorf("gguf: tensor %q (%v, shape %v): %w", name, t, shape, err)
	}
	w.names[name] = true
	w.tensors = append(w.tensors, TensorInfo{Name: name, Type: t, Dims: dims, Size: size})
	return nil
}

// Tensors returns the tensors declared so far with their offsets (valid
// once the header is written).
func (w *Writer) Tensors() []TensorInfo { return append([]TensorInfo(nil), w.tensors...) }

func alignUp(n, a uint64) uint64 { return (n + a - 1) / a * a }

// writeHeader writes magic, counts, metadata, tensor infos and padding.
func (w *Writer) writeHeader() error {
	if w.header {
		return nil
	}
	w.header = true
	var off uint64
	for i := range w.tensors {
		off = alignUp(off, w.align)
		w.tensors[i].Offset = off
		off += uint64(w.tensors[i].Size)
	}
	w.raw([]byte(Magic))
	w.u32(Version)
	w.u64(uint64(len(w.tensors)))
	w.u64(uint64(len(w.kvs)))
	for _, kv := range w.kvs {
		w.str(kv.Key)
		t, _, _ := TypeOf(kv.Value)
		w.u32(uint32(t))
		w.value(kv.Value)
	}
	for _, ti := range w.tensors {
		w.str(ti.Name)
		w.u32(uint32(len(ti.Dims)))
		for _, d := range ti.Dims {
			w.u64(d)
		}
		w.u32(uint32(ti.Type))
		w.u64(ti.Offset)
	}
	w.pad()
	w.dataStart = w.n
	return w.err
}

// BeginTensor finishes the previous tensor and returns a writer for the
// bytes of the named one, which must be the next declared tensor; exactly
// its size (TensorInfo.Size) must be written to it.
func (w *Writer) BeginTensor(name string) (io.Writer, error) {
	if err := w.writeHeader(); err != nil {
		return nil, err
	}
	if err := w.endTensor(); err != nil {
		return nil, err
	}
	if w.next >= len(w.tensors) {
		return nil, fmt.Errorf("gguf: tensor %q: all %d declared tensors are written", name, len(w.tensors))
	}
	if ti := w.tensors[w.next]; ti.Name != name {
		return nil, fmt.Errorf("gguf: tensor %q written out of order: tensor %d is %q", name, w.next, ti.Name)
	}
	w.pad()
	if want := w.dataStart + int64(w.tensors[w.next].Offset); w.err == nil && w.n != want {
		return nil, fmt.Errorf("gguf: tensor %q: at byte %d, want %d", name, w.n, want)
	}
	w.cur, w.curN = w.next, 0
	w.next++
	return tensorWriter{w}, w.err
}

// WriteTensor writes all bytes of the named (next) tensor.
func (w *Writer) WriteTensor(name string, data []byte) error {
	tw, err := w.BeginTensor(name)
	if err != nil {
		return err
	}
	if _, err := tw.Write(data); err != nil {
		return err
	}
	return w.endTensor()
}

type tensorWriter struct{ w *Writer }

func (t tensorWriter) Write(p []byte) (int, error) {
	w := t.w
	if w.cur < 0 {
		return 0, errors.New("gguf: write to a tensor that is finished")
	}
	ti := w.tensors[w.cur]
	if w.curN+int64(len(p)) > ti.Size {
		return 0, fmt.Errorf("gguf: tensor %q: %d bytes written, more than its %d (%v %v)", ti.Name, w.curN+int64(len(p)), ti.Size, ti.Type, ti.Shape())
	}
	w.raw(p)
	w.curN += int64(len(p))
	if w.err != nil {
		return 0, w.err
	}
	return len(p), nil
}

func (w *Writer) endTensor() error {
	if w.cur < 0 {
		return w.err
	}
	ti := w.tensors[w.cur]
	w.cur = -1
	if w.curN != ti.Size {
		return fmt.Errorf("gguf: tensor %q: %d bytes written, want %d (%v %v)", ti.Name, w.curN, ti.Size, ti.Type, ti.Shape())
	}
	return w.err
}

// Close finishes the last tensor and flushes; every declared tensor must
// have been written. It does not close the underlying writer.
func (w *Writer) Close() error {
	if err := w.writeHeader(); err != nil {
		return err
	}
	if err := w.endTensor(); err != nil {
		return err
	}
	if w.next != len(w.tensors) {
		return fmt.Errorf("gguf: %d of %d tensors written (next: %q)", w.next, len(w.tensors), w.tensors[w.next].Name)
	}
	if w.err != nil {
		return w.err
	}
	return w.w.Flush()
}

// pad writes zeros up to the next multiple of the alignment.
func (w *Writer) pad() {
	var zero [256]byte
	for n := int64(alignUp(uint64(w.n), w.align)) - w.n; n > 0; {
		k := min(n, int64(len(zero)))
		w.raw(zero[:k])
		n -= k
	}
}

func (w *Writer) raw(p []byte) {
	if w.err != nil {
		return
	}
	k, err := w.w.Write(p)
	w.n += int64(k)
	w.err = err
}

func (w *Writer) u8(v uint8) { w.raw([]byte{v}) }
func (w *Writer) u16(v uint16) {
	var b [2]byte
	binary.LittleEndian.PutUint16(b[:], v)
	w.raw(b[:])
}
func (w *Writer) u32(v uint32) {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	w.raw(b[:])
}
func (w *Writer) u64(v uint64) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	w.raw(b[:])
}
func (w *Writer) str(s string) {
	w.u64(uint64(len(s)))
	if w.err == nil {
		_, w.err = w.w.WriteString(s)
		w.n += int64(len(s))
	}
}

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// value writes v's encoding (without its type id, which the caller wrote).
func (w *Writer) value(v any) {
	switch x := v.(type) {
	case uint8:
		w.u8(x)
	case int8:
		w.u8(uint8(x))
	case uint16:
		w.u16(x)
	case int16:
		w.u16(uint16(x))
	case uint32:
		w.u32(x)
	case int32:
		w.u32(uint32(x))
	case float32:
		w.u32(math.Float32bits(x))
	case bool:
		w.u8(b2u(x))
	case string:
		w.str(x)
	case uint64:
		w.u64(x)
	case int64:
		w.u64(uint64(x))
	case float64:
		w.u64(math.Float64bits(x))
	default: // an array (TypeOf accepted v)
		_, elem, _ := TypeOf(v)
		w.u32(uint32(elem))
		w.u64(uint64(arrayLen(v)))
		w.elems(v)
	}
}

// arrayLen is the number of elements of an array value.
func arrayLen(v any) int {
	switch x := v.(type) {
	case []uint8:
		return len(x)
	case []int8:
		return len(x)
	case []uint16:
		return len(x)
	case []int16:
		return len(x)
	case []uint32:
		return len(x)
	case []int32:
		return len(x)
	case []float32:
		return len(x)
	case []bool:
		return len(x)
	case []string:
		return len(x)
	case []uint64:
		return len(x)
	case []int64:
		return len(x)
	case []float64:
		return len(x)
	case Array:
		return len(x)
	}
	return 0
}

// elems writes an array value's elements (its head already written).
func (w *Writer) elems(v any) {
	switch x := v.(type) {
	case []uint8:
		w.raw(x)
	case []int8:
		for _, e := range x {
			w.u8(uint8(e))
		}
	case []uint16:
		for _, e := range x {
			w.u16(e)
		}
	case []int16:
		for _, e := range x {
			w.u16(uint16(e))
		}
	case []uint32:
		for _, e := range x {
			w.u32(e)
		}
	case []int32:
		for _, e := range x {
			w.u32(uint32(e))
		}
	case []float32:
		for _, e := range x {
			w.u32(math.Float32bits(e))
		}
	case []bool:
		for _, e := range x {
			w.u8(b2u(e))
		}
	case []string:
		for _, e := range x {
			w.str(e)
		}
	case []uint64:
		for _, e := range x {
			w.u64(e)
		}
	case []int64:
		for _, e := range x {
			w.u64(uint64(e))
		}
	case []float64:
		for _, e := range x {
			w.u64(math.Float64bits(e))
		}
	case Array:
		for _, e := range x {
			w.value(e)
		}
	}
}
