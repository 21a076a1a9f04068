package kernels

// Op plumbing: the one Gorgonia Op type behind every kernel, how a kernel
// is added to a graph, and the checks all kernels share.

import (
	"fmt"
	"hash"
	"hash/fnv"
	"reflect"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// float is the element type of every CPU loop in this package.
type float interface{ ~float32 | ~float64 }

// kernelOp is the single Op implementation behind every kernel in this package.
// Each kernel fills in its name (which, together with params, must identify
// every parameter of the op: it is what WriteHash writes, and Gorgonia merges
// nodes whose hashes are equal), the types of the children it was built for,
// a shape function, a CPU implementation and, if differentiable, a symbolic
// gradient.
type kernelOp struct {
	name   string
	params string
	types  []hm.Type // type of each child, as built
	out    hm.Type   // type of the result
	shape  func(in []tensor.Shape) (tensor.Shape, error)
	// do computes the result. o, when not nil, is where it goes: a
	// contiguous tensor of the result's shape and dtype (an arena slice of
	// the executor, see exec.go) that do must fill; with o nil do allocates.
	do func(in []*tensor.Dense, o *tensor.Dense) (G.Value, error)
	// doOpts, when set, is do for an op whose kernel follows the
	// executor's Options (Linear: ComputeBF16).
	doOpts func(in []*tensor.Dense, o *tensor.Dense, opts Options) (G.Value, error)
	// inplace is 1 + the index of an input do may write its result over
	// (elementwise kernels reading element i before writing element i), 0
	// for none; the executor uses it when that input dies at this op.
	inplace int
	// fullWrite: do writes every element of its result, so the executor
	// need not zero the buffer first.
	fullWrite bool
	// sideEffects: running the op twice is not the same as once (attention
	// appending to a KV cache); activation checkpointing never recomputes it.
	sideEffects bool
	wrt         []bool // which inputs SymDiff differentiates (nil: none)
	// half is a bit mask of the inputs that may be BF16/F16 parameters
	// (read in place, widened inside do); every other input has the op's
	// float dtype, which is also the dtype of the result.
	half uint32
	diff func(in G.Nodes, out, grad *G.Node) (G.Nodes, error)
}

var (
	_ G.Op   = (*kernelOp)(nil)
	_ G.SDOp = (*kernelOp)(nil)
)

func (op *kernelOp) Arity() int { return len(op.types) }

func (op *kernelOp) Type() hm.Type {
	ts := make([]hm.Type, 0, len(op.types)+1)
	ts = append(ts, op.types...)
	ts = append(ts, op.out)
	return hm.NewFnType(ts...)
}

func (op *kernelOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	if len(ds) != len(op.types) {
		return nil, fmt.Errorf("kernels: %s expects %d inputs, got %d", op.name, len(op.types), len(ds))
	}
	shapes := make([]tensor.Shape, len(ds))
	for i, d := range ds {
		s, ok := d.(tensor.Shape)
		if !ok {
			return nil, fmt.Errorf("kernels: %s: input %d has no shape (%T)", op.name, i, d)
		}
		shapes[i] = s
	}
	return op.shape(shapes)
}

func (op *kernelOp) Do(vs ...G.Value) (v G.Value, err error) {
	return op.doInto(nil, vs, Options{})
}

// doInto is Do writing the result into o (nil: allocate), with an
// executor's options.
func (op *kernelOp) doInto(o *tensor.Dense, vs []G.Value, opts Options) (v G.Value, err error) {
	if len(vs) != len(op.types) {
		return nil, fmt.Errorf("kernels: %s expects %d inputs, got %d", op.name, len(op.types), len(vs))
	}
	ts := make([]*tensor.Dense, len(vs))
	for i, x := range vs {
		if ts[i], err = asDense(x); err != nil {
			return nil, fmt.Errorf("kernels: %s input %d: %w", op.name, i, err)
		}
	}
	dt, err := op.floatDtype(len(ts), func(i int) tensor.Dtype { return ts[i].Dtype() })
	if err != nil {
		return nil, err
	}
	if dt != tensor.Float32 && dt != tensor.Float64 {
		return nil, fmt.Errorf("kernels: %s: unsupported dtype %v (want Float32 or Float64)", op.name, dt)
	}
	shapes := make([]tensor.Shape, len(ts))
	for i, t := range ts {
		shapes[i] = t.Shape()
	}
	if _, err = op.shape(shapes); err != nil {
		return nil, err
	}
	defer func() {
		// A kernel must never take the process down: turn an indexing bug
		// into an error of this op.
		if r := recover(); r != nil {
			v, err = nil, fmt.Errorf("kernels: %s: internal error: %v", op.name, r)
		}
	}()
	if op.doOpts != nil {
		return op.doOpts(ts, o, opts)
	}
	return op.do(ts, o)
}

func (op *kernelOp) ReturnsPtr() bool     { return false }
func (op *kernelOp) CallsExtern() bool    { return false }
func (op *kernelOp) OverwritesInput() int { return -1 }

func (op *kernelOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "kernels.%s{%s}", op.name, op.params)
	for _, t := range op.types {
		fmt.Fprintf(h, ";%v", t)
	}
}

