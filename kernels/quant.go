package kernels

// Block-quantized storage dtypes with ggml's block layouts (byte for byte,
// so a GGUF tensor's bytes are viewed in place), and the Go reference
// dequantizer (ggml's dequantize_row_q8_0 / _q4_K / _q6_K).
//
// A quantized weight is a *tensor.Dense whose dtype is Q8_0, Q4K or Q6K:
// its element type is the ggml block struct, its shape is the storage shape
// [out, in/BlockWeights] (blocks run along the last, input, dimension), and
// LogicalShape gives [out, in]. See doc.go.

import (
	"fmt"
	"reflect"
	"slices"
	"unsafe"

	"gorgonia.org/tensor"
)

// BlockQ8_0 is ggml's block_q8_0: 32 weights w[j] = d·qs[j] (34 bytes).
type BlockQ8_0 struct {
	D  F16
	Qs [32]int8
}

// BlockQ4K is ggml's block_q4_K: a 256-weight super-block of 8 sub-blocks
// of 32 (144 bytes). Sub-block j has a 6-bit scale sc[j] and 6-bit min
// m[j] packed in Scales; weight l of it is d·sc[j]·q − dmin·m[j] with q the
// 4-bit quant: the low nibbles of Qs[32·(j/2) ...] for even j, the high
// nibbles for odd j.
type BlockQ4K struct {
	D      F16
	Dmin   F16
	Scales [12]uint8
	Qs     [128]uint8
}

// BlockQ6K is ggml's block_q6_K: 256 weights, 16 groups of 16 with int8
// scales (210 bytes): w = d·scales[g]·(q − 32), q 6 bits (low 4 in Ql, high
// 2 in Qh).
type BlockQ6K struct {
	Ql     [128]uint8
	Qh     [64]uint8
	Scales [16]int8
	D      F16
}

// The quantized tensor dtypes.
var (
	Q8_0 = tensor.Dtype{Type: reflect.TypeOf(BlockQ8_0{})}
	Q4K  = tensor.Dtype{Type: reflect.TypeOf(BlockQ4K{})}
	Q6K  = tensor.Dtype{Type: reflect.TypeOf(BlockQ6K{})}
)

// ggml type ids of the quantized dtypes.
const (
	GGMLTypeQ8_0 = 8
	GGMLTypeQ4K  = 12
	GGMLTypeQ6K  = 14
)

func init() {
	dtypeTable = append(dtypeTable,
		&dtypeTraits{dt: Q8_0, name: "Q8_0", aliases: []string{"q8_0"}, ggml: GGMLTypeQ8_0, blockWeights: 32, view: viewOf[BlockQ8_0], dequant: dequantQ8_0, qkind: 0},
		&dtypeTraits{dt: Q4K, name: "Q4_K", aliases: []string{"q4_k", "q4_K"}, ggml: GGMLTypeQ4K, blockWeights: 256, view: viewOf[BlockQ4K], dequant: dequantQ4K, qkind: 1},
		&dtypeTraits{dt: Q6K, name: "Q6_K", aliases: []string{"q6_k", "q6_K"}, ggml: GGMLTypeQ6K, blockWeights: 256, view: viewOf[BlockQ6K], dequant: dequantQ6K, qkind: 2},
	)
}

// IsQuant reports whether dt is a block-quantized dtype.
func IsQuant(dt tensor.Dtype) bool {
	t := traitsOf(dt)
	return t != nil && t.blockWeights > 1
}

// IsStorage reports whether dt is a frozen storage dtype read in place by
// Linear and Gather (16-bit or block-quantized).
func IsStorage(dt tensor.Dtype) bool { return IsHalf(dt) || IsQuant(dt) }

// BlockWeights returns the number of weights per element of dt (1 for the
// float and 16-bit dtypes).
func BlockWeights(dt tensor.Dtype) int {
	if t := traitsOf(dt); t != nil {
		return t.blockWeights
	}
	return 1
}

// BlockBytes returns the bytes per element (block) of dt.
func BlockBytes(dt tensor.Dtype) int { return ElemSize(dt) }

// ParseQuantType maps a quantized dtype name ("Q8_0", "q8_0", "Q4_K",
// "q4_k", "Q6_K", "q6_k") to its dtype.
func ParseQuantType(s string) (tensor.Dtype, error) {
	for _, t := range dtypeTable {
		if t.blockWeights > 1 && (s == t.name || slices.Contains(t.aliases, s)) {
			return t.dt, nil
		}
	}
	return tensor.Dtype{}, fmt.Errorf("unknown quantized type %q (want q8_0, q4_k or q6_k)", s)
}

