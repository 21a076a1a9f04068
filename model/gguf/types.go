package gguf

import (
	"fmt"
	"math"
	"math/bits"

	"gorgonia.org/tensor"

	"github.com/magma-go/magma/kernels"
)

// Magic is the first four bytes of every GGUF file.
const Magic = "GGUF"

// Version is the GGUF version this package reads and writes.
const Version = 3

// DefaultAlignment is the data alignment when general.alignment is absent.
const DefaultAlignment = 32

// KeyAlignment is the metadata key that sets the data alignment (uint32).
const KeyAlignment = "general.alignment"

// MaxDims is ggml's GGML_MAX_DIMS: a tensor has at most four dimensions.
const MaxDims = 4

// TensorType is a ggml tensor type id (enum ggml_type).
type TensorType uint32

// The ggml types this package knows (ids from ggml.h).
const (
	TypeF32  TensorType = 0
	TypeF16  TensorType = 1
	TypeQ4_0 TensorType = 2
	TypeQ8_0 TensorType = 8
	TypeQ4_K TensorType = 12
	TypeQ6_K TensorType = 14
	TypeBF16 TensorType = 30
)

// typeTraits is a type's block: BlockWeights values stored in BlockBytes.
type typeTraits struct {
	name         string
	blockWeights int
	blockBytes   int
}

// traits of the known types: the float types and Q4_0 (block_q4_0: fp16
// d + 16 bytes of nibbles, read only: llama.cpp writes it) here; Q8_0,
// Q4_K and Q6_K from the kernels package's block dtypes (init).
var traits = map[TensorType]typeTraits{
	TypeF32:  {"F32", 1, 4},
	TypeF16:  {"F16", 1, 2},
	TypeBF16: {"BF16", 1, 2},
	TypeQ4_0: {"Q4_0", 32, 18},
}

// quantDtypes are the kernels' block dtypes: their ggml ids, block sizes,
// quantizers and dequantizers are the kernels package's.
var quantDtypes = []tensor.Dtype{kernels.Q8_0, kernels.Q4K, kernels.Q6K}

func init() {
	for _, dt := range quantDtypes {
		id, ok := kernels.GGMLType(dt)
		if !ok {
			panic(fmt.Sprintf("gguf: kernels dtype %v has no ggml type id", dt))
		}
		t := TensorType(id)
		traits[t] = typeTraits{kernels.DtypeName(dt), kernels.BlockWeights(dt), kernels.BlockBytes(dt)}
		RegisterDequantizer(t, func(dst []float32, src []byte) error { return kernels.Dequantize(dt, src, dst) })
		RegisterQuantizer(t, func(dst []byte, src []float32) error { return kernels.Quantize(dt, dst, src) })
	}
}

// Dtype returns the kernels dtype of t (F32, F16, BF16, Q8_0, Q4_K, Q6_K).
func (t TensorType) Dtype() (tensor.Dtype, error) {
	switch t {
	case TypeF32:
		return tensor.Float32, nil
	case TypeF16:
		return kernels.Float16, nil
	case TypeBF16:
		return kernels.BFloat16, nil
	}
	return kernels.DtypeOfGGML(int(t))
}

// String is ggml's name of the type ("F32", "Q4_K", ...).
func (t TensorType) String() string {
	if tr, ok := traits[t]; ok {
		return tr.name
	}
	return fmt.Sprintf("type(%d)", uint32(t))
}

// Known reports whether this package knows t's block layout.
func (t TensorType) Known() bool { _, ok := traits[t]; return ok }

// BlockWeights is the number of values in one block of t (1 for the float
// types); a row (ne[0]) must be a multiple of it.
func (t TensorType) BlockWeights() int { return traits[t].blockWeights }

// BlockBytes is the size in bytes of one block of t.
func (t TensorType) BlockBytes() int { return traits[t].blockBytes }

