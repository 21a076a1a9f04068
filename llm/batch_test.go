package llm

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"gorgonia.org/tensor"

	"github.com/magma-go/magma/kernels"
)

// aloneLogits decodes prompt greedily with a plain Generator and returns the
// tokens and the logits each was drawn from; kv is the KV cache dtype.
func aloneLogits(t *testing.T, m *Model, prompt []int, n int, kv tensor.Dtype) ([]int, [][]float32) {
	t.Helper()
	g := NewGenerator(m, 0)
	if err := g.SetKVCacheDtype(kv); err != nil {
		t.Fatal(err)
	}
	var logits [][]float32
	out, err := g.Generate(context.Background(), Prompt{IDs: prompt}, GenerateOptions{MaxNewTokens: n},
		func(_, _ int, l []float32) error { logits = append(logits, l); return nil })
	if err != nil {
		t.Fatal(err)
	}
	return out, logits
}

func maxRelDiff(a, b []float32) float64 {
	var scale, d float64
	for i := range a {
		scale = math.Max(scale, math.Abs(float64(b[i])))
		d = math.Max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d / math.Max(scale, 1e-30)
}

// TestBatchDecoderMatchesAlone checks that sequences joining and leaving a
// batch at different steps get the same greedy tokens and logits as each
// decoded alone (<= 1e-5 relative to the largest logit), with a float32 and
// with a bfloat16 KV cache.
func TestBatchDecoderMatchesAlone(t *testing.T) {
	for _, kv := range []tensor.Dtype{tensor.Float32, kernels.BFloat16} {
		t.Run(kernels.DtypeName(kv), func(t *testing.T) { batchMatchesAlone(t, kv) })
	}
}

func batchMatchesAlone(t *testing.T, kv tensor.Dtype) {
	m := newTestModel(t, testConfig(), 11)
	r := rand.New(rand.NewPCG(3, 4))
	type seq struct {
		prompt []int
		join   int // global step at which it joins
		n      int // tokens to generate
		want   []int
		wantL  [][]float32
		got    []int
		slot   int
		last   []float32
	}
	seqs := []*seq{
		{prompt: randomIDs(r, 5, 97), join: 0, n: 12},
		{prompt: randomIDs(r, 9, 97), join: 0, n: 4},
		{prompt: randomIDs(r, 3, 97), join: 2, n: 10},
		{prompt: randomIDs(r, 7, 97), join: 5, n: 8}, // reuses the slot seq 1 left
		{prompt: randomIDs(r, 1, 97), join: 6, n: 6},
	}
	for _, s := range seqs {
		s.want, s.wantL = aloneLogits(t, m, s.prompt, s.n, kv)
	}
	d, err := NewBatchDecoder(m, 3, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.SetKVCacheDtype(kv); err != nil {
		t.Fatal(err)
	}
	check := func(s *seq, l []float32) {
		t.Helper()
		k := len(s.got)
		if rd := maxRelDiff(l, s.wantL[k]); rd > 1e-5 {
			t.Fatalf("prompt %v token %d: logits differ by %.3g relative", s.prompt, k, rd)
		}
		id, err := Greedy(l)
		if err != nil {
			t.Fatal(err)
		}
		if id != s.want[k] {
			t.Fatalf("prompt %v token %d: got %d, alone %d", s.prompt, k, id, s.want[k])
		}
		s.got = append(s.got, id)
	}
	var active []*seq
	maxActive := 0
	for step := 0; step < 40; step++ {
		for _, s := range seqs {
			if s.join == step || (s.join < step && s.got == nil && d.Free() > 0) {
				if d.Free() == 0 {
					continue
				}
				slot, l, err := d.JoinIDs(s.prompt)
				if err != nil {
					t.Fatal(err)
				}
				s.slot = slot
				check(s, l)
				active = append(active, s)
			}
		}
		// Retire finished sequences.
		kept := active[:0]
		for _, s := range active {
			if len(s.got) >= s.n {
				d.Leave(s.slot)
				continue
			}
			kept = append(kept, s)
		}
		active = kept
		maxActive = max(maxActive, len(active))
		if len(active) == 0 {
			continue
		}
		var slots, ids []int
		for _, s := range active {
			slots = append(slots, s.slot)
			ids = append(ids, s.got[len(s.got)-1])
		}
		out, err := d.Step(slots, ids)
		if err != nil {
			t.Fatal(err)
		}
		for i, s := range active {
			check(s, out[i])
		}
	}
	for _, s := range seqs {
		if len(s.got) != s.n {
			t.Fatalf("prompt %v: generated %d tokens, want %d", s.prompt, len(s.got), s.n)
		}
	}
	if maxActive < 3 {
		t.Fatalf("the schedule never ran 3 sequences at once (max %d)", maxActive)
	}
	st := d.Stats()
	t.Logf("decode graphs compiled: %d in %v (%.2f ms each); reused %d times; %d steps, %d rows",
		st.GraphBuilds, st.GraphBuildDur, float64(st.GraphBuildDur.Microseconds())/1000/float64(max(st.GraphBuilds, 1)),
		st.GraphHits, st.Steps, st.Rows)
}

func TestBatchDecoderErrors(t *testing.T) {
	m := newTestModel(t, testConfig(), 12)
	if _, err := NewBatchDecoder(m, 0, 0); err == nil {
		t.Fatal("max batch 0 accepted")
	}
	if _, err := NewBatchDecoder(nil, 1, 0); err == nil {
		t.Fatal("nil model accepted")
	}
	d, err := NewBatchDecoder(m, 1, 8)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Step([]int{0}, []int{1}); err == nil {
		t.Fatal("step on an empty slot accepted")
	}
	if err := d.SetKVCacheDtype(kernels.Float16); err == nil {
		t.Fatal("f16 KV cache accepted")
	}
	slot, _, err := d.JoinIDs([]int{1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.SetKVCacheDtype(kernels.BFloat16); err == nil {
		t.Fatal("KV cache dtype changed with slots in use")
	}
	if _, _, err := d.JoinIDs([]int{1}); err == nil {
		t.Fatal("join with no free slot accepted")
	}
	if _, err := d.Step([]int{slot}, []int{97}); err == nil {
		t.Fatal("out-of-vocabulary id accepted")
	}
	if _, err := d.Step([]int{slot, slot}, []int{1, 1}); err == nil {
		t.Fatal("duplicate slot accepted")
	}
	for i := 0; i < 5; i++ {
		if _, err := d.Step([]int{slot}, []int{1}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.Step([]int{slot}, []int{1}); err == nil {
		t.Fatal("step past maxLen accepted")
	}
	if d.Len(slot) != 8 {
		t.Fatalf("len %d after a refused step, want 8", d.Len(slot))
	}
	d.Leave(slot)
	if d.Free() != 1 || d.Len(slot) != 0 {
		t.Fatalf("free %d len %d after Leave", d.Free(), d.Len(slot))
	}
	if _, _, err := d.JoinIDs(make([]int, 9)); err == nil {
		t.Fatal("prompt longer than maxLen accepted")
	}
	if d.Free() != 1 {
		t.Fatal("failed join kept the slot")
	}
}

// BenchmarkBatchDecodeStep compares one batched step of B sequences with B
// single-sequence steps (go test -bench BatchDecode ./llm/).
func BenchmarkBatchDecodeStep(b *testing.B) {
	cfg := Config{VocabSize: 8192, HiddenSize: 256, IntermediateSize: 1024, NumHiddenLayers: 4,
		NumAttentionHeads: 8, NumKeyValueHeads: 4, RMSNormEps: 1e-5, RopeTheta: 500000, MaxPositionEmbeddings: 4096}
	m := newTestModel(b, cfg, 1)
	for _, B := range []int{1, 8} {
		d, err := NewBatchDecoder(m, B, 0)
		if err != nil {
			b.Fatal(err)
		}
		var slots, ids []int
		for i := 0; i < B; i++ {
			s, _, err := d.JoinIDs([]int{1, 2, 3, 4})
			if err != nil {
				b.Fatal(err)
			}
			slots, ids = append(slots, s), append(ids, 5)
		}
		b.Run("B="+itoa(B), func(b *testing.B) {
			t0 := time.Now()
			for i := 0; i < b.N; i++ {
				if d.Len(slots[0])+1 >= d.MaxLen() {
					b.StopTimer()
					for _, s := range slots {
						d.Leave(s)
						if _, _, err := d.JoinIDs([]int{1, 2, 3, 4}); err != nil {
							b.Fatal(err)
						}
					}
					b.StartTimer()
				}
				if _, err := d.Step(slots, ids); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*B)/time.Since(t0).Seconds(), "tokens/s")
		})
	}
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + itoa(i%10)
}
