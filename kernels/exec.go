package kernels

import (
	"flag"
	"fmt"
	"math"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// This file is the execution engine: it compiles a Gorgonia ExprGraph (a
// model's forward pass, or forward and backward from gorgonia.Grad) into a
// Program — the ops in topological order, the liveness of every value and a
// static buffer plan — and runs programs on an Executor, which owns one
// arena of memory for all intermediate values.
//
//	prog, err := kernels.Compile(g, kernels.CompileOptions{Name: "prefill T=335", Outputs: G.Nodes{logits}})
//	exec := kernels.NewExecutor()
//	err = exec.Run(prog, nil)
//	v, err := prog.Value(logits) // valid until exec runs again
//
// The plan: every computed value that is not a scalar gets a byte range of
// the arena. A value's range is handed back as soon as the last op reading
// it has run and is then reused by later values (best fit, neighbours
// merged); ops that allow it (elementwise kernels) write their result over
// an input that dies at that op. Inputs and parameters (nodes without an op)
// are bound: the executor reads node.Value() at run time, so G.Let still
// feeds a program and weights are never copied. Requested outputs (loss,
// logits, gradients) keep their range to the end of the run and can be read
// afterwards with Program.Value until the executor runs the next program.
//
// Programs hold no buffers, so a cache of programs costs only their plans;
// an executor grows its arena to the largest plan it has run. The arena
// size of a plan (Program.ArenaBytes) is known before anything runs, and
// Executor.Run refuses a plan that does not fit in the memory available,
// naming the program and the bytes.
//
// Backends: the CPU executor runs every op through its Do (the project's
// kernels through a variant that writes into the arena). A device backend
// replaces the arena and the step loop, not the compiler. Distributed
// training hooks gradients through RunOptions.OnOutput, which is called the
// moment an output is final (graph values are written once), so a gradient
// bucket can be reduced while the backward pass goes on.

// arenaAlign is the alignment of every value in the arena (a cache line,
// and enough for AVX-512 loads).
const arenaAlign = 64

// valKind says where a value of a program lives.
type valKind uint8

const (
	valBound valKind = iota // input or parameter: node.Value() at run time
	valConst                // constant op without children: evaluated once at compile time
	valArena                // computed, a byte range of the arena
	valHeap                 // computed scalar (or empty) value, kept as Gorgonia returns it
)

// valInfo is one value of a program.
type valInfo struct {
	node      *G.Node
	kind      valKind
	shape     tensor.Shape
	dtype     tensor.Dtype
	off, size int64 // arena range (valArena)
	pinned    bool  // a requested output: its range lives to the end of the run
	def       int   // step that computes it (-1 for bound/const)
	last      int   // last step that reads it (-1: none)
	constV    G.Value
	output    int // index in CompileOptions.Outputs, -1 if not requested
}

// step is one op of a program.
type step struct {
	op      G.Op
	in      []int
	out     int
	free    []int // arena values whose last reader is this step
	inplace bool  // the output shares the range of an input that dies here
	clear   bool  // the output range must be zeroed before the op (not fully written)
}

// Program is a compiled graph: the steps in order and the buffer plan. It
// holds no value buffers (see Executor).
type Program struct {
	name    string
	steps   []step
	vals    []valInfo
	index   map[*G.Node]int
	outputs []int

	arenaBytes int64 // size of the arena the plan needs
	peakBytes  int64 // largest sum of live arena values at any step
	totalBytes int64 // sum of all arena values (what keeping every value costs)
	boundBytes int64 // inputs and parameters (not in the arena)
	recomputed int   // forward values recomputed in the backward pass

	mu   sync.Mutex // guards bind
	bind *binding
}

// binding is a program's values on one executor's arena.
type binding struct {
	exec  *Executor
	gen   uint64          // the executor's arena generation the views point into
	views []*tensor.Dense // arena values as tensors (nil for others)
	vals  []G.Value       // current values of the last run
}

// CompileOptions configure Compile.
type CompileOptions struct {
	// Name identifies the program in errors and reports (e.g. its shape).
	Name string
	// Outputs are the values the caller reads after a run. Only the ops
	// they depend on are compiled.
	Outputs G.Nodes
	// NoInPlace disables writing results over dying inputs (tests).
	NoInPlace bool
	// Recompute turns on activation checkpointing for a forward+backward
	// graph whose loss is Outputs[0]: see Program.recompute.
	Recompute bool
}

// Compile turns the part of g that Outputs depend on into a Program.
func Compile(g *G.ExprGraph, o CompileOptions) (*Program, error) {
	if len(o.Outputs) == 0 {
		return nil, fmt.Errorf("kernels: compile %s: no outputs requested", o.Name)
	}
	sorted, err := G.Sort(g)
	if err != nil {
		return nil, fmt.Errorf("kernels: compile %s: %w", o.Name, err)
	}
	// Needed nodes: everything the outputs depend on.
	need := map[*G.Node]bool{}
	stack := append(G.Nodes(nil), o.Outputs...)
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if n == nil {
			return nil, fmt.Errorf("kernels: compile %s: nil output node", o.Name)
		}
		if need[n] {
			continue
		}
		need[n] = true
		stack = append(stack, children(g, n)...)
	}
	p := &Program{name: o.Name, index: map[*G.Node]int{}}
	// G.Sort puts the roots first: execution order is the reverse.
	for i := len(sorted) - 1; i >= 0; i-- {
		n := sorted[i]
		if !need[n] {
			continue
		}
		v := valInfo{node: n, shape: n.Shape().Clone(), dtype: n.Dtype(), def: -1, last: -1, output: -1}
		switch {
		case n.Op() == nil:
			v.kind = valBound
			if n.Value() != nil {
				if s, ok := n.Value().(tensor.Tensor); ok {
					p.boundBytes += int64(s.MemSize())
				}
			}
		case len(children(g, n)) == 0:
			v.kind = valConst
			cv, err := n.Op().Do()
			if err != nil {
				return nil, fmt.Errorf("kernels: compile %s: constant %v: %w", o.Name, n, err)
			}
			v.constV = cv
		default:
			v.kind = valArena
			if v.shape.IsScalar() || v.shape.TotalSize() == 0 || v.dtype.Size() == 0 {
				v.kind = valHeap
			} else {
				v.size = int64(v.shape.TotalSize()) * int64(v.dtype.Size())
			}
		}
		p.index[n] = len(p.vals)
		p.vals = append(p.vals, v)
	}
	for i, n := range o.Outputs {
		vi := p.index[n]
		p.vals[vi].pinned = true
		if p.vals[vi].output < 0 {
			p.vals[vi].output = i
		}
		p.outputs = append(p.outputs, vi)
	}
	// Steps and liveness.
	for vi := range p.vals {
		v := &p.vals[vi]
		if v.kind != valArena && v.kind != valHeap {
			continue
		}
		s := step{op: v.node.Op(), out: vi}
		for _, c := range children(g, v.node) {
			ci, ok := p.index[c]
			if !ok {
				return nil, fmt.Errorf("kernels: compile %s: %v reads %v, which is not in the program", o.Name, v.node, c)
			}
			s.in = append(s.in, ci)
		}
		p.steps = append(p.steps, s)
	}
	if o.Recompute {
		p.recompute(g, o.Outputs[0])
	}
	for si, st := range p.steps {
		p.vals[st.out].def = si
		for _, ci := range st.in {
			p.vals[ci].last = si
		}
	}
	p.plan(!o.NoInPlace)
	return p, nil
}

