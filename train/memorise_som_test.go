package train

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/magma-go/magma/data"
	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/llm/tokenizer"
	"github.com/magma-go/magma/model"
	"github.com/magma-go/magma/som"
	"github.com/magma-go/magma/vision/imaging"
)

// The tiny model (real Llama-3 + Magma vocabulary) memorises a handful of
// real Set-of-Mark samples: synthetic UI screenshots from
// data.GenerateSynthetic, marked and tokenised by data.UISource with the
// magma tokenizer, text_2_point subtask ("<task>" -> "(0.42,0.17) Mark: k").
// Recipe: all samples in every batch, AdamW at a constant 3e-3 (5% warmup),
// 120 steps (the loss is near 0.01 by step 100; about 35 s on 2 cores).
// The loss goes below 0.1, and greedy generation through the reloaded
// final checkpoint (model.LoadPipeline, the path of `magma generate`) from
// each sample's prompt and marked screenshot reproduces the answer and its
// mark id.
func TestMemoriseSoM(t *testing.T) {
	tokDir, err := tokenizer.Locate("magma")
	if err != nil {
		t.Skipf("magma tokenizer assets absent (run scripts/fetch-tokenizer.sh or make tokenizer): %v", err)
	}
	tok, err := tokenizer.Load(tokDir)
	if err != nil {
		t.Fatal(err)
	}
	const nSamples = 4
	c := DefaultConfig()
	c.Model = ModelConfig{Preset: "tiny"} // the real vocabulary
	c.Optimizer.LR = 3e-3
	c.Optimizer.WeightDecay = 0
	c.Schedule = ScheduleConfig{Name: "constant", WarmupRatio: 0.05}
	c.Steps = 120
	c.BatchSize = nSamples
	c.SeqBucket = 16
	c.MaxSeqLen = 256
	c.LogEvery = 10
	c.Checkpoint = CheckpointConfig{Every: 0, Keep: 1}
	c.Source = "test"
	m, pp := testModel(t, &c)

	// Real SoM samples, built the way the mixture builds them.
	dir := t.TempDir()
	sc := data.SyntheticConfig{Dir: dir, UI: nSamples, Videos: 1, RobotEpisodes: 1, Captions: 1, Frames: 4}
	if err := data.GenerateSynthetic(sc, 11); err != nil {
		t.Fatal(err)
	}
	env, err := data.NewSampleBuilder(tok, ImageOptions(pp))
	if err != nil {
		t.Fatal(err)
	}
	env.Logf = t.Logf
	env.OnError = data.OnErrorStop
	src, err := data.NewUISource(env, "ui", filepath.Join(dir, data.SyntheticUIFile), data.UIOptions{
		BBoxFormat: data.BBoxXYXY, MaxTurns: 1, Subtasks: map[string]float64{data.Text2Point: 1}})
	if err != nil {
		t.Fatal(err)
	}
	samples := make([]data.Sample, nSamples)
	prompts := make([]int, nSamples) // length of each sample's prompt
	for i := range samples {
		s, err := src.Sample(i, rand.New(rand.NewPCG(11, uint64(i))))
		if err != nil {
			t.Fatal(err)
		}
		k := slices.IndexFunc(s.Labels, func(l int) bool { return l != tokenizer.IgnoreIndex })
		if k < 0 || len(s.Images) != 1 {
			t.Fatalf("sample %d: first supervised position %d, %d images", i, k, len(s.Images))
		}
		samples[i], prompts[i] = s, k
		ans, _ := tok.Decode(s.IDs[k:], true)
		if _, ok := som.ParseMarkID(ans); !ok {
			t.Fatalf("sample %d: answer %q has no mark id", i, ans)
		}
		t.Logf("sample %d: %d tokens, answer %q", i, len(s.IDs), ans)
	}

	out := t.TempDir()
	t0 := time.Now()
	res, err := Run(context.Background(), Options{Config: &c, Model: m, Preprocessor: pp, Tokenizer: tokDir,
		Data: openCycle(samples, nSamples), OutDir: out, Log: quiet(), NoPlot: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("loss %.4f -> %.4f over %d steps in %v", res.Losses[0], res.FinalLoss, res.Steps, time.Since(t0).Round(time.Millisecond))
	curve := ""
	for j := 0; j < len(res.Losses); j += 20 {
		curve += fmt.Sprintf(" %d:%.3f", j+1, res.Losses[j])
	}
	t.Logf("loss by step:%s", curve)
	if res.FinalLoss >= 0.1 {
		t.Fatalf("final loss %.4f, want < 0.1", res.FinalLoss)
	}

	p, err := model.LoadPipeline(res.Checkpoint, "")
	if err != nil {
		t.Fatal(err)
	}
	p.Model.SetKernels(kernels.TestOptions())
	if p.Tokenizer == nil {
		t.Fatal("checkpoint has no tokenizer")
	}
	for i, s := range samples {
		k := prompts[i]
		img := unpreprocess(t, s.Images[0], pp)
		r, err := p.Generate(context.Background(), model.Request{PromptIDs: s.IDs[:k], Images: []imaging.Image{img}, MaxNewTokens: len(s.IDs) - k + 4})
		if err != nil {
			t.Fatal(err)
		}
		want, _ := tok.Decode(s.IDs[k:], true)
		wantID, _ := som.ParseMarkID(want)
		gotID, ok := som.ParseMarkID(r.Text)
		t.Logf("sample %d: generated %q, want %q", i, r.Text, want)
		if !ok || gotID != wantID {
			t.Errorf("sample %d: generated mark %d (found %v), want %d", i, gotID, ok, wantID)
		}
		if r.Text != want {
			t.Errorf("sample %d: generated %q, want %q", i, r.Text, want)
		}
	}
}

// unpreprocess recovers the uint8 image a Pixels was made from when no
// resize happened (the image is rows*base x cols*base): the per-channel
// normalisation is inverted and rounded, the crops stitched back. It
// checks that preprocessing the result gives the same Pixels bit for bit,
// so generation sees exactly the marked screenshot the model trained on.
func unpreprocess(t testing.TB, px *imaging.Pixels, pp *model.PreprocessorConfig) imaging.Image {
	t.Helper()
	b := px.Base
	W, H := px.Cols*b, px.Rows*b
	im := imaging.Image{W: W, H: H, Pix: make([]uint8, W*H*3)}
	for gy := 0; gy < px.Rows; gy++ {
		for gx := 0; gx < px.Cols; gx++ {
			for cy := 0; cy < b; cy++ {
				for cx := 0; cx < b; cx++ {
					src := (((gy*px.Cols+gx)*b+cy)*b + cx) * 3
					dst := ((gy*b+cy)*W + gx*b + cx) * 3
					for c := 0; c < 3; c++ {
						v := (float64(px.Data[src+c])*pp.ImageStd[c] + pp.ImageMean[c]) * 255
						im.Pix[dst+c] = uint8(math.Max(0, math.Min(255, math.Round(v))))
					}
				}
			}
		}
	}
	again := pixels(t, nil, pp, im)
	if again.Rows != px.Rows || again.Cols != px.Cols || !slices.Equal(again.Data, px.Data) {
		t.Fatalf("re-preprocessed image differs from the training pixels (%dx%d crops vs %dx%d)", again.Rows, again.Cols, px.Rows, px.Cols)
	}
	return im
}
