package model

import (
	"math/rand/v2"
	"os"
	"testing"

	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/llm"
	"github.com/magma-go/magma/vision"
	G "gorgonia.org/gorgonia"
)

// Benchmarks of the `small` preset (about 100M parameters, random weights)
// on one 512x512 image with a 64-token prompt, the workload of
// scripts/bench/model.sh, which runs the PyTorch reference beside them.
// MAGMA_BENCH_CONFIG_DIR=<checkpoint dir> reads config.json (and the
// preprocessor config) from there instead of the built-in preset.

type benchSetup struct {
	m      *Magma
	ids    []int
	pixels []*vision.Pixels
}

func setupSmall(b *testing.B) benchSetup {
	b.Helper()
	// scripts/bench/model.sh points both sides at one written config.json.
	var cfg *Config
	var pp *PreprocessorConfig
	var err error
	if dir := os.Getenv("MAGMA_BENCH_CONFIG_DIR"); dir != "" {
		cfg, pp, err = LoadConfig(dir)
	} else {
		cfg, pp, err = PresetConfigs("small")
	}
	if err != nil {
		b.Fatal(err)
	}
	m, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := m.InitRandom(1); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	img := vision.Image{W: 512, H: 512, Pix: make([]uint8, 512*512*3)}
	for i := range img.Pix {
		img.Pix[i] = uint8(rng.IntN(256))
	}
	var mean, std [3]float32
	for i := range 3 {
		mean[i], std[i] = float32(pp.ImageMean[i]), float32(pp.ImageStd[i])
	}
	px, err := vision.Preprocess(img, pp.BaseImgSize, pp.NumCrops, mean, std)
	if err != nil {
		b.Fatal(err)
	}
	ids := make([]int, 64)
	for i := range ids {
		ids[i] = 3 + rng.IntN(cfg.ImageTokenIndex-3)
	}
	ids[0] = 128000
	ids[4] = cfg.ImageTokenIndex
	return benchSetup{m: m, ids: ids, pixels: []*vision.Pixels{px}}
}

// BenchmarkSmallForward: vision tower + projector + decoder prefill over the
// whole prompt, last-position logits; graphs are built inside the loop.
//
// One untimed forward runs first, as the PyTorch side does one warm-up run:
// the first pass pays for growing the Go heap to its working size.
func BenchmarkSmallForward(b *testing.B) {
	s := setupSmall(b)
	forward := func() {
		emb, err := s.m.EmbedSequence(s.ids, s.pixels)
		if err != nil {
			b.Fatal(err)
		}
		gen := llm.NewGenerator(s.m.LM, emb.Length+1)
		if _, err := gen.Prefill(emb.Embeds); err != nil {
			b.Fatal(err)
		}
	}
	forward()
	b.ResetTimer()
	for range b.N {
		forward()
	}
}

// BenchmarkSmallDecode: one greedy decode step with the KV cache after the
// prefill (reported per token; tokens/s = 1e9 / ns/op).
func BenchmarkSmallDecode(b *testing.B) {
	s := setupSmall(b)
	emb, err := s.m.EmbedSequence(s.ids, s.pixels)
	if err != nil {
		b.Fatal(err)
	}
	gen := llm.NewGenerator(s.m.LM, emb.Length+b.N+1)
	logits, err := gen.Prefill(emb.Embeds)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		id, err := llm.Greedy(logits)
		if err != nil {
			b.Fatal(err)
		}
		if logits, err = gen.Step(id); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
}

// BenchmarkSmallTrainStep: one training step's forward and backward (loss
// graph + gorgonia.Grad over every parameter, run on a TapeMachine) on the
// 64-token prompt with its 512x512 image, every text position supervised.
// Graph building and differentiation are inside the loop, as a trainer that
// rebuilds the graph per batch would do; no optimizer update.
func BenchmarkSmallTrainStep(b *testing.B) {
	s := setupSmall(b)
	labels := append([]int(nil), s.ids...)
	b.ResetTimer()
	for range b.N {
		bld := kernels.NewBuilder(Names(s.m))
		loss, err := s.m.LossGraph(bld, s.ids, labels, s.pixels)
		if err != nil {
			b.Fatal(err)
		}
		grads, err := G.Grad(loss, bld.Params()...)
		if err != nil {
			b.Fatal(err)
		}
		prog, err := kernels.Compile(bld.G, kernels.CompileOptions{Name: "small training step", Outputs: append(G.Nodes{loss}, grads...)})
		if err != nil {
			b.Fatal(err)
		}
		if err := kernels.NewExecutor().Run(prog, nil); err != nil {
			b.Fatal(err)
		}
	}
}
