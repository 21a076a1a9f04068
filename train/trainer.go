// Package train is the training engine of magma pretrain / finetune:
// batched forward and backward through the Gorgonia graph of the model,
// AdamW with decoupled weight decay, constant and cosine schedules with
// warmup, global-norm clipping, gradient accumulation, trainable-part
// selection, NaN/Inf detection, atomic checkpoints that resume exactly,
// metrics.jsonl, a progress display and loss/lr plots; under an MPI
// launcher, data parallelism with exact one-process semantics and a ZeRO-1
// sharded optimizer (dataparallel.go, over the binding in train/dist).
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
	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/model"
	"github.com/magma-go/magma/model/ckpt"
	"github.com/magma-go/magma/nn"
	"github.com/magma-go/magma/train/dist"
	"gorgonia.org/tensor"
)

// StreamOpener opens the data stream: state nil starts from the beginning
// (for the seed), otherwise it continues from a data.Stream.State().
type StreamOpener func(state []byte) (data.Stream, error)

// Options configure Run.
type Options struct {
	Config *Config
	// Model holds the initial weights (updated in place); the trainer's
	// executor runs with its options (Magma.Kernels).
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
	// MaxGraphs bounds the compiled-graph cache (0: 16). Cached programs hold
	// no buffers (they share the trainer's one arena), so a cache larger than
	// the shapes a run meets costs only their graphs; the default pretrain
	// meets 11.
	MaxGraphs int
	// Adapters are the tensors trained with trainable: lora. Nil: Run
	// attaches fresh LoRA adapters from the recipe's lora: section (seeded
	// by its seed) to Model, where they stay after Run (MergeLoRA folds
	// them in).
	Adapters Adapters

	// Hooks are called at fixed points of the run (all optional).
	Hooks Hooks

	// Comm is the job's communicator when MPI started several processes
	// (nil or one rank: a single process): data parallelism with a sharded
	// optimizer, see dataparallel.go. Data must then open rank Comm.Rank()'s
	// slice of the global batch (OpenMixture with the Comm). Only rank 0
	// logs, writes metrics, plots and checkpoints.
	Comm *dist.Comm
	// BucketBytes is the size of the gradient buckets reduced while
	// backward runs (0: DefaultBucketBytes).
	BucketBytes int

	// beforeRename and removeOld are test hooks (see checkpointWriter).
	beforeRename func(tmp string) error
	removeOld    func(path string) error
}

// Hooks let a command add to a run without copying the engine: an error
// returned by a hook stops the run with that error.
type Hooks struct {
	// OnStart is called once the trainable parameters are known (adapters
	// attached), before the first update: what the run trains.
	OnStart func(StartInfo)
	// OnStep is called after every update's bookkeeping.
	OnStep func(StepInfo) error
	// OnCheckpoint is called with the directory of every checkpoint being
	// written, before it is published: files written there become part of
	// the checkpoint, atomically (e.g. a dataset's action statistics).
	OnCheckpoint func(dir string) error
	// OnEnd is called once when the run ends, with its result and error
	// (err is nil after the last step); it returns the run's error.
	OnEnd func(res *Result, err error) error
}

// StartInfo is what Hooks.OnStart reports.
type StartInfo struct {
	Trainable int64   // parameters the optimizer updates (adapters only with lora)
	Total     int64   // parameters of the model (adapters included)
	LR        float64 // peak learning rate of the schedule
	Schedule  string
}

// StepInfo describes one finished update.
type StepInfo struct {
	Step     int // 1-based
	Loss     float64
	LR       float64
	GradNorm float64
	Grads    [][]float32 // aligned with the trained parameters; valid during the call (nil in a data-parallel job, where a rank holds only its shard of the summed gradient)
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
	// Dist is where the steps spent their time in a data-parallel job
	// (nil for one process).
	Dist *DistTimes
}

// ErrNonFinite is wrapped by the error Run returns when the loss or the
// gradient norm is NaN or infinite.
var ErrNonFinite = errors.New("non-finite loss or gradient")

