package kernels

// Quantizers: ggml's reference algorithms for choosing block scales
// (quantize_row_q8_0_ref, quantize_row_q4_K_ref with make_qkx2_quants,
// quantize_row_q6_K_ref with make_qx_quants, in ggml-quants.c), written
// anew in Go. They write blocks byte-identical to ggml's layouts:
//
//	Q8_0  32 weights, 34 bytes:  fp16 d | 32 int8 q;            x = d*q
//	Q4_K 256 weights, 144 bytes: fp16 d | fp16 dmin | 12 bytes of 6-bit
//	      sub-block scales and mins (8 sub-blocks of 32) | 128 bytes of
//	      nibbles (bytes 32i..32i+31 hold sub-block 2i in the low nibbles,
//	      2i+1 in the high ones);                               x = d*sc*q - dmin*m
//	Q6_K 256 weights, 210 bytes: 128 bytes ql (low 4 bits) | 64 bytes qh
//	      (high 2 bits) | 16 int8 scales (sub-blocks of 16) | fp16 d;
//	                                                            x = d*sc*(q-32)
//
// Rounding follows ggml: Q8_0 rounds half away from zero (roundf), the
// K-quants round half to even (nearest_int). The searches run in float32
// like ggml's; the stored bytes are ggml's to the last bit wherever the
// float32 sums come out the same (the order of operations is kept).
// Differences from ggml's reference, both where it would store garbage:
// a NaN or infinite input and a block whose fp16 scale would overflow are
// refused (an error naming the element), and a negative least-squares
// scale of a Q4_K sub-block is stored as 0 rather than wrapped.
//
// Error bounds (|x - dequantize(quantize(x))|, what quantize_test.go and
// scripts/fixtures/ggml_decode.py assert for every value):
//
//   - Q8_0, per block of 32 with a = max|x|: a/254 + a/2048 + 127*2^-25
//     (half a step of d = a/127, plus 127 times the fp16 rounding of d,
//     relative 2^-11 or absolute 2^-25 for a subnormal half).
//   - Q4_K, per sub-block j of 32 with r_j = max_j - min(min_j, 0), R =
//     the super-block's largest r_j and M its largest -min(min_j, 0):
//     0.27*r_j + 0.135*R + M/126 + M/2048 + 2^-15. The least-squares fit
//     only replaces the min/max grid (error r_j/30) when it lowers the
//     weighted squared error, with weights av+|x| whose sum is at most 64
//     times any one: a value's fitted error is at most 8*r_j/30; storing
//     the scale and min in 6 bits of their maxima over 63 and those in
//     fp16 moves a grid point by at most 15 half scale steps plus half a
//     min step and the fp16 roundings (2^-15: d subnormal in fp16).
//   - Q6_K, per sub-block of 16 with a = max|x| and A = the super-block's
//     max|x|: a/31 + A/128 + 2^-13 (half a step of a/32 with clipping of
//     the extreme value, a fitted step within a/31..a/32, plus the int8
//     scale's rounding, half of max/128, times 32 levels; 2^-13 is 4096
//     times fp16's subnormal spacing 2^-25: d = A/4096 is a subnormal
//     half for A < 0.25, as in llama.cpp's Q6_K files).

import (
	"fmt"
	"math"

	"gorgonia.org/tensor"
)

// quantizer is one format's block quantizer and the largest magnitude it
// stores: the fp16 maximum 65504 times the largest level (Q8_0 127; Q4_K
// 63*15; Q6_K 128*32).
type quantizer struct {
	block  func(s *qzScratch, y []byte, x []float32) bool
	maxAbs float64
}

var quantizers = map[tensor.Dtype]quantizer{
	Q8_0: {func(_ *qzScratch, y []byte, x []float32) bool { return quantizeQ8_0Block(y, x) }, 65504 * 127},
	Q4K:  {(*qzScratch).quantizeQ4KBlock, 65504 * 63 * 15},
	Q6K:  {(*qzScratch).quantizeQ6KBlock, 65504 * 128 * 32},
}

