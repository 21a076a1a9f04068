package kernels

import (
	"fmt"
	"math"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Rotary applies Hugging Face's rotate-half rotary embedding to x [R, heads*headDim]
// where row r has position positions[r] (positions: [R] node of the same float dtype).
//
// For each head, with half = headDim/2, x1 = x[:half], x2 = x[half:] and i < half:
//
//	invFreq[i] = 1/theta^(2i/headDim), angle = pos·invFreq[i]
//	out[i]      = x1[i]·cos(angle) - x2[i]·sin(angle)
//	out[half+i] = x2[i]·cos(angle) + x1[i]·sin(angle)
//
// To match Hugging Face's float32 rotary tables (LlamaRotaryEmbedding), the
// exponent 2i/headDim, theta^exponent and its reciprocal are rounded to
// float32 step by step, the angle is the float32 product float32(pos)·invFreq,
// and cos/sin of that float32 angle are evaluated in float64 and then rounded
// to the tensor's element type. The gradient w.r.t. x is the rotation by
// -angle; positions are not differentiable. headDim must be even.
func Rotary(x, positions *G.Node, heads, headDim int, theta float64) (*G.Node, error) {
	return rotaryOp(x, positions, heads, headDim, theta, false)
}

func rotaryOp(x, positions *G.Node, heads, headDim int, theta float64, inverse bool) (*G.Node, error) {
	name := "Rotary"
	if inverse {
		name = "RotaryGrad"
	}
	op, err := newOp(name, fmt.Sprintf("heads=%d,headDim=%d,theta=%v", heads, headDim, theta), 2, x, positions)
	if err != nil {
		return nil, err
	}
	op.shape = func(in []tensor.Shape) (tensor.Shape, error) {
		if heads <= 0 || headDim <= 0 || headDim%2 != 0 || !(theta > 0) {
			return nil, shapeErr(name, "bad heads %d / headDim %d (must be even) / theta %v", heads, headDim, theta)
		}
		if in[0].Dims() != 2 || in[0][1] != heads*headDim {
			return nil, shapeErr(name, "x must be [R, heads*headDim=%d], got %v", heads*headDim, in[0])
		}
		if in[1].Dims() != 1 || in[1][0] != in[0][0] {
			return nil, shapeErr(name, "positions must be [%d], got %v", in[0][0], in[1])
		}
		return in[0].Clone(), nil
	}
	invFreq := rotaryInvFreq(headDim, theta)
	op.do = func(in []*tensor.Dense, o *tensor.Dense) (G.Value, error) {
		return dispatch(in[0], func() (G.Value, error) { return rotaryDo[float32](in, invFreq, heads, inverse, o), nil },
			func() (G.Value, error) { return rotaryDo[float64](in, invFreq, heads, inverse, o), nil })
	}
	op.wrt = []bool{true, false}
	op.diff = func(in G.Nodes, _, dy *G.Node) (G.Nodes, error) {
		dx, err := rotaryOp(dy, in[1], heads, headDim, theta, !inverse)
		return G.Nodes{dx, nil}, err
	}
	return apply(op, x, positions)
}

// rotaryInvFreq follows torch's float32 evaluation of
// 1.0 / (theta ** (arange(0, d, 2).float() / d)).
func rotaryInvFreq(headDim int, theta float64) []float32 {
	if headDim < 2 {
		return nil
	}
	inv := make([]float32, headDim/2)
	for i := range inv {
		e := float32(2*i) / float32(headDim)
		p := float32(math.Pow(float64(float32(theta)), float64(e)))
		inv[i] = 1 / p
	}
	return inv
}

func rotaryDo[T float](in []*tensor.Dense, invFreq []float32, heads int, inverse bool, o *tensor.Dense) *tensor.Dense {
	x, pos := data[T](in[0]), data[T](in[1])
	rows, width := in[0].Shape()[0], in[0].Shape()[1]
	half := len(invFreq)
	d := 2 * half
	t, y := newOut[T](o, rows, width)
	parallelFor(rows, 16, func(lo, hi int) {
		cs, sn := make([]T, half), make([]T, half)
		for r := lo; r < hi; r++ {
			p := float32(pos[r])
			for i, f := range invFreq {
				a := float64(p * f)
				cs[i], sn[i] = T(math.Cos(a)), T(math.Sin(a))
				if inverse {
					sn[i] = -sn[i]
				}
			}
			for h := 0; h < heads; h++ {
				xr := x[r*width+h*d:][:d]
				yr := y[r*width+h*d:][:d]
				for i := 0; i < half; i++ {
					x1, x2 := xr[i], xr[half+i]
					yr[i] = x1*cs[i] - x2*sn[i]
					yr[half+i] = x2*cs[i] + x1*sn[i]
				}
			}
		}
	})
	return t
}