// trainableParams lists the model's tensors in checkpoint order with the
// ones to train for the setting.
func trainableParams(m *model.Magma, setting string) ([]*optSlot, map[*tensor.Dense]bool, error) {
	var ps []*optSlot
	set := map[*tensor.Dense]bool{}
	all, err := nn.Parameters(m, "")
	if err != nil {
		return nil, nil, err
	}
	for _, p := range all {
		train := true
		switch setting {
		case TrainVisionFrozen:
			train = !strings.HasPrefix(p.Name, "vision_tower.")
		case TrainProjector:
			train = strings.HasPrefix(p.Name, "multi_modal_projector.")
		}
		if !train {
			continue
		}
		d, ok := p.T.Data().([]float32)
		if !ok && kernels.IsHalf(p.T.Dtype()) {
			return nil, nil, kernels.FrozenHalfError(p.Name, p.T.Dtype())
		}
		if !ok {
			return nil, nil, fmt.Errorf("parameter %s is %v; training needs float32", p.Name, p.T.Dtype())
		}
		if kernels.IsReadOnly(p.T) {
			return nil, nil, fmt.Errorf("parameter %s is a read-only view of a mapped checkpoint; training needs a writable copy (model.LoadOptions.Writable)", p.Name)
		}
		// Biases, norm scales, layer scales and the row separator declare
		// themselves exempt from weight decay (nn tags "norm", "nodecay").
		ps = append(ps, &optSlot{Name: p.Name, Data: d, Decay: !p.NoDecay})
		set[p.T] = true
	}
	return ps, set, nil
}

// selectParams lists the parameters to train and their tensors (aligned):
// the model's for the setting, or the adapters' for lora.
func selectParams(m *model.Magma, setting string, ad Adapters) ([]*optSlot, []*tensor.Dense, error) {
	if setting != TrainLoRA {
		ps, _, err := trainableParams(m, setting)
		if err != nil {
			return nil, nil, err
		}
		var ts []*tensor.Dense
		var all []nn.Param
		all, err = nn.Parameters(m, "")
		for _, p := range all {
			if len(ts) < len(ps) && ps[len(ts)].Name == p.Name {
				ts = append(ts, p.T)
			}
		}
		if err == nil && len(ts) != len(ps) {
			err = fmt.Errorf("parameter list changed while walking the model")
		}
		return ps, ts, err
	}
	var ps []*optSlot
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
		ps = append(ps, &optSlot{Name: a.Name, Data: d, Decay: true})
		ts = append(ts, a.T)
	}
	if len(ps) == 0 {
		return nil, nil, errors.New("trainable: lora, but the model has no adapter attached")
	}
	return ps, ts, nil
}

// Run trains until Config.Steps updates are done (or ctx is cancelled).
func Run(ctx context.Context, o Options) (res *Result, err error) {
	if o.Hooks.OnEnd != nil {
		defer func() { err = o.Hooks.OnEnd(res, err) }()
	}
	r, err := newRun(o)
	if multi(o.Comm) {
		// Every start-up error is agreed on, so all ranks stop together.
		if err = agree(o.Comm, err); err == nil {
			err = r.dp.checkSame(r)
		}
	}
	if err != nil {
		return nil, err
	}
	err = r.restore()
	if r.dp != nil {
		err = agree(o.Comm, err)
	}
	if err != nil {
		return nil, err
	}
	err = r.open()
	if r.dp != nil {
		if err = agree(o.Comm, err); err == nil {
			r.res.Dist = &r.dp.times
			r.dp.times.OptimizerBytes, err = r.dp.optimizerBytes()
		}
	}
	if err != nil {
		return nil, err
	}
	defer r.close()
	for step := r.start; step < r.cfg.Steps; step++ {
		if err := r.step(ctx, step); err != nil {
			r.prog.done()
			return r.res, err
		}
	}
	return r.finish(), nil
}

// run is the state of one Run call.
type run struct {
	o      Options
	cfg    *Config
	m      *model.Magma
	logw   io.Writer
	maxLen int

	adapters    Adapters
	params      []*optSlot
	tensorIndex map[*tensor.Dense]int
	trainable   map[*tensor.Dense]bool
	opt         *AdamW
	sched       Schedule
	pcg         *rand.PCG
	writer      *checkpointWriter

	dp  *dataParallel // nil: one process
	res *Result

	start                   int
	dataState               []byte
	tokensSeen, samplesSeen int64
	elapsedBefore           float64
	lastCheckpoint          string

	metrics *metricsWriter
	stream  data.Stream
	names   map[*tensor.Dense]string
	cache   *graphCache
	acc     [][]float32 // gradient accumulation buffers (nil without accumulation)
	grads   [][]float32
	prog    *progress

	runStart time.Time
	window   struct {
		t0              time.Time
		tokens, samples int64
		wait            time.Duration
		steps           int
	}
}

