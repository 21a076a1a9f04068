package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/magma-go/magma/data"
	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/model"
	"github.com/spf13/cobra"
)

// quantizeLong is quantize's --help.
const quantizeLong = `Rewrite a checkpoint's weights as ggml blocks (Q8_0, Q4_K, Q6_K: llama.cpp's
layouts byte for byte) in one GGUF v3 file, model.gguf, in --out, beside
config.json, preprocessor_config.json and the tokenizer. Tensors keep their
names. generate, serve, eval and info take the folder as --model: the GGUF is
memory-mapped and its blocks are used in place.

Types: q8_0 (every linear weight Q8_0), q4_k (every linear weight Q4_K), q4_k_m
(llama.cpp's Q4_K_M mix: Q4_K, with Q6_K for lm_head and for v_proj and
down_proj in the first and last eighth of the layers and every third layer
between). Kept as stored: the token embedding (a decode step reads one row),
norms, biases, layer scales, convolution kernels, the row separator; a matrix
whose input dimension is not a multiple of 256 takes Q8_0 instead of a K-quant.
The vision tower's and projector's linear layers are quantized too.
magma info --model OUT lists the choices and the bytes by type.

Streaming: one chunk of rows at a time is read from the mapped shards and
written, so memory stays small whatever the model (Magma-8B: see README).`

func newQuantizeCmd() *cobra.Command {
	var src, out, typ string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "quantize",
		Short: "Write a checkpoint's weights as 8-bit or 4-bit ggml blocks in a GGUF file (q8_0, q4_k, q4_k_m)",
		Long:  quantizeLong,
		Example: `  magma quantize --model out/tiny --type q8_0 --out out/tiny-q8
  magma quantize --model /big/magma-8b --type q4_k_m --out /big/magma-8b-q4km
  magma generate --model /big/magma-8b-q4km --image cat.jpg --prompt "What is this?"
  magma info --model /big/magma-8b-q4km   # bytes by type and the quantization choices`,
		RunE: func(cmd *cobra.Command, args []string) error {
			typ = strings.ToLower(typ)
			if err := refuseSafetensors(out); err != nil {
				return err
			}
			prog := newByteProgress(cmd.ErrOrStderr())
			rep, err := model.Quantize(src, out, model.QuantizeOptions{Type: typ, Progress: prog.update})
			prog.done()
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			var parts []string
			for _, t := range []string{"Q4_K", "Q6_K", "Q8_0", "BF16", "F16", "F32"} {
				if n, ok := rep.BytesByType[t]; ok {
					parts = append(parts, fmt.Sprintf("%s %s", t, kernels.FormatBytes(n)))
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (%s): %d tensors, %s from %s (%s) in %.1fs\n",
				rep.Path, typ, len(rep.Tensors), kernels.FormatBytes(rep.FileBytes), src, kernels.FormatBytes(rep.SourceBytes), rep.Seconds)
			fmt.Fprintf(cmd.OutOrStdout(), "bytes by type: %s\n", strings.Join(parts, ", "))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&src, "model", "", "checkpoint directory to quantize (safetensors, any stored dtype)")
	f.StringVar(&out, "out", "", "output directory (model.gguf, configs, tokenizer)")
	f.StringVar(&typ, "type", "q4_k_m", "q8_0, q4_k or q4_k_m")
	f.BoolVar(&asJSON, "json", false, "print every tensor's type and the reason as JSON")
	_ = cmd.MarkFlagRequired("model")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

// refuseSafetensors refuses an --out holding a checkpoint, unless it is
// an earlier quantized folder (which is replaced).
func refuseSafetensors(out string) error {
	if model.IsQuantizedDir(out) {
		return nil
	}
	return refuseCheckpoint(out)
}

// byteProgress shows a conversion's progress by bytes: a redrawn bar on a
// terminal, a line every 10% otherwise.
type byteProgress struct {
	w     io.Writer
	tty   bool
	t0    time.Time
	drawT time.Time
	step  int64 // last 10% step printed (plain lines)
	drawn bool
}

func newByteProgress(w io.Writer) *byteProgress {
	return &byteProgress{w: w, tty: data.IsTerminal(w), t0: time.Now(), step: -1}
}

func (p *byteProgress) update(done, total int64, tensor string) {
	frac := float64(done) / float64(max(1, total))
	el := time.Since(p.t0).Seconds()
	eta := "?"
	if frac > 0 {
		eta = (time.Duration(el/frac*(1-frac)) * time.Second).Round(time.Second).String()
	}
	rate := float64(done) / max(el, 1e-9) / (1 << 20)
	if !p.tty {
		if s := int64(frac * 10); s > p.step {
			p.step = s
			fmt.Fprintf(p.w, "quantize %3.0f%% %s/%s %.0f MB/s eta %s (%s)\n", 100*frac, kernels.FormatBytes(done), kernels.FormatBytes(total), rate, eta, tensor)
		}
		return
	}
	now := time.Now()
	if now.Sub(p.drawT) < 200*time.Millisecond && done < total {
		return
	}
	p.drawT = now
	const width = 24
	fill := min(width, int(frac*width))
	fmt.Fprintf(p.w, "\r\033[K%3.0f%% %s%s %s/%s [%.0f MB/s, eta %s] %s", 100*frac, strings.Repeat("█", fill), strings.Repeat("░", width-fill),
		kernels.FormatBytes(done), kernels.FormatBytes(total), rate, eta, tensor)
	p.drawn = true
}

func (p *byteProgress) done() {
	if p.tty && p.drawn {
		fmt.Fprintln(p.w)
	}
}