// isAdd: Gorgonia's elementwise addition (the residual connections).
func isAdd(op G.Op) bool {
	return fmt.Sprintf("%T", op) == "gorgonia.elemBinOp" && strings.HasPrefix(fmt.Sprintf("%v", op), "+")
}

// recompute rewrites a forward+backward program so that the backward pass
// recomputes forward values instead of keeping them (activation
// checkpointing). The forward pass is what loss depends on; its checkpoints
// are the values of the residual stream (the results of Gorgonia's Add:
// the input of every ConvNeXt block and decoder layer, and the decoder's
// mid-layer sum), scalars, requested outputs and ops with side effects.
// Every other forward value that a backward op reads is recomputed from
// the checkpoints right before its first backward reader, once; the
// recomputed copies die inside the block's backward, so forward
// intermediates no longer live from the forward pass to the backward pass.
// The copies run the same ops on the same inputs, so gradients are
// bit-identical.
func (p *Program) recompute(g *G.ExprGraph, loss *G.Node) {
	forward := map[int]bool{}
	stack := []*G.Node{loss}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		vi, ok := p.index[n]
		if !ok || forward[vi] {
			continue
		}
		forward[vi] = true
		stack = append(stack, children(g, n)...)
	}
	keep := func(vi int) bool {
		v := &p.vals[vi]
		if !forward[vi] || v.kind != valArena || v.pinned {
			return true
		}
		switch op := v.node.Op().(type) {
		case *kernelOp:
			return op.sideEffects
		default:
			return isAdd(op)
		}
	}
	defStep := map[int]int{}
	for si, st := range p.steps {
		defStep[st.out] = si
	}
	copies := map[int]int{} // forward value -> its recomputed copy
	var out []step
	var redo func(vi int) int
	redo = func(vi int) int {
		if keep(vi) {
			return vi
		}
		if c, ok := copies[vi]; ok {
			return c
		}
		orig := p.steps[defStep[vi]]
		st := step{op: orig.op}
		for _, ci := range orig.in {
			st.in = append(st.in, redo(ci))
		}
		c := len(p.vals)
		cv := p.vals[vi]
		cv.output, cv.pinned = -1, false
		p.vals = append(p.vals, cv)
		st.out = c
		copies[vi] = c
		out = append(out, st)
		return c
	}
	for _, st := range p.steps {
		if !forward[st.out] {
			for i, ci := range st.in {
				if forward[ci] {
					st.in[i] = redo(ci)
				}
			}
		}
		out = append(out, st)
	}
	p.steps = out
	p.recomputed = len(copies)
}

