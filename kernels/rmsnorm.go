package kernels

import (
	"fmt"
	"math"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// RMSNorm is Llama's norm: x * rsqrt(mean(x²) + eps) * weight, per row of x [R, C]
// (Hugging Face LlamaRMSNorm):
//
//	ρ = 1/sqrt(mean(x[r, :]²) + eps), y[r, c] = x[r, c]·ρ·weight[c]
//
// The mean of squares is accumulated in float64. Gradients (g = dy·weight):
//
//	dx = ρ·g - ρ³·x·mean(g·x), dweight = Σ_r dy·x·ρ
func RMSNorm(x, weight *G.Node, eps float64) (*G.Node, error) {
	op, err := newOp("RMSNorm", fmt.Sprintf("eps=%v", eps), 2, x, weight)
	if err != nil {
		return nil, err
	}
	op.shape = func(in []tensor.Shape) (tensor.Shape, error) {
		if err := rowVecShapes("RMSNorm", in[0], in[1]); err != nil {
			return nil, err
		}
		return in[0].Clone(), nil
	}
	op.do = func(in []*tensor.Dense, o *tensor.Dense) (G.Value, error) {
		return dispatch(in[0], func() (G.Value, error) { return rmsNormFwd[float32](in, eps, o), nil },
			func() (G.Value, error) { return rmsNormFwd[float64](in, eps, o), nil })
	}
	op.wrt = []bool{true, true}
	op.diff = func(in G.Nodes, _, dy *G.Node) (G.Nodes, error) {
		dx, err := rmsNormGrad("RMSNormGradX", eps, in[0], in[1], dy)
		if err != nil {
			return nil, err
		}
		dw, err := rmsNormGrad("RMSNormGradW", eps, in[0], in[1], dy)
		if err != nil {
			return nil, err
		}
		return G.Nodes{dx, dw}, nil
	}
	return apply(op, x, weight)
}

func rmsScale[T float](row []T, eps float64) float64 {
	var ss float64
	for _, v := range row {
		ss += float64(v) * float64(v)
	}
	return 1 / math.Sqrt(ss/float64(len(row))+eps)
}

func rmsNormFwd[T float](in []*tensor.Dense, eps float64, o *tensor.Dense) *tensor.Dense {
	x, w := data[T](in[0]), data[T](in[1])
	rows, cols := in[0].Shape()[0], in[0].Shape()[1]
	t, y := newOut[T](o, rows, cols)
	if x32, ok := any(x).([]float32); ok {
		rmsNorm32(x32, any(w).([]float32), any(y).([]float32), rows, cols, eps)
		return t
	}
	parallelFor(rows, 64, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			xr, yr := x[r*cols:(r+1)*cols], y[r*cols:(r+1)*cols]
			rho := rmsScale(xr, eps)
			for c, v := range xr {
				yr[c] = T(float64(v) * rho * float64(w[c]))
			}
		}
	})
	return t
}

func rmsNormGrad(name string, eps float64, x, w, dy *G.Node) (*G.Node, error) {
	gradX := name == "RMSNormGradX"
	rank := 1
	if gradX {
		rank = 2
	}
	op, err := newOp(name, fmt.Sprintf("eps=%v", eps), rank, x, w, dy)
	if err != nil {
		return nil, err
	}
	op.shape = func(in []tensor.Shape) (tensor.Shape, error) {
		if err := rowVecShapes(name, in[0], in[1]); err != nil {
			return nil, err
		}
		if !in[2].Eq(in[0]) {
			return nil, shapeErr(name, "dy %v does not match x %v", in[2], in[0])
		}
		if gradX {
			return in[0].Clone(), nil
		}
		return in[1].Clone(), nil
	}
	op.do = func(in []*tensor.Dense, o *tensor.Dense) (G.Value, error) {
		return dispatch(in[0], func() (G.Value, error) { return rmsNormBwd[float32](in, eps, gradX, o), nil },
			func() (G.Value, error) { return rmsNormBwd[float64](in, eps, gradX, o), nil })
	}
	return apply(op, x, w, dy)
}

func rmsNormBwd[T float](in []*tensor.Dense, eps float64, gradX bool, o *tensor.Dense) *tensor.Dense {
	x, w, dy := data[T](in[0]), data[T](in[1]), data[T](in[2])
	rows, cols := in[0].Shape()[0], in[0].Shape()[1]
	if !gradX {
		acc := make([]float64, cols)
		for r := 0; r < rows; r++ {
			xr, gr := x[r*cols:(r+1)*cols], dy[r*cols:(r+1)*cols]
			rho := rmsScale(xr, eps)
			for c, v := range xr {
				acc[c] += float64(gr[c]) * float64(v) * rho
			}
		}
		return fromF64[T](o, acc, cols)
	}
	t, dx := newOut[T](o, rows, cols)
	parallelFor(rows, 64, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			xr, gr, dr := x[r*cols:(r+1)*cols], dy[r*cols:(r+1)*cols], dx[r*cols:(r+1)*cols]
			rho := rmsScale(xr, eps)
			var mgx float64
			for c, v := range xr {
				mgx += float64(gr[c]) * float64(w[c]) * float64(v)
			}
			mgx /= float64(cols)
			r3 := rho * rho * rho
			for c, v := range xr {
				dr[c] = T(rho*float64(gr[c])*float64(w[c]) - r3*float64(v)*mgx)
			}
		}
	})
	return t
}
