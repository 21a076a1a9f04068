package llm

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/nn"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// testConfig is the small decoder of the tests: V=97, D=32, 2 layers, H=4,
// KV=2 (head_dim 8), intermediate 48, theta 500000.
func testConfig() Config {
	return Config{
		VocabSize: 97, HiddenSize: 32, IntermediateSize: 48, NumHiddenLayers: 2,
		NumAttentionHeads: 4, NumKeyValueHeads: 2, RMSNormEps: 1e-5, RopeTheta: 500000,
		MaxPositionEmbeddings: 64,
	}
}

func newTestModel(t testing.TB, cfg Config, seed uint64, dt ...tensor.Dtype) *Model {
	t.Helper()
	m, err := New(cfg, dt...)
	if err != nil {
		t.Fatal(err)
	}
	m.InitRandom(seed, 0.2, 0.5)
	m.Kernels = kernels.TestOptions()
	return m
}

func floatTensor(dt tensor.Dtype, vals ...int) *tensor.Dense {
	t := tensor.New(tensor.WithShape(len(vals)), tensor.Of(dt))
	for i, v := range vals {
		switch d := t.Data().(type) {
		case []float32:
			d[i] = float32(v)
		case []float64:
			d[i] = float64(v)
		}
	}
	return t
}

// fullLogits runs the graph without a cache on B sequences of equal length
// and returns the logits [B*T, V] as float32.
func fullLogits(t testing.TB, m *Model, seqs ...[]int) []float32 {
	t.Helper()
	B, T := len(seqs), len(seqs[0])
	var ids, pos []int
	for _, s := range seqs {
		ids = append(ids, s...)
		for p := range s {
			pos = append(pos, p)
		}
	}
	b := kernels.NewBuilder(nn.ParamNames(m, "language_model."))
	idN := b.Input("ids", floatTensor(m.Dtype(), ids...))
	posN := b.Input("positions", floatTensor(m.Dtype(), pos...))
	x := m.Embed(b, idN)
	h := m.Forward(b, x, posN, ForwardOptions{Batch: B, Seq: T})
	logits := m.Logits(b, h)
	if err := b.Err(); err != nil {
		t.Fatal(err)
	}
	vals, err := kernels.RunGraphWith(kernels.TestOptions(), b.G, "logits", logits)
	if err != nil {
		t.Fatal(err)
	}
	v := vals[0].(*tensor.Dense)
	if !v.Shape().Eq(tensor.Shape{B * T, m.Config.VocabSize}) {
		t.Fatalf("logits shape %v", v.Shape())
	}
	out := make([]float32, v.Shape().TotalSize())
	switch d := v.Data().(type) {
	case []float32:
		copy(out, d)
	case []float64:
		for i := range d {
			out[i] = float32(d[i])
		}
	}
	return out
}

func randomIDs(r *rand.Rand, n, v int) []int {
	ids := make([]int, n)
	for i := range ids {
		ids[i] = r.IntN(v)
	}
	return ids
}

