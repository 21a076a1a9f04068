package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/magma-go/magma/llm"
	"github.com/magma-go/magma/llm/tokenizer"
)

// chatRequest is the subset of OpenAI's chat completion request that Magma
// supports. Unknown fields are ignored, as OpenAI-compatible servers do.
type chatRequest struct {
	Model               string        `json:"model"`
	Messages            []chatMessage `json:"messages"`
	MaxTokens           *int          `json:"max_tokens"`
	MaxCompletionTokens *int          `json:"max_completion_tokens"`
	Temperature         *float64      `json:"temperature"`
	TopP                *float64      `json:"top_p"`
	Seed                *int64        `json:"seed"`
	Stop                stopField     `json:"stop"`
	Stream              bool          `json:"stream"`
	StreamOptions       *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	N *int `json:"n"`
	// Logprobs/TopLogprobs: per generated token its log-probability and
	// that of the top_logprobs (0..20) most probable tokens.
	Logprobs         *bool    `json:"logprobs"`
	TopLogprobs      *int     `json:"top_logprobs"`
	PresencePenalty  *float64 `json:"presence_penalty"`
	FrequencyPenalty *float64 `json:"frequency_penalty"`
	// Parameters Magma does not implement: refused with a 400 naming them
	// (except their neutral values) rather than silently ignored.
	ResponseFormat json.RawMessage `json:"response_format"`
	Tools          json.RawMessage `json:"tools"`
	ToolChoice     json.RawMessage `json:"tool_choice"`
	Functions      json.RawMessage `json:"functions"`
	FunctionCall   json.RawMessage `json:"function_call"`
	LogitBias      json.RawMessage `json:"logit_bias"`
}

// unsupported reports the first parameter of req that Magma cannot honour,
// with the reason. Neutral values pass: null, response_format
// {"type":"text"}, an empty tools/functions array or logit_bias object,
// tool_choice/function_call "none".
func (req *chatRequest) unsupported() (param, why string) {
	isNull := func(b json.RawMessage) bool {
		b = bytes.TrimSpace(b)
		return len(b) == 0 || bytes.Equal(b, []byte("null"))
	}
	isEmpty := func(b json.RawMessage, empty string) bool {
		var v any
		if json.Unmarshal(b, &v) != nil {
			return false
		}
		switch x := v.(type) {
		case []any:
			return empty == "[]" && len(x) == 0
		case map[string]any:
			return empty == "{}" && len(x) == 0
		case string:
			return x == empty
		}
		return false
	}
	if b := req.ResponseFormat; !isNull(b) {
		var rf struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(b, &rf) != nil || rf.Type != "text" {
			return "response_format", "response_format other than {\"type\": \"text\"} (JSON mode, JSON schema) is not supported"
		}
	}
	for _, c := range []struct {
		param string
		v     json.RawMessage
		empty string
		what  string
	}{
		{"tools", req.Tools, "[]", "tools (function calling) are not supported"},
		{"tool_choice", req.ToolChoice, "none", `tool_choice is not supported (only "none")`},
		{"functions", req.Functions, "[]", "functions (function calling) are not supported"},
		{"function_call", req.FunctionCall, "none", `function_call is not supported (only "none")`},
		{"logit_bias", req.LogitBias, "{}", "logit_bias is not supported"},
	} {
		if !isNull(c.v) && !isEmpty(c.v, c.empty) {
			return c.param, c.what
		}
	}
	return "", ""
}

type chatMessage struct {
	Role    string       `json:"role"`
	Content contentField `json:"content"`
}

// contentPart is one element of an array content.
type contentPart struct {
	Type     string `json:"type"`
	Text     string `json:"text"`
	ImageURL *struct {
		URL string `json:"url"`
	} `json:"image_url"`
	// VideoURL is a clip as a data: URI (data:video/mp4;base64,...);
	// Frames (default DefaultVideoFrames) are sampled from it uniformly
	// and passed as that many images, as Magma's video inference does.
	VideoURL *struct {
		URL    string `json:"url"`
		Frames int    `json:"frames"`
	} `json:"video_url"`
}

// contentField is a message content: a string or an array of parts.
type contentField struct {
	set   bool
	parts []contentPart
}

func (c *contentField) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	c.set = true
	switch {
	case bytes.Equal(b, []byte("null")):
		c.set = false
		return nil
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		c.parts = []contentPart{{Type: "text", Text: s}}
		return nil
	case len(b) > 0 && b[0] == '[':
		return json.Unmarshal(b, &c.parts)
	}
	return badRequest("messages", "invalid_type", "message content must be a string or an array of content parts")
}

