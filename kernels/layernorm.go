package kernels

import (
	"fmt"
	"math"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// LayerNorm normalises each row of x [R, C] (biased variance), then scales by
// weight [C] and shifts by bias [C]:
//
//	μ = mean(x[r, :]), σ² = mean((x[r, :] - μ)²)
//	y[r, c] = (x[r, c] - μ)/sqrt(σ² + eps)·weight[c] + bias[c]
//
// Statistics are accumulated in float64 for both dtypes. Gradients for x,
// weight and bias (x̂ = normalised x, g = dy·weight, ρ = 1/sqrt(σ²+eps)):
//
//	dx = ρ·(g - mean(g) - x̂·mean(g·x̂)), dweight = Σ_r dy·x̂, dbias = Σ_r dy
func LayerNorm(x, weight, bias *G.Node, eps float64) (*G.Node, error) {
	op, err := newOp("LayerNorm", fmt.Sprintf("eps=%v", eps), 2, x, weight, bias)
	if err != nil {
		return nil, err
	}
	op.shape = func(in []tensor.Shape) (tensor.Shape, error) {
		if err := rowVecShapes("LayerNorm", in[0], in[1:]...); err != nil {
			return nil, err
		}
		return in[0].Clone(), nil
	}
	op.do = func(in []*tensor.Dense, o *tensor.Dense) (G.Value, error) {
		return dispatch(in[0], func() (G.Value, error) { return layerNormFwd[float32](in, eps, o), nil },
			func() (G.Value, error) { return layerNormFwd[float64](in, eps, o), nil })
	}
	op.wrt = []bool{true, true, true}
	op.diff = func(in G.Nodes, _, dy *G.Node) (G.Nodes, error) {
		dx, err := layerNormGrad("LayerNormGradX", eps, in[0], in[1], dy)
		if err != nil {
			return nil, err
		}
		dw, err := layerNormGrad("LayerNormGradW", eps, in[0], in[1], dy)
		if err != nil {
			return nil, err
		}
		db, err := colSum(dy)
		if err != nil {
			return nil, err
		}
		return G.Nodes{dx, dw, db}, nil
	}
	return apply(op, x, weight, bias)
}

// rowVecShapes checks x [R, C] and vectors [C].
func rowVecShapes(name string, x tensor.Shape, vecs ...tensor.Shape) error {
	if x.Dims() != 2 {
		return shapeErr(name, "x must be [R, C], got %v", x)
	}
	for _, v := range vecs {
		if v.Dims() != 1 || v[0] != x[1] {
			return shapeErr(name, "parameter must be [%d], got %v", x[1], v)
		}
	}
	return nil
}

// rowStats returns mean and 1/sqrt(var+eps) of a row in float64.
func rowStats[T float](row []T, eps float64) (mean, rstd float64) {
	var s float64
	for _, v := range row {
		s += float64(v)
	}
	mean = s / float64(len(row))
	var ss float64
	for _, v := range row {
		d := float64(v) - mean
		ss += d * d
	}
	return mean, 1 / math.Sqrt(ss/float64(len(row))+eps)
}

func layerNormFwd[T float](in []*tensor.Dense, eps float64, o *tensor.Dense) *tensor.Dense {
	x, w, b := data[T](in[0]), data[T](in[1]), data[T](in[2])
	rows, cols := in[0].Shape()[0], in[0].Shape()[1]
	t, y := newOut[T](o, rows, cols)
	if x32, ok := any(x).([]float32); ok {
		layerNorm32(x32, any(w).([]float32), any(b).([]float32), any(y).([]float32), rows, cols, eps)
		return t
	}
	parallelFor(rows, 64, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			xr, yr := x[r*cols:(r+1)*cols], y[r*cols:(r+1)*cols]
			mean, rstd := rowStats(xr, eps)
			for c, v := range xr {
				yr[c] = T((float64(v)-mean)*rstd*float64(w[c]) + float64(b[c]))
			}
		}
	})
	return t
}

// layerNormGrad builds the gradient of LayerNorm w.r.t. x ([R, C]) or weight
// ([C]) from inputs x, weight and upstream dy.
func layerNormGrad(name string, eps float64, x, w, dy *G.Node) (*G.Node, error) {
	gradX := name == "LayerNormGradX"
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
		return dispatch(in[0], func() (G.Value, error) { return layerNormBwd[float32](in, eps, gradX, o), nil },
			func() (G.Value, error) { return layerNormBwd[float64](in, eps, gradX, o), nil })
	}
	return apply(op, x, w, dy)
}

func layerNormBwd[T float](in []*tensor.Dense, eps float64, gradX bool, o *tensor.Dense) *tensor.Dense {
	x, w, dy := data[T](in[0]), data[T](in[1]), data[T](in[2])
	rows, cols := in[0].Shape()[0], in[0].Shape()[1]
	if !gradX {
		acc := make([]float64, cols)
		for r := 0; r < rows; r++ {
			xr, gr := x[r*cols:(r+1)*cols], dy[r*cols:(r+1)*cols]
			mean, rstd := rowStats(xr, eps)
			for c, v := range xr {
				acc[c] += float64(gr[c]) * (float64(v) - mean) * rstd
			}
		}
		return fromF64[T](o, acc, cols)
	}
	t, dx := newOut[T](o, rows, cols)
	parallelFor(rows, 64, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			xr, gr, dr := x[r*cols:(r+1)*cols], dy[r*cols:(r+1)*cols], dx[r*cols:(r+1)*cols]
			mean, rstd := rowStats(xr, eps)
			var mg, mgx float64
			for c, v := range xr {
				g := float64(gr[c]) * float64(w[c])
				mg += g
				mgx += g * (float64(v) - mean) * rstd
			}
			mg /= float64(cols)
			mgx /= float64(cols)
			for c, v := range xr {
				g := float64(gr[c]) * float64(w[c])
				xh := (float64(v) - mean) * rstd
				dr[c] = T(rstd * (g - mg - xh*mgx))
			}
		}
	})
	return t
}
