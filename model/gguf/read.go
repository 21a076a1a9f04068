package gguf

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"slices"
	"sync"
	"syscall"

	"gorgonia.org/tensor"

	"github.com/magma-go/magma/kernels"
)

// TensorInfo describes one tensor of a GGUF file.
type TensorInfo struct {
	Name string
	Type TensorType
	// Dims in ggml order: Dims[0] (ne[0]) is the contiguous row length.
	Dims []uint64
	// Offset of the data relative to the start of the data section.
	Offset uint64
	// Size of the data in bytes.
	Size int64
}

// Shape is the tensor's row-major shape (outermost first): Dims reversed.
func (ti TensorInfo) Shape() []int { return rowMajor(ti.Dims) }

// NumElements is the number of values of the tensor.
func (ti TensorInfo) NumElements() int64 {
	n := int64(1)
	for _, d := range ti.Dims {
		n *= int64(d)
	}
	return n
}

// File is an open GGUF file: its metadata and tensor infos, validated, and
// its bytes memory-mapped read-only. Keep it open while tensors returned in
// place (TensorBytes, Dense) are used.
type File struct {
	Path string
	// Alignment of the data section and of every tensor in it.
	Alignment uint64
	// DataOffset is the absolute file offset of the data section.
	DataOffset int64
	// KVs in file order; Tensors in file order.
	KVs     []KV
	Tensors []TensorInfo

	kv     map[string]int
	ti     map[string]int
	mu     sync.Mutex
	data   []byte // the whole file (the mapping); nil once closed
	mapped bool
}

// Open maps path and validates its header; an error names the file and
// the key or tensor at fault.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("gguf %s: %w", path, err)
	}
	size := st.Size()
	if size < 24 {
		return nil, fmt.Errorf("gguf %s: %d bytes, too short for a GGUF header (24 bytes)", path, size)
	}
	if size > math.MaxInt {
		return nil, fmt.Errorf("gguf %s: %d bytes cannot be mapped", path, size)
	}
	mem, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("gguf %s: mapping %d bytes: %w", path, size, err)
	}
	g, err := Parse(path, mem)
	if err != nil {
		syscall.Munmap(mem)
		return nil, err
	}
	g.mapped = true
	kernels.RegisterReadOnly(mem)
	return g, nil
}

// Close unmaps the file; tensors returned in place must no longer be used.
func (g *File) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.data == nil {
		return nil
	}
	mem := g.data
	g.data = nil
	if !g.mapped {
		return nil
	}
	kernels.UnregisterReadOnly(mem)
	return syscall.Munmap(mem)
}

// maxNesting bounds arrays of arrays.
const maxNesting = 8

// Parse validates a whole GGUF file held in data (name is used in errors)
// and returns it; the File aliases data.
func Parse(name string, data []byte) (*File, error) {
	p := &parser{name: name, b: data}
	g, err := p.file()
	if err != nil {
		return nil, err
	}
	return g, nil
}

type parser struct {
	name string
	b    []byte
	off  int
	what string // what is being read, for errors
}

func (p *parser) errf(format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if p.what != "" {
		return fmt.Errorf("gguf %s: %s: %s (at byte %d)", p.name, p.what, msg, p.off)
	}
	return fmt.Errorf("gguf %s: %s (at byte %d)", p.name, msg, p.off)
}

func (p *parser) need(n uint64, of string) error {
	if n > uint64(len(p.b)-p.off) {
		return p.errf("%s needs %d bytes, %d left in the file (truncated or corrupt)", of, n, len(p.b)-p.off)
	}
	return nil
}

func (p *parser) u8(of string) (uint8, error) {
	if err := p.need(1, of); err != nil {
		return 0, err
	}
	v := p.b[p.off]
	p.off++
	return v, nil
}

func (p *parser) u16(of string) (uint16, error) {
	if err := p.need(2, of); err != nil {
		return 0, err
	}
	v := binary.LittleEndian.Uint16(p.b[p.off:])
	p.off += 2
	return v, nil
}

func (p *parser) u32(of string) (uint32, error) {
	if err := p.need(4, of); err != nil {
		return 0, err
	}
	v := binary.LittleEndian.Uint32(p.b[p.off:])
	p.off += 4
	return v, nil
}

