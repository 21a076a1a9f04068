package kernels

import (
	"math"
	"math/rand"
	"slices"
	"testing"
	"unsafe"

	"gorgonia.org/tensor"
)

// randQuantBytes returns n random blocks of dt: every byte pattern is a
// valid block; the fp16 scales are set to small finite values so products
// stay in range.
func randQuantBytes(rng *rand.Rand, dt tensor.Dtype, n int) []byte {
	es := ElemSize(dt)
	raw := make([]byte, n*es)
	rng.Read(raw)
	small := func(b []byte) {
		// |d| in [2^-10, 2^-6): exponent 5..8, random mantissa and sign.
		h := uint16(rng.Intn(4)+5)<<10 | uint16(rng.Intn(1024)) | uint16(rng.Intn(2))<<15
		b[0], b[1] = byte(h), byte(h>>8)
	}
	for b := 0; b < n; b++ {
		blk := raw[b*es : (b+1)*es]
		switch dt {
		case Q8_0:
			small(blk)
		case Q4K:
			small(blk)
			small(blk[2:])
		case Q6K:
			small(blk[208:])
		}
	}
	return raw
}

func TestQuantLayouts(t *testing.T) {
	cases := []struct {
		dt          tensor.Dtype
		name        string
		size, bw, g int
		sizeof      uintptr
	}{
		{Q8_0, "Q8_0", 34, 32, 8, unsafe.Sizeof(BlockQ8_0{})},
		{Q4K, "Q4_K", 144, 256, 12, unsafe.Sizeof(BlockQ4K{})},
		{Q6K, "Q6_K", 210, 256, 14, unsafe.Sizeof(BlockQ6K{})},
	}
	for _, c := range cases {
		if int(c.sizeof) != c.size || ElemSize(c.dt) != c.size || BlockBytes(c.dt) != c.size || BlockWeights(c.dt) != c.bw {
			t.Errorf("%s: sizeof %d, ElemSize %d, BlockWeights %d; want %d bytes, %d weights", c.name, c.sizeof, ElemSize(c.dt), BlockWeights(c.dt), c.size, c.bw)
		}
		if DtypeName(c.dt) != c.name || !IsQuant(c.dt) || !IsStorage(c.dt) || IsHalf(c.dt) {
			t.Errorf("%s: name %q", c.name, DtypeName(c.dt))
		}
		if g, ok := GGMLType(c.dt); !ok || g != c.g {
			t.Errorf("%s: ggml type %d %v, want %d", c.name, g, ok, c.g)
		}
		if dt, err := DtypeOfGGML(c.g); err != nil || dt != c.dt {
			t.Errorf("DtypeOfGGML(%d) = %v, %v", c.g, dt, err)
		}
		if dt, err := ParseQuantType(c.name); err != nil || dt != c.dt {
			t.Errorf("ParseQuantType(%q) = %v, %v", c.name, dt, err)
		}
		if _, err := ParseDtype(c.name); err == nil {
			t.Errorf("ParseDtype accepted the quantized %s", c.name)
		}
		s, err := QuantShape(c.dt, []int{3, 2 * c.bw})
		if err != nil || s[0] != 3 || s[1] != 2 {
			t.Errorf("%s: QuantShape = %v, %v", c.name, s, err)
		}
		if _, err := QuantShape(c.dt, []int{3, c.bw + 1}); err == nil {
			t.Errorf("%s: QuantShape accepted a partial block", c.name)
		}
		rng := rand.New(rand.NewSource(1))
		raw := randQuantBytes(rng, c.dt, 6)
		w, err := View(c.dt, []int{3, 2}, raw)
		if err != nil {
			t.Fatalf("%s: View: %v", c.name, err)
		}
		if ls := LogicalShape(w); ls[0] != 3 || ls[1] != 2*c.bw {
			t.Errorf("%s: LogicalShape %v", c.name, ls)
		}
		all := make([]float32, 6*c.bw)
		if err := Dequantize(c.dt, raw, all); err != nil {
			t.Fatal(err)
		}
		rows := make([]float32, 2*2*c.bw)
		if err := DequantizeRows(w, 1, 3, rows); err != nil {
			t.Fatal(err)
		}
		wide := make([]float32, c.bw)
		Widen32(wide, w, 3*c.bw)
		for i := range rows {
			if rows[i] != all[2*c.bw+i] {
				t.Fatalf("%s: DequantizeRows[%d] = %g, want %g", c.name, i, rows[i], all[2*c.bw+i])
			}
		}
		for i := range wide {
			if wide[i] != all[3*c.bw+i] {
				t.Fatalf("%s: Widen32[%d] = %g, want %g", c.name, i, wide[i], all[3*c.bw+i])
			}
		}
		f32, err := Convert(w, tensor.Float32)
		if err != nil || !slices.Equal(f32.Shape(), tensor.Shape{3, 2 * c.bw}) || !slices.Equal(f32.Data().([]float32), all) {
			t.Errorf("%s: Convert to f32: %v %v", c.name, f32, err)
		}
		if _, err := Convert(f32, c.dt); err == nil {
			t.Errorf("%s: Convert to a quantized dtype did not fail", c.name)
		}
		if err := Dequantize(c.dt, raw[:len(raw)-1], all); err == nil {
			t.Errorf("%s: Dequantize accepted a short buffer", c.name)
		}
		if err := DequantizeRows(w, 2, 4, rows); err == nil {
			t.Errorf("%s: DequantizeRows accepted rows past the end", c.name)
		}
	}
}

// TestDequantizeReference checks the dequantizers against ggml's block
// definitions written out per weight (an independent formulation: each
// weight's quant and scale located from its index).
func TestDequantizeReference(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	for _, dt := range []tensor.Dtype{Q8_0, Q4K, Q6K} {
		const nb = 5
		raw := randQuantBytes(rng, dt, nb)
		got := make([]float32, nb*BlockWeights(dt))
		if err := Dequantize(dt, raw, got); err != nil {
			t.Fatal(err)
		}
		es := ElemSize(dt)
		for i, g := range got {
			b, e := i/BlockWeights(dt), i%BlockWeights(dt)
			blk := raw[b*es : (b+1)*es]
			var want float64
			switch dt {
			case Q8_0:
				want = float64(f16At(blk)) * float64(int8(blk[2+e]))
			case Q4K:
				j := e / 32 // sub-block
				var sc, m int
				s := blk[4:16]
				if j < 4 {
					sc, m = int(s[j]&63), int(s[j+4]&63)
				} else {
					sc = int(s[j+4]&15) + int(s[j-4]>>6)*16
					m = int(s[j+4]>>4) + int(s[j]>>6)*16
				}
				qb := blk[16+32*(j/2)+e%32]
				q := int(qb & 15)
				if j%2 == 1 {
					q = int(qb >> 4)
				}
				want = float64(f16At(blk))*float64(sc)*float64(q) - float64(f16At(blk[2:]))*float64(m)
			case Q6K:
				h, r, l := e/128, e%128/32, e%32
				qlb := blk[64*h+l+32*(r%2)]
				lo := int(qlb & 15)
				if r >= 2 {
					lo = int(qlb >> 4)
				}
				hi := int(blk[128+32*h+l]>>(2*r)) & 3
				q := lo + hi*16 - 32
				sc := int(int8(blk[192+e/16]))
				want = float64(f16At(blk[208:])) * float64(sc) * float64(q)
			}
			if float64(g) != float64(float32(want)) || math.IsNaN(float64(g)) {
				t.Fatalf("%s weight %d: got %g, want %g", DtypeName(dt), i, g, want)
			}
		}
	}
}