// stopField is OpenAI's stop: a string or an array of strings.
type stopField []string

func (s *stopField) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*s = nil
		return nil
	case len(b) > 0 && b[0] == '"':
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*s = stopField{v}
		return nil
	case len(b) > 0 && b[0] == '[':
		var v []string
		if err := json.Unmarshal(b, &v); err != nil {
			return badRequest("stop", "invalid_type", "stop must be a string or an array of strings")
		}
		*s = v
		return nil
	}
	return badRequest("stop", "invalid_type", "stop must be a string or an array of strings")
}

// maxStops is OpenAI's limit on stop sequences.
const maxStops = 4

// parseChat validates a decoded request and turns it into a genRequest
// (images decoded). It never touches the model.
func (s *Server) parseChat(ctx context.Context, req *chatRequest) (genRequest, error) {
	var gr genRequest
	if err := s.checkModel(req.Model); err != nil {
		return gr, err
	}
	if param, why := req.unsupported(); param != "" {
		return gr, badRequest(param, "unsupported_parameter", "%s", why)
	}
	for _, pen := range []struct {
		name string
		v    *float64
		dst  *float64
	}{{"presence_penalty", req.PresencePenalty, &gr.presencePenalty}, {"frequency_penalty", req.FrequencyPenalty, &gr.frequencyPenalty}} {
		if pen.v == nil {
			continue
		}
		if v := *pen.v; !(v >= -2 && v <= 2) {
			return gr, badRequest(pen.name, "invalid_value", "%s must be in [-2, 2], got %v", pen.name, v)
		}
		*pen.dst = *pen.v
	}
	gr.logprobs = req.Logprobs != nil && *req.Logprobs
	if req.TopLogprobs != nil {
		k := *req.TopLogprobs
		if k < 0 || k > llm.MaxTopLogProbs {
			return gr, badRequest("top_logprobs", "invalid_value", "top_logprobs must be an integer in [0, %d], got %d", llm.MaxTopLogProbs, k)
		}
		if !gr.logprobs {
			return gr, badRequest("top_logprobs", "invalid_value", "top_logprobs needs logprobs: true")
		}
		gr.topLogprobs = k
	}
	if req.N != nil && *req.N != 1 {
		return gr, badRequest("n", "invalid_value", "only n=1 is supported, got %d", *req.N)
	}
	switch {
	case req.MaxTokens != nil:
		gr.maxTokens = *req.MaxTokens
	case req.MaxCompletionTokens != nil:
		gr.maxTokens = *req.MaxCompletionTokens
	}
	if (req.MaxTokens != nil || req.MaxCompletionTokens != nil) && gr.maxTokens <= 0 {
		return gr, badRequest("max_tokens", "invalid_value", "max_tokens must be a positive integer, got %d", gr.maxTokens)
	}
	gr.temperature = 1 // OpenAI's default
	if req.Temperature != nil {
		if t := *req.Temperature; !(t >= 0 && t <= 2) {
			return gr, badRequest("temperature", "invalid_value", "temperature must be in [0, 2], got %v", t)
		}
		gr.temperature = *req.Temperature
	}
	if req.TopP != nil {
		if p := *req.TopP; !(p >= 0 && p <= 1) {
			return gr, badRequest("top_p", "invalid_value", "top_p must be in [0, 1], got %v", p)
		}
		gr.topP = *req.TopP
	}
	if req.Seed != nil {
		gr.seed = uint64(*req.Seed)
	}
	if len(req.Stop) > maxStops {
		return gr, badRequest("stop", "invalid_value", "at most %d stop sequences, got %d", maxStops, len(req.Stop))
	}
	for _, st := range req.Stop {
		if st == "" {
			return gr, badRequest("stop", "invalid_value", "stop sequences must not be empty")
		}
	}
	if len(req.Messages) == 0 {
		return gr, badRequest("messages", "invalid_value", "messages must be a non-empty array")
	}
	for i, m := range req.Messages {
		param := fmt.Sprintf("messages[%d]", i)
		role := m.Role
		switch role {
		case "system", "developer":
			role = "system"
		case "user", "assistant":
		case "":
			return gr, badRequest(param+".role", "invalid_value", "%s has no role", param)
		default:
			return gr, badRequest(param+".role", "invalid_value", "%s: role %q is not supported (system, user, assistant)", param, m.Role)
		}
		if !m.Content.set {
			return gr, badRequest(param+".content", "invalid_value", "%s has no content", param)
		}
		var text strings.Builder
		nImg := 0
		for j, part := range m.Content.parts {
			pp := fmt.Sprintf("%s.content[%d]", param, j)
			switch part.Type {
			case "text":
				for _, tok := range []string{tokenizer.ImageToken, tokenizer.ImageStartToken, tokenizer.ImageEndToken} {
					if strings.Contains(part.Text, tok) {
						return gr, badRequest(pp, "invalid_value", "%s: text must not contain %q (send images as image_url parts)", pp, tok)
					}
				}
				text.WriteString(part.Text)
			case "image_url":
				if role != "user" {
					return gr, badRequest(pp, "invalid_value", "%s: images are only accepted in user messages", pp)
				}
				if part.ImageURL == nil || part.ImageURL.URL == "" {
					return gr, badRequest(pp+".image_url", "invalid_value", "%s: image_url.url is missing", pp)
				}
				if len(gr.images) >= s.cfg.MaxImages {
					return gr, badRequest(pp, "too_many_images", "at most %d images per request", s.cfg.MaxImages)
				}
				img, err := s.decodeImageURL(ctx, part.ImageURL.URL, pp+".image_url.url")
				if err != nil {
					return gr, err
				}
				gr.images = append(gr.images, img)
				nImg++
				text.WriteString(tokenizer.ImageToken + "\n")
			case "video_url":
				if role != "user" {
					return gr, badRequest(pp, "invalid_value", "%s: videos are only accepted in user messages", pp)
				}
				if part.VideoURL == nil || part.VideoURL.URL == "" {
					return gr, badRequest(pp+".video_url", "invalid_value", "%s: video_url.url is missing", pp)
				}
				n := part.VideoURL.Frames
				if n == 0 {
					n = DefaultVideoFrames
				}
				if n < 0 || len(gr.images)+n > s.cfg.MaxImages {
					return gr, badRequest(pp+".video_url.frames", "too_many_images",
						"%d frames with %d images already: at most %d images (frames) per request", n, len(gr.images), s.cfg.MaxImages)
				}
				frames, err := s.decodeVideoURL(part.VideoURL.URL, n, pp+".video_url.url")
				if err != nil {
					return gr, err
				}
				gr.images = append(gr.images, frames...)
				nImg += len(frames)
				for range frames {
					text.WriteString(tokenizer.ImageToken + "\n")
				}
			default:
				return gr, badRequest(pp+".type", "invalid_value", "%s: content part type %q is not supported (text, image_url, video_url)", pp, part.Type)
			}
		}
		content := text.String()
		if nImg > 0 {
			// Magma's preprocessing puts the images first, as in training.
			content = tokenizer.MoveImagesToFront(content, false)
		}
		gr.messages = append(gr.messages, tokenizer.Message{Role: role, Content: content})
	}
	return gr, nil
}

