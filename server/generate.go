package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/magma-go/magma/llm"
	"github.com/magma-go/magma/llm/tokenizer"
	"github.com/magma-go/magma/model"
	"github.com/magma-go/magma/vision/imaging"
)

// genRequest is what every generating endpoint reduces its input to.
type genRequest struct {
	messages    []tokenizer.Message // image parts already replaced by <image> lines
	system      string              // "" = Magma's default system prompt (unless the messages start with one)
	images      []imaging.Image
	maxTokens   int // 0 = default (capped by the room left in the context)
	temperature float64
	topP        float64
	seed        uint64
	noStop      bool // do not stop at EOS (the /act endpoint wants exactly maxTokens tokens)
	// presencePenalty and frequencyPenalty are OpenAI's (llm.SampleOptions).
	presencePenalty, frequencyPenalty float64
	// logprobs asks for each token's log-probability and topLogprobs
	// alternatives (events carry them).
	logprobs    bool
	topLogprobs int
}

// started is a sequence handed to the engine.
type started struct {
	seq       *sequence
	promptLen int // decoder positions of the prompt (images expanded)
	maxTokens int
	eng       *engine
	tok       *tokenizer.Tokenizer
}

// start validates, tokenizes, embeds and submits a request. It takes a queue
// place after the cheap checks (bounded tokenization, context size) and
// before the expensive ones, so a full server answers 429 before running
// the vision tower.
func (s *Server) start(ctx context.Context, gr genRequest) (*started, error) {
	p, eng, err := s.ready()
	if err != nil {
		return nil, err
	}
	if gr.maxTokens < 0 {
		return nil, badRequest("max_tokens", "invalid_value", "max_tokens must be positive, got %d", gr.maxTokens)
	}
	sampler, err := llm.NewSampler(llm.SampleOptions{Temperature: gr.temperature, TopP: gr.topP, Allowed: s.allowed,
		PresencePenalty: gr.presencePenalty, FrequencyPenalty: gr.frequencyPenalty}, gr.seed)
	if err != nil {
		return nil, badRequest("temperature", "invalid_value", "%v", strings.TrimPrefix(err.Error(), "llm: "))
	}
	// Cheap checks first: tokenization is bounded by the context (it stops
	// once the prompt has more ids than positions), and user text is
	// encoded literally (typed special tokens stay text).
	limit, _ := p.ContextLimit()
	co := p.ChatOptions(gr.system)
	co.LiteralContent, co.MaxTokens = true, limit
	ids, err := p.Tokenizer.EncodeChat(gr.messages, co)
	if errors.Is(err, tokenizer.ErrTooManyTokens) {
		return nil, badRequest("messages", "context_length_exceeded",
			"the prompt takes more than %d tokens, over the context of %d", limit, limit)
	}
	if err != nil {
		return nil, badRequest("messages", "invalid_value", "%v", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, ctxError(ctx)
	}
	imgTok := p.Model.Config.ImageTokenIndex
	n := 0
	for _, id := range ids {
		if id == imgTok {
			n++
		}
	}
	if n != len(gr.images) {
		return nil, badRequest("messages", "invalid_value",
			"the prompt has %d image tokens for %d images: message text must not contain %q", n, len(gr.images), tokenizer.ImageToken)
	}
	if gr.maxTokens > 0 && len(ids)+gr.maxTokens > limit {
		return nil, badRequest("max_tokens", "context_length_exceeded",
			"the prompt takes at least %d positions and max_tokens is %d: together over the context of %d", len(ids), gr.maxTokens, limit)
	}
	// The queue place is taken before the expensive part (images, vision
	// tower, prefill), so a full server answers 429 before doing it.
	if err := eng.admit(); err != nil {
		return nil, err
	}
	submitted := false
	defer func() {
		if !submitted {
			eng.release()
		}
	}()
	pr, err := s.embed(ctx, p, ids, gr.images)
	if err != nil {
		return nil, err
	}
	seqLen := pr.Positions
	room := limit - seqLen
	maxTok := gr.maxTokens
	if maxTok == 0 {
		maxTok = min(s.cfg.DefaultMaxTokens, room)
	}
	if room <= 0 || maxTok > room {
		return nil, badRequest("max_tokens", "context_length_exceeded",
			"the prompt takes %d positions (images expanded) and max_tokens is %d: together over the context of %d",
			seqLen, maxTok, limit)
	}
	var stop []int
	if !gr.noStop {
		stop = pr.StopIDs
	}
	seq := newSequence(ctx, pr.Embeds, maxTok, sampler, stop)
	if gr.logprobs {
		seq.logprobs = gr.topLogprobs
	}
	s.m.promptTokens(seqLen)
	eng.submit(seq)
	submitted = true
	return &started{seq: seq, promptLen: seqLen, maxTokens: maxTok, eng: eng, tok: p.Tokenizer}, nil
}

// embed prepares the prompt for the decoder (model.Pipeline.Prepare:
// images preprocessed, positions counted against the context, embeddings
// [L, D]), mapping its errors to API errors. A prompt with images runs under
// a semaphore (the vision tower is the heaviest step and would otherwise
// oversubscribe the cores the decoder needs).
func (s *Server) embed(ctx context.Context, p *model.Pipeline, ids []int, images []imaging.Image) (*model.Prepared, error) {
	if len(images) > 0 {
		select {
		case s.embedSem <- struct{}{}:
			defer func() { <-s.embedSem }()
		case <-ctx.Done():
			return nil, ctxError(ctx)
		}
	}
	pr, err := p.Prepare(ctx, ids, images, 0)
	var ie *model.ImageError
	var ce *model.ContextError
	switch {
	case err == nil:
		return pr, nil
	case errors.As(err, &ie):
		return nil, badRequest("messages", "invalid_image", "%v", err)
	case errors.As(err, &ce):
		return nil, badRequest("messages", "context_length_exceeded",
			"the prompt takes %d positions (images expanded), over the context of %d", ce.Positions, ce.Limit)
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return nil, ctxError(ctx)
	}
	return nil, err
}

// ctxError maps a finished request context to an API error: a timeout is
// 504; a client that left gets 499 (nginx's "client closed request"; nobody
// reads it, but logs and metrics show it).
func ctxError(ctx context.Context) error {
	return ctxErr(ctx.Err())
}

func ctxErr(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return newAPIError(http.StatusGatewayTimeout, "timeout_error", "timeout", "the request timed out")
	}
	if errors.Is(err, context.Canceled) {
		return newAPIError(499, "invalid_request_error", "client_closed_request", "the client closed the request")
	}
	return err
}