func TestTensorNames(t *testing.T) {
	cfg := testConfig()
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]int{
		"language_model.model.embed_tokens.weight": {97, 32},
		"language_model.model.norm.weight":         {32},
		"language_model.lm_head.weight":            {97, 32},
	}
	for i := 0; i < 2; i++ {
		p := fmt.Sprintf("language_model.model.layers.%d.", i)
		want[p+"input_layernorm.weight"] = []int{32}
		want[p+"post_attention_layernorm.weight"] = []int{32}
		want[p+"self_attn.q_proj.weight"] = []int{32, 32}
		want[p+"self_attn.k_proj.weight"] = []int{16, 32}
		want[p+"self_attn.v_proj.weight"] = []int{16, 32}
		want[p+"self_attn.o_proj.weight"] = []int{32, 32}
		want[p+"mlp.gate_proj.weight"] = []int{48, 32}
		want[p+"mlp.up_proj.weight"] = []int{48, 32}
		want[p+"mlp.down_proj.weight"] = []int{32, 48}
	}
	got := paramMap(m, "language_model.")
	if len(got) != len(want) {
		t.Errorf("got %d tensors, want %d", len(got), len(want))
	}
	for name, shape := range want {
		g, ok := got[name]
		if !ok {
			t.Errorf("missing %s", name)
			continue
		}
		if !slices.Equal([]int(g.Shape()), shape) || g.Dtype() != tensor.Float32 {
			t.Errorf("%s: shape %v dtype %v, want %v float32", name, g.Shape(), g.Dtype(), shape)
		}
	}
	if len(nn.ParamNames(m, "")) != len(want) {
		t.Errorf("Names has %d distinct tensors, want %d", len(nn.ParamNames(m, "")), len(want))
	}
	if err := m.CheckShapes("language_model."); err != nil {
		t.Error(err)
	}
	m.Decoder.Layers[1].MLP.Up.Weight = tensor.New(tensor.WithShape(48, 31), tensor.Of(tensor.Float32))
	if err := m.CheckShapes("language_model."); err == nil || !strings.Contains(err.Error(), "layers.1.mlp.up_proj.weight") {
		t.Errorf("CheckShapes on a wrong shape: %v", err)
	}
	if n, _ := nn.ParamCount(m); n <= 0 {
		t.Errorf("NumParams %d", n)
	}
}

func TestForwardMatchesReference(t *testing.T) {
	m := newTestModel(t, testConfig(), 1)
	ref := newRefLlama(m)
	r := rand.New(rand.NewPCG(7, 7))
	ids := randomIDs(r, 11, m.Config.VocabSize)
	got := fullLogits(t, m, ids)
	want := slices.Concat(ref.forward(ids)...)
	d := relDiff(got, want)
	t.Logf("full prompt (T=11) logits: max|diff|/max|ref| = %.3g", d)
	if d > 1e-5 {
		t.Errorf("graph vs reference: relative diff %.3g > 1e-5", d)
	}
	// Two sequences in one batch must not see each other.
	ids2 := randomIDs(r, 11, m.Config.VocabSize)
	got = fullLogits(t, m, ids, ids2)
	want = slices.Concat(slices.Concat(ref.forward(ids), ref.forward(ids2))...)
	d = relDiff(got, want)
	t.Logf("batch of 2: max|diff|/max|ref| = %.3g", d)
	if d > 1e-5 {
		t.Errorf("batched graph vs reference: relative diff %.3g > 1e-5", d)
	}
}

func TestForwardFloat64(t *testing.T) {
	m := newTestModel(t, testConfig(), 2, tensor.Float64)
	ids := []int{3, 1, 4, 1, 5, 9, 2, 6}
	got := fullLogits(t, m, ids)
	want := slices.Concat(newRefLlama(m).forward(ids)...)
	if d := relDiff(got, want); d > 1e-6 {
		t.Errorf("float64 graph vs reference: relative diff %.3g", d)
	}
}

