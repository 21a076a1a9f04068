package kernels

import (
	"math"
	"testing"
)

func TestBF16Conversion(t *testing.T) {
	cases := []struct {
		bits uint16
		want uint32 // float32 bits
	}{
		{0x0000, 0x00000000},
		{0x8000, 0x80000000},
		{0x3f80, 0x3f800000}, // 1
		{0xc000, 0xc0000000}, // -2
		{0x7f80, 0x7f800000}, // +inf
		{0xff80, 0xff800000}, // -inf
		{0x7fc0, 0x7fc00000}, // qNaN
		{0x0001, 0x00010000}, // smallest subnormal
		{0x007f, 0x007f0000}, // largest subnormal
		{0x7f7f, 0x7f7f0000}, // max finite
	}
	for _, c := range cases {
		if got := math.Float32bits(BF16ToFloat32(c.bits)); got != c.want {
			t.Errorf("BF16ToFloat32(%#04x) = %#08x, want %#08x", c.bits, got, c.want)
		}
	}
	rne := []struct {
		in   uint32
		want uint16
	}{
		{0x3f800000, 0x3f80},
		{0x3f808000, 0x3f80}, // tie, even stays
		{0x3f818000, 0x3f82}, // tie, odd rounds up
		{0x3f808001, 0x3f81}, // above tie
		{0x3f807fff, 0x3f80}, // below tie
		{0x7f7fffff, 0x7f80}, // max float rounds to inf
		{0x7f800000, 0x7f80},
		{0x00008000, 0x0000}, // subnormal tie to even (0)
		{0x00018000, 0x0002},
		{0x80000000, 0x8000},
	}
	for _, c := range rne {
		if got := Float32ToBF16(math.Float32frombits(c.in)); got != c.want {
			t.Errorf("Float32ToBF16(%#08x) = %#04x, want %#04x", c.in, got, c.want)
		}
	}
	// NaN with a payload only in the low bits must stay NaN.
	if got := Float32ToBF16(math.Float32frombits(0x7f800001)); got&0x7f80 != 0x7f80 || got&0x7f == 0 {
		t.Errorf("NaN became %#04x", got)
	}
}

func TestF16Conversion(t *testing.T) {
	cases := []struct {
		bits uint16
		want float32
	}{
		{0x0000, 0},
		{0x3c00, 1},
		{0xc000, -2},
		{0x3555, 0.333251953125},
		{0x7bff, 65504},                       // max finite
		{0x0400, float32(math.Ldexp(1, -14))}, // min normal
		{0x0001, float32(math.Ldexp(1, -24))}, // min subnormal
		{0x03ff, float32(math.Ldexp(1023, -24))},
		{0x8001, -float32(math.Ldexp(1, -24))},
	}
	for _, c := range cases {
		if got := F16ToFloat32(c.bits); got != c.want {
			t.Errorf("F16ToFloat32(%#04x) = %g, want %g", c.bits, got, c.want)
		}
		if back := Float32ToF16(c.want); back != c.bits {
			t.Errorf("Float32ToF16(%g) = %#04x, want %#04x", c.want, back, c.bits)
		}
	}
	if got := F16ToFloat32(0x8000); math.Float32bits(got) != 0x80000000 {
		t.Errorf("-0 became %#08x", math.Float32bits(got))
	}
	if got := F16ToFloat32(0x7c00); !math.IsInf(float64(got), 1) {
		t.Errorf("+inf became %g", got)
	}
	if got := F16ToFloat32(0xfc00); !math.IsInf(float64(got), -1) {
		t.Errorf("-inf became %g", got)
	}
	if got := math.Float32bits(F16ToFloat32(0x7e01)); got != 0x7fc02000 {
		t.Errorf("NaN payload: %#08x, want 0x7fc02000", got)
	}
	// Exhaustive: every finite f16 survives f16 -> f32 -> f16.
	for h := 0; h < 1<<16; h++ {
		f := F16ToFloat32(uint16(h))
		if f != f {
			continue
		}
		if back := Float32ToF16(f); back != uint16(h) {
			t.Fatalf("round trip %#04x -> %g -> %#04x", h, f, back)
		}
	}
	// Rounding: 1 + 2^-11 is a tie between 1 and 1+2^-10 -> even (1).
	if got := Float32ToF16(1 + float32(math.Ldexp(1, -11))); got != 0x3c00 {
		t.Errorf("tie rounding: %#04x", got)
	}
	if got := Float32ToF16(70000); got != 0x7c00 {
		t.Errorf("overflow: %#04x", got)
	}
}

func TestViewAndWiden(t *testing.T) {
	raw := make([]byte, 8)
	vals := []float32{1, -2, 0.5, 3}
	for i, v := range vals {
		h := Float32ToBF16(v)
		raw[2*i], raw[2*i+1] = byte(h), byte(h>>8)
	}
	d, err := View(BFloat16, []int{2, 2}, raw)
	if err != nil {
		t.Fatal(err)
	}
	if d.Dtype() != BFloat16 || !IsHalf(d.Dtype()) || DtypeName(d.Dtype()) != "BF16" {
		t.Fatalf("dtype %v", d.Dtype())
	}
	got := make([]float32, 3)
	Widen32(got, d, 1)
	for i := range got {
		if got[i] != vals[i+1] {
			t.Errorf("Widen32[%d] = %g, want %g", i, got[i], vals[i+1])
		}
	}
	if _, err := View(BFloat16, []int{3}, raw); err == nil {
		t.Error("View accepted a size mismatch")
	}
	for _, s := range []string{"bf16", "F16", "f32", "float32"} {
		if _, err := ParseDtype(s); err != nil {
			t.Errorf("ParseDtype(%q): %v", s, err)
		}
	}
	if _, err := ParseDtype("int4"); err == nil {
		t.Error("ParseDtype accepted int4")
	}
}