// next waits for the next event of a started sequence. When the request
// context ends first, the sequence is withdrawn from the queue (or the
// worker drops it at its next step) and the context error is returned.
func (st *started) next(ctx context.Context) (event, error) {
	select {
	case ev := <-st.seq.events:
		if ev.err != nil {
			if errors.Is(ev.err, context.Canceled) || errors.Is(ev.err, context.DeadlineExceeded) {
				return ev, ctxErr(ev.err)
			}
			return ev, ev.err
		}
		return ev, nil
	case <-ctx.Done():
		st.eng.withdraw(st.seq)
		return event{}, ctxError(ctx)
	}
}

// textStream turns generated ids into text, applying stop strings on the
// decoded text. It holds back an incomplete UTF-8 character and any tail
// that could be the start of a stop string, so streamed deltas never have
// to be taken back.
type textStream struct {
	tok     *tokenizer.Tokenizer
	stops   []string
	ids     []int
	sent    int // bytes of text already released
	text    string
	stopped bool
}

// add appends a token and returns the newly released text; stopped is set
// when a stop string was found (the text ends before it).
func (t *textStream) add(id int, final bool) (string, error) {
	t.ids = append(t.ids, id)
	text, err := t.tok.Decode(t.ids, true)
	if err != nil {
		return "", err
	}
	t.text = text
	end := len(text)
	for _, s := range t.stops {
		if i := strings.Index(text, s); i >= 0 && i < end {
			end, t.stopped = i, true
		}
	}
	if !t.stopped && !final {
		// Hold back a trailing replacement char (incomplete UTF-8 so far)
		// and the longest tail that is a proper prefix of a stop string.
		for end >= len("\uFFFD") && text[end-len("\uFFFD"):end] == "\uFFFD" {
			end -= len("\uFFFD")
		}
		for _, s := range t.stops {
			for k := min(len(s)-1, end); k > 0; k-- {
				if strings.HasSuffix(text[:end], s[:k]) {
					end -= k
					break
				}
			}
		}
	}
	if end < t.sent {
		end = t.sent
	}
	out := text[t.sent:end]
	t.sent = end
	return out, nil
}

// released is all text released so far.
func (t *textStream) released() string { return t.text[:t.sent] }

func (t *textStream) String() string {
	return fmt.Sprintf("textStream(%d ids, %d bytes)", len(t.ids), t.sent)
}

// collect waits for the whole sequence and returns its ids.
func (st *started) collect(ctx context.Context) ([]int, error) {
	var ids []int
	for {
		ev, err := st.next(ctx)
		if err != nil {
			return ids, err
		}
		ids = append(ids, ev.id)
		if ev.finish != "" {
			return ids, nil
		}
	}
}
