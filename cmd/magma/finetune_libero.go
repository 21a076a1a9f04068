package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/magma-go/magma/data"
	"github.com/magma-go/magma/llm"
	"github.com/magma-go/magma/llm/tokenizer"
	"github.com/magma-go/magma/model"
	"github.com/magma-go/magma/train"
	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
)

// LIBERO finetuning: `magma finetune libero` reads a suite folder of
// *_demo.hdf5 files or OpenVLA's modified LIBERO RLDS release, keeps --shots demos per suite or task (--shots-per), and
// trains the checkpoint to answer "What action should the robot take to
// {instruction}?" about the upright agent-view frame with 7 OpenVLA action
// tokens, on the pretraining engine. Every checkpoint it writes carries the
// action statistics (dataset_statistics.json, key = the suite) that
// `magma eval libero` and `magma serve`'s /act un-normalise with, and the
// demo split (libero_split.json) so evaluation holds out the right demos.

// liberoFlags are the suite-reading flags finetune and eval share.
type liberoFlags struct {
	dir, suite, camera string
	shotsPer           string
	shots              int
	seed               uint64
	noops              bool
}

func (f *liberoFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.dir, "data", "", "LIBERO suite folder of *_demo.hdf5 files (as downloaded), or OpenVLA's modified LIBERO RLDS dataset folder "+
		"(libero_spatial_no_noops/ or its 1.0.0/; detected by dataset_info.json)")
	fl.StringVar(&f.suite, "suite", "", "suite name, the statistics key and /act unnorm_key (default: the folder's name; RLDS: the dataset's, e.g. libero_spatial_no_noops)")
	fl.IntVar(&f.shots, "shots", 10, "training demos per --shots-per unit, chosen by --data-seed (0 = all); the rest are held out")
	fl.StringVar(&f.shotsPer, "shots-per", data.ShotsPerSuite, "what --shots counts: suite (10 demos spread over the suite's tasks, 1 per task: the Magma maintainers' "+
		"answer on how the released LIBERO numbers were finetuned, microsoft/Magma issue #51 \"select 1 traj per sub-task\") or task (the paper's Fig. 10 caption \"10 trajectories per task\")")
	fl.Uint64Var(&f.seed, "data-seed", 0, "seed of the shot selection")
	fl.BoolVar(&f.noops, "remove-noops", true, "drop no-op steps (arm action norm < 1e-4, gripper unchanged), as OpenVLA's regenerated sets")
	fl.StringVar(&f.camera, "camera", "agentview_rgb", "image dataset under obs/ (RLDS: agentview_rgb and eye_in_hand_rgb are the release's image and wrist_image; other names are observation keys)")
	_ = cmd.MarkFlagRequired("data")
}

func (f *liberoFlags) open() (*data.Libero, error) {
	if f.suite != "" && !knownSuite(f.suite) {
		fmt.Fprintf(os.Stderr, "note: --suite %q is not one of %s (or their RLDS _no_noops names)\n", f.suite, strings.Join(data.LiberoSuites, ", "))
	}
	return data.OpenLibero(f.dir, data.LiberoOptions{Suite: f.suite, Shots: f.shots, ShotsPer: f.shotsPer, Seed: f.seed, RemoveNoops: f.noops, Camera: f.camera})
}

func knownSuite(s string) bool {
	for _, k := range data.LiberoSuites {
		if k == s || k+"_no_noops" == s {
			return true
		}
	}
	return false
}

// liberoEnv is the data environment of LIBERO samples; the chat options
// must match model.Pipeline.ChatOptions (what /act and eval prompt with):
// images wrapped per the checkpoint's mm_use_image_start_end.
func liberoEnv(tok *tokenizer.Tokenizer, pp *model.PreprocessorConfig, cfg *model.Config) (*data.SampleBuilder, error) {
	env, err := data.NewSampleBuilder(tok, train.ImageOptions(pp))
	if err != nil {
		return nil, err
	}
	env.Chat = tokenizer.ChatOptions{ImageStartEnd: cfg.ImageStartEnd()}
	return env, nil
}

