package kernels

// Linear, dx and Gather over block-quantized weights (quant.go, quant.c),
// float32 activations and accumulation:
//
//   - Decode (at most gemvMaxRows input rows): a GEMV that reads the blocks
//     in place, over both cores in 64-row pieces (splitRows). Two modes:
//     by default (llama.cpp's approach) each input row is quantized per
//     block to int8 (32 activations for Q8_0 weights, 256 for the
//     K-quants, scale max|x|/127, round to nearest) and the blocks are
//     multiplied with integer dot products (vpmaddubsw, vpdpbusd,
//     vpdpwssd), one float scale multiply per block (the AVX-512 Q4_K
//     kernel unpacks each block once for all input rows); with
//     Options.QuantExact the activations stay float32 and the weights are
//     dequantized in registers (ggml's float32 values exactly) and
//     multiplied with FMAs, four accumulators per input row (the scalar
//     path dequantizes a block into an L1 buffer).
//   - Prefill: tiles of output rows are dequantized into a float32 scratch
//     and multiplied by sgemm (as linearHalf).
//   - dx = dy·W (QLoRA): strips of whole blocks of columns dequantized.
//   - Gather dequantizes the rows it copies.
//
// Error of the 8-bit-activation GEMV: each activation x_i of block B moves
// by at most d_B/2 = max_{j∈B}|x_j|/254, so
//
//	|y_q8 − y| ≤ Σ_B (max_{j∈B}|x_j|/254)·Σ_{i∈B}|w_i|  (+ float32 rounding)
//
// (TestGEMVQuant checks it on every path). The exact mode equals the
// float32 product on the dequantized weights up to summation order.

/*
#include <stdint.h>
int mg_quant_best_path(void);
void mg_dequant(int path, int type, const uint8_t *w, long ldw, long rows, long nb, float *d, long ldd);
void mg_gemv_qf32(int path, int type, const float *x, long rows, const uint8_t *w, long k, float *y, long ldy, long o0, long o1);
void mg_quant_act(int path, const float *x, long rows, long k, long bs, int perm, int8_t *q, float *d, int16_t *s16);
void mg_gemv_q8(int path, int type, const int8_t *xq, const float *xd, const int16_t *xs, long rows, const uint8_t *w, long k, float *y, long ldy, long o0, long o1);
*/
import "C"

import (
	"fmt"
	"sync"
	"unsafe"

	"gorgonia.org/tensor"
)

// QuantPath is a code path of quant.c.
type QuantPath int

const (
	QuantScalar QuantPath = iota // portable C
	QuantAVX2                    // AVX2 + FMA + F16C
	QuantAVX512                  // AVX-512 F/BW/VL/DQ
	QuantVNNI                    // AVX-512 + VNNI (vpdpbusd, vpdpwssd)
)

func (p QuantPath) String() string {
	return [...]string{"scalar", "avx2", "avx512", "avx512vnni"}[p]
}

// BestQuantPath is the fastest path the CPU supports.
var BestQuantPath = QuantPath(C.mg_quant_best_path())

// quantPath is the path in use (tests and benchmarks switch it).
var quantPath = BestQuantPath

// SetQuantPath selects the code path of the quantized kernels and returns
// the previous one; a path the CPU lacks is an error.
func SetQuantPath(p QuantPath) (QuantPath, error) {
	if p < QuantScalar || p > BestQuantPath {
		return quantPath, fmt.Errorf("kernels: quant path %v is not supported by this CPU (best: %v)", p, BestQuantPath)
	}
	old := quantPath
	quantPath = p
	return old, nil
}

// quantRaw returns w's block bytes, quant.c's type index, the weights per
// block and the bytes per block.
func quantRaw(w *tensor.Dense) (raw []byte, kind C.int, bw, bs int) {
	t := traitsOf(w.Dtype())
	raw, err := QuantBytes(w)
	if err != nil || t == nil {
		panic(fmt.Sprintf("kernels: %v is not a quantized dtype", w.Dtype()))
	}
	return raw, C.int(t.qkind), t.blockWeights, ElemSize(w.Dtype())
}

func bp(b []byte) *C.uint8_t {
	if len(b) == 0 {
		return nil
	}
	return (*C.uint8_t)(unsafe.Pointer(&b[0]))
}

// dequantRows writes rows [r0, r1) of the quantized matrix w as float32 to
// d (row stride ldd).
func dequantRows(w *tensor.Dense, r0, r1 int, d []float32, ldd int) {
	raw, kind, _, bs := quantRaw(w)
	nb := w.Shape()[1]
	if r1 <= r0 || nb == 0 {
		return
	}
	C.mg_dequant(C.int(quantPath), kind, bp(raw[r0*nb*bs:]), C.long(nb*bs), C.long(r1-r0), C.long(nb), fp(d), C.long(ldd))
}

