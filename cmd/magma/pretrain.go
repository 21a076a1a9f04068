package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/magma-go/magma/llm/tokenizer"
	"github.com/magma-go/magma/train"
	"github.com/magma-go/magma/train/dist"
	"github.com/spf13/cobra"
)

// runFlags are the flags pretrain and finetune share.
type runFlags struct {
	out      string
	maxSteps int
	resume   bool
	verify   bool
	seed     uint64
	tokPath  string
	bucketMB float64
}

func (f *runFlags) register(cmd *cobra.Command, defaultOut string) {
	fl := cmd.Flags()
	fl.StringVar(&f.out, "out", defaultOut, "run folder (metrics.jsonl, checkpoints/, curves.png)")
	maxHelp := "optimizer updates in total, the schedule's length (0: the recipe's steps)"
	if fl.Lookup("steps") != nil {
		maxHelp = "the same setting as --steps (for scripts shared with pretrain); giving both with different values is an error"
	}
	fl.IntVar(&f.maxSteps, "max-steps", 0, maxHelp)
	// Checked before the command reads any data or checkpoint.
	cmd.PreRunE = func(cmd *cobra.Command, _ []string) error { return f.checkSteps(cmd) }
	fl.BoolVar(&f.resume, "resume", false, "continue from the newest intact checkpoint in --out (each is checked against the checksums of its manifest.json; a damaged one is named and skipped)")
	fl.BoolVar(&f.verify, "verify", false, "check the starting checkpoint (--model/--init, model.init_from) before training: its files against its manifest.json checksums, its weights for NaN and infinite values")
	fl.Uint64Var(&f.seed, "seed", 0, "seed for initialisation and data order (overrides the recipe)")
	fl.StringVar(&f.tokPath, "tokenizer", "", "tokenizer directory (default: the model's, else assets/tokenizer/magma)")
	fl.Float64Var(&f.bucketMB, "bucket-mb", float64(train.DefaultBucketBytes)/(1<<20), "under mpirun: size of the gradient buckets reduced while backward runs (MiB)")
}

// apply puts the command-line overrides into the recipe.
func (f *runFlags) apply(cmd *cobra.Command, cfg *train.Config) error {
	if err := f.checkSteps(cmd); err != nil {
		return err
	}
	if !(f.bucketMB > 0) || f.bucketMB > 1024 {
		return fmt.Errorf("--bucket-mb %g must be in (0, 1024]", f.bucketMB)
	}
	if f.maxSteps > 0 {
		cfg.Steps = f.maxSteps
	}
	cfg.Model.Verify = f.verify
	if cmd.Flags().Changed("seed") {
		cfg.Seed = f.seed
	}
	if !f.resume && !cmd.Flags().Changed("out") {
		// The documented rule for running the same command twice: the
		// default folder is never overwritten; a new run goes to the next
		// free DEFAULT-2, -3, ... (an explicit --out that holds checkpoints
		// is refused instead, and --resume continues it).
		out := nextFreeRunDir(f.out)
		if out != f.out {
			fmt.Fprintf(cmd.ErrOrStderr(), "%s already holds a run; this one goes to %s (continue the old one with --resume, or choose with --out)\n", f.out, out)
			f.out = out
		}
	}
	return cfg.Validate()
}

// checkSteps refuses a negative --max-steps and, on the finetune commands,
// --steps and --max-steps with different values: they are one setting
// (the optimizer updates in total), so neither may silently win.
func (f *runFlags) checkSteps(cmd *cobra.Command) error {
	if f.maxSteps < 0 {
		return fmt.Errorf("--max-steps %d must be positive", f.maxSteps)
	}
	fl := cmd.Flags()
	if fl.Lookup("steps") == nil || !fl.Changed("steps") || !fl.Changed("max-steps") {
		return nil
	}
	if steps, err := fl.GetInt("steps"); err == nil && steps != f.maxSteps {
		return fmt.Errorf("--steps %d and --max-steps %d disagree: both set the optimizer updates in total; give one", steps, f.maxSteps)
	}
	return nil
}

// checkRunFolder is checkOutDir for a training run: rank 0 alone writes
// the run folder, so it alone checks it, and under MPI (c, the job joined)
// every rank returns its verdict as one agreed error (printed once by
// rank 0).
func checkRunFolder(c *dist.Comm, dir string) error {
	var err error
	if rankZero(c) {
		err = checkOutDir(dir)
	}
	if c == nil || c.Size() < 2 {
		return err
	}
	if e := c.Agree(err); e != nil {
		return &train.AgreedError{Err: e}
	}
	return nil
}

