package kernels

import (
	"math"
	"math/rand"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Reference implementations for the CoTracker ops, written as directly from
// their PyTorch definitions as possible.

func TestConv2d(t *testing.T) {
	rng := rand.New(rand.NewSource(31))
	for _, tc := range []struct {
		name                  string
		n, h, w, cin, cout, k int
		stride, pad           int
		bias                  bool
	}{
		{"7x7/2 pad3", 2, 9, 8, 3, 5, 7, 2, 3, true},
		{"3x3/1 pad1", 1, 5, 6, 4, 3, 3, 1, 1, true},
		{"3x3/2 pad1 odd", 1, 7, 5, 2, 4, 3, 2, 1, false},
		{"1x1/2", 2, 5, 4, 3, 2, 1, 2, 0, true},
		{"1x1/1 gemm", 1, 3, 4, 6, 5, 1, 1, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := Grid{N: tc.n, H: tc.h, W: tc.w}
			x := randF64(rng, tc.n*tc.h*tc.w, tc.cin)
			w := randF64(rng, tc.cout, tc.cin, tc.k, tc.k)
			b := randF64(rng, tc.cout)
			ho, wo := (tc.h+2*tc.pad-tc.k)/tc.stride+1, (tc.w+2*tc.pad-tc.k)/tc.stride+1
			xs, ws, bs := x.Data().([]float64), w.Data().([]float64), b.Data().([]float64)
			ref := make([]float64, tc.n*ho*wo*tc.cout)
			for n := 0; n < tc.n; n++ {
				for oy := 0; oy < ho; oy++ {
					for ox := 0; ox < wo; ox++ {
						for co := 0; co < tc.cout; co++ {
							s := 0.0
							if tc.bias {
								s = bs[co]
							}
							for ci := 0; ci < tc.cin; ci++ {
								for ky := 0; ky < tc.k; ky++ {
									for kx := 0; kx < tc.k; kx++ {
										iy, ix := oy*tc.stride+ky-tc.pad, ox*tc.stride+kx-tc.pad
										if iy < 0 || ix < 0 || iy >= tc.h || ix >= tc.w {
											continue
										}
										s += ws[((co*tc.cin+ci)*tc.k+ky)*tc.k+kx] * xs[((n*tc.h+iy)*tc.w+ix)*tc.cin+ci]
									}
								}
							}
							ref[((n*ho+oy)*wo+ox)*tc.cout+co] = s
						}
					}
				}
			}
			build := func(in []*G.Node) (*G.Node, error) {
				var bias *G.Node
				if tc.bias {
					bias = in[2]
				}
				return Conv2d(in[0], in[1], bias, g, tc.stride, tc.pad)
			}
			checkForward(t, build, ref, x, w, b)
		})
	}
	// Shape errors are reported at build time.
	gr := G.NewGraph()
	x := G.NewMatrix(gr, tensor.Float64, G.WithShape(12, 3), G.WithName("x"))
	w := G.NewTensor(gr, tensor.Float64, 4, G.WithShape(2, 4, 3, 3), G.WithName("w"))
	if _, err := Conv2d(x, w, nil, Grid{N: 1, H: 3, W: 4}, 1, 1); err == nil {
		t.Error("Conv2d accepted Cin 3 against a weight for 4")
	}
}

func TestInstanceNormL2ReLUGELUTanh(t *testing.T) {
	rng := rand.New(rand.NewSource(32))
	g := Grid{N: 2, H: 3, W: 4}
	x := randF64(rng, 24, 5)
	xs := x.Data().([]float64)
	inorm := make([]float64, len(xs))
	for n := 0; n < 2; n++ {
		for c := 0; c < 5; c++ {
			var m, v float64
			for p := 0; p < 12; p++ {
				m += xs[(n*12+p)*5+c] / 12
			}
			for p := 0; p < 12; p++ {
				d := xs[(n*12+p)*5+c] - m
				v += d * d / 12
			}
			for p := 0; p < 12; p++ {
				inorm[(n*12+p)*5+c] = (xs[(n*12+p)*5+c] - m) / math.Sqrt(v+1e-5)
			}
		}
	}
	l2 := make([]float64, len(xs))
	relu := make([]float64, len(xs))
	gt := make([]float64, len(xs))
	for r := 0; r < 24; r++ {
		var s float64
		for c := 0; c < 5; c++ {
			s += xs[r*5+c] * xs[r*5+c]
		}
		for c := 0; c < 5; c++ {
			l2[r*5+c] = xs[r*5+c] / math.Sqrt(math.Max(s, 1e-12))
		}
	}
	for i, v := range xs {
		relu[i] = math.Max(v, 0)
		gt[i] = 0.5 * v * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(v+0.044715*v*v*v)))
	}
	for _, tc := range []struct {
		name  string
		build buildFn
		ref   []float64
	}{
		{"InstanceNorm", func(in []*G.Node) (*G.Node, error) { return InstanceNorm(in[0], g, 1e-5) }, inorm},
		{"L2NormRows", func(in []*G.Node) (*G.Node, error) { return L2NormRows(in[0], 1e-12) }, l2},
		{"ReLU", func(in []*G.Node) (*G.Node, error) { return ReLU(in[0]) }, relu},
		{"GELUTanh", func(in []*G.Node) (*G.Node, error) { return GELUTanh(in[0]) }, gt},
	} {
		t.Run(tc.name, func(t *testing.T) { checkForward(t, tc.build, tc.ref, x) })
	}
	// L2NormRows floors the norm: a zero row stays zero.
	z := denseF64(make([]float64, 6), 2, 3)
	got, _ := forward(t, func(in []*G.Node) (*G.Node, error) { return L2NormRows(in[0], 1e-12) }, z)
	for _, v := range got {
		if v != 0 {
			t.Fatalf("L2NormRows of a zero row: %v", got)
		}
	}
}

