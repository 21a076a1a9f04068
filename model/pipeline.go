package model

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/llm"
	"github.com/magma-go/magma/llm/tokenizer"
	"github.com/magma-go/magma/vision/imaging"
	"gorgonia.org/tensor"
)

// Pipeline is a loaded model with its tokenizer and image processor: text
// and images in, generated text out. It is what `magma generate` and the
// server drive.
type Pipeline struct {
	*Loaded
	// Tokenizer is nil when the checkpoint directory has no tokenizer files;
	// requests must then give prompt ids.
	Tokenizer *tokenizer.Tokenizer
	// LoRA tells that the directory held a PEFT adapter (a LoRA finetune's
	// checkpoint). Over weights the process owns it is folded into them;
	// over a base used in place (mapped bf16 shards, as Magma-8B) it stays
	// beside it, y = x·Wᵀ + (alpha/r)·(x·Aᵀ)·Bᵀ, as PEFT runs an unmerged
	// adapter: merging would copy every adapted weight, where the adapters
	// add a small fraction to the bytes a decode step reads (figures for
	// Magma-8B in BENCHMARKS.md, "One LoRA step of an 8B-size Magma").
	LoRA bool
	// MaxContext caps a request's positions (prompt with images expanded
	// plus new tokens); 0 means max_position_embeddings. The KV cache of a
	// request holds exactly its prompt and new tokens, never more.
	MaxContext int
	// KVCacheDtype is the KV caches' storage: the zero Dtype or
	// tensor.Float32 (float32), or kernels.BFloat16 (half the bytes; keys and
	// values rounded to bfloat16 as they are cached).
	KVCacheDtype tensor.Dtype
}

// KVElemSize is the bytes per element of the pipeline's KV caches
// (kernels.KVElemSize of KVCacheDtype).
func (p *Pipeline) KVElemSize() (int, error) {
	n, err := kernels.KVElemSize(p.KVCacheDtype)
	if err != nil {
		return 0, fmt.Errorf("KV cache: %w", err)
	}
	return n, nil
}

// LoadPipeline loads the checkpoint in dir and its tokenizer (dir itself, or
// tokenizerPath when not empty), keeping the stored dtypes.
func LoadPipeline(dir, tokenizerPath string) (*Pipeline, error) {
	return LoadPipelineWith(dir, tokenizerPath, LoadOptions{})
}

// LoadPipelineWith is LoadPipeline with load options (dtype, memory check).
func LoadPipelineWith(dir, tokenizerPath string, opts LoadOptions) (_ *Pipeline, err error) {
	ld, err := LoadWith(dir, opts)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			ld.Close()
		}
	}()
	p := &Pipeline{Loaded: ld}
	if p.LoRA, err = LoadLoRA(dir, ld.Model); err != nil {
		return nil, err
	}
	if p.LoRA && !adaptsMappedBase(ld.Model) {
		// Weights the process owns (float32 or converted copies) take the
		// adapters folded in (PEFT's merge_and_unload): no adapter cost per
		// token.
		if _, err := ld.Model.LM.MergeLoRA(); err != nil {
			return nil, fmt.Errorf("%s: %w", dir, err)
		}
	}
	if tokenizerPath == "" {
		if _, err := os.Stat(filepath.Join(dir, "tokenizer.json")); err == nil {
			tokenizerPath = dir
		}
	}
	if tokenizerPath != "" {
		if p.Tokenizer, err = tokenizer.Load(tokenizerPath); err != nil {
			return nil, err
		}
		if v := p.Tokenizer.VocabSize(); v > ld.Model.Config.Text.VocabSize {
			return nil, fmt.Errorf("tokenizer %s has %d tokens but the model's vocab_size is %d", tokenizerPath, v, ld.Model.Config.Text.VocabSize)
		}
		if eos := p.Tokenizer.EOS(); eos >= 0 && eos == ld.Model.Config.ImageTokenIndex {
			return nil, fmt.Errorf("%s: key \"image_token_index\": %d is the tokenizer's EOS token %q", dir, eos, mustToken(p.Tokenizer, eos))
		}
	}
	return p, nil
}

// AllowedIDs marks the ids generation may produce: those the tokenizer can
// decode, out of the model's vocab_size rows (nil without a tokenizer: all).
// Generate, the server and the evaluations sample under this mask, and
// training refuses labels outside it, so no path produces or learns an id
// that has no text.
func (p *Pipeline) AllowedIDs() []bool {
	if p.Tokenizer == nil {
		return nil
	}
	return p.Tokenizer.IDMask(p.Model.Config.Text.VocabSize)
}

func mustToken(t *tokenizer.Tokenizer, id int) string {
	s, _ := t.IDToToken(id)
	return s
}

