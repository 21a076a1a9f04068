package tokenizer

import (
	"bytes"
	"strings"
	"testing"
)

func TestRunJSONLines(t *testing.T) {
	tok := realTokenizer(t, "magma")
	run := func(mode StreamMode, o StreamOptions, in string) (string, error) {
		var out bytes.Buffer
		err := tok.RunJSONLines(strings.NewReader(in), &out, mode, o)
		return out.String(), err
	}
	out, err := run(StreamEncode, StreamOptions{}, "{\"text\":\"Hello <image> world\"}\n{\"text\":\"\"}")
	if err != nil || out != "{\"ids\":[9906,220,128257,1917]}\n{\"ids\":[]}\n" {
		t.Errorf("encode: %q, %v", out, err)
	}
	out, err = run(StreamEncode, StreamOptions{AddBOS: true}, "{\"text\":\"Hi\"}\r\n")
	if err != nil || out != "{\"ids\":[128000,13347]}\n" {
		t.Errorf("encode bos: %q, %v", out, err)
	}
	out, err = run(StreamDecode, StreamOptions{}, `{"ids":[9906,220,128257,1917]}`)
	if err != nil || out != "{\"text\":\"Hello <image> world\"}\n" {
		t.Errorf("decode: %q, %v", out, err)
	}
	out, err = run(StreamChat, StreamOptions{}, `{"messages":[{"role":"user","content":"hi"}],"no_system":true}`)
	if err != nil || out != "{\"ids\":[128000,128000,128006,882,128007,271,6151,128009,128006,78191,128007,271]}\n" {
		t.Errorf("chat: %q, %v", out, err)
	}
	out, err = run(StreamChat, StreamOptions{}, `{"messages":[{"role":"user","content":"hi"}],"no_system":true,"single_bos":true}`)
	if err != nil || out != "{\"ids\":[128000,128006,882,128007,271,6151,128009,128006,78191,128007,271]}\n" {
		t.Errorf("chat single_bos: %q, %v", out, err)
	}
	for _, c := range []struct {
		mode StreamMode
		in   string
		want string
	}{
		{StreamEncode, "{\"text\":\"a\"}\n{\"txt\":\"b\"}\n", "line 2: invalid JSON"},
		{StreamEncode, "{\"text\":\"a\"}\n\n", "line 2: empty line"},
		{StreamEncode, "{}", `line 1: missing "text"`},
		{StreamEncode, "{\"text\":\"a\"} {}", "line 1: invalid JSON: trailing"},
		{StreamDecode, `{"ids":[1,99999999]}`, "line 1: tokenizer: id 99999999"},
		{StreamDecode, `{"ids":"x"}`, "line 1: invalid JSON"},
		{StreamChat, `{"messages":[{"role":"bot","content":"x"}]}`, `line 1: chat: message 1: unknown role "bot"`},
		{StreamTrain, `{"messages":[{"role":"user","content":"x"}]}`, "line 1: chat: no assistant message"},
	} {
		out, err := run(c.mode, StreamOptions{}, c.in)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: err %v, want %q (out %q)", c.in, err, c.want, out)
		}
	}
}
