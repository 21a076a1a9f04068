package kernels

// Kernels over 16-bit parameters (BF16, F16) with float32 activations and
// float32 accumulation, so that a model whose weights stay bfloat16 in
// memory (memory-mapped shards) computes what the float32 model on the
// upcast weights computes:
//
//   - Linear with a half weight (HalfLinear below): decode-sized inputs (at
//     most gemvMaxRows rows) run half.c's GEMV, which reads the weight in
//     place once (half the bytes of float32: decode is memory-bound);
//     larger inputs widen the weight a tile of output rows at a time into a
//     float32 scratch and run OpenBLAS's sgemm on the tile: almost every
//     output is bit-identical to the float32 model's (OpenBLAS picks other
//     kernels for other block shapes, which moves the last bits of a few).
//   - dx = dy·W through a frozen half weight (LoRA on a bf16 base): the
//     weight is widened a strip of input columns at a time.
//   - Gather from a half table (token embeddings) widens the rows it copies.
//   - Small parameters (norm scales, biases, layer scales, depthwise
//     kernels, the row separator) go through Widen, a float32 copy in the
//     arena, read by the float kernels (Builder does this).
//
// Kernels never write into a half parameter (it may be read-only mapped
// memory), and no gradient is taken with respect to one: Linear and Gather
// do not differentiate a half input, and CheckTrainable refuses it by name.

/*
#include <stdint.h>
int mg_half_best_path(void);
void mg_widen(int path, int kind, const uint16_t *s, long lds, float *d, long ldd, long rows, long cols);
void mg_gemv_half(int path, int kind, const float *x, long rows, const uint16_t *w, long k, float *y, long ldy, long o0, long o1);
uint64_t mg_read_sum(int path, const uint8_t *p, long n);
int mg_has_bf16dot(void);
void mg_split_pairs(const float *x, float *xp, long rows, long k, long B);
void mg_gemv_bf16_pairs(int path, const float *xp, long rows, const uint16_t *w, long k, float *y, long ldy, long o0, long o1);
void mg_round_bf16(const float *x, uint16_t *d, long n);
void mg_gemv_bf16dot(const uint16_t *xb, long rows, const uint16_t *w, long k, float *y, long ldy, long o0, long o1);
*/
import "C"

