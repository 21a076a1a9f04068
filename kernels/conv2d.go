package kernels

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Conv2d is a dense 2-D convolution (PyTorch's nn.Conv2d with zero padding,
// groups 1, dilation 1) on channels-last images x [N*H*W, Cin] laid out as
// g, with weight [Cout, Cin, K, K] in PyTorch's layout and bias [Cout] (nil
// for none):
//
//	y[n, oy, ox, co] = b[co] + Σ_{ci,ky,kx} w[co, ci, ky, kx] · x[n, oy·s+ky−p, ox·s+kx−p, ci]
//
// with zero outside the image; the result is [N*Ho*Wo, Cout], Ho =
// (H+2p−K)/s+1 (floor), Wo likewise. It is computed as im2col over blocks
// of output pixels and one GEMM per block (a 1x1 stride-1 conv is a single
// GEMM). Forward only (inference): it has no gradient.
func Conv2d(x, weight, bias *G.Node, g Grid, stride, pad int) (*G.Node, error) {
	children := []*G.Node{x, weight}
	if bias != nil {
		children = append(children, bias)
	}
	op, err := newOp("Conv2d", fmt.Sprintf("N=%d,H=%d,W=%d,s=%d,p=%d", g.N, g.H, g.W, stride, pad), 2, children...)
	if err != nil {
		return nil, err
	}
	op.shape = func(in []tensor.Shape) (tensor.Shape, error) {
		c, err := convGeomOf(in, g, stride, pad)
		if err != nil {
			return nil, err
		}
		return tensor.Shape{g.N * c.ho * c.wo, c.cout}, nil
	}
	op.do = func(in []*tensor.Dense, o *tensor.Dense) (G.Value, error) {
		shapes := []tensor.Shape{in[0].Shape(), in[1].Shape()}
		if len(in) > 2 {
			shapes = append(shapes, in[2].Shape())
		}
		c, err := convGeomOf(shapes, g, stride, pad)
		if err != nil {
			return nil, err
		}
		return dispatch(in[0], func() (G.Value, error) { return conv2dDo[float32](c, in, o), nil },
			func() (G.Value, error) { return conv2dDo[float64](c, in, o), nil })
	}
	op.fullWrite = true
	return apply(op, children...)
}

// convGeom is the geometry of one Conv2d.
type convGeom struct {
	Grid
	cin, cout, k, stride, pad, ho, wo int
}

func convGeomOf(in []tensor.Shape, g Grid, stride, pad int) (convGeom, error) {
	x, w := in[0], in[1]
	if g.N <= 0 || g.H <= 0 || g.W <= 0 || stride <= 0 || pad < 0 {
		return convGeom{}, shapeErr("Conv2d", "bad grid %+v, stride %d or padding %d", g, stride, pad)
	}
	if w.Dims() != 4 || w[2] != w[3] || w[2] <= 0 {
		return convGeom{}, shapeErr("Conv2d", "weight must be [Cout, Cin, K, K], got %v", w)
	}
	if x.Dims() != 2 || x[0] != g.N*g.H*g.W || x[1] != w[1] {
		return convGeom{}, shapeErr("Conv2d", "x must be [N*H*W=%d, Cin=%d], got %v", g.N*g.H*g.W, w[1], x)
	}
	if len(in) > 2 && (in[2].Dims() != 1 || in[2][0] != w[0]) {
		return convGeom{}, shapeErr("Conv2d", "bias must be [%d], got %v", w[0], in[2])
	}
	c := convGeom{Grid: g, cin: w[1], cout: w[0], k: w[2], stride: stride, pad: pad}
	c.ho = (g.H+2*pad-c.k)/stride + 1
	c.wo = (g.W+2*pad-c.k)/stride + 1
	if g.H+2*pad < c.k || g.W+2*pad < c.k {
		return convGeom{}, shapeErr("Conv2d", "kernel %d larger than the padded %dx%d image", c.k, g.H+2*pad, g.W+2*pad)
	}
	return c, nil
}

// conv2dDo: the weight is reordered to [Cout, K, K, Cin] so that an im2col
// row copies whole channel vectors of the channels-last input.
func conv2dDo[T float](c convGeom, in []*tensor.Dense, o *tensor.Dense) *tensor.Dense {
	x, w := data[T](in[0]), data[T](in[1])
	var bias []T
	if len(in) > 2 {
		bias = data[T](in[2])
	}
	kk := c.k * c.k
	kdim := kk * c.cin
	t, y := newOut[T](o, c.N*c.ho*c.wo, c.cout)
	if c.k == 1 && c.stride == 1 && c.pad == 0 {
		gemm(false, true, c.N*c.H*c.W, c.cout, c.cin, 1, x, c.cin, w, c.cin, 0, y, c.cout)
	} else {
		wr := make([]T, c.cout*kdim)
		for co := 0; co < c.cout; co++ {
			for ci := 0; ci < c.cin; ci++ {
				for q := 0; q < kk; q++ {
					wr[co*kdim+q*c.cin+ci] = w[(co*c.cin+ci)*kk+q]
				}
			}
		}
		// Blocks of output pixels whose im2col rows hold ~2M values.
		pix := c.N * c.ho * c.wo
		block := max(1, (1<<21)/kdim)
		col := make([]T, min(block, pix)*kdim)
		for p0 := 0; p0 < pix; p0 += block {
			p1 := min(pix, p0+block)
			parallelFor(p1-p0, 64, func(lo, hi int) {
				for p := p0 + lo; p < p0+hi; p++ {
					row := col[(p-p0)*kdim : (p-p0+1)*kdim]
					n, r := p/(c.ho*c.wo), p%(c.ho*c.wo)
					oy, ox := r/c.wo, r%c.wo
					for ky := 0; ky < c.k; ky++ {
						iy := oy*c.stride + ky - c.pad
						for kx := 0; kx < c.k; kx++ {
							ix := ox*c.stride + kx - c.pad
							dst := row[(ky*c.k+kx)*c.cin : (ky*c.k+kx+1)*c.cin]
							if iy < 0 || iy >= c.H || ix < 0 || ix >= c.W {
								clear(dst)
								continue
							}
							src := ((n*c.H+iy)*c.W + ix) * c.cin
							copy(dst, x[src:src+c.cin])
						}
					}
				}
			})
			gemm(false, true, p1-p0, c.cout, kdim, 1, col, kdim, wr, kdim, 0, y[p0*c.cout:], c.cout)
		}
	}
	if bias != nil {
		rows := c.N * c.ho * c.wo
		parallelFor(rows, 256, func(lo, hi int) {
			for r := lo; r < hi; r++ {
				row := y[r*c.cout : (r+1)*c.cout]
				for j := range row {
					row[j] += bias[j]
				}
			}
		})
	}
	return t
}

// Builder methods of the ops above.

// Conv2d is Conv2d(x, weight, bias, g, stride, pad); bias may be nil.
func (b *Builder) Conv2d(x, weight, bias *G.Node, g Grid, stride, pad int) *G.Node {
	weight, bias = b.Widen(weight), b.Widen(bias)
	return b.do("Conv2d", false, func() (*G.Node, error) { return Conv2d(x, weight, bias, g, stride, pad) }, x, weight)
}
