package kernels

import (
	"errors"
	"fmt"
	"math"
	"math/rand"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// mlp builds x → [Linear → GELU] × layers → Linear, float32.
func mlp(t *testing.T, layers int, rows ...int) (*G.ExprGraph, *G.Node, []*G.Node) {
	t.Helper()
	rng := rand.New(rand.NewSource(3))
	g := G.NewGraph()
	r := 16
	if len(rows) > 0 {
		r = rows[0]
	}
	x := G.NodeFromAny(g, toF32(randF64(rng, r, 32)), G.WithName("x"))
	h := x
	var ws []*G.Node
	for i := 0; i <= layers; i++ {
		w := G.NodeFromAny(g, toF32(randF64(rng, 32, 32)), G.WithName("w"+string(rune('a'+i))))
		ws = append(ws, w)
		var err error
		if h, err = Linear(h, w, nil); err != nil {
			t.Fatal(err)
		}
		if i < layers {
			if h, err = GELU(h); err != nil {
				t.Fatal(err)
			}
		}
	}
	return g, h, ws
}

const mlpValue = 16 * 32 * 4 // bytes of one activation

// Liveness and reuse: a forward chain needs two activations at a time, not
// one per op; in place GELU needs no third.
func TestPlanReusesDeadValues(t *testing.T) {
	g, out, _ := mlp(t, 6)
	p, err := Compile(g, CompileOptions{Name: "mlp", Outputs: G.Nodes{out}})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Verify(); err != nil {
		t.Fatal(err)
	}
	st := p.Stats()
	if st.Steps != 13 || st.KeepAll != 13*mlpValue {
		t.Fatalf("stats %+v", st)
	}
	if st.ArenaBytes != 2*mlpValue {
		t.Errorf("arena %d bytes, want two activations (%d): %v", st.ArenaBytes, 2*mlpValue, st)
	}
	if st.InPlaceOps != 6 {
		t.Errorf("%d GELUs in place, want 6", st.InPlaceOps)
	}
	// Without in-place writes a GELU needs its input and its output.
	q, err := Compile(g, CompileOptions{Name: "mlp", Outputs: G.Nodes{out}, NoInPlace: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Verify(); err != nil {
		t.Fatal(err)
	}
	if q.Stats().InPlaceOps != 0 || q.ArenaBytes() != 2*mlpValue {
		t.Errorf("without in-place: %v", q.Stats())
	}
	// Both compute the same numbers.
	e := NewExecutor()
	defer e.Release() // keeps the arena (and the values read from it) alive to the end
	e.PoisonFreed(true)
	var got [2][]float32
	for i, prog := range []*Program{p, q} {
		if err := e.Run(prog, nil); err != nil {
			t.Fatal(err)
		}
		v, err := prog.Value(out)
		if err != nil {
			t.Fatal(err)
		}
		got[i] = append([]float32(nil), v.Data().([]float32)...)
	}
	for i := range got[0] {
		if got[0][i] != got[1][i] || math.IsNaN(float64(got[0][i])) {
			t.Fatalf("element %d: in place %v, not %v", i, got[0][i], got[1][i])
		}
	}
}

// In-place rules: only when the input dies at the op, is not a requested
// output, and is not bound (inputs and weights are never written).
func TestPlanInPlaceRules(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	g := G.NewGraph()
	x := G.NodeFromAny(g, toF32(randF64(rng, 8, 8)), G.WithName("x"))
	w := G.NodeFromAny(g, toF32(randF64(rng, 8, 8)), G.WithName("w"))
	a, _ := Linear(x, w, nil)
	b, _ := GELU(a) // a is read again below: not in place
	c, _ := Linear(a, w, nil)
	d, _ := GELU(c) // c dies here: in place
	e, _ := GELU(x) // x is bound: never in place
	f, _ := Linear(d, w, nil)
	h, _ := GELU(f) // f is requested: not in place
	p, err := Compile(g, CompileOptions{Name: "rules", Outputs: G.Nodes{b, e, f, h}})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Verify(); err != nil {
		t.Fatal(err)
	}
	inPlace := map[*G.Node]bool{}
	for _, s := range p.steps {
		inPlace[p.vals[s.out].node] = s.inplace
	}
	for n, want := range map[*G.Node]bool{b: false, d: true, e: false, h: false} {
		if inPlace[n] != want {
			t.Errorf("%v: in place %v, want %v", n, inPlace[n], want)
		}
	}
	// Bound inputs are read where they are, never copied or written.
	xs := append([]float32(nil), x.Value().Data().([]float32)...)
	ex := NewExecutor()
	defer ex.Release() // keeps the arena (and the values read from it) alive to the end
	ex.PoisonFreed(true)
	if err := ex.Run(p, nil); err != nil {
		t.Fatal(err)
	}
	for i, v := range x.Value().Data().([]float32) {
		if v != xs[i] {
			t.Fatal("input x was written")
		}
	}
}

// The executor computes exactly what Gorgonia's tape machine computes, for
// a forward and backward graph mixing the kernels with Gorgonia's own ops
// (Add, gradient accumulation, Sum, HadamardProd).
func TestExecutorMatchesTapeMachine(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	g := G.NewGraph()
	x := G.NodeFromAny(g, toF32(randF64(rng, 12, 16)), G.WithName("x"))
	w1 := G.NodeFromAny(g, toF32(randF64(rng, 16, 16)), G.WithName("w1"))
	w2 := G.NodeFromAny(g, toF32(randF64(rng, 16, 16)), G.WithName("w2"))
	nw := G.NodeFromAny(g, toF32(randF64(rng, 16)), G.WithName("nw"))
	lab := G.NodeFromAny(g, toF32(denseF64([]float64{1, 2, 3, -100, 5, 6, 7, 8, 9, 10, 11, 0}, 12)), G.WithName("labels"))
	h, _ := Linear(x, w1, nil)
	h, _ = GELU(h)
	h2, _ := Linear(h, w2, nil)
	s, _ := G.Add(h, h2) // residual: h is read twice, its gradient is accumulated
	n, _ := RMSNorm(s, nw, 1e-5)
	logits, _ := Linear(n, w1, nil) // w1 used twice: gradient accumulation
	loss, err := CrossEntropy(logits, lab, -100)
	if err != nil {
		t.Fatal(err)
	}
	grads, err := G.Grad(loss, w1, w2, nw)
	if err != nil {
		t.Fatal(err)
	}
	outs := append(G.Nodes{loss, logits}, grads...)
	vm := G.NewTapeMachine(g)
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	var want [][]float64
	for _, o := range outs {
		want = append(want, f64s(o.Value()))
	}
	p, err := Compile(g, CompileOptions{Name: "mixed", Outputs: outs})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Verify(); err != nil {
		t.Fatal(err)
	}
	e := NewExecutor()
	defer e.Release() // keeps the arena (and the values read from it) alive to the end
	e.PoisonFreed(true)
	for run := 0; run < 2; run++ { // a second run on the same arena
		if err := e.Run(p, nil); err != nil {
			t.Fatal(err)
		}
		for i, o := range outs {
			v, err := p.Value(o)
			if err != nil {
				t.Fatal(err)
			}
			got := f64s(v)
			for j := range got {
				if got[j] != want[i][j] {
					t.Fatalf("run %d output %d (%v) element %d: %v, tape machine %v", run, i, o, j, got[j], want[i][j])
				}
			}
		}
	}
	if st := p.Stats(); st.ArenaBytes >= st.KeepAll {
		t.Errorf("no reuse: %v", st)
	}
}

// The NaN-poison mode catches a plan that frees a value before its last
// reader: the bad plan is made by hand here (the planner never makes one).
func TestPoisonCatchesReadAfterFree(t *testing.T) {
	g, out, _ := mlp(t, 2)
	p, err := Compile(g, CompileOptions{Name: "mlp", Outputs: G.Nodes{out}, NoInPlace: true})
	if err != nil {
		t.Fatal(err)
	}
	// Free the first Linear's result right after it is computed, before
	// the GELU reads it.
	first := p.steps[0].out
	p.steps[0].free = append(p.steps[0].free, first)
	for i := range p.steps[1].free {
		if p.steps[1].free[i] == first {
			p.steps[1].free = append(p.steps[1].free[:i], p.steps[1].free[i+1:]...)
			break
		}
	}
	e := NewExecutor()
	defer e.Release() // keeps the arena (and the values read from it) alive to the end
	e.PoisonFreed(true)
	if err := e.Run(p, nil); err != nil {
		t.Fatal(err)
	}
	v, _ := p.Value(out)
	for _, x := range v.Data().([]float32) {
		if !math.IsNaN(float64(x)) {
			t.Fatal("read after free not caught: output is finite")
		}
	}
}

// A plan larger than the memory available is refused before it runs,
// naming the program and the bytes.
func TestRunRefusesPlanThatDoesNotFit(t *testing.T) {
	g, out, _ := mlp(t, 3)
	p, err := Compile(g, CompileOptions{Name: "train B=4 T=512", Outputs: G.Nodes{out}})
	if err != nil {
		t.Fatal(err)
	}
	e := NewExecutor()
	defer e.Release() // keeps the arena (and the values read from it) alive to the end
	e.Available = func() (int64, bool) { return 1000, true }
	err = e.Run(p, nil)
	if !errors.Is(err, ErrNoMemory) || !strings.Contains(err.Error(), "train B=4 T=512") || !strings.Contains(err.Error(), "4096 bytes") {
		t.Fatalf("got %v", err)
	}
	if e.ArenaBytes() != 0 {
		t.Error("arena allocated for a refused plan")
	}
}

// One arena for several programs: it grows to the largest; a program's
// outputs are valid until the executor runs again.
func TestExecutorArenaGrows(t *testing.T) {
	g1, o1, _ := mlp(t, 1)
	g2, o2, _ := mlp(t, 5)
	p1, _ := Compile(g1, CompileOptions{Name: "small", Outputs: G.Nodes{o1}})
	p2, _ := Compile(g2, CompileOptions{Name: "big", Outputs: G.Nodes{o2}, NoInPlace: true})
	e := NewExecutor()
	defer e.Release() // keeps the arena (and the values read from it) alive to the end
	for _, p := range []*Program{p1, p2, p1} {
		if err := e.Run(p, nil); err != nil {
			t.Fatal(err)
		}
	}
	if e.ArenaBytes() != max(p1.ArenaBytes(), p2.ArenaBytes()) {
		t.Errorf("arena %d, plans %d and %d", e.ArenaBytes(), p1.ArenaBytes(), p2.ArenaBytes())
	}
	if _, err := p1.Value(o2); err == nil {
		t.Error("foreign node: want error")
	}
	// When a bigger plan replaces the arena, the older program's values are
	// gone: reading them is an error, not a read of unmapped memory.
	e2 := NewExecutor()
	if err := e2.Run(p1, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := p1.Value(o1); err != nil {
		t.Fatal(err)
	}
	g3, o3, _ := mlp(t, 1, 64)
	p3, _ := Compile(g3, CompileOptions{Name: "bigger", Outputs: G.Nodes{o3}})
	if err := e2.Run(p3, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := p1.Value(o1); err == nil {
		t.Error("value of a replaced arena: want error")
	}
	e2.Release()
	if _, err := p3.Value(o3); err == nil {
		t.Error("value after Release: want error")
	}
}

// OnOutput sees each gradient once, already final, in program order.
func TestOnOutputHook(t *testing.T) {
	g, out, ws := mlp(t, 3)
	cost, err := G.Sum(out)
	if err != nil {
		t.Fatal(err)
	}
	grads, err := G.Grad(cost, ws...)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Compile(g, CompileOptions{Name: "hook", Outputs: grads})
	if err != nil {
		t.Fatal(err)
	}
	e := NewExecutor()
	defer e.Release() // keeps the arena (and the values read from it) alive to the end
	seen := map[int][]float32{}
	err = e.Run(p, &RunOptions{OnOutput: func(i int, n *G.Node, v G.Value) error {
		if _, dup := seen[i]; dup || n != grads[i] {
			t.Errorf("output %d reported twice or for the wrong node", i)
		}
		seen[i] = append([]float32(nil), v.Data().([]float32)...)
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != len(grads) {
		t.Fatalf("%d outputs reported, want %d", len(seen), len(grads))
	}
	for i, gn := range grads {
		v, _ := p.Value(gn)
		for j, x := range v.Data().([]float32) {
			if x != seen[i][j] {
				t.Fatalf("gradient %d changed after it was reported final", i)
			}
		}
	}
	// The last layer's gradient is final first (backward order).
	_ = tensor.Float32
}

// Activation checkpointing: a residual network's gradients are the same
// bits with and without recomputation, and the recomputing plan keeps only
// the residual stream alive between forward and backward.
func TestRecomputeGradients(t *testing.T) {
	rng := rand.New(rand.NewSource(8))
	g := G.NewGraph()
	const rows, d, blocks = 64, 32, 6
	x := G.NodeFromAny(g, toF32(randF64(rng, rows, d)), G.WithName("x"))
	var ws G.Nodes
	h := x
	for i := 0; i < blocks; i++ {
		w1 := G.NodeFromAny(g, toF32(randF64(rng, 4*d, d)), G.WithName(fmt.Sprintf("w1_%d", i)))
		w2 := G.NodeFromAny(g, toF32(randF64(rng, d, 4*d)), G.WithName(fmt.Sprintf("w2_%d", i)))
		nw := G.NodeFromAny(g, toF32(randF64(rng, d)), G.WithName(fmt.Sprintf("nw_%d", i)))
		ws = append(ws, w1, w2, nw)
		n, _ := RMSNorm(h, nw, 1e-5)
		a, _ := Linear(n, w1, nil)
		a, _ = GELU(a)
		y, _ := Linear(a, w2, nil)
		var err error
		if h, err = G.Add(h, y); err != nil {
			t.Fatal(err)
		}
	}
	lab := make([]float64, rows)
	for i := range lab {
		lab[i] = float64(i % d)
	}
	loss, err := CrossEntropy(h, G.NodeFromAny(g, toF32(denseF64(lab, rows)), G.WithName("labels")), -100)
	if err != nil {
		t.Fatal(err)
	}
	grads, err := G.Grad(loss, ws...)
	if err != nil {
		t.Fatal(err)
	}
	outs := append(G.Nodes{loss}, grads...)
	var got [2][][]float64
	var stats [2]Stats
	for i, rc := range []bool{false, true} {
		p, err := Compile(g, CompileOptions{Name: "residual", Outputs: outs, Recompute: rc})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Verify(); err != nil {
			t.Fatal(err)
		}
		e := NewExecutor()
		defer e.Release() // keeps the arena (and the values read from it) alive to the end
		e.PoisonFreed(true)
		if err := e.Run(p, nil); err != nil {
			t.Fatal(err)
		}
		for _, o := range outs {
			v, err := p.Value(o)
			if err != nil {
				t.Fatal(err)
			}
			got[i] = append(got[i], f64s(v))
		}
		stats[i] = p.Stats()
	}
	for j := range got[0] {
		for k := range got[0][j] {
			if got[0][j][k] != got[1][j][k] || math.IsNaN(got[1][j][k]) {
				t.Fatalf("output %d element %d: %v with recomputation, %v without", j, k, got[1][j][k], got[0][j][k])
			}
		}
	}
	t.Logf("without: %v; with: %v", stats[0], stats[1])
	if stats[1].Recomputed == 0 || stats[1].PeakLive >= stats[0].PeakLive {
		t.Errorf("recomputation saved nothing: %v vs %v", stats[1], stats[0])
	}
}
