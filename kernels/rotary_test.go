package kernels

import (
	"math"
	"math/rand"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func refRotary(x, pos []float64, heads, d int, theta float64) []float64 {
	width := heads * d
	half := d / 2
	y := make([]float64, len(x))
	for r := range pos {
		for h := 0; h < heads; h++ {
			for i := 0; i < half; i++ {
				a := pos[r] / math.Pow(theta, float64(2*i)/float64(d))
				x1, x2 := x[r*width+h*d+i], x[r*width+h*d+half+i]
				y[r*width+h*d+i] = x1*math.Cos(a) - x2*math.Sin(a)
				y[r*width+h*d+half+i] = x2*math.Cos(a) + x1*math.Sin(a)
			}
		}
	}
	return y
}

func TestRotary(t *testing.T) {
	rng := rand.New(rand.NewSource(11))
	cases := []struct {
		rows, heads, d int
		theta          float64
	}{
		{1, 1, 2, 10000},
		{5, 2, 8, 10000},
		{4, 3, 16, 500000},
	}
	for _, c := range cases {
		x := randF64(rng, c.rows, c.heads*c.d)
		pos := make([]float64, c.rows)
		for i := range pos {
			pos[i] = float64(rng.Intn(40))
		}
		p := denseF64(pos, c.rows)
		build := func(in []*G.Node) (*G.Node, error) { return Rotary(in[0], in[1], c.heads, c.d, c.theta) }
		ref := refRotary(x.Data().([]float64), pos, c.heads, c.d, c.theta)
		// The float32-rounded tables (matching HF) differ from the exact
		// float64 reference by ~pos·ε32.
		got64, _ := forward(t, build, x, p)
		checkClose(t, "float64", got64, ref, 1e-5)
		got32, _ := forward(t, build, toF32(x), toF32(p))
		checkClose(t, "float32", got32, ref, 1e-5)
		gradCheck(t, build, []int{0}, x, p)
	}
}

// TestRotaryHFTables checks the float32 table convention on large positions,
// where float32 rounding of the angle matters: the angle must be the float32
// product float32(pos)·invFreq.
func TestRotaryHFTables(t *testing.T) {
	inv := rotaryInvFreq(128, 500000)
	if inv[0] != 1 {
		t.Fatalf("invFreq[0] = %v", inv[0])
	}
	want := float32(1 / math.Pow(500000, 2.0*63/128))
	if d := math.Abs(float64(inv[63]-want)) / float64(want); d > 1e-6 {
		t.Errorf("invFreq[63] = %v, want ≈ %v", inv[63], want)
	}
	g := G.NewGraph()
	x := G.NodeFromAny(g, toF32(denseF64([]float64{1, 0}, 1, 2)), G.WithName("x"))
	p := G.NodeFromAny(g, toF32(denseF64([]float64{8000}, 1)), G.WithName("p"))
	y, err := Rotary(x, p, 1, 2, 10000)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := runGraph(g, y)
	if err != nil {
		t.Fatal(err)
	}
	got := vs[0].Data().([]float32)
	if got[0] != float32(math.Cos(8000)) || got[1] != float32(math.Sin(8000)) {
		t.Errorf("got %v", got)
	}
}

func TestRotaryErrors(t *testing.T) {
	g := G.NewGraph()
	x := G.NewMatrix(g, tensor.Float64, G.WithShape(3, 8), G.WithName("x"))
	p := G.NewVector(g, tensor.Float64, G.WithShape(3), G.WithName("p"))
	p2 := G.NewVector(g, tensor.Float64, G.WithShape(2), G.WithName("p2"))
	if _, err := Rotary(x, p, 3, 4, 1e4); err == nil {
		t.Error("width mismatch: want error")
	}
	if _, err := Rotary(x, p2, 2, 4, 1e4); err == nil {
		t.Error("positions mismatch: want error")
	}
	if _, err := Rotary(x, p, 8, 1, 1e4); err == nil {
		t.Error("odd headDim: want error")
	}
}