// QuantMaxMagnitude is the largest |value| the quantized dtype dt stores
// (0 for a dtype without a quantizer).
func QuantMaxMagnitude(dt tensor.Dtype) float64 { return quantizers[dt].maxAbs }

// QuantizedSize is the byte size of n weights in the quantized dtype dt (n
// a multiple of BlockWeights(dt)).
func QuantizedSize(dt tensor.Dtype, n int) int { return n / BlockWeights(dt) * ElemSize(dt) }

// NonFiniteError reports a NaN or infinite value given to a quantizer.
type NonFiniteError struct {
	Index int // flat index in the quantized slice
	Value float32
}

func (e *NonFiniteError) Error() string {
	return fmt.Sprintf("value %v at index %d cannot be quantized", e.Value, e.Index)
}

// Quantize writes x as blocks of the quantized dtype dt (Q8_0, Q4K, Q6K)
// into dst (len(dst) == QuantizedSize(dt, len(x)); len(x) a multiple of
// BlockWeights(dt)): ggml's layout, so dst can be written to a GGUF file
// as is. A NaN or infinite value is a *NonFiniteError; a value beyond
// QuantMaxMagnitude(dt) or a block whose fp16 scale would overflow is an
// error naming it.
func Quantize(dt tensor.Dtype, dst []byte, x []float32) error {
	qz, ok := quantizers[dt]
	if !ok {
		return fmt.Errorf("kernels: quantize: %s is not a quantized dtype", DtypeName(dt))
	}
	name := DtypeName(dt)
	bw, bb := BlockWeights(dt), ElemSize(dt)
	if len(x)%bw != 0 {
		return fmt.Errorf("kernels: quantize %s: %d values are not a multiple of the block size %d", name, len(x), bw)
	}
	if len(dst) != len(x)/bw*bb {
		return fmt.Errorf("kernels: quantize %s: %d values need %d bytes, got %d", name, len(x), len(x)/bw*bb, len(dst))
	}
	for i, v := range x {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return &NonFiniteError{Index: i, Value: v}
		}
		if math.Abs(float64(v)) > qz.maxAbs {
			return fmt.Errorf("kernels: quantize %s: value %g at index %d is too large for the format (largest magnitude %g)", name, v, i, qz.maxAbs)
		}
	}
	var s qzScratch
	for b := 0; b < len(x)/bw; b++ {
		if !qz.block(&s, dst[b*bb:(b+1)*bb], x[b*bw:(b+1)*bw]) {
			return fmt.Errorf("kernels: quantize %s: block %d (values %d..%d) is too large for the format's fp16 scale", name, b, b*bw, (b+1)*bw-1)
		}
	}
	return nil
}

// qzNearest is ggml's nearest_int: round half to even (adding 1.5*2^23
// in float32 leaves the rounded integer in the low mantissa bits).
func qzNearest(f float32) int {
	if f > 4194303 || f < -4194303 {
		return int(math.RoundToEven(float64(f)))
	}
	return int(math.Float32bits(f+12582912)&0x7fffff) - 0x400000
}

func qzPutHalf(b []byte, f float32) bool {
	h := Float32ToF16(f)
	b[0], b[1] = byte(h), byte(h>>8)
	return h&0x7c00 != 0x7c00
}

func quantizeQ8_0Block(y []byte, x []float32) bool {
	var amax float32
	for _, v := range x {
		amax = max(amax, float32(math.Abs(float64(v))))
	}
	d := amax / 127
	var id float32
	if d != 0 {
		id = 1 / d
	}
	if !qzPutHalf(y, d) {
		return false
	}
	for j, v := range x {
		y[2+j] = byte(int8(math.Round(float64(v * id))))
	}
	return true
}

// qzScratch holds a K-quant block's working arrays.
type qzScratch struct {
	l       [256]uint8
	laux    [32]uint8
	weights [32]float32
	scales  [16]float32
	mins    [8]float32
	ls      [256]int8
}

