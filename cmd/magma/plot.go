package main

import (
	"fmt"
	"path/filepath"

	"github.com/magma-go/magma/train"
	"github.com/spf13/cobra"
)

func newPlotCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:     "plot RUN",
		Short:   "Draw the loss and learning-rate curves of a training run (RUN/metrics.jsonl) as a PNG",
		Example: "  magma plot runs/pretrain\n  magma plot runs/pretrain --out /tmp/curves.png",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			run := args[0]
			ms, err := train.ReadMetrics(filepath.Join(run, train.MetricsFile))
			if err != nil {
				return fmt.Errorf("plot: %w", err)
			}
			if out == "" {
				out = filepath.Join(run, train.PlotFile)
			}
			if err := train.Plot(ms, out, filepath.Base(filepath.Clean(run))); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (%d points, last step %d, loss %.4f)\n", out, len(ms), ms[len(ms)-1].Step, ms[len(ms)-1].Loss)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "PNG to write (default RUN/curves.png)")
	return cmd
}
