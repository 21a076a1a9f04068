package llm

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/nn"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func loraTestModel(t *testing.T, dt tensor.Dtype) (*Model, Config) {
	cfg := Config{VocabSize: 13, HiddenSize: 8, IntermediateSize: 12, NumHiddenLayers: 2,
		NumAttentionHeads: 2, NumKeyValueHeads: 1, RopeTheta: 10000, MaxPositionEmbeddings: 16}
	return newTestModel(t, cfg, 6, dt), cfg
}

// lossGraph builds the cross-entropy of a short sequence.
func loraLoss(t *testing.T, m *Model) (*kernels.Builder, *G.Node) {
	t.Helper()
	ids := []int{1, 5, 7, 2, 11}
	labels := []int{5, 7, -100, 11, 3}
	dt := m.Dtype()
	b := kernels.NewBuilder(nn.ParamNames(m, ""))
	x := m.Embed(b, b.Input("ids", floatTensor(dt, ids...)))
	h := m.Forward(b, x, b.Input("pos", floatTensor(dt, 0, 1, 2, 3, 4)), ForwardOptions{Batch: 1, Seq: 5})
	logits := m.Logits(b, h)
	if err := b.Err(); err != nil {
		t.Fatal(err)
	}
	cost, err := kernels.CrossEntropy(logits, b.Input("labels", floatTensor(dt, labels...)), -100)
	if err != nil {
		t.Fatal(err)
	}
	return b, cost
}

