package main

import (
	"fmt"

	"github.com/magma-go/magma/train"
	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
)

func newFinetuneCmd() *cobra.Command {
	parent := &cobra.Command{
		Use:   "finetune",
		Short: "Fine-tune a checkpoint with the pretraining engine (sft: LLaVA conversations; libero: LIBERO robot demos)",
	}
	var (
		f                        runFlags
		config, dataPath, images string
		modelDir, trainable      string
		dtype                    string
		lr                       float64
		batch, accum, steps      int
	)
	sft := &cobra.Command{
		Use:   "sft --data FILE.json --model DIR",
		Short: "Supervised fine-tuning on LLaVA conversation JSON ({image, conversations: [{from, value}]})",
		Long: `sft trains a checkpoint on LLaVA-style conversation data (the data
package's llava reader: answers supervised, prompts masked). Defaults follow
LLaVA's fine-tuning recipe (AdamW, lr 2e-5, cosine with 3% warmup, no weight
decay); --config takes a recipe YAML whose data: section is replaced by
--data. Everything else (checkpoints, --resume, metrics.jsonl, plots) is
the pretraining engine's.`,
		Example: `  magma finetune sft --data llava_mix.json --image-folder images --model out/tiny --out runs/sft --max-steps 200`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if dataPath == "" || modelDir == "" {
				return fmt.Errorf("finetune sft: --data and --model are required")
			}
			var cfg *train.Config
			if config != "" {
				c, err := train.LoadConfig(config)
				if err != nil {
					return err
				}
				cfg = c
			} else {
				c, err := train.LoadConfig("sft")
				if err != nil {
					return err
				}
				c.Source = "finetune sft"
				cfg = c
			}
			cfg.Model = train.ModelConfig{InitFrom: modelDir, Dtype: dtype}
			fl := cmd.Flags()
			if fl.Changed("lr") {
				cfg.Optimizer.LR = lr
			}
			if fl.Changed("batch-size") {
				cfg.BatchSize = batch
			}
			if fl.Changed("grad-accum") {
				cfg.GradAccum = accum
			}
			if fl.Changed("steps") {
				cfg.Steps = steps
			}
			if fl.Changed("trainable") {
				cfg.Trainable = trainable
			}
			src := map[string]any{"name": "sft", "type": "llava", "path": dataPath, "weight": 1.0}
			if images != "" {
				src["image_folder"] = images
			}
			var node yaml.Node
			if err := node.Encode(map[string]any{"sources": []any{src}}); err != nil {
				return err
			}
			cfg.Data = node
			return f.trainRecipe(cmd, cfg)
		},
	}
	fl := sft.Flags()
	fl.StringVar(&dataPath, "data", "", "LLaVA conversation JSON file")
	fl.StringVar(&images, "image-folder", "", "folder the records' image paths are relative to (default: the JSON's folder)")
	fl.StringVar(&modelDir, "model", "", "checkpoint directory to start from (Hugging Face layout)")
	fl.StringVar(&config, "config", "", "recipe YAML for optimizer/schedule/batch (its data: is replaced)")
	// Flag defaults come from the embedded recipe (configs/pretrain/sft.yaml).
	rec := recipeDefaults("sft")
	fl.Float64Var(&lr, "lr", rec.Optimizer.LR, "peak learning rate")
	fl.IntVar(&batch, "batch-size", rec.BatchSize, "samples per micro-batch")
	fl.IntVar(&accum, "grad-accum", rec.GradAccum, "micro-batches per update")
	fl.IntVar(&steps, "steps", rec.Steps, "optimizer updates (same as --max-steps)")
	fl.StringVar(&trainable, "trainable", train.TrainAll, "all | vision_frozen | projector_only")
	fl.StringVar(&dtype, "dtype", "", finetuneDtypeUsage("--model"))
	f.register(sft, "runs/sft")
	parent.AddCommand(sft)
	return parent
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