// children lists the inputs of n in order (repeats included).
func children(g *G.ExprGraph, n *G.Node) G.Nodes {
	it := g.From(n.ID())
	if it == nil {
		return nil
	}
	r := make(G.Nodes, 0, it.Len())
	for it.Next() {
		r = append(r, it.Node().(*G.Node))
	}
	return r
}

// inPlaceInput is the input index whose buffer op may write its result
// over, or -1.
func inPlaceInput(op G.Op) int {
	if k, ok := op.(*kernelOp); ok && k.inplace > 0 {
		return k.inplace - 1
	}
	return -1
}

// plan assigns arena ranges: a value's range is taken when its op runs and
// handed back after its last reader.
func (p *Program) plan(inPlace bool) {
	var fl freeList
	var live int64
	for si := range p.steps {
		s := &p.steps[si]
		out := &p.vals[s.out]
		if out.kind == valArena {
			p.totalBytes += out.size
			placed := false
			if ii := inPlaceInput(s.op); inPlace && ii >= 0 && ii < len(s.in) {
				src := &p.vals[s.in[ii]]
				if src.kind == valArena && !src.pinned && src.last == si && src.size == out.size && src.dtype == out.dtype && countOf(s.in, s.in[ii]) == 1 {
					out.off = src.off
					s.inplace, placed = true, true
					live -= src.size // handed over to the output
				}
			}
			if !placed {
				out.off = fl.take(alignUp(out.size))
			}
			live += out.size
			p.peakBytes = max(p.peakBytes, live)
			s.clear = !s.inplace && !fullWrite(s.op)
		}
		for _, ci := range uniq(s.in) {
			c := &p.vals[ci]
			if c.kind != valArena || c.pinned || c.last != si {
				continue
			}
			if s.inplace && c.off == out.off {
				continue // now the output's range
			}
			fl.give(c.off, alignUp(c.size))
			live -= c.size
			s.free = append(s.free, ci)
		}
		// A computed value nobody reads (and not requested) dies at once.
		if out.kind == valArena && out.last < 0 && !out.pinned {
			fl.give(out.off, alignUp(out.size))
			live -= out.size
			s.free = append(s.free, s.out)
		}
	}
	p.arenaBytes = fl.end
}

func fullWrite(op G.Op) bool {
	k, ok := op.(*kernelOp)
	return ok && k.fullWrite
}

func countOf(xs []int, x int) int {
	n := 0
	for _, v := range xs {
		if v == x {
			n++
		}
	}
	return n
}

func uniq(xs []int) []int {
	if len(xs) < 2 {
		return xs
	}
	r := make([]int, 0, len(xs))
	for i, x := range xs {
		if countOf(xs[:i], x) == 0 {
			r = append(r, x)
		}
	}
	return r
}

func alignUp(n int64) int64 { return (n + arenaAlign - 1) / arenaAlign * arenaAlign }

