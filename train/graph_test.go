package train

import (
	"math"
	"testing"

	"github.com/magma-go/magma/data"
	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/llm/tokenizer"
	"github.com/magma-go/magma/model"
	"github.com/magma-go/magma/nn"
	"gorgonia.org/tensor"
)

func singleLoss(t *testing.T, m *model.Magma, s data.Sample) float64 {
	t.Helper()
	b := kernels.NewBuilder(nn.ParamNames(m, ""))
	loss, err := m.LossGraph(b, s.IDs, s.Labels, s.Images)
	if err != nil {
		t.Fatal(err)
	}
	v, err := kernels.RunGraphWith(kernels.TestOptions(), b.G, "loss", loss)
	if err != nil {
		t.Fatal(err)
	}
	return float64(v[0].Data().(float32))
}

func supervised(s data.Sample) int {
	n := 0
	for _, l := range s.Labels[1:] {
		if l != tokenizer.IgnoreIndex {
			n++
		}
	}
	return n
}

// The one Magma composition (model.Loss over a batch) computes for a padded
// batch the token-weighted mean of the losses of its samples as batches of
// one (model.LossGraph): right padding, the splice of several images of
// different anyres grids through one trunk pass, and the label
// shift/masking are all invisible in the numbers. The graph is reused (fed
// new values) for a second batch of the same shape.
func TestBatchedLossMatchesPerSample(t *testing.T) {
	c := testConfig(1)
	m, pp := testModel(t, c)
	samples := testSamples(t, m, pp, 6)
	_, trainable, err := trainableParams(m, TrainAll)
	if err != nil {
		t.Fatal(err)
	}
	cache := &graphCache{max: 4, kernels: kernels.TestOptions()}
	defer cache.close()
	keys := map[model.BatchShape]bool{}
	for _, idx := range [][]int{{0, 1, 2}, {4, 3, 0}, {2, 4, 5}} {
		var batch data.Batch
		var want, n float64
		for _, i := range idx {
			batch.Samples = append(batch.Samples, samples[i])
			k := float64(supervised(samples[i]))
			want += singleLoss(t, m, samples[i]) * k
			n += k
		}
		want /= n
		lay, err := plan(m, batch, c.SeqBucket, c.MaxSeqLen)
		if err != nil {
			t.Fatal(err)
		}
		sg, err := cache.get(lay.Shape, func() (*stepGraph, error) { return buildGraph(m, nn.ParamNames(m, ""), lay.Shape, trainable, false) })
		if err != nil {
			t.Fatal(err)
		}
		if got := sg.fill(m, batch); float64(got) != n {
			t.Errorf("supervised positions %d, want %v", got, n)
		}
		exec, err := cache.executor()
		if err != nil {
			t.Fatal(err)
		}
		got, err := sg.run(exec)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("batch %v: key %v loss %.7f (per-sample weighted %.7f)", idx, lay.Shape, got, want)
		if math.Abs(got-want) > 2e-5*math.Max(1, want) {
			t.Errorf("batch %v: batched loss %.7f, per-sample %.7f", idx, got, want)
		}
		if k := lay.Shape; k.T != bucketUp(k.T, c.SeqBucket) || k.S != bucketUp(k.S, max(c.SeqBucket, k.T/2)) || k.Crops != bucketUp(k.Crops, 1) {
			t.Errorf("shape %v: T and S are not the bucket times a power of two, or crops not a power of two", k)
		}
		keys[lay.Shape] = true
	}
	if cache.builds != len(keys) {
		t.Errorf("built %d graphs for %d distinct shapes", cache.builds, len(keys))
	}
}