// makeQKX2 is make_qkx2_quants: an asymmetric grid (scale, min <= 0) for
// n values with nmax+1 levels, searched over nstep+1 candidate scales and
// refined by weighted least squares. It returns the scale and -min.
func makeQKX2(x, w []float32, L, laux []uint8, nmax int, rmin, rdelta float32, nstep int) (float32, float32) {
	n := len(x)
	mn, mx := x[0], x[0]
	sumW := w[0]
	sumX := sumW * x[0]
	for i := 1; i < n; i++ {
		mn, mx = min(mn, x[i]), max(mx, x[i])
		sumW += w[i]
		sumX += w[i] * x[i]
	}
	if mn > 0 {
		mn = 0
	}
	if mx == mn {
		for i := range L[:n] {
			L[i] = 0
		}
		return 0, -mn
	}
	fn := float32(nmax)
	iscale := fn / (mx - mn)
	scale := 1 / iscale
	var best float32
	for i := 0; i < n; i++ {
		l := min(nmax, max(0, qzNearest(iscale*(x[i]-mn))))
		L[i] = uint8(l)
		diff := scale*float32(l) + mn - x[i]
		best += w[i] * (diff * diff)
	}
	for is := 0; is <= nstep; is++ {
		iscale = (rmin + rdelta*float32(is) + fn) / (mx - mn)
		var sumL, sumL2, sumXL float32
		for i := 0; i < n; i++ {
			l := min(nmax, max(0, qzNearest(iscale*(x[i]-mn))))
			laux[i] = uint8(l)
			fl := float32(l)
			sumL += w[i] * fl
			sumL2 += w[i] * fl * fl
			sumXL += w[i] * fl * x[i]
		}
		D := sumW*sumL2 - sumL*sumL
		if D <= 0 {
			continue
		}
		thisScale := (sumW*sumXL - sumX*sumL) / D
		thisMin := (sumL2*sumX - sumL*sumXL) / D
		if thisMin > 0 {
			thisMin = 0
			thisScale = sumXL / sumL2
		}
		var cur float32
		for i := 0; i < n; i++ {
			diff := thisScale*float32(laux[i]) + thisMin - x[i]
			cur += w[i] * (diff * diff)
		}
		if cur < best {
			copy(L[:n], laux[:n])
			best, scale, mn = cur, thisScale, thisMin
		}
	}
	return scale, -mn
}

func (s *qzScratch) quantizeQ4KBlock(y []byte, x []float32) bool {
	var maxScale, maxMin float32
	for j := 0; j < 8; j++ {
		xs := x[32*j : 32*j+32]
		var sumX2 float32
		for _, v := range xs {
			sumX2 += v * v
		}
		av := float32(math.Sqrt(float64(sumX2 / 32)))
		for l, v := range xs {
			s.weights[l] = av + float32(math.Abs(float64(v)))
		}
		s.scales[j], s.mins[j] = makeQKX2(xs, s.weights[:], s.l[32*j:32*j+32], s.laux[:], 15, -1, 0.1, 20)
		maxScale, maxMin = max(maxScale, s.scales[j]), max(maxMin, s.mins[j])
	}
	var invScale, invMin float32
	if maxScale > 0 {
		invScale = 63 / maxScale
	}
	if maxMin > 0 {
		invMin = 63 / maxMin
	}
	sc := y[4:16]
	for i := range sc {
		sc[i] = 0
	}
	for j := 0; j < 8; j++ {
		ls := uint8(min(63, max(0, qzNearest(invScale*s.scales[j]))))
		lm := uint8(min(63, max(0, qzNearest(invMin*s.mins[j]))))
		if j < 4 {
			sc[j], sc[j+4] = ls, lm
		} else {
			sc[j+4] = ls&0xf | (lm&0xf)<<4
			sc[j-4] |= (ls >> 4) << 6
			sc[j] |= (lm >> 4) << 6
		}
	}
	if !qzPutHalf(y[0:], maxScale/63) || !qzPutHalf(y[2:], maxMin/63) {
		return false
	}
	d, dmin := f16At(y[0:]), f16At(y[2:])
	for j := 0; j < 8; j++ {
		a, m := q4KScaleMin(j, sc)
		dj := d * float32(a)
		if dj == 0 {
			continue
		}
		dm := dmin * float32(m)
		for i := 0; i < 32; i++ {
			s.l[32*j+i] = uint8(min(15, max(0, qzNearest((x[32*j+i]+dm)/dj))))
		}
	}
	q := y[16:144]
	for j := 0; j < 4; j++ {
		for l := 0; l < 32; l++ {
			q[32*j+l] = s.l[64*j+l] | s.l[64*j+32+l]<<4
		}
	}
	return true
}

