package kernels

import (
	"fmt"
	"math/rand"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func refDepthwise(x, w, b *tensor.Dense, g Grid, pad int) []float64 {
	xs, ws := x.Data().([]float64), w.Data().([]float64)
	c, k := x.Shape()[1], w.Shape()[2]
	ho, wo := g.H+2*pad-k+1, g.W+2*pad-k+1
	y := make([]float64, g.N*ho*wo*c)
	for n := 0; n < g.N; n++ {
		for oy := 0; oy < ho; oy++ {
			for ox := 0; ox < wo; ox++ {
				for ch := 0; ch < c; ch++ {
					var s float64
					if b != nil {
						s = b.Data().([]float64)[ch]
					}
					for ky := 0; ky < k; ky++ {
						for kx := 0; kx < k; kx++ {
							iy, ix := oy+ky-pad, ox+kx-pad
							if iy >= 0 && iy < g.H && ix >= 0 && ix < g.W {
								s += ws[(ch*k+ky)*k+kx] * xs[((n*g.H+iy)*g.W+ix)*c+ch]
							}
						}
					}
					y[((n*ho+oy)*wo+ox)*c+ch] = s
				}
			}
		}
	}
	return y
}

func TestDepthwiseConv2d(t *testing.T) {
	rng := rand.New(rand.NewSource(8))
	cases := []struct {
		g         Grid
		c, k, pad int
		noBias    bool
		grad      bool
	}{
		{Grid{1, 5, 5}, 3, 3, 1, false, true},
		{Grid{2, 4, 3}, 2, 3, 1, true, true},
		{Grid{1, 7, 6}, 2, 7, 3, false, true},
		{Grid{2, 9, 8}, 5, 7, 3, false, false},
		{Grid{1, 4, 4}, 3, 1, 0, false, true},
		{Grid{1, 5, 6}, 2, 3, 0, false, true}, // valid conv, smaller output
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%v_c%d_k%d_p%d", c.g, c.c, c.k, c.pad), func(t *testing.T) {
			x := randF64(rng, c.g.N*c.g.H*c.g.W, c.c)
			w := randF64(rng, c.c, 1, c.k, c.k)
			ins := []*tensor.Dense{x, w}
			var b *tensor.Dense
			if !c.noBias {
				b = randF64(rng, c.c)
				ins = append(ins, b)
			}
			build := func(in []*G.Node) (*G.Node, error) {
				if len(in) == 3 {
					return DepthwiseConv2d(in[0], in[1], in[2], c.g, c.pad)
				}
				return DepthwiseConv2d(in[0], in[1], nil, c.g, c.pad)
			}
			checkForward(t, build, refDepthwise(x, w, b, c.g, c.pad), ins...)
			if c.grad {
				wrt := []int{0, 1}
				if !c.noBias {
					wrt = append(wrt, 2)
				}
				gradCheck(t, build, wrt, ins...)
			}
		})
	}
}

func TestDepthwiseConv2dShapeErrors(t *testing.T) {
	g := G.NewGraph()
	x := G.NewMatrix(g, tensor.Float64, G.WithShape(16, 3), G.WithName("x"))
	w := G.NewTensor(g, tensor.Float64, 4, G.WithShape(3, 1, 3, 3), G.WithName("w"))
	w2 := G.NewTensor(g, tensor.Float64, 4, G.WithShape(4, 1, 3, 3), G.WithName("w2"))
	if _, err := DepthwiseConv2d(x, w, nil, Grid{1, 4, 3}, 1); err == nil {
		t.Error("grid mismatch: want error")
	}
	if _, err := DepthwiseConv2d(x, w2, nil, Grid{1, 4, 4}, 1); err == nil {
		t.Error("channel mismatch: want error")
	}
	if _, err := DepthwiseConv2d(x, w, nil, Grid{1, 4, 4}, 1); err != nil {
		t.Errorf("valid: %v", err)
	}
}

func BenchmarkDepthwiseConv2d(b *testing.B) {
	// ConvNeXt stage-1-like: 256×256 grid, 128 channels, 7×7, float32.
	rng := rand.New(rand.NewSource(1))
	d := dwGeom{Grid: Grid{1, 256, 256}, C: 128, K: 7, Pad: 3}
	x := toF32(randF64(rng, 256*256, 128))
	w := toF32(randF64(rng, 128, 1, 7, 7))
	bias := toF32(randF64(rng, 128))
	in := []*tensor.Dense{x, w, bias}
	b.Run("forward", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			dwFwd[float32](d, in, nil)
		}
		b.ReportMetric(float64(2*256*256*128*49)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	})
	b.Run("gradX", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			dwBwdX[float32](d, []*tensor.Dense{w, x}, nil)
		}
	})
	b.Run("gradW", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			dwBwdW[float32](d, []*tensor.Dense{x, x}, nil)
		}
	})
}