func (op *kernelOp) Hashcode() uint32 {
	h := fnv.New32a()
	op.WriteHash(h)
	return h.Sum32()
}

func (op *kernelOp) String() string {
	if op.params == "" {
		return op.name
	}
	return op.name + "{" + op.params + "}"
}

func (op *kernelOp) DiffWRT(n int) []bool {
	r := make([]bool, n)
	copy(r, op.wrt)
	return r
}

func (op *kernelOp) SymDiff(in G.Nodes, out, grad *G.Node) (G.Nodes, error) {
	if op.diff == nil {
		return nil, fmt.Errorf("kernels: %s is not differentiable", op)
	}
	r, err := op.diff(in, out, grad)
	if err != nil {
		return nil, err
	}
	if len(r) != len(in) {
		return nil, fmt.Errorf("kernels: %s: gradient has %d terms for %d inputs", op, len(r), len(in))
	}
	return r, nil
}

// newOp prepares a kernelOp for the given children, checking that none is nil and
// that all share one float dtype. outRank is the rank of the result (0: scalar).
func newOp(name, params string, outRank int, children ...*G.Node) (*kernelOp, error) {
	return newHalfOp(name, params, outRank, 0, children...)
}

// newHalfOp is newOp for an op whose inputs in the bit mask half may be
// BF16/F16 parameters (see kernelOp.half); the op's float dtype is that of
// the other inputs.
func newHalfOp(name, params string, outRank int, half uint32, children ...*G.Node) (*kernelOp, error) {
	types := make([]hm.Type, len(children))
	for i, c := range children {
		if c == nil {
			return nil, fmt.Errorf("kernels: %s: input %d is nil", name, i)
		}
		types[i] = c.Type()
		if IsStorage(c.Dtype()) && half&(1<<i) == 0 {
			return nil, fmt.Errorf("kernels: %s: input %d (%s) is %s, and this op reads only float inputs there (Widen it first)", name, i, c.Name(), DtypeName(c.Dtype()))
		}
	}
	op := &kernelOp{name: name, params: params, types: types, half: half}
	dt, err := op.floatDtype(len(children), func(i int) tensor.Dtype { return children[i].Dtype() })
	if err != nil {
		return nil, err
	}
	if dt != tensor.Float32 && dt != tensor.Float64 {
		return nil, fmt.Errorf("kernels: %s: unsupported dtype %v (want Float32 or Float64)", name, dt)
	}
	op.out = dt
	if outRank > 0 {
		op.out = G.TensorType{Dims: outRank, Of: dt}
	}
	return op, nil
}

