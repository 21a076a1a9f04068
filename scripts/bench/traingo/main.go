// Command traingo measures full training steps of the Go engine (data
// pipeline + forward + backward + AdamW) for scripts/bench/train.sh: it
// writes a LLaVA-style fixture (512x512 PNG screenshots-like images and
// conversations), streams it through the data package's mixture with the
// real tokenizer, trains the preset with train.Run and prints a JSON
// summary (tokens/s, samples/s, data wait, peak RSS).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"log"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/magma-go/magma/llm/tokenizer"
	"github.com/magma-go/magma/train"
	"go.yaml.in/yaml/v3"
)

func main() {
	preset := flag.String("preset", "configs/small.yaml", "model preset")
	batch := flag.Int("batch", 2, "samples per step")
	steps := flag.Int("steps", 4, "steps (the first is warm-up and not counted)")
	words := flag.Int("words", 40, "answer words per sample")
	recompute := flag.Bool("recompute", false, "activation checkpointing (recompute forward values in backward)")
	flag.Parse()
	log.SetFlags(0)

	dir, err := os.MkdirTemp("", "traingo")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	// Fixture: 8 records with distinct 512x512 images.
	var recs []map[string]any
	for i := 0; i < 8; i++ {
		img := image.NewRGBA(image.Rect(0, 0, 512, 512))
		for y := 0; y < 512; y++ {
			for x := 0; x < 512; x++ {
				img.Set(x, y, color.RGBA{uint8(x/2 + i*20), uint8(y / 2), uint8((x + y + i*37) % 256), 255})
			}
		}
		name := fmt.Sprintf("img%d.png", i)
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			log.Fatal(err)
		}
		if err := png.Encode(f, img); err != nil {
			log.Fatal(err)
		}
		f.Close()
		var ans []string
		for w := 0; w < *words; w++ {
			ans = append(ans, fmt.Sprintf("w%d", (w*7+i)%50))
		}
		recs = append(recs, map[string]any{"id": fmt.Sprint(i), "image": name, "conversations": []map[string]string{
			{"from": "human", "value": "<image>\nDescribe the screenshot and list the clickable elements."},
			{"from": "gpt", "value": strings.Join(ans, " ")},
		}})
	}
	js, _ := json.Marshal(recs)
	if err := os.WriteFile(filepath.Join(dir, "llava.json"), js, 0o644); err != nil {
		log.Fatal(err)
	}

	cfg := train.DefaultConfig()
	cfg.Model = train.ModelConfig{Preset: *preset}
	cfg.Optimizer.LR, cfg.Optimizer.WeightDecay = 1e-4, 0.01
	cfg.Steps, cfg.BatchSize, cfg.LogEvery, cfg.MaxSeqLen = *steps, *batch, 1, 2048
	cfg.Source = "bench"
	cfg.ActivationCheckpointing = *recompute
	var node yaml.Node
	_ = node.Encode(map[string]any{"workers": 2, "sources": []any{map[string]any{"type": "llava", "path": filepath.Join(dir, "llava.json"), "weight": 1.0}}})
	cfg.Data = node
	m, pp, tokDir, err := train.InitModel(&cfg)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(tokDir, "tokenizer.json")); err != nil {
		if tokDir, err = tokenizer.Locate("magma"); err != nil {
			log.Fatal(err)
		}
	}
	tok, err := tokenizer.Load(tokDir)
	if err != nil {
		log.Fatal(err)
	}
	mc, err := cfg.MixtureConfig()
	if err != nil {
		log.Fatal(err)
	}
	open, err := train.OpenMixture(&cfg, mc, tok, pp, dir)
	if err != nil {
		log.Fatal(err)
	}
	// Sequence shape of the samples (for the PyTorch side).
	st, _ := open(nil)
	b, err := st.Next(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	st.Close()
	var textTok, sup []int
	for _, s := range b.Samples {
		n, k := 0, 0
		for i, id := range s.IDs {
			if id != m.Config.ImageTokenIndex {
				n++
			}
			if i > 0 && s.Labels[i] != tokenizer.IgnoreIndex {
				k++
			}
		}
		textTok, sup = append(textTok, n), append(sup, k)
	}
	out := filepath.Join(dir, "run")
	t0 := time.Now()
	res, err := train.Run(context.Background(), train.Options{Config: &cfg, Model: m, Preprocessor: pp, Data: open, OutDir: out, Log: os.Stderr, NoPlot: true, NoCheckpoint: true})
	if err != nil {
		log.Fatal(err)
	}
	wall := time.Since(t0)
	ms, err := train.ReadMetrics(filepath.Join(out, train.MetricsFile))
	if err != nil {
		log.Fatal(err)
	}
	var tps, sps, wait, stepMS []float64
	for _, x := range ms[1:] {
		tps, sps, wait, stepMS = append(tps, x.TokensPerS), append(sps, x.SamplesPerS), append(wait, x.DataWaitMS), append(stepMS, x.StepMS)
	}
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	var mem runtime.MemStats
	runtime.ReadMemStats(&mem)
	summary := map[string]any{
		"preset": *preset, "batch": *batch, "timed_steps": len(tps), "gomaxprocs": runtime.GOMAXPROCS(0),
		"text_tokens_per_sample": textTok, "supervised_per_sample": sup,
		"tokens_per_step": float64(res.Losses[0]*0) + float64(ms[len(ms)-1].Tokens-ms[len(ms)-2].Tokens),
		"tokens_per_s":    median(tps), "samples_per_s": median(sps), "step_ms": median(stepMS),
		"data_wait_ms_per_step": median(wait), "data_wait_ms_max": maxOf(wait),
		"peak_rss_mb": float64(ru.Maxrss) / 1024, "go_heap_sys_mb": float64(mem.HeapSys) / (1 << 20),
		"first_step_ms": ms[0].StepMS, "final_loss": res.FinalLoss, "wall_s": wall.Seconds(),
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(summary)
}

func median(x []float64) float64 {
	if len(x) == 0 {
		return 0
	}
	s := append([]float64(nil), x...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func maxOf(x []float64) float64 {
	m := 0.0
	for _, v := range x {
		m = max(m, v)
	}
	return m
}