func (p *parser) u64(of string) (uint64, error) {
	if err := p.need(8, of); err != nil {
		return 0, err
	}
	v := binary.LittleEndian.Uint64(p.b[p.off:])
	p.off += 8
	return v, nil
}

func (p *parser) str(of string) (string, error) {
	n, err := p.u64(of + " length")
	if err != nil {
		return "", err
	}
	if err := p.need(n, fmt.Sprintf("%s of length %d", of, n)); err != nil {
		return "", err
	}
	s := string(p.b[p.off : p.off+int(n)])
	p.off += int(n)
	return s, nil
}

func (p *parser) file() (*File, error) {
	if len(p.b) < 24 {
		return nil, p.errf("%d bytes, too short for a GGUF header (24 bytes)", len(p.b))
	}
	if string(p.b[:4]) != Magic {
		return nil, p.errf("not a GGUF file: magic %q, want %q", p.b[:4], Magic)
	}
	p.off = 4
	ver, _ := p.u32("version")
	if ver != Version {
		return nil, p.errf("GGUF version %d, only version %d is supported", ver, Version)
	}
	nt, _ := p.u64("tensor count")
	nkv, _ := p.u64("metadata count")
	// every pair takes at least 8 (key length) + 1 + 4 (type) + 1 bytes,
	// every tensor info 8 + 1 + 4 + 8 + 4 + 8: refuse counts the file
	// cannot hold before allocating for them.
	left := uint64(len(p.b) - p.off)
	if nkv > left/14 {
		return nil, p.errf("metadata count %d cannot fit in the %d bytes left", nkv, left)
	}
	if nt > left/33 {
		return nil, p.errf("tensor count %d cannot fit in the %d bytes left", nt, left)
	}
	g := &File{Path: p.name, Alignment: DefaultAlignment, kv: make(map[string]int, nkv), ti: make(map[string]int, nt), data: p.b}
	for i := uint64(0); i < nkv; i++ {
		p.what = fmt.Sprintf("metadata pair %d", i)
		key, err := p.str("key")
		if err != nil {
			return nil, err
		}
		if err := checkKey(key); err != nil {
			return nil, p.errf("%v", err)
		}
		p.what = fmt.Sprintf("metadata %q", key)
		if _, dup := g.kv[key]; dup {
			return nil, p.errf("key appears twice")
		}
		t, err := p.u32("value type")
		if err != nil {
			return nil, err
		}
		v, err := p.value(ValueType(t), 0)
		if err != nil {
			return nil, err
		}
		if key == KeyAlignment {
			a, ok := v.(uint32)
			if !ok {
				return nil, p.errf("must be a uint32, is a %v", ValueType(t))
			}
			if a == 0 || a&(a-1) != 0 {
				return nil, p.errf("alignment %d is not a power of two", a)
			}
			g.Alignment = uint64(a)
		}
		g.kv[key] = len(g.KVs)
		g.KVs = append(g.KVs, KV{key, v})
	}
	for i := uint64(0); i < nt; i++ {
		p.what = fmt.Sprintf("tensor info %d", i)
		name, err := p.str("name")
		if err != nil {
			return nil, err
		}
		if name == "" {
			return nil, p.errf("empty tensor name")
		}
		p.what = fmt.Sprintf("tensor %q", name)
		if _, dup := g.ti[name]; dup {
			return nil, p.errf("tensor name appears twice")
		}
		nd, err := p.u32("number of dimensions")
		if err != nil {
			return nil, err
		}
		if nd == 0 || nd > MaxDims {
			return nil, p.errf("%d dimensions (want 1 to %d)", nd, MaxDims)
		}
		dims := make([]uint64, nd)
		for j := range dims {
			if dims[j], err = p.u64("dimension"); err != nil {
				return nil, err
			}
			if dims[j] > 1<<62 { // ggml's ne is int64
				return nil, p.errf("dimension %d = %d is too large", j, dims[j])
			}
		}
		tt, err := p.u32("type")
		if err != nil {
			return nil, err
		}
		typ := TensorType(tt)
		if !typ.Known() {
			return nil, p.errf("unknown or unsupported ggml type id %d", tt)
		}
		size, err := TensorBytes(typ, dims)
		if err != nil {
			return nil, p.errf("%v %v: %v", typ, dims, err)
		}
		off, err := p.u64("offset")
		if err != nil {
			return nil, err
		}
		g.ti[name] = len(g.Tensors)
		g.Tensors = append(g.Tensors, TensorInfo{Name: name, Type: typ, Dims: dims, Offset: off, Size: size})
	}
	p.what = ""
	start := alignUp(uint64(p.off), g.Alignment)
	if start > uint64(len(p.b)) {
		if nt > 0 {
			return nil, p.errf("data section would start at byte %d, past the end of the file (%d bytes)", start, len(p.b))
		}
		start = uint64(len(p.b)) // a file of metadata only needs no padding
	}
	g.DataOffset = int64(start)
	dataLen := uint64(len(p.b)) - start
	for _, ti := range g.Tensors {
		if ti.Offset%g.Alignment != 0 {
			return nil, fmt.Errorf("gguf %s: tensor %q: offset %d is not a multiple of the alignment %d", p.name, ti.Name, ti.Offset, g.Alignment)
		}
		if ti.Offset > dataLen || uint64(ti.Size) > dataLen-ti.Offset {
			return nil, fmt.Errorf("gguf %s: tensor %q: data [%d, +%d) reaches past the end of the data section (%d bytes; file truncated?)", p.name, ti.Name, ti.Offset, ti.Size, dataLen)
		}
	}
	// tensors must not overlap
	order := make([]int, len(g.Tensors))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		oa, ob := g.Tensors[a].Offset, g.Tensors[b].Offset
		if oa < ob {
			return -1
		}
		if oa > ob {
			return 1
		}
		return 0
	})
	for k := 1; k < len(order); k++ {
		a, b := g.Tensors[order[k-1]], g.Tensors[order[k]]
		if a.Size > 0 && a.Offset+uint64(a.Size) > b.Offset {
			return nil, fmt.Errorf("gguf %s: tensors %q and %q overlap (offsets %d+%d and %d)", p.name, a.Name, b.Name, a.Offset, a.Size, b.Offset)
		}
	}
	return g, nil
}