// makeQX is make_qx_quants with rmse_type 1 (weights x^2) and no
// importance weights: a symmetric grid of levels -nmax..nmax-1 for x,
// searched over 19 candidate scales. Levels (offset by nmax) go to L.
func makeQX(x []float32, L []int8, nmax int) float32 {
	var mx, amax float32
	for _, v := range x {
		if a := float32(math.Abs(float64(v))); a > amax {
			amax, mx = a, v
		}
	}
	if amax < 1e-15 {
		for i := range L[:len(x)] {
			L[i] = 0
		}
		return 0
	}
	fn := float32(nmax)
	iscale := -fn / mx
	var sumLX, sumL2 float32
	for i, v := range x {
		l := min(nmax-1, max(-nmax, qzNearest(iscale*v)))
		L[i] = int8(l + nmax)
		w := v * v
		fl := float32(l)
		sumLX += w * v * fl
		sumL2 += w * fl * fl
	}
	var scale float32
	if sumL2 != 0 {
		scale = sumLX / sumL2
	}
	best := scale * sumLX
	for is := -9; is <= 9; is++ {
		if is == 0 {
			continue
		}
		iscale = -(fn + 0.1*float32(is)) / mx
		sumLX, sumL2 = 0, 0
		for _, v := range x {
			l := min(nmax-1, max(-nmax, qzNearest(iscale*v)))
			w := v * v
			fl := float32(l)
			sumLX += w * v * fl
			sumL2 += w * fl * fl
		}
		if sumL2 > 0 && sumLX*sumLX > best*sumL2 {
			for i, v := range x {
				L[i] = int8(nmax + min(nmax-1, max(-nmax, qzNearest(iscale*v))))
			}
			scale = sumLX / sumL2
			best = scale * sumLX
		}
	}
	return scale
}

func (s *qzScratch) quantizeQ6KBlock(y []byte, x []float32) bool {
	var maxScale, maxAbs float32
	for ib := 0; ib < 16; ib++ {
		sc := makeQX(x[16*ib:16*ib+16], s.ls[16*ib:16*ib+16], 32)
		s.scales[ib] = sc
		if a := float32(math.Abs(float64(sc))); a > maxAbs {
			maxAbs, maxScale = a, sc
		}
	}
	if maxAbs < 1e-15 {
		for i := range y[:210] {
			y[i] = 0
		}
		return true
	}
	iscale := -128 / maxScale
	if !qzPutHalf(y[208:], 1/iscale) {
		return false
	}
	d := f16At(y[208:])
	scales := y[192:208]
	for ib := 0; ib < 16; ib++ {
		scales[ib] = byte(int8(max(-128, min(127, qzNearest(iscale*s.scales[ib])))))
	}
	for j := 0; j < 16; j++ {
		dj := d * float32(int8(scales[j]))
		if dj == 0 {
			continue
		}
		for i := 0; i < 16; i++ {
			l := min(31, max(-32, qzNearest(x[16*j+i]/dj)))
			s.ls[16*j+i] = int8(l + 32)
		}
	}
	ql, qh := y[0:128], y[128:192]
	for h := 0; h < 2; h++ {
		L := s.ls[128*h : 128*h+128]
		qlh, qhh := ql[64*h:64*h+64], qh[32*h:32*h+32]
		for l := 0; l < 32; l++ {
			q1, q2, q3, q4 := uint8(L[l]), uint8(L[l+32]), uint8(L[l+64]), uint8(L[l+96])
			qlh[l] = q1&0xf | (q3&0xf)<<4
			qlh[l+32] = q2&0xf | (q4&0xf)<<4
			qhh[l] = q1>>4 | (q2>>4)<<2 | (q3>>4)<<4 | (q4>>4)<<6
		}
	}
	return true
}
