// Command quantgo is our side of the quantization benchmarks (issue 28):
//
//	quantgo -mode speed -model DIR [-prompt 64] [-new 16]
//
// loads a checkpoint as `magma generate` does (a bf16 folder with its
// shards mapped in place, or a quantized folder with its GGUF mapped in
// place), prefills PROMPT deterministic token ids (1000 + 37 i, the ids
// scripts/bench/quant_llamacpp.mjs gives llama.cpp) and decodes NEW greedy
// tokens; it prints one JSON object with the same keys as the llama.cpp
// side (prefill_ms, decode_step_ms, decode_ms_median, decode_tokens_per_s).
//
//	quantgo -mode quality -ref DIR -model DIR[,DIR...] [-prompts 200] [-min-len 8] [-max-len 16]
//
// measures how far quantized models are from their bf16 (or f32) source:
// over PROMPTS deterministic prompts of random token ids (lengths MIN..MAX),
// the next-token distribution at every position of each prompt, from one
// forward pass over the whole prompt (the prefill path), of the reference
// and of each model: KL(P_ref || P_model) (mean, its standard error,
// median, 99th percentile, max) and top-1 agreement (argmax equal), as
// llama.cpp's `perplexity --kl-divergence` reports them. The reference's
// log-probabilities are written once to a temporary file, then each model
// is loaded in turn (one at a time: an 8B folder maps 5–16 GB) and compared
// against it. Prints one JSON object.
package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"os"
	"runtime"
	"sort"
	"strings"
	"time"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/llm"
	"github.com/magma-go/magma/model"
	"github.com/magma-go/magma/nn"
)

