// Package train is the training engine of magma pretrain / finetune:
// batched forward and backward through the Gorgonia graph of the model,
// AdamW with decoupled weight decay, constant and cosine schedules with
// warmup, global-norm clipping, gradient accumulation, trainable-part
// selection, NaN/Inf detection, atomic checkpoints that resume exactly,
// metrics.jsonl, a progress display and loss/lr plots.
package train

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/magma-go/magma/data"
	"github.com/magma-go/magma/model"
	"gorgonia.org/tensor"
)

// StreamOpener opens the data stream: state nil starts from the beginning
// (for the seed), otherwise it continues from a data.Stream.State().
type StreamOpener func(state []byte) (data.Stream, error)

// Options configure Run.
type Options struct {
	Config *Config
	// Model holds the initial weights (updated in place).
	Model        *model.Magma
	Preprocessor *model.PreprocessorConfig
	// Tokenizer is a tokenizer directory copied into each checkpoint ("" = none).
	Tokenizer string
	// Allowed marks the ids that have a token (tokenizer.Tokenizer.IDMask);
	// a label outside it is an error, since generation never samples such
	// ids (llm.SampleOptions.Allowed). Nil: any id below vocab_size.
	Allowed []bool
	Data    StreamOpener
	// OutDir is the run folder (metrics.jsonl, checkpoints/, plots).
	OutDir string
	// Resume continues from the newest complete checkpoint in OutDir.
	Resume bool
	// Log receives the progress display (nil: os.Stderr).
	Log io.Writer
	// Progress forces the terminal progress bar on or off (nil: detect).
	Progress *bool
	// SaveOnCancel writes a checkpoint when ctx is cancelled (Ctrl-C);
	// without it a cancelled run stops like a killed one.
	SaveOnCancel bool
	// NoPlot skips the end-of-run PNG.
	NoPlot bool
	// NoCheckpoint writes no checkpoints at all (benchmarks).
	NoCheckpoint bool
	// MaxGraphs bounds the compiled-graph cache (0: 8).
	MaxGraphs int
	// Adapters are the tensors trained with trainable: lora. Nil: Run
	// attaches fresh LoRA adapters from the recipe's lora: section (seeded
	// by its seed) to Model, where they stay after Run (MergeLoRA folds
	// them in).
	Adapters Adapters

	// OnStart, when set, is called once the trainable parameters are known
	// (adapters attached), before the first update: what the run trains.
	OnStart func(StartInfo)

	// beforeRename and removeOld are test hooks (see checkpointWriter).
	beforeRename func(tmp string) error
	removeOld    func(path string) error
	// afterStep is a test hook called after every update's bookkeeping.
	afterStep func(step int, loss float64, grads [][]float32) error
}

// StartInfo is what Options.OnStart reports.
type StartInfo struct {
	Trainable int64   // parameters the optimizer updates (adapters only with lora)
	Total     int64   // parameters of the model (adapters included)
	LR        float64 // peak learning rate of the schedule
	Schedule  string
}

// Result summarises a run.
type Result struct {
	Steps       int       // updates done in total (including resumed ones)
	Losses      []float64 // loss of each update run by this call
	FinalLoss   float64
	Checkpoint  string // newest checkpoint written
	GraphBuilds int    // compiled graphs built (shape buckets seen)
	Resumed     int    // step resumed from (0: fresh start)
	// Largest is the program with the largest activation arena (its shape
	// and plan), CompileTime the time spent building and compiling graphs.
	Largest     string
	ArenaBytes  int64
	CompileTime time.Duration
}

// ErrNonFinite is wrapped by the error Run returns when the loss or the
// gradient norm is NaN or infinite.
var ErrNonFinite = errors.New("non-finite loss or gradient")

