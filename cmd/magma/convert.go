package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/magma-go/magma/model/pth"
)

// newConvertCmd is `magma convert`: checkpoint format conversions.
func newConvertCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "convert",
		Short: "Convert checkpoints between formats (pth2safetensors)",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newConvertPthCmd())
	return cmd
}

// newConvertPthCmd wires `convert pth2safetensors IN OUT` to
// pth.ConvertToSafetensors; all logic lives in package model/pth.
func newConvertPthCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "pth2safetensors IN.pth OUT.safetensors",
		Short: "Convert a PyTorch torch.save state dict (.pth/.pt/.bin) to safetensors",
		Long: `Reads a torch.save file (zip format, torch >= 1.6) without running its pickle:
only the allow-listed globals of a state dict (tensor rebuilds, storage types,
OrderedDict) are known, anything else (os.system, a pickled model class, numpy
objects) is refused with its name. Every tensor is written under its name
(nested dicts joined with ".", e.g. "model.encoder.weight"), shape and dtype
(F32, F64, BF16, F16, I64, I32, I16, I8, U8, BOOL); views are stored contiguous.`,
		Example: `  magma convert pth2safetensors scaled_offline.pth scaled_offline.safetensors
  magma convert pth2safetensors convnext_base_1k_224.pth convnext.safetensors`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := pth.ConvertToSafetensors(args[0], args[1])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %d tensors to %s\n", n, args[1])
			return nil
		},
	}
}