// floatDtype is the op's float dtype for n inputs of dtypes dtype(i): the
// common dtype of the inputs outside the half mask; inputs inside it have
// that dtype or a 16-bit storage dtype.
func (op *kernelOp) floatDtype(n int, dtype func(i int) tensor.Dtype) (tensor.Dtype, error) {
	var dt tensor.Dtype
	first := -1
	for i := 0; i < n; i++ {
		if op.half&(1<<i) != 0 {
			continue
		}
		if d := dtype(i); first < 0 {
			dt, first = d, i
		} else if d != dt {
			return dt, fmt.Errorf("kernels: %s: input %d has dtype %v, input %d has %v", op.name, i, d, first, dt)
		}
	}
	for i := 0; i < n; i++ {
		if op.half&(1<<i) == 0 {
			continue
		}
		if d := dtype(i); first < 0 {
			dt, first = d, i
		} else if d != dt && !IsStorage(d) {
			return dt, fmt.Errorf("kernels: %s: input %d has dtype %v, input %d has %v", op.name, i, d, first, dt)
		}
	}
	if IsStorage(dt) {
		// Only half inputs (Widen): the op computes in float32.
		for i := 0; i < n; i++ {
			if d := dtype(i); !IsStorage(d) {
				return dt, fmt.Errorf("kernels: %s: input %d has dtype %v, input %d has %v", op.name, i, d, first, dt)
			}
		}
		return tensor.Float32, nil
	}
	return dt, nil
}

// apply checks shapes eagerly (so mistakes surface at graph-build time with
// a clear message) and adds the op to the graph.
func apply(op *kernelOp, children ...*G.Node) (*G.Node, error) {
	shapes := make([]tensor.Shape, len(children))
	for i, c := range children {
		shapes[i] = c.Shape()
	}
	if _, err := op.shape(shapes); err != nil {
		return nil, err
	}
	n, err := G.ApplyOp(op, children...)
	if err != nil {
		return nil, fmt.Errorf("kernels: %s: %w", op, err)
	}
	return n, nil
}

// asDense unwraps a Gorgonia value into a contiguous *tensor.Dense.
func asDense(v G.Value) (*tensor.Dense, error) {
	switch x := v.(type) {
	case nil:
		return nil, fmt.Errorf("nil value")
	case *tensor.Dense:
		if x.IsView() || !x.IsNativelyAccessible() {
			m := x.Materialize()
			d, ok := m.(*tensor.Dense)
			if !ok {
				return nil, fmt.Errorf("cannot materialise %T", m)
			}
			return d, nil
		}
		return x, nil
	case *G.F64:
		return tensor.New(tensor.FromScalar(float64(*x))), nil
	case *G.F32:
		return tensor.New(tensor.FromScalar(float32(*x))), nil
	}
	// Gorgonia's dual values (LispMachine) embed the plain value in an
	// exported field named Value.
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Ptr && !rv.IsNil() && rv.Elem().Kind() == reflect.Struct {
		if f := rv.Elem().FieldByName("Value"); f.IsValid() && f.CanInterface() {
			if inner, ok := f.Interface().(G.Value); ok && inner != v {
				return asDense(inner)
			}
		}
	}
	return nil, fmt.Errorf("unsupported value type %T", v)
}

// shapeErr formats a graph-build-time shape error.
func shapeErr(op string, format string, args ...any) error {
	return fmt.Errorf("kernels: %s: %s", op, fmt.Sprintf(format, args...))
}

// colSum is the gradient helper for biases: [R, C] → [C].
func colSum(x *G.Node) (*G.Node, error) {
	op, err := newOp("ColSum", "", 1, x)
	if err != nil {
		return nil, err
	}
	op.shape = func(in []tensor.Shape) (tensor.Shape, error) {
		if in[0].Dims() != 2 {
			return nil, shapeErr("ColSum", "x must be 2-D, got %v", in[0])
		}
		return tensor.Shape{in[0][1]}, nil
	}
	op.do = func(in []*tensor.Dense, o *tensor.Dense) (G.Value, error) {
		r, c := in[0].Shape()[0], in[0].Shape()[1]
		return dispatch(in[0], func() (G.Value, error) {
			return fromF64[float32](o, colSums(data[float32](in[0]), r, c), c), nil
		}, func() (G.Value, error) {
			return fromF64[float64](o, colSums(data[float64](in[0]), r, c), c), nil
		})
	}
	return apply(op, x)
}
