// Command magma trains, evaluates and serves the Magma multimodal agent model.
// This file builds the command tree; every subcommand lives in its own file
// (flags, then one call into the library packages).
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/magma-go/magma/train/dist"
	"github.com/magma-go/magma/vision"
)

// newRootCmd builds the whole command tree with a job of its own.
func newRootCmd() *cobra.Command { return newCommandTree(new(job)) }

// newCommandTree builds the whole command tree; its training commands join
// j.
func newCommandTree(j *job) *cobra.Command {
	root := &cobra.Command{
		Use:   "magma",
		Short: "Magma multimodal agent model: pretrain, finetune, eval, serve, generate",
		Long: `magma trains, evaluates and serves Microsoft's Magma multimodal agent model
(ConvNeXt vision encoder + Llama-3 decoder) on the CPU.

  Models:      init (random checkpoint of a preset), info, generate, serve
               (OpenAI-compatible chat, UI grounding /v1/ground, robot /act)
  Training:    pretrain (data mixture; default: tiny model, synthetic data),
               finetune sft (LLaVA conversations), finetune libero (LIBERO
               demos, LoRA or full), plot (loss curves of a run)
  Evaluation:  eval screenspot (ScreenSpot/-v2/-Pro), eval mind2web,
               eval libero (offline action accuracy),
               eval ` + qaNames(" | ") + `
               (VQA, hallucination, video QA, Android navigation),
               eval synthetic / synthetic-qa (demo data)
  Data tools:  data inspect (training sources), som (Set-of-Mark),
               tom (Trace-of-Mark), tokenize

Every command has --help with examples. Start with: magma pretrain`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().Bool("verbose", false, "more output, including OpenCV/FFmpeg/GStreamer library logging (silenced by default)")
	root.PersistentPreRun = func(cmd *cobra.Command, _ []string) {
		// serve has its own --verbose (debug logs): it also shows these.
		if v, err := cmd.Flags().GetBool("verbose"); err != nil || !v {
			vision.QuietLibraryLogs()
		}
	}
	finetune := newFinetuneCmd(j) // sft
	finetune.AddCommand(newFinetuneLiberoCmd(j))
	eval := newEvalCmd() // screenspot, mind2web, synth
	eval.AddCommand(newEvalLiberoCmd())
	root.AddCommand(
		newGenerateCmd(),
		newInfoCmd(),
		newInitCmd(),
		newExportCmd(),
		newTokenizeCmd(),
		newSomCmd(),
		newTomCmd(),
		newDataCmd(),
		newPretrainCmd(j),
		finetune,
		eval,
		newServeCmd(),
		newPlotCmd(),
		newQuantizeCmd(),
	)
	return root
}

func main() {
	var j job
	err := newCommandTree(&j).Execute()
	if j.comm != nil {
		exitJob(j.comm, err) // an MPI job (pretrain/finetune under mpirun)
	}
	if err != nil {
		if r := dist.LauncherRank(); r != "" {
			// Under a launcher, before or without joining the job.
			fmt.Fprintf(os.Stderr, "magma: rank %s: %v\n", r, err)
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "magma:", err)
		os.Exit(1)
	}
}