func TestSinCosEncodeAddTiled(t *testing.T) {
	rng := rand.New(rand.NewSource(33))
	x := randF64(rng, 3, 4)
	xs := x.Data().([]float64)
	const lo, hi = 0, 3
	L := hi - lo
	var ref []float64
	for r := 0; r < 3; r++ {
		row := xs[r*4 : r*4+4]
		ref = append(ref, row...)
		for _, shift := range []float64{0, math.Pi / 2} {
			for l := 0; l < L; l++ {
				for _, v := range row {
					ref = append(ref, math.Sin(v*math.Pow(2, float64(lo+l))+shift))
				}
			}
		}
	}
	checkForward(t, func(in []*G.Node) (*G.Node, error) { return SinCosEncode(in[0], lo, hi) }, ref, x)

	a, b := randF64(rng, 6, 2), randF64(rng, 3, 2)
	as, bs := a.Data().([]float64), b.Data().([]float64)
	sum := make([]float64, 12)
	for r := 0; r < 6; r++ {
		for c := 0; c < 2; c++ {
			sum[r*2+c] = as[r*2+c] + bs[(r%3)*2+c]
		}
	}
	checkForward(t, func(in []*G.Node) (*G.Node, error) { return AddTiled(in[0], in[1]) }, sum, a, b)
}

// refSample is grid_sample(align_corners=True) at pixel (x, y) of one
// channel plane, written with PyTorch's corner names.
func refSample(img []float64, h, w, c, ch int, x, y float64, pad Padding) float64 {
	if pad == PadBorder {
		x = math.Min(math.Max(x, 0), float64(w-1))
		y = math.Min(math.Max(y, 0), float64(h-1))
	}
	xnw, ynw := math.Floor(x), math.Floor(y)
	at := func(cx, cy float64) float64 {
		if cx < 0 || cy < 0 || cx > float64(w-1) || cy > float64(h-1) {
			return 0
		}
		return img[(int(cy)*w+int(cx))*c+ch]
	}
	nw := (xnw + 1 - x) * (ynw + 1 - y)
	ne := (x - xnw) * (ynw + 1 - y)
	sw := (xnw + 1 - x) * (y - ynw)
	se := (x - xnw) * (y - ynw)
	return nw*at(xnw, ynw) + ne*at(xnw+1, ynw) + sw*at(xnw, ynw+1) + se*at(xnw+1, ynw+1)
}

func TestResizePoolGridSample(t *testing.T) {
	rng := rand.New(rand.NewSource(34))
	g := Grid{N: 2, H: 5, W: 7}
	const c = 3
	x := randF64(rng, g.N*g.H*g.W, c)
	xs := x.Data().([]float64)
	for _, sz := range [][2]int{{3, 4}, {9, 11}, {1, 1}, {5, 7}} {
		ho, wo := sz[0], sz[1]
		ref := make([]float64, g.N*ho*wo*c)
		for n := 0; n < g.N; n++ {
			img := xs[n*g.H*g.W*c : (n+1)*g.H*g.W*c]
			for oy := 0; oy < ho; oy++ {
				for ox := 0; ox < wo; ox++ {
					sy, sx := 0.0, 0.0
					if ho > 1 {
						sy = float64(oy) * float64(g.H-1) / float64(ho-1)
					}
					if wo > 1 {
						sx = float64(ox) * float64(g.W-1) / float64(wo-1)
					}
					for ch := 0; ch < c; ch++ {
						ref[((n*ho+oy)*wo+ox)*c+ch] = refSample(img, g.H, g.W, c, ch, sx, sy, PadBorder)
					}
				}
			}
		}
		checkForward(t, func(in []*G.Node) (*G.Node, error) { return ResizeBilinear(in[0], g, ho, wo) }, ref, x)
	}

	pool := make([]float64, g.N*2*3*c)
	for n := 0; n < g.N; n++ {
		for oy := 0; oy < 2; oy++ {
			for ox := 0; ox < 3; ox++ {
				for ch := 0; ch < c; ch++ {
					var s float64
					for _, d := range [][2]int{{0, 0}, {0, 1}, {1, 0}, {1, 1}} {
						s += xs[((n*g.H+2*oy+d[0])*g.W+2*ox+d[1])*c+ch]
					}
					pool[((n*2+oy)*3+ox)*c+ch] = s / 4
				}
			}
		}
	}
	checkForward(t, func(in []*G.Node) (*G.Node, error) { return AvgPool2(in[0], g) }, pool, x)

	pts := denseF64([]float64{
		0, 1.25, 2.5, // inside
		1, 6, 4, // the far corner
		1, -1.5, 2.2, // left of the image
		0, 3.3, 7.9, // below
		1, 7.5, -0.4, // right and above
		0, 0, 0,
	}, 6, 3)
	ps := pts.Data().([]float64)
	for _, pad := range []Padding{PadBorder, PadZeros} {
		ref := make([]float64, 6*c)
		for i := 0; i < 6; i++ {
			f := int(ps[3*i])
			for ch := 0; ch < c; ch++ {
				ref[i*c+ch] = refSample(xs[f*g.H*g.W*c:], g.H, g.W, c, ch, ps[3*i+1], ps[3*i+2], pad)
			}
		}
		checkForward(t, func(in []*G.Node) (*G.Node, error) { return GridSample(in[0], in[1], g, pad) }, ref, x, pts)
	}
	bad := denseF64([]float64{0, math.NaN(), 1}, 1, 3)
	gr := G.NewGraph()
	nodes := inputNodes(gr, []*tensor.Dense{x, bad})
	out, err := GridSample(nodes[0], nodes[1], g, PadBorder)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := runGraph(gr, out); err == nil {
		t.Error("GridSample accepted a NaN point")
	}
}

