// Command magma trains, evaluates and serves the Magma multimodal agent model.
// This file builds the command tree; every subcommand lives in its own file
// (flags, then one call into the library packages).
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// newRootCmd builds the whole command tree.
func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "magma",
		Short:         "Magma multimodal agent model: pretrain, finetune, eval, serve, generate",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	finetune := newFinetuneCmd() // sft
	finetune.AddCommand(newFinetuneLiberoCmd())
	eval := newEvalCmd() // screenspot, mind2web, synth
	eval.AddCommand(newEvalLiberoCmd())
	root.AddCommand(
		newGenerateCmd(),
		newInfoCmd(),
		newInitCmd(),
		newTokenizeCmd(),
		newSomCmd(),
		newTomCmd(),
		newDataCmd(),
		newPretrainCmd(),
		finetune,
		eval,
		newServeCmd(),
		newPlotCmd(),
	)
	return root
}

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "magma:", err)
		os.Exit(1)
	}
}