func main() {
	mode := flag.String("mode", "speed", "speed | quality")
	dir := flag.String("model", "", "checkpoint directory (quality: comma-separated list)")
	ref := flag.String("ref", "", "quality: the reference checkpoint (bf16 or f32)")
	promptLen := flag.Int("prompt", 64, "speed: prompt tokens")
	newTok := flag.Int("new", 16, "speed: decode steps (the first builds the decode graph and is not counted)")
	prompts := flag.Int("prompts", 200, "quality: number of prompts")
	minLen := flag.Int("min-len", 8, "quality: shortest prompt")
	maxLen := flag.Int("max-len", 16, "quality: longest prompt")
	seed := flag.Uint64("seed", 28, "quality: seed of the prompts' token ids")
	paths := flag.String("paths", "prefill", "quality: how the models are scored, comma-separated: prefill (one forward pass per prompt: dequantized tiles and sgemm) and/or decode (the first token as a prompt, then one decode step per token: the GEMV kernels, 8-bit activations unless exact)")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("quantgo: ")
	var out any
	var err error
	switch *mode {
	case "speed":
		out, err = speed(*dir, *promptLen, *newTok)
	case "quality":
		out, err = quality(*ref, strings.Split(*dir, ","), strings.Split(*paths, ","), promptSet(*prompts, *minLen, *maxLen, *seed))
	default:
		err = fmt.Errorf("unknown -mode %q (want speed or quality)", *mode)
	}
	if err != nil {
		log.Fatal(err)
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		log.Fatal(err)
	}
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func median(a []float64) float64 {
	if len(a) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), a...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// speed times prefill and decode on one checkpoint.
func speed(dir string, promptLen, newTok int) (map[string]any, error) {
	if dir == "" || promptLen < 1 || promptLen > 3000 || newTok < 3 {
		return nil, errors.New("speed wants -model DIR, 1 <= -prompt <= 3000, -new >= 3")
	}
	t0 := time.Now()
	ld, err := model.LoadWith(dir, model.LoadOptions{})
	if err != nil {
		return nil, err
	}
	defer ld.Close()
	load := time.Since(t0)
	m := ld.Model
	ids := make([]int, promptLen)
	for i := range ids {
		ids[i] = 1000 + 37*i
	}
	gen := llm.NewGenerator(m.LM, promptLen+newTok+1)
	defer gen.Release()
	var stepMS []float64
	var prefill time.Duration
	s0 := time.Now()
	last := s0
	outIDs, err := gen.Generate(context.Background(), llm.Prompt{IDs: ids}, llm.GenerateOptions{MaxNewTokens: newTok + 1},
		func(step, id int, logits []float32) error {
			now := time.Now()
			if step == 0 {
				prefill = now.Sub(s0)
			} else {
				stepMS = append(stepMS, ms(now.Sub(last)))
			}
			last = now
			return nil
		})
	if err != nil {
		return nil, err
	}
	med := median(stepMS[1:])
	bytes := map[string]int64{}
	ps, _ := nn.Parameters(m.LM, "language_model.")
	for _, p := range ps {
		if p.T != nil {
			bytes[p.T.Dtype().String()] += int64(p.T.MemSize())
		}
	}
	return map[string]any{
		"engine":               "magma",
		"model":                dir,
		"threads":              runtime.GOMAXPROCS(0),
		"load_ms":              ms(load),
		"prompt_tokens":        promptLen,
		"prefill_ms":           ms(prefill),
		"prefill_tokens_per_s": float64(promptLen) / prefill.Seconds(),
		"decode_step_ms":       stepMS,
		"decode_ms_median":     med,
		"decode_tokens_per_s":  1e3 / med,
		"text_bytes_by_dtype":  bytes,
		"output_ids":           outIDs,
	}, nil
}

// promptSet draws n prompts of lengths in [minLen, maxLen] (cycling through
// the lengths) with token ids uniform in [0, 2^31) — taken modulo the
// model's vocabulary when used — from a splitmix64 stream of seed.
func promptSet(n, minLen, maxLen int, seed uint64) [][]uint32 {
	if n < 1 || minLen < 1 || maxLen < minLen {
		log.Fatalf("quality wants -prompts >= 1 and 1 <= -min-len <= -max-len (got %d, %d, %d)", n, minLen, maxLen)
	}
	s := seed
	next := func() uint64 {
		s += 0x9e3779b97f4a7c15
		z := s
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		return z ^ (z >> 31)
	}
	out := make([][]uint32, n)
	span := maxLen - minLen + 1
	for i := range out {
		p := make([]uint32, minLen+(i*7)%span)
		for j := range p {
			p[j] = uint32(next() >> 33)
		}
		out[i] = p
	}
	return out
}

// scorer runs one checkpoint's all-positions forward pass: logits [T, V]
// for a prompt of T ids, one compiled program per prompt length.
type scorer struct {
	ld    *model.Loaded
	lm    *llm.Model
	names map[*tensor.Dense]string
	exec  *kernels.Executor
	progs map[int]*fwd
}

type fwd struct {
	prog   *kernels.Program
	x, pos *G.Node
	logits *G.Node
	posV   *tensor.Dense
}

func newScorer(dir string) (*scorer, error) {
	ld, err := model.LoadWith(dir, model.LoadOptions{})
	if err != nil {
		return nil, err
	}
	lm := ld.Model.LM
	e, err := kernels.NewExecutorWith(lm.Kernels)
	if err != nil {
		ld.Close()
		return nil, err
	}
	return &scorer{ld: ld, lm: lm, names: nn.ParamNames(lm, "language_model."), exec: e, progs: map[int]*fwd{}}, nil
}

func (s *scorer) close() {
	s.exec.Release()
	s.ld.Close()
}

func (s *scorer) vocab() int { return s.lm.Config.VocabSize }

// logProbs returns the log-softmax of the logits at every position of the
// prompt, [T*V] in float64.
func (s *scorer) logProbs(ids []int) ([]float64, error) {
	T, dt := len(ids), s.lm.Dtype()
	f := s.progs[T]
	if f == nil {
		b := kernels.NewBuilder(s.names)
		f = &fwd{posV: tensor.New(tensor.WithShape(T), tensor.Of(dt))}
		f.x = b.Input("quality_embeds", tensor.New(tensor.WithShape(T, s.lm.Config.HiddenSize), tensor.Of(dt)))
		f.pos = b.Input("quality_positions", f.posV)
		h := s.lm.Forward(b, f.x, f.pos, llm.ForwardOptions{Batch: 1, Seq: T})
		f.logits = s.lm.Logits(b, h)
		if err := b.Err(); err != nil {
			return nil, err
		}
		var err error
		if f.prog, err = kernels.Compile(b.G, kernels.CompileOptions{Name: fmt.Sprintf("quality T=%d", T), Outputs: G.Nodes{f.logits}}); err != nil {
			return nil, err
		}
		s.progs[T] = f
	}
	x, err := s.lm.EmbedIDs(ids)
	if err != nil {
		return nil, err
	}
	if x.Dtype() != dt {
		return nil, fmt.Errorf("embeddings of dtype %v, model computes in %v", x.Dtype(), dt)
	}
	switch d := f.posV.Data().(type) {
	case []float32:
		for i := range d {
			d[i] = float32(i)
		}
	case []float64:
		for i := range d {
			d[i] = float64(i)
		}
	default:
		return nil, fmt.Errorf("positions of type %T", d)
	}
	if err := G.Let(f.x, x); err != nil {
		return nil, err
	}
	if err := G.Let(f.pos, f.posV); err != nil {
		return nil, err
	}
	if err := s.exec.Run(f.prog, nil); err != nil {
		return nil, err
	}
	v, err := f.prog.Value(f.logits)
	if err != nil {
		return nil, err
	}
	lv, ok := v.(*tensor.Dense)
	if !ok {
		return nil, fmt.Errorf("logits of type %T", v)
	}
	raw, err := nn.Float64s(lv)
	if err != nil {
		return nil, err
	}
	V := s.vocab()
	if len(raw) != T*V {
		return nil, fmt.Errorf("logits have %d values, want %d×%d", len(raw), T, V)
	}
	for t := 0; t < T; t++ {
		row := raw[t*V : (t+1)*V]
		mx := math.Inf(-1)
		for _, z := range row {
			if math.IsNaN(z) || math.IsInf(z, 0) {
				return nil, fmt.Errorf("position %d: non-finite logit %v", t, z)
			}
			mx = math.Max(mx, z)
		}
		sum := 0.0
		for _, z := range row {
			sum += math.Exp(z - mx)
		}
		lse := mx + math.Log(sum)
		for i := range row {
			row[i] -= lse
		}
	}
	return raw, nil
}

func toIDs(p []uint32, V int) []int {
	ids := make([]int, len(p))
	for i, v := range p {
		ids[i] = int(v) % V
	}
	return ids
}

// quality compares each model against the reference's distributions.
func quality(refDir string, dirs, paths []string, prompts [][]uint32) (map[string]any, error) {
	if refDir == "" || len(dirs) == 0 || dirs[0] == "" {
		return nil, errors.New("quality wants -ref DIR and -model DIR[,DIR...]")
	}
	for _, p := range paths {
		if p != "prefill" && p != "decode" {
			return nil, fmt.Errorf("-paths: unknown path %q (want prefill and/or decode)", p)
		}
	}
	tmp, err := os.CreateTemp("", "quantgo-ref-*.f32")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()

	t0 := time.Now()
	ref, err := newScorer(refDir)
	if err != nil {
		return nil, fmt.Errorf("reference %s: %w", refDir, err)
	}
	V := ref.vocab()
	positions := 0
	w := bufio.NewWriterSize(tmp, 1<<20)
	buf := make([]byte, 4*V)
	for i, p := range prompts {
		lp, err := ref.logProbs(toIDs(p, V))
		if err != nil {
			ref.close()
			return nil, fmt.Errorf("reference %s, prompt %d: %w", refDir, i, err)
		}
		for t := 0; t < len(p); t++ {
			for j := 0; j < V; j++ {
				binary.LittleEndian.PutUint32(buf[4*j:], math.Float32bits(float32(lp[t*V+j])))
			}
			if _, err := w.Write(buf); err != nil {
				ref.close()
				return nil, err
			}
		}
		positions += len(p)
	}
	ref.close()
	if err := w.Flush(); err != nil {
		return nil, err
	}
	refTime := time.Since(t0)

	var results []map[string]any
	for _, dir := range dirs {
		r, err := compare(dir, tmp, V, prompts, paths)
		if err != nil {
			return nil, err
		}
		results = append(results, r...)
	}
	return map[string]any{
		"reference":      refDir,
		"reference_s":    refTime.Seconds(),
		"prompts":        len(prompts),
		"positions":      positions,
		"vocab":          V,
		"reference_path": "prefill (one forward pass over each prompt, logits at every position)",
		"threads":        runtime.GOMAXPROCS(0),
		"models":         results,
		"prompt_lengths": fmt.Sprintf("%d..%d", len(prompts[0]), maxLenOf(prompts)),
	}, nil
}

func maxLenOf(ps [][]uint32) int {
	n := 0
	for _, p := range ps {
		n = max(n, len(p))
	}
	return n
}

// decodeLogProbs scores a prompt through the decode path: its first token
// as a one-token prompt, then one decode step per following token (the
// kernels `magma generate` runs for every new token). [T*V] log-probs.
func (s *scorer) decodeLogProbs(gen *llm.Generator, ids []int) ([]float64, error) {
	V := s.vocab()
	out := make([]float64, 0, len(ids)*V)
	gen.Reset()
	lg, err := gen.PrefillIDs(ids[:1])
	for t := 1; ; t++ {
		if err != nil {
			return nil, err
		}
		row, err := logSoftmax(lg)
		if err != nil {
			return nil, fmt.Errorf("position %d: %w", t-1, err)
		}
		out = append(out, row...)
		if t == len(ids) {
			return out, nil
		}
		lg, err = gen.Step(ids[t])
	}
}

func logSoftmax(lg []float32) ([]float64, error) {
	row := make([]float64, len(lg))
	mx := math.Inf(-1)
	for i, z := range lg {
		if math.IsNaN(float64(z)) || math.IsInf(float64(z), 0) {
			return nil, fmt.Errorf("non-finite logit %v", z)
		}
		row[i] = float64(z)
		mx = math.Max(mx, row[i])
	}
	sum := 0.0
	for _, z := range row {
		sum += math.Exp(z - mx)
	}
	lse := mx + math.Log(sum)
	for i := range row {
		row[i] -= lse
	}
	return row, nil
}

// compare loads dir and scores it on every path against the reference's
// log-probabilities in refFile.
func compare(dir string, refFile *os.File, V int, prompts [][]uint32, paths []string) ([]map[string]any, error) {
	t0 := time.Now()
	s, err := newScorer(dir)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", dir, err)
	}
	defer s.close()
	if s.vocab() != V {
		return nil, fmt.Errorf("model %s has vocabulary %d, the reference %d", dir, s.vocab(), V)
	}
	bytes := map[string]int64{}
	ps, _ := nn.Parameters(s.lm, "language_model.")
	for _, p := range ps {
		if p.T != nil {
			bytes[p.T.Dtype().String()] += int64(p.T.MemSize())
		}
	}
	var out []map[string]any
	for _, path := range paths {
		score := func(ids []int) ([]float64, error) { return s.logProbs(ids) }
		if path == "decode" {
			gen := llm.NewGenerator(s.lm, maxLenOf(prompts)+1)
			defer gen.Release()
			score = func(ids []int) ([]float64, error) { return s.decodeLogProbs(gen, ids) }
		}
		st, err := stats(refFile, V, prompts, score)
		if err != nil {
			return nil, fmt.Errorf("model %s, %s path: %w", dir, path, err)
		}
		st["model"] = dir
		st["path"] = path
		st["text_bytes_by_dtype"] = bytes
		st["seconds"] = time.Since(t0).Seconds()
		t0 = time.Now()
		out = append(out, st)
	}
	return out, nil
}

