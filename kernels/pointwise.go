package kernels

import (
	"fmt"
	"math"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Small inference ops for the CNN and point-tracking graphs (CoTracker):
// instance norm, row L2 normalisation, ReLU, tanh-GELU, the NeRF-style
// sin/cos encoding and a periodic row add. All are forward only: they have
// no gradient (inference graphs).

// InstanceNorm normalises every channel of every image of x [N*H*W, C]
// (channels-last, laid out as g) over its H*W positions, without affine
// parameters (PyTorch's InstanceNorm2d defaults):
//
//	y[n, p, c] = (x[n, p, c] − μ[n, c]) / sqrt(σ²[n, c] + eps)
//
// with the biased variance; statistics are accumulated in float64.
func InstanceNorm(x *G.Node, g Grid, eps float64) (*G.Node, error) {
	op, err := newOp("InstanceNorm", fmt.Sprintf("N=%d,H=%d,W=%d,eps=%g", g.N, g.H, g.W, eps), 2, x)
	if err != nil {
		return nil, err
	}
	op.shape = func(in []tensor.Shape) (tensor.Shape, error) {
		if g.N <= 0 || g.H <= 0 || g.W <= 0 || in[0].Dims() != 2 || in[0][0] != g.N*g.H*g.W {
			return nil, shapeErr("InstanceNorm", "x must be [N*H*W=%d, C] for grid %+v, got %v", g.N*g.H*g.W, g, in[0])
		}
		return in[0].Clone(), nil
	}
	op.do = func(in []*tensor.Dense, o *tensor.Dense) (G.Value, error) {
		return dispatch(in[0], func() (G.Value, error) { return instanceNormDo[float32](g, eps, in, o), nil },
			func() (G.Value, error) { return instanceNormDo[float64](g, eps, in, o), nil })
	}
	op.inplace, op.fullWrite = 1, true
	return apply(op, x)
}

func instanceNormDo[T float](g Grid, eps float64, in []*tensor.Dense, o *tensor.Dense) *tensor.Dense {
	x := data[T](in[0])
	c := in[0].Shape()[1]
	hw := g.H * g.W
	t, y := newOut[T](o, in[0].Shape()...)
	parallelFor(g.N, 1, func(lo, hi int) {
		mean, ss := make([]float64, c), make([]float64, c)
		for n := lo; n < hi; n++ {
			img, out := x[n*hw*c:(n+1)*hw*c], y[n*hw*c:(n+1)*hw*c]
			clear(mean)
			clear(ss)
			for p := 0; p < hw; p++ {
				for j, v := range img[p*c : (p+1)*c] {
					mean[j] += float64(v)
				}
			}
			for j := range mean {
				mean[j] /= float64(hw)
			}
			for p := 0; p < hw; p++ {
				for j, v := range img[p*c : (p+1)*c] {
					d := float64(v) - mean[j]
					ss[j] += d * d
				}
			}
			for j := range ss {
				ss[j] = 1 / math.Sqrt(ss[j]/float64(hw)+eps)
			}
			for p := 0; p < hw; p++ {
				row, dst := img[p*c:(p+1)*c], out[p*c:(p+1)*c]
				for j, v := range row {
					dst[j] = T((float64(v) - mean[j]) * ss[j])
				}
			}
		}
	})
	return t
}

// L2NormRows divides every row of x [R, C] by its Euclidean norm, floored
// as CoTracker does:
//
//	y[r, :] = x[r, :] / sqrt(max(Σ_c x[r, c]², eps))
//
// (the sum in float64).
func L2NormRows(x *G.Node, eps float64) (*G.Node, error) {
	op, err := newOp("L2NormRows", fmt.Sprintf("eps=%g", eps), 2, x)
	if err != nil {
		return nil, err
	}
	op.shape = func(in []tensor.Shape) (tensor.Shape, error) {
		if in[0].Dims() != 2 {
			return nil, shapeErr("L2NormRows", "x must be [R, C], got %v", in[0])
		}
		return in[0].Clone(), nil
	}
	op.do = func(in []*tensor.Dense, o *tensor.Dense) (G.Value, error) {
		return dispatch(in[0], func() (G.Value, error) { return l2NormRowsDo[float32](eps, in, o), nil },
			func() (G.Value, error) { return l2NormRowsDo[float64](eps, in, o), nil })
	}
	op.inplace, op.fullWrite = 1, true
	return apply(op, x)
}

func l2NormRowsDo[T float](eps float64, in []*tensor.Dense, o *tensor.Dense) *tensor.Dense {
	x := data[T](in[0])
	r, c := in[0].Shape()[0], in[0].Shape()[1]
	t, y := newOut[T](o, r, c)
	parallelFor(r, 256, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			row, dst := x[i*c:(i+1)*c], y[i*c:(i+1)*c]
			var s float64
			for _, v := range row {
				s += float64(v) * float64(v)
			}
			d := math.Sqrt(max(s, eps))
			for j, v := range row {
				dst[j] = T(float64(v) / d)
			}
		}
	})
	return t
}