// GGMLType returns dt's ggml type id (F32 0, F16 1, Q8_0 8, Q4_K 12, Q6_K
// 14, BF16 30); false if ggml has none.
func GGMLType(dt tensor.Dtype) (int, bool) {
	if t := traitsOf(dt); t != nil && t.ggml >= 0 {
		return t.ggml, true
	}
	return 0, false
}

// DtypeOfGGML returns the dtype of a ggml type id, or an error naming it.
func DtypeOfGGML(id int) (tensor.Dtype, error) {
	for _, t := range dtypeTable {
		if t.ggml == id {
			return t.dt, nil
		}
	}
	return tensor.Dtype{}, fmt.Errorf("ggml type %d is not supported (want F32 0, F16 1, Q8_0 8, Q4_K 12, Q6_K 14 or BF16 30)", id)
}

// QuantShape returns the storage shape (in elements) of a tensor of dtype
// dt and logical shape logical: the last dimension divided by the block
// size, which must divide it.
func QuantShape(dt tensor.Dtype, logical []int) ([]int, error) {
	bw := BlockWeights(dt)
	if len(logical) == 0 {
		return nil, fmt.Errorf("kernels: a %s tensor cannot be a scalar", DtypeName(dt))
	}
	s := append([]int(nil), logical...)
	if last := s[len(s)-1]; last%bw != 0 {
		return nil, fmt.Errorf("kernels: %s needs the last dimension to be a multiple of %d, got shape %v", DtypeName(dt), bw, logical)
	}
	s[len(s)-1] /= bw
	return s, nil
}

// LogicalShapeOf returns the logical shape of a dtype-dt tensor of storage
// shape s (the last dimension times the block size).
func LogicalShapeOf(dt tensor.Dtype, s []int) []int {
	l := append([]int(nil), s...)
	if len(l) > 0 {
		l[len(l)-1] *= BlockWeights(dt)
	}
	return l
}

// LogicalShape returns t's logical shape: its shape for the unquantized
// dtypes, [.., last·BlockWeights] for a quantized one.
func LogicalShape(t *tensor.Dense) []int { return LogicalShapeOf(t.Dtype(), t.Shape()) }

// QuantBytes returns the raw block bytes of a quantized tensor (aliasing it).
func QuantBytes(t *tensor.Dense) ([]byte, error) {
	if !IsQuant(t.Dtype()) {
		return nil, fmt.Errorf("kernels: %v is not a quantized dtype", t.Dtype())
	}
	n := t.Shape().TotalSize() * ElemSize(t.Dtype())
	if n == 0 {
		return nil, nil
	}
	return unsafe.Slice((*byte)(reflect.ValueOf(t.Data()).UnsafePointer()), n), nil
}

// Dequantize writes the float32 values of the blocks in raw (ggml layout of
// dtype dt) to dst: exactly ggml's dequantize_row_*. raw must hold exactly
// len(dst)/BlockWeights(dt) blocks.
func Dequantize(dt tensor.Dtype, raw []byte, dst []float32) error {
	t := traitsOf(dt)
	if t == nil || t.dequant == nil {
		return fmt.Errorf("kernels: Dequantize: %v is not a quantized dtype", dt)
	}
	if len(dst)%t.blockWeights != 0 {
		return fmt.Errorf("kernels: Dequantize %s: %d values are not whole blocks of %d", t.name, len(dst), t.blockWeights)
	}
	if want := len(dst) / t.blockWeights * ElemSize(dt); len(raw) != want {
		return fmt.Errorf("kernels: Dequantize %s: %d values need %d bytes, got %d", t.name, len(dst), want, len(raw))
	}
	t.dequant(raw, dst)
	return nil
}

// DequantizeRows writes rows [r0, r1) of the quantized matrix w (logical
// [out, in]) to dst [(r1−r0)·in].
func DequantizeRows(w *tensor.Dense, r0, r1 int, dst []float32) error {
	raw, err := QuantBytes(w)
	if err != nil {
		return err
	}
	ls := LogicalShape(w)
	if len(ls) != 2 {
		return fmt.Errorf("kernels: DequantizeRows: want a matrix, got logical shape %v", ls)
	}
	if r0 < 0 || r1 < r0 || r1 > ls[0] {
		return fmt.Errorf("kernels: DequantizeRows: rows [%d, %d) outside [0, %d)", r0, r1, ls[0])
	}
	if len(dst) != (r1-r0)*ls[1] {
		return fmt.Errorf("kernels: DequantizeRows: dst has %d values, rows [%d, %d) of %v need %d", len(dst), r0, r1, ls, (r1-r0)*ls[1])
	}
	rb := w.Shape()[1] * ElemSize(w.Dtype())
	return Dequantize(w.Dtype(), raw[r0*rb:r1*rb], dst)
}

