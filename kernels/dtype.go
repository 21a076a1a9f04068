package kernels

// Storage dtypes: weights may stay in a checkpoint's 16-bit formats in
// memory (bfloat16, IEEE half) and be widened to float32 inside the kernels
// that read them; activations and accumulation stay float32.

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"unsafe"

	"gorgonia.org/tensor"
)

// BF16 is a bfloat16 bit pattern: the upper 16 bits of a float32.
type BF16 uint16

// F16 is an IEEE 754 half-precision bit pattern.
type F16 uint16

// BFloat16 and Float16 are the tensor dtypes of []BF16 and []F16 backing
// slices (gorgonia/tensor has none of its own).
var (
	BFloat16 = tensor.Dtype{Type: reflect.TypeOf(BF16(0))}
	Float16  = tensor.Dtype{Type: reflect.TypeOf(F16(0))}
)

// IsHalf reports whether dt is one of the 16-bit storage dtypes.
func IsHalf(dt tensor.Dtype) bool { return dt == BFloat16 || dt == Float16 }

// dtypeTraits describes one storage dtype: its names, its ggml type id and,
// for the block-quantized dtypes (quant.go), its block geometry. Every
// per-dtype fact lives in this table (no switches over dtypes elsewhere).
type dtypeTraits struct {
	dt      tensor.Dtype
	name    string   // safetensors / GGUF name: "BF16", "Q8_0"
	aliases []string // command-line spellings
	ggml    int      // ggml type id (GGUF), -1 if none
	// blockWeights is the number of logical weights per element (1 for the
	// scalar dtypes; 32 or 256 for a quantized block).
	blockWeights int
	// view makes a slice of n elements at p (the tensor backing).
	view func(p unsafe.Pointer, n int) any
	// dequant writes the float32 values of the elements in raw to dst (nil
	// for the float dtypes, which Widen32 reads directly).
	dequant func(raw []byte, dst []float32)
	// qkind is quant.c's type index (QT_*) of a quantized dtype.
	qkind int
}

func viewOf[E any](p unsafe.Pointer, n int) any { return unsafe.Slice((*E)(p), n) }

// dtypeTable lists the dtypes this package stores (quant.go adds the
// block-quantized ones in init).
var dtypeTable = []*dtypeTraits{
	{dt: BFloat16, name: "BF16", aliases: []string{"bf16", "bfloat16"}, ggml: 30, blockWeights: 1, view: viewOf[BF16]},
	{dt: Float16, name: "F16", aliases: []string{"f16", "fp16", "float16", "half"}, ggml: 1, blockWeights: 1, view: viewOf[F16]},
	{dt: tensor.Float32, name: "F32", aliases: []string{"f32", "fp32", "float32"}, ggml: 0, blockWeights: 1, view: viewOf[float32]},
	{dt: tensor.Float64, name: "F64", aliases: []string{"f64", "fp64", "float64"}, ggml: -1, blockWeights: 1, view: viewOf[float64]},
}

// traitsOf returns dt's row of dtypeTable, or nil.
func traitsOf(dt tensor.Dtype) *dtypeTraits {
	for _, t := range dtypeTable {
		if t.dt == dt {
			return t
		}
	}
	return nil
}

// DtypeName returns the safetensors/GGUF name of dt ("BF16", "F16", "F32",
// "F64", "Q8_0", "Q4_K", "Q6_K").
func DtypeName(dt tensor.Dtype) string {
	if t := traitsOf(dt); t != nil {
		return t.name
	}
	return dt.String()
}

// ParseDtype maps a safetensors dtype name or a command-line spelling
// (bf16, f16, fp16, f32, fp32, float32, f64) of a float dtype to a tensor
// dtype. Quantized dtypes are ParseQuantType's.
func ParseDtype(s string) (tensor.Dtype, error) {
	for _, t := range dtypeTable {
		if t.blockWeights != 1 {
			continue
		}
		if s == t.name || slices.Contains(t.aliases, s) {
			return t.dt, nil
		}
	}
	return tensor.Dtype{}, fmt.Errorf("unknown dtype %q (want bf16, f16 or f32)", s)
}

// ElemSize returns the size in bytes of one element of dt (one block for a
// quantized dtype).
func ElemSize(dt tensor.Dtype) int { return int(dt.Size()) }

// View returns a tensor of dtype dt and shape over raw (little-endian
// elements, e.g. a memory-mapped safetensors range) without copying: the
// tensor aliases raw, which must outlive it and stay unmodified if it is
// read-only memory. raw must hold exactly the shape's elements and be
// aligned to the element type's alignment. For a quantized dtype the shape
// counts blocks (QuantShape gives it from the logical shape).
func View(dt tensor.Dtype, shape []int, raw []byte) (*tensor.Dense, error) {
	n := prod(shape)
	es := ElemSize(dt)
	if len(raw) != n*es {
		return nil, fmt.Errorf("kernels: view of %v %v needs %d bytes, got %d", dt, shape, n*es, len(raw))
	}
	if al := dt.Type.Align(); n > 0 && uintptr(unsafe.Pointer(&raw[0]))%uintptr(al) != 0 {
		return nil, fmt.Errorf("kernels: view of %v %v: data not aligned to %d bytes", dt, shape, al)
	}
	var p unsafe.Pointer
	if n > 0 {
		p = unsafe.Pointer(&raw[0])
	}
	tr := traitsOf(dt)
	if tr == nil {
		return nil, fmt.Errorf("kernels: no view for dtype %v", dt)
	}
	backing := tr.view(p, n)
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(backing)), nil
}