func lossOf(t *testing.T, m *Model) float64 {
	t.Helper()
	b, cost := loraLoss(t, m)
	vals, err := kernels.RunGraphWith(kernels.TestOptions(), b.G, "lora loss", cost)
	if err != nil {
		t.Fatal(err)
	}
	v, err := scalarValue(vals[0])
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func randomize(t *tensor.Dense, r *rand.Rand, std float64) {
	fill(t, func() float64 { return r.NormFloat64() * std })
}

func TestLoRAInitAndNames(t *testing.T) {
	m, cfg := loraTestModel(t, tensor.Float64)
	before := lossOf(t, m)
	mods, err := m.AttachLoRA(LoRAConfig{Rank: 4, Alpha: 8}, "language_model.", 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(mods) != 7*cfg.NumHiddenLayers {
		t.Fatalf("%d adapted layers", len(mods))
	}
	// B = 0: the adapted model computes the same function.
	if after := lossOf(t, m); after != before {
		t.Fatalf("zero-initialised adapter changed the loss: %v → %v", before, after)
	}
	// A ~ U(-1/√in, 1/√in) (kaiming_uniform_ with a = √5).
	q := m.Decoder.Layers[0].SelfAttention.Query.LoRA
	bound := 1 / math.Sqrt(float64(cfg.HiddenSize))
	var maxAbs float64
	for _, v := range q.A.Data().([]float64) {
		maxAbs = math.Max(maxAbs, math.Abs(v))
	}
	if maxAbs > bound || maxAbs < bound/2 {
		t.Fatalf("A max |%v| vs bound %v", maxAbs, bound)
	}
	if q.Scale() != 2 {
		t.Fatalf("scale %v", q.Scale())
	}
	// The base checkpoint names are unchanged (adapters are not weights).
	for k := range paramMap(m, "") {
		if strings.Contains(k, "lora") {
			t.Fatalf("adapter leaked into the checkpoint names: %s", k)
		}
	}
	// Targets select layers; unknown ones are errors.
	mods, err = m.AttachLoRA(LoRAConfig{Rank: 2, Targets: []string{"q_proj", "v_proj"}}, "", 1)
	if err != nil || len(mods) != 4 || m.Decoder.Layers[0].MLP.Up.LoRA != nil {
		t.Fatalf("targets: %d %v", len(mods), err)
	}
	if _, err := m.AttachLoRA(LoRAConfig{Rank: 2, Targets: []string{"lm_head"}}, "", 1); err == nil {
		t.Fatal("unknown target accepted")
	}
	if _, err := m.AttachLoRA(LoRAConfig{Rank: 0}, "", 1); err == nil {
		t.Fatal("rank 0 accepted")
	}
}

// The gradient of the loss with respect to A and B (float64) agrees with
// central finite differences, and the base weights receive no update when
// only the adapters are differentiated.
func TestLoRAGradient(t *testing.T) {
	m, _ := loraTestModel(t, tensor.Float64)
	if _, err := m.AttachLoRA(LoRAConfig{Rank: 3, Alpha: 6}, "", 2); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 3))
	for _, mod := range m.LoRAModules("") {
		randomize(mod.Linear.LoRA.B, r, 0.3) // B = 0 would zero A's gradient
	}
	L0, L1 := &m.Decoder.Layers[0], &m.Decoder.Layers[1]
	check := []struct {
		name string
		t    *tensor.Dense
	}{
		{"0.q.A", L0.SelfAttention.Query.LoRA.A}, {"0.q.B", L0.SelfAttention.Query.LoRA.B},
		{"0.v.A", L0.SelfAttention.Value.LoRA.A}, {"1.o.B", L1.SelfAttention.Output.LoRA.B},
		{"1.gate.A", L1.MLP.Gate.LoRA.A}, {"0.down.B", L0.MLP.Down.LoRA.B}, {"1.up.A", L1.MLP.Up.LoRA.A},
	}
	b, cost := loraLoss(t, m)
	var nodes G.Nodes
	for _, c := range check {
		nodes = append(nodes, b.Param(c.t))
	}
	grads, err := G.Grad(cost, nodes...)
	if err != nil {
		t.Fatal(err)
	}
	prog, err := kernels.Compile(b.G, kernels.CompileOptions{Name: "lora gradient", Outputs: append(G.Nodes{cost}, grads...)})
	if err != nil {
		t.Fatal(err)
	}
	exec, err := kernels.NewExecutorWith(kernels.TestOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer exec.Release() // keeps the arena (and the values read from it) alive to the end
	value := func(n *G.Node) G.Value {
		v, err := prog.Value(n)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	run := func() float64 {
		if err := exec.Run(prog, nil); err != nil {
			t.Fatal(err)
		}
		v, _ := scalarValue(value(cost))
		return v
	}
	run()
	analytic := make([][]float64, len(check))
	for i := range check {
		analytic[i], _ = nn.Float64s(value(grads[i]).(*tensor.Dense))
	}
	const eps = 1e-6
	var worst float64
	for i, c := range check {
		data := c.t.Data().([]float64)
		var norm float64
		for _, g := range analytic[i] {
			norm += g * g
		}
		if !(norm > 1e-14) {
			t.Errorf("%s: zero gradient", c.name)
		}
		for trial := 0; trial < 4; trial++ {
			j := r.IntN(len(data))
			old := data[j]
			data[j] = old + eps
			up := run()
			data[j] = old - eps
			down := run()
			data[j] = old
			num := (up - down) / (2 * eps)
			e := math.Abs(num-analytic[i][j]) / math.Max(1e-6, math.Abs(num)+math.Abs(analytic[i][j]))
			worst = math.Max(worst, e)
			if e > 1e-5 {
				t.Errorf("%s[%d]: analytic %.8g numeric %.8g", c.name, j, analytic[i][j], num)
			}
		}
	}
	t.Logf("LoRA gradient check: %d adapter tensors × 4 elements, worst relative error %.3g", len(check), worst)
}

// Merging folds the adapters into the weights without changing the function.
func TestLoRAMerge(t *testing.T) {
	m, _ := loraTestModel(t, tensor.Float64)
	if _, err := m.AttachLoRA(LoRAConfig{Rank: 4, Alpha: 16}, "", 5); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(4, 4))
	for _, mod := range m.LoRAModules("") {
		randomize(mod.Linear.LoRA.B, r, 0.2)
	}
	w0 := append([]float64(nil), m.Decoder.Layers[1].MLP.Down.Weight.Data().([]float64)...)
	with := lossOf(t, m)
	n, err := m.MergeLoRA()
	if err != nil || n != 14 {
		t.Fatalf("merged %d: %v", n, err)
	}
	if len(m.LoRAModules("")) != 0 {
		t.Fatal("adapters still attached after merge")
	}
	merged := lossOf(t, m)
	if math.Abs(with-merged) > 1e-10 {
		t.Fatalf("loss with adapters %v, merged %v", with, merged)
	}
	changed := false
	for i, v := range m.Decoder.Layers[1].MLP.Down.Weight.Data().([]float64) {
		changed = changed || v != w0[i]
	}
	if !changed {
		t.Fatal("merge left the weight unchanged")
	}
}

// Dropout is only active in training mode and float32 models work too.
func TestLoRAFloat32Dropout(t *testing.T) {
	m, _ := loraTestModel(t, tensor.Float32)
	base := lossOf(t, m)
	if _, err := m.AttachLoRA(LoRAConfig{Rank: 2, Dropout: 0.5}, "", 1); err != nil {
		t.Fatal(err)
	}
	if got := lossOf(t, m); math.Abs(got-base) > 1e-6 {
		t.Fatalf("inference with a fresh adapter: %v vs %v", got, base)
	}
	m.SetLoRATraining(true)
	if got := lossOf(t, m); math.IsNaN(got) {
		t.Fatal("NaN with dropout")
	}
	m.SetLoRATraining(false)
}
