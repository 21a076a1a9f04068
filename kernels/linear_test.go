package kernels

import (
	"fmt"
	"math/rand"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func refLinear(x, w, b *tensor.Dense) []float64 {
	xs, ws := x.Data().([]float64), w.Data().([]float64)
	r, k := x.Shape()[0], x.Shape()[1]
	o := w.Shape()[0]
	y := make([]float64, r*o)
	for i := 0; i < r; i++ {
		for j := 0; j < o; j++ {
			var s float64
			for l := 0; l < k; l++ {
				s += xs[i*k+l] * ws[j*k+l]
			}
			if b != nil {
				s += b.Data().([]float64)[j]
			}
			y[i*o+j] = s
		}
	}
	return y
}

func TestLinear(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	cases := []struct {
		name   string
		r      int
		w      []int
		noBias bool
	}{
		{"square", 4, []int{5, 5}, false},
		{"rect", 7, []int{3, 11}, false},
		{"nobias", 3, []int{6, 4}, true},
		{"conv4d", 5, []int{4, 3, 2, 2}, false},
		{"onerow", 1, []int{9, 1}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			x := randF64(rng, c.r, prod(c.w[1:]))
			w := randF64(rng, c.w...)
			var b *tensor.Dense
			ins := []*tensor.Dense{x, w}
			if !c.noBias {
				b = randF64(rng, c.w[0])
				ins = append(ins, b)
			}
			build := func(in []*G.Node) (*G.Node, error) {
				if len(in) == 3 {
					return Linear(in[0], in[1], in[2])
				}
				return Linear(in[0], in[1], nil)
			}
			checkForward(t, build, refLinear(x, w, b), ins...)
			wrt := []int{0, 1}
			if !c.noBias {
				wrt = append(wrt, 2)
			}
			gradCheck(t, build, wrt, ins...)
		})
	}
}

func TestLinearShapeErrors(t *testing.T) {
	g := G.NewGraph()
	x := G.NewMatrix(g, tensor.Float64, G.WithShape(2, 3), G.WithName("x"))
	w := G.NewMatrix(g, tensor.Float64, G.WithShape(4, 5), G.WithName("w"))
	if _, err := Linear(x, w, nil); err == nil {
		t.Error("in-dim mismatch: want error")
	}
	w2 := G.NewMatrix(g, tensor.Float64, G.WithShape(4, 3), G.WithName("w2"))
	b := G.NewVector(g, tensor.Float64, G.WithShape(5), G.WithName("b"))
	if _, err := Linear(x, w2, b); err == nil {
		t.Error("bias mismatch: want error")
	}
	x32 := G.NewMatrix(g, tensor.Float32, G.WithShape(2, 3), G.WithName("x32"))
	if _, err := Linear(x32, w2, nil); err == nil {
		t.Error("dtype mismatch: want error")
	}
	if _, err := Linear(nil, w2, nil); err == nil {
		t.Error("nil input: want error")
	}
}

func BenchmarkLinear(b *testing.B) {
	// A Llama-ish projection: 512 tokens × 4096 → 4096 (float32).
	rng := rand.New(rand.NewSource(1))
	for _, sz := range []struct{ r, in, out int }{{512, 4096, 4096}, {1, 4096, 4096}} {
		b.Run(fmt.Sprintf("%dx%dx%d", sz.r, sz.in, sz.out), func(b *testing.B) {
			x, w := toF32(randF64(rng, sz.r, sz.in)), toF32(randF64(rng, sz.out, sz.in))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				linearFwd[float32]([]*tensor.Dense{x, w}, nil, false)
			}
			b.ReportMetric(float64(2*sz.r*sz.in*sz.out)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