// trainableParams lists the model's tensors in checkpoint order with the
// ones to train for the setting.
func trainableParams(m *model.Magma, setting string) ([]*Param, map[*tensor.Dense]bool, error) {
	var ps []*Param
	set := map[*tensor.Dense]bool{}
	err := model.Walk(m, "", func(name string, t *tensor.Dense) error {
		train := true
		switch setting {
		case TrainVisionFrozen:
			train = !strings.HasPrefix(name, "vision_tower.")
		case TrainProjector:
			train = strings.HasPrefix(name, "multi_modal_projector.")
		}
		if !train {
			return nil
		}
		d, ok := t.Data().([]float32)
		if !ok {
			return fmt.Errorf("parameter %s is %v; training needs float32", name, t.Dtype())
		}
		ps = append(ps, &Param{Name: name, Data: d, Decay: !NoDecay(name, t.Shape())})
		set[t] = true
		return nil
	})
	return ps, set, err
}

// selectParams lists the parameters to train and their tensors (aligned):
// the model's for the setting, or the adapters' for lora.
func selectParams(m *model.Magma, setting string, ad Adapters) ([]*Param, []*tensor.Dense, error) {
	if setting != TrainLoRA {
		ps, _, err := trainableParams(m, setting)
		if err != nil {
			return nil, nil, err
		}
		var ts []*tensor.Dense
		err = model.Walk(m, "", func(name string, t *tensor.Dense) error {
			if len(ts) < len(ps) && ps[len(ts)].Name == name {
				ts = append(ts, t)
			}
			return nil
		})
		if err == nil && len(ts) != len(ps) {
			err = fmt.Errorf("parameter list changed while walking the model")
		}
		return ps, ts, err
	}
	var ps []*Param
	var ts []*tensor.Dense
	seen := map[string]bool{}
	for _, a := range ad.Tensors() {
		d, ok := a.T.Data().([]float32)
		if !ok {
			return nil, nil, fmt.Errorf("adapter tensor %s is %v; training needs float32", a.Name, a.T.Dtype())
		}
		if seen[a.Name] {
			return nil, nil, fmt.Errorf("adapter tensor name %s used twice", a.Name)
		}
		seen[a.Name] = true
		ps = append(ps, &Param{Name: a.Name, Data: d, Decay: true})
		ts = append(ts, a.T)
	}
	if len(ps) == 0 {
		return nil, nil, errors.New("trainable: lora, but the model has no adapter attached")
	}
	return ps, ts, nil
}