// ReLU is max(x, 0), elementwise, any shape.
func ReLU(x *G.Node) (*G.Node, error) {
	return unary("ReLU", x, func(v float64) float64 { return max(v, 0) })
}

// GELUTanh is the tanh approximation of GELU (PyTorch's
// GELU(approximate="tanh")), elementwise, any shape:
//
//	y = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
func GELUTanh(x *G.Node) (*G.Node, error) {
	beta := math.Sqrt2 * (2 / math.Sqrt(math.Pi)) * 0.5
	return unary("GELUTanh", x, func(v float64) float64 {
		return 0.5 * v * (1 + math.Tanh(beta*(v+0.044715*v*v*v)))
	})
}

// unary is an elementwise forward-only op computed in float64 per element.
func unary(name string, x *G.Node, f func(float64) float64) (*G.Node, error) {
	if x == nil {
		return nil, shapeErr(name, "x is nil")
	}
	op, err := newOp(name, "", x.Dims(), x)
	if err != nil {
		return nil, err
	}
	op.shape = func(in []tensor.Shape) (tensor.Shape, error) { return in[0].Clone(), nil }
	op.do = func(in []*tensor.Dense, o *tensor.Dense) (G.Value, error) {
		return dispatch(in[0], func() (G.Value, error) { return unaryDo[float32](f, in, o), nil },
			func() (G.Value, error) { return unaryDo[float64](f, in, o), nil })
	}
	op.inplace, op.fullWrite = 1, true
	return apply(op, x)
}

func unaryDo[T float](f func(float64) float64, in []*tensor.Dense, o *tensor.Dense) *tensor.Dense {
	x := data[T](in[0])
	t, y := newOut[T](o, in[0].Shape()...)
	parallelFor(len(x), 1<<14, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			y[i] = T(f(float64(x[i])))
		}
	})
	return t
}

// SinCosEncode is the NeRF positional encoding CoTracker applies to
// relative motion (its posenc with degrees [minDeg, maxDeg)): for x [R, D]
// and L = maxDeg − minDeg scales s_l = 2^(minDeg+l), the result is
// [R, D + 2·L·D]:
//
//	y[r] = [x[r], sin(x[r,d]·s_l) for l, d (l-major), sin(x[r,d]·s_l + π/2) for l, d]
//
// (the cosine written as a shifted sine, as the reference does).
func SinCosEncode(x *G.Node, minDeg, maxDeg int) (*G.Node, error) {
	op, err := newOp("SinCosEncode", fmt.Sprintf("deg=%d..%d", minDeg, maxDeg), 2, x)
	if err != nil {
		return nil, err
	}
	L := maxDeg - minDeg
	op.shape = func(in []tensor.Shape) (tensor.Shape, error) {
		if in[0].Dims() != 2 || L < 0 {
			return nil, shapeErr("SinCosEncode", "x must be [R, D] and minDeg <= maxDeg, got %v, %d..%d", in[0], minDeg, maxDeg)
		}
		return tensor.Shape{in[0][0], in[0][1] * (1 + 2*L)}, nil
	}
	op.do = func(in []*tensor.Dense, o *tensor.Dense) (G.Value, error) {
		return dispatch(in[0], func() (G.Value, error) { return sinCosDo[float32](minDeg, L, in, o), nil },
			func() (G.Value, error) { return sinCosDo[float64](minDeg, L, in, o), nil })
	}
	op.fullWrite = true
	return apply(op, x)
}

