package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/magma-go/magma/llm/tokenizer"
	"github.com/magma-go/magma/model"
	"github.com/magma-go/magma/model/ckpt"
	"github.com/spf13/cobra"
)

// initLong is init's --help.
const initLong = `Write a randomly initialised checkpoint of a preset in the Hugging Face layout
(config.json, preprocessor_config.json, model.safetensors or 5 GB shards with
model.safetensors.index.json, the tokenizer). Tensors are streamed to disk as
they are drawn, so any size fits in memory: magma-8b in bf16 is the published
layout (4 shards, 17.8 GB) and lets you check a machine before downloading the
real weights. Same seed, same values, whatever the dtype.`

func newInitCmd() *cobra.Command {
	var (
		preset, out, dtype, tokPath string
		seed                        uint64
		force                       bool
	)
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Write a randomly initialised checkpoint of a preset (tiny, small, magma-8b or a YAML file)",
		Long:  initLong,
		Example: `  magma init --preset tiny --out out/tiny
  magma init --preset configs/my.yaml --out out/my --dtype bf16
  magma init --preset tiny --out out/tiny --seed 7 --force   # replace out/tiny
  magma init --preset magma-8b --dtype bf16 --out /big/magma-8b   # full size: 4 shards, 17.8 GB, < 100 MB of memory`,
		RunE: func(cmd *cobra.Command, args []string) error {
			// Checked before anything is written to --out.
			switch dtype = strings.ToLower(dtype); dtype {
			case "f32", "float32", "bf16", "bfloat16", "f16", "float16":
			default:
				return fmt.Errorf("--dtype %q: want f32, bf16 or f16", dtype)
			}
			if !force {
				if err := refuseCheckpoint(out); err != nil {
					return err
				}
			}
			cfg, pp, err := model.PresetConfigs(preset)
			if err != nil {
				return err
			}
			// Streamed: tensors are drawn and written chunk by chunk, so a
			// full-size magma-8b needs a few MB of memory, not the model.
			n, err := model.WriteRandom(out, cfg, pp, seed, ckpt.SaveOptions{DType: dtype})
			if err != nil {
				return err
			}
			if tokPath == "" {
				if tokPath, err = tokenizer.Locate("magma"); err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "warning: no tokenizer copied (%v); run `make tokenizer` or pass --tokenizer\n", err)
				}
			}
			if tokPath != "" {
				if err := ckpt.CopyTokenizer(tokPath, out); err != nil {
					return err
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: preset %s, %d parameters, seed %d\n", out, preset, n, seed)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&preset, "preset", "tiny", "preset name or YAML file")
	f.StringVar(&out, "out", "", "output checkpoint directory")
	f.StringVar(&dtype, "dtype", "f32", "stored dtype: f32, bf16 or f16 (safetensors' F32, BF16, F16 are accepted too)")
	f.StringVar(&tokPath, "tokenizer", "", "tokenizer directory to copy in (default: assets/tokenizer/magma)")
	f.Uint64Var(&seed, "seed", 0, "initialisation seed")
	f.BoolVar(&force, "force", false, "overwrite a checkpoint already in --out")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

// refuseCheckpoint refuses an out folder that already holds a checkpoint.
func refuseCheckpoint(out string) error {
	for _, pat := range []string{model.ConfigFileName, "*.safetensors", "*.safetensors.index.json"} {
		if m, _ := filepath.Glob(filepath.Join(out, pat)); len(m) > 0 {
			return fmt.Errorf("%s already holds a checkpoint (%s): pass --force to overwrite it, or choose another --out", out, filepath.Base(m[0]))
		}
	}
	return nil
}