// freeList hands out arena ranges: best fit among freed ranges, else the end
// of the arena grows.
type freeList struct {
	blocks []block // sorted by offset, merged
	end    int64
}

type block struct{ off, size int64 }

func (f *freeList) take(size int64) int64 {
	best := -1
	for i, b := range f.blocks {
		if b.size >= size && (best < 0 || b.size < f.blocks[best].size) {
			best = i
		}
	}
	if best < 0 {
		// Grow: a free block at the end of the arena is extended.
		if n := len(f.blocks); n > 0 && f.blocks[n-1].off+f.blocks[n-1].size == f.end {
			off := f.blocks[n-1].off
			f.end = off + size
			f.blocks = f.blocks[:n-1]
			return off
		}
		off := f.end
		f.end += size
		return off
	}
	b := f.blocks[best]
	if b.size == size {
		f.blocks = append(f.blocks[:best], f.blocks[best+1:]...)
	} else {
		f.blocks[best] = block{b.off + size, b.size - size}
	}
	return b.off
}

func (f *freeList) give(off, size int64) {
	i := sort.Search(len(f.blocks), func(i int) bool { return f.blocks[i].off > off })
	f.blocks = append(f.blocks, block{})
	copy(f.blocks[i+1:], f.blocks[i:])
	f.blocks[i] = block{off, size}
	// Merge with the next and the previous block.
	if i+1 < len(f.blocks) && f.blocks[i].off+f.blocks[i].size == f.blocks[i+1].off {
		f.blocks[i].size += f.blocks[i+1].size
		f.blocks = append(f.blocks[:i+1], f.blocks[i+2:]...)
	}
	if i > 0 && f.blocks[i-1].off+f.blocks[i-1].size == f.blocks[i].off {
		f.blocks[i-1].size += f.blocks[i].size
		f.blocks = append(f.blocks[:i], f.blocks[i+1:]...)
	}
}

// Name is the program's name (CompileOptions.Name).
func (p *Program) Name() string { return p.name }

// ArenaBytes is the arena size the program needs: the peak memory of its
// intermediate values, known before it runs.
func (p *Program) ArenaBytes() int64 { return p.arenaBytes }

// Stats describes a compiled program.
type Stats struct {
	Steps       int   // ops
	Values      int   // computed values
	ArenaBytes  int64 // arena size of the plan
	PeakLive    int64 // largest sum of live intermediate values (ArenaBytes minus fragmentation)
	KeepAll     int64 // bytes if every intermediate were kept (a tape machine)
	BoundBytes  int64 // inputs and parameters read in place
	InPlaceOps  int   // ops writing over a dying input
	OutputBytes int64 // requested outputs in the arena
	Recomputed  int   // forward values recomputed in the backward pass
}

// Stats reports the plan.
func (p *Program) Stats() Stats {
	s := Stats{Steps: len(p.steps), ArenaBytes: p.arenaBytes, PeakLive: p.peakBytes, KeepAll: p.totalBytes, BoundBytes: p.boundBytes, Recomputed: p.recomputed}
	for _, st := range p.steps {
		s.Values++
		if st.inplace {
			s.InPlaceOps++
		}
	}
	for _, vi := range p.outputs {
		s.OutputBytes += p.vals[vi].size
	}
	return s
}

func (s Stats) String() string {
	r := fmt.Sprintf("%d ops, arena %s (peak live %s; keeping every value would take %s), %d in place",
		s.Steps, FormatBytes(s.ArenaBytes), FormatBytes(s.PeakLive), FormatBytes(s.KeepAll), s.InPlaceOps)
	if s.Recomputed > 0 {
		r += fmt.Sprintf(", %d recomputed in backward", s.Recomputed)
	}
	return r
}

// FormatBytes writes n bytes for people (KiB, MiB, GiB).
func FormatBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// Value is the value of a requested output (or a bound input) after the
// last run. Arena values are views valid until the executor that ran the
// program runs again; copy what must outlive that.
func (p *Program) Value(n *G.Node) (G.Value, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	vi, ok := p.index[n]
	if !ok {
		return nil, fmt.Errorf("kernels: %s: node %v is not part of the program", p.name, n)
	}
	v := p.vals[vi]
	if v.kind == valBound {
		return n.Value(), nil
	}
	if !v.pinned {
		return nil, fmt.Errorf("kernels: %s: %v was not requested as an output (its buffer is reused)", p.name, n)
	}
	if p.bind == nil || p.bind.vals[vi] == nil {
		return nil, fmt.Errorf("kernels: %s: %v has no value (the program has not run)", p.name, n)
	}
	if p.bind.exec.gen.Load() != p.bind.gen {
		return nil, fmt.Errorf("kernels: %s: %v is gone: its executor's arena was replaced since the program ran", p.name, n)
	}
	return p.bind.vals[vi], nil
}