// value reads a value of type t.
func (p *parser) value(t ValueType, depth int) (any, error) {
	switch t {
	case ValUint8:
		return p.u8("uint8")
	case ValInt8:
		v, err := p.u8("int8")
		return int8(v), err
	case ValUint16:
		return p.u16("uint16")
	case ValInt16:
		v, err := p.u16("int16")
		return int16(v), err
	case ValUint32:
		return p.u32("uint32")
	case ValInt32:
		v, err := p.u32("int32")
		return int32(v), err
	case ValFloat32:
		v, err := p.u32("float32")
		return math.Float32frombits(v), err
	case ValBool:
		v, err := p.u8("bool")
		if err == nil && v > 1 {
			return nil, p.errf("bool value %d (must be 0 or 1)", v)
		}
		return v == 1, err
	case ValString:
		return p.str("string")
	case ValUint64:
		return p.u64("uint64")
	case ValInt64:
		v, err := p.u64("int64")
		return int64(v), err
	case ValFloat64:
		v, err := p.u64("float64")
		return math.Float64frombits(v), err
	case ValArray:
		return p.array(depth)
	}
	return nil, p.errf("unknown value type %d", uint32(t))
}

func (p *parser) array(depth int) (any, error) {
	if depth >= maxNesting {
		return nil, p.errf("arrays nested deeper than %d", maxNesting)
	}
	et, err := p.u32("array element type")
	if err != nil {
		return nil, err
	}
	elem := ValueType(et)
	n, err := p.u64("array length")
	if err != nil {
		return nil, err
	}
	minSize := uint64(scalarSize(elem))
	switch elem {
	case ValString:
		minSize = 8
	case ValArray:
		minSize = 12
	}
	if minSize == 0 {
		return nil, p.errf("unknown array element type %d", et)
	}
	if left := uint64(len(p.b) - p.off); n > left/minSize {
		return nil, p.errf("array of %d %v elements cannot fit in the %d bytes left", n, elem, left)
	}
	le := binary.LittleEndian
	if sz := scalarSize(elem); sz > 0 {
		raw := p.b[p.off : p.off+int(n)*sz]
		p.off += len(raw)
		switch elem {
		case ValUint8:
			return slices.Clone(raw), nil
		case ValInt8:
			out := make([]int8, n)
			for i := range out {
				out[i] = int8(raw[i])
			}
			return out, nil
		case ValBool:
			out := make([]bool, n)
			for i := range out {
				if raw[i] > 1 {
					p.off -= len(raw) - i
					return nil, p.errf("array element %d: bool value %d (must be 0 or 1)", i, raw[i])
				}
				out[i] = raw[i] == 1
			}
			return out, nil
		case ValUint16:
			out := make([]uint16, n)
			for i := range out {
				out[i] = le.Uint16(raw[2*i:])
			}
			return out, nil
		case ValInt16:
			out := make([]int16, n)
			for i := range out {
				out[i] = int16(le.Uint16(raw[2*i:]))
			}
			return out, nil
		case ValUint32:
			out := make([]uint32, n)
			for i := range out {
				out[i] = le.Uint32(raw[4*i:])
			}
			return out, nil
		case ValInt32:
			out := make([]int32, n)
			for i := range out {
				out[i] = int32(le.Uint32(raw[4*i:]))
			}
			return out, nil
		case ValFloat32:
			out := make([]float32, n)
			for i := range out {
				out[i] = math.Float32frombits(le.Uint32(raw[4*i:]))
			}
			return out, nil
		case ValUint64:
			out := make([]uint64, n)
			for i := range out {
				out[i] = le.Uint64(raw[8*i:])
			}
			return out, nil
		case ValInt64:
			out := make([]int64, n)
			for i := range out {
				out[i] = int64(le.Uint64(raw[8*i:]))
			}
			return out, nil
		case ValFloat64:
			out := make([]float64, n)
			for i := range out {
				out[i] = math.Float64frombits(le.Uint64(raw[8*i:]))
			}
			return out, nil
		}
	}
	if elem == ValString {
		out := make([]string, n)
		for i := range out {
			s, err := p.str(fmt.Sprintf("array element %d", i))
			if err != nil {
				return nil, err
			}
			out[i] = s
		}
		return out, nil
	}
	out := make(Array, n)
	for i := range out {
		v, err := p.array(depth + 1)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// Names returns the tensor names in file order.
func (g *File) Names() []string {
	out := make([]string, len(g.Tensors))
	for i, ti := range g.Tensors {
		out[i] = ti.Name
	}
	return out
}

// Has reports whether the file holds tensor name.
func (g *File) Has(name string) bool { _, ok := g.ti[name]; return ok }

// Info returns tensor name's info.
func (g *File) Info(name string) (TensorInfo, error) {
	i, ok := g.ti[name]
	if !ok {
		return TensorInfo{}, fmt.Errorf("gguf %s: tensor %q not found", g.Path, name)
	}
	return g.Tensors[i], nil
}

// TensorBytes returns tensor name's stored bytes, a slice of the read-only
// mapping (in place; valid until Close).
func (g *File) TensorBytes(name string) ([]byte, TensorInfo, error) {
	ti, err := g.Info(name)
	if err != nil {
		return nil, ti, err
	}
	g.mu.Lock()
	data := g.data
	g.mu.Unlock()
	if data == nil {
		return nil, ti, fmt.Errorf("gguf %s: file is closed", g.Path)
	}
	start := g.DataOffset + int64(ti.Offset)
	return data[start : start+ti.Size : start+ti.Size], ti, nil
}

// Dequantizer widens n values of a quantized type from src to dst.
type Dequantizer func(dst []float32, src []byte) error

var (
	dequantMu sync.RWMutex
	dequant   = map[TensorType]Dequantizer{}
)

// RegisterDequantizer makes File.Tensor widen tensors of type t with fn
// (the kernels package's block decoders).
func RegisterDequantizer(t TensorType, fn Dequantizer) {
	dequantMu.Lock()
	defer dequantMu.Unlock()
	dequant[t] = fn
}

// Tensor returns tensor name widened to float32 with its row-major shape
// (model.TensorSource): F32, F16 and BF16 always, quantized types when a
// Dequantizer is registered for them.
func (g *File) Tensor(name string) ([]float32, []int, error) {
	raw, ti, err := g.TensorBytes(name)
	if err != nil {
		return nil, nil, err
	}
	n := ti.NumElements()
	out := make([]float32, n)
	le := binary.LittleEndian
	switch ti.Type {
	case TypeF32:
		for i := range out {
			out[i] = math.Float32frombits(le.Uint32(raw[4*i:]))
		}
	case TypeF16:
		for i := range out {
			out[i] = kernels.F16ToFloat32(le.Uint16(raw[2*i:]))
		}
	case TypeBF16:
		for i := range out {
			out[i] = kernels.BF16ToFloat32(le.Uint16(raw[2*i:]))
		}
	default:
		dequantMu.RLock()
		fn := dequant[ti.Type]
		dequantMu.RUnlock()
		if fn == nil {
			return nil, nil, fmt.Errorf("gguf %s: tensor %q has type %v, which this build cannot widen to float32", g.Path, name, ti.Type)
		}
		if err := fn(out, raw); err != nil {
			return nil, nil, fmt.Errorf("gguf %s: tensor %q (%v): %w", g.Path, name, ti.Type, err)
		}
	}
	return out, ti.Shape(), nil
}

// Dense returns a float tensor (F32, F16, BF16) as a *tensor.Dense of its
// row-major shape: in place (a read-only view of the mapping, inPlace
// true) when want is the stored dtype or zero and the data is aligned, a
// converted copy otherwise. Quantized tensors: see TensorBytes.
func (g *File) Dense(name string, want tensor.Dtype) (t *tensor.Dense, inPlace bool, err error) {
	raw, ti, err := g.TensorBytes(name)
	if err != nil {
		return nil, false, err
	}
	var have tensor.Dtype
	switch ti.Type {
	case TypeF32:
		have = tensor.Float32
	case TypeF16:
		have = kernels.Float16
	case TypeBF16:
		have = kernels.BFloat16
	default:
		return nil, false, fmt.Errorf("gguf %s: tensor %q has quantized type %v: not a float tensor", g.Path, name, ti.Type)
	}
	if want == (tensor.Dtype{}) {
		want = have
	}
	if want == have {
		if v, err := kernels.View(have, ti.Shape(), raw); err == nil {
			return v, true, nil
		}
	}
	vals, shape, err := g.Tensor(name)
	if err != nil {
		return nil, false, err
	}
	f := tensor.New(tensor.WithShape(shape...), tensor.WithBacking(vals))
	if want == tensor.Float32 {
		return f, false, nil
	}
	c, err := kernels.Convert(f, want)
	if err != nil {
		return nil, false, fmt.Errorf("gguf %s: tensor %q: %w", g.Path, name, err)
	}
	return c, false, nil
}

// Get returns metadata key's value (one of the Go types listed at
// ValueType).
func (g *File) Get(key string) (any, bool) {
	i, ok := g.kv[key]
	if !ok {
		return nil, false
	}
	return g.KVs[i].Value, true
}

// String returns a string metadata value.
func (g *File) String(key string) (string, error) {
	v, ok := g.Get(key)
	if !ok {
		return "", fmt.Errorf("gguf %s: metadata %q missing", g.Path, key)
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("gguf %s: metadata %q is a %T, want a string", g.Path, key, v)
	}
	return s, nil
}

// Uint returns an integer metadata value of any integer type (negative
// values are an error).
func (g *File) Uint(key string) (uint64, error) {
	v, ok := g.Get(key)
	if !ok {
		return 0, fmt.Errorf("gguf %s: metadata %q missing", g.Path, key)
	}
	var s int64
	switch x := v.(type) {
	case uint8:
		return uint64(x), nil
	case uint16:
		return uint64(x), nil
	case uint32:
		return uint64(x), nil
	case uint64:
		return x, nil
	case int8:
		s = int64(x)
	case int16:
		s = int64(x)
	case int32:
		s = int64(x)
	case int64:
		s = x
	default:
		return 0, fmt.Errorf("gguf %s: metadata %q is a %T, want an integer", g.Path, key, v)
	}
	if s < 0 {
		return 0, fmt.Errorf("gguf %s: metadata %q = %d is negative", g.Path, key, s)
	}
	return uint64(s), nil
}

// Float returns a float32 or float64 metadata value.
func (g *File) Float(key string) (float64, error) {
	v, ok := g.Get(key)
	if !ok {
		return 0, fmt.Errorf("gguf %s: metadata %q missing", g.Path, key)
	}
	switch x := v.(type) {
	case float32:
		return float64(x), nil
	case float64:
		return x, nil
	}
	return 0, fmt.Errorf("gguf %s: metadata %q is a %T, want a float", g.Path, key, v)
}
