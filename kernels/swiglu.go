package kernels

import (
	"math"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// SwiGLU computes silu(gate) * up elementwise; gate and up have equal shapes:
//
//	y = gate·σ(gate)·up, σ(z) = 1/(1+e^(-z))
//	dgate = dy·up·σ(gate)·(1 + gate·(1-σ(gate))), dup = dy·gate·σ(gate)
func SwiGLU(gate, up *G.Node) (*G.Node, error) {
	if gate == nil || up == nil {
		return nil, shapeErr("SwiGLU", "nil input")
	}
	op, err := newOp("SwiGLU", "", gate.Dims(), gate, up)
	if err != nil {
		return nil, err
	}
	op.shape = func(in []tensor.Shape) (tensor.Shape, error) {
		if !in[0].Eq(in[1]) {
			return nil, shapeErr("SwiGLU", "gate %v and up %v differ", in[0], in[1])
		}
		return in[0].Clone(), nil
	}
	op.do = swigluKernel(0)
	op.wrt = []bool{true, true}
	op.diff = func(in G.Nodes, _, dy *G.Node) (G.Nodes, error) {
		var r G.Nodes
		for mode, name := range []string{"SwiGLUGradGate", "SwiGLUGradUp"} {
			g, err := newOp(name, "", in[0].Dims(), in[0], in[1], dy)
			if err != nil {
				return nil, err
			}
			g.shape = func(s []tensor.Shape) (tensor.Shape, error) {
				if !s[0].Eq(s[1]) || !s[0].Eq(s[2]) {
					return nil, shapeErr(name, "shapes differ: %v %v %v", s[0], s[1], s[2])
				}
				return s[0].Clone(), nil
			}
			g.do = swigluKernel(mode + 1)
			n, err := apply(g, in[0], in[1], dy)
			if err != nil {
				return nil, err
			}
			r = append(r, n)
		}
		return r, nil
	}
	return apply(op, gate, up)
}

// swigluKernel: mode 0 forward, 1 d/dgate, 2 d/dup.
func swigluKernel(mode int) func(in []*tensor.Dense, o *tensor.Dense) (G.Value, error) {
	return func(in []*tensor.Dense, o *tensor.Dense) (G.Value, error) {
		return dispatch(in[0], func() (G.Value, error) { return swigluDo[float32](in, mode, o), nil },
			func() (G.Value, error) { return swigluDo[float64](in, mode, o), nil })
	}
}

func swigluDo[T float](in []*tensor.Dense, mode int, o *tensor.Dense) *tensor.Dense {
	gate, up := data[T](in[0]), data[T](in[1])
	var dy []T
	if mode > 0 {
		dy = data[T](in[2])
	}
	t, y := newOut[T](o, in[0].Shape()...)
	if g32, ok := any(gate).([]float32); ok {
		swiglu32(mode, g32, any(up).([]float32), any(dy).([]float32), any(y).([]float32))
		return t
	}
	parallelFor(len(gate), 1<<14, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			g := float64(gate[i])
			s := 1 / (1 + math.Exp(-g))
			switch mode {
			case 0:
				y[i] = T(g * s * float64(up[i]))
			case 1:
				y[i] = T(float64(dy[i]) * float64(up[i]) * s * (1 + g*(1-s)))
			default:
				y[i] = T(float64(dy[i]) * g * s)
			}
		}
	})
	return t
}
