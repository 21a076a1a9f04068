package gguf

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/magma-go/magma/llm"
	"github.com/magma-go/magma/llm/tokenizer"
)

// llama.cpp's token types (llama_token_type / gguf-py TokenType).
const (
	TokenNormal      int32 = 1
	TokenUnknown     int32 = 2
	TokenControl     int32 = 3
	TokenUserDefined int32 = 4
	TokenUnused      int32 = 5
	TokenByte        int32 = 6
)

// LlamaTokenizer returns the tokenizer.* metadata of a Llama-3 byte-level
// BPE tokenizer (tokenizer.json, tokenizer_config.json in dir) for a model
// of vocabSize ids, as llama.cpp's converter writes it for Llama-3
// (get_vocab_base + SpecialVocab):
//
//   - tokenizer.ggml.model "gpt2" and .pre "llama-bpe" (the tokenizer must
//     use Llama-3's pre-tokenizer, which the tokenizer package checks);
//   - .tokens: one per id below vocabSize, the vocabulary's byte-level
//     spelling ("Ġthe"); an id with no token (Magma's gap at 128258 and the
//     embedding rows past the tokenizer) is "[PAD<id>]" of type UNUSED;
//   - .token_type: NORMAL for the BPE vocabulary, CONTROL for added tokens
//     marked special or spelled like one (<|...|>, <pad>, ...), otherwise
//     USER_DEFINED (with "▁" written as a space);
//   - .merges "a b" from tokenizer.json, in order;
//   - .bos/.eos/.padding_token_id from tokenizer_config.json's bos/eos/pad
//     tokens, falling back to the text config's ids;
//   - tokenizer.chat_template when tokenizer_config.json has one.
func LlamaTokenizer(dir string, vocabSize int, text llm.Config) ([]KV, error) {
	tok, err := tokenizer.Load(dir)
	if err != nil {
		return nil, err
	}
	return llamaTokenizer(tok, vocabSize, text)
}

// llamaTokenizer is LlamaTokenizer of a loaded tokenizer.
func llamaTokenizer(tok *tokenizer.Tokenizer, vocabSize int, text llm.Config) ([]KV, error) {
	dir := tok.Dir()
	if n := tok.VocabSize(); n > vocabSize {
		return nil, fmt.Errorf("gguf: tokenizer in %s has ids up to %d, more than the model's vocab_size %d", dir, n-1, vocabSize)
	}
	added := map[int]tokenizer.AddedToken{}
	for _, a := range tok.AddedTokens() {
		added[a.ID] = a
	}
	tokens := make([]string, vocabSize)
	types := make([]int32, vocabSize)
	for id := range tokens {
		s, ok := tok.IDToToken(id)
		switch a, isAdded := added[id]; {
		case !ok:
			tokens[id], types[id] = fmt.Sprintf("[PAD%d]", id), TokenUnused
		case isAdded && (a.Special || looksSpecial(s)):
			tokens[id], types[id] = s, TokenControl
		case isAdded:
			tokens[id], types[id] = strings.ReplaceAll(s, "\u2581", " "), TokenUserDefined
		default:
			tokens[id], types[id] = s, TokenNormal
		}
	}
	merges, err := readMerges(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		return nil, err
	}
	kvs := []KV{
		{"tokenizer.ggml.model", "gpt2"},
		{"tokenizer.ggml.pre", "llama-bpe"},
		{"tokenizer.ggml.tokens", tokens},
		{"tokenizer.ggml.token_type", types},
		{"tokenizer.ggml.merges", merges},
	}
	eosCfg := -1
	if ids := text.EOSTokenIDs(); len(ids) > 0 {
		eosCfg = ids[0]
	}
	padCfg := -1
	if text.PadTokenID != nil {
		padCfg = *text.PadTokenID
	}
	for _, s := range []struct {
		key      string
		tok, cfg int
	}{
		{"tokenizer.ggml.bos_token_id", tok.BOS(), text.BosTokenID},
		{"tokenizer.ggml.eos_token_id", tok.EOS(), eosCfg},
		{"tokenizer.ggml.padding_token_id", tok.PAD(), padCfg},
	} {
		id := s.tok // tokenizer_config.json first, then the config
		if id < 0 {
			id = s.cfg
		}
		if id < 0 {
			continue
		}
		if id >= vocabSize {
			return nil, fmt.Errorf("gguf: %s %d is not below vocab_size %d", s.key, id, vocabSize)
		}
		kvs = append(kvs, KV{s.key, uint32(id)})
	}
	if t := tok.ChatTemplate(); t != "" {
		kvs = append(kvs, KV{"tokenizer.chat_template", t})
	}
	return kvs, nil
}