// TestKVCacheMatchesRecompute checks prefill + decode steps against running
// the whole sequence through the cache-free graph at every step.
func TestKVCacheMatchesRecompute(t *testing.T) {
	m := newTestModel(t, testConfig(), 3)
	ref := newRefLlama(m)
	prompt := []int{5, 17, 42, 8, 91, 23, 60}
	const steps = 8
	g := NewGenerator(m, 32)
	logits, err := g.PrefillIDs(prompt)
	if err != nil {
		t.Fatal(err)
	}
	seq := slices.Clone(prompt)
	prefillGraph := g.prefill[len(prompt)]
	var decodeGraph *graphRun
	var worst, worstRef float64
	for s := 0; s <= steps; s++ {
		full := fullLogits(t, m, seq)
		V := m.Config.VocabSize
		last := full[(len(seq)-1)*V:]
		lastF64 := make([]float64, V)
		for i, v := range last {
			lastF64[i] = float64(v)
		}
		d := relDiff(logits, lastF64)
		worst = math.Max(worst, d)
		refLast := ref.forward(seq)[len(seq)-1]
		worstRef = math.Max(worstRef, relDiff(logits, refLast))
		idCache, _ := Greedy(logits)
		idFull, _ := Greedy(last)
		if idCache != idFull {
			t.Fatalf("step %d: greedy token %d with cache, %d recomputed", s, idCache, idFull)
		}
		if s == steps {
			break
		}
		seq = append(seq, idCache)
		if logits, err = g.Step(idCache); err != nil {
			t.Fatal(err)
		}
		if g.Len() != len(seq) {
			t.Fatalf("generator length %d, want %d", g.Len(), len(seq))
		}
		if decodeGraph == nil {
			decodeGraph = g.decode
		} else if g.decode != decodeGraph {
			t.Fatal("the decode graph was rebuilt")
		}
	}
	t.Logf("KV cache vs recompute over %d steps: max rel diff %.3g; vs float64 reference %.3g", steps, worst, worstRef)
	if worst > 1e-5 || worstRef > 1e-5 {
		t.Errorf("cached logits differ: %.3g vs recompute, %.3g vs reference (limit 1e-5)", worst, worstRef)
	}

	// Generate (greedy) reproduces the same tokens, and Reset starts over.
	var rows [][]float32
	out, err := g.Generate(context.Background(), Prompt{IDs: prompt}, GenerateOptions{MaxNewTokens: steps},
		func(step, id int, l []float32) error { rows = append(rows, l); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if g.decode != decodeGraph || g.prefill[len(prompt)] != prefillGraph {
		t.Error("Generate rebuilt the decode or prefill graph")
	}
	if !slices.Equal(out, seq[len(prompt):]) {
		t.Errorf("Generate gave %v, step loop %v", out, seq[len(prompt):])
	}
	if len(rows) != steps {
		t.Errorf("callback saw %d rows, want %d", len(rows), steps)
	}
	if g.Len() != len(prompt)+steps-1 {
		t.Errorf("after Generate the cache holds %d positions, want %d", g.Len(), len(prompt)+steps-1)
	}

	// Prefill in two chunks (multi-turn) equals one prefill.
	g.Reset()
	if _, err := g.PrefillIDs(prompt[:3]); err != nil {
		t.Fatal(err)
	}
	l2, err := g.PrefillIDs(prompt[3:])
	if err != nil {
		t.Fatal(err)
	}
	if d := relDiff(l2, ref.forward(prompt)[len(prompt)-1]); d > 1e-5 {
		t.Errorf("chunked prefill differs from the reference: %.3g", d)
	}
}

func TestGenerateEmbedsAndStop(t *testing.T) {
	m := newTestModel(t, testConfig(), 4)
	prompt := []int{1, 2, 3, 4}
	e, err := m.EmbedIDs(prompt)
	if err != nil {
		t.Fatal(err)
	}
	g := NewGenerator(m, 0)
	a, err := g.Generate(context.Background(), Prompt{Embeds: e}, GenerateOptions{MaxNewTokens: 5}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := g.Generate(context.Background(), Prompt{IDs: prompt}, GenerateOptions{MaxNewTokens: 5}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a, b) || len(a) != 5 {
		t.Fatalf("embeds prompt gave %v, ids prompt %v", a, b)
	}
	// Stopping on the third token returns it and nothing after.
	c, err := g.Generate(context.Background(), Prompt{IDs: prompt}, GenerateOptions{MaxNewTokens: 5, StopIDs: []int{a[2]}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := a[:slices.Index(a, a[2])+1]; !slices.Equal(c, want) {
		t.Errorf("with stop id %d got %v, want %v", a[2], c, want)
	}
	// Sampling is deterministic for a seed.
	opt := GenerateOptions{MaxNewTokens: 6, Temperature: 1.5, TopK: 20, TopP: 0.9, Seed: 11}
	s1, err := g.Generate(context.Background(), Prompt{IDs: prompt}, opt, nil)
	if err != nil {
		t.Fatal(err)
	}
	s2, _ := g.Generate(context.Background(), Prompt{IDs: prompt}, opt, nil)
	if !slices.Equal(s1, s2) {
		t.Errorf("same seed gave %v and %v", s1, s2)
	}
	// Context cancellation between steps.
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	_, err = g.Generate(ctx, Prompt{IDs: prompt}, GenerateOptions{MaxNewTokens: 10},
		func(step, id int, l []float32) error {
			if n++; n == 2 {
				cancel()
			}
			return nil
		})
	if !errors.Is(err, context.Canceled) || n != 2 {
		t.Errorf("cancelled generation: err %v after %d tokens", err, n)
	}
}

func TestErrors(t *testing.T) {
	cfg := testConfig()
	cfg.MaxPositionEmbeddings = 16
	m := newTestModel(t, cfg, 5)

	check := func(name string, err error, want ...string) {
		t.Helper()
		if err == nil {
			t.Errorf("%s: no error", name)
			return
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", name, err, w)
			}
		}
	}

	// Prompt longer than the context.
	g := NewGenerator(m, 0)
	_, err := g.PrefillIDs(make([]int, 17))
	check("prompt > context", err, "17", "16", "max_position_embeddings")
	_, err = g.Generate(context.Background(), Prompt{IDs: make([]int, 10)}, GenerateOptions{MaxNewTokens: 7}, nil)
	check("prompt+new > context", err, "10", "7", "17", "16")

	// Generator's own maxLen.
	g = NewGenerator(m, 8)
	_, err = g.Generate(context.Background(), Prompt{IDs: make([]int, 5)}, GenerateOptions{MaxNewTokens: 4}, nil)
	check("prompt+new > maxLen", err, "9", "8", "maxLen")
	if _, err := g.PrefillIDs([]int{1, 2, 3, 4, 5, 6}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []int{7, 8} {
		if _, err := g.Step(id); err != nil {
			t.Fatal(err)
		}
	}
	_, err = g.Step(9)
	check("cache overflow", err, "9", "8", "maxLen")
	g.Reset()
	if _, err := g.PrefillIDs([]int{1, 2, 3, 4, 5, 6, 7, 8}); err != nil {
		t.Errorf("after Reset the full cache should be usable: %v", err)
	}

	// Bad token ids and shapes.
	g = NewGenerator(m, 0)
	_, err = g.PrefillIDs([]int{1, 97})
	check("id out of vocabulary", err, "97")
	_, err = g.Step(-1)
	check("negative id", err, "-1")
	_, err = g.Prefill(tensor.New(tensor.WithShape(3, 31), tensor.Of(tensor.Float32)))
	check("embeds width", err, "32")
	_, err = g.Prefill(nil)
	check("nil embeds", err, "Prefill")
	_, err = g.Generate(context.Background(), Prompt{}, GenerateOptions{MaxNewTokens: 1}, nil)
	check("empty prompt", err, "prompt")
	_, err = g.Generate(context.Background(), Prompt{IDs: []int{1}}, GenerateOptions{MaxNewTokens: 0}, nil)
	check("zero new tokens", err, "max new tokens")
	_, err = g.Generate(context.Background(), Prompt{IDs: []int{1}}, GenerateOptions{MaxNewTokens: 2, Temperature: -1}, nil)
	check("negative temperature", err, "temperature")
	_, err = (&Generator{}).Step(1)
	check("no model", err, "no model")

	forwardErr := func(opt ForwardOptions) error {
		b := kernels.NewBuilder(nil)
		x := b.Input("x", tensor.New(tensor.WithShape(4, 32), tensor.Of(tensor.Float32)))
		p := b.Input("p", tensor.New(tensor.WithShape(4), tensor.Of(tensor.Float32)))
		m.Forward(b, x, p, opt)
		return b.Err()
	}
	check("Forward rows", forwardErr(ForwardOptions{Batch: 1, Seq: 3}), "[3, 32]")
	check("Forward caches", forwardErr(ForwardOptions{Batch: 1, Seq: 4, Caches: make([]*kernels.KVCache, 1)}), "1 KV caches for 2 layers")
	check("Forward batch", forwardErr(ForwardOptions{}), "Batch")

	// Configurations.
	bad := map[string]func(c *Config){
		"rope_scaling llama3": func(c *Config) {
			c.RopeScaling = map[string]any{"rope_type": "llama3", "factor": 8.0}
		},
		"rope_scaling linear": func(c *Config) { c.RopeScaling = map[string]any{"type": "linear", "factor": 2.0} },
		"zero vocab":          func(c *Config) { c.VocabSize = 0 },
		"kv heads":            func(c *Config) { c.NumKeyValueHeads = 3 },
		"odd head dim":        func(c *Config) { c.HeadDim = 7 },
		"hidden/heads":        func(c *Config) { c.HiddenSize = 30 },
		"negative theta":      func(c *Config) { c.RopeTheta = -1 },
		"negative eps":        func(c *Config) { c.RMSNormEps = -1e-5 },
		"tied embeddings":     func(c *Config) { c.TieWordEmbeddings = true },
	}
	for name, mod := range bad {
		c := testConfig()
		mod(&c)
		_, err := New(c)
		if err == nil {
			t.Errorf("config %s: no error", name)
			continue
		}
		if name == "rope_scaling llama3" {
			check(name, err, "llama3", "not supported")
		}
	}
	_, err = New(testConfig(), tensor.Int)
	check("int dtype", err, "dtype")
	c := testConfig()
	c.RopeScaling = map[string]any{"rope_type": "default"}
	if _, err := New(c); err != nil {
		t.Errorf("rope_type default should be accepted: %v", err)
	}
}

// TestGradient checks d(cross-entropy)/d(parameters) of the whole decoder
// against central finite differences, in float64.
func TestGradient(t *testing.T) {
	cfg := Config{VocabSize: 13, HiddenSize: 8, IntermediateSize: 12, NumHiddenLayers: 2,
		NumAttentionHeads: 2, NumKeyValueHeads: 1, RopeTheta: 10000, MaxPositionEmbeddings: 16}
	m := newTestModel(t, cfg, 6, tensor.Float64)
	ids := []int{1, 5, 7, 2, 11}
	labels := []int{5, 7, -100, 11, 3}
	b := kernels.NewBuilder(nn.ParamNames(m, ""))
	x := m.Embed(b, b.Input("ids", floatTensor(tensor.Float64, ids...)))
	h := m.Forward(b, x, b.Input("pos", floatTensor(tensor.Float64, 0, 1, 2, 3, 4)), ForwardOptions{Batch: 1, Seq: 5})
	logits := m.Logits(b, h)
	if err := b.Err(); err != nil {
		t.Fatal(err)
	}
	cost, err := kernels.CrossEntropy(logits, b.Input("labels", floatTensor(tensor.Float64, labels...)), -100)
	if err != nil {
		t.Fatal(err)
	}
	L0, L1 := &m.Decoder.Layers[0], &m.Decoder.Layers[1]
	check := map[string]*tensor.Dense{
		"embed_tokens": m.Decoder.EmbedTokens.Weight,
		"0.q_proj":     L0.SelfAttention.Query.Weight,
		"0.k_proj":     L0.SelfAttention.Key.Weight,
		"0.v_proj":     L0.SelfAttention.Value.Weight,
		"1.o_proj":     L1.SelfAttention.Output.Weight,
		"0.input_norm": L0.InputNorm.Weight,
		"1.gate_proj":  L1.MLP.Gate.Weight,
		"0.down_proj":  L0.MLP.Down.Weight,
		"1.post_norm":  L1.PostNorm.Weight,
		"norm":         m.Decoder.Norm.Weight,
		"lm_head":      m.LMHead.Weight,
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range check {
			if !yield(k) {
				return
			}
		}
	})
	nodes := make(G.Nodes, len(names))
	for i, n := range names {
		nodes[i] = b.Param(check[n])
	}
	grads, err := G.Grad(cost, nodes...)
	if err != nil {
		t.Fatal(err)
	}
	prog, err := kernels.Compile(b.G, kernels.CompileOptions{Name: "decoder gradient", Outputs: append(G.Nodes{cost}, grads...)})
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
		v, err := scalarValue(value(cost))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	run()
	analytic := make([][]float64, len(names))
	for i := range names {
		v, err := nn.Float64s(value(grads[i]).(*tensor.Dense))
		if err != nil {
			t.Fatal(err)
		}
		analytic[i] = v
	}
	r := rand.New(rand.NewPCG(9, 9))
	const eps = 1e-6
	var worst float64
	smallest := math.Inf(1)
	for i, n := range names {
		data := check[n].Data().([]float64)
		for trial := 0; trial < 4; trial++ {
			j := r.IntN(len(data))
			if n == "embed_tokens" { // pick a row that is used
				j = ids[trial%len(ids)]*cfg.HiddenSize + r.IntN(cfg.HiddenSize)
			}
			old := data[j]
			data[j] = old + eps
			up := run()
			data[j] = old - eps
			down := run()
			data[j] = old
			num := (up - down) / (2 * eps)
			an := analytic[i][j]
			e := math.Abs(num-an) / math.Max(1e-6, math.Abs(num)+math.Abs(an))
			worst = math.Max(worst, e)
			smallest = math.Min(smallest, math.Abs(num))
			if e > 1e-5 {
				t.Errorf("%s[%d]: analytic %.8g, numeric %.8g (rel err %.2g)", n, j, an, num, e)
			}
		}
	}
	t.Logf("whole-model gradient check: %d parameters × 4 elements, worst relative error %.3g (smallest |grad| %.2g)",
		len(names), worst, smallest)
	for i, n := range names {
		var norm float64
		for _, v := range analytic[i] {
			norm += v * v
		}
		if !(norm > 1e-12) {
			t.Errorf("%s: gradient is zero", n)
		}
	}
}

func scalarValue(v G.Value) (float64, error) {
	switch x := v.(type) {
	case *G.F64:
		return float64(*x), nil
	case *G.F32:
		return float64(*x), nil
	case *tensor.Dense:
		vals, err := nn.Float64s(x)
		if err != nil || len(vals) != 1 {
			return 0, fmt.Errorf("cost is not a scalar: %v", x.Shape())
		}
		return vals[0], nil
	}
	return 0, fmt.Errorf("cost value of type %T", v)
}

// TestFailedRunRollsBack makes layer 1's cache overflow in the middle of a
// decode step: layer 0's append must be undone so the caches stay aligned.
func TestFailedRunRollsBack(t *testing.T) {
	m := newTestModel(t, testConfig(), 8)
	g := NewGenerator(m, 32)
	if err := g.ready(); err != nil {
		t.Fatal(err)
	}
	cfg := m.Config
	g.caches[1] = kernels.NewKVCache(1, cfg.NumKeyValueHeads, cfg.HeadDim, 4)
	if _, err := g.PrefillIDs([]int{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Step(4); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Step(5); err == nil {
		t.Fatal("overflowing layer 1's cache: no error")
	}
	if g.Len() != 4 || g.caches[0].Len() != 4 || g.caches[1].Len() != 4 {
		t.Errorf("after the failed step: generator %d, caches %d and %d positions, want 4",
			g.Len(), g.caches[0].Len(), g.caches[1].Len())
	}
	if g.broken != nil {
		t.Errorf("generator marked broken although the caches were rolled back: %v", g.broken)
	}
}

// TestGeneratorRelease: Release hands the arena back at once, and the
// generator still works afterwards (the next run maps it again) with the
// same numbers.
func TestGeneratorRelease(t *testing.T) {
	m := newTestModel(t, testConfig(), 3)
	prompt := []int{5, 17, 42, 8}
	g := NewGenerator(m, 16)
	want, err := g.PrefillIDs(prompt)
	if err != nil {
		t.Fatal(err)
	}
	want = slices.Clone(want)
	if g.exec == nil || g.exec.ArenaBytes() == 0 {
		t.Fatal("prefill mapped no arena")
	}
	g.Release()
	if n := g.exec.ArenaBytes(); n != 0 {
		t.Fatalf("arena of %d bytes kept after Release", n)
	}
	g.Reset()
	got, err := g.PrefillIDs(prompt)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatal("logits changed after Release")
	}
}