// widenQuant is Widen32 for a quantized t: off and len(dst) count logical
// weights on block boundaries.
func widenQuant(dst []float32, t *tensor.Dense, off int) error {
	raw, err := QuantBytes(t)
	if err != nil {
		return fmt.Errorf("kernels: Widen32 of dtype %v", t.Dtype())
	}
	bw, es := BlockWeights(t.Dtype()), ElemSize(t.Dtype())
	if off%bw != 0 || len(dst)%bw != 0 {
		return fmt.Errorf("kernels: Widen32 of %s: range [%d, %d) is not on %d-weight block boundaries", DtypeName(t.Dtype()), off, off+len(dst), bw)
	}
	return Dequantize(t.Dtype(), raw[off/bw*es:(off+len(dst))/bw*es], dst)
}

func f16At(b []byte) float32 { return F16ToFloat32(uint16(b[0]) | uint16(b[1])<<8) }

// dequantQ8_0: w[j] = d·qs[j] (exact in float32).
func dequantQ8_0(raw []byte, dst []float32) {
	for b := 0; b*34 < len(raw); b++ {
		blk := raw[b*34 : b*34+34]
		d := f16At(blk)
		y := dst[b*32 : b*32+32]
		for j := range y {
			y[j] = float32(int8(blk[2+j])) * d
		}
	}
}

// q4KScaleMin unpacks the 6-bit scale and min of sub-block j (0..7) from
// the 12 packed bytes (ggml's get_scale_min_k4): j < 4 in the low 6 bits of
// bytes j and j+4; j ≥ 4 in the nibbles of byte j+4 with the top 2 bits
// from the high bits of bytes j−4 and j.
func q4KScaleMin(j int, s []byte) (sc, m uint8) {
	if j < 4 {
		return s[j] & 63, s[j+4] & 63
	}
	return s[j+4]&0xf | (s[j-4]>>6)<<4, s[j+4]>>4 | (s[j]>>6)<<4
}

// dequantQ4K: sub-block j of 32: d·sc[j]·q − dmin·m[j] (ggml's order of
// operations; every product is exact in float32, so the one rounding is the
// subtraction's).
func dequantQ4K(raw []byte, dst []float32) {
	for b := 0; b*144 < len(raw); b++ {
		blk := raw[b*144 : b*144+144]
		d, dmin := f16At(blk), f16At(blk[2:])
		sc, qs := blk[4:16], blk[16:144]
		y := dst[b*256 : b*256+256]
		for j := 0; j < 8; j += 2 {
			s0, m0 := q4KScaleMin(j, sc)
			s1, m1 := q4KScaleMin(j+1, sc)
			d0, mm0 := float32(d*float32(s0)), float32(dmin*float32(m0))
			d1, mm1 := float32(d*float32(s1)), float32(dmin*float32(m1))
			q := qs[16*j : 16*j+32]
			for l := 0; l < 32; l++ {
				y[32*j+l] = float32(d0*float32(q[l]&0xf)) - mm0
				y[32*j+32+l] = float32(d1*float32(q[l]>>4)) - mm1
			}
		}
	}
}

// dequantQ6K: two halves of 128; in each, weight l of the four 32-runs
// takes the low (runs 0, 1) or high (runs 2, 3) nibble of ql[l] / ql[l+32]
// and bits 2r..2r+1 of qh[l]; w = d·scales[g]·(q − 32), g the 16-group.
func dequantQ6K(raw []byte, dst []float32) {
	for b := 0; b*210 < len(raw); b++ {
		blk := raw[b*210 : b*210+210]
		d := f16At(blk[208:])
		for h := 0; h < 2; h++ {
			ql, qh := blk[64*h:64*h+64], blk[128+32*h:128+32*h+32]
			sc := blk[192+8*h : 192+8*h+8]
			y := dst[b*256+128*h : b*256+128*h+128]
			for l := 0; l < 32; l++ {
				g := l / 16
				q0 := int32(ql[l]&0xf|(qh[l]&3)<<4) - 32
				q1 := int32(ql[l+32]&0xf|(qh[l]>>2&3)<<4) - 32
				q2 := int32(ql[l]>>4|(qh[l]>>4&3)<<4) - 32
				q3 := int32(ql[l+32]>>4|(qh[l]>>6&3)<<4) - 32
				y[l] = float32(d*float32(int8(sc[g]))) * float32(q0)
				y[l+32] = float32(d*float32(int8(sc[g+2]))) * float32(q1)
				y[l+64] = float32(d*float32(int8(sc[g+4]))) * float32(q2)
				y[l+96] = float32(d*float32(int8(sc[g+6]))) * float32(q3)
			}
		}
	}
}
