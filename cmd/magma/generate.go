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

// generateFlags are the flags of generate.
type generateFlags struct {
	modelDir, tokPath, prompt, system, promptIDs, logitsOut string
	images                                                  []string
	video                                                   string
	frames                                                  int
	maxNew, topK                                            int
	temperature, topP                                       float64
	seed                                                    uint64
	asJSON                                                  bool
	load                                                    loadFlags
}

func newGenerateCmd() *cobra.Command {
	var o generateFlags
	cmd := &cobra.Command{
		Use:   "generate",
		Short: "Answer a prompt about images or a video clip with a Magma checkpoint",
		Example: `  magma generate --model out/tiny --image photo.png --prompt "What is in the image?"
  magma generate --model out/tiny --video clip.mp4 --frames 8 --prompt "What happens in the video?"
  magma generate --model /big/magma-8b --image photo.png --prompt "Describe it." --max-context 1024 --json   # bf16 in place
  magma generate --model DIR --dtype f32 --image photo.png --prompt "..."   # convert to float32 on load
  magma generate --model DIR --image a.png --prompt-ids 128000,128006,... --json --logits-out logits.safetensors`,
		RunE: o.runE,
	}
	f := cmd.Flags()
	f.StringVar(&o.modelDir, "model", "", "checkpoint directory (Hugging Face layout)")
	f.StringVar(&o.tokPath, "tokenizer", "", "tokenizer directory or tokenizer.json (default: the model directory)")
	f.StringSliceVar(&o.images, "image", nil, "image file (PNG, JPEG, WebP); repeat for several")
	f.StringVar(&o.video, "video", "", "video file (anything OpenCV reads) or folder of frames; --frames frames sampled uniformly are passed as images")
	f.IntVar(&o.frames, "frames", 8, "frames sampled from --video")
	f.StringVar(&o.prompt, "prompt", "", "user prompt")
	f.StringVar(&o.system, "system", "", `system prompt (default "You are agent that can see, talk and act.")`)
	f.StringVar(&o.promptIDs, "prompt-ids", "", "comma-separated prompt token ids, used as they are instead of --prompt")
	f.IntVar(&o.maxNew, "max-new-tokens", 64, "tokens to generate at most")
	f.Float64Var(&o.temperature, "temperature", 0, "sampling temperature; 0 = greedy")
	f.Float64Var(&o.topP, "top-p", 1, "nucleus sampling threshold")
	f.IntVar(&o.topK, "top-k", 0, "top-k sampling; 0 = off")
	f.Uint64Var(&o.seed, "seed", 0, "sampling seed")
	f.BoolVar(&o.asJSON, "json", false, `print {"text", "prompt_ids", "output_ids", ...} as JSON`)
	f.StringVar(&o.logitsOut, "logits-out", "", "write the logits of every step to this safetensors file (tensor \"logits\" [steps, vocab])")
	o.load.add(f, true)
	_ = cmd.MarkFlagRequired("model")
	return cmd
}

func (o *generateFlags) runE(cmd *cobra.Command, _ []string) error {
	p, err := o.load.pipeline(o.modelDir, o.tokPath, 1)
	if err != nil {
		return err
	}
	defer p.Close()
	req, err := o.request()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res, err := p.Generate(ctx, req)
	if err != nil {
		return err
	}
	if o.logitsOut != "" {
		if err := ckpt.WriteLogits(o.logitsOut, res.Logits); err != nil {
			return err
		}
	}
	out := cmd.OutOrStdout()
	if !o.asJSON {
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
}

// request is the generation request the flags describe: the prompt (or its
// ids), the images and the video's sampled frames.
func (o *generateFlags) request() (model.Request, error) {
	req := model.Request{
		Prompt: o.prompt, System: o.system, MaxNewTokens: o.maxNew, Temperature: o.temperature,
		TopP: o.topP, TopK: o.topK, Seed: o.seed, KeepLogits: o.logitsOut != "",
	}
	if o.promptIDs != "" {
		ids, err := parseIDs(o.promptIDs)
		if err != nil {
			return req, fmt.Errorf("--prompt-ids: %w", err)
		}
		req.PromptIDs = ids
	} else if o.prompt == "" {
		return req, fmt.Errorf("give --prompt (or --prompt-ids)")
	}
	for _, path := range o.images {
		img, err := imaging.DecodeImage(path)
		if err != nil {
			return req, err
		}
		req.Images = append(req.Images, img)
	}
	if o.video != "" {
		fr, err := tom.SampleFrames(o.video, o.frames)
		if err != nil {
			return req, fmt.Errorf("--video: %w", err)
		}
		req.Images = append(req.Images, fr...)
	}
	return req, nil
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
