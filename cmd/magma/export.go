package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"gorgonia.org/tensor"

	"github.com/magma-go/magma/kernels"

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
f32, or the quantized mixes of magma quantize (same table, same blocks, so
llama.cpp and magma run the same weights): q8_0, q4_k, q4_k_m (Q4_K with Q6_K
for the head and for attn_v/ffn_down of llama.cpp's "more bits" layers). In
the quantized mixes the token embedding keeps its stored type (as magma
quantize keeps it), and a weight whose input dimension is not a multiple of
the block falls back to Q8_0 (or its stored type). Norms are F32. Tensors are
read in place and written row by row: an 8B model needs a few MB of memory.`

func newExportGGUFCmd() *cobra.Command {
	var (
		dir, out, typ, tokDir, name string
		textOnly, force, asJSON     bool
		placeholder                 bool
	)
	cmd := &cobra.Command{
		Use:   "gguf",
		Short: "Write the language model as a llama.cpp GGUF (--text-only)",
		Long:  exportGGUFLong,
		Example: `  magma export gguf --model out/tiny --text-only --type bf16 --out out/tiny.gguf
  magma export gguf --model /big/magma-8b --text-only --type q4_k_m --out /big/magma-8b-q4_k_m.gguf`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if dir == "" || out == "" {
				return errors.New("--model and --out are required")
			}
			if !textOnly {
				return errors.New("--text-only is required: llama.cpp has no architecture for Magma's vision tower here, so only the Llama-3 language model can be exported (pass --text-only to export it)")
			}
			typ = strings.ToLower(typ)
			opts := gguf.ExportOptions{Prefix: "language_model.", Name: name}
			switch typ {
			case "bf16", "f16", "f32":
				opts.Type, _ = gguf.ParseTensorType(typ)
			case "q8_0", "q4_k", "q4_k_m":
				opts.Type = gguf.TypeQ8_0
				opts.FileType = 7 // LLAMA_FTYPE_MOSTLY_Q8_0
				if typ != "q8_0" {
					opts.Type = gguf.TypeQ4_K
					opts.FileType = map[string]uint32{"q4_k": 14, "q4_k_m": 15}[typ] // MOSTLY_Q4_K_S, _M
				}
			default:
				return fmt.Errorf("--type %q: want bf16, f16, f32, q8_0, q4_k or q4_k_m", typ)
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
			if opts.Name == "" {
				opts.Name = filepath.Base(filepath.Clean(dir))
			}
			opts.TokenizerDir = tokDir
			if placeholder {
				if opts.Tokenizer, err = gguf.PlaceholderTokenizer(cfg.Text.VocabSize, cfg.Text); err != nil {
					return err
				}
			}
			if opts.Type.BlockWeights() > 1 {
				// magma quantize's table: the same tensors get the same types
				layers := cfg.Text.NumHiddenLayers
				opts.TypeFor = func(src string, shape []int) (gguf.TensorType, bool) {
					dt, _ := model.QuantTypeFor(src, shape, layers, typ)
					id, ok := kernels.GGMLType(dt)
					return gguf.TensorType(id), ok && dt != (tensor.Dtype{})
				}
			}
			rep, err := gguf.ExportLlama(out, ck, cfg.Text, opts)
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]any{"out": out, "tensors": rep.Written, "bytes": rep.Bytes})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: %d tensors, %d bytes of tensor data (%s)\n", out, rep.Tensors, rep.Bytes, rep.TypesSummary())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "model", "", "checkpoint folder (config.json, safetensors, tokenizer.json)")
	f.StringVar(&out, "out", "", "GGUF file to write")
	f.StringVar(&typ, "type", "bf16", "type of the 2-D weights: bf16, f16, f32, q8_0, q4_k or q4_k_m")
	f.BoolVar(&asJSON, "json", false, "print the tensors written (name, checkpoint name, shape, type) as JSON")
	f.BoolVar(&textOnly, "text-only", false, "export the language model only (required: the vision tower has no llama.cpp architecture)")
	f.StringVar(&tokDir, "tokenizer", "", "folder of tokenizer.json (default: --model)")
	f.BoolVar(&placeholder, "placeholder-vocab", false, "no tokenizer: write a byte-level placeholder vocabulary (for test checkpoints such as model/testdata/parity; evaluate the file with token ids)")
	f.StringVar(&name, "name", "", "general.name (default: the model folder's name)")
	f.BoolVar(&force, "force", false, "replace --out if it exists")
	return cmd
}
