package kernels

import (
	"errors"
	"math"
	"math/rand"
	"strings"
	"testing"

	"gorgonia.org/tensor"
)

// qzDecode is a decoder written from ggml's block definitions (the layout
// comment of quantize.go), independent of the quantizers: the tests check
// quantize against it.
func qzDecode(f tensor.Dtype, blocks []byte, n int) []float32 {
	out := make([]float32, n)
	bw, bb := BlockWeights(f), ElemSize(f)
	for b := 0; b < n/bw; b++ {
		y, o := blocks[b*bb:(b+1)*bb], out[b*bw:(b+1)*bw]
		switch f {
		case Q8_0:
			d := f16At(y)
			for j := range o {
				o[j] = d * float32(int8(y[2+j]))
			}
		case Q4K:
			d, dmin := f16At(y), f16At(y[2:])
			for j := 0; j < 8; j++ {
				sc, m := q4KScaleMin(j, y[4:16])
				for i := 0; i < 32; i++ {
					nib := y[16+32*(j/2)+i]
					if j%2 == 1 {
						nib >>= 4
					}
					o[32*j+i] = d*float32(sc)*float32(nib&15) - dmin*float32(m)
				}
			}
		case Q6K:
			d := f16At(y[208:])
			for i := 0; i < 256; i++ {
				h, r := i/128, i%128
				l, quad := r%32, r/32
				ql := y[64*h+l+32*(quad%2)]
				if quad >= 2 {
					ql >>= 4
				}
				qh := (y[128+32*h+l] >> (2 * quad)) & 3
				q := int(ql&15|qh<<4) - 32
				o[i] = d * float32(int8(y[192+i/16])) * float32(q)
			}
		}
	}
	return out
}

// qzBound is each value's error bound (see the quantize.go comment).
func qzBound(f tensor.Dtype, x []float32) []float64 {
	b := make([]float64, len(x))
	abs := func(v float32) float64 { return math.Abs(float64(v)) }
	switch f {
	case Q8_0:
		for s := 0; s < len(x); s += 32 {
			var a float64
			for _, v := range x[s : s+32] {
				a = math.Max(a, abs(v))
			}
			for i := s; i < s+32; i++ {
				b[i] = a/254 + a/2048 + 127*math.Ldexp(1, -25)
			}
		}
	case Q4K:
		for s := 0; s < len(x); s += 256 {
			var r [8]float64
			var R, M float64
			for j := range r {
				lo, hi := 0.0, math.Inf(-1)
				for _, v := range x[s+32*j : s+32*j+32] {
					lo, hi = math.Min(lo, float64(v)), math.Max(hi, float64(v))
				}
				r[j] = hi - lo
				R, M = math.Max(R, r[j]), math.Max(M, -lo)
			}
			for i := s; i < s+256; i++ {
				b[i] = 0.27*r[(i-s)/32] + 0.135*R + M/126 + M/2048 + math.Ldexp(1, -15)
			}
		}
	case Q6K:
		for s := 0; s < len(x); s += 256 {
			var a [16]float64
			var A float64
			for j := range a {
				for _, v := range x[s+16*j : s+16*j+16] {
					a[j] = math.Max(a[j], abs(v))
				}
				A = math.Max(A, a[j])
			}
			for i := s; i < s+256; i++ {
				b[i] = a[(i-s)/16]/31 + A/128 + math.Ldexp(1, -13)
			}
		}
	}
	return b
}

func qzData(kind string, n int, rng *rand.Rand) []float32 {
	x := make([]float32, n)
	for i := range x {
		switch kind {
		case "gaussian":
			x[i] = float32(rng.NormFloat64() * 0.02)
		case "uniform":
			x[i] = float32(rng.Float64()*2 - 1)
		case "positive":
			x[i] = float32(rng.Float64()*3 + 1)
		case "heavy": // Cauchy-like tails
			x[i] = float32(0.01 * math.Tan(math.Pi*(rng.Float64()-0.5)*0.999))
		case "outliers":
			x[i] = float32(rng.NormFloat64() * 0.01)
			if rng.Intn(50) == 0 {
				x[i] *= 100
			}
		case "huge":
			x[i] = float32(rng.NormFloat64() * 1e5)
		case "tiny":
			x[i] = float32(rng.NormFloat64() * 1e-6)
		case "subnormal":
			x[i] = float32(rng.NormFloat64() * 1e-40)
		case "zeros":
		case "constant":
			x[i] = 0.37
		case "negconstant":
			x[i] = -1.5
		case "sparse":
			if rng.Intn(20) == 0 {
				x[i] = float32(rng.NormFloat64())
			}
		case "blockscales": // super-blocks whose sub-blocks differ by 1000x
			x[i] = float32(rng.NormFloat64() * math.Pow(10, float64((i/32)%4)-3))
		}
	}
	return x
}