// looksSpecial is the converter's does_token_look_special: added tokens
// spelled like control tokens are control tokens even when not marked.
func looksSpecial(s string) bool {
	switch s {
	case "<pad>", "<mask>", "<2mass>", "[@BOS@]":
		return true
	}
	return (strings.HasPrefix(s, "<|") && strings.HasSuffix(s, "|>")) ||
		(strings.HasPrefix(s, "<｜") && strings.HasSuffix(s, "｜>")) ||
		(strings.HasPrefix(s, "<unused") && strings.HasSuffix(s, ">"))
}

// readMerges returns tokenizer.json's BPE merges as "a b" strings (the
// file lists either such strings or [a, b] pairs).
func readMerges(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	var f struct {
		Model struct {
			Merges []json.RawMessage `json:"merges"`
		} `json:"model"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("gguf: %s: %w", path, err)
	}
	out := make([]string, len(f.Model.Merges))
	for i, raw := range f.Model.Merges {
		var s string
		if err := json.Unmarshal(raw, &s); err == nil {
			if a, b, ok := strings.Cut(s, " "); !ok || a == "" || b == "" {
				return nil, fmt.Errorf("gguf: %s: merge %d %q is not two tokens", path, i, s)
			}
			out[i] = s
			continue
		}
		var pair []string
		if err := json.Unmarshal(raw, &pair); err != nil || len(pair) != 2 {
			return nil, fmt.Errorf("gguf: %s: merge %d is neither \"a b\" nor a pair", path, i)
		}
		out[i] = pair[0] + " " + pair[1]
	}
	return out, nil
}

// byteLevelChar is GPT-2's bytes_to_unicode: the printable bytes map to
// themselves, the others to code points from 256 on, in byte order.
func byteLevelChar(b byte) string {
	printable := func(c int) bool {
		return (c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF)
	}
	if printable(int(b)) {
		return string(rune(b))
	}
	n := 0
	for c := 0; c < int(b); c++ {
		if !printable(c) {
			n++
		}
	}
	return string(rune(256 + n))
}

// PlaceholderTokenizer is tokenizer metadata for a checkpoint without a
// tokenizer (test checkpoints such as the parity fixture): a gpt2 vocabulary
// whose first 256 ids are the byte-level tokens (so llama.cpp's byte
// fallback works) and the rest "<|reserved_N|>" control tokens, no merges;
// the text config's bos/eos/pad ids are control tokens "<|bos|>",
// "<|eos|>", "<|pad|>". Token ids mean nothing as text: evaluate such a
// file with token ids.
func PlaceholderTokenizer(vocabSize int, text llm.Config) ([]KV, error) {
	if vocabSize < 256 {
		return nil, fmt.Errorf("gguf: a placeholder byte-level vocabulary needs vocab_size >= 256, got %d", vocabSize)
	}
	tokens := make([]string, vocabSize)
	types := make([]int32, vocabSize)
	for id := range tokens {
		if id < 256 {
			tokens[id], types[id] = byteLevelChar(byte(id)), TokenNormal
		} else {
			tokens[id], types[id] = fmt.Sprintf("<|reserved_%d|>", id), TokenControl
		}
	}
	kvs := []KV{{"tokenizer.ggml.model", "gpt2"}, {"tokenizer.ggml.pre", "default"}}
	special := func(key, name string, id int) {
		if id >= 0 && id < vocabSize {
			tokens[id], types[id] = name, TokenControl
			kvs = append(kvs, KV{key, uint32(id)})
		}
	}
	special("tokenizer.ggml.bos_token_id", "<|bos|>", text.BosTokenID)
	if ids := text.EOSTokenIDs(); len(ids) > 0 {
		special("tokenizer.ggml.eos_token_id", "<|eos|>", ids[0])
	}
	if text.PadTokenID != nil {
		special("tokenizer.ggml.padding_token_id", "<|pad|>", *text.PadTokenID)
	}
	return append(kvs, KV{"tokenizer.ggml.tokens", tokens}, KV{"tokenizer.ggml.token_type", types}, KV{"tokenizer.ggml.merges", []string{}}), nil
}
