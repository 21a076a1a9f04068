package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/magma-go/magma/model"
	"github.com/magma-go/magma/model/ckpt"
	"github.com/magma-go/magma/model/gguf"
)

func newExportCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write a checkpoint in another format (gguf: llama.cpp)",
	}
	cmd.AddCommand(newExportGGUFCmd())
	return cmd
}

const exportGGUFLong = `Write Magma's Llama-3 language model as a standard llama.cpp ` + "`llama`" + ` GGUF (v3):
llama.cpp's tensor names (token_embd, blk.N.attn_q/k/v/output, ffn_gate/up/down,
attn_norm, ffn_norm, output_norm, output), the Q/K row permutation of llama.cpp's
converter (convert_hf_to_gguf.py), the llama.* hyperparameters and the tokenizer
(tokenizer.ggml.model gpt2, pre llama-bpe, tokens with their types, merges,
bos/eos/pad ids, chat template) from the checkpoint's tokenizer.json. llama.cpp
(and anything built on it) loads the file as a text-only Llama-3 model.

--text-only is required: the vision tower and projector have no llama.cpp
architecture here, so only the language model is exported (images cannot be
used with the file).

--type sets the 2-D weights' type: bf16 (exact for a bf16 checkpoint), f16,
f32, q8_0 or q4_k (q4_k: output.weight is Q6_K, as in llama.cpp's Q4_K mixes;
the quantized types need the kernels' quantizers and are refused with a clear
error by a build without them). Norms are F32. Tensors are read in place and
written row by row: an 8B model needs a few MB of memory.`

func newExportGGUFCmd() *cobra.Command {
	var (
		dir, out, typ, tokDir, name string
		textOnly, force             bool
	)
	cmd := &cobra.Command{
		Use:   "gguf",
		Short: "Write the language model as a llama.cpp GGUF (--text-only)",
		Long:  exportGGUFLong,
		Example: `  magma export gguf --model out/tiny --text-only --type bf16 --out out/tiny.gguf
  magma export gguf --model /big/magma-8b --text-only --type q8_0 --out /big/magma-8b-q8_0.gguf`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if dir == "" || out == "" {
				return errors.New("--model and --out are required")
			}
			if !textOnly {
				return errors.New("--text-only is required: llama.cpp has no architecture for Magma's vision tower here, so only the Llama-3 language model can be exported (pass --text-only to export it)")
			}
			t, err := gguf.ParseTensorType(typ)
			if err != nil {
				return fmt.Errorf("--type: %w", err)
			}
			switch t {
			case gguf.TypeBF16, gguf.TypeF16, gguf.TypeF32, gguf.TypeQ8_0, gguf.TypeQ4_K:
			default:
				return fmt.Errorf("--type %s: want bf16, f16, f32, q8_0 or q4_k", typ)
			}
			if _, err := os.Stat(out); err == nil && !force {
				return fmt.Errorf("--out %s exists; pass --force to replace it", out)
			}
			cfg, _, err := model.LoadConfig(dir)
			if err != nil {
				return err
			}
			ck, err := ckpt.Open(dir)
			if err != nil {
				return err
			}
			defer ck.Close()
			if tokDir == "" {
				tokDir = dir
			}
			if name == "" {
				name = strings.TrimSuffix(filepath.Base(filepath.Clean(dir)), "/")
			}
			rep, err := gguf.ExportLlama(out, ck, cfg.Text, gguf.ExportOptions{Type: t, Prefix: "language_model.", Name: name, TokenizerDir: tokDir})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: %d tensors, %d bytes of tensor data (%s)\n", out, rep.Tensors, rep.Bytes, rep.TypesSummary())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "model", "", "checkpoint folder (config.json, safetensors, tokenizer.json)")
	f.StringVar(&out, "out", "", "GGUF file to write")
	f.StringVar(&typ, "type", "bf16", "type of the 2-D weights: bf16, f16, f32, q8_0 or q4_k")
	f.BoolVar(&textOnly, "text-only", false, "export the language model only (required: the vision tower has no llama.cpp architecture)")
	f.StringVar(&tokDir, "tokenizer", "", "folder of tokenizer.json (default: --model)")
	f.StringVar(&name, "name", "", "general.name (default: the model folder's name)")
	f.BoolVar(&force, "force", false, "replace --out if it exists")
	return cmd
}