// Request is one generation request.
type Request struct {
	Images []imaging.Image
	// Prompt is the user text, rendered with Magma's chat format: system
	// prompt, then a user turn "<image>\n" per image (wrapped as
	// <image_start><image><image_end> per ChatOptions) followed by Prompt,
	// then the assistant header.
	Prompt string
	System string // "" = tokenizer.DefaultSystemPrompt
	// PromptIDs, when set, are used as they are instead of rendering Prompt
	// (one image token per image); no tokenizer is needed.
	PromptIDs    []int
	MaxNewTokens int
	Temperature  float64
	TopP         float64
	TopK         int
	Seed         uint64
	// KeepLogits keeps every step's logits in the result (vocab floats each).
	KeepLogits bool
}

// Timing breaks a request's wall time down.
type Timing struct {
	Preprocess time.Duration // image decode is the caller's; this is anyres resize + crops
	Embed      time.Duration // vision tower, projector, splice
	Prefill    time.Duration // decoder over the prompt, logits of the last position
	Decode     time.Duration // all decode steps after the first token
	Steps      int           // decode steps run (generated tokens - 1)
	// StepTimes are the decode steps one by one (the first also builds and
	// compiles the decode graph).
	StepTimes []time.Duration
}

// DecodeTokensPerSecond is the decode throughput with the KV cache.
func (t Timing) DecodeTokensPerSecond() float64 {
	if t.Decode <= 0 {
		return 0
	}
	return float64(t.Steps) / t.Decode.Seconds()
}

// PrefillTokensPerSecond is the prefill throughput over the prompt's n
// positions (images expanded; the vision tower's time is Embed's).
func (t Timing) PrefillTokensPerSecond(n int) float64 {
	if t.Prefill <= 0 {
		return 0
	}
	return float64(n) / t.Prefill.Seconds()
}

// Result is what Generate returns.
type Result struct {
	Text      string
	PromptIDs []int
	OutputIDs []int
	// SequenceLength is the decoder length of the prompt (images expanded).
	SequenceLength int
	Logits         [][]float32
	Timing         Timing
}

// PromptIDs renders and tokenizes req's prompt (or returns req.PromptIDs).
func (p *Pipeline) PromptIDs(req Request) ([]int, error) {
	if req.PromptIDs != nil {
		return req.PromptIDs, nil
	}
	if p.Tokenizer == nil {
		return nil, fmt.Errorf("model %s has no tokenizer.json: pass a tokenizer or prompt ids", p.Dir)
	}
	content := req.Prompt
	if n := len(req.Images) - strings.Count(content, tokenizer.ImageToken); n > 0 {
		content = strings.Repeat(tokenizer.ImageToken+"\n", n) + content
	}
	return p.Tokenizer.EncodeChat([]tokenizer.Message{{Role: "user", Content: content}}, p.ChatOptions(req.System))
}

// ChatOptions are the prompt options of this checkpoint: Magma's system
// prompt (or system), the generation prompt, each image wrapped in
// <image_start>/<image_end> when config.json's mm_use_image_start_end says
// so, and the double BOS the released processor produces.
func (p *Pipeline) ChatOptions(system string) tokenizer.ChatOptions {
	return tokenizer.ChatOptions{SystemPrompt: system, AddGenerationPrompt: true, ImageStartEnd: p.Model.Config.ImageStartEnd()}
}

// ContextLimit is the positions one request may take, its prompt (images
// expanded) and new tokens together: max_position_embeddings, or
// MaxContext when that is smaller. setting names which of the two.
func (p *Pipeline) ContextLimit() (limit int, setting string) {
	limit, setting = p.Model.Config.Text.MaxPositionEmbeddings, "max_position_embeddings"
	if p.MaxContext > 0 && p.MaxContext < limit {
		limit, setting = p.MaxContext, "--max-context"
	}
	return limit, setting
}

// StopIDs are the ids that end a generation: the tokenizer's EOS (when
// there is a tokenizer with one), then config.json's eos_token_id(s).
func (p *Pipeline) StopIDs() []int {
	var stop []int
	if p.Tokenizer != nil && p.Tokenizer.EOS() >= 0 {
		stop = append(stop, p.Tokenizer.EOS())
	}
	return append(stop, p.Model.Config.Text.EOSTokenIDs()...)
}

// ContextError is a request whose prompt and new tokens do not fit the
// context (ContextLimit).
type ContextError struct {
	Positions int    // the prompt's decoder positions, images expanded
	NewTokens int    // the new tokens asked for; 0: not fixed yet (one must fit)
	Limit     int    // ContextLimit
	Setting   string // what sets Limit: "max_position_embeddings" or "--max-context"
}

func (e *ContextError) Error() string {
	if e.NewTokens == 0 {
		return fmt.Sprintf("prompt of %d positions (images expanded) leaves no room for a new token in the context of %d (%s)", e.Positions, e.Limit, e.Setting)
	}
	return fmt.Sprintf("prompt of %d positions (images expanded) + %d new tokens exceeds the context of %d (%s)", e.Positions, e.NewTokens, e.Limit, e.Setting)
}