// stats reads the reference's log-probabilities back from refFile and
// compares them position by position with score's.
func stats(refFile *os.File, V int, prompts [][]uint32, score func([]int) ([]float64, error)) (map[string]any, error) {
	if _, err := refFile.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	r := bufio.NewReaderSize(refFile, 1<<20)
	buf := make([]byte, 4*V)
	var kls []float64
	same := 0
	for i, p := range prompts {
		lq, err := score(toIDs(p, V))
		if err != nil {
			return nil, fmt.Errorf("prompt %d: %w", i, err)
		}
		for t := 0; t < len(p); t++ {
			if _, err := io.ReadFull(r, buf); err != nil {
				return nil, fmt.Errorf("reading the reference's log-probabilities back: %w", err)
			}
			q := lq[t*V : (t+1)*V]
			kl, am, aq := 0.0, 0, 0
			bestP, bestQ := math.Inf(-1), math.Inf(-1)
			for j := 0; j < V; j++ {
				lp := float64(math.Float32frombits(binary.LittleEndian.Uint32(buf[4*j:])))
				kl += math.Exp(lp) * (lp - q[j])
				if lp > bestP {
					bestP, am = lp, j
				}
				if q[j] > bestQ {
					bestQ, aq = q[j], j
				}
			}
			kls = append(kls, math.Max(kl, 0))
			if am == aq {
				same++
			}
		}
	}
	n := float64(len(kls))
	mean, sq := 0.0, 0.0
	for _, k := range kls {
		mean += k
	}
	mean /= n
	for _, k := range kls {
		sq += (k - mean) * (k - mean)
	}
	sorted := append([]float64(nil), kls...)
	sort.Float64s(sorted)
	pct := func(q float64) float64 { return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))] }
	return map[string]any{
		"kld_mean":       mean,
		"kld_stderr":     math.Sqrt(sq/math.Max(n-1, 1)) / math.Sqrt(n),
		"kld_median":     median(kls),
		"kld_p99":        pct(0.99),
		"kld_max":        sorted[len(sorted)-1],
		"top1_agreement": float64(same) / n,
		"positions":      len(kls),
	}, nil
}
