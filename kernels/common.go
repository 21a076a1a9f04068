package kernels

import (
	"fmt"
	"hash"
	"hash/fnv"
	"math"
	"reflect"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/chewxy/hm"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/blas/blas64"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// float is the element type of every CPU loop in this package.
type float interface{ ~float32 | ~float64 }

// kop is the single Op implementation behind every kernel in this package.
// Each kernel fills in its name (which, together with params, must identify
// every parameter of the op: it is what WriteHash writes, and Gorgonia merges
// nodes whose hashes are equal), the types of the children it was built for,
// a shape function, a CPU implementation and, if differentiable, a symbolic
// gradient.
type kop struct {
	name   string
	params string
	types  []hm.Type // type of each child, as built
	out    hm.Type   // type of the result
	shape  func(in []tensor.Shape) (tensor.Shape, error)
	// do computes the result. o, when not nil, is where it goes: a
	// contiguous tensor of the result's shape and dtype (an arena slice of
	// the executor, see exec.go) that do must fill completely; with o nil
	// do allocates.
	do  func(in []*tensor.Dense, o *tensor.Dense) (G.Value, error)
	wrt []bool // which inputs SymDiff differentiates (nil: none)
	// inplace is 1 + the index of an input do may write its result over
	// (elementwise kernels reading element i before writing element i), 0
	// for none; the executor uses it when that input dies at this op.
	inplace int
	// fullWrite: do writes every element of its result, so the executor
	// need not zero the buffer first.
	fullWrite bool
	diff      func(in G.Nodes, out, grad *G.Node) (G.Nodes, error)
}

var (
	_ G.Op   = (*kop)(nil)
	_ G.SDOp = (*kop)(nil)
)

func (op *kop) Arity() int { return len(op.types) }

func (op *kop) Type() hm.Type {
	ts := make([]hm.Type, 0, len(op.types)+1)
	ts = append(ts, op.types...)
	ts = append(ts, op.out)
	return hm.NewFnType(ts...)
}

func (op *kop) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
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

func (op *kop) Do(vs ...G.Value) (v G.Value, err error) {
	return op.doInto(nil, vs)
}

// doInto is Do writing the result into o (nil: allocate).
func (op *kop) doInto(o *tensor.Dense, vs []G.Value) (v G.Value, err error) {
	if len(vs) != len(op.types) {
		return nil, fmt.Errorf("kernels: %s expects %d inputs, got %d", op.name, len(op.types), len(vs))
	}
	ts := make([]*tensor.Dense, len(vs))
	for i, x := range vs {
		if ts[i], err = asDense(x); err != nil {
			return nil, fmt.Errorf("kernels: %s input %d: %w", op.name, i, err)
		}
		if ts[i].Dtype() != ts[0].Dtype() {
			return nil, fmt.Errorf("kernels: %s: input %d has dtype %v, input 0 has %v", op.name, i, ts[i].Dtype(), ts[0].Dtype())
		}
	}
	if dt := ts[0].Dtype(); dt != tensor.Float32 && dt != tensor.Float64 {
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
	return op.do(ts, o)
}

func (op *kop) ReturnsPtr() bool     { return false }
func (op *kop) CallsExtern() bool    { return false }
func (op *kop) OverwritesInput() int { return -1 }

func (op *kop) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "kernels.%s{%s}", op.name, op.params)
	for _, t := range op.types {
		fmt.Fprintf(h, ";%v", t)
	}
}

func (op *kop) Hashcode() uint32 {
	h := fnv.New32a()
	op.WriteHash(h)
	return h.Sum32()
}

func (op *kop) String() string {
	if op.params == "" {
		return op.name
	}
	return op.name + "{" + op.params + "}"
}

func (op *kop) DiffWRT(n int) []bool {
	r := make([]bool, n)
	copy(r, op.wrt)
	return r
}

func (op *kop) SymDiff(in G.Nodes, out, grad *G.Node) (G.Nodes, error) {
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

// newOp prepares a kop for the given children, checking that none is nil and
// that all share one float dtype. outRank is the rank of the result (0: scalar).
func newOp(name, params string, outRank int, children ...*G.Node) (*kop, error) {
	var dt tensor.Dtype
	types := make([]hm.Type, len(children))
	for i, c := range children {
		if c == nil {
			return nil, fmt.Errorf("kernels: %s: input %d is nil", name, i)
		}
		d := c.Dtype()
		if i == 0 {
			dt = d
		} else if d != dt {
			return nil, fmt.Errorf("kernels: %s: input %d (%s) has dtype %v, input 0 has %v", name, i, c.Name(), d, dt)
		}
		types[i] = c.Type()
	}
	if dt != tensor.Float32 && dt != tensor.Float64 {
		return nil, fmt.Errorf("kernels: %s: unsupported dtype %v (want Float32 or Float64)", name, dt)
	}
	var out hm.Type = dt
	if outRank > 0 {
		out = G.TensorType{Dims: outRank, Of: dt}
	}
	return &kop{name: name, params: params, types: types, out: out}, nil
}

// apply checks shapes eagerly (so mistakes surface at graph-build time with
// a clear message) and adds the op to the graph.
func apply(op *kop, children ...*G.Node) (*G.Node, error) {
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

// parallelFor splits [0, n) into contiguous chunks and runs fn on them in
// parallel on at most GOMAXPROCS goroutines (the calling goroutine is one of
// them). minChunk avoids spawning goroutines for tiny amounts of work. There
// are up to four chunks per goroutine, handed out first come first served, so
// that a goroutine whose core is taken by another process (the machines are
// shared) does not hold the others up: a worker that finishes early takes the
// remaining chunks.
func parallelFor(n, minChunk int, fn func(lo, hi int)) {
	parallelChunks(n, minChunk, 4, fn)
}

// parallelChunks is parallelFor with at most perWorker chunks per goroutine.
func parallelChunks(n, minChunk, perWorker int, fn func(lo, hi int)) {
	if n <= 0 {
		return
	}
	if minChunk < 1 {
		minChunk = 1
	}
	workers := runtime.GOMAXPROCS(0)
	chunks := min((n+minChunk-1)/minChunk, perWorker*workers)
	workers = min(workers, chunks)
	if workers <= 1 {
		fn(0, n)
		return
	}
	size := (n + chunks - 1) / chunks
	var next atomic.Int64
	var wg sync.WaitGroup
	var perr any
	var mu sync.Mutex
	work := func() {
		defer func() {
			if r := recover(); r != nil {
				mu.Lock()
				perr = r
				mu.Unlock()
			}
		}()
		for {
			lo := int(next.Add(1)-1) * size
			if lo >= n {
				return
			}
			fn(lo, min(lo+size, n))
		}
	}
	for w := 1; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			work()
		}()
	}
	work()
	wg.Wait()
	if perr != nil {
		panic(perr) // re-raised on the calling goroutine, recovered by kop.Do
	}
}