func TestCorrVolume(t *testing.T) {
	rng := rand.New(rand.NewSource(35))
	g := Grid{N: 2, H: 6, W: 5}
	const c, n, r = 4, 3, 1
	s := 2*r + 1
	fm := randF64(rng, g.N*g.H*g.W, c)
	co := denseF64([]float64{1.5, 2.25, 0, 0, 4.7, 5.5, 3, 1, -0.5, 2.5, 2.2, 3.9}, g.N*n, 2)
	sp := randF64(rng, n*s*s, c)
	fs, cs, ss := fm.Data().([]float64), co.Data().([]float64), sp.Data().([]float64)
	ref := make([]float64, g.N*n*s*s*s*s)
	for f := 0; f < g.N; f++ {
		img := fs[f*g.H*g.W*c:]
		for tr := 0; tr < n; tr++ {
			x, y := cs[2*(f*n+tr)], cs[2*(f*n+tr)+1]
			for a := 0; a < s; a++ {
				for b := 0; b < s; b++ {
					for i := 0; i < s; i++ {
						for j := 0; j < s; j++ {
							var d float64
							for ch := 0; ch < c; ch++ {
								d += refSample(img, g.H, g.W, c, ch, x+float64(a-r), y+float64(b-r), PadBorder) * ss[(tr*s*s+i*s+j)*c+ch]
							}
							ref[(f*n+tr)*s*s*s*s+((a*s+b)*s+i)*s+j] = d
						}
					}
				}
			}
		}
	}
	checkForward(t, func(in []*G.Node) (*G.Node, error) { return CorrVolume(in[0], in[1], in[2], g, r) }, ref, fm, co, sp)
}

func TestCrossAttention(t *testing.T) {
	rng := rand.New(rand.NewSource(36))
	for _, cfg := range []CrossAttentionConfig{
		{Batch: 2, SeqQ: 3, SeqK: 5, Heads: 2, HeadDim: 4},
		{Batch: 1, SeqQ: 4, SeqK: 4, Heads: 3, HeadDim: 2},
		{Batch: 3, SeqQ: 1, SeqK: 7, Heads: 2, HeadDim: 3}, // one query row: the GEMV path
	} {
		hd := cfg.Heads * cfg.HeadDim
		q := randF64(rng, cfg.Batch*cfg.SeqQ, hd)
		kv := randF64(rng, cfg.Batch*cfg.SeqK, 2*hd)
		qs, kvs := q.Data().([]float64), kv.Data().([]float64)
		ref := make([]float64, cfg.Batch*cfg.SeqQ*hd)
		for b := 0; b < cfg.Batch; b++ {
			for h := 0; h < cfg.Heads; h++ {
				for i := 0; i < cfg.SeqQ; i++ {
					sc := make([]float64, cfg.SeqK)
					var z float64
					for j := range sc {
						for e := 0; e < cfg.HeadDim; e++ {
							sc[j] += qs[(b*cfg.SeqQ+i)*hd+h*cfg.HeadDim+e] * kvs[(b*cfg.SeqK+j)*2*hd+h*cfg.HeadDim+e]
						}
						sc[j] = math.Exp(sc[j] / math.Sqrt(float64(cfg.HeadDim)))
						z += sc[j]
					}
					for e := 0; e < cfg.HeadDim; e++ {
						var v float64
						for j := range sc {
							v += sc[j] / z * kvs[(b*cfg.SeqK+j)*2*hd+hd+h*cfg.HeadDim+e]
						}
						ref[(b*cfg.SeqQ+i)*hd+h*cfg.HeadDim+e] = v
					}
				}
			}
		}
		checkForward(t, func(in []*G.Node) (*G.Node, error) { return CrossAttention(in[0], in[1], cfg) }, ref, q, kv)
	}
}
