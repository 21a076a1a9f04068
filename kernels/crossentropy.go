package kernels

import (
	"fmt"
	"math"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// CrossEntropy is the mean token cross-entropy of logits [R, V] against
// labels [R] (float-coded ids); rows whose label == ignoreIndex are skipped.
// Returns a scalar.
//
//	loss = (1/n)·Σ_{r: label[r] ≠ ignore} (logsumexp(logits[r, :]) - logits[r, label[r]])
//
// where n is the number of counted rows (loss 0 and zero gradient when n = 0).
// logsumexp subtracts the row max and sums in float64. A label outside
// [0, V) other than ignoreIndex makes Do return an error. Gradient w.r.t.
// logits: (softmax(logits[r, :]) - onehot(label[r]))/n per counted row;
// labels are not differentiable.
func CrossEntropy(logits, labels *G.Node, ignoreIndex int) (*G.Node, error) {
	op, err := newOp("CrossEntropy", fmt.Sprintf("ignore=%d", ignoreIndex), 0, logits, labels)
	if err != nil {
		return nil, err
	}
	op.shape = func(in []tensor.Shape) (tensor.Shape, error) {
		if err := ceShapes(in[0], in[1]); err != nil {
			return nil, err
		}
		return tensor.ScalarShape(), nil
	}
	op.do = func(in []*tensor.Dense, o *tensor.Dense) (G.Value, error) {
		return dispatch(in[0], func() (G.Value, error) { return ceForward[float32](in, ignoreIndex) },
			func() (G.Value, error) { return ceForward[float64](in, ignoreIndex) })
	}
	op.wrt = []bool{true, false}
	op.diff = func(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
		g, err := newOp("CrossEntropyGrad", fmt.Sprintf("ignore=%d", ignoreIndex), 2, in[0], in[1], grad)
		if err != nil {
			return nil, err
		}
		g.shape = func(s []tensor.Shape) (tensor.Shape, error) {
			if err := ceShapes(s[0], s[1]); err != nil {
				return nil, err
			}
			if s[2].TotalSize() != 1 && !s[2].IsScalar() {
				return nil, shapeErr("CrossEntropyGrad", "upstream gradient must be a scalar, got %v", s[2])
			}
			return s[0].Clone(), nil
		}
		g.do = func(in []*tensor.Dense, o *tensor.Dense) (G.Value, error) {
			return dispatch(in[0], func() (G.Value, error) { return ceBackward[float32](in, ignoreIndex, o) },
				func() (G.Value, error) { return ceBackward[float64](in, ignoreIndex, o) })
		}
		g.inplace, g.fullWrite = 1, true // over the logits
		dl, err := apply(g, in[0], in[1], grad)
		if err != nil {
			return nil, err
		}
		return G.Nodes{dl, nil}, nil
	}
	return apply(op, logits, labels)
}

func ceShapes(logits, labels tensor.Shape) error {
	if logits.Dims() != 2 {
		return shapeErr("CrossEntropy", "logits must be [R, V], got %v", logits)
	}
	if labels.Dims() != 1 || labels[0] != logits[0] {
		return shapeErr("CrossEntropy", "labels must be [%d], got %v", logits[0], labels)
	}
	return nil
}

// ceLabel decodes a label: ok=false for ignored rows, error when out of range.
func ceLabel[T float](l T, v, ignore int) (int, bool, error) {
	f := float64(l)
	if f == float64(ignore) {
		return 0, false, nil
	}
	if math.IsNaN(f) || f < 0 || f >= float64(v) || f != math.Trunc(f) {
		return 0, false, fmt.Errorf("kernels: CrossEntropy: label %v out of range [0, %d) (ignoreIndex %d)", f, v, ignore)
	}
	return int(f), true, nil
}

func logSumExp[T float](row []T) float64 {
	if r32, ok := any(row).([]float32); ok && len(r32) > 0 {
		m, s := maxSumExp32(r32) // vec.c: float32 e^(x-max), float64 sum
		return float64(m) + math.Log(s)
	}
	m := math.Inf(-1)
	for _, x := range row {
		m = math.Max(m, float64(x))
	}
	var s float64
	for _, x := range row {
		s += math.Exp(float64(x) - m)
	}
	return m + math.Log(s)
}

func ceForward[T float](in []*tensor.Dense, ignore int) (G.Value, error) {
	logits, labels := data[T](in[0]), data[T](in[1])
	v := in[0].Shape()[1]
	var loss float64
	n := 0
	for r, l := range labels {
		li, ok, err := ceLabel(l, v, ignore)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		row := logits[r*v : (r+1)*v]
		loss += logSumExp(row) - float64(row[li])
		n++
	}
	if n > 0 {
		loss /= float64(n)
	}
	return scalarValue[T](loss), nil
}

func ceBackward[T float](in []*tensor.Dense, ignore int, o *tensor.Dense) (G.Value, error) {
	logits, labels := data[T](in[0]), data[T](in[1])
	up, err := scalarOf(in[2])
	if err != nil {
		return nil, err
	}
	rows, v := in[0].Shape()[0], in[0].Shape()[1]
	idx := make([]int, rows)
	n := 0
	for r, l := range labels {
		li, ok, err := ceLabel(l, v, ignore)
		if err != nil {
			return nil, err
		}
		idx[r] = -1
		if ok {
			idx[r] = li
			n++
		}
	}
	// d may be the logits' own buffer (the executor runs this op in place
	// when the logits die here): every element is written, each row only
	// after it has been read.
	t, d := newOut[T](o, rows, v)
	if n == 0 {
		clear(d)
		return t, nil
	}
	scale := up / float64(n)
	parallelFor(rows, 8, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			row, dr := logits[r*v:(r+1)*v], d[r*v:(r+1)*v]
			if idx[r] < 0 {
				clear(dr)
				continue
			}
			if r32, ok := any(row).([]float32); ok && len(r32) > 0 {
				// p = e^(x-max)/Σe^(x-max), vectorised (vec.c).
				li := idx[r]
				xl := float64(row[li])
				m, s := maxSumExp32(r32)
				scaledExp32(r32, any(dr).([]float32), m, float32(scale/s))
				dr[li] = T((math.Exp(xl-float64(m))/s - 1) * scale)
				continue
			}
			lse := logSumExp(row)
			for j, x := range row {
				p := math.Exp(float64(x) - lse)
				if j == idx[r] {
					p--
				}
				dr[j] = T(p * scale)
			}
		}
	})
	return t, nil
}