// linearQuant computes y = x·Wᵀ for x [rows, k] float32 and a quantized w
// (logical [out, k]) into y [rows, out]; exact is Options.QuantExact.
func linearQuant(x []float32, rows, k int, w *tensor.Dense, out int, y []float32, exact bool) {
	if rows <= gemvMaxRows {
		gemvQuant(x, rows, k, w, out, y, exact)
		return
	}
	tile := max(64, halfTileFloats/max(k, 1)/64*64)
	splitRange(out, tile, func(lo, hi int) {
		for o0 := lo; o0 < hi; o0 += tile {
			o1 := min(hi, o0+tile)
			sp := getScratch((o1 - o0) * k)
			s := *sp
			dequantRows(w, o0, o1, s, k)
			gemmSeq(false, true, rows, o1-o0, k, 1, x, k, s, k, 0, y[o0:], out)
			scratch32.Put(sp)
		}
	})
}

// q8Act is an activation matrix quantized by mg_quant_act.
type q8Act struct {
	q  []int8
	d  []float32
	s  []int16
	bs int
}

// q8Pool reuses activation buffers across decode steps.
var q8Pool = sync.Pool{New: func() any { return new(q8Act) }}

// quantAct quantizes x [rows, k] per block of bs activations; perm stores
// them in the order of the AVX-512 Q4_K kernel (see quant.c).
func quantAct(x []float32, rows, k, bs int, perm bool) q8Act {
	var a q8Act
	quantActInto(&a, x, rows, k, bs, perm)
	return a
}

func quantActInto(a *q8Act, x []float32, rows, k, bs int, perm bool) {
	a.q, a.d, a.s, a.bs = resize(a.q, rows*k), resize(a.d, rows*k/bs), resize(a.s, rows*k/16), bs
	pm := C.int(0)
	if perm {
		pm = 1
	}
	if rows*k > 0 {
		C.mg_quant_act(C.int(quantPath), fp(x), C.long(rows), C.long(k), C.long(bs), pm, (*C.int8_t)(unsafe.Pointer(&a.q[0])),
			fp(a.d), (*C.int16_t)(unsafe.Pointer(&a.s[0])))
	}
}

func resize[E any](s []E, n int) []E {
	if cap(s) < n {
		return make([]E, n)
	}
	return s[:n]
}

// gemvQuant: y [rows, out] = x [rows, k]·wᵀ (rows ≤ gemvMaxRows) over
// both cores, reading the blocks in place.
func gemvQuant(x []float32, rows, k int, w *tensor.Dense, out int, y []float32, exact bool) {
	raw, kind, bw, _ := quantRaw(w)
	if rows == 0 || out == 0 {
		return
	}
	if k == 0 {
		clear(y[:rows*out])
		return
	}
	var run func(lo, hi int)
	if exact {
		run = func(lo, hi int) {
			C.mg_gemv_qf32(C.int(quantPath), kind, fp(x), C.long(rows), bp(raw), C.long(k), fp(y), C.long(out), C.long(lo), C.long(hi))
		}
	} else {
		a := q8Pool.Get().(*q8Act)
		defer q8Pool.Put(a)
		quantActInto(a, x, rows, k, bw, w.Dtype() == Q4K && quantPath >= QuantAVX512)
		run = func(lo, hi int) {
			C.mg_gemv_q8(C.int(quantPath), kind, (*C.int8_t)(unsafe.Pointer(&a.q[0])), fp(a.d), (*C.int16_t)(unsafe.Pointer(&a.s[0])),
				C.long(rows), bp(raw), C.long(k), fp(y), C.long(out), C.long(lo), C.long(hi))
		}
	}
	if out*k < parGemmMin {
		run(0, out)
		return
	}
	splitRows(out, run)
}

// linearGradXQuant computes dx = dy·W for dy [rows, out] and a quantized w
// (logical [out, k]) into dx [rows, k], dequantizing strips of whole
// blocks of w's columns.
func linearGradXQuant(dy []float32, rows, out int, w *tensor.Dense, k int, dx []float32) {
	raw, kind, bw, bs := quantRaw(w)
	nb := k / bw
	strip := max(1, halfTileFloats/max(out, 1)/bw) // blocks per strip
	splitRange(nb, strip, func(lo, hi int) {
		for b0 := lo; b0 < hi; b0 += strip {
			b1 := min(hi, b0+strip)
			c0, c1 := b0*bw, b1*bw
			sp := getScratch(out * (c1 - c0))
			s := *sp
			C.mg_dequant(C.int(quantPath), kind, bp(raw[b0*bs:]), C.long(nb*bs), C.long(out), C.long(b1-b0), fp(s), C.long(c1-c0))
			gemmSeq(false, false, rows, c1-c0, out, 1, dy, out, s, c1-c0, 0, dx[c0:], k)
			scratch32.Put(sp)
		}
	})
}
