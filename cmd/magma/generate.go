package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/magma-go/magma/model"
	"github.com/magma-go/magma/model/ckpt"
	"github.com/magma-go/magma/tom"
	"github.com/magma-go/magma/vision/imaging"
	"github.com/spf13/cobra"
)

func newGenerateCmd() *cobra.Command {
	var (
		modelDir, tokPath, prompt, system, promptIDs, logitsOut string
		images                                                  []string
		video                                                   string
		frames                                                  int
		maxNew, topK                                            int
		temperature, topP                                       float64
		seed                                                    uint64
		asJSON                                                  bool
		load                                                    loadFlags
	)
	cmd := &cobra.Command{
		Use:   "generate",
		Short: "Answer a prompt about images or a video clip with a Magma checkpoint",
		Example: `  magma generate --model out/tiny --image photo.png --prompt "What is in the image?"
  magma generate --model out/tiny --video clip.mp4 --frames 8 --prompt "What happens in the video?"
  magma generate --model /big/magma-8b --image photo.png --prompt "Describe it." --max-context 1024 --json   # bf16 in place
  magma generate --model DIR --dtype f32 --image photo.png --prompt "..."   # convert to float32 on load
  magma generate --model DIR --image a.png --prompt-ids 128000,128006,... --json --logits-out logits.safetensors`,
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := load.pipeline(modelDir, tokPath, 1)
			if err != nil {
				return err
			}
			defer p.Close()
			req := model.Request{
				Prompt: prompt, System: system, MaxNewTokens: maxNew, Temperature: temperature,
				TopP: topP, TopK: topK, Seed: seed, KeepLogits: logitsOut != "",
			}
			if promptIDs != "" {
				if req.PromptIDs, err = parseIDs(promptIDs); err != nil {
					return fmt.Errorf("--prompt-ids: %w", err)
				}
			} else if prompt == "" {
				return fmt.Errorf("give --prompt (or --prompt-ids)")
			}
			for _, path := range images {
				img, err := imaging.DecodeImage(path)
				if err != nil {
					return err
				}
				req.Images = append(req.Images, img)
			}
			if video != "" {
				fr, err := tom.SampleFrames(video, frames)
				if err != nil {
					return fmt.Errorf("--video: %w", err)
				}
				req.Images = append(req.Images, fr...)
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
			defer stop()
			res, err := p.Generate(ctx, req)
			if err != nil {
				return err
			}
			if logitsOut != "" {
				if err := ckpt.WriteLogits(logitsOut, res.Logits); err != nil {
					return err
				}
			}
			out := cmd.OutOrStdout()
			if !asJSON {
				fmt.Fprintln(out, res.Text)
				return nil
			}
			return json.NewEncoder(out).Encode(map[string]any{
				"text":                 res.Text,
				"prompt_ids":           res.PromptIDs,
				"output_ids":           res.OutputIDs,
				"sequence_length":      res.SequenceLength,
				"preprocess_ms":        ms(res.Timing.Preprocess),
				"embed_ms":             ms(res.Timing.Embed),
				"prefill_ms":           ms(res.Timing.Prefill),
				"prefill_tokens_per_s": res.Timing.PrefillTokensPerSecond(res.SequenceLength),
				"decode_ms":            ms(res.Timing.Decode),
				"decode_steps":         res.Timing.Steps,
				"decode_step_ms":       stepsMS(res.Timing.StepTimes),
				"decode_tokens_per_s":  res.Timing.DecodeTokensPerSecond(),
				"weights":              p.Weights,
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&modelDir, "model", "", "checkpoint directory (Hugging Face layout)")
	f.StringVar(&tokPath, "tokenizer", "", "tokenizer directory or tokenizer.json (default: the model directory)")
	f.StringSliceVar(&images, "image", nil, "image file (PNG, JPEG, WebP); repeat for several")
	f.StringVar(&video, "video", "", "video file (anything OpenCV reads) or folder of frames; --frames frames sampled uniformly are passed as images")
	f.IntVar(&frames, "frames", 8, "frames sampled from --video")
	f.StringVar(&prompt, "prompt", "", "user prompt")
	f.StringVar(&system, "system", "", `system prompt (default "You are agent that can see, talk and act.")`)
	f.StringVar(&promptIDs, "prompt-ids", "", "comma-separated prompt token ids, used as they are instead of --prompt")
	f.IntVar(&maxNew, "max-new-tokens", 64, "tokens to generate at most")
	f.Float64Var(&temperature, "temperature", 0, "sampling temperature; 0 = greedy")
	f.Float64Var(&topP, "top-p", 1, "nucleus sampling threshold")
	f.IntVar(&topK, "top-k", 0, "top-k sampling; 0 = off")
	f.Uint64Var(&seed, "seed", 0, "sampling seed")
	f.BoolVar(&asJSON, "json", false, `print {"text", "prompt_ids", "output_ids", ...} as JSON`)
	f.StringVar(&logitsOut, "logits-out", "", "write the logits of every step to this safetensors file (tensor \"logits\" [steps, vocab])")
	load.add(f, true)
	_ = cmd.MarkFlagRequired("model")
	return cmd
}

func parseIDs(s string) ([]int, error) {
	var ids []int
	for i, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("item %d %q is not an integer", i, f)
		}
		ids = append(ids, v)
	}
	return ids, nil
}

func stepsMS(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = ms(d)
	}
	return out
}
