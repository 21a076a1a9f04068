package main

import (
	"encoding/json"
	"fmt"

	"github.com/magma-go/magma/model"
	"github.com/spf13/cobra"
)

func newInfoCmd() *cobra.Command {
	var modelDir, preset, dtype string
	var width, height int
	cmd := &cobra.Command{
		Use:   "info",
		Short: "Print a model's config, parameter counts and the tokens an image takes",
		Example: `  magma info --model out/tiny --image-width 1920 --image-height 1080
  magma info --preset magma-8b
  magma info --model /big/magma-8b --dtype f32   # weight bytes by dtype, stored and once loaded`,
		RunE: func(cmd *cobra.Command, args []string) error {
			var cfg *model.Config
			var pp *model.PreprocessorConfig
			var err error
			switch {
			case modelDir != "":
				cfg, pp, err = model.LoadConfig(modelDir)
			case preset != "":
				cfg, pp, err = model.PresetConfigs(preset)
			default:
				return fmt.Errorf("give --model DIR or --preset NAME")
			}
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
	return cmd
}