func sinCosDo[T float](minDeg, L int, in []*tensor.Dense, o *tensor.Dense) *tensor.Dense {
	x := data[T](in[0])
	r, d := in[0].Shape()[0], in[0].Shape()[1]
	w := d * (1 + 2*L)
	t, y := newOut[T](o, r, w)
	halfPi := T(0.5 * math.Pi)
	for i := 0; i < r; i++ {
		row, dst := x[i*d:(i+1)*d], y[i*w:(i+1)*w]
		copy(dst, row)
		for l := 0; l < L; l++ {
			s := T(math.Ldexp(1, minDeg+l))
			for j, v := range row {
				xb := v * s
				dst[d+l*d+j] = T(math.Sin(float64(xb)))
				dst[d+L*d+l*d+j] = T(math.Sin(float64(xb + halfPi)))
			}
		}
	}
	return t
}

// AddTiled adds y [P, C] to x [R, C] periodically (R a multiple of P):
//
//	out[r, :] = x[r, :] + y[r mod P, :]
//
// e.g. a per-frame embedding added to every track's sequence of frames.
func AddTiled(x, y *G.Node) (*G.Node, error) {
	op, err := newOp("AddTiled", "", 2, x, y)
	if err != nil {
		return nil, err
	}
	op.shape = func(in []tensor.Shape) (tensor.Shape, error) {
		if in[0].Dims() != 2 || in[1].Dims() != 2 || in[1][1] != in[0][1] || in[1][0] <= 0 || in[0][0]%in[1][0] != 0 {
			return nil, shapeErr("AddTiled", "x [R, C] and y [P, C] with R a multiple of P, got %v and %v", in[0], in[1])
		}
		return in[0].Clone(), nil
	}
	op.do = func(in []*tensor.Dense, o *tensor.Dense) (G.Value, error) {
		return dispatch(in[0], func() (G.Value, error) { return addTiledDo[float32](in, o), nil },
			func() (G.Value, error) { return addTiledDo[float64](in, o), nil })
	}
	op.inplace, op.fullWrite = 1, true
	return apply(op, x, y)
}

func addTiledDo[T float](in []*tensor.Dense, o *tensor.Dense) *tensor.Dense {
	x, yv := data[T](in[0]), data[T](in[1])
	r, c := in[0].Shape()[0], in[0].Shape()[1]
	p := in[1].Shape()[0]
	t, out := newOut[T](o, r, c)
	parallelFor(r, 64, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			src, add, dst := x[i*c:(i+1)*c], yv[(i%p)*c:(i%p+1)*c], out[i*c:(i+1)*c]
			for j := range dst {
				dst[j] = src[j] + add[j]
			}
		}
	})
	return t
}

// Builder methods of the ops above.

// InstanceNorm is InstanceNorm(x, g, eps).
func (b *Builder) InstanceNorm(x *G.Node, g Grid, eps float64) *G.Node {
	return b.do("InstanceNorm", false, func() (*G.Node, error) { return InstanceNorm(x, g, eps) }, x)
}

// L2NormRows is L2NormRows(x, eps).
func (b *Builder) L2NormRows(x *G.Node, eps float64) *G.Node {
	return b.do("L2NormRows", false, func() (*G.Node, error) { return L2NormRows(x, eps) }, x)
}

// ReLU is ReLU(x).
func (b *Builder) ReLU(x *G.Node) *G.Node {
	return b.do("ReLU", false, func() (*G.Node, error) { return ReLU(x) }, x)
}

// GELUTanh is GELUTanh(x).
func (b *Builder) GELUTanh(x *G.Node) *G.Node {
	return b.do("GELUTanh", false, func() (*G.Node, error) { return GELUTanh(x) }, x)
}

// SinCosEncode is SinCosEncode(x, minDeg, maxDeg).
func (b *Builder) SinCosEncode(x *G.Node, minDeg, maxDeg int) *G.Node {
	return b.do("SinCosEncode", false, func() (*G.Node, error) { return SinCosEncode(x, minDeg, maxDeg) }, x)
}

// AddTiled is AddTiled(x, y).
func (b *Builder) AddTiled(x, y *G.Node) *G.Node {
	x, y = b.Widen(x), b.Widen(y)
	return b.do("AddTiled", false, func() (*G.Node, error) { return AddTiled(x, y) }, x, y)
}
