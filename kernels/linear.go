package kernels

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Linear computes y = x·Wᵀ + b with BLAS. x [R, in]; w [out, ...] (any rank,
// trailing dims flattened to in, so conv weights [out, in, k, k] work after
// Patchify); b [out] or nil. Returns [R, out].
//
//	y[r, o] = Σ_i x[r, i]·W[o, i] + b[o]
//
// Gradients: dx = dy·W, dW = dyᵀ·x (reshaped to w's shape), db = Σ_r dy[r, :].
//
// w may be a BF16/F16 parameter (x and b float32): it is read in place
// (see half.go), the result is the float32 product on the upcast weight,
// and w is frozen (dx still flows through it). w may also be a quantized
// matrix (Q8_0, Q4K, Q6K; storage shape [out, in/BlockWeights], see
// quant_linear.go), frozen the same way.
func Linear(x, w, b *G.Node) (*G.Node, error) {
	children := []*G.Node{x, w}
	if b != nil {
		children = append(children, b)
	}
	op, err := newHalfOp("Linear", "", 2, 1<<1, children...)
	if err != nil {
		return nil, err
	}
	if IsStorage(w.Dtype()) && x.Dtype() != tensor.Float32 {
		return nil, fmt.Errorf("kernels: Linear: a %s weight (%s) needs float32 x, got %v", halfName(w.Dtype()), w.Name(), x.Dtype())
	}
	hasBias := b != nil
	bw := BlockWeights(w.Dtype())
	if bw > 1 && w.Shape().Dims() != 2 {
		return nil, fmt.Errorf("kernels: Linear: a %s weight (%s) must be a matrix, got shape %v", halfName(w.Dtype()), w.Name(), w.Shape())
	}
	op.shape = func(in []tensor.Shape) (tensor.Shape, error) {
		xs, ws := in[0], in[1]
		if xs.Dims() != 2 {
			return nil, shapeErr("Linear", "x must be [R, in], got %v", xs)
		}
		if ws.Dims() < 2 {
			return nil, shapeErr("Linear", "w must be [out, in, ...], got %v", ws)
		}
		if k := prod(ws[1:]) * bw; k != xs[1] {
			return nil, shapeErr("Linear", "in-dim mismatch: x %v has %d features, w %v has %d", xs, xs[1], ws, k)
		}
		if hasBias && (in[2].Dims() != 1 || in[2][0] != ws[0]) {
			return nil, shapeErr("Linear", "b must be [%d], got %v", ws[0], in[2])
		}
		return tensor.Shape{xs[0], ws[0]}, nil
	}
	op.doOpts = func(in []*tensor.Dense, o *tensor.Dense, opts Options) (G.Value, error) {
		return dispatch(in[0], func() (G.Value, error) { return linearFwdOpts[float32](in, o, opts), nil },
			func() (G.Value, error) { return linearFwdOpts[float64](in, o, opts), nil })
	}
	halfW := IsStorage(w.Dtype())
	op.wrt = []bool{true, !halfW, true}
	op.diff = func(in G.Nodes, _, dy *G.Node) (G.Nodes, error) {
		dx, err := linearGradX(dy, in[1])
		if err != nil {
			return nil, err
		}
		var dw *G.Node
		if !halfW {
			dw, err = linearGradW(dy, in[0], in[1].Shape())
		}
		if err != nil {
			return nil, err
		}
		r := G.Nodes{dx, dw}
		if len(in) == 3 {
			db, err := colSum(dy)
			if err != nil {
				return nil, err
			}
			r = append(r, db)
		}
		return r, nil
	}
	return apply(op, children...)
}

// linearFwd is Linear's forward; bf16Dot is Options.ComputeBF16.
func linearFwd[T float](in []*tensor.Dense, o *tensor.Dense, bf16Dot bool) *tensor.Dense {
	return linearFwdOpts[T](in, o, Options{ComputeBF16: bf16Dot})
}

// linearFwdOpts is Linear's forward under the executor's options.
func linearFwdOpts[T float](in []*tensor.Dense, o *tensor.Dense, opts Options) *tensor.Dense {
	x := data[T](in[0])
	rows, k := in[0].Shape()[0], in[0].Shape()[1]
	out := in[1].Shape()[0]
	t, y := newOut[T](o, rows, out)
	if IsQuant(in[1].Dtype()) {
		linearQuant(any(x).([]float32), rows, k, in[1], out, any(y).([]float32), opts.QuantExact)
	} else if IsHalf(in[1].Dtype()) {
		linearHalf(any(x).([]float32), rows, k, in[1], out, any(y).([]float32), opts.ComputeBF16)
	} else {
		w := data[T](in[1])
		gemm(false, true, rows, out, k, 1, x, k, w, k, 0, y, out)
	}
	if len(in) == 3 {
		b := data[T](in[2])
		if y32, ok := any(y).([]float32); ok {
			addRows32(y32, any(b).([]float32), rows, out)
			return t
		}
		for r := 0; r < rows; r++ {
			row := y[r*out : (r+1)*out]
			for o := range row {
				row[o] += b[o]
			}
		}
	}
	return t
}

// linearGradX computes dx = dy·W: dy [R, out], w [out, ...] → [R, in].
func linearGradX(dy, w *G.Node) (*G.Node, error) {
	op, err := newHalfOp("LinearGradX", "", 2, 1<<1, dy, w)
	if err != nil {
		return nil, err
	}
	bw := BlockWeights(w.Dtype())
	op.shape = func(in []tensor.Shape) (tensor.Shape, error) {
		if in[0].Dims() != 2 || in[1].Dims() < 2 || in[0][1] != in[1][0] {
			return nil, shapeErr("LinearGradX", "dy %v does not match w %v", in[0], in[1])
		}
		return tensor.Shape{in[0][0], prod(in[1][1:]) * bw}, nil
	}
	op.do = func(in []*tensor.Dense, o *tensor.Dense) (G.Value, error) {
		return dispatch(in[0], func() (G.Value, error) { return linearGradXDo[float32](in, o), nil },
			func() (G.Value, error) { return linearGradXDo[float64](in, o), nil })
	}
	return apply(op, dy, w)
}

func linearGradXDo[T float](in []*tensor.Dense, o *tensor.Dense) *tensor.Dense {
	dy := data[T](in[0])
	rows, out := in[0].Shape()[0], in[0].Shape()[1]
	k := prod(in[1].Shape()[1:]) * BlockWeights(in[1].Dtype())
	t, dx := newOut[T](o, rows, k)
	if IsQuant(in[1].Dtype()) {
		linearGradXQuant(any(dy).([]float32), rows, out, in[1], k, any(dx).([]float32))
		return t
	}
	if IsHalf(in[1].Dtype()) {
		linearGradXHalf(any(dy).([]float32), rows, out, in[1], k, any(dx).([]float32))
		return t
	}
	w := data[T](in[1])
	gemm(false, false, rows, k, out, 1, dy, out, w, k, 0, dx, k)
	return t
}

// linearGradW computes dW = dyᵀ·x reshaped to wShape: dy [R, out], x [R, in].
func linearGradW(dy, x *G.Node, wShape tensor.Shape) (*G.Node, error) {
	op, err := newOp("LinearGradW", fmt.Sprint(wShape), wShape.Dims(), dy, x)
	if err != nil {
		return nil, err
	}
	wShape = wShape.Clone()
	op.shape = func(in []tensor.Shape) (tensor.Shape, error) {
		if in[0].Dims() != 2 || in[1].Dims() != 2 || in[0][0] != in[1][0] ||
			in[0][1] != wShape[0] || in[1][1] != prod(wShape[1:]) {
			return nil, shapeErr("LinearGradW", "dy %v and x %v do not match w %v", in[0], in[1], wShape)
		}
		return wShape.Clone(), nil
	}
	op.do = func(in []*tensor.Dense, o *tensor.Dense) (G.Value, error) {
		return dispatch(in[0], func() (G.Value, error) { return linearGradWDo[float32](in, wShape, o), nil },
			func() (G.Value, error) { return linearGradWDo[float64](in, wShape, o), nil })
	}
	return apply(op, dy, x)
}

func linearGradWDo[T float](in []*tensor.Dense, wShape tensor.Shape, o *tensor.Dense) *tensor.Dense {
	dy, x := data[T](in[0]), data[T](in[1])
	rows, out := in[0].Shape()[0], in[0].Shape()[1]
	k := in[1].Shape()[1]
	t, dw := newOut[T](o, wShape...)
	gemm(true, false, out, k, rows, 1, dy, out, x, k, 0, dw, k)
	return t
}
