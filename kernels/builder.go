package kernels

import (
	"errors"
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Builder hands out graph nodes while a model graph is built: one node per
// parameter tensor (shared by every layer that uses it), named inputs, and
// the ops of this package as methods.
//
// Parameter nodes wrap the host tensors without copying, so several graphs
// (a prefill graph, a decode graph, a training graph) share one set of weights.
//
// A Builder carries the first error of the graph it builds. An op that fails
// (a shape mismatch, a missing parameter) records its error under the
// builder's scope path and returns nil; every later op is a no-op returning
// nil. Layer code therefore reads like its formula, with no error checks,
// and the code that starts a graph checks Err once before compiling it:
//
//	y := b.In("mlp").Linear(x, w1, b1)
//	y = b.GELU(y)
//	...
//	if err := b.Err(); err != nil { ... }
//
// In returns a view of the same graph one scope deeper; scopes are the
// checkpoint's path segments (the `weights` tags), so an error reads
// "stages.2.blocks.3.mlp.fc1: Linear: in-dim mismatch ...".
type Builder struct {
	*graph
	scope string
}

// graph is what every scoped view of one Builder shares.
type graph struct {
	G      *G.ExprGraph
	names  map[*tensor.Dense]string
	params map[*tensor.Dense]*G.Node
	wide   map[*G.Node]*G.Node // Widen of half parameter nodes
	order  []*G.Node
	err    error
}

// NewBuilder starts a graph. names gives each parameter tensor its checkpoint
// name (used as the node name); tensors not in names get a generated name.
func NewBuilder(names map[*tensor.Dense]string) *Builder {
	return &Builder{graph: &graph{G: G.NewGraph(), names: names, params: map[*tensor.Dense]*G.Node{}, wide: map[*G.Node]*G.Node{}}}
}

// In returns a view of the same graph whose errors are reported under
// scope + "." + path (dot-joined).
func (b *Builder) In(path ...string) *Builder {
	s := b.scope
	for _, p := range path {
		if p == "" {
			continue
		}
		if s != "" {
			s += "."
		}
		s += p
	}
	return &Builder{graph: b.graph, scope: s}
}

// Scope is the builder's path ("" at the root).
func (b *Builder) Scope() string { return b.scope }

// Err is the first error recorded while building, or nil.
func (b *Builder) Err() error { return b.err }

// Fail records err under the builder's scope unless an error is already
// recorded (the first error wins). A nil err is ignored.
func (b *Builder) Fail(err error) {
	if err == nil || b.err != nil {
		return
	}
	if b.scope != "" {
		err = &ScopeError{Scope: b.scope, Err: err}
	}
	b.err = err
}

// Failf records a formatted error, as Fail.
func (b *Builder) Failf(format string, args ...any) { b.Fail(fmt.Errorf(format, args...)) }

// ScopeError is an error raised while building the part of a graph at Scope.
type ScopeError struct {
	Scope string
	Err   error
}

func (e *ScopeError) Error() string { return e.Scope + ": " + e.Err.Error() }
func (e *ScopeError) Unwrap() error { return e.Err }

// Param returns the node for a parameter tensor, creating it on first use.
// A nil tensor (a layer whose weights were never allocated) is recorded as
// an error of the current scope, and nil is returned.
func (b *Builder) Param(t *tensor.Dense) *G.Node {
	if b.err != nil {
		return nil
	}
	if t == nil {
		b.Fail(errMissingParam)
		return nil
	}
	if n, ok := b.params[t]; ok {
		return n
	}
	name, ok := b.names[t]
	if !ok {
		name = fmt.Sprintf("param_%p", t)
	}
	n := G.NodeFromAny(b.G, t, G.WithName(name))
	b.params[t] = n
	b.order = append(b.order, n)
	return n
}

// Widen returns a BF16/F16 node as float32 (one Widen op per node and
// graph); float nodes and nil are returned as they are. The ops below that
// read small parameters (norms, biases, layer scales, depthwise kernels,
// Gorgonia's arithmetic) widen their half inputs themselves; Linear and
// Gather read half weights in place.
func (b *Builder) Widen(x *G.Node) *G.Node {
	if x == nil || b.err != nil || !IsHalf(x.Dtype()) {
		return x
	}
	if w, ok := b.wide[x]; ok {
		return w
	}
	w := b.do("Widen", false, func() (*G.Node, error) { return Widen(x) }, x)
	if w != nil {
		b.wide[x] = w
	}
	return w
}

// errMissingParam is the one error for a parameter tensor that was never
// allocated, whichever layer it belongs to.
var errMissingParam = errors.New("parameter tensor is nil (model not initialised)")

// IsMissingParam reports whether err comes from a nil parameter tensor.
func IsMissingParam(err error) bool { return errors.Is(err, errMissingParam) }

// Params lists parameter nodes in first-use order (for gradients and solvers).
func (b *Builder) Params() G.Nodes { return append(G.Nodes(nil), b.order...) }

// Input creates a named input node holding v (its value can be replaced with G.Let).
func (b *Builder) Input(name string, v *tensor.Dense) *G.Node {
	return G.NodeFromAny(b.G, v, G.WithName(name))
}

// do runs one op unless an error is recorded or a required input is
// missing; a failure is recorded under the scope. Errors of this package's
// kernels already name their op; wrap adds the op name to Gorgonia's.
func (b *Builder) do(op string, wrap bool, f func() (*G.Node, error), required ...*G.Node) *G.Node {
	if b.err != nil {
		return nil
	}
	for i, n := range required {
		if n == nil {
			b.Failf("%s: input %d is nil", op, i)
			return nil
		}
	}
	n, err := f()
	if err != nil {
		if wrap {
			err = fmt.Errorf("%s: %w", op, err)
		}
		b.Fail(err)
		return nil
	}
	return n
}
