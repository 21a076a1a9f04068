package server

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http"
	"strings"
	"testing"
)

// TestModelRetrieveAndNames (issue 31, points 8 and 10): GET
// /v1/models/{id} answers for every served name (an id with "/" too, sent
// as is or as %2F), 404 model_not_found otherwise; /v1/models lists the
// names, the first one first; requests may name any of them and responses
// report the first.
func TestModelRetrieveAndNames(t *testing.T) {
	ts := startServer(t, Config{ModelName: "step-000300", ModelAliases: []string{"tiny", "org/magma-tiny", "tiny"}}, nil, "")
	resp, body := ts.get(t, "/v1/models")
	var list struct {
		Object string `json:"object"`
		Data   []struct {
			ID     string `json:"id"`
			Object string `json:"object"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &list); err != nil || resp.StatusCode != 200 || list.Object != "list" {
		t.Fatalf("%d %s (%v)", resp.StatusCode, body, err)
	}
	var ids []string
	for _, d := range list.Data {
		ids = append(ids, d.ID)
	}
	if strings.Join(ids, " ") != "step-000300 tiny org/magma-tiny" {
		t.Fatalf("/v1/models ids %v", ids)
	}
	for _, c := range []struct{ path, id string }{
		{"/v1/models/step-000300", "step-000300"},
		{"/v1/models/tiny", "tiny"},
		{"/v1/models/org/magma-tiny", "org/magma-tiny"},
		{"/v1/models/org%2Fmagma-tiny", "org/magma-tiny"},
	} {
		resp, body := ts.get(t, c.path)
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil || resp.StatusCode != 200 || m["id"] != c.id || m["object"] != "model" ||
			m["owned_by"] == nil || m["created"] == nil {
			t.Fatalf("GET %s: %d %s", c.path, resp.StatusCode, body)
		}
	}
	for _, path := range []string{"/v1/models/magma", "/v1/models/Tiny", "/v1/models/org"} {
		resp, body := ts.get(t, path)
		checkError(t, resp, body, 404, "model")
		if !strings.Contains(string(body), "model_not_found") {
			t.Fatalf("GET %s: %s", path, body)
		}
	}
	resp, body = ts.post(t, "/v1/models/tiny", map[string]any{})
	checkError(t, resp, body, 405, "")

	for _, name := range []string{"tiny", "step-000300", "org/magma-tiny", ""} {
		resp, body := ts.post(t, "/v1/chat/completions", chatBody("Hi", map[string]any{"model": name, "max_tokens": 2}))
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil || resp.StatusCode != 200 || m["model"] != "step-000300" {
			t.Fatalf("model %q: %d %s", name, resp.StatusCode, body)
		}
	}
	resp, body = ts.post(t, "/v1/chat/completions", chatBody("Hi", map[string]any{"model": "gpt-4o", "max_tokens": 2}))
	checkError(t, resp, body, 404, "model")
	if !strings.Contains(string(body), `\"tiny\"`) {
		t.Fatalf("the 404 should list the served names: %s", body)
	}
	resp, body = ts.post(t, "/v1/ground", map[string]any{"model": "tiny", "image": pngDataURI(t, 32, 32), "instruction": "x", "boxes": [][]int{{1, 1, 9, 9}}})
	if resp.StatusCode != 200 {
		t.Fatalf("ground with an alias: %d %s", resp.StatusCode, body)
	}
}

// TestUnsupportedParams (issue 31, point 9): parameters Magma cannot honour
// are a 400 naming them, not silently ignored; their neutral values and the
// implemented ones (penalties, logprobs) pass; out-of-range values are 400s.
func TestUnsupportedParams(t *testing.T) {
	ts := startServer(t, Config{}, nil, "")
	tool := []map[string]any{{"type": "function", "function": map[string]any{"name": "f", "parameters": map[string]any{}}}}
	for _, c := range []struct {
		name   string
		extra  map[string]any
		status int
		param  string
	}{
		{"json mode", map[string]any{"response_format": map[string]any{"type": "json_object"}}, 400, "response_format"},
		{"json schema", map[string]any{"response_format": map[string]any{"type": "json_schema", "json_schema": map[string]any{"name": "x", "schema": map[string]any{}}}}, 400, "response_format"},
		{"response_format not an object", map[string]any{"response_format": "json"}, 400, "response_format"},
		{"tools", map[string]any{"tools": tool}, 400, "tools"},
		{"tool_choice auto", map[string]any{"tool_choice": "auto"}, 400, "tool_choice"},
		{"tool_choice named", map[string]any{"tool_choice": map[string]any{"type": "function", "function": map[string]any{"name": "f"}}}, 400, "tool_choice"},
		{"functions", map[string]any{"functions": []map[string]any{{"name": "f"}}}, 400, "functions"},
		{"function_call", map[string]any{"function_call": "auto"}, 400, "function_call"},
		{"logit_bias", map[string]any{"logit_bias": map[string]any{"50256": -100}}, 400, "logit_bias"},
		{"presence_penalty high", map[string]any{"presence_penalty": 2.5}, 400, "presence_penalty"},
		{"frequency_penalty low", map[string]any{"frequency_penalty": -2.01}, 400, "frequency_penalty"},
		{"penalty not a number", map[string]any{"frequency_penalty": "1"}, 400, "frequency_penalty"},
		{"top_logprobs without logprobs", map[string]any{"top_logprobs": 2}, 400, "top_logprobs"},
		{"top_logprobs with logprobs false", map[string]any{"logprobs": false, "top_logprobs": 2}, 400, "top_logprobs"},
		{"top_logprobs 21", map[string]any{"logprobs": true, "top_logprobs": 21}, 400, "top_logprobs"},
		{"top_logprobs negative", map[string]any{"logprobs": true, "top_logprobs": -1}, 400, "top_logprobs"},
		{"logprobs not a bool", map[string]any{"logprobs": 1}, 400, "logprobs"},
		// neutral values and implemented parameters
		{"response_format text", map[string]any{"response_format": map[string]any{"type": "text"}}, 200, ""},
		{"nulls", map[string]any{"response_format": nil, "tools": nil, "tool_choice": nil, "functions": nil, "logit_bias": nil}, 200, ""},
		{"empty tools", map[string]any{"tools": []any{}, "tool_choice": "none", "logit_bias": map[string]any{}}, 200, ""},
		{"penalties at the bounds", map[string]any{"presence_penalty": -2, "frequency_penalty": 2}, 200, ""},
		{"logprobs", map[string]any{"logprobs": true, "top_logprobs": 20}, 200, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.extra["max_tokens"] = 2
			resp, body := ts.post(t, "/v1/chat/completions", chatBody("Hi", c.extra))
			if c.status != 200 {
				checkError(t, resp, body, c.status, c.param)
				return
			}
			if resp.StatusCode != 200 {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
		})
	}
}

type lpEntry struct {
	Token   string    `json:"token"`
	Logprob float64   `json:"logprob"`
	Bytes   []int     `json:"bytes"`
	Top     []lpEntry `json:"top_logprobs"`
}

type lpResp struct {
	Model   string `json:"model"`
	Choices []struct {
		Message struct {
			Content string `json:"content"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
		Logprobs     *struct {
			Content []lpEntry `json:"content"`
		} `json:"logprobs"`
	} `json:"choices"`
	Usage usage `json:"usage"`
}

func postLogprobs(t *testing.T, ts *testServer, extra map[string]any) lpResp {
	t.Helper()
	resp, body := ts.post(t, "/v1/chat/completions", chatBody("Describe a cat.", extra))
	var r lpResp
	if err := json.Unmarshal(body, &r); err != nil || resp.StatusCode != 200 || len(r.Choices) != 1 {
		t.Fatalf("%d %s (%v)", resp.StatusCode, body, err)
	}
	return r
}

// TestChatLogprobs (issue 31, point 9): logprobs in OpenAI's shape, one
// entry per generated token (the ending EOS excepted), the top
// alternatives sorted, greedy's choice the most probable one, the bytes
// spelling the content, and the same entries when streamed.
func TestChatLogprobs(t *testing.T) {
	ts := startServer(t, Config{}, nil, "")
	// Without logprobs: null.
	r := postLogprobs(t, ts, map[string]any{"max_tokens": 3})
	if r.Choices[0].Logprobs != nil {
		t.Fatalf("logprobs without asking: %+v", r.Choices[0].Logprobs)
	}
	r = postLogprobs(t, ts, map[string]any{"max_tokens": 8, "logprobs": true, "top_logprobs": 5})
	ch := r.Choices[0]
	if ch.Logprobs == nil {
		t.Fatal("no logprobs")
	}
	want := r.Usage.CompletionTokens
	if ch.FinishReason == "stop" {
		want--
	}
	if len(ch.Logprobs.Content) != want {
		t.Fatalf("%d logprob entries for %d tokens (finish %s)", len(ch.Logprobs.Content), r.Usage.CompletionTokens, ch.FinishReason)
	}
	var spelled []byte
	for i, e := range ch.Logprobs.Content {
		if e.Logprob > 0 || len(e.Top) != 5 || e.Bytes == nil {
			t.Fatalf("entry %d: %+v", i, e)
		}
		if e.Logprob != e.Top[0].Logprob || e.Token != e.Top[0].Token {
			t.Fatalf("entry %d: greedy token %q (%v) is not the most probable %+v", i, e.Token, e.Logprob, e.Top[0])
		}
		for k := 1; k < len(e.Top); k++ {
			if e.Top[k].Logprob > e.Top[k-1].Logprob || e.Top[k].Top != nil {
				t.Fatalf("entry %d: top not sorted or nested: %+v", i, e.Top)
			}
		}
		for _, b := range e.Bytes {
			spelled = append(spelled, byte(b))
		}
		if !strings.ContainsRune(e.Token, '\uFFFD') && string(bytesOf(e.Bytes)) != e.Token {
			t.Fatalf("entry %d: token %q, bytes %v", i, e.Token, e.Bytes)
		}
	}
	if string(spelled) != ch.Message.Content {
		t.Fatalf("bytes spell %q, content %q", spelled, ch.Message.Content)
	}
	// top_logprobs 0 (the default): an empty array.
	r0 := postLogprobs(t, ts, map[string]any{"max_tokens": 2, "logprobs": true})
	if lp := r0.Choices[0].Logprobs; lp == nil || len(lp.Content) == 0 || lp.Content[0].Top == nil || len(lp.Content[0].Top) != 0 {
		t.Fatalf("logprobs without top_logprobs: %+v", lp)
	}

	// Streaming: the chunks' entries together are the same.
	req := chatBody("Describe a cat.", map[string]any{"max_tokens": 8, "logprobs": true, "top_logprobs": 5, "stream": true})
	j, _ := json.Marshal(req)
	resp, err := http.Post(ts.url+"/v1/chat/completions", "application/json", bytes.NewReader(j))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	events := readSSE(t, resp.Body)
	var streamed []lpEntry
	var text strings.Builder
	for _, ev := range events[:len(events)-1] {
		var c struct {
			Choices []struct {
				Delta    map[string]string `json:"delta"`
				Logprobs *struct {
					Content []lpEntry `json:"content"`
				} `json:"logprobs"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(ev), &c); err != nil || len(c.Choices) != 1 {
			t.Fatalf("chunk %s: %v", ev, err)
		}
		text.WriteString(c.Choices[0].Delta["content"])
		if lp := c.Choices[0].Logprobs; lp != nil {
			if len(lp.Content) == 0 {
				t.Fatalf("chunk with empty logprobs: %s", ev)
			}
			streamed = append(streamed, lp.Content...)
		}
	}
	if text.String() != ch.Message.Content || len(streamed) != len(ch.Logprobs.Content) {
		t.Fatalf("streamed %q with %d entries, non-streamed %q with %d", text.String(), len(streamed), ch.Message.Content, len(ch.Logprobs.Content))
	}
	for i := range streamed {
		a, b := streamed[i], ch.Logprobs.Content[i]
		if a.Token != b.Token || a.Logprob != b.Logprob || len(a.Top) != len(b.Top) {
			t.Fatalf("entry %d streamed %+v, non-streamed %+v", i, a, b)
		}
	}
}

func bytesOf(v []int) []byte {
	b := make([]byte, len(v))
	for i, x := range v {
		b[i] = byte(x)
	}
	return b
}

// TestChatPenalties (issue 31, point 9): the penalties reach the sampler
// with OpenAI's formula, over the tokens generated so far. Greedy, the
// first token t1 is the same with and without penalties, so the second step
// sees the same model logits; with frequency -1.5 + presence -0.5 (they
// favour repetition) the second step's log-probabilities are those without
// penalties shifted by one constant, except t1's, raised by 2 more; greedy
// then repeats t1 (the random tiny model's distribution is nearly flat).
func TestChatPenalties(t *testing.T) {
	ts := startServer(t, Config{}, nil, "")
	base := map[string]any{"max_tokens": 2, "logprobs": true, "top_logprobs": 20}
	plain := postLogprobs(t, ts, base)
	pen := map[string]any{"frequency_penalty": -1.5, "presence_penalty": -0.5}
	for k, v := range base {
		pen[k] = v
	}
	penal := postLogprobs(t, ts, pen)
	a, b := plain.Choices[0].Logprobs.Content, penal.Choices[0].Logprobs.Content
	if len(a) != 2 || len(b) != 2 {
		t.Fatalf("want two entries each (no EOS from this seed): %d, %d", len(a), len(b))
	}
	if a[0].Token != b[0].Token || a[0].Logprob != b[0].Logprob {
		t.Fatalf("first token differs: %+v vs %+v", a[0], b[0])
	}
	t1 := a[0].Token
	if b[1].Token != t1 || b[1].Logprob != b[1].Top[0].Logprob {
		t.Fatalf("a repetition bonus of 2 did not make greedy repeat %q: %+v", t1, b[1])
	}
	plainLP := map[string]float64{}
	for _, e := range a[1].Top {
		plainLP[e.Token] = e.Logprob
	}
	shift, common := math.NaN(), 0
	for _, e := range b[1].Top {
		p, ok := plainLP[e.Token]
		if !ok || e.Token == t1 {
			continue
		}
		if d := e.Logprob - p; math.IsNaN(shift) {
			shift = d
		} else if math.Abs(d-shift) > 1e-3 {
			t.Fatalf("token %q: shift %v, others %v", e.Token, d, shift)
		}
		common++
	}
	if common < 10 || shift > 1e-3 {
		t.Fatalf("%d common tokens, shift %v (favouring t1 must not raise the others)", common, shift)
	}
	// t1 without the penalties: listed, or below the plain top 20's last.
	t1Plain := b[1].Logprob - shift - 2
	if p, ok := plainLP[t1]; ok && math.Abs(p-t1Plain) > 1e-3 || !ok && t1Plain > a[1].Top[len(a[1].Top)-1].Logprob+1e-3 {
		t.Fatalf("t1 %q: penalised %v, shift %v, unpenalised %v (listed %v)", t1, b[1].Logprob, shift, p, ok)
	}
}
