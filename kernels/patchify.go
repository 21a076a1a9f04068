package kernels

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Patchify gathers non-overlapping k×k patches of channels-last x [N*H*W, C]
// into rows [N*(H/k)*(W/k), C*k*k], feature order (c, ky, kx), so that
// Linear(Patchify(x), convWeight[out, C, k, k], bias) equals a k×k stride-k conv:
//
//	out[(n, py, px), c·k·k + ky·k + kx] = x[(n, py·k+ky, px·k+kx), c]
//
// H and W must be divisible by k. The gradient is the inverse permutation.
func Patchify(x *G.Node, g Grid, k int) (*G.Node, error) {
	return patchOp("Patchify", x, g, k, false)
}

func patchOp(name string, x *G.Node, g Grid, k int, inverse bool) (*G.Node, error) {
	op, err := newOp(name, fmt.Sprintf("grid=%v,k=%d", g, k), 2, x)
	if err != nil {
		return nil, err
	}
	op.shape = func(in []tensor.Shape) (tensor.Shape, error) {
		if k <= 0 || g.N <= 0 || g.H <= 0 || g.W <= 0 {
			return nil, shapeErr(name, "bad grid %+v or patch %d", g, k)
		}
		if g.H%k != 0 || g.W%k != 0 {
			return nil, shapeErr(name, "grid %dx%d is not divisible by patch size %d", g.H, g.W, k)
		}
		xs := in[0]
		rows, patches := g.N*g.H*g.W, g.N*(g.H/k)*(g.W/k)
		if !inverse {
			if xs.Dims() != 2 || xs[0] != rows {
				return nil, shapeErr(name, "x must be [N*H*W=%d, C], got %v", rows, xs)
			}
			return tensor.Shape{patches, xs[1] * k * k}, nil
		}
		if xs.Dims() != 2 || xs[0] != patches || xs[1]%(k*k) != 0 {
			return nil, shapeErr(name, "dy must be [%d, C*%d], got %v", patches, k*k, xs)
		}
		return tensor.Shape{rows, xs[1] / (k * k)}, nil
	}
	op.do = func(in []*tensor.Dense, o *tensor.Dense) (G.Value, error) {
		return dispatch(in[0], func() (G.Value, error) { return patchDo[float32](in[0], g, k, inverse, o), nil },
			func() (G.Value, error) { return patchDo[float64](in[0], g, k, inverse, o), nil })
	}
	if !inverse {
		op.wrt = []bool{true}
		op.diff = func(in G.Nodes, _, dy *G.Node) (G.Nodes, error) {
			dx, err := patchOp("Unpatchify", dy, g, k, true)
			return G.Nodes{dx}, err
		}
	}
	return apply(op, x)
}

func patchDo[T float](t *tensor.Dense, g Grid, k int, inverse bool, o *tensor.Dense) *tensor.Dense {
	src := data[T](t)
	var c int
	if inverse {
		c = t.Shape()[1] / (k * k)
	} else {
		c = t.Shape()[1]
	}
	ph, pw := g.H/k, g.W/k
	var out *tensor.Dense
	var dst []T
	if inverse {
		out, dst = newOut[T](o, g.N*g.H*g.W, c)
	} else {
		out, dst = newOut[T](o, g.N*ph*pw, c*k*k)
	}
	f := c * k * k
	parallelFor(g.N*ph, 1, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			n, py := r/ph, r%ph
			for px := 0; px < pw; px++ {
				prow := ((n*ph+py)*pw + px) * f
				for ky := 0; ky < k; ky++ {
					for kx := 0; kx < k; kx++ {
						pix := ((n*g.H+py*k+ky)*g.W + px*k + kx) * c
						off := prow + ky*k + kx
						if inverse {
							for ch := 0; ch < c; ch++ {
								dst[pix+ch] = src[off+ch*k*k]
							}
						} else {
							for ch := 0; ch < c; ch++ {
								dst[off+ch*k*k] = src[pix+ch]
							}
						}
					}
				}
			}
		}
	})
	return out
}