// Labels: image positions, prompt positions and pads are never
// supervised; the target of position t is the label of t+1.
func TestFillMasksLabels(t *testing.T) {
	c := testConfig(1)
	m, pp := testModel(t, c)
	s := testSamples(t, m, pp, 1)[0] // with a 1x1 image: 2*2 features + 2 separators = 6 positions
	batch := data.Batch{Samples: []data.Sample{s, testSamples(t, m, pp, 2)[1]}}
	lay, err := plan(m, batch, 16, 128)
	if err != nil {
		t.Fatal(err)
	}
	_, trainable, _ := trainableParams(m, TrainAll)
	sg, err := buildGraph(m, nn.ParamNames(m, ""), lay.Shape, trainable, false)
	if err != nil {
		t.Fatal(err)
	}
	sg.fill(m, batch)
	rowsIdx, targets, splice := sg.Batch.Rows.Data().([]float32), sg.Batch.Targets.Data().([]float32), sg.Batch.Splice.Data().([]float32)
	h := 2
	imgLen := model.ImageTokens(1, 1, h, h)
	// Sample 0: ids [1, IMG, 10, 11, 2, a, b, c, 3]; expanded length 8+imgLen.
	L := len(s.IDs) - 1 + imgLen
	if lay.Lengths[0] != L {
		t.Fatalf("expanded length %d want %d", lay.Lengths[0], L)
	}
	// Answer tokens sit at expanded positions L-4..L-1; each is the target
	// of the position before it; nothing else is supervised.
	for j := 0; j < 4; j++ {
		if rowsIdx[j] != float32(L-5+j) || targets[j] != float32(s.IDs[len(s.IDs)-4+j]) {
			t.Errorf("supervised slot %d: row %v target %v, want row %d target %d", j, rowsIdx[j], targets[j], L-5+j, s.IDs[len(s.IDs)-4+j])
		}
	}
	// The second sample's supervised rows start at row T.
	if rowsIdx[4] < float32(lay.Shape.T) {
		t.Errorf("second sample's first supervised row %v", rowsIdx[4])
	}
	if lay.Shape.S != 16 {
		t.Errorf("S = %d, want 8 supervised rounded up to 16", lay.Shape.S)
	}
	for j := 8; j < lay.Shape.S; j++ {
		if targets[j] != tokenizer.IgnoreIndex {
			t.Errorf("padding slot %d has target %v", j, targets[j])
		}
	}
	// Splice: image rows point into the feature block, separators at the separator row.
	rows := lay.Shape.B * lay.Shape.T
	sep := float32(rows + lay.Shape.Crops*h*h)
	wantSplice := []float32{0, float32(rows), float32(rows + 1), sep, float32(rows + 2), float32(rows + 3), sep, float32(2 + imgLen - 1)}
	for i, w := range wantSplice {
		if splice[i] != w {
			t.Errorf("splice[%d] = %v want %v", i, splice[i], w)
		}
	}
	// Second sample starts at row T with its own positions.
	if splice[lay.Shape.T] != float32(lay.Shape.T) {
		t.Errorf("second sample's first row maps to %v", splice[lay.Shape.T])
	}
	_ = tensor.Float32
}

func TestPlanErrors(t *testing.T) {
	c := testConfig(1)
	m, pp := testModel(t, c)
	s := testSamples(t, m, pp, 1)[0]
	bad := s
	bad.Labels = bad.Labels[:2]
	if _, err := plan(m, data.Batch{Samples: []data.Sample{bad}}, 16, 128); err == nil {
		t.Error("label/id length mismatch accepted")
	}
	bad = s
	bad.IDs = append([]int{testVocab + 5}, s.IDs[1:]...)
	if _, err := plan(m, data.Batch{Samples: []data.Sample{bad}}, 16, 128); err == nil {
		t.Error("out-of-vocabulary id accepted")
	}
	if _, err := plan(m, data.Batch{Samples: []data.Sample{s}}, 16, 8); err == nil {
		t.Error("over-long sample accepted")
	}
	if _, err := plan(m, data.Batch{}, 16, 128); err == nil {
		t.Error("empty batch accepted")
	}
}

// model.PlanMemory (magma info --plan) reports the plan the trainer runs:
// same arena for the same shape, without building any weight.
func TestPlanMemoryMatchesTrainer(t *testing.T) {
	c := testConfig(2)
	m, _ := testModel(t, c)
	_, trainable, _ := trainableParams(m, TrainAll)
	cases := []struct {
		shape     model.BatchShape
		recompute bool
	}{
		{model.BatchShape{B: 2, T: 32, Crops: 2, S: 32}, false},
		{model.BatchShape{B: 1, T: 64, Crops: 0, S: 32}, false},
		{model.BatchShape{B: 2, T: 32, Crops: 2, S: 32}, true},
	}
	for _, tc := range cases {
		sg, err := buildGraph(m, nn.ParamNames(m, ""), tc.shape, trainable, tc.recompute)
		if err != nil {
			t.Fatal(err)
		}
		got, err := model.PlanMemory(m.Config, tc.shape, true, tc.recompute)
		if err != nil {
			t.Fatal(err)
		}
		if want := sg.prog.ArenaBytes(); got.ArenaBytes != want || got.Ops != sg.prog.Stats().Steps {
			t.Errorf("%v recompute=%v: PlanMemory arena %d bytes, %d ops; the trainer's program %d bytes, %d ops",
				tc.shape, tc.recompute, got.ArenaBytes, got.Ops, want, sg.prog.Stats().Steps)
		}
		fwd, err := model.PlanMemory(m.Config, tc.shape, false, false)
		if err != nil {
			t.Fatal(err)
		}
		if fwd.ArenaBytes <= 0 || fwd.ArenaBytes >= got.ArenaBytes || fwd.Mode != "forward" {
			t.Errorf("%v: forward plan %+v, training arena %d", tc.shape, fwd, got.ArenaBytes)
		}
	}
	for _, bad := range []struct {
		s                   model.BatchShape
		training, recompute bool
	}{
		{model.BatchShape{B: 0, T: 32}, true, false},
		{model.BatchShape{B: 1, T: 32, Crops: -1}, false, false},
		{model.BatchShape{B: 1, T: 32}, false, true},
		{model.BatchShape{B: 1, T: 32, S: 33}, true, false},
	} {
		if _, err := model.PlanMemory(m.Config, bad.s, bad.training, bad.recompute); err == nil {
			t.Errorf("PlanMemory(%v, training=%v, recompute=%v): no error", bad.s, bad.training, bad.recompute)
		}
	}
}
