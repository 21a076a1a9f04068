package model

import (
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/llm"
	"github.com/magma-go/magma/nn"
	"github.com/magma-go/magma/vision/imaging"
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
	pixels []*imaging.Pixels
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
	// MAGMA_BENCH_DTYPE=bf16 (or f16) keeps the weights 16-bit in memory
	// (scripts/bench/bf16.sh); peak RSS is counted from here on (the
	// float32 weights the random init wrote are gone).
	if s := os.Getenv("MAGMA_BENCH_DTYPE"); s != "" {
		dt, err := kernels.ParseDtype(s)
		if err != nil {
			b.Fatal(err)
		}
		if err := nn.ConvertParams(m, dt); err != nil {
			b.Fatal(err)
		}
	}
	resetPeakRSS()
	rng := rand.New(rand.NewPCG(7, 7))
	img := imaging.Image{W: 512, H: 512, Pix: make([]uint8, 512*512*3)}
	for i := range img.Pix {
		img.Pix[i] = uint8(rng.IntN(256))
	}
	var mean, std [3]float32
	for i := range 3 {
		mean[i], std[i] = float32(pp.ImageMean[i]), float32(pp.ImageStd[i])
	}
	px, err := imaging.Preprocess(img, pp.BaseImgSize, pp.NumCrops, mean, std)
	if err != nil {
		b.Fatal(err)
	}
	ids := make([]int, 64)
	for i := range ids {
		ids[i] = 3 + rng.IntN(cfg.ImageTokenIndex-3)
	}
	ids[0] = 128000
	ids[4] = cfg.ImageTokenIndex
	return benchSetup{m: m, ids: ids, pixels: []*imaging.Pixels{px}}
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
	b.ReportMetric(peakRSSMB(), "peakRSS-MB")
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
	b.ReportMetric(peakRSSMB(), "peakRSS-MB")
}

// resetPeakRSS restarts the kernel's peak-RSS count (VmHWM) after a
// collection handed freed memory back.
func resetPeakRSS() {
	runtime.GC()
	debug.FreeOSMemory()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// peakRSSMB is VmHWM in MiB (0 when /proc is not there).
func peakRSSMB() float64 {
	st, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(st), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
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
		bld := kernels.NewBuilder(nn.ParamNames(s.m, ""))
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
