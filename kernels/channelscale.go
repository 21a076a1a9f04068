package kernels

import (
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// ChannelScale multiplies every row of x [R, C] by gamma [C] (ConvNeXt layer scale):
//
//	y[r, c] = x[r, c]·gamma[c], dx = ChannelScale(dy, gamma), dgamma = Σ_r dy·x
func ChannelScale(x, gamma *G.Node) (*G.Node, error) {
	op, err := newOp("ChannelScale", "", 2, x, gamma)
	if err != nil {
		return nil, err
	}
	op.shape = func(in []tensor.Shape) (tensor.Shape, error) {
		if err := rowVecShapes("ChannelScale", in[0], in[1]); err != nil {
			return nil, err
		}
		return in[0].Clone(), nil
	}
	op.do = func(in []*tensor.Dense, o *tensor.Dense) (G.Value, error) {
		return dispatch(in[0], func() (G.Value, error) { return channelScaleDo[float32](in, o), nil },
			func() (G.Value, error) { return channelScaleDo[float64](in, o), nil })
	}
	op.inplace, op.fullWrite = 1, true
	op.wrt = []bool{true, true}
	op.diff = func(in G.Nodes, _, dy *G.Node) (G.Nodes, error) {
		dx, err := ChannelScale(dy, in[1])
		if err != nil {
			return nil, err
		}
		g, err := newOp("ChannelScaleGradGamma", "", 1, in[0], dy)
		if err != nil {
			return nil, err
		}
		g.shape = func(s []tensor.Shape) (tensor.Shape, error) {
			if s[0].Dims() != 2 || !s[0].Eq(s[1]) {
				return nil, shapeErr("ChannelScaleGradGamma", "x %v and dy %v differ", s[0], s[1])
			}
			return tensor.Shape{s[0][1]}, nil
		}
		g.do = func(in []*tensor.Dense, o *tensor.Dense) (G.Value, error) {
			return dispatch(in[0], func() (G.Value, error) { return channelScaleGradGamma[float32](in, o), nil },
				func() (G.Value, error) { return channelScaleGradGamma[float64](in, o), nil })
		}
		dg, err := apply(g, in[0], dy)
		if err != nil {
			return nil, err
		}
		return G.Nodes{dx, dg}, nil
	}
	return apply(op, x, gamma)
}

func channelScaleDo[T float](in []*tensor.Dense, o *tensor.Dense) *tensor.Dense {
	x, gamma := data[T](in[0]), data[T](in[1])
	rows, cols := in[0].Shape()[0], in[0].Shape()[1]
	t, y := newOut[T](o, rows, cols)
	if x32, ok := any(x).([]float32); ok {
		scaleRows32(x32, any(gamma).([]float32), any(y).([]float32), rows, cols)
		return t
	}
	parallelFor(rows, 256, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			xr, yr := x[r*cols:(r+1)*cols], y[r*cols:(r+1)*cols]
			for c, v := range xr {
				yr[c] = v * gamma[c]
			}
		}
	})
	return t
}

func channelScaleGradGamma[T float](in []*tensor.Dense, o *tensor.Dense) *tensor.Dense {
	x, dy := data[T](in[0]), data[T](in[1])
	rows, cols := in[0].Shape()[0], in[0].Shape()[1]
	acc := make([]float64, cols)
	for r := 0; r < rows; r++ {
		xr, gr := x[r*cols:(r+1)*cols], dy[r*cols:(r+1)*cols]
		for c, v := range xr {
			acc[c] += float64(v) * float64(gr[c])
		}
	}
	return fromF64[T](o, acc, cols)
}
