package tokenizer

import (
	"bytes"
	"testing"
)

// TestTokenBytes (issue 31, point 9: logprobs' "bytes"): the bytes of the
// ids of a text concatenate to the text, also where a token holds part of a
// UTF-8 character; added tokens give their content; unknown ids fail.
func TestTokenBytes(t *testing.T) {
	tok := realTokenizer(t, "magma")
	text := "héllo 世界 🙂 <|eot_id|>"
	var got []byte
	for _, id := range tok.Encode(text) {
		b, ok := tok.TokenBytes(id)
		if !ok {
			t.Fatalf("id %d has no bytes", id)
		}
		got = append(got, b...)
	}
	if !bytes.Equal(got, []byte(text)) {
		t.Fatalf("bytes %q, want %q", got, text)
	}
	if _, ok := tok.TokenBytes(tok.VocabSize() + 5); ok {
		t.Fatal("an id past the vocabulary has bytes")
	}
	if _, ok := tok.TokenBytes(-1); ok {
		t.Fatal("id -1 has bytes")
	}
}