// Executor runs programs. It owns the arena, grown to the largest program
// it has run; one program runs at a time (Run holds a lock).
type Executor struct {
	mu   sync.Mutex
	mem  *arenaMem
	gen  atomic.Uint64  // bumped whenever the arena is replaced or released
	base unsafe.Pointer // start of the arena
	size int64
	opts Options
	// Available reports the bytes the arena may still grow by; nil reads
	// MemAvailable from /proc/meminfo. Tests replace it.
	Available func() (int64, bool)
}

// Options are the modes an executor runs its programs in, chosen by what
// runs them (a command's flags, a test) and passed at NewExecutorWith; the
// zero value is the default (float32 activations, no poisoning).
type Options struct {
	// ComputeBF16 (--compute bf16) switches decode products with bf16
	// weights to bf16 activations: each input row is rounded to bfloat16
	// and multiplied with the weights by vdpbf16ps (pairs of bf16 products
	// accumulated in float32). Faster where the GEMV is compute-bound, less
	// exact: the error against float32 activations is measured in
	// TestComputeBF16Error (about 2^-9 relative per product). Prefill
	// products keep float32 activations (Debian's OpenBLAS has no bf16
	// GEMM). Refused without avx512_bf16 (Check).
	ComputeBF16 bool
	// QuantExact keeps decode products with quantized weights (Q8_0, Q4_K,
	// Q6_K) on float32 activations (each block dequantized in registers:
	// the float32 product on the dequantized weights up to summation
	// order) instead of activations quantized to 8 bits per block with
	// integer dot products (llama.cpp's approach, the default: faster, with
	// the error bound of quant_linear.go).
	QuantExact bool
	// PoisonFreed is the NaN-poison debug mode: every value's range is
	// filled with NaN the moment the value dies, so a read after reuse
	// shows up as NaN in the results.
	PoisonFreed bool
}

// Check refuses options this machine cannot run (ComputeBF16 without the
// avx512_bf16 instructions).
func (o Options) Check() error {
	if o.ComputeBF16 && !HasBF16Dot {
		return fmt.Errorf("kernels: --compute bf16 needs the avx512_bf16 instructions, which this CPU lacks (see /proc/cpuinfo); use --compute f32")
	}
	return nil
}

// TestOptions are the options the project's tests run their executors
// with: NaN-poison mode (parity goldens, gradient checks and resume then
// show a value read after its buffer was reused as NaN), except in
// benchmarks (-test.bench set).
func TestOptions() Options {
	f := flag.Lookup("test.bench")
	return Options{PoisonFreed: f == nil || f.Value.String() == ""}
}

// NewExecutor returns an executor with an empty arena and the default
// options.
func NewExecutor() *Executor {
	e, _ := NewExecutorWith(Options{})
	return e
}

// NewExecutorWith returns an executor with an empty arena running its
// programs with o (refused as Check refuses it).
func NewExecutorWith(o Options) (*Executor, error) {
	if err := o.Check(); err != nil {
		return nil, err
	}
	e := &Executor{opts: o, mem: &arenaMem{}}
	runtime.AddCleanup(e, func(m *arenaMem) { m.free() }, e.mem)
	return e, nil
}

// arenaMem is an arena mapped outside the Go heap: the garbage collector
// neither scans it nor counts it towards its next collection target (a
// heap-allocated arena of 1 GB would let 1 GB of garbage pile up before the
// next collection), and untouched pages of a plan cost no memory.
type arenaMem struct {
	mu  sync.Mutex
	mem []byte
}

func (a *arenaMem) alloc(n int64) error {
	a.free()
	mem, err := syscall.Mmap(-1, 0, int(n), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.mem = mem
	a.mu.Unlock()
	return nil
}

func (a *arenaMem) free() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.mem != nil {
		_ = syscall.Munmap(a.mem)
		a.mem = nil
	}
}

// PoisonFreed switches the NaN-poison debug mode of this executor
// (Options.PoisonFreed).
func (e *Executor) PoisonFreed(on bool) { e.mu.Lock(); e.opts.PoisonFreed = on; e.mu.Unlock() }

