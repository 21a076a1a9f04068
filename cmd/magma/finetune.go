package main

import (
	"fmt"
	"strings"

	"github.com/magma-go/magma/llm"
	"github.com/magma-go/magma/train"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// sftFlags are the flags of finetune sft.
type sftFlags struct {
	run                      runFlags
	config, dataPath, images string
	modelDir, trainable      string
	dtype, loraTargets       string
	lr, loraAlpha            float64
	batch, accum, steps      int
	loraRank                 int
}

// sftLong is finetune sft's --help.
const sftLong = `sft trains a checkpoint on LLaVA-style conversation data (the data
package's llava reader: answers supervised, prompts masked). Defaults follow
LLaVA's fine-tuning recipe (AdamW, lr 2e-5, cosine with 3% warmup, no weight
decay); --config takes a recipe YAML whose data: section is replaced by
--data. Everything else (checkpoints, --resume, metrics.jsonl, plots) is
the pretraining engine's.

--trainable picks what trains: all, vision_frozen, projector_only, or lora
(LoRA adapters on the decoder's linear layers, every checkpoint weight
frozen). LoRA needs a rank: --lora-rank N (alone it implies --trainable
lora), or lora.rank in the --config recipe; --lora-alpha and
--lora-targets set the rest (the recipe keys lora.alpha, lora.targets).`

func newFinetuneCmd(j *job) *cobra.Command {
	parent := &cobra.Command{
		Use:   "finetune",
		Short: "Fine-tune a checkpoint with the pretraining engine (sft: LLaVA conversations; libero: LIBERO robot demos)",
	}
	var o sftFlags
	sft := &cobra.Command{
		Use:   "sft --data FILE.json --model DIR",
		Short: "Supervised fine-tuning on LLaVA conversation JSON ({image, conversations: [{from, value}]})",
		Long:  sftLong,
		Example: `  magma finetune sft --data llava_mix.json --image-folder images --model out/tiny --out runs/sft --steps 200
  magma finetune sft --data llava_mix.json --model out/magma-8b --lora-rank 16 --lora-alpha 32 --out runs/sft-lora`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := o.recipe(cmd)
			if err != nil {
				return err
			}
			return o.run.trainRecipe(cmd, j, cfg)
		},
	}
	fl := sft.Flags()
	fl.StringVar(&o.dataPath, "data", "", "LLaVA conversation JSON file")
	fl.StringVar(&o.images, "image-folder", "", "folder the records' image paths are relative to (default: the JSON's folder)")
	fl.StringVar(&o.modelDir, "model", "", "checkpoint directory to start from (Hugging Face layout)")
	fl.StringVar(&o.config, "config", "", "recipe YAML for optimizer/schedule/batch (its data: is replaced)")
	// Flag defaults come from the embedded recipe (configs/pretrain/sft.yaml).
	rec := recipeDefaults("sft")
	fl.Float64Var(&o.lr, "lr", rec.Optimizer.LR, "peak learning rate")
	fl.IntVar(&o.batch, "batch-size", rec.BatchSize, "samples per micro-batch")
	fl.IntVar(&o.accum, "grad-accum", rec.GradAccum, "micro-batches per update")
	fl.IntVar(&o.steps, "steps", rec.Steps, stepsUsage)
	fl.StringVar(&o.trainable, "trainable", rec.Trainable, "what trains: all | vision_frozen | projector_only | lora (lora needs --lora-rank)")
	fl.IntVar(&o.loraRank, "lora-rank", rec.LoRA.Rank, "LoRA rank; > 0 trains adapters only (implies --trainable lora)")
	fl.Float64Var(&o.loraAlpha, "lora-alpha", rec.LoRA.Alpha, "LoRA alpha (0: equal to the rank)")
	fl.StringVar(&o.loraTargets, "lora-targets", strings.Join(llm.DefaultLoRATargets, ","), "comma-separated decoder linear layers to adapt")
	fl.StringVar(&o.dtype, "dtype", "", finetuneDtypeUsage("--model"))
	o.run.register(sft, "runs/sft")
	parent.AddCommand(sft)
	return parent
}

