package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	sugar "github.com/sugarme/tokenizer"
	"github.com/sugarme/tokenizer/pretokenizer"
)

// AddedToken is an entry of tokenizer.json's added_tokens: matched in the raw
// text before pre-tokenization and always encoded as its single id.
type AddedToken struct {
	ID      int    `json:"id"`
	Content string `json:"content"`
	Special bool   `json:"special"`
}

// Tokenizer is a loaded Hugging Face byte-level BPE tokenizer (Llama-3 and
// Magma's variant). It is safe for concurrent use.
type Tokenizer struct {
	dir   string
	lib   *sugar.Tokenizer
	model *bpeModel

	added     []AddedToken        // sorted by id
	byID      map[int]*AddedToken // added tokens by id
	byContent map[string]int
	firstByte [256][]*AddedToken // candidates by first byte, longest first

	bos, eos, pad int // -1 when the config names none
	chatTemplate  string
}

// Load reads a tokenizer from path: a directory holding tokenizer.json (and
// optionally tokenizer_config.json), or the tokenizer.json file itself (the
// config is then looked for next to it).
func Load(path string) (*Tokenizer, error) {
	file := path
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		file = filepath.Join(path, "tokenizer.json")
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	t, err := parseTokenizerJSON(data)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", file, err)
	}
	t.dir = filepath.Dir(file)
	cfgFile := filepath.Join(t.dir, "tokenizer_config.json")
	if cfg, err := os.ReadFile(cfgFile); err == nil {
		if err := t.applyConfig(cfg); err != nil {
			return nil, fmt.Errorf("tokenizer: %s: %w", cfgFile, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	return t, nil
}

// fileJSON is the subset of tokenizer.json this package understands.
type fileJSON struct {
	AddedTokens []struct {
		ID         int    `json:"id"`
		Content    string `json:"content"`
		SingleWord bool   `json:"single_word"`
		LStrip     bool   `json:"lstrip"`
		RStrip     bool   `json:"rstrip"`
		Normalized bool   `json:"normalized"`
		Special    bool   `json:"special"`
	} `json:"added_tokens"`
	Normalizer   json.RawMessage `json:"normalizer"`
	PreTokenizer *struct {
		Type          string `json:"type"`
		PreTokenizers []struct {
			Type    string `json:"type"`
			Pattern struct {
				Regex  *string `json:"Regex"`
				String *string `json:"String"`
			} `json:"pattern"`
			Behavior       string `json:"behavior"`
			Invert         bool   `json:"invert"`
			AddPrefixSpace bool   `json:"add_prefix_space"`
			UseRegex       bool   `json:"use_regex"`
		} `json:"pretokenizers"`
	} `json:"pre_tokenizer"`
	Decoder *struct {
		Type string `json:"type"`
	} `json:"decoder"`
	Model *struct {
		Type                    string            `json:"type"`
		Dropout                 *float64          `json:"dropout"`
		UnkToken                *string           `json:"unk_token"`
		ContinuingSubwordPrefix *string           `json:"continuing_subword_prefix"`
		EndOfWordSuffix         *string           `json:"end_of_word_suffix"`
		ByteFallback            bool              `json:"byte_fallback"`
		IgnoreMerges            bool              `json:"ignore_merges"`
		Vocab                   json.RawMessage   `json:"vocab"` // decoded once the type is known
		Merges                  []json.RawMessage `json:"merges"`
	} `json:"model"`
}

// parseTokenizerJSON validates that the file describes a Llama-3 style
// tokenizer (the only kind Magma uses) and builds it; anything else is an
// error rather than a silently different tokenization.
func parseTokenizerJSON(data []byte) (*Tokenizer, error) {
	var f fileJSON
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("invalid JSON (truncated or corrupt file?): %w", err)
	}
	if f.Model == nil {
		return nil, errors.New(`no "model" section`)
	}
	m := f.Model
	if m.Type != "BPE" {
		return nil, fmt.Errorf("unsupported model type %q: only byte-level \"BPE\" (Llama-3) is supported", m.Type)
	}
	if m.Dropout != nil && *m.Dropout != 0 {
		return nil, errors.New("unsupported: BPE dropout")
	}
	if m.ContinuingSubwordPrefix != nil && *m.ContinuingSubwordPrefix != "" ||
		m.EndOfWordSuffix != nil && *m.EndOfWordSuffix != "" || m.ByteFallback {
		return nil, errors.New("unsupported BPE options (continuing_subword_prefix, end_of_word_suffix or byte_fallback)")
	}
	var vocab map[string]int
	if err := json.Unmarshal(m.Vocab, &vocab); err != nil {
		return nil, fmt.Errorf("BPE vocab is not a {token: id} object: %w", err)
	}
	if len(vocab) == 0 {
		return nil, errors.New("empty BPE vocabulary")
	}
	if n := bytes.TrimSpace(f.Normalizer); len(n) > 0 && string(n) != "null" {
		return nil, fmt.Errorf("unsupported normalizer %s: Llama-3 has none", n)
	}
	if err := checkPreTokenizer(&f); err != nil {
		return nil, err
	}
	if f.Decoder == nil || f.Decoder.Type != "ByteLevel" {
		return nil, errors.New(`unsupported decoder: want "ByteLevel"`)
	}
	merges := make([][2]string, len(m.Merges))
	for i, raw := range m.Merges {
		var s string
		if err := json.Unmarshal(raw, &s); err == nil {
			a, b, ok := strings.Cut(s, " ")
			if !ok {
				return nil, fmt.Errorf("merge %d %q is not \"left right\"", i, s)
			}
			merges[i] = [2]string{a, b}
			continue
		}
		var pair []string
		if err := json.Unmarshal(raw, &pair); err != nil || len(pair) != 2 {
			return nil, fmt.Errorf("merge %d is neither \"a b\" nor [a, b]", i)
		}
		merges[i] = [2]string{pair[0], pair[1]}
	}
	model, err := newBPEModel(vocab, merges, m.IgnoreMerges)
	if err != nil {
		return nil, err
	}
	t := &Tokenizer{model: model, byID: map[int]*AddedToken{}, byContent: map[string]int{}, bos: -1, eos: -1, pad: -1}
	for i, a := range f.AddedTokens {
		if a.Content == "" {
			return nil, fmt.Errorf("added token %d has empty content", i)
		}
		if a.SingleWord || a.LStrip || a.RStrip {
			return nil, fmt.Errorf("added token %q: single_word/lstrip/rstrip are not supported", a.Content)
		}
		if err := t.addToken(AddedToken{ID: a.ID, Content: a.Content, Special: a.Special}); err != nil {
			return nil, err
		}
	}
	t.lib = sugar.NewTokenizer(libModel{model})
	t.lib.WithPreTokenizer(Llama3PreTokenizer{})
	t.lib.WithDecoder(pretokenizer.NewByteLevel())
	return t, nil
}

func checkPreTokenizer(f *fileJSON) error {
	p := f.PreTokenizer
	bad := errors.New("unsupported pre_tokenizer: only Llama-3's Sequence[Split(Llama-3 regex, Isolated), ByteLevel(use_regex=false)] is supported")
	if p == nil || p.Type != "Sequence" || len(p.PreTokenizers) != 2 {
		return bad
	}
	s, b := p.PreTokenizers[0], p.PreTokenizers[1]
	if s.Type != "Split" || s.Pattern.Regex == nil || *s.Pattern.Regex != Llama3Pattern || s.Behavior != "Isolated" || s.Invert {
		return bad
	}
	if b.Type != "ByteLevel" || b.UseRegex || b.AddPrefixSpace {
		return bad
	}
	return nil
}

// addToken registers an added token; ids of the base vocabulary may be
// reused (Hugging Face allows added tokens that exist in the model).
func (t *Tokenizer) addToken(a AddedToken) error {
	if a.ID < 0 {
		return fmt.Errorf("added token %q has negative id %d", a.Content, a.ID)
	}
	if prev, ok := t.byID[a.ID]; ok && prev.Content != a.Content {
		return fmt.Errorf("id %d assigned to both %q and %q", a.ID, prev.Content, a.Content)
	}
	if id, ok := t.byContent[a.Content]; ok && id != a.ID {
		return fmt.Errorf("added token %q listed with ids %d and %d", a.Content, id, a.ID)
	}
	t.added = append(t.added, a)
	sort.Slice(t.added, func(i, j int) bool { return t.added[i].ID < t.added[j].ID })
	t.byID = map[int]*AddedToken{}
	t.firstByte = [256][]*AddedToken{}
	for i := range t.added {
		p := &t.added[i]
		t.byID[p.ID] = p
		t.byContent[p.Content] = p.ID
		c := p.Content[0]
		t.firstByte[c] = append(t.firstByte[c], p)
	}
	for c := range t.firstByte {
		l := t.firstByte[c]
		sort.SliceStable(l, func(i, j int) bool { return len(l[i].Content) > len(l[j].Content) })
	}
	return nil
}

type configJSON struct {
	BOS          json.RawMessage `json:"bos_token"`
	EOS          json.RawMessage `json:"eos_token"`
	PAD          json.RawMessage `json:"pad_token"`
	ChatTemplate json.RawMessage `json:"chat_template"`
}

// tokenName reads a special-token field, which Hugging Face writes either as
// a string or as {"content": ...}; null or absent gives "".
func tokenName(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var o struct {
		Content string `json:"content"`
	}
	if err := json.Unmarshal(raw, &o); err != nil {
		return "", fmt.Errorf("special token %s is neither a string nor {\"content\"}", raw)
	}
	return o.Content, nil
}

func (t *Tokenizer) applyConfig(data []byte) error {
	var c configJSON
	if err := json.Unmarshal(data, &c); err != nil {
		return fmt.Errorf("invalid JSON: %w", err)
	}
	for _, f := range []struct {
		raw json.RawMessage
		dst *int
		key string
	}{{c.BOS, &t.bos, "bos_token"}, {c.EOS, &t.eos, "eos_token"}, {c.PAD, &t.pad, "pad_token"}} {
		name, err := tokenName(f.raw)
		if err != nil {
			return fmt.Errorf("%s: %w", f.key, err)
		}
		if name == "" {
			continue
		}
		id, ok := t.TokenToID(name)
		if !ok {
			return fmt.Errorf("%s %q is not in the vocabulary", f.key, name)
		}
		*f.dst = id
	}
	if len(c.ChatTemplate) > 0 {
		_ = json.Unmarshal(c.ChatTemplate, &t.chatTemplate) // a list of named templates is kept as ""
	}
	return nil
}

// BOS, EOS and PAD return the ids named by tokenizer_config.json, or -1.
func (t *Tokenizer) BOS() int { return t.bos }
func (t *Tokenizer) EOS() int { return t.eos }
func (t *Tokenizer) PAD() int { return t.pad }

// ChatTemplate is the config's Jinja chat_template (informational: rendering
// is implemented in Go by RenderChat).
func (t *Tokenizer) ChatTemplate() string { return t.chatTemplate }

// Dir is the directory the tokenizer was loaded from.
func (t *Tokenizer) Dir() string { return t.dir }

// BaseVocabSize is the BPE vocabulary size without added tokens (128000 for
// Llama-3); action tokens live at its top.
func (t *Tokenizer) BaseVocabSize() int { return len(*t.model.lib.Vocab) }

// VocabSize is one more than the largest id (ids may have gaps).
func (t *Tokenizer) VocabSize() int {
	n := t.BaseVocabSize()
	for _, a := range t.added {
		if a.ID+1 > n {
			n = a.ID + 1
		}
	}
	return n
}

// IDMask returns, for ids 0..n-1 (a model's vocab_size), whether the id has
// a token: the ids sampling may produce (llm.SampleOptions.Allowed) and the
// only labels training may use. Ids past the tokenizer (padding rows of the
// embedding matrix) and gaps among the added tokens are false.
func (t *Tokenizer) IDMask(n int) []bool {
	m := make([]bool, max(n, 0))
	for id := range m {
		_, m[id] = t.IDToToken(id)
	}
	return m
}

// AddedTokens lists the added tokens sorted by id.
func (t *Tokenizer) AddedTokens() []AddedToken { return append([]AddedToken(nil), t.added...) }

// TokenToID looks a token up, added tokens first (its vocabulary spelling
// for base tokens, e.g. "Ġthe").
func (t *Tokenizer) TokenToID(tok string) (int, bool) {
	if id, ok := t.byContent[tok]; ok {
		return id, true
	}
	id, ok := (*t.model.lib.Vocab)[tok]
	return id, ok
}

// IDToToken returns the token string of id (vocabulary spelling).
func (t *Tokenizer) IDToToken(id int) (string, bool) {
	if a, ok := t.byID[id]; ok {
		return a.Content, true
	}
	s, ok := (*t.model.lib.VocabR)[id]
	return s, ok
}

// IsSpecial reports whether id is an added token marked special.
func (t *Tokenizer) IsSpecial(id int) bool {
	a, ok := t.byID[id]
	return ok && a.Special
}

// Library returns the sugarme Tokenizer assembled from this tokenizer's
// parts (model, pre-tokenizer, decoder). It has no added vocabulary: see
// EncodeLibrary.
func (t *Tokenizer) Library() *sugar.Tokenizer { return t.lib }

// segments splits text at added tokens (leftmost-longest, as Hugging Face's
// Aho-Corasick matcher does) and calls fn for each plain-text run (id -1)
// and each added token.
func (t *Tokenizer) segments(text string, fn func(s string, id int)) {
	start := 0
	for i := 0; i < len(text); {
		cands := t.firstByte[text[i]]
		matched := false
		for _, a := range cands {
			if strings.HasPrefix(text[i:], a.Content) {
				if start < i {
					fn(text[start:i], -1)
				}
				fn(a.Content, a.ID)
				i += len(a.Content)
				start = i
				matched = true
				break
			}
		}
		if !matched {
			i++
		}
	}
	if start < len(text) {
		fn(text[start:], -1)
	}
}

// Encode tokenizes text exactly like Hugging Face's tokenizer.encode(text,
// add_special_tokens=False): added tokens in the text become their ids, the
// rest goes through the Llama-3 split and byte-level BPE. Invalid UTF-8 is
// first replaced with U+FFFD (see ToValidUTF8). No BOS is added.
func (t *Tokenizer) Encode(text string) []int {
	text = ToValidUTF8(text)
	ids := make([]int, 0, len(text)/3+1)
	var scratch []byte
	t.segments(text, func(s string, id int) {
		if id >= 0 {
			ids = append(ids, id)
			return
		}
		splitLlama3(s, func(a, b int) {
			ids = t.model.encodePiece(ids, s[a:b], &scratch)
		})
	})
	return ids
}

// ErrTooManyTokens is wrapped by EncodeChat when ChatOptions.MaxTokens is
// exceeded.
var ErrTooManyTokens = errors.New("tokenizer: token limit exceeded")

// encodeBounded appends the ids of text to ids as Encode does, or, with
// literal, recognising no added token except the image placeholders. It
// stops and reports false once ids holds more than limit entries.
func (t *Tokenizer) encodeBounded(ids []int, text string, literal bool, limit int) ([]int, bool) {
	text = ToValidUTF8(text)
	var scratch []byte
	ok := true
	plain := func(s string) {
		splitLlama3Until(s, func(a, b int) bool {
			ids = t.model.encodePiece(ids, s[a:b], &scratch)
			ok = len(ids) <= limit
			return ok
		})
	}
	if !literal {
		t.segments(text, func(s string, id int) {
			switch {
			case !ok:
			case id >= 0:
				ids = append(ids, id)
				ok = len(ids) <= limit
			default:
				plain(s)
			}
		})
		return ids, ok
	}
	for text != "" && ok {
		i, tok, id := t.nextPlaceholder(text)
		if i < 0 {
			plain(text)
			break
		}
		if i > 0 {
			plain(text[:i])
		}
		if !ok {
			break
		}
		ids = append(ids, id)
		ok = len(ids) <= limit
		text = text[i+len(tok):]
	}
	return ids, ok
}

// nextPlaceholder finds the first image placeholder (<image>,
// <image_start>, <image_end>) in s that the tokenizer knows; -1 if none.
func (t *Tokenizer) nextPlaceholder(s string) (int, string, int) {
	off := 0
	for {
		i := strings.Index(s[off:], "<image")
		if i < 0 {
			return -1, "", -1
		}
		i += off
		for _, tok := range []string{ImageToken, ImageStartToken, ImageEndToken} {
			if id, ok := t.byContent[tok]; ok && strings.HasPrefix(s[i:], tok) {
				return i, tok, id
			}
		}
		off = i + 1
	}
}

// EncodeLibrary encodes through sugarme's own pipeline (Tokenizer.EncodeSingle
// with Llama3PreTokenizer and the BPE model). Added tokens are split off here
// first because sugarme's AddedVocabulary assigns ids sequentially (Magma's
// ids have a gap at 128258) and mis-orders multiple matches. It must agree
// with Encode; it is much slower and exists to prove that.
func (t *Tokenizer) EncodeLibrary(text string) ([]int, error) {
	text = ToValidUTF8(text)
	var ids []int
	var err error
	t.segments(text, func(s string, id int) {
		if err != nil {
			return
		}
		if id >= 0 {
			ids = append(ids, id)
			return
		}
		enc, e := t.lib.EncodeSingle(s, false)
		if e != nil {
			err = e
			return
		}
		ids = append(ids, enc.Ids...)
	})
	return ids, err
}

// Decode turns ids back into text as Hugging Face's decode does with
// clean_up_tokenization_spaces=False: byte-level tokens become their bytes,
// added tokens their content (dropped if skipSpecial and special), and the
// bytes are read as UTF-8 with invalid sequences replaced by U+FFFD. An id
// outside the vocabulary is an error.
func (t *Tokenizer) Decode(ids []int, skipSpecial bool) (string, error) {
	buf := make([]byte, 0, len(ids)*4)
	for i, id := range ids {
		if a, ok := t.byID[id]; ok {
			if !(skipSpecial && a.Special) {
				buf = append(buf, a.Content...)
			}
			continue
		}
		tok, ok := (*t.model.lib.VocabR)[id]
		if !ok {
			return "", fmt.Errorf("tokenizer: id %d (position %d) is not in the vocabulary", id, i)
		}
		for _, r := range tok {
			b, ok := byteOf(r)
			if !ok {
				return "", fmt.Errorf("tokenizer: token %d %q is not byte-level", id, tok)
			}
			buf = append(buf, b)
		}
	}
	return ToValidUTF8(string(buf)), nil
}

// TokenBytes returns the bytes one id stands for in decoded text: an added
// token's content, or a base token's bytes (byte-level BPE: possibly part of
// a UTF-8 character). ok is false for an id the tokenizer does not have.
func (t *Tokenizer) TokenBytes(id int) (b []byte, ok bool) {
	if a, ok := t.byID[id]; ok {
		return []byte(a.Content), true
	}
	tok, ok := (*t.model.lib.VocabR)[id]
	if !ok {
		return nil, false
	}
	b = make([]byte, 0, len(tok))
	for _, r := range tok {
		c, ok := byteOf(r)
		if !ok {
			return nil, false
		}
		b = append(b, c)
	}
	return b, true
}

// charByte inverts sugarme's BytesChar table for the runes it uses (all
// below U+0144).
var charByte = func() (t [0x200]int16) {
	for i := range t {
		t[i] = -1
	}
	for b := 0; b < 256; b++ {
		for _, r := range pretokenizer.BytesChar[uint8(b)] {
			t[r] = int16(b)
		}
	}
	return t
}()

func byteOf(r rune) (byte, bool) {
	if r < 0 || int(r) >= len(charByte) || charByte[r] < 0 {
		return 0, false
	}
	return byte(charByte[r]), true
}