// ArenaBytes is the executor's current arena size.
func (e *Executor) ArenaBytes() int64 { e.mu.Lock(); defer e.mu.Unlock(); return e.size }

// Release unmaps the arena (it is mapped again by the next run). Values of
// programs run on e are gone afterwards (Program.Value says so).
func (e *Executor) Release() {
	e.mu.Lock()
	e.gen.Add(1)
	e.mem.free()
	e.base, e.size = nil, 0
	e.mu.Unlock()
}

// ErrNoMemory is wrapped by Run's error when a plan does not fit.
var ErrNoMemory = fmt.Errorf("not enough memory for the program's plan")

// reserve grows the arena to n bytes, refusing sizes beyond the memory
// available.
func (e *Executor) reserve(p *Program) error {
	n := p.arenaBytes
	if n <= e.size {
		return nil
	}
	avail := e.Available
	if avail == nil {
		avail = AvailableMemory
	}
	if a, ok := avail(); ok && n-e.size > a {
		return fmt.Errorf("kernels: %s: its plan needs %s of activations (%d bytes), only %s of memory is available: %w",
			p.name, FormatBytes(n), n, FormatBytes(a), ErrNoMemory)
	}
	e.gen.Add(1)
	e.base, e.size = nil, 0
	if err := e.mem.alloc(n); err != nil { // unmaps the old arena first
		return fmt.Errorf("kernels: %s: mapping an arena of %s: %w", p.name, FormatBytes(n), err)
	}
	e.base, e.size = unsafe.Pointer(&e.mem.mem[0]), n // page aligned
	return nil
}

// view returns the arena range of v as a tensor.
func (e *Executor) view(v *valInfo) (*tensor.Dense, error) {
	ptr := unsafe.Add(e.base, v.off)
	n := v.shape.TotalSize()
	var backing any
	switch v.dtype {
	case tensor.Float32:
		backing = unsafe.Slice((*float32)(ptr), n)
	case tensor.Float64:
		backing = unsafe.Slice((*float64)(ptr), n)
	case BFloat16:
		backing = unsafe.Slice((*BF16)(ptr), n)
	case Float16:
		backing = unsafe.Slice((*F16)(ptr), n)
	case tensor.Int:
		backing = unsafe.Slice((*int)(ptr), n)
	case tensor.Int32:
		backing = unsafe.Slice((*int32)(ptr), n)
	case tensor.Int64:
		backing = unsafe.Slice((*int64)(ptr), n)
	default:
		return nil, fmt.Errorf("dtype %v is not supported in the arena", v.dtype)
	}
	return tensor.New(tensor.WithShape(v.shape.Clone()...), tensor.WithBacking(backing)), nil
}

// RunOptions configure one run.
type RunOptions struct {
	// OnOutput is called with each requested output the moment it is
	// final, in program order (a gradient is final when its node has been
	// computed: graph values are written once). Returning an error stops
	// the run.
	OnOutput func(index int, n *G.Node, v G.Value) error
}

// Run executes p: bound values are read from their nodes, every op writes
// into its arena range. Afterwards p.Value reads the outputs.
func (e *Executor) Run(p *Program, o *RunOptions) (err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := e.reserve(p); err != nil {
		return err
	}
	b := p.bind
	if gen := e.gen.Load(); b == nil || b.exec != e || b.gen != gen {
		b = &binding{exec: e, gen: gen, views: make([]*tensor.Dense, len(p.vals)), vals: make([]G.Value, len(p.vals))}
		for i := range p.vals {
			if p.vals[i].kind != valArena {
				continue
			}
			if b.views[i], err = e.view(&p.vals[i]); err != nil {
				return fmt.Errorf("kernels: %s: %v: %w", p.name, p.vals[i].node, err)
			}
		}
		p.bind = b
	}
	vals := b.vals
	clear(vals)
	for i := range p.vals {
		v := &p.vals[i]
		switch v.kind {
		case valBound:
			x := v.node.Value()
			if x == nil {
				return fmt.Errorf("kernels: %s: input %s has no value", p.name, v.node.Name())
			}
			if !x.Shape().Eq(v.shape) && !(x.Shape().IsScalar() && v.shape.IsScalar()) {
				return fmt.Errorf("kernels: %s: input %s has shape %v, the program was compiled for %v", p.name, v.node.Name(), x.Shape(), v.shape)
			}
			vals[i] = x
		case valConst:
			vals[i] = v.constV
		}
	}
	ins := make([]G.Value, 0, 8)
	for si := range p.steps {
		s := &p.steps[si]
		ins = ins[:0]
		for _, ci := range s.in {
			ins = append(ins, vals[ci])
		}
		out := b.views[s.out]
		v, err := e.exec(s, ins, out)
		if err != nil {
			n := p.vals[s.out].node
			return fmt.Errorf("kernels: %s: step %d (%v): %w", p.name, si, n.Op(), err)
		}
		vals[s.out] = v
		for _, fi := range s.free {
			if e.opts.PoisonFreed {
				poisonValue(b.views[fi])
			}
		}
		if vi := &p.vals[s.out]; vi.pinned && o != nil && o.OnOutput != nil {
			if err := o.OnOutput(vi.output, vi.node, v); err != nil {
				return err
			}
		}
	}
	return nil
}