// Widen32 writes the float32 value of t's elements [off, off+len(dst)) to
// dst; t is BF16, F16, F32 or F64. Exact for the 16-bit formats. For a
// quantized t, off and len(dst) count logical weights and must fall on
// block boundaries; the values are Dequantize's.
func Widen32(dst []float32, t *tensor.Dense, off int) {
	switch s := t.Data().(type) {
	case []BF16:
		for i, h := range s[off : off+len(dst)] {
			dst[i] = BF16ToFloat32(uint16(h))
		}
	case []F16:
		for i, h := range s[off : off+len(dst)] {
			dst[i] = F16ToFloat32(uint16(h))
		}
	case []float32:
		copy(dst, s[off:off+len(dst)])
	case []float64:
		for i, v := range s[off : off+len(dst)] {
			dst[i] = float32(v)
		}
	default:
		if err := widenQuant(dst, t, off); err != nil {
			panic(err.Error())
		}
	}
}

// BF16ToFloat32 widens a bfloat16 bit pattern; exact for every value
// (zeros, subnormals, infinities and NaN payloads).
func BF16ToFloat32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// Float32ToBF16 rounds to the nearest bfloat16, ties to even. NaN stays NaN
// (quiet bit set so truncation cannot turn it into an infinity).
func Float32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 { // NaN
		return uint16(b>>16) | 0x0040
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

// F16ToFloat32 widens an IEEE half-precision bit pattern; exact for every
// value including subnormals, infinities and NaN payloads.
func F16ToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0 && mant == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: value = mant * 2^-24; normalise
		e := int32(-14)
		for mant&0x400 == 0 {
			mant <<= 1
			e--
		}
		mant &= 0x3ff
		return math.Float32frombits(sign | uint32(e+127)<<23 | mant<<13)
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	}
	return math.Float32frombits(sign | (exp-15+127)<<23 | mant<<13)
}

// Float32ToF16 rounds to the nearest IEEE half, ties to even (overflow to
// infinity, underflow through subnormals to zero, NaN kept).
func Float32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00 | uint16(mant>>13)
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		if e < -10 {
			return sign
		}
		mant |= 0x800000
		shift := uint32(14 - e)
		half := uint32(1) << (shift - 1)
		r := mant >> shift
		rem := mant & (1<<shift - 1)
		if rem > half || (rem == half && r&1 == 1) {
			r++
		}
		return sign | uint16(r)
	}
	r := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && r&1 == 1) {
		r++ // may carry into the exponent, up to infinity: correct
	}
	return sign | uint16(r)
}

// Convert returns a new contiguous tensor with t's values in dtype dt
// (BF16, F16, F32 or F64): round to nearest even when narrowing, exact when
// widening. t is returned as is when it already has dt. A quantized t is
// dequantized (its logical shape); converting to a quantized dtype is the
// quantizers' job (an error here).
func Convert(t *tensor.Dense, dt tensor.Dtype) (*tensor.Dense, error) {
	if t.Dtype() == dt {
		return t, nil
	}
	if IsQuant(t.Dtype()) {
		// Dequantize (exact in float32) to the logical shape, then convert.
		ls := LogicalShape(t)
		f := make([]float32, prod(ls))
		if err := widenQuant(f, t, 0); err != nil {
			return nil, err
		}
		return Convert(tensor.New(tensor.WithShape(ls...), tensor.WithBacking(f)), dt)
	}
	n := t.Shape().TotalSize()
	src := make([]float32, n)
	if t.IsView() {
		m, ok := t.Materialize().(*tensor.Dense)
		if !ok {
			return nil, fmt.Errorf("kernels: convert: cannot materialise a %v view", t.Dtype())
		}
		t = m
	}
	switch t.Dtype() {
	case BFloat16, Float16, tensor.Float32:
		Widen32(src, t, 0)
	case tensor.Float64:
		if dt == tensor.Float32 {
			Widen32(src, t, 0)
			break
		}
		if IsHalf(dt) {
			// Round once, from float64 through float32 (exact for values that
			// are float32 already, which is what models hold).
			Widen32(src, t, 0)
			break
		}
		fallthrough
	default:
		return nil, fmt.Errorf("kernels: convert %v to %v is not supported", t.Dtype(), dt)
	}
	var backing any
	switch dt {
	case BFloat16:
		d := make([]BF16, n)
		for i, v := range src {
			d[i] = BF16(Float32ToBF16(v))
		}
		backing = d
	case Float16:
		d := make([]F16, n)
		for i, v := range src {
			d[i] = F16(Float32ToF16(v))
		}
		backing = d
	case tensor.Float32:
		backing = src
	case tensor.Float64:
		d := make([]float64, n)
		for i, v := range src {
			d[i] = float64(v)
		}
		backing = d
	default:
		return nil, fmt.Errorf("kernels: convert to %v is not supported", dt)
	}
	return tensor.New(tensor.WithShape(t.Shape().Clone()...), tensor.WithBacking(backing)), nil
}