// checkOutDir makes sure dir is (or can be made) a folder this process can
// write: it creates it and a probe file inside, removing the probe. The
// commands call it once the recipe is checked and before any data is
// prepared or any model loaded, so that a folder under /proc, under a file
// or read-only fails at once.
func checkOutDir(dir string) error {
	if dir == "" {
		return errors.New("--out: empty path")
	}
	for p := filepath.Clean(dir); ; p = filepath.Dir(p) {
		if st, err := os.Stat(p); err == nil {
			if !st.IsDir() {
				return fmt.Errorf("--out %s: %s is a file, not a folder", dir, p)
			}
			break
		}
		if q := filepath.Dir(p); q == p {
			break
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("--out %s: cannot create the run folder: %w", dir, err)
	}
	probe, err := os.CreateTemp(dir, ".magma-write-check-*")
	if err != nil {
		return fmt.Errorf("--out %s: cannot write in the run folder: %w", dir, err)
	}
	name := probe.Name()
	probe.Close()
	if err := os.Remove(name); err != nil {
		return fmt.Errorf("--out %s: %w", dir, err)
	}
	return nil
}

// printVerified reports what --verify checked of the starting checkpoint.
func printVerified(cmd *cobra.Command, cfg *train.Config) {
	if v := cfg.Model.Verified; v != nil {
		fmt.Fprintln(cmd.ErrOrStderr(), v)
	}
}

// bucketBytes is --bucket-mb in bytes.
func (f *runFlags) bucketBytes() int { return int(f.bucketMB * (1 << 20)) }

// nextFreeRunDir returns dir when it holds no checkpoints, else the first
// dir-N (N = 2, 3, ...) that holds none.
func nextFreeRunDir(dir string) string {
	used := func(d string) bool {
		entries, err := os.ReadDir(filepath.Join(d, "checkpoints"))
		return err == nil && len(entries) > 0
	}
	if !used(dir) {
		return dir
	}
	for n := 2; ; n++ {
		if d := fmt.Sprintf("%s-%d", dir, n); !used(d) {
			return d
		}
	}
}

// resolveTokenizer finds the tokenizer directory: the flag, the model's
// own (candidate, may be empty or relative to the repository root), else
// the repository's magma tokenizer.
func resolveTokenizer(flag, candidate string) (string, *tokenizer.Tokenizer, error) {
	dir := flag
	if dir == "" && candidate != "" {
		if _, err := os.Stat(filepath.Join(candidate, "tokenizer.json")); err == nil {
			dir = candidate
		}
	}
	if dir == "" {
		var err error
		if dir, err = tokenizer.Locate("magma"); err != nil {
			return "", nil, fmt.Errorf("no tokenizer: %w (run `make tokenizer` or pass --tokenizer)", err)
		}
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		return "", nil, err
	}
	return dir, tok, nil
}

// trainRecipe runs a recipe whose data: section is a mixture: job j
// joined, flags applied, model initialised, tokenizer resolved and checked
// against the model's vocabulary, data stream opened, training run.
func (f *runFlags) trainRecipe(cmd *cobra.Command, j *job, cfg *train.Config) error {
	comm, err := j.join()
	if err != nil {
		return err
	}
	if err := f.apply(cmd, cfg); err != nil {
		return err
	}
	mc, err := cfg.MixtureConfig()
	if err != nil {
		return err
	}
	if err := checkRunFolder(comm, f.out); err != nil {
		return err
	}
	m, pp, tokDir, err := train.InitModel(cfg)
	if err != nil {
		return err
	}
	printVerified(cmd, cfg)
	tokDir, tok, err := resolveTokenizer(f.tokPath, tokDir)
	if err != nil {
		return err
	}
	if v := tok.VocabSize(); v > m.Config.Text.VocabSize {
		return fmt.Errorf("tokenizer %s has %d tokens, the model's vocab_size is %d", tokDir, v, m.Config.Text.VocabSize)
	}
	if rankZero(comm) {
		fmt.Fprintf(cmd.ErrOrStderr(), "preparing data (%s)...\n", cfg.Source)
		mc.Progress = cmd.ErrOrStderr()
	}
	open, err := train.OpenMixtureComm(cfg, mc, tok, pp, f.out, comm)
	if err != nil {
		return err
	}
	return runTraining(cmd, train.Options{Config: cfg, Model: m, Preprocessor: pp, Tokenizer: tokDir, Allowed: tok.IDMask(m.Config.Text.VocabSize), Data: open, OutDir: f.out, Resume: f.resume, Comm: comm, BucketBytes: f.bucketBytes()})
}

// runTraining runs the engine with Ctrl-C saving a checkpoint, and prints
// the summary (rank 0 of o.Comm).
func runTraining(cmd *cobra.Command, o train.Options) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGUSR1)
	defer stop()
	o.SaveOnCancel = true
	o.Log = cmd.ErrOrStderr()
	w := cmd.OutOrStdout()
	if !rankZero(o.Comm) {
		w = io.Discard
	}
	o.Hooks.OnStart = func(si train.StartInfo) {
		fmt.Fprintf(w, "training %d of %d parameters (%s), lr %g (%s), for %d updates of %d×%d samples into %s\n",
			si.Trainable, si.Total, o.Config.Trainable, si.LR, si.Schedule, o.Config.Steps, o.Config.BatchSize, o.Config.GradAccum, o.OutDir)
	}
	res, err := train.Run(ctx, o)
	if err == nil && res.Dist != nil {
		printDist(w, o, res.Dist)
	}
	if err != nil {
		if errors.Is(err, context.Canceled) {
			err = fmt.Errorf("interrupted; continue with --resume --out %s", o.OutDir)
			if o.Comm != nil && o.Comm.Size() > 1 {
				err = &train.AgreedError{Err: err} // every rank stopped at the same step
			}
		}
		return err
	}
	if len(res.Losses) > 0 {
		fmt.Fprintf(w, "done: %d updates, loss %.4f -> %.4f, %d graph shapes compiled (%.1f s)\n", res.Steps, res.Losses[0], res.FinalLoss, res.GraphBuilds, res.CompileTime.Seconds())
		fmt.Fprintf(w, "largest plan: %s\n", res.Largest)
	} else {
		fmt.Fprintf(w, "done: nothing to do (already at step %d)\n", res.Steps)
	}
	if res.Checkpoint != "" {
		fmt.Fprintf(w, "checkpoint: %s\n", res.Checkpoint)
	}
	fmt.Fprintf(w, "metrics: %s\nplot: %s\n", filepath.Join(o.OutDir, train.MetricsFile), filepath.Join(o.OutDir, train.PlotFile))
	return nil
}