// tokenLogprob is OpenAI's {token, logprob, bytes}.
type tokenLogprob struct {
	Token   string  `json:"token"`
	Logprob float64 `json:"logprob"`
	Bytes   []int   `json:"bytes"` // numbers, as OpenAI sends them (a []byte would be base64)
}

// logprobEntry is one element of choices[].logprobs.content.
type logprobEntry struct {
	tokenLogprob
	TopLogprobs []tokenLogprob `json:"top_logprobs"`
}

// minLogprob stands for -Inf (JSON has no infinities), as OpenAI reports
// tokens of no probability.
const minLogprob = -9999.0

func tokenEntry(tok *tokenizer.Tokenizer, id int, lp float64) tokenLogprob {
	b, _ := tok.TokenBytes(id)
	e := tokenLogprob{Token: strings.ToValidUTF8(string(b), "\uFFFD"), Logprob: max(lp, minLogprob), Bytes: make([]int, len(b))}
	for i, c := range b {
		e.Bytes[i] = int(c)
	}
	return e
}

// logprobsOf renders an event's log-probabilities.
func logprobsOf(tok *tokenizer.Tokenizer, lp *llm.TokenLogProbs) logprobEntry {
	e := logprobEntry{tokenLogprob: tokenEntry(tok, lp.ID, lp.LogProb), TopLogprobs: make([]tokenLogprob, len(lp.Top))}
	for i, t := range lp.Top {
		e.TopLogprobs[i] = tokenEntry(tok, t.ID, t.LogProb)
	}
	return e
}

// choiceLogprobs is choices[].logprobs: null unless asked for.
func choiceLogprobs(asked bool, content []logprobEntry) any {
	if !asked {
		return nil
	}
	if content == nil {
		content = []logprobEntry{}
	}
	return map[string]any{"content": content, "refusal": nil}
}

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