// splitRange runs fn over [0, n) in pieces (two per goroutine) whose
// boundaries are multiples of align, in parallel.
func splitRange(n, align int, fn func(lo, hi int)) {
	blocks := (n + align - 1) / align
	parallelChunks(blocks, 1, 2, func(lo, hi int) {
		fn(lo*align, min(hi*align, n))
	})
}

// parGemmMin is the number of multiply-adds from which gemm splits a product
// across goroutines (each running single-threaded OpenBLAS).
const parGemmMin = 1 << 21

// gemm computes C = alpha·op(A)·op(B) + beta·C for row-major matrices with
// leading dimensions lda, ldb, ldc, through OpenBLAS (see blas.go).
// op(A) is m×k, op(B) is k×n. Large products are split into column blocks
// (or row blocks when m > n) computed on GOMAXPROCS goroutines; every element
// of C is still one OpenBLAS dot product, so the split does not change results
// beyond OpenBLAS's own blocking.
func gemm[T float](transA, transB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if m == 1 && !transA && beta == 0 && k > 0 {
		// One row (a decode step): a matrix-vector product. Gemm would pack
		// the whole of b for a single row, several times slower than Gemv.
		if n*k >= parGemmMin && runtime.GOMAXPROCS(0) > 1 {
			splitRange(n, 64, func(lo, hi int) {
				boff := lo
				if transB {
					boff = lo * ldb
				}
				gemv(transB, 1, hi-lo, k, alpha, a, b[boff:], ldb, c[lo:hi])
			})
			return
		}
		gemv(transB, m, n, k, alpha, a, b, ldb, c)
		return
	}
	if m*n*k < parGemmMin || runtime.GOMAXPROCS(0) == 1 || k == 0 {
		gemmSeq(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	if m > n {
		splitRange(m, 32, func(lo, hi int) {
			aoff := lo * lda
			if transA {
				aoff = lo
			}
			gemmSeq(transA, transB, hi-lo, n, k, alpha, a[aoff:], lda, b, ldb, beta, c[lo*ldc:], ldc)
		})
		return
	}
	splitRange(n, 32, func(lo, hi int) {
		boff := lo
		if transB {
			boff = lo * ldb
		}
		gemmSeq(transA, transB, m, hi-lo, k, alpha, a, lda, b[boff:], ldb, beta, c[lo:], ldc)
	})
}

// gemmSeq is gemm on the calling goroutine only (for callers that already
// run in parallel).
func gemmSeq[T float](transA, transB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		for i := 0; i < m; i++ {
			row := c[i*ldc : i*ldc+n]
			for j := range row {
				row[j] *= beta
			}
		}
		return
	}
	if m == 1 && !transA && beta == 0 {
		gemv(transB, m, n, k, alpha, a, b, ldb, c)
		return
	}
	tA, tB := blas.NoTrans, blas.NoTrans
	if transA {
		tA = blas.Trans
	}
	if transB {
		tB = blas.Trans
	}
	switch av := any(a).(type) {
	case []float32:
		blas32.Implementation().Sgemm(tA, tB, m, n, k, float32(alpha), av, lda, any(b).([]float32), ldb, float32(beta), any(c).([]float32), ldc)
	case []float64:
		blas64.Implementation().Dgemm(tA, tB, m, n, k, float64(alpha), av, lda, any(b).([]float64), ldb, float64(beta), any(c).([]float64), ldc)
	}
}

// gemv computes the row c[0:n] = alpha · a[0:k] · op(b) for gemm's m == 1
// case: with transB, b is [n, k] (c = alpha·b·a); otherwise b is [k, n]
// (c = alpha·bᵀ·a).
func gemv[T float](transB bool, _ int, n, k int, alpha T, a, b []T, ldb int, c []T) {
	t, rows, cols := blas.Trans, k, n
	if transB {
		t, rows, cols = blas.NoTrans, n, k
	}
	switch av := any(a).(type) {
	case []float32:
		blas32.Implementation().Sgemv(t, rows, cols, float32(alpha), any(b).([]float32), ldb, av, 1, 0, any(c).([]float32), 1)
	case []float64:
		blas64.Implementation().Dgemv(t, rows, cols, float64(alpha), any(b).([]float64), ldb, av, 1, 0, any(c).([]float64), 1)
	}
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

// fromF64 converts a float64 accumulator into an output tensor of element type T.
func fromF64[T float](o *tensor.Dense, acc []float64, shape ...int) *tensor.Dense {
	t, buf := newOut[T](o, shape...)
	for i, v := range acc {
		buf[i] = T(v)
	}
	return t
}
