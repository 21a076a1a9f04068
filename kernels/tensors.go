package kernels

// Host tensor helpers shared by the kernels: typed access to backing
// slices, allocation, scalars and dtype dispatch.

import (
	"fmt"
	"math"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// data returns the backing slice of t as []T.
func data[T float](t *tensor.Dense) []T {
	if t.Shape().IsScalar() {
		switch any(*new(T)).(type) {
		case float32:
			return any([]float32{t.ScalarValue().(float32)}).([]T)
		default:
			return any([]float64{t.ScalarValue().(float64)}).([]T)
		}
	}
	return t.Data().([]T)
}

// scalarOf reads a scalar (or single-element) tensor as float64.
func scalarOf(t *tensor.Dense) (float64, error) {
	if t.Shape().TotalSize() != 1 && !t.Shape().IsScalar() {
		return 0, fmt.Errorf("kernels: expected a scalar, got shape %v", t.Shape())
	}
	switch t.Dtype() {
	case tensor.Float32:
		return float64(data[float32](t)[0]), nil
	case tensor.Float64:
		return data[float64](t)[0], nil
	}
	return 0, fmt.Errorf("kernels: unsupported dtype %v", t.Dtype())
}

// newOut returns the output tensor of an op: o itself when the caller (the
// executor) provided one of the right size and element type — zeroed by the
// executor unless the op is marked fullWrite, possibly sharing its buffer
// with an input when the op is marked inplace — a new zeroed tensor
// otherwise.
func newOut[T float](o *tensor.Dense, shape ...int) (*tensor.Dense, []T) {
	if o != nil {
		if buf, ok := o.Data().([]T); ok && len(buf) == prod(shape) && !o.Shape().IsScalar() {
			if !o.Shape().Eq(tensor.Shape(shape)) {
				if err := o.Reshape(shape...); err != nil {
					return newDense[T](shape...)
				}
			}
			return o, buf
		}
	}
	return newDense[T](shape...)
}

// newDense allocates a zeroed tensor of element type T.
func newDense[T float](shape ...int) (*tensor.Dense, []T) {
	n := 1
	for _, s := range shape {
		n *= s
	}
	buf := make([]T, n)
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(buf)), buf
}

// scalarValue wraps v as a Gorgonia scalar of element type T.
func scalarValue[T float](v float64) G.Value {
	switch any(*new(T)).(type) {
	case float32:
		return G.NewF32(float32(v))
	default:
		return G.NewF64(v)
	}
}

// dispatch runs f32 or f64 depending on the dtype of t.
func dispatch(t *tensor.Dense, f32, f64 func() (G.Value, error)) (G.Value, error) {
	switch t.Dtype() {
	case tensor.Float32:
		return f32()
	case tensor.Float64:
		return f64()
	}
	return nil, fmt.Errorf("kernels: unsupported dtype %v", t.Dtype())
}

// colSums returns the column sums of the row-major [rows, cols] matrix a,
// accumulated in float64.
func colSums[T float](a []T, rows, cols int) []float64 {
	acc := make([]float64, cols)
	for r := 0; r < rows; r++ {
		row := a[r*cols : (r+1)*cols]
		for c, v := range row {
			acc[c] += float64(v)
		}
	}
	return acc
}

func prod(s []int) int {
	p := 1
	for _, v := range s {
		p *= v
	}
	return p
}

func isFinite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// fromF64 converts a float64 accumulator into an output tensor of element type T.
func fromF64[T float](o *tensor.Dense, acc []float64, shape ...int) *tensor.Dense {
	t, buf := newOut[T](o, shape...)
	for i, v := range acc {
		buf[i] = T(v)
	}
	return t
}