// exec runs one op, its result in out (nil for heap values).
func (e *Executor) exec(s *step, ins []G.Value, out *tensor.Dense) (v G.Value, err error) {
	defer func() {
		// Gorgonia's own ops panic on some bad inputs: make it the run's error.
		if r := recover(); r != nil {
			v, err = nil, fmt.Errorf("internal error: %v", r)
		}
	}()
	if out != nil {
		if k, ok := s.op.(*kernelOp); ok {
			if s.clear {
				clearTensor(out)
			}
			v, err := k.doInto(out, ins, e.opts)
			if err != nil {
				return nil, err
			}
			if v != G.Value(out) {
				if err := copyInto(out, v); err != nil {
					return nil, err
				}
			}
			return out, nil
		}
	}
	op := s.op
	if oi := op.OverwritesInput(); oi >= 0 && oi < len(ins) {
		// The op writes into that input: give it a private copy.
		c, err := G.CloneValue(ins[oi])
		if err != nil {
			return nil, err
		}
		ins = append([]G.Value(nil), ins...)
		ins[oi] = c
	}
	if out == nil {
		return op.Do(ins...)
	}
	if pd, ok := op.(G.UsePreallocDoer); ok && preallocOK(op) && sameShapes(ins, out) {
		v, err := pd.UsePreallocDo(out, ins...)
		if err == nil {
			if v != G.Value(out) {
				if err := copyInto(out, v); err != nil {
					return nil, err
				}
			}
			return out, nil
		}
	}
	v, err = op.Do(ins...)
	if err != nil {
		return nil, err
	}
	if err := copyInto(out, v); err != nil {
		return nil, err
	}
	return out, nil
}

// preallocOK lists the Gorgonia ops whose UsePreallocDo is known to write
// into the given tensor (elementwise arithmetic, used for gradient
// accumulation); others run through Do and a copy.
func preallocOK(op G.Op) bool {
	return fmt.Sprintf("%T", op) == "gorgonia.elemBinOp"
}

// sameShapes: every tensor input has out's shape (an elementwise op without
// broadcasting, where writing into a preallocated result is safe).
func sameShapes(ins []G.Value, out *tensor.Dense) bool {
	for _, x := range ins {
		if x.Shape().IsScalar() {
			return false
		}
		if !x.Shape().Eq(out.Shape()) {
			return false
		}
	}
	return true
}

// copyInto copies v (any layout) into the contiguous out.
func copyInto(out *tensor.Dense, v G.Value) error {
	if v == nil {
		return fmt.Errorf("op returned no value")
	}
	d, err := asDense(v)
	if err != nil {
		return err
	}
	if d.Shape().TotalSize() != out.Shape().TotalSize() || d.Dtype() != out.Dtype() {
		return fmt.Errorf("op returned %v %v, the plan expected %v %v", d.Dtype(), d.Shape(), out.Dtype(), out.Shape())
	}
	switch src := d.Data().(type) {
	case []float32:
		copy(out.Data().([]float32), src)
	case []float64:
		copy(out.Data().([]float64), src)
	case []BF16:
		copy(out.Data().([]BF16), src)
	case []F16:
		copy(out.Data().([]F16), src)
	case []int:
		copy(out.Data().([]int), src)
	case []int32:
		copy(out.Data().([]int32), src)
	case []int64:
		copy(out.Data().([]int64), src)
	default:
		return fmt.Errorf("op returned data of type %T", src)
	}
	return nil
}