// ParseTensorType maps a type name (f32, f16, bf16, q4_0, q8_0, q4_k, q6_k;
// any case) to its type.
func ParseTensorType(s string) (TensorType, error) {
	for t, tr := range traits {
		if equalFold(s, tr.name) {
			return t, nil
		}
	}
	return 0, fmt.Errorf("gguf: unknown tensor type %q (want f32, f16, bf16, q4_0, q8_0, q4_k or q6_k)", s)
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// TensorBytes is the size in bytes of a tensor of type t with ggml dims
// (ne[0] first); an error when ne[0] is not a multiple of the block, the
// type is unknown, or the size overflows int64.
func TensorBytes(t TensorType, dims []uint64) (int64, error) {
	tr, ok := traits[t]
	if !ok {
		return 0, fmt.Errorf("unknown ggml type id %d", uint32(t))
	}
	if len(dims) == 0 || len(dims) > MaxDims {
		return 0, fmt.Errorf("%d dimensions (want 1 to %d)", len(dims), MaxDims)
	}
	if dims[0]%uint64(tr.blockWeights) != 0 {
		return 0, fmt.Errorf("row length ne[0]=%d is not a multiple of %s's block of %d values", dims[0], tr.name, tr.blockWeights)
	}
	n := dims[0] / uint64(tr.blockWeights) * uint64(tr.blockBytes)
	for _, d := range dims[1:] {
		hi, lo := bits.Mul64(n, d)
		if hi != 0 || lo > math.MaxInt64 {
			return 0, fmt.Errorf("dimensions %v: size overflows", dims)
		}
		n = lo
	}
	if n > math.MaxInt64 {
		return 0, fmt.Errorf("dimensions %v: size overflows", dims)
	}
	// the element count must fit too
	var e uint64 = 1
	for _, d := range dims {
		hi, lo := bits.Mul64(e, d)
		if hi != 0 || lo > math.MaxInt64 {
			return 0, fmt.Errorf("dimensions %v: element count overflows", dims)
		}
		e = lo
	}
	return int64(n), nil
}

// GGMLDims converts a row-major shape (outermost first) to ggml's dims
// (ne[0] = the last, contiguous axis). A scalar (empty shape) is [1].
func GGMLDims(shape []int) []uint64 {
	if len(shape) == 0 {
		return []uint64{1}
	}
	d := make([]uint64, len(shape))
	for i, s := range shape {
		d[len(shape)-1-i] = uint64(s)
	}
	return d
}

// rowMajor converts ggml dims to a row-major shape (the inverse of
// GGMLDims); dims were validated to fit int.
func rowMajor(dims []uint64) []int {
	s := make([]int, len(dims))
	for i, d := range dims {
		s[len(dims)-1-i] = int(d)
	}
	return s
}

// ValueType is a metadata value type (enum gguf_metadata_value_type).
type ValueType uint32

// The metadata value types. Go values: ValUint8 uint8, ValInt8 int8,
// ValUint16 uint16, ValInt16 int16, ValUint32 uint32, ValInt32 int32,
// ValFloat32 float32, ValBool bool, ValString string, ValUint64 uint64,
// ValInt64 int64, ValFloat64 float64; an array of one of these is the
// matching Go slice ([]uint8 ... []string ... []float64), an array of
// arrays is an Array.
const (
	ValUint8   ValueType = 0
	ValInt8    ValueType = 1
	ValUint16  ValueType = 2
	ValInt16   ValueType = 3
	ValUint32  ValueType = 4
	ValInt32   ValueType = 5
	ValFloat32 ValueType = 6
	ValBool    ValueType = 7
	ValString  ValueType = 8
	ValArray   ValueType = 9
	ValUint64  ValueType = 10
	ValInt64   ValueType = 11
	ValFloat64 ValueType = 12
)

var valueTypeNames = [...]string{"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "bool", "string", "array", "uint64", "int64", "float64"}

func (v ValueType) String() string {
	if int(v) < len(valueTypeNames) {
		return valueTypeNames[v]
	}
	return fmt.Sprintf("value_type(%d)", uint32(v))
}

// scalarSize is the encoded size of a fixed-size scalar type (0 for
// string and array).
func scalarSize(v ValueType) int {
	switch v {
	case ValUint8, ValInt8, ValBool:
		return 1
	case ValUint16, ValInt16:
		return 2
	case ValUint32, ValInt32, ValFloat32:
		return 4
	case ValUint64, ValInt64, ValFloat64:
		return 8
	}
	return 0
}

// Array is a metadata array whose elements are themselves arrays (each
// one of the slice types, or an Array); arrays of scalars or strings are
// plain Go slices.
type Array []any

// KV is one metadata key/value pair. Value holds one of the Go types listed
// at ValueType.
type KV struct {
	Key   string
	Value any
}

// TypeOf returns the metadata type of a Go value (and, for an array, its
// element type); an error for any other Go type.
func TypeOf(v any) (t, elem ValueType, err error) {
	switch x := v.(type) {
	case uint8:
		return ValUint8, 0, nil
	case int8:
		return ValInt8, 0, nil
	case uint16:
		return ValUint16, 0, nil
	case int16:
		return ValInt16, 0, nil
	case uint32:
		return ValUint32, 0, nil
	case int32:
		return ValInt32, 0, nil
	case float32:
		return ValFloat32, 0, nil
	case bool:
		return ValBool, 0, nil
	case string:
		return ValString, 0, nil
	case uint64:
		return ValUint64, 0, nil
	case int64:
		return ValInt64, 0, nil
	case float64:
		return ValFloat64, 0, nil
	case []uint8:
		return ValArray, ValUint8, nil
	case []int8:
		return ValArray, ValInt8, nil
	case []uint16:
		return ValArray, ValUint16, nil
	case []int16:
		return ValArray, ValInt16, nil
	case []uint32:
		return ValArray, ValUint32, nil
	case []int32:
		return ValArray, ValInt32, nil
	case []float32:
		return ValArray, ValFloat32, nil
	case []bool:
		return ValArray, ValBool, nil
	case []string:
		return ValArray, ValString, nil
	case []uint64:
		return ValArray, ValUint64, nil
	case []int64:
		return ValArray, ValInt64, nil
	case []float64:
		return ValArray, ValFloat64, nil
	case Array:
		for i, it := range x {
			if t, _, err := TypeOf(it); err != nil || t != ValArray {
				return 0, 0, fmt.Errorf("gguf: Array item %d is %T, not an array (an array of scalars or strings is a Go slice)", i, it)
			}
		}
		return ValArray, ValArray, nil
	}
	return 0, 0, fmt.Errorf("gguf: %T is not a GGUF metadata value", v)
}