// newRun checks the options and sets up the parameters, optimizer,
// schedule and checkpoint writer.
func newRun(o Options) (*run, error) {
	cfg, m := o.Config, o.Model
	if cfg == nil || m == nil || o.Data == nil || o.OutDir == "" {
		return nil, errors.New("train: Config, Model, Data and OutDir are required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &run{o: o, cfg: cfg, m: m, logw: o.Log, res: &Result{}}
	if r.logw == nil {
		r.logw = os.Stderr
	}
	r.maxLen = cfg.MaxSeqLen
	if r.maxLen == 0 || r.maxLen > m.Config.Text.MaxPositionEmbeddings {
		r.maxLen = m.Config.Text.MaxPositionEmbeddings
	}
	if c := o.Comm; multi(c) {
		if cfg.BatchSize%c.Size() != 0 {
			return nil, fmt.Errorf("train: batch_size %d does not divide over %d ranks (the recipe's batch_size is the global batch; every rank trains on batch_size/N samples)", cfg.BatchSize, c.Size())
		}
		if c.Rank() != 0 {
			r.logw = io.Discard
		}
	}
	if r.writes() {
		if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
			return nil, fmt.Errorf("train: %w", err)
		}
	}
	r.adapters = o.Adapters
	if r.adapters != nil && cfg.Trainable != TrainLoRA {
		return nil, fmt.Errorf("train: Options.Adapters are trained with trainable: lora, the recipe says %q", cfg.Trainable)
	}
	if cfg.Trainable == TrainLoRA && r.adapters == nil {
		var err error
		if r.adapters, err = AttachLoRA(m, cfg.LoRA, cfg.Seed, cfg.Model.InitFrom); err != nil {
			return nil, fmt.Errorf("train: %w", err)
		}
	}
	params, tensors, err := selectParams(m, cfg.Trainable, r.adapters)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	r.params = params
	if o.Hooks.OnStart != nil {
		info := StartInfo{LR: cfg.Optimizer.LR, Schedule: cfg.Schedule.Name}
		for _, p := range params {
			info.Trainable += int64(len(p.Data))
		}
		info.Total, _ = nn.ParamCount(m)
		if r.adapters != nil {
			for _, a := range r.adapters.Tensors() {
				info.Total += int64(a.T.Shape().TotalSize())
			}
		}
		o.Hooks.OnStart(info)
	}
	r.tensorIndex = map[*tensor.Dense]int{}
	r.trainable = map[*tensor.Dense]bool{}
	for i, t := range tensors {
		r.tensorIndex[t] = i
		r.trainable[t] = true
	}
	r.opt = &AdamW{Beta1: cfg.Optimizer.Beta1, Beta2: cfg.Optimizer.Beta2, Eps: cfg.Optimizer.Eps, WeightDecay: cfg.Optimizer.WeightDecay, slots: params}
	r.sched = NewSchedule(cfg.Schedule.Name, cfg.Optimizer.LR, cfg.Steps, cfg.Schedule.WarmupRatio)
	r.pcg = rand.NewPCG(cfg.Seed, 0x747261696e)
	ckRoot := filepath.Join(o.OutDir, checkpointsDir)
	logw := r.logw
	r.writer = &checkpointWriter{root: ckRoot, model: m, adapters: r.adapters, pp: o.Preprocessor, tokenizer: o.Tokenizer,
		keep: cfg.Checkpoint.Keep, onCheckpoint: o.Hooks.OnCheckpoint, beforeRename: o.beforeRename, removeOld: o.removeOld,
		warn: func(f string, a ...any) { fmt.Fprintf(logw, f, a...) }}
	if !r.writes() {
		r.dp = newDataParallel(o.Comm, params, r.opt, o.BucketBytes)
		return r, nil
	}
	if !o.NoCheckpoint {
		if err := checkWritable(ckRoot); err != nil {
			return nil, fmt.Errorf("train: %w", err)
		}
	}
	if err := removeTemps(ckRoot); err != nil {
		return nil, fmt.Errorf("train: removing half-written checkpoints: %w", err)
	}
	if multi(o.Comm) {
		r.dp = newDataParallel(o.Comm, params, r.opt, o.BucketBytes)
	}
	return r, nil
}

// writes reports whether this process writes the run folder (rank 0).
func (r *run) writes() bool { return !multi(r.o.Comm) || r.o.Comm.Rank() == 0 }

// restore continues from the newest checkpoint with --resume (weights,
// optimizer, RNG, data position, counters), or makes sure a fresh run does
// not overwrite one; then it records the recipe in the run folder.
func (r *run) restore() error {
	cfg, o, logw := r.cfg, r.o, r.logw
	ckRoot := r.writer.root
	if o.Resume {
		dir, st, err := r.latestLoadable()
		if err != nil {
			return err
		}
		r.opt.Step = st.Optimizer.Step
		if len(st.RNG) > 0 {
			if err := r.pcg.UnmarshalBinary(st.RNG); err != nil {
				return fmt.Errorf("train: --resume: %s: rng: %w", dir, err)
			}
		}
		r.start, r.dataState = st.Step, st.DataState
		r.tokensSeen, r.samplesSeen, r.elapsedBefore = st.TokensSeen, st.SamplesSeen, st.ElapsedS
		r.lastCheckpoint = dir
		r.res.Resumed = r.start
		if r.dp != nil {
			r.dp.takeMoments(r.opt)
		}
		if st.Threads != runtime.GOMAXPROCS(0) || st.BLASThreads != os.Getenv("OPENBLAS_NUM_THREADS") {
			fmt.Fprintf(logw, "note: checkpoint written with GOMAXPROCS=%d OPENBLAS_NUM_THREADS=%q, now %d %q: the loss curve may differ in the last bits\n",
				st.Threads, st.BLASThreads, runtime.GOMAXPROCS(0), os.Getenv("OPENBLAS_NUM_THREADS"))
		}
		fmt.Fprintf(logw, "resuming from %s (step %d of %d)\n", dir, r.start, cfg.Steps)
	} else if steps, _ := listSteps(ckRoot); len(steps) > 0 {
		return fmt.Errorf("train: %s already holds checkpoints (step %d); pass --resume to continue or choose another --out", ckRoot, steps[len(steps)-1])
	}
	if !r.writes() {
		return nil
	}
	if recipe, err := cfg.Marshal(); err == nil {
		if err := writeFileAtomic(filepath.Join(o.OutDir, "config.yaml"), recipe); err != nil {
			return fmt.Errorf("train: %w", err)
		}
	}
	return nil
}

// latestLoadable loads the newest checkpoint that loads: a truncated
// weights or optimizer file (disk full, copy cut short), a file whose
// checksum differs from the manifest's, or a NaN or infinite weight or
// moment falls back to the previous one, as an unreadable
// trainer_state.json does. A successful load rewrites every weight and
// moment, so a failed attempt leaves nothing behind.
func (r *run) latestLoadable() (string, *TrainerState, error) {
	cfg := r.cfg
	dirs, states, warn := checkpointCandidates(r.o.OutDir)
	if warn != nil {
		fmt.Fprintf(r.logw, "warning: %v\n", warn)
	}
	if len(dirs) == 0 {
		return "", nil, fmt.Errorf("train: --resume: no complete checkpoint in %s", r.writer.root)
	}
	var failed []error
	for i, d := range dirs {
		s := states[i]
		if s.ConfigHash != cfg.Hash() {
			return "", nil, fmt.Errorf("train: --resume: %s was written with a different recipe (config hash %.12s…, now %.12s…); resume with the run's config.yaml", d, s.ConfigHash, cfg.Hash())
		}
		if s.Trainable != cfg.Trainable {
			return "", nil, fmt.Errorf("train: --resume: checkpoint trained %q, recipe says %q", s.Trainable, cfg.Trainable)
		}
		err := verifyCheckpoint(d, func(note string) { fmt.Fprintln(r.logw, note) })
		if err == nil {
			err = loadCheckpoint(d, r.m, r.adapters, r.opt)
		}
		if err == nil {
			err = checkLoadedFinite(d, r.m, r.adapters, r.opt)
		}
		if err == nil {
			return d, s, nil
		}
		failed = append(failed, err)
		if i == len(dirs)-1 {
			return "", nil, fmt.Errorf("train: --resume: no intact checkpoint in %s (%d tried): %w", r.writer.root, len(failed), errors.Join(failed...))
		}
		what := "that does not load"
		if errors.Is(err, ckpt.ErrCorrupt) {
			what = "that is corrupt"
		}
		fmt.Fprintf(r.logw, "warning: skipping checkpoint %s %s (%v); falling back to %s\n", d, what, err, dirs[i+1])
	}
	return "", nil, fmt.Errorf("train: --resume: no complete checkpoint in %s", r.writer.root)
}

// open starts the metrics log and the data stream and prepares the graph
// cache, gradient buffers and progress display.
func (r *run) open() error {
	cfg, o := r.cfg, r.o
	var err error
	if r.writes() {
		if r.metrics, err = openMetrics(filepath.Join(o.OutDir, MetricsFile), r.start); err != nil {
			return fmt.Errorf("train: %w", err)
		}
	}
	if r.stream, err = o.Data(r.dataState); err != nil {
		if r.metrics != nil {
			r.metrics.Close()
			r.metrics = nil
		}
		return fmt.Errorf("train: opening data: %w", err)
	}
	r.names = nn.ParamNames(r.m, "")
	if r.adapters != nil {
		// Stable graph node names for the adapter tensors (PEFT names).
		for _, a := range r.adapters.Tensors() {
			r.names[a.T] = a.Name
		}
	}
	r.cache = &graphCache{max: o.MaxGraphs, kernels: r.m.Kernels()}
	if r.cache.max <= 0 {
		r.cache.max = 16
	}
	if cfg.GradAccum > 1 {
		r.acc = make([][]float32, len(r.params))
		for i, p := range r.params {
			r.acc[i] = make([]float32, len(p.Data))
		}
	}
	r.grads = make([][]float32, len(r.params))
	r.prog = newProgress(r.logw, o.Progress, cfg.Steps, r.start)
	r.runStart = time.Now()
	r.window.t0 = time.Now()
	return nil
}

func (r *run) close() {
	r.cache.close()
	r.stream.Close()
	if r.metrics != nil {
		r.metrics.Close()
	}
}

// state is the trainer state to checkpoint after step updates.
func (r *run) state(step int, loss float64, ds []byte) *TrainerState {
	cfg, opt := r.cfg, r.opt
	rngState, _ := r.pcg.MarshalBinary()
	st := &TrainerState{Format: stateFormat, Step: step, TotalSteps: cfg.Steps, Seed: cfg.Seed, ConfigHash: cfg.Hash(),
		Schedule: r.sched, Trainable: cfg.Trainable, DataState: ds, RNG: rngState, TokensSeen: r.tokensSeen, SamplesSeen: r.samplesSeen,
		LastLoss: loss, Threads: runtime.GOMAXPROCS(0), BLASThreads: os.Getenv("OPENBLAS_NUM_THREADS")}
	st.ElapsedS = r.elapsedBefore
	st.Optimizer.Name, st.Optimizer.Beta1, st.Optimizer.Beta2, st.Optimizer.Eps = "adamw", opt.Beta1, opt.Beta2, opt.Eps
	st.Optimizer.WeightDecay, st.Optimizer.Step, st.Optimizer.MomentsDType = opt.WeightDecay, opt.Step, "F32"
	st.Optimizer.File, st.Optimizer.Params = optimizerFile, len(r.params)
	return st
}

// save writes the checkpoint of step (in a data-parallel job: a
// collective; rank 0 writes what the others send).
func (r *run) save(step int, loss float64) error {
	ds, err := r.stream.State()
	return r.saveState(step, loss, ds, err)
}

// saveState is save with the data stream's state given (ds, or the error
// reading it).
func (r *run) saveState(step int, loss float64, ds []byte, err error) error {
	if err != nil {
		err = fmt.Errorf("data stream state: %w", err)
	}
	if r.dp != nil {
		return r.saveDP(step, loss, ds, err)
	}
	if err != nil {
		return err
	}
	dir, err := r.writer.save(r.state(step, loss, ds), r.opt)
	if err != nil {
		return err
	}
	r.lastCheckpoint = dir
	r.res.Checkpoint = dir
	return nil
}

// errDataCancelled: a stop signal cut the wait for a batch short in the
// middle of an update step (in a data-parallel job: on some rank).
var errDataCancelled = errors.New("train: stopped while waiting for data")

// stop ends the run at step (completed updates) on a stop signal: with
// SaveOnCancel it writes the checkpoint of step with data stream state ds,
// then returns the context's error (agreed by every rank of a job).
func (r *run) stop(ctx context.Context, step int, ds []byte, dsErr error) error {
	r.prog.done()
	if r.o.SaveOnCancel && step > r.start {
		if err := r.saveState(step, r.res.FinalLoss, ds, dsErr); err != nil {
			return err
		}
		fmt.Fprintf(r.logw, "interrupted: checkpoint %s written\n", r.lastCheckpoint)
	}
	err := ctx.Err()
	if err == nil {
		err = context.Canceled // another rank saw the signal
	}
	if r.dp != nil {
		return &AgreedError{Err: err}
	}
	return err
}

// step runs update step+1: the micro-batches' forward and backward, the
// non-finite check, the AdamW update, hooks, metrics and checkpoints.
func (r *run) step(ctx context.Context, step int) error {
	cfg := r.cfg
	cancelled := ctx.Err() != nil
	if r.dp != nil {
		// Every rank stops at the same step, whichever saw Ctrl-C.
		var err error
		if cancelled, err = r.dp.agreeCancel(ctx); err != nil {
			return err
		}
	}
	if cancelled {
		ds, err := r.stream.State()
		return r.stop(ctx, step, ds, err)
	}
	// What a stop signal arriving while this step waits for data rolls
	// back to: the step has not changed the weights, so the checkpoint is
	// the state before it (the batches it has read are read again on resume).
	ds0, dsErr0 := r.stream.State()
	tokens0, samples0 := r.tokensSeen, r.samplesSeen
	stopped := func(err error) error {
		if !errors.Is(err, errDataCancelled) {
			return err
		}
		r.tokensSeen, r.samplesSeen = tokens0, samples0
		return r.stop(ctx, step, ds0, dsErr0)
	}
	scale := 1 / float64(cfg.GradAccum)
	var loss, norm float64
	grads := r.grads
	if r.dp != nil {
		var sq float64
		var err error
		if loss, sq, err = r.dp.gradients(ctx, r, step); err != nil {
			return stopped(err)
		}
		norm, grads = math.Sqrt(sq)*scale, nil
	} else {
		var err error
		if loss, _, err = r.gradients(ctx, step); err != nil {
			return stopped(err)
		}
		norm = GradNorm(r.grads) * scale
	}
	if !finite(loss) || !finite(norm) {
		where := "no checkpoint was written yet"
		if r.lastCheckpoint != "" {
			where = "the last good checkpoint is " + r.lastCheckpoint
		}
		err := fmt.Errorf("train: step %d: loss %v, gradient norm %v: %w; stopped before updating the weights (%s; lower the learning rate or check the data)",
			step+1, loss, norm, ErrNonFinite, where)
		if r.dp != nil {
			return &AgreedError{Err: err} // global loss and norm: every rank sees it
		}
		return err
	}
	lr := r.sched.LR(step)
	clip := scale * ClipCoef(norm, cfg.Optimizer.MaxGradNorm)
	if r.dp != nil {
		if err := r.dp.update(r.params, lr, clip); err != nil {
			return fmt.Errorf("train: step %d: %w", step+1, err)
		}
		r.opt.Step = r.dp.opt.Step
	} else if err := r.opt.Update(r.grads, lr, clip); err != nil {
		return fmt.Errorf("train: step %d: %w", step+1, err)
	}
	r.res.Losses = append(r.res.Losses, loss)
	r.res.FinalLoss = loss
	r.res.Steps = step + 1
	r.window.steps++
	if h := r.o.Hooks.OnStep; h != nil {
		if err := h(StepInfo{Step: step + 1, Loss: loss, LR: lr, GradNorm: norm, Grads: grads}); err != nil {
			return err
		}
	}
	return r.record(step+1, loss, lr, norm)
}

// gradients runs the micro-batches of an update and leaves the (summed)
// gradients in r.grads. Without accumulation the gradients are the
// program's outputs in the executor's arena, valid until it runs again.
func (r *run) gradients(ctx context.Context, step int) (float64, []*stepGraph, error) {
	cfg := r.cfg
	for i := range r.acc {
		clear(r.acc[i])
	}
	var lossSum float64
	var graphs []*stepGraph
	for micro := 0; micro < cfg.GradAccum; micro++ {
		t0 := time.Now()
		batch, err := r.stream.Next(ctx)
		r.window.wait += time.Since(t0)
		if err != nil {
			if ctx.Err() != nil {
				return 0, nil, errDataCancelled
			}
			return 0, nil, fmt.Errorf("train: step %d: data: %w", step+1, err)
		}
		lay, err := plan(r.m, batch, cfg.SeqBucket, r.maxLen)
		if err == nil {
			err = checkLabels(batch, r.o.Allowed)
		}
		if err != nil {
			return 0, nil, fmt.Errorf("train: step %d: %w", step+1, err)
		}
		sg, err := r.cache.get(lay.Shape, func() (*stepGraph, error) {
			return buildGraph(r.m, r.names, lay.Shape, r.trainable, cfg.ActivationCheckpointing)
		})
		if err != nil {
			return 0, nil, fmt.Errorf("train: step %d: building the graph for %v: %w", step+1, lay.Shape, err)
		}
		sg.fill(r.m, batch)
		exec, err := r.cache.executor()
		if err != nil {
			return 0, nil, fmt.Errorf("train: step %d: %w", step+1, err)
		}
		loss, err := sg.run(exec)
		if err != nil {
			return 0, nil, fmt.Errorf("train: step %d: forward/backward: %w", step+1, err)
		}
		lossSum += loss
		r.window.tokens += int64(lay.Tokens)
		r.window.samples += int64(len(batch.Samples))
		r.tokensSeen += int64(lay.Tokens)
		r.samplesSeen += int64(len(batch.Samples))
		if r.acc == nil {
			clear(r.grads)
			for i, t := range sg.Params {
				if r.grads[r.tensorIndex[t]], err = sg.grad(i); err != nil {
					return 0, nil, fmt.Errorf("train: step %d: %w", step+1, err)
				}
			}
			graphs = append(graphs, sg)
			continue
		}
		for i, t := range sg.Params {
			g, err := sg.grad(i)
			if err != nil {
				return 0, nil, fmt.Errorf("train: step %d: %w", step+1, err)
			}
			dst := r.acc[r.tensorIndex[t]]
			for j, v := range g {
				dst[j] += v
			}
		}
	}
	if r.acc != nil {
		copy(r.grads, r.acc)
	}
	return lossSum / float64(cfg.GradAccum), graphs, nil
}

// record logs the metrics of update done (every LogEvery and at the end)
// and writes the checkpoints the recipe asks for.
func (r *run) record(done int, loss, lr, norm float64) error {
	cfg := r.cfg
	now := time.Now()
	elapsed := r.elapsedBefore + now.Sub(r.runStart).Seconds()
	if done%cfg.LogEvery == 0 || done == cfg.Steps {
		w := &r.window
		dt := now.Sub(w.t0).Seconds()
		rec := Metric{Step: done, Loss: loss, LR: lr, GradNorm: norm,
			TokensPerS: float64(w.tokens) / dt, SamplesPerS: float64(w.samples) / dt,
			DataWaitMS: float64(w.wait.Microseconds()) / 1000 / float64(w.steps),
			StepMS:     dt * 1000 / float64(w.steps), ElapsedS: elapsed, Tokens: r.tokensSeen}
		if r.metrics != nil {
			if err := r.metrics.Write(rec); err != nil {
				return fmt.Errorf("train: %w", err)
			}
		}
		r.prog.update(rec)
		w.t0, w.tokens, w.samples, w.wait, w.steps = now, 0, 0, 0, 0
	} else {
		r.prog.tick(done)
	}
	if !r.o.NoCheckpoint && ((cfg.Checkpoint.Every > 0 && done%cfg.Checkpoint.Every == 0) || done == cfg.Steps) {
		r.elapsedBefore, r.runStart = elapsed, now
		if err := r.save(done, loss); err != nil {
			return err
		}
	}
	return nil
}

// finish closes the progress display, fills in the result and draws the plot.
func (r *run) finish() *Result {
	r.prog.done()
	r.res.GraphBuilds = r.cache.builds
	r.res.Largest, r.res.ArenaBytes, r.res.CompileTime = r.cache.largest, r.cache.arena, r.cache.compile
	if r.res.Steps == 0 {
		r.res.Steps = r.start
	}
	if !r.o.NoPlot && r.writes() {
		if err := PlotRun(r.o.OutDir); err != nil {
			fmt.Fprintf(r.logw, "warning: plot: %v\n", err)
		}
	}
	return r.res
}
