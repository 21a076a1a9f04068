package kernels

import (
	"fmt"
	"math"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Gather returns rows of src [S, D] selected by idx ([R] node, float-coded row
// indices) → [R, D]. Used for token embeddings, for splicing image features
// into a sequence, and for picking the last position. Backward scatter-adds:
//
//	out[r, :] = src[int(idx[r]), :], dsrc[s, :] = Σ_{r: idx[r]=s} dy[r, :]
//
// An index outside [0, S) (or not a finite number) makes Do return an error.
// idx is not differentiable. src may be a BF16/F16 table (a frozen
// embedding; idx float32): the rows are widened exactly, and src gets no
// gradient. The same holds for a quantized table (Q8_0, Q4K, Q6K, storage
// shape [S, D/BlockWeights]): its rows are dequantized.
func Gather(src, idx *G.Node) (*G.Node, error) {
	op, err := newHalfOp("Gather", "", 2, 1, src, idx)
	if err != nil {
		return nil, err
	}
	halfSrc := IsStorage(src.Dtype())
	bw := BlockWeights(src.Dtype())
	if halfSrc && idx.Dtype() != tensor.Float32 {
		return nil, fmt.Errorf("kernels: Gather: a %s table (%s) needs float32 indices, got %v", halfName(src.Dtype()), src.Name(), idx.Dtype())
	}
	op.shape = func(in []tensor.Shape) (tensor.Shape, error) {
		if in[0].Dims() != 2 {
			return nil, shapeErr("Gather", "src must be [S, D], got %v", in[0])
		}
		if in[1].Dims() != 1 {
			return nil, shapeErr("Gather", "idx must be [R], got %v", in[1])
		}
		return tensor.Shape{in[1][0], in[0][1] * bw}, nil
	}
	op.do = func(in []*tensor.Dense, o *tensor.Dense) (G.Value, error) {
		return dispatch(in[1], func() (G.Value, error) { return gatherDo[float32](in, o) },
			func() (G.Value, error) { return gatherDo[float64](in, o) })
	}
	op.wrt = []bool{!halfSrc, false}
	op.diff = func(in G.Nodes, _, dy *G.Node) (G.Nodes, error) {
		if halfSrc {
			return G.Nodes{nil, nil}, nil // a frozen table: nothing to differentiate
		}
		rows := in[0].Shape()[0]
		g, err := newOp("GatherGrad", fmt.Sprintf("S=%d", rows), 2, in[1], dy)
		if err != nil {
			return nil, err
		}
		g.shape = func(s []tensor.Shape) (tensor.Shape, error) {
			if s[0].Dims() != 1 || s[1].Dims() != 2 || s[0][0] != s[1][0] {
				return nil, shapeErr("GatherGrad", "idx %v does not match dy %v", s[0], s[1])
			}
			return tensor.Shape{rows, s[1][1]}, nil
		}
		g.do = func(in []*tensor.Dense, o *tensor.Dense) (G.Value, error) {
			return dispatch(in[0], func() (G.Value, error) { return scatterAdd[float32](in, rows, o) },
				func() (G.Value, error) { return scatterAdd[float64](in, rows, o) })
		}
		ds, err := apply(g, in[1], dy)
		if err != nil {
			return nil, err
		}
		return G.Nodes{ds, nil}, nil
	}
	return apply(op, src, idx)
}

// rowIndex converts a float-coded index, checking it lies in [0, n).
func rowIndex[T float](v T, n int) (int, error) {
	f := float64(v)
	if math.IsNaN(f) || f < 0 || f >= float64(n) {
		return 0, fmt.Errorf("kernels: Gather: index %v out of range [0, %d)", f, n)
	}
	return int(f), nil
}

func gatherDo[T float](in []*tensor.Dense, o *tensor.Dense) (G.Value, error) {
	idx := data[T](in[1])
	s, d := in[0].Shape()[0], in[0].Shape()[1]*BlockWeights(in[0].Dtype())
	t, out := newOut[T](o, len(idx), d)
	if IsQuant(in[0].Dtype()) {
		out32 := any(out).([]float32)
		for r, v := range idx {
			i, err := rowIndex(v, s)
			if err != nil {
				return nil, err
			}
			dequantRows(in[0], i, i+1, out32[r*d:(r+1)*d], d)
		}
		return t, nil
	}
	if bits, kind, ok := halfBits(in[0]); ok {
		out32 := any(out).([]float32)
		for r, v := range idx {
			i, err := rowIndex(v, s)
			if err != nil {
				return nil, err
			}
			widenRows(kind, bits[i*d:], d, out32[r*d:], d, 1, d)
		}
		return t, nil
	}
	src := data[T](in[0])
	for r, v := range idx {
		i, err := rowIndex(v, s)
		if err != nil {
			return nil, err
		}
		copy(out[r*d:(r+1)*d], src[i*d:(i+1)*d])
	}
	return t, nil
}

func scatterAdd[T float](in []*tensor.Dense, rows int, o *tensor.Dense) (G.Value, error) {
	idx, dy := data[T](in[0]), data[T](in[1])
	d := in[1].Shape()[1]
	t, out := newOut[T](o, rows, d)
	for r, v := range idx {
		i, err := rowIndex(v, rows)
		if err != nil {
			return nil, err
		}
		dst, g := out[i*d:(i+1)*d], dy[r*d:(r+1)*d]
		for c := range dst {
			dst[c] += g[c]
		}
	}
	return t, nil
}