// loraConfig checks the adapter flags.
func loraConfig(rank int, alpha, dropout float64, targets string) (llm.LoRAConfig, error) {
	c := llm.LoRAConfig{Rank: rank, Alpha: alpha, Dropout: dropout}
	for _, t := range strings.Split(targets, ",") {
		if t = strings.TrimSpace(t); t != "" {
			c.Targets = append(c.Targets, t)
		}
	}
	if rank <= 0 {
		return c, fmt.Errorf("--lora-rank %d must be positive for LoRA", rank)
	}
	for _, t := range c.Targets {
		if !slices.Contains(llm.DefaultLoRATargets, t) {
			return c, fmt.Errorf("--lora-targets: unknown module %q (want some of %s)", t, strings.Join(llm.DefaultLoRATargets, ", "))
		}
	}
	if !(alpha >= 0) || math.IsInf(alpha, 0) {
		return c, fmt.Errorf("--lora-alpha %v must be >= 0 (0: equal to the rank)", alpha)
	}
	if !(dropout >= 0 && dropout < 1) {
		return c, fmt.Errorf("--lora-dropout %v must be in [0, 1)", dropout)
	}
	return c, nil
}

func newFinetuneLiberoCmd() *cobra.Command {
	var (
		f                   runFlags
		lf                  liberoFlags
		initDir, trainable  string
		dtype               string
		lr                  float64
		batch, accum, steps int
		loraRank            int
		loraAlpha, loraDrop float64
		loraTargets         string
		merge               bool
		every               int
	)
	cmd := &cobra.Command{
		Use:   "libero --data SUITE_DIR --init CKPT --out DIR",
		Short: "Fine-tune on LIBERO demos, HDF5 or OpenVLA's RLDS release (OpenVLA action tokens, few-shot demos)",
		Long: `libero fine-tunes a checkpoint on one LIBERO suite: a folder of *_demo.hdf5
files (libero_spatial, libero_object, libero_goal, libero_10, libero_90), or
OpenVLA's modified LIBERO RLDS release (libero_spatial_no_noops/ and the
other *_no_noops folders: one episode per demo, upright frames, no-ops
already removed; detected by its dataset_info.json; tasks are named after
each episode's source file, the suite after the dataset). Both give the same
tasks, actions and statistics for the same demos. --shots demos (10) per --shots-per unit, chosen by --data-seed; the rest are
held out for ` + "`magma eval libero --split heldout`" + `. The default, 10 per
suite spread as 1 per task, is how the Magma maintainers say the released
LIBERO numbers were finetuned (microsoft/Magma issue #51: "select 1 traj per
sub-task"); the paper's Fig. 10 caption says "10 trajectories per task"
(--shots-per task). Each step gives the agent-view frame
rotated upright, the prompt "What action should the robot take to
{instruction}?" and the 7 action tokens + <|eot_id|> as the supervised
answer (OpenVLA's BOUNDS_Q99 normalisation with the training demos'
q01/q99, 256 bins on the last 256 ids of the Llama-3 vocabulary).

Every checkpoint gets dataset_statistics.json (key = --suite) and
libero_split.json. Checkpoints, --resume, metrics.jsonl and the plot are
the pretraining engine's.

--lora-rank (default 32, OpenVLA's LIBERO recipe) trains LoRA adapters on
the decoder's linear layers (--lora-targets, alpha --lora-alpha) with every
checkpoint weight frozen: the engine's trainable: lora. Checkpoints then
hold the frozen base weights plus PEFT's adapter_model.safetensors and
adapter_config.json (eval libero applies them); the learning rate defaults
to OpenVLA's 5e-4. --merge also writes OUT/merged, a plain checkpoint with
the adapters folded in (W += alpha/r·B·A) for serve and other tools.
--lora-dropout must stay 0 (Gorgonia's dropout is seeded from the clock,
which would break reproducible runs and exact --resume). --lora-rank 0
fine-tunes all weights (--trainable selects which, lr default 2e-5).`,
		Example: `  magma finetune libero --data ~/LIBERO/libero_spatial --init out/magma-8b --out runs/libero_spatial --shots 10 --steps 2000
  magma finetune libero --data ~/modified_libero_rlds/libero_spatial_no_noops --init out/magma-8b --out runs/libero_spatial_rlds
  magma eval synthetic --benchmark libero --format rlds --out /tmp/libero_spatial_no_noops   # demo data`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if initDir == "" {
				return fmt.Errorf("finetune libero: --init CKPT is required")
			}
			if loraRank < 0 {
				return fmt.Errorf("--lora-rank %d must be >= 0", loraRank)
			}
			if !(lr >= 0) || math.IsInf(lr, 0) {
				return fmt.Errorf("--lr %v must be a positive number (0 = the default for the mode)", lr)
			}
			var lcfg llm.LoRAConfig
			if loraRank > 0 {
				// Parse the adapter flags now so mistakes surface first.
				var err error
				if lcfg, err = loraConfig(loraRank, loraAlpha, loraDrop, loraTargets); err != nil {
					return err
				}
				if cmd.Flags().Changed("trainable") && trainable != train.TrainLoRA {
					return fmt.Errorf("--trainable %s is for full fine-tuning; with --lora-rank %d only the adapters train (pass --lora-rank 0 to fine-tune weights)", trainable, loraRank)
				}
			} else {
				if merge {
					return fmt.Errorf("--merge folds LoRA adapters in; it needs --lora-rank > 0")
				}
				if trainable == train.TrainLoRA {
					return fmt.Errorf("--trainable lora needs --lora-rank > 0")
				}
			}
			// A run folder that cannot be written fails before the demos are read.
			if err := checkRunFolder(f.out); err != nil {
				return err
			}
			l, err := lf.open()
			if err != nil {
				return err
			}
			defer l.Close()
			rec := "libero" // the LoRA recipe; libero-full fine-tunes the weights
			if loraRank == 0 {
				rec = "libero-full"
			}
			cp, err := train.LoadConfig(rec)
			if err != nil {
				return err
			}
			c := *cp
			c.Source = "finetune libero"
			c.Model = train.ModelConfig{InitFrom: initDir, Dtype: dtype}
			c.BatchSize, c.GradAccum, c.Steps, c.Checkpoint.Every = batch, accum, steps, every
			if lr != 0 { // 0: the recipe's (LoRA or full fine-tuning)
				c.Optimizer.LR = lr
			}
			if loraRank > 0 {
				c.LoRA = lcfg
			} else {
				c.Trainable = trainable
			}
			// The data section only records what was read, so that --resume
			// refuses another suite or split (the recipe hash covers it).
			var node yaml.Node
			if err := node.Encode(map[string]any{"libero": map[string]any{"data": lf.dir, "suite": l.Opt.Suite, "shots": lf.shots, "shots_per": lf.shotsPer, "data_seed": lf.seed, "remove_noops": lf.noops, "camera": lf.camera}}); err != nil {
				return err
			}
			c.Data = node
			if err := f.apply(cmd, &c); err != nil {
				return err
			}
			if err := checkRunFolder(f.out); err != nil {
				return err
			}
			m, pp, tokDir, err := train.InitModel(&c)
			if err != nil {
				return err
			}
			printVerified(cmd, &c)
			tokDir, tok, err := resolveTokenizer(f.tokPath, tokDir)
			if err != nil {
				return err
			}
			env, err := liberoEnv(tok, pp, m.Config)
			if err != nil {
				return err
			}
			src, err := data.NewLiberoSource(env, l, "train")
			if err != nil {
				return err
			}
			mix, err := data.NewMixture(env, []data.Source{src}, []float64{1})
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			var adapters train.Adapters
			if loraRank > 0 {
				// Fresh adapters (seeded by --seed); --resume restores them.
				ad, err := train.AttachLoRA(m, c.LoRA, c.Seed, initDir)
				if err != nil {
					return fmt.Errorf("--lora-*: %w", err)
				}
				adapters = ad
				mods, n := m.LM.LoRAModules(model.LoRAPrefix), 0
				for _, a := range ad.Tensors() {
					n += a.T.Shape().TotalSize()
				}
				l0 := mods[0].Linear.LoRA
				fmt.Fprintf(w, "LoRA r=%d alpha=%g on %d layers: %d adapter parameters train, the base weights are frozen\n", l0.Rank, l0.Alpha, len(mods), n)
			}
			nTrain, nHeld := 0, 0
			for _, t := range l.Tasks {
				nTrain += len(t.Train)
				nHeld += len(t.Heldout)
			}
			fmt.Fprintf(w, "%s: %d tasks, %d training demos (%d steps), %d held out\n", l.Opt.Suite, len(l.Tasks), nTrain, src.Len(), nHeld)
			if err := os.MkdirAll(f.out, 0o755); err != nil {
				return err
			}
			if err := l.CheckMeta(f.out); err != nil {
				return err
			}
			if err := l.WriteMeta(f.out); err != nil {
				return err
			}
			seed := c.Seed
			open := func(state []byte) (data.Stream, error) {
				return mix.Stream(cmd.Context(), data.StreamOptions{Seed: seed, BatchSize: c.BatchSize, State: state})
			}
			// Every checkpoint carries the statistics and the split.
			if err := runTraining(cmd, train.Options{Config: &c, Model: m, Preprocessor: pp, Tokenizer: tokDir, Allowed: tok.IDMask(m.Config.Text.VocabSize), Data: open, OutDir: f.out, Resume: f.resume, Adapters: adapters, BucketBytes: f.bucketBytes(),
				Hooks: train.Hooks{OnCheckpoint: l.WriteMeta}}); err != nil {
				return err
			}
			if !merge {
				if loraRank > 0 {
					fmt.Fprintf(w, "note: the checkpoints hold the frozen base plus PEFT's adapter files, which generate, serve and eval apply on load; --merge also writes a plain checkpoint with them folded in\n")
				}
				return nil
			}
			dir := filepath.Join(f.out, "merged")
			if err := model.SaveMerged(dir, m, pp, tokDir, l.WriteMeta); err != nil {
				return fmt.Errorf("--merge: %w", err)
			}
			fmt.Fprintf(w, "merged: %s (plain checkpoint, adapters folded in)\n", dir)
			return nil
		},
	}
	fl := cmd.Flags()
	lf.register(cmd)
	fl.StringVar(&initDir, "init", "", "checkpoint directory to start from (Hugging Face layout)")
	fl.StringVar(&dtype, "dtype", "", finetuneDtypeUsage("--init"))
	// Flag defaults come from the embedded recipes (configs/pretrain/libero*.yaml).
	lora, full := recipeDefaults("libero"), recipeDefaults("libero-full")
	fl.Float64Var(&lr, "lr", 0, fmt.Sprintf("learning rate, constant (default %g with LoRA as OpenVLA, %g for full fine-tuning with --lora-rank 0)", lora.Optimizer.LR, full.Optimizer.LR))
	fl.IntVar(&batch, "batch-size", lora.BatchSize, "samples per micro-batch")
	fl.IntVar(&accum, "grad-accum", lora.GradAccum, "micro-batches per update")
	fl.IntVar(&steps, "steps", lora.Steps, stepsUsage)
	fl.IntVar(&every, "save-every", lora.Checkpoint.Every, "updates between checkpoints (0: only at the end)")
	fl.StringVar(&trainable, "trainable", full.Trainable, "all | vision_frozen | projector_only (with --lora-rank 0)")
	fl.IntVar(&loraRank, "lora-rank", lora.LoRA.Rank, "LoRA rank (OpenVLA's LIBERO recipe; 0: full fine-tuning)")
	fl.Float64Var(&loraAlpha, "lora-alpha", lora.LoRA.Alpha, "LoRA alpha (0: equal to the rank)")
	fl.Float64Var(&loraDrop, "lora-dropout", lora.LoRA.Dropout, "LoRA dropout (only 0: training must be reproducible and resumable)")
	fl.StringVar(&loraTargets, "lora-targets", strings.Join(lora.LoRA.Targets, ","), "comma-separated linear layers to adapt")
	fl.BoolVar(&merge, "merge", false, "with LoRA: also write OUT/merged, a plain checkpoint with the adapters folded in")
	f.register(cmd, "runs/libero")
	return cmd
}
