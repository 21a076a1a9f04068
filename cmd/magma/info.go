package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/magma-go/magma/model"
	"github.com/spf13/cobra"
)

func newInfoCmd() *cobra.Command {
	var modelDir, preset, dtype, plan string
	var width, height int
	var train, recompute bool
	cmd := &cobra.Command{
		Use:   "info",
		Short: "Print a model's config, parameter counts and the tokens an image takes",
		Example: `  magma info --model out/tiny --image-width 1920 --image-height 1080
  magma info --preset magma-8b
  magma info --model /big/magma-8b --dtype f32   # weight bytes by dtype, stored and once loaded
  magma info --preset magma-8b --plan 1,2048,1 --train --recompute   # activation memory of a training step`,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, pp, err := infoConfig(modelDir, preset)
			if err != nil {
				return err
			}
			info, err := model.Describe(cfg, pp, width, height)
			if err != nil {
				return err
			}
			if modelDir != "" {
				dt, err := loadDtype(dtype)
				if err != nil {
					return err
				}
				// A directory with configs only (no weights yet) still
				// gets its config report.
				if info.Weights, err = model.DescribeWeights(modelDir, cfg, dt); err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "warning: no weight report: %v\n", err)
				}
			}
			if info.Plan, err = planMemory(cfg, plan, train, recompute); err != nil {
				return err
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(info)
		},
	}
	f := cmd.Flags()
	f.StringVar(&modelDir, "model", "", "checkpoint directory (reads config.json, preprocessor_config.json and the safetensors headers: weight bytes by dtype)")
	f.StringVar(&dtype, "dtype", "", "report the weight memory of loading with this --dtype (f32, bf16, f16; default: the stored dtypes)")
	f.StringVar(&preset, "preset", "", "preset name or YAML file instead of --model")
	f.IntVar(&width, "image-width", 0, "image width for the token count (default: one base crop)")
	f.IntVar(&height, "image-height", 0, "image height for the token count")
	f.StringVar(&plan, "plan", "", "B,T[,crops[,supervised]]: compile the program of a batch of B sequences padded to T positions with that many image crops (no weight is read) and report its activation arena")
	f.BoolVar(&train, "train", false, "with --plan: a training step (loss and every parameter's gradient) instead of a forward pass")
	f.BoolVar(&recompute, "recompute", false, "with --plan --train: activation recomputation (activation_checkpointing: true)")
	return cmd
}

// infoConfig is the config of the checkpoint modelDir, else of the preset.
func infoConfig(modelDir, preset string) (*model.Config, *model.PreprocessorConfig, error) {
	switch {
	case modelDir != "":
		return model.LoadConfig(modelDir)
	case preset != "":
		return model.PresetConfigs(preset)
	}
	return nil, nil, fmt.Errorf("give --model DIR or --preset NAME")
}

// planMemory is --plan's report (nil without --plan).
func planMemory(cfg *model.Config, plan string, train, recompute bool) (*model.PlanInfo, error) {
	if plan == "" {
		if train || recompute {
			return nil, fmt.Errorf("--train and --recompute describe a --plan")
		}
		return nil, nil
	}
	shape, err := parsePlanShape(plan)
	if err != nil {
		return nil, err
	}
	return model.PlanMemory(cfg, shape, train, recompute)
}

// parsePlanShape reads --plan's B,T[,crops[,supervised]].
func parsePlanShape(s string) (model.BatchShape, error) {
	parts := strings.Split(s, ",")
	if len(parts) < 2 || len(parts) > 4 {
		return model.BatchShape{}, fmt.Errorf("--plan %q: want B,T[,crops[,supervised]]", s)
	}
	v := make([]int, 4)
	for i, p := range parts {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 0 || (i < 2 && n == 0) {
			return model.BatchShape{}, fmt.Errorf("--plan %q: field %d (%q) must be a positive integer (crops and supervised may be 0)", s, i+1, p)
		}
		v[i] = n
	}
	return model.BatchShape{B: v[0], T: v[1], Crops: v[2], S: v[3]}, nil
}
