package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"

	"github.com/magma-go/magma/data"
	"github.com/magma-go/magma/eval"
	"github.com/magma-go/magma/model/action"
	"github.com/spf13/cobra"
)

func newEvalLiberoCmd() *cobra.Command {
	var (
		lf                       liberoFlags
		modelDir, tokPath, split string
		load                     loadFlags
		statsPath, out, decoding string
		limit                    int
		sampleSeed               uint64
		asJSON                   bool
	)
	cmd := &cobra.Command{
		Use:   "libero --model CKPT --data SUITE_DIR [--split heldout]",
		Short: "Offline LIBERO evaluation: action-token accuracy, L1 and gripper accuracy per task",
		Long: `libero replays the demo steps of a suite (a folder of *_demo.hdf5 files, or
OpenVLA's modified LIBERO RLDS release such as libero_spatial_no_noops/, as
for finetune libero --data) through a checkpoint
fine-tuned by ` + "`magma finetune libero`" + ` and compares its 7 action tokens
with the demos': action-token accuracy, L1 error of the un-normalised action
(simulator convention, all 7 dimensions and the 6 arm dimensions) and
gripper open/close accuracy, per task and overall. --decoding greedy takes
the argmax tokens; --decoding official decodes as microsoft/Magma's LIBERO
agent (agents/libero/libero_magma_utils.py): temperature 0.7 sampling,
max_new_tokens 1000, the action = output_ids[-8:-1], the frame resized to
256x256 (eval_magma_libero.py resolution 256).

The statistics come from the checkpoint's dataset_statistics.json (key
--suite) and the held-out demos from its libero_split.json, so --split
heldout scores exactly the demos training did not see (without the split
file, --shots and --data-seed select them as finetune did). This is an
offline check; success rates need the LIBERO simulator driving
` + "`magma serve`" + `'s /act.`,
		Example: `  magma eval libero --model runs/libero_spatial/checkpoints/step-002000 --data ~/LIBERO/libero_spatial --split heldout`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if modelDir == "" {
				return fmt.Errorf("eval libero: --model is required")
			}
			l, err := lf.open()
			if err != nil {
				return err
			}
			defer l.Close()
			if sp := eval.FindLiberoMeta(modelDir, data.LiberoSplitFile); sp != "" && !cmd.Flags().Changed("shots") && !cmd.Flags().Changed("shots-per") {
				b, err := os.ReadFile(sp)
				if err != nil {
					return err
				}
				var s data.LiberoSplit
				if err := json.Unmarshal(b, &s); err != nil {
					return fmt.Errorf("%s: %w", sp, err)
				}
				if err := l.ApplySplit(&s); err != nil {
					return fmt.Errorf("%s: %w", sp, err)
				}
			}
			if statsPath == "" {
				statsPath = eval.FindLiberoMeta(modelDir, action.DatasetStatisticsFile)
			}
			stats := l.Stats
			if statsPath != "" {
				all, err := action.ReadDatasetStatistics(statsPath)
				if err != nil {
					return err
				}
				st, ok := all[l.Opt.Suite]
				if !ok {
					if len(all) != 1 {
						return fmt.Errorf("%s has no statistics for %q (pass --suite)", statsPath, l.Opt.Suite)
					}
					for _, v := range all {
						st = v
					}
				}
				stats = st
			} else {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s has no %s; using statistics recomputed from the training demos\n", modelDir, action.DatasetStatisticsFile)
			}
			p, err := load.pipeline(modelDir, tokPath, 1)
			if err != nil {
				return err
			}
			if p.Tokenizer == nil {
				_, tok, err := resolveTokenizer("", "")
				if err != nil {
					return err
				}
				p.Tokenizer = tok
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
			defer stop()
			dec, ok := data.LiberoDecodings[decoding]
			if !ok {
				return fmt.Errorf("eval libero: --decoding %q (want greedy or official)", decoding)
			}
			rep, err := eval.RunLibero(ctx, l, stats, split, limit, eval.PipelinePredictor(p, dec, sampleSeed), cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			rep.Model = modelDir
			b, err := json.MarshalIndent(rep, "", "  ")
			if err != nil {
				return err
			}
			if out != "" {
				if err := os.MkdirAll(out, 0o755); err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(out, "results.json"), append(b, '\n'), 0o644); err != nil {
					return err
				}
			}
			if asJSON {
				_, err = fmt.Fprintln(cmd.OutOrStdout(), string(b))
				return err
			}
			rep.WriteTable(cmd.OutOrStdout())
			return nil
		},
	}
	fl := cmd.Flags()
	lf.register(cmd)
	fl.StringVar(&modelDir, "model", "", "fine-tuned checkpoint directory")
	fl.StringVar(&tokPath, "tokenizer", "", "tokenizer directory (default: the checkpoint's)")
	load.add(fl, true)
	fl.StringVar(&split, "split", "heldout", "train | heldout | all")
	fl.StringVar(&statsPath, "statistics", "", "dataset_statistics.json (default: the checkpoint's)")
	fl.StringVar(&out, "out", "", "write results.json into this folder")
	fl.IntVar(&limit, "limit", 0, "evaluate at most N steps per task (0 = all)")
	fl.StringVar(&decoding, "decoding", "greedy", "greedy (argmax, the first 7 of 8 new tokens) or official (microsoft/Magma agents/libero: temperature 0.7 sampling, "+
		"max_new_tokens 1000, action = output_ids[-8:-1], frame resized to 256x256)")
	fl.Uint64Var(&sampleSeed, "sample-seed", 0, "seed of --decoding official's sampling")
	fl.BoolVar(&asJSON, "json", false, "print the JSON report instead of the table")
	return cmd
}