func newID(prefix string) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

func (s *Server) handleChat(w http.ResponseWriter, r *http.Request) error {
	if _, _, err := s.ready(); err != nil {
		return err
	}
	var req chatRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Timeout)
	defer cancel()
	gr, err := s.parseChat(ctx, &req)
	if err != nil {
		return err
	}
	st, err := s.start(ctx, gr)
	if err != nil {
		return err
	}
	ts := &textStream{tok: st.tok, stops: req.Stop}
	id, created := newID("chatcmpl-"), time.Now().Unix()
	// Log-probabilities come for every generated token but the stop token
	// (EOS) that ends a completion: it is no part of the content.
	var lps []logprobEntry
	addLogprob := func(ev event) {
		if ev.lp != nil && ev.finish != "stop" {
			lps = append(lps, logprobsOf(st.tok, ev.lp))
		}
	}
	if !req.Stream {
		finish, n, err := st.complete(ctx, ts, addLogprob, nil)
		if err != nil {
			return err
		}
		cancel() // frees the slot at the next step if the sequence still runs (stop string)
		writeJSON(w, http.StatusOK, map[string]any{
			"id": id, "object": "chat.completion", "created": created, "model": s.cfg.ModelName,
			"system_fingerprint": nil,
			"choices": []map[string]any{{"index": 0, "finish_reason": finish, "logprobs": choiceLogprobs(gr.logprobs, lps),
				"message": map[string]any{"role": "assistant", "content": ts.released()}}},
			"usage": usage{st.promptLen, n, st.promptLen + n},
		})
		return nil
	}
	// Server-sent events in OpenAI's chunk format.
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	send := func(v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
			return err
		}
		if flusher != nil {
			flusher.Flush()
		}
		return nil
	}
	// A chunk carries the log-probabilities of the tokens since the last
	// chunk (text held back for UTF-8 or a stop string comes later, with
	// its tokens' log-probabilities).
	chunk := func(delta map[string]any, finish any) map[string]any {
		var lp any
		if len(lps) > 0 {
			lp = choiceLogprobs(true, lps)
			lps = nil
		}
		return map[string]any{"id": id, "object": "chat.completion.chunk", "created": created, "model": s.cfg.ModelName,
			"system_fingerprint": nil,
			"choices":            []map[string]any{{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": lp}}}
	}
	if err := send(chunk(map[string]any{"role": "assistant", "content": ""}, nil)); err != nil {
		return nil // client gone; the request context cancels the sequence
	}
	gone := false // the client left: the request context cancels the sequence
	finish, n, err := st.complete(ctx, ts, addLogprob, func(delta string) error {
		err := send(chunk(map[string]any{"content": delta}, nil))
		gone = err != nil
		return err
	})
	if gone {
		return nil
	}
	if err != nil {
		s.log.Warn("stream ended with an error", "err", err)
		_ = send(errorBody{asAPIError(err)})
		_, _ = fmt.Fprint(w, "data: [DONE]\n\n")
		return nil
	}
	cancel()
	_ = send(chunk(map[string]any{}, finish))
	if req.StreamOptions != nil && req.StreamOptions.IncludeUsage {
		_ = send(map[string]any{"id": id, "object": "chat.completion.chunk", "created": created, "model": s.cfg.ModelName,
			"choices": []any{}, "usage": usage{st.promptLen, n, st.promptLen + n}})
	}
	_, _ = fmt.Fprint(w, "data: [DONE]\n\n")
	if flusher != nil {
		flusher.Flush()
	}
	return nil
}

// complete runs the generation loop of a chat completion, streamed or not:
// each generated token is counted, its log-probability kept (addLogprob)
// and its text added to ts, which applies the stop strings; emit, when not
// nil, gets each piece of text ts releases (a streamed chunk). It ends at
// the sequence's finish or at a stop string and returns the finish reason
// and the tokens generated; an error of next, ts or emit ends it early.
func (st *started) complete(ctx context.Context, ts *textStream, addLogprob func(event), emit func(delta string) error) (finish string, n int, err error) {
	for finish == "" {
		ev, err := st.next(ctx)
		if err != nil {
			return "", n, err
		}
		n++
		addLogprob(ev)
		delta, err := ts.add(ev.id, ev.finish != "")
		if err != nil {
			return "", n, err
		}
		switch {
		case ts.stopped:
			finish = "stop"
		case ev.finish != "":
			finish = ev.finish
		}
		if delta != "" && emit != nil {
			if err := emit(delta); err != nil {
				return "", n, err
			}
		}
	}
	return finish, n, nil
}
