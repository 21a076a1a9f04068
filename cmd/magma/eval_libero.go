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

// evalLiberoFlags are the flags of eval libero.
type evalLiberoFlags struct {
	lf                       liberoFlags
	modelDir, tokPath, split string
	load                     loadFlags
	statsPath, out, decoding string
	limit                    int
	sampleSeed               uint64
	asJSON                   bool
}

// evalLiberoLong is eval libero's --help.
const evalLiberoLong = `libero replays the demo steps of a suite (a folder of *_demo.hdf5 files, or
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
` + "`magma serve`" + `'s /act.`

func newEvalLiberoCmd() *cobra.Command {
	var o evalLiberoFlags
	cmd := &cobra.Command{
		Use:     "libero --model CKPT --data SUITE_DIR [--split heldout]",
		Short:   "Offline LIBERO evaluation: action-token accuracy, L1 and gripper accuracy per task",
		Long:    evalLiberoLong,
		Example: `  magma eval libero --model runs/libero_spatial/checkpoints/step-002000 --data ~/LIBERO/libero_spatial --split heldout`,
		Args:    cobra.NoArgs,
		RunE:    o.runE,
	}
	fl := cmd.Flags()
	o.lf.register(cmd)
	fl.StringVar(&o.modelDir, "model", "", "fine-tuned checkpoint directory")
	fl.StringVar(&o.tokPath, "tokenizer", "", "tokenizer directory (default: the checkpoint's)")
	o.load.add(fl, true)
	fl.StringVar(&o.split, "split", "heldout", "train | heldout | all")
	fl.StringVar(&o.statsPath, "statistics", "", "dataset_statistics.json (default: the checkpoint's)")
	fl.StringVar(&o.out, "out", "", "write results.json into this folder")
	fl.IntVar(&o.limit, "limit", 0, "evaluate at most N steps per task (0 = all)")
	fl.StringVar(&o.decoding, "decoding", "greedy", "greedy (argmax, the first 7 of 8 new tokens) or official (microsoft/Magma agents/libero: temperature 0.7 sampling, "+
		"max_new_tokens 1000, action = output_ids[-8:-1], frame resized to 256x256)")
	fl.Uint64Var(&o.sampleSeed, "sample-seed", 0, "seed of --decoding official's sampling")
	fl.BoolVar(&o.asJSON, "json", false, "print the JSON report instead of the table")
	return cmd
}

func (o *evalLiberoFlags) runE(cmd *cobra.Command, _ []string) error {
	if o.modelDir == "" {
		return fmt.Errorf("eval libero: --model is required")
	}
	l, err := o.lf.open()
	if err != nil {
		return err
	}
	defer l.Close()
	// The checkpoint's split, unless --shots or --shots-per select anew.
	useSplit := !cmd.Flags().Changed("shots") && !cmd.Flags().Changed("shots-per")
	stats, from, err := l.LoadCheckpointMeta(o.modelDir, o.statsPath, useSplit)
	if err != nil {
		return err
	}
	if from == "" {
		fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s has no %s; using statistics recomputed from the training demos\n", o.modelDir, action.DatasetStatisticsFile)
	}
	p, err := o.load.pipeline(o.modelDir, o.tokPath, 1)
	if err != nil {
		return err
	}
	if p.Tokenizer == nil {
		if _, p.Tokenizer, err = resolveTokenizer("", ""); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	dec, ok := data.LiberoDecodings[o.decoding]
	if !ok {
		return fmt.Errorf("eval libero: --decoding %q (want greedy or official)", o.decoding)
	}
	rep, err := eval.RunLibero(ctx, l, stats, o.split, o.limit, eval.PipelinePredictor(p, dec, o.sampleSeed), cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	rep.Model = o.modelDir
	return o.report(cmd, rep)
}

// report writes results.json into --out and prints the table (--json: the
// report).
func (o *evalLiberoFlags) report(cmd *cobra.Command, rep *eval.LiberoReport) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if o.out != "" {
		if err := os.MkdirAll(o.out, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(o.out, "results.json"), append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	if o.asJSON {
		_, err = fmt.Fprintln(cmd.OutOrStdout(), string(b))
		return err
	}
	rep.WriteTable(cmd.OutOrStdout())
	return nil
}