// recipe is the sft recipe (--config, else the embedded sft recipe) with
// the flags applied and the data section replaced by --data.
func (o *sftFlags) recipe(cmd *cobra.Command) (*train.Config, error) {
	if o.dataPath == "" || o.modelDir == "" {
		return nil, fmt.Errorf("finetune sft: --data and --model are required")
	}
	var cfg *train.Config
	if o.config != "" {
		c, err := train.LoadConfig(o.config)
		if err != nil {
			return nil, err
		}
		cfg = c
	} else {
		c, err := train.LoadConfig("sft")
		if err != nil {
			return nil, err
		}
		c.Source = "finetune sft"
		cfg = c
	}
	cfg.Model = train.ModelConfig{InitFrom: o.modelDir, Dtype: o.dtype}
	fl := cmd.Flags()
	if fl.Changed("lr") {
		cfg.Optimizer.LR = o.lr
	}
	if fl.Changed("batch-size") {
		cfg.BatchSize = o.batch
	}
	if fl.Changed("grad-accum") {
		cfg.GradAccum = o.accum
	}
	if fl.Changed("steps") {
		cfg.Steps = o.steps
	}
	if fl.Changed("trainable") {
		cfg.Trainable = o.trainable
	}
	if err := sftLoRA(fl, cfg, o.loraRank, o.loraAlpha, o.loraTargets); err != nil {
		return nil, err
	}
	src := map[string]any{"name": "sft", "type": "llava", "path": o.dataPath, "weight": 1.0}
	if o.images != "" {
		src["image_folder"] = o.images
	}
	var node yaml.Node
	if err := node.Encode(map[string]any{"sources": []any{src}}); err != nil {
		return nil, err
	}
	cfg.Data = node
	return cfg, nil
}

// recipeDefaults is an embedded recipe, for flag defaults. The embedded
// recipes are parsed by the tests (configs/pretrain), so the fallback to
// train.DefaultConfig only guards against a broken build; the command's
// RunE loads the recipe again and reports any error.
func recipeDefaults(name string) train.Config {
	if c, err := train.LoadConfig(name); err == nil {
		return *c
	}
	return train.DefaultConfig()
}

// stepsUsage is the help of the finetune commands' --steps.
const stepsUsage = "optimizer updates in total, the schedule's length (--max-steps is the same setting; giving both with different values is an error)"

// sftLoRA applies finetune sft's adapter flags to the recipe: --lora-rank
// N > 0 trains LoRA adapters (trainable: lora), --lora-alpha and
// --lora-targets override the recipe's lora.alpha and lora.targets. A
// recipe that ends up with trainable: lora and no rank is refused here,
// naming the flag and the recipe key that set it.
func sftLoRA(fl *pflag.FlagSet, cfg *train.Config, rank int, alpha float64, targets string) error {
	lc := cfg.LoRA
	if fl.Changed("lora-rank") {
		if rank < 0 {
			return fmt.Errorf("--lora-rank %d must be >= 0", rank)
		}
		lc.Rank = rank
		if rank > 0 {
			if fl.Changed("trainable") && cfg.Trainable != train.TrainLoRA {
				return fmt.Errorf("--trainable %s trains weights; --lora-rank %d trains only LoRA adapters: give one of them (or --trainable lora)", cfg.Trainable, rank)
			}
			cfg.Trainable = train.TrainLoRA
		}
	}
	if fl.Changed("lora-alpha") {
		lc.Alpha = alpha
	}
	if fl.Changed("lora-targets") {
		lc.Targets = nil
		for _, t := range strings.Split(targets, ",") {
			if t = strings.TrimSpace(t); t != "" {
				lc.Targets = append(lc.Targets, t)
			}
		}
	}
	if cfg.Trainable != train.TrainLoRA {
		if fl.Changed("lora-alpha") || fl.Changed("lora-targets") {
			return fmt.Errorf("--lora-alpha and --lora-targets configure LoRA adapters: they need --lora-rank N > 0 (or --trainable lora with lora.rank in the --config recipe)")
		}
		return nil
	}
	if lc.Rank == 0 {
		return fmt.Errorf("--trainable lora needs a LoRA rank: pass --lora-rank N (OpenVLA's LIBERO recipe uses 32), or set lora.rank in the --config recipe")
	}
	// The same checks as finetune libero's adapter flags.
	c, err := loraConfig(lc.Rank, lc.Alpha, lc.Dropout, strings.Join(lc.Targets, ","))
	if err != nil {
		return err
	}
	cfg.LoRA = c
	return nil
}
