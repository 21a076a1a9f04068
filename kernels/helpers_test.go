package kernels

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// buildFn builds the op under test from input nodes.
type buildFn func(in []*G.Node) (*G.Node, error)

func randF64(rng *rand.Rand, shape ...int) *tensor.Dense {
	n := prod(shape)
	buf := make([]float64, n)
	for i := range buf {
		// float32-representable, so float32 runs see exactly the same
		// inputs as the float64 reference.
		buf[i] = float64(float32(rng.NormFloat64()))
	}
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(buf))
}

func denseF64(buf []float64, shape ...int) *tensor.Dense {
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(buf))
}

func toF32(t *tensor.Dense) *tensor.Dense {
	src := t.Data().([]float64)
	buf := make([]float32, len(src))
	for i, v := range src {
		buf[i] = float32(v)
	}
	return tensor.New(tensor.WithShape(t.Shape().Clone()...), tensor.WithBacking(buf))
}

func f64s(v G.Value) []float64 {
	switch x := v.(type) {
	case *G.F64:
		return []float64{float64(*x)}
	case *G.F32:
		return []float64{float64(*x)}
	case *tensor.Dense:
		switch d := x.Data().(type) {
		case []float64:
			return append([]float64(nil), d...)
		case []float32:
			r := make([]float64, len(d))
			for i, v := range d {
				r[i] = float64(v)
			}
			return r
		case float64:
			return []float64{d}
		case float32:
			return []float64{float64(d)}
		}
	}
	panic(fmt.Sprintf("f64s: %T", v))
}

func inputNodes(g *G.ExprGraph, ins []*tensor.Dense) []*G.Node {
	nodes := make([]*G.Node, len(ins))
	for i, t := range ins {
		nodes[i] = G.NodeFromAny(g, t, G.WithName(fmt.Sprintf("in%d", i)))
	}
	return nodes
}

// runGraph compiles g for outputs and runs it once on a fresh executor in
// NaN-poison mode.
func runGraph(g *G.ExprGraph, outputs ...*G.Node) ([]G.Value, error) {
	p, err := Compile(g, CompileOptions{Name: "test", Outputs: outputs})
	if err != nil {
		return nil, err
	}
	// The outputs live in e's arena, which is unmapped when e is released
	// (or collected): copy them out before that.
	e := NewExecutor()
	defer e.Release()
	e.PoisonFreed(true)
	if err := e.Run(p, nil); err != nil {
		return nil, err
	}
	r := make([]G.Value, len(outputs))
	for i, n := range outputs {
		v, err := p.Value(n)
		if err != nil {
			return nil, err
		}
		if d, ok := v.(*tensor.Dense); ok {
			v = d.Clone().(*tensor.Dense)
		}
		r[i] = v
	}
	return r, nil
}

// forward runs build on the inputs with the executor and returns the output.
func forward(t testing.TB, build buildFn, ins ...*tensor.Dense) ([]float64, tensor.Shape) {
	t.Helper()
	g := G.NewGraph()
	out, err := build(inputNodes(g, ins))
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	v, err := runGraph(g, out)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return f64s(v[0]), out.Shape()
}

func maxAbsDiff(a, b []float64) float64 {
	var m float64
	for i := range a {
		m = math.Max(m, math.Abs(a[i]-b[i]))
	}
	return m
}

// checkClose compares got against the float64 reference want with a relative
// tolerance (relative to the largest |want|, floor 1).
func checkClose(t testing.TB, what string, got, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: len %d, want %d", what, len(got), len(want))
	}
	scale := 1.0
	for _, v := range want {
		scale = math.Max(scale, math.Abs(v))
	}
	if d := maxAbsDiff(got, want); d > tol*scale || math.IsNaN(d) {
		t.Errorf("%s: max abs diff %g (scale %g, tol %g)", what, d, scale, tol)
	}
}

// f32Tol is the accepted float32 error relative to the largest |reference|.
const f32Tol = 1e-6

// checkForward runs build in float64 and float32 and compares both with ref.
func checkForward(t *testing.T, build buildFn, ref []float64, ins ...*tensor.Dense) {
	t.Helper()
	got64, _ := forward(t, build, ins...)
	checkClose(t, "float64", got64, ref, 1e-12)
	ins32 := make([]*tensor.Dense, len(ins))
	for i, x := range ins {
		ins32[i] = toF32(x)
	}
	got32, _ := forward(t, build, ins32...)
	checkClose(t, "float32", got32, ref, f32Tol)
}

// gradCheck compares gorgonia.Grad (run by the executor, NaN-poison mode) of
// cost = Sum(build(ins) ⊙ R) with central finite differences for every input
// listed in wrt. If the op returns a scalar, cost = that scalar.
func gradCheck(t *testing.T, build buildFn, wrt []int, ins ...*tensor.Dense) {
	t.Helper()
	rng := rand.New(rand.NewSource(99))
	g := G.NewGraph()
	nodes := inputNodes(g, ins)
	out, err := build(nodes)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	cost := out
	if !out.IsScalar() {
		r := G.NodeFromAny(g, randF64(rng, out.Shape()...), G.WithName("R"))
		prodN, err := G.HadamardProd(out, r)
		if err != nil {
			t.Fatal(err)
		}
		if cost, err = G.Sum(prodN); err != nil {
			t.Fatal(err)
		}
	}
	wrtNodes := make([]*G.Node, len(wrt))
	for i, w := range wrt {
		wrtNodes[i] = nodes[w]
	}
	grads, err := G.Grad(cost, wrtNodes...)
	if err != nil {
		t.Fatalf("Grad: %v", err)
	}
	prog, err := Compile(g, CompileOptions{Name: "gradcheck", Outputs: append(G.Nodes{cost}, grads...)})
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	exec := NewExecutor()
	defer exec.Release() // keeps the arena (and the values read from it) alive to the end
	exec.PoisonFreed(true)
	if err := exec.Run(prog, nil); err != nil {
		t.Fatalf("run: %v", err)
	}
	analytic := make([][]float64, len(wrt))
	for i := range wrt {
		v, err := prog.Value(grads[i])
		if err != nil {
			t.Fatal(err)
		}
		analytic[i] = f64s(v)
	}

	// Numerical: perturb the input tensors in place and re-run the program.
	eval := func() float64 {
		if err := exec.Run(prog, nil); err != nil {
			t.Fatalf("run: %v", err)
		}
		v, err := prog.Value(cost)
		if err != nil {
			t.Fatal(err)
		}
		return f64s(v)[0]
	}
	const eps = 1e-6
	for i, w := range wrt {
		buf := ins[w].Data().([]float64)
		num := make([]float64, len(buf))
		for j := range buf {
			orig := buf[j]
			buf[j] = orig + eps
			fp := eval()
			buf[j] = orig - eps
			fm := eval()
			buf[j] = orig
			num[j] = (fp - fm) / (2 * eps)
		}
		scale := 1e-8
		for _, v := range num {
			scale = math.Max(scale, math.Abs(v))
		}
		t.Logf("input %d: grad scale %g", w, scale)
		if len(analytic[i]) != len(num) {
			t.Fatalf("input %d: analytic grad has %d elements, want %d", w, len(analytic[i]), len(num))
		}
		if d := maxAbsDiff(analytic[i], num) / scale; d > 1e-5 || math.IsNaN(d) {
			t.Errorf("input %d: gradient relative error %g", w, d)
		}
	}
}