// TestQuantizeRoundTrip: dequantize(quantize(x)) is within each format's
// bound for every value, over distributions and edge cases; the error's
// RMS is reported and checked against the format's nominal step.
func TestQuantizeRoundTrip(t *testing.T) {
	kinds := []string{"gaussian", "uniform", "positive", "heavy", "outliers", "huge", "tiny", "subnormal", "zeros", "constant", "negconstant", "sparse", "blockscales"}
	rng := rand.New(rand.NewSource(7))
	for _, f := range []tensor.Dtype{Q8_0, Q4K, Q6K} {
		worst := 0.0
		for _, kind := range kinds {
			n := 256 * 64
			x := qzData(kind, n, rng)
			blocks := make([]byte, QuantizedSize(f, n))
			if err := Quantize(f, blocks, x); err != nil {
				t.Fatalf("%v %s: %v", DtypeName(f), kind, err)
			}
			got := qzDecode(f, blocks, n)
			bound := qzBound(f, x)
			var se, sx float64
			for i := range x {
				e := math.Abs(float64(got[i] - x[i]))
				if e > bound[i] || math.IsNaN(e) {
					t.Fatalf("%v %s: value %d: %g decoded as %g, error %g over the bound %g", DtypeName(f), kind, i, x[i], got[i], e, bound[i])
				}
				if bound[i] > 0 {
					worst = math.Max(worst, e/bound[i])
				}
				se += e * e
				sx += float64(x[i]) * float64(x[i])
			}
			if kind == "zeros" && se != 0 {
				t.Errorf("%v: all-zero input decodes to non-zeros", DtypeName(f))
			}
			// Nominal relative RMS error of gaussian weights: ~1/127/sqrt(12)*3.4
			// for Q8_0, ~1/15 step for Q4_K, ~1/63 for Q6_K (loose caps).
			if kind == "gaussian" {
				rel := math.Sqrt(se / sx)
				caps := map[tensor.Dtype]float64{Q8_0: 0.01, Q4K: 0.12, Q6K: 0.03}
				t.Logf("%v gaussian: relative RMS error %.4g", DtypeName(f), rel)
				if rel > caps[f] {
					t.Errorf("%v gaussian: relative RMS error %.4g over %g", DtypeName(f), rel, caps[f])
				}
			}
		}
		t.Logf("%v: worst error / bound = %.3f", DtypeName(f), worst)
	}
}

// TestQuantizeConstantRows: a constant block is stored exactly where the
// format can (Q8_0: value = 127*d; Q6_K: symmetric grid) and within one
// fp16 rounding of the scale.
func TestQuantizeConstantRows(t *testing.T) {
	for _, f := range []tensor.Dtype{Q8_0, Q4K, Q6K} {
		for _, c := range []float32{1, -1, 0.37, -1.5, 1e-3, 1000} {
			x := make([]float32, 256)
			for i := range x {
				x[i] = c
			}
			b := make([]byte, QuantizedSize(f, 256))
			if err := Quantize(f, b, x); err != nil {
				t.Fatal(err)
			}
			for i, v := range qzDecode(f, b, 256) {
				// fp16 keeps 2^-11 of a normal scale; a subnormal one 2^-25 absolute,
				// times 63*15 (Q4_K's largest level).
				if e := math.Abs(float64(v - c)); e > 2e-3*math.Abs(float64(c))+math.Ldexp(63*15, -25) {
					t.Fatalf("%v constant %g: value %d decoded as %g (error %.3g)", DtypeName(f), c, i, v, e)
				}
			}
		}
	}
}