// ImageError is an image of a request that could not be preprocessed.
type ImageError struct {
	Index int
	Err   error
}

func (e *ImageError) Error() string { return fmt.Sprintf("image %d: %v", e.Index, e.Err) }
func (e *ImageError) Unwrap() error { return e.Err }

// Prepared is a prompt made ready for the decoder.
type Prepared struct {
	Embeds    *tensor.Dense // [Positions, hidden]: the decoder's input
	Positions int           // decoder positions of the prompt, images expanded
	StopIDs   []int         // Pipeline.StopIDs
	// Preprocess (anyres resize and crops) and Embed (vision tower,
	// projector, splice) are the time the two steps took.
	Preprocess, Embed time.Duration
}

// Prepare turns prompt ids (one image token per image) and their images
// into the decoder's input, as every generating path does: it preprocesses
// the images, counts the prompt's positions, checks that they leave room
// in the context (ContextLimit) for newTokens (0: for at least one) and
// embeds the prompt — the vision tower, projector and splice, or the token
// embeddings alone for a prompt without images. With newTokens > 0 (one
// sequence of known length, as Generate runs) it also checks that the
// sequence's KV cache fits in memory (CheckKVCache) before embedding.
//
// An image that cannot be preprocessed is an *ImageError, a prompt over
// the context a *ContextError; ctx is checked before the embedding (its
// error is returned as it is).
func (p *Pipeline) Prepare(ctx context.Context, ids []int, images []imaging.Image, newTokens int) (*Prepared, error) {
	m := p.Model
	pr := &Prepared{}
	t0 := time.Now()
	pixels := make([]*imaging.Pixels, len(images))
	for i, img := range images {
		px, err := p.Preprocessor.Preprocess(img)
		if err != nil {
			return nil, &ImageError{Index: i, Err: err}
		}
		pixels[i] = px
	}
	pr.Preprocess = time.Since(t0)
	n, err := m.SequenceLength(ids, pixels)
	if err != nil {
		return nil, err
	}
	pr.Positions = n
	limit, setting := p.ContextLimit()
	if n+max(newTokens, 1) > limit {
		return nil, &ContextError{Positions: n, NewTokens: newTokens, Limit: limit, Setting: setting}
	}
	if newTokens > 0 {
		kvSize, err := p.KVElemSize()
		if err != nil {
			return nil, err
		}
		if err := CheckKVCache(m.Config, 1, n+newTokens, kvSize); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	t0 = time.Now()
	if len(images) == 0 {
		if pr.Embeds, err = m.LM.EmbedIDs(ids); err != nil {
			return nil, err
		}
	} else {
		emb, err := m.EmbedSequence(ids, pixels)
		if err != nil {
			return nil, err
		}
		pr.Embeds = emb.Embeds
	}
	pr.Embed = time.Since(t0)
	pr.StopIDs = p.StopIDs()
	return pr, nil
}

// Generate answers one request.
func (p *Pipeline) Generate(ctx context.Context, req Request) (*Result, error) {
	if req.MaxNewTokens <= 0 {
		return nil, fmt.Errorf("max new tokens must be positive, got %d", req.MaxNewTokens)
	}
	ids, err := p.PromptIDs(req)
	if err != nil {
		return nil, err
	}
	res := &Result{PromptIDs: ids}
	pr, err := p.Prepare(ctx, ids, req.Images, req.MaxNewTokens)
	if err != nil {
		return nil, err
	}
	res.SequenceLength = pr.Positions
	res.Timing.Preprocess, res.Timing.Embed = pr.Preprocess, pr.Embed
	gen := llm.NewGenerator(p.Model.LM, pr.Positions+req.MaxNewTokens)
	if err := gen.SetKVCacheDtype(p.KVCacheDtype); err != nil {
		return nil, err
	}
	defer gen.Release()
	t0 := time.Now()
	var tFirst, tPrev time.Time
	out, err := gen.Generate(ctx, llm.Prompt{Embeds: pr.Embeds}, llm.GenerateOptions{
		MaxNewTokens: req.MaxNewTokens, Temperature: req.Temperature, TopP: req.TopP, TopK: req.TopK,
		Seed: req.Seed, StopIDs: pr.StopIDs, Allowed: p.AllowedIDs(),
	}, func(step, id int, logits []float32) error {
		now := time.Now()
		if step == 0 {
			tFirst = now
		} else {
			res.Timing.StepTimes = append(res.Timing.StepTimes, now.Sub(tPrev))
		}
		tPrev = now
		if req.KeepLogits {
			res.Logits = append(res.Logits, logits)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	res.Timing.Prefill = tFirst.Sub(t0)
	res.Timing.Decode = time.Since(tFirst)
	res.Timing.Steps = len(out) - 1
	res.OutputIDs = out
	if p.Tokenizer != nil {
		if res.Text, err = p.Tokenizer.Decode(out, true); err != nil {
			return nil, err
		}
	}
	return res, nil
}