// Run trains until Config.Steps updates are done (or ctx is cancelled).
func Run(ctx context.Context, o Options) (*Result, error) {
	cfg, m := o.Config, o.Model
	if cfg == nil || m == nil || o.Data == nil || o.OutDir == "" {
		return nil, errors.New("train: Config, Model, Data and OutDir are required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logw := o.Log
	if logw == nil {
		logw = os.Stderr
	}
	maxLen := cfg.MaxSeqLen
	if maxLen == 0 || maxLen > m.Config.Text.MaxPositionEmbeddings {
		maxLen = m.Config.Text.MaxPositionEmbeddings
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	adapters := o.Adapters
	var err error
	if adapters != nil && cfg.Trainable != TrainLoRA {
		return nil, fmt.Errorf("train: Options.Adapters are trained with trainable: lora, the recipe says %q", cfg.Trainable)
	}
	if cfg.Trainable == TrainLoRA && adapters == nil {
		if adapters, err = AttachLoRA(m, cfg.LoRA, cfg.Seed, cfg.Model.InitFrom); err != nil {
			return nil, fmt.Errorf("train: %w", err)
		}
	}
	params, tensors, err := selectParams(m, cfg.Trainable, adapters)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	if o.OnStart != nil {
		info := StartInfo{LR: cfg.Optimizer.LR, Schedule: cfg.Schedule.Name}
		for _, p := range params {
			info.Trainable += int64(len(p.Data))
		}
		info.Total, _ = model.ParamCount(m)
		if adapters != nil {
			for _, a := range adapters.Tensors() {
				info.Total += int64(a.T.Shape().TotalSize())
			}
		}
		o.OnStart(info)
	}
	tensorIndex := map[*tensor.Dense]int{}
	trainable := map[*tensor.Dense]bool{}
	for i, t := range tensors {
		tensorIndex[t] = i
		trainable[t] = true
	}
	opt := &AdamW{Beta1: cfg.Optimizer.Beta1, Beta2: cfg.Optimizer.Beta2, Eps: cfg.Optimizer.Eps, WeightDecay: cfg.Optimizer.WeightDecay, Params: params}
	sched := NewSchedule(cfg.Schedule.Name, cfg.Optimizer.LR, cfg.Steps, cfg.Schedule.WarmupRatio)
	pcg := rand.NewPCG(cfg.Seed, 0x747261696e)
	ckRoot := filepath.Join(o.OutDir, checkpointsDir)
	writer := &checkpointWriter{root: ckRoot, model: m, adapters: adapters, pp: o.Preprocessor, tokenizer: o.Tokenizer, keep: cfg.Checkpoint.Keep,
		beforeRename: o.beforeRename, removeOld: o.removeOld, warn: func(f string, a ...any) { fmt.Fprintf(logw, f, a...) }}
	if !o.NoCheckpoint {
		if err := checkWritable(ckRoot); err != nil {
			return nil, fmt.Errorf("train: %w", err)
		}
	}
	if err := removeTemps(ckRoot); err != nil {
		return nil, fmt.Errorf("train: removing half-written checkpoints: %w", err)
	}

	res := &Result{}
	var (
		start                   int
		dataState               []byte
		tokensSeen, samplesSeen int64
		elapsedBefore           float64
		lastCheckpoint          string
	)
	if o.Resume {
		dirs, states, warn := checkpointCandidates(o.OutDir)
		if warn != nil {
			fmt.Fprintf(logw, "warning: %v\n", warn)
		}
		if len(dirs) == 0 {
			return nil, fmt.Errorf("train: --resume: no complete checkpoint in %s", ckRoot)
		}
		// The newest checkpoint that loads wins: a truncated weights or
		// optimizer file (disk full, copy cut short) falls back to the
		// previous one, as an unreadable trainer_state.json does. A
		// successful load rewrites every weight and moment, so a failed
		// attempt leaves nothing behind.
		var dir string
		var st *TrainerState
		for i, d := range dirs {
			s := states[i]
			if s.ConfigHash != cfg.Hash() {
				return nil, fmt.Errorf("train: --resume: %s was written with a different recipe (config hash %.12s…, now %.12s…); resume with the run's config.yaml", d, s.ConfigHash, cfg.Hash())
			}
			if s.Trainable != cfg.Trainable {
				return nil, fmt.Errorf("train: --resume: checkpoint trained %q, recipe says %q", s.Trainable, cfg.Trainable)
			}
			err := loadCheckpoint(d, m, adapters, opt)
			if err == nil {
				dir, st = d, s
				break
			}
			if i == len(dirs)-1 {
				return nil, fmt.Errorf("train: --resume: %w", err)
			}
			fmt.Fprintf(logw, "warning: skipping checkpoint %s that does not load (%v); falling back to %s\n", d, err, dirs[i+1])
		}
		opt.Step = st.Optimizer.Step
		if len(st.RNG) > 0 {
			if err := pcg.UnmarshalBinary(st.RNG); err != nil {
				return nil, fmt.Errorf("train: --resume: %s: rng: %w", dir, err)
			}
		}
		start, dataState = st.Step, st.DataState
		tokensSeen, samplesSeen, elapsedBefore = st.TokensSeen, st.SamplesSeen, st.ElapsedS
		lastCheckpoint = dir
		res.Resumed = start
		if st.Threads != runtime.GOMAXPROCS(0) || st.BLASThreads != os.Getenv("OPENBLAS_NUM_THREADS") {
			fmt.Fprintf(logw, "note: checkpoint written with GOMAXPROCS=%d OPENBLAS_NUM_THREADS=%q, now %d %q: the loss curve may differ in the last bits\n",
				st.Threads, st.BLASThreads, runtime.GOMAXPROCS(0), os.Getenv("OPENBLAS_NUM_THREADS"))
		}
		fmt.Fprintf(logw, "resuming from %s (step %d of %d)\n", dir, start, cfg.Steps)
	} else if steps, _ := listSteps(ckRoot); len(steps) > 0 {
		return nil, fmt.Errorf("train: %s already holds checkpoints (step %d); pass --resume to continue or choose another --out", ckRoot, steps[len(steps)-1])
	}
	if recipe, err := cfg.Marshal(); err == nil {
		if err := writeFileAtomic(filepath.Join(o.OutDir, "config.yaml"), recipe); err != nil {
			return nil, fmt.Errorf("train: %w", err)
		}
	}
	metrics, err := openMetrics(filepath.Join(o.OutDir, MetricsFile), start)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	defer metrics.Close()
	stream, err := o.Data(dataState)
	if err != nil {
		return nil, fmt.Errorf("train: opening data: %w", err)
	}
	defer stream.Close()

	names := model.Names(m)
	if adapters != nil {
		// Stable graph node names for the adapter tensors (PEFT names).
		for _, a := range adapters.Tensors() {
			names[a.T] = a.Name
		}
	}
	cache := &graphCache{max: o.MaxGraphs}
	if cache.max <= 0 {
		cache.max = 8
	}
	defer cache.close()
	var acc [][]float32
	if cfg.GradAccum > 1 {
		acc = make([][]float32, len(params))
		for i, p := range params {
			acc[i] = make([]float32, len(p.Data))
		}
	}
	prog := newProgress(logw, o.Progress, cfg.Steps, start)
	state := func(step int, loss float64) (*TrainerState, error) {
		ds, err := stream.State()
		if err != nil {
			return nil, fmt.Errorf("data stream state: %w", err)
		}
		rngState, _ := pcg.MarshalBinary()
		st := &TrainerState{Format: stateFormat, Step: step, TotalSteps: cfg.Steps, Seed: cfg.Seed, ConfigHash: cfg.Hash(),
			Schedule: sched, Trainable: cfg.Trainable, DataState: ds, RNG: rngState, TokensSeen: tokensSeen, SamplesSeen: samplesSeen,
			LastLoss: loss, Threads: runtime.GOMAXPROCS(0), BLASThreads: os.Getenv("OPENBLAS_NUM_THREADS")}
		st.ElapsedS = elapsedBefore
		st.Optimizer.Name, st.Optimizer.Beta1, st.Optimizer.Beta2, st.Optimizer.Eps = "adamw", opt.Beta1, opt.Beta2, opt.Eps
		st.Optimizer.WeightDecay, st.Optimizer.Step, st.Optimizer.MomentsDType = opt.WeightDecay, opt.Step, "F32"
		st.Optimizer.File, st.Optimizer.Params = optimizerFile, len(params)
		return st, nil
	}
	save := func(step int, loss float64) error {
		st, err := state(step, loss)
		if err != nil {
			return err
		}
		dir, err := writer.save(st, opt)
		if err != nil {
			return err
		}
		lastCheckpoint = dir
		res.Checkpoint = dir
		return nil
	}

	runStart := time.Now()
	window := struct {
		t0              time.Time
		tokens, samples int64
		wait            time.Duration
		steps           int
	}{t0: time.Now()}
	grads := make([][]float32, len(params))
	for step := start; step < cfg.Steps; step++ {
		if err := ctx.Err(); err != nil {
			prog.done()
			if o.SaveOnCancel && step > start {
				if err := save(step, res.FinalLoss); err != nil {
					return res, err
				}
				fmt.Fprintf(logw, "interrupted: checkpoint %s written\n", lastCheckpoint)
			}
			return res, err
		}
		for i := range acc {
			clear(acc[i])
		}
		var lossSum float64
		for micro := 0; micro < cfg.GradAccum; micro++ {
			t0 := time.Now()
			batch, err := stream.Next(ctx)
			window.wait += time.Since(t0)
			if err != nil {
				prog.done()
				if ctx.Err() != nil {
					return res, ctx.Err()
				}
				return res, fmt.Errorf("train: step %d: data: %w", step+1, err)
			}
			lay, err := plan(m, batch, cfg.SeqBucket, maxLen)
			if err == nil {
				err = checkLabels(batch, o.Allowed)
			}
			if err != nil {
				prog.done()
				return res, fmt.Errorf("train: step %d: %w", step+1, err)
			}
			sg, err := cache.get(lay.Shape, func() (*stepGraph, error) {
				return buildGraph(m, names, lay.Shape, trainable, cfg.ActivationCheckpointing)
			})
			if err != nil {
				prog.done()
				return res, fmt.Errorf("train: step %d: building the graph for %v: %w", step+1, lay.Shape, err)
			}
			sg.fill(m, batch)
			loss, err := sg.run(cache.executor())
			if err != nil {
				prog.done()
				return res, fmt.Errorf("train: step %d: forward/backward: %w", step+1, err)
			}
			lossSum += loss
			window.tokens += int64(lay.Tokens)
			window.samples += int64(len(batch.Samples))
			tokensSeen += int64(lay.Tokens)
			samplesSeen += int64(len(batch.Samples))
			if acc == nil {
				clear(grads)
				for i, t := range sg.Params {
					if grads[tensorIndex[t]], err = sg.grad(i); err != nil {
						return res, fmt.Errorf("train: step %d: %w", step+1, err)
					}
				}
				continue
			}
			for i, t := range sg.Params {
				g, err := sg.grad(i)
				if err != nil {
					return res, fmt.Errorf("train: step %d: %w", step+1, err)
				}
				dst := acc[tensorIndex[t]]
				for j, v := range g {
					dst[j] += v
				}
			}
		}
		if acc != nil {
			copy(grads, acc)
		}
		loss := lossSum / float64(cfg.GradAccum)
		scale := 1 / float64(cfg.GradAccum)
		norm := GradNorm(grads) * scale
		if math.IsNaN(loss) || math.IsInf(loss, 0) || math.IsNaN(norm) || math.IsInf(norm, 0) {
			prog.done()
			where := "no checkpoint was written yet"
			if lastCheckpoint != "" {
				where = "the last good checkpoint is " + lastCheckpoint
			}
			return res, fmt.Errorf("train: step %d: loss %v, gradient norm %v: %w; stopped before updating the weights (%s; lower the learning rate or check the data)",
				step+1, loss, norm, ErrNonFinite, where)
		}
		lr := sched.LR(step)
		if err := opt.Update(grads, lr, scale*ClipCoef(norm, cfg.Optimizer.MaxGradNorm)); err != nil {
			return res, fmt.Errorf("train: step %d: %w", step+1, err)
		}
		res.Losses = append(res.Losses, loss)
		res.FinalLoss = loss
		res.Steps = step + 1
		window.steps++
		if o.afterStep != nil {
			if err := o.afterStep(step+1, loss, grads); err != nil {
				return res, err
			}
		}
		done := step + 1
		now := time.Now()
		elapsed := elapsedBefore + now.Sub(runStart).Seconds()
		if done%cfg.LogEvery == 0 || done == cfg.Steps {
			dt := now.Sub(window.t0).Seconds()
			rec := Metric{Step: done, Loss: loss, LR: lr, GradNorm: norm,
				TokensPerS: float64(window.tokens) / dt, SamplesPerS: float64(window.samples) / dt,
				DataWaitMS: float64(window.wait.Microseconds()) / 1000 / float64(window.steps),
				StepMS:     dt * 1000 / float64(window.steps), ElapsedS: elapsed, Tokens: tokensSeen}
			if err := metrics.Write(rec); err != nil {
				return res, fmt.Errorf("train: %w", err)
			}
			prog.update(rec)
			window.t0, window.tokens, window.samples, window.wait, window.steps = now, 0, 0, 0, 0
		} else {
			prog.tick(done)
		}
		if !o.NoCheckpoint && ((cfg.Checkpoint.Every > 0 && done%cfg.Checkpoint.Every == 0) || done == cfg.Steps) {
			elapsedBefore, runStart = elapsed, now
			if err := save(done, loss); err != nil {
				prog.done()
				return res, err
			}
		}
	}
	prog.done()
	res.GraphBuilds = cache.builds
	res.Largest, res.ArenaBytes, res.CompileTime = cache.largest, cache.arena, cache.compile
	if res.Steps == 0 {
		res.Steps = start
	}
	if !o.NoPlot {
		if err := PlotRun(o.OutDir); err != nil {
			fmt.Fprintf(logw, "warning: plot: %v\n", err)
		}
	}
	return res, nil
}