import (
	"fmt"
	"strings"
	"sync"
	"unsafe"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// HalfPath is a vector code path of half.c.
type HalfPath int

const (
	HalfScalar HalfPath = iota // portable C
	HalfAVX2                   // AVX2 + FMA + F16C
	HalfAVX512                 // AVX-512 F/BW/VL/DQ
)

func (p HalfPath) String() string {
	switch p {
	case HalfAVX2:
		return "avx2"
	case HalfAVX512:
		return "avx512"
	}
	return "scalar"
}

// BestHalfPath is the fastest path the CPU supports.
var BestHalfPath = HalfPath(C.mg_half_best_path())

// halfPath is the path in use (tests switch it with SetHalfPath).
var halfPath = BestHalfPath

// SetHalfPath selects the code path of the half kernels and returns the
// previous one; a path the CPU lacks is an error. For tests and benchmarks.
func SetHalfPath(p HalfPath) (HalfPath, error) {
	if p < HalfScalar || p > BestHalfPath {
		return halfPath, fmt.Errorf("kernels: half path %v is not supported by this CPU (best: %v)", p, BestHalfPath)
	}
	old := halfPath
	halfPath = p
	return old, nil
}

// halfBits returns the raw 16-bit data of a BF16/F16 tensor and its kind
// for half.c (0 bf16, 1 f16).
func halfBits(t *tensor.Dense) ([]uint16, C.int, bool) {
	switch s := t.Data().(type) {
	case []BF16:
		return unsafe.Slice((*uint16)(unsafe.SliceData(s)), len(s)), 0, true
	case []F16:
		return unsafe.Slice((*uint16)(unsafe.SliceData(s)), len(s)), 1, true
	}
	return nil, 0, false
}

func hp(s []uint16) *C.uint16_t {
	if len(s) == 0 {
		return nil
	}
	return (*C.uint16_t)(unsafe.Pointer(&s[0]))
}

// widenRows writes rows×cols halves of s (row stride lds) to d (row stride ldd).
func widenRows(kind C.int, s []uint16, lds int, d []float32, ldd, rows, cols int) {
	if rows == 0 || cols == 0 {
		return
	}
	C.mg_widen(C.int(halfPath), kind, hp(s), C.long(lds), fp(d), C.long(ldd), C.long(rows), C.long(cols))
}

// ComputeDtype is the float dtype a graph computes in for parameters of
// dtype dt: float32 for the 16-bit storage dtypes, dt otherwise.
func ComputeDtype(dt tensor.Dtype) tensor.Dtype {
	if IsHalf(dt) {
		return tensor.Float32
	}
	return dt
}

// Widen returns x (a BF16/F16 node) as float32, exactly; a float node is
// returned as is. For small parameters read by float kernels; large
// matrices are read in place by Linear and Gather.
func Widen(x *G.Node) (*G.Node, error) {
	if x == nil {
		return nil, fmt.Errorf("kernels: Widen: input is nil")
	}
	if !IsHalf(x.Dtype()) {
		return x, nil
	}
	if x.Shape().Dims() == 0 {
		return nil, fmt.Errorf("kernels: Widen: %s is a scalar", x.Name())
	}
	op, err := newHalfOp("Widen", "", x.Shape().Dims(), 1, x)
	if err != nil {
		return nil, err
	}
	op.shape = func(in []tensor.Shape) (tensor.Shape, error) { return in[0].Clone(), nil }
	op.do = func(in []*tensor.Dense, o *tensor.Dense) (G.Value, error) {
		t, y := newOut[float32](o, in[0].Shape()...)
		Widen32(y, in[0], 0)
		return t, nil
	}
	op.fullWrite = true
	return apply(op, x)
}

// scratch32 hands out float32 scratch buffers (weight tiles).
var scratch32 = sync.Pool{New: func() any { return new([]float32) }}

func getScratch(n int) *[]float32 {
	p := scratch32.Get().(*[]float32)
	if cap(*p) < n {
		*p = make([]float32, n)
	}
	*p = (*p)[:n]
	return p
}

// gemvMaxRows is the largest number of input rows the half GEMV serves
// (decode steps); more rows go through widened tiles and sgemm.
const gemvMaxRows = 4

// halfTileFloats is the size of one goroutine's widened weight tile.
var halfTileFloats = 1 << 22

// linearHalf computes y = x·Wᵀ for x [rows, k] float32 and a half w [out, k]
// into y [rows, out].
func linearHalf(x []float32, rows, k int, w *tensor.Dense, out int, y []float32, bf16Dot bool) {
	bits, kind, _ := halfBits(w)
	if rows <= gemvMaxRows {
		gemvHalf(kind, x, rows, k, bits, out, y, bf16Dot)
		return
	}
	// Tiles of output rows: sgemm(x, tileᵀ) fills columns [lo, hi) of y.
	tile := max(64, halfTileFloats/max(k, 1)/64*64)
	splitRange(out, tile, func(lo, hi int) {
		for o0 := lo; o0 < hi; o0 += tile {
			o1 := min(hi, o0+tile)
			sp := getScratch((o1 - o0) * k)
			s := *sp
			widenRows(kind, bits[o0*k:], k, s, k, o1-o0, k)
			gemmSeq(false, true, rows, o1-o0, k, 1, x, k, s, k, 0, y[o0:], out)
			scratch32.Put(sp)
		}
	})
}

// HasBF16Dot reports whether the CPU has the AVX512_BF16 dot-product
// instructions (/proc/cpuinfo: avx512_bf16) that --compute bf16 uses.
var HasBF16Dot = C.mg_has_bf16dot() != 0

// gemvHalf: y [rows, out] = x [rows, k]·wᵀ, w the half bits [out, k], over
// both cores (each reads its own weight rows once). bf16Dot is
// Options.ComputeBF16 (bf16 weights only).
func gemvHalf(kind C.int, x []float32, rows, k int, w []uint16, out int, y []float32, bf16Dot bool) {
	if bf16Dot && kind == 0 {
		gemvBF16Dot(x, rows, k, w, out, y)
		return
	}
	if kind == 0 && halfPath >= HalfAVX2 {
		gemvBF16Pairs(x, rows, k, w, out, y)
		return
	}
	if out*k < parGemmMin {
		C.mg_gemv_half(C.int(halfPath), kind, fp(x), C.long(rows), hp(w), C.long(k), fp(y), C.long(out), 0, C.long(out))
		return
	}
	splitRows(out, func(lo, hi int) {
		C.mg_gemv_half(C.int(halfPath), kind, fp(x), C.long(rows), hp(w), C.long(k), fp(y), C.long(out), C.long(lo), C.long(hi))
	})
}

// gemvBF16Pairs is gemvHalf for bf16 weights on the vector paths: x is
// split into even and odd elements per block once, then every weight lane
// widens with one shift or one and.
func gemvBF16Pairs(x []float32, rows, k int, w []uint16, out int, y []float32) {
	block := 16
	if halfPath == HalfAVX512 {
		block = 32
	}
	sp := getScratch(rows * k)
	defer scratch32.Put(sp)
	xp := *sp
	C.mg_split_pairs(fp(x), fp(xp), C.long(rows), C.long(k), C.long(block))
	run := func(lo, hi int) {
		C.mg_gemv_bf16_pairs(C.int(halfPath), fp(xp), C.long(rows), hp(w), C.long(k), fp(y), C.long(out), C.long(lo), C.long(hi))
	}
	if out*k < parGemmMin {
		run(0, out)
		return
	}
	splitRows(out, run)
}

// roundBF16 rounds x to bfloat16 bit patterns in d (nearest even, NaN kept
// quiet: the same bits as Float32ToBF16).
func roundBF16(x []float32, d []uint16) {
	if len(x) == 0 {
		return
	}
	C.mg_round_bf16(fp(x), hp(d[:len(x)]), C.long(len(x)))
}

// gemvBF16Dot is gemvHalf in --compute bf16 mode (bf16 weights only).
func gemvBF16Dot(x []float32, rows, k int, w []uint16, out int, y []float32) {
	xb := make([]uint16, rows*k)
	C.mg_round_bf16(fp(x), hp(xb), C.long(rows*k))
	run := func(lo, hi int) {
		C.mg_gemv_bf16dot(hp(xb), C.long(rows), hp(w), C.long(k), fp(y), C.long(out), C.long(lo), C.long(hi))
	}
	if out*k < parGemmMin {
		run(0, out)
		return
	}
	splitRows(out, run)
}

// linearGradXHalf computes dx = dy·W for dy [rows, out] and a half w
// [out, k] into dx [rows, k], widening strips of w's columns (each element
// of dx is one sgemm dot product over all of out).
func linearGradXHalf(dy []float32, rows, out int, w *tensor.Dense, k int, dx []float32) {
	bits, kind, _ := halfBits(w)
	strip := max(64, halfTileFloats/max(out, 1)/64*64)
	splitRange(k, strip, func(lo, hi int) {
		for c0 := lo; c0 < hi; c0 += strip {
			c1 := min(hi, c0+strip)
			sp := getScratch(out * (c1 - c0))
			s := *sp
			widenRows(kind, bits[c0:], k, s, c1-c0, out, c1-c0)
			gemmSeq(false, false, rows, c1-c0, out, 1, dy, out, s, c1-c0, 0, dx[c0:], k)
			scratch32.Put(sp)
		}
	})
}

// ReadBandwidth reads buf on n goroutines (GOMAXPROCS-style split) and
// returns a checksum: the memory-bandwidth probe of the benchmarks.
func ReadBandwidth(buf []byte, n int) uint64 {
	var mu sync.Mutex
	var sum uint64
	chunk := (len(buf)/n + 255) / 256 * 256
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		lo, hi := i*chunk, min(len(buf), (i+1)*chunk)
		if lo >= hi {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := uint64(C.mg_read_sum(C.int(halfPath), (*C.uint8_t)(unsafe.Pointer(&buf[lo])), C.long(hi-lo)))
			mu.Lock()
			sum ^= s
			mu.Unlock()
		}()
	}
	wg.Wait()
	return sum
}

// CheckTrainable refuses gradients with respect to half or quantized
// parameters, naming the first one: they are frozen storage (possibly
// read-only mapped).
func CheckTrainable(wrt G.Nodes) error {
	for _, n := range wrt {
		if n != nil && IsStorage(n.Dtype()) {
			return FrozenHalfError(n.Name(), n.Dtype())
		}
	}
	return nil
}

// FrozenHalfError is the error for training a half parameter (name, dtype).
func FrozenHalfError(name string, dt tensor.Dtype) error {
	return fmt.Errorf("parameter %s is %s and frozen; use trainable: lora or --dtype f32", name, halfName(dt))
}

// halfName is the lower-case dtype name used in messages (bf16, f16,
// q8_0, q4_k, q6_k).
func halfName(dt tensor.Dtype) string {
	if dt == Float16 {
		return "f16"
	}
	if dt == BFloat16 {
		return "bf16"
	}
	if IsQuant(dt) {
		return strings.ToLower(DtypeName(dt))
	}
	return DtypeName(dt)
}