func TestQuantizeRefuses(t *testing.T) {
	for _, f := range []tensor.Dtype{Q8_0, Q4K, Q6K} {
		for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
			x := make([]float32, 256)
			x[77] = bad
			err := Quantize(f, make([]byte, QuantizedSize(f, 256)), x)
			var nf *NonFiniteError
			if !errors.As(err, &nf) || nf.Index != 77 || !strings.Contains(err.Error(), "index 77") {
				t.Errorf("%v with %v: got %v, want a NonFiniteError at index 77", DtypeName(f), bad, err)
			}
		}
		if err := Quantize(f, make([]byte, 10), make([]float32, 256)); err == nil {
			t.Errorf("%v: wrong destination size accepted", DtypeName(f))
		}
		if err := Quantize(f, make([]byte, 1000), make([]float32, 100)); err == nil || !strings.Contains(err.Error(), "multiple of the block size") {
			t.Errorf("%v: 100 values: got %v", DtypeName(f), err)
		}
		x := make([]float32, 256)
		x[3] = 3e38 // beyond every format's fp16 scale
		if err := Quantize(f, make([]byte, QuantizedSize(f, 256)), x); err == nil || !strings.Contains(err.Error(), "too large") {
			t.Errorf("%v: 3e38: got %v, want too large", DtypeName(f), err)
		}
	}
}

// TestQuantizeGGMLReference: fixed blocks whose bytes were worked through
// ggml's reference algorithm by hand (scales from the formulas of
// quantize_row_q8_0_ref; a ramp for the K-quants).
func TestQuantizeGGMLReference(t *testing.T) {
	x := make([]float32, 32)
	for i := range x {
		x[i] = float32(i) - 15.5 // -15.5 .. 15.5
	}
	b := make([]byte, 34)
	if err := Quantize(Q8_0, b, x); err != nil {
		t.Fatal(err)
	}
	// d = 15.5/127 -> fp16; q = roundf(x*127/15.5): -127 .. 127.
	if h := uint16(b[0]) | uint16(b[1])<<8; h != Float32ToF16(15.5/127) {
		t.Errorf("Q8_0 d bits %#04x, want %#04x", h, Float32ToF16(15.5/127))
	}
	if int8(b[2]) != -127 || int8(b[33]) != 127 || int8(b[2+16]) != int8(math.Round(0.5*127/15.5)) {
		t.Errorf("Q8_0 quants %v", b[2:])
	}
	// Q4_K of a ramp 0..255 per super-block: every sub-block spans 31, min 0
	// for the first, so dmin holds the largest min and the nibbles are the
	// ramp's 16 levels.
	r := make([]float32, 256)
	for i := range r {
		r[i] = float32(i % 32)
	}
	q := make([]byte, 144)
	if err := Quantize(Q4K, q, r); err != nil {
		t.Fatal(err)
	}
	for j := 0; j < 8; j++ {
		sc, m := q4KScaleMin(j, q[4:16])
		if sc != 63 || m != 0 {
			t.Errorf("Q4_K ramp: sub-block %d scale %d min %d, want 63 and 0", j, sc, m)
		}
	}
	if q[16]&15 != 0 || q[16+31]&15 != 15 {
		t.Errorf("Q4_K ramp nibbles %v", q[16:48])
	}
}

// TestQuantizeDecodersAgree: the test's decoder (written from the block
// definitions) and the package's Dequantize give the same bits.
func TestQuantizeDecodersAgree(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	for _, f := range []tensor.Dtype{Q8_0, Q4K, Q6K} {
		x := qzData("outliers", 256*8, rng)
		b := make([]byte, QuantizedSize(f, len(x)))
		if err := Quantize(f, b, x); err != nil {
			t.Fatal(err)
		}
		want := qzDecode(f, b, len(x))
		got := make([]float32, len(x))
		if err := Dequantize(f, b, got); err != nil {
			t.Fatal(err)
		}
		for i := range got {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%s value %d: Dequantize %g, block-definition decoder %g", DtypeName(f), i, got[i], want[i])
			}
		}
	}
}