func clearTensor(t *tensor.Dense) {
	switch d := t.Data().(type) {
	case []float32:
		clear(d)
	case []float64:
		clear(d)
	case []BF16:
		clear(d)
	case []F16:
		clear(d)
	case []int:
		clear(d)
	case []int32:
		clear(d)
	case []int64:
		clear(d)
	}
}

// poisonValue fills a dead value's range with NaN (float types) or -1.
func poisonValue(t *tensor.Dense) {
	if t == nil {
		return
	}
	switch d := t.Data().(type) {
	case []float32:
		nan := float32(math.NaN())
		for i := range d {
			d[i] = nan
		}
	case []float64:
		nan := math.NaN()
		for i := range d {
			d[i] = nan
		}
	case []BF16:
		for i := range d {
			d[i] = 0x7fc0 // quiet NaN
		}
	case []F16:
		for i := range d {
			d[i] = 0x7e00 // quiet NaN
		}
	case []int:
		for i := range d {
			d[i] = -1
		}
	}
}

// Verify checks the plan's invariants: every arena value lies inside the
// arena; two values whose lifetimes overlap never share bytes, except an
// in-place result and the input it overwrites at the op where that input
// dies; requested outputs are never freed. Tests run it on every model graph.
func (p *Program) Verify() error {
	type life struct {
		vi, from, to int // alive from its defining step to its last reader (or the end if pinned)
	}
	var lives []life
	end := len(p.steps)
	for vi, v := range p.vals {
		if v.kind != valArena {
			continue
		}
		if v.off < 0 || v.off+v.size > p.arenaBytes || v.off%arenaAlign != 0 {
			return fmt.Errorf("%s: %v at [%d, %d) outside the arena of %d bytes or misaligned", p.name, v.node, v.off, v.off+v.size, p.arenaBytes)
		}
		to := v.last
		if v.pinned {
			to = end
		}
		if to < v.def {
			to = v.def
		}
		lives = append(lives, life{vi, v.def, to})
	}
	for _, s := range p.steps {
		for _, fi := range s.free {
			if p.vals[fi].pinned {
				return fmt.Errorf("%s: requested output %v is freed", p.name, p.vals[fi].node)
			}
		}
	}
	sort.Slice(lives, func(i, j int) bool { return lives[i].from < lives[j].from })
	for i, a := range lives {
		va := p.vals[a.vi]
		for _, b := range lives[i+1:] {
			if b.from > a.to {
				break
			}
			vb := p.vals[b.vi]
			if va.off >= vb.off+vb.size || vb.off >= va.off+va.size {
				continue
			}
			// Overlap in bytes and time: allowed only when b is computed in
			// place over a at a's last reader.
			s := p.steps[b.from]
			if b.from == a.to && s.inplace && va.off == vb.off && countOf(s.in, a.vi) == 1 {
				continue
			}
			return fmt.Errorf("%s: %v (steps %d-%d) and %v (steps %d-%d) share arena bytes", p.name, va.node, a.from, a.to, vb.node, b.from, b.to)
		}
	}
	return nil
}

// RunGraph compiles g for outputs, runs it once on a fresh executor and
// returns copies of the outputs (so the arena can go at once). For graphs
// built for a single use (an image encode, an embedding); graphs that are
// re-run keep their Program and an Executor.
func RunGraph(g *G.ExprGraph, name string, outputs ...*G.Node) ([]G.Value, error) {
	return RunGraphWith(Options{}, g, name, outputs...)
}

// RunGraphWith is RunGraph on an executor with options o.
func RunGraphWith(o Options, g *G.ExprGraph, name string, outputs ...*G.Node) ([]G.Value, error) {
	e, err := NewExecutorWith(o)
	if err != nil {
		return nil, err
	}
	p, err := Compile(g, CompileOptions{Name: name, Outputs: outputs})
	if err != nil {
		return nil, err
	}
	defer e.Release()
	if err := e.Run(p, nil); err != nil {
		return nil, err
	}
	r := make([]G.Value, len(outputs))
	for i, n := range outputs {
		v, err := p.Value(n)
		if err != nil {
			return nil, err
		}
		if r[i], err = G.CloneValue(v); err != nil {
			return nil, err
		}
	}
	return r, nil
}