func newPretrainCmd(j *job) *cobra.Command {
	var (
		config string
		f      runFlags
	)
	cmd := &cobra.Command{
		Use:   "pretrain",
		Short: "Pretrain on a multimodal data mixture (default: the tiny model on synthetic data)",
		Long: `Pretrain runs the training engine on the recipe's data mixture. Without
--config it runs the embedded configs/pretrain/tiny.yaml: the tiny model,
randomly initialised, on a generated synthetic mixture (UI screenshots with
SoM, videos and robot episodes with SoM+ToM, image-text pairs); a few
minutes on a 2-core CPU.

The run folder gets metrics.jsonl (one JSON object per logged update),
checkpoints/step-N (Hugging Face layout + trainer_state.json +
optimizer.safetensors, written atomically; the recipe's checkpoint.keep
newest are kept, ` + fmt.Sprint(recipeDefaults("").Checkpoint.Keep) + ` in the default recipe, 0 keeps all) and
curves.png. --resume continues from the newest complete checkpoint so that
the loss curve equals the uninterrupted run's (same seed and GOMAXPROCS).

--max-steps N sets the run's optimizer updates in total (the recipe's
steps:), and the learning-rate schedule is laid out over N.`,
		Example: `  magma pretrain
  magma pretrain --config configs/pretrain/tiny.yaml --out runs/tiny --max-steps 50
  magma pretrain --out runs/tiny --resume`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := train.LoadConfig(config)
			if err != nil {
				return err
			}
			return f.trainRecipe(cmd, j, cfg)
		},
	}
	cmd.Flags().StringVar(&config, "config", "", "recipe YAML (default: the embedded configs/pretrain/tiny.yaml)")
	f.register(cmd, "runs/pretrain")
	return cmd
}
