package train

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/model"
	"github.com/magma-go/magma/vision/imaging"
)

// The tiny model memorises a handful of multimodal samples: the loss goes
// below 0.1 and greedy generation from each prompt (through model.Pipeline,
// the path of `magma generate`) reproduces the answer ids.
func TestMemorise(t *testing.T) {
	c := testConfig(150)
	c.Checkpoint = CheckpointConfig{Every: 0, Keep: 1}
	m, pp := testModel(t, c)
	samples := testSamples(t, m, pp, 6)
	out := t.TempDir()
	res, err := Run(context.Background(), Options{Config: c, Model: m, Preprocessor: pp, Data: openCycle(samples, 2), OutDir: out, Log: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("loss %.4f -> %.4f over %d steps, %d graphs built", res.Losses[0], res.FinalLoss, res.Steps, res.GraphBuilds)
	if res.FinalLoss >= 0.1 {
		t.Fatalf("final loss %.4f, want < 0.1", res.FinalLoss)
	}
	if res.GraphBuilds > 3 {
		t.Errorf("%d graphs built for a 3-batch cycle", res.GraphBuilds)
	}
	// Reload the final checkpoint and generate from it.
	ld, err := model.Load(res.Checkpoint)
	if err != nil {
		t.Fatal(err)
	}
	ld.Model.SetKernels(kernels.TestOptions())
	p := &model.Pipeline{Loaded: ld}
	for i, s := range samples {
		k := slices.Index(s.IDs, 2)
		req := model.Request{PromptIDs: s.IDs[:k+1], MaxNewTokens: 4}
		if len(s.Images) > 0 {
			w, h := 64, 64
			if i%4 == 2 {
				w, h = 128, 60
			}
			if i%6 == 4 {
				w, h = 60, 128
			}
			req.Images = []imaging.Image{synthImage(w, h, i)}
		}
		r, err := p.Generate(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if want := s.IDs[k+1:]; !slices.Equal(r.OutputIDs, want) {
			t.Errorf("sample %d: generated %v, want %v", i, r.OutputIDs, want)
		}
	}
	ms, err := ReadMetrics(filepath.Join(out, MetricsFile))
	if err != nil || len(ms) != 150 {
		t.Fatalf("metrics: %d lines, %v", len(ms), err)
	}
	if ms[0].LR != 0 || ms[149].Step != 150 || ms[10].TokensPerS <= 0 || ms[10].GradNorm <= 0 {
		t.Errorf("metrics content: %+v %+v", ms[0], ms[149])
	}
	if _, err := os.Stat(filepath.Join(out, PlotFile)); err != nil {
		t.Errorf("no plot: %v", err)
	}
}

// NaN in the weights after a checkpoint stops the run with ErrNonFinite
// before any update, and the last good checkpoint is intact and loadable.
func TestNaNStopsAndKeepsCheckpoint(t *testing.T) {
	c := testConfig(20)
	c.Checkpoint = CheckpointConfig{Every: 4, Keep: 2}
	m, pp := testModel(t, c)
	samples := testSamples(t, m, pp, 4)
	out := t.TempDir()
	o := Options{Config: c, Model: m, Preprocessor: pp, Data: openCycle(samples, 2), OutDir: out, Log: quiet(), NoPlot: true}
	o.Hooks.OnStep = func(si StepInfo) error {
		if si.Step == 9 {
			m.LM.Decoder.Norm.Weight.Data().([]float32)[0] = float32(nan())
		}
		return nil
	}
	res, err := Run(context.Background(), o)
	if !errors.Is(err, ErrNonFinite) {
		t.Fatalf("got %v, want ErrNonFinite", err)
	}
	t.Logf("error: %v", err)
	if res.Steps != 9 {
		t.Errorf("stopped after %d updates, want 9", res.Steps)
	}
	dir, st, werr := LatestCheckpoint(out)
	if werr != nil || st == nil || st.Step != 8 || filepath.Base(dir) != "step-000008" {
		t.Fatalf("latest checkpoint %s %+v %v", dir, st, werr)
	}
	ld, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if v := ld.Model.LM.Decoder.Norm.Weight.Data().([]float32)[0]; v != v {
		t.Error("checkpoint holds NaN")
	}
	steps, _ := listSteps(filepath.Join(out, checkpointsDir))
	if !slices.Equal(steps, []int{4, 8}) {
		t.Errorf("checkpoints %v, want [4 8] (keep 2)", steps)
	}
}

func nan() float64 { var z float64; return z / z }

// activation_checkpointing recomputes forward values in backward: the loss
// curve is bit-identical to the run that keeps them, and the largest plan
// needs less memory.
func TestActivationCheckpointingSameNumbers(t *testing.T) {
	var losses [2][]float64
	var arena [2]int64
	for i, ac := range []bool{false, true} {
		c := testConfig(4)
		c.Checkpoint = CheckpointConfig{Every: 0, Keep: 1}
		c.ActivationCheckpointing = ac
		m, pp := testModel(t, c)
		samples := testSamples(t, m, pp, 6)
		res, err := Run(context.Background(), Options{Config: c, Model: m, Preprocessor: pp, Data: openCycle(samples, 2), OutDir: t.TempDir(), Log: quiet(), NoPlot: true})
		if err != nil {
			t.Fatal(err)
		}
		losses[i], arena[i] = res.Losses, res.ArenaBytes
		t.Logf("activation_checkpointing=%v: largest plan %s", ac, res.Largest)
	}
	if !slices.Equal(losses[0], losses[1]) {
		t.Errorf("losses differ: %v without, %v with recomputation", losses[0], losses[1])
	}
	if arena[1] >= arena[0] {
		t.Errorf("arena %d bytes with recomputation, %d without", arena[1], arena[0])
	}
}
