package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/llm/tokenizer"
	"github.com/magma-go/magma/model"
	"github.com/magma-go/magma/model/action"
)

var (
	tinyOnce sync.Once
	tinyPipe *model.Pipeline
	tinyErr  error
)

// tinyPipeline is the tiny preset with random weights and the real Magma
// tokenizer, shared by the tests (weights are read-only).
func tinyPipeline(t testing.TB) *model.Pipeline {
	t.Helper()
	tinyOnce.Do(func() {
		tokDir, err := tokenizer.Locate("magma")
		if err != nil {
			tinyErr = fmt.Errorf("skip: %v", err)
			return
		}
		cfg, pp, err := model.PresetConfigs("tiny")
		if err != nil {
			tinyErr = err
			return
		}
		m, err := model.New(cfg)
		if err != nil {
			tinyErr = err
			return
		}
		if err := m.InitRandom(7); err != nil {
			tinyErr = err
			return
		}
		tok, err := tokenizer.Load(tokDir)
		if err != nil {
			tinyErr = err
			return
		}
		tinyPipe = &model.Pipeline{Loaded: &model.Loaded{Model: m, Preprocessor: pp}, Tokenizer: tok}
	})
	if tinyErr != nil {
		if strings.HasPrefix(tinyErr.Error(), "skip: ") {
			t.Skipf("tokenizer assets absent (run `make tokenizer`): %v", tinyErr)
		}
		t.Fatal(tinyErr)
	}
	return tinyPipe
}

// testServer is a Server with the tiny model on a real 127.0.0.1 listener.
type testServer struct {
	*Server
	url  string
	done chan error
}

// startServer serves the tiny model; hook (optional) runs before every
// decode step; statsJSON (optional) is written as dataset_statistics.json.
func startServer(t *testing.T, cfg Config, hook func(), statsJSON string) *testServer {
	t.Helper()
	return startServerPipeline(t, cfg, hook, statsJSON, tinyPipeline(t))
}

// startServerPipeline is startServer with a given pipeline.
func startServerPipeline(t *testing.T, cfg Config, hook func(), statsJSON string, base *model.Pipeline) *testServer {
	t.Helper()
	dir := t.TempDir()
	if statsJSON != "" {
		if err := os.WriteFile(filepath.Join(dir, action.DatasetStatisticsFile), []byte(statsJSON), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ld := *base.Loaded
	ld.Dir = dir
	p := &model.Pipeline{Loaded: &ld, Tokenizer: base.Tokenizer, KVCacheDtype: base.KVCacheDtype}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.ModelName == "" {
		cfg.ModelName = "magma-tiny"
	}
	s := New(cfg)
	if err := s.Load(p); err != nil {
		t.Fatal(err)
	}
	s.eng.hookBeforeStep = hook
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Server: s, url: "http://" + ln.Addr().String(), done: make(chan error, 1)}
	go func() { ts.done <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	return ts
}

func (ts *testServer) post(t *testing.T, path string, body any) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	resp, err := http.Post(ts.url+path, "application/json", rd)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp, out
}

func (ts *testServer) get(t *testing.T, path string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(ts.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp, out
}

func pngDataURI(t testing.TB, w, h int) string {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(x * 7), uint8(y * 5), uint8(x + y), 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes())
}

type chatResp struct {
	Choices []struct {
		Message struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage  usage  `json:"usage"`
	Object string `json:"object"`
}

func chatBody(content any, extra map[string]any) map[string]any {
	b := map[string]any{"messages": []map[string]any{{"role": "user", "content": content}}, "temperature": 0}
	for k, v := range extra {
		b[k] = v
	}
	return b
}

func TestHealthModelsMetrics(t *testing.T) {
	ts := startServer(t, Config{}, nil, "")
	resp, body := ts.get(t, "/health")
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"ok"`) {
		t.Fatalf("health: %d %s", resp.StatusCode, body)
	}
	resp, body = ts.get(t, "/v1/models")
	var models struct {
		Object string `json:"object"`
		Data   []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &models); err != nil || resp.StatusCode != 200 || len(models.Data) != 1 || models.Data[0].ID != "magma-tiny" {
		t.Fatalf("models: %d %s %v", resp.StatusCode, body, err)
	}
	ts.post(t, "/v1/chat/completions", chatBody("hi", map[string]any{"max_tokens": 3}))
	ts.post(t, "/v1/chat/completions", "{bad")
	resp, body = ts.get(t, "/metrics")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("metrics: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{
		`magma_requests_total{code="200",endpoint="/v1/chat/completions"} 1`,
		`magma_requests_total{code="400",endpoint="/v1/chat/completions"} 1`,
		`magma_request_errors_total{endpoint="/v1/chat/completions"} 1`,
		"magma_queue_depth 0", "magma_generated_tokens_total 3", "# TYPE magma_tokens_per_second gauge",
		`magma_request_duration_seconds_bucket{endpoint="/v1/chat/completions",le="+Inf"} 2`,
		`magma_request_duration_seconds_count{endpoint="/v1/chat/completions"} 2`,
		"magma_up 1", "magma_decode_graph_builds_total",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
	// Every sample line is "name{labels} value" or "name value".
	for _, line := range strings.Split(strings.TrimSpace(string(body)), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		if f := strings.Fields(line); len(f) != 2 {
			t.Errorf("bad exposition line %q", line)
		}
	}
}

func TestHealthWhileLoading(t *testing.T) {
	s := New(Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	rec := &recorder{h: http.Header{}}
	req, _ := http.NewRequest("GET", "/health", nil)
	s.Handler().ServeHTTP(rec, req)
	if rec.code != 503 {
		t.Fatalf("health before load: %d", rec.code)
	}
	rec = &recorder{h: http.Header{}}
	req, _ = http.NewRequest("POST", "/v1/chat/completions", strings.NewReader(`{}`))
	s.Handler().ServeHTTP(rec, req)
	if rec.code != 503 || !strings.Contains(rec.body.String(), "model_loading") {
		t.Fatalf("chat before load: %d %s", rec.code, rec.body.String())
	}
}

type recorder struct {
	h    http.Header
	code int
	body bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.h }
func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = 200
	}
	return r.body.Write(b)
}
func (r *recorder) WriteHeader(c int) { r.code = c }

func TestChatCompletion(t *testing.T) {
	ts := startServer(t, Config{}, nil, "")
	resp, body := ts.post(t, "/v1/chat/completions", chatBody("Describe the weather.", map[string]any{"max_tokens": 12, "model": "magma-tiny"}))
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	var cr chatResp
	if err := json.Unmarshal(body, &cr); err != nil {
		t.Fatal(err)
	}
	if cr.Object != "chat.completion" || len(cr.Choices) != 1 || cr.Choices[0].Message.Role != "assistant" {
		t.Fatalf("bad response %s", body)
	}
	if cr.Usage.CompletionTokens == 0 || cr.Usage.CompletionTokens > 12 || cr.Usage.PromptTokens == 0 ||
		cr.Usage.TotalTokens != cr.Usage.PromptTokens+cr.Usage.CompletionTokens {
		t.Fatalf("usage %+v", cr.Usage)
	}
	if fr := cr.Choices[0].FinishReason; fr != "length" && fr != "stop" {
		t.Fatalf("finish_reason %q", fr)
	}
	text := cr.Choices[0].Message.Content

	// Greedy is deterministic: the same request gives the same text.
	_, body2 := ts.post(t, "/v1/chat/completions", chatBody("Describe the weather.", map[string]any{"max_tokens": 12}))
	var cr2 chatResp
	_ = json.Unmarshal(body2, &cr2)
	if cr2.Choices[0].Message.Content != text {
		t.Fatalf("greedy not deterministic: %q vs %q", cr2.Choices[0].Message.Content, text)
	}

	// A stop string taken from the middle of the text cuts it there.
	runes := []rune(text)
	if len(runes) >= 4 {
		stop := string(runes[len(runes)/2 : len(runes)/2+2])
		_, body3 := ts.post(t, "/v1/chat/completions", chatBody("Describe the weather.", map[string]any{"max_tokens": 12, "stop": []string{stop}}))
		var cr3 chatResp
		_ = json.Unmarshal(body3, &cr3)
		want := text[:strings.Index(text, stop)]
		if cr3.Choices[0].Message.Content != want || cr3.Choices[0].FinishReason != "stop" {
			t.Fatalf("stop %q: got %q (%s), want %q", stop, cr3.Choices[0].Message.Content, cr3.Choices[0].FinishReason, want)
		}
	}

	// Image parts (data: URIs) with sampling options.
	content := []map[string]any{
		{"type": "image_url", "image_url": map[string]any{"url": pngDataURI(t, 40, 30)}},
		{"type": "text", "text": "What is in the image?"},
	}
	resp, body = ts.post(t, "/v1/chat/completions", chatBody(content, map[string]any{"max_tokens": 5, "temperature": 0.8, "top_p": 0.9, "seed": 42}))
	if resp.StatusCode != 200 {
		t.Fatalf("image request: %d %s", resp.StatusCode, body)
	}
	var ci chatResp
	_ = json.Unmarshal(body, &ci)
	if ci.Usage.PromptTokens <= cr.Usage.PromptTokens {
		t.Fatalf("image prompt has %d positions, text-only %d", ci.Usage.PromptTokens, cr.Usage.PromptTokens)
	}
	_, body2 = ts.post(t, "/v1/chat/completions", chatBody(content, map[string]any{"max_tokens": 5, "temperature": 0.8, "top_p": 0.9, "seed": 42}))
	if !bytes.Equal(stripIDs(body), stripIDs(body2)) {
		t.Fatalf("seeded sampling differs:\n%s\n%s", body, body2)
	}
}

// A pipeline with a bfloat16 KV cache (--kv-cache bf16) serves; a KV cache
// dtype other than f32/bf16 is refused at load.
func TestChatBF16KVCache(t *testing.T) {
	base := *tinyPipeline(t)
	base.KVCacheDtype = kernels.BFloat16
	ts := startServerPipeline(t, Config{MaxBatch: 2}, nil, "", &base)
	resp, body := ts.post(t, "/v1/chat/completions", chatBody("Describe the weather.", map[string]any{"max_tokens": 6}))
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	var cr chatResp
	if err := json.Unmarshal(body, &cr); err != nil {
		t.Fatal(err)
	}
	if cr.Usage.CompletionTokens == 0 || len(cr.Choices) != 1 {
		t.Fatalf("bad response %s", body)
	}
	base.KVCacheDtype = kernels.Float16
	s := New(Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := s.Load(&base); err == nil || !strings.Contains(err.Error(), "KV cache") {
		t.Fatalf("f16 KV cache: %v", err)
	}
}

func stripIDs(b []byte) []byte {
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	delete(m, "id")
	delete(m, "created")
	out, _ := json.Marshal(m)
	return out
}

// readSSE reads "data: ..." events until [DONE] or EOF.
func readSSE(t *testing.T, r io.Reader) []string {
	t.Helper()
	var events []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		if !strings.HasPrefix(line, "data: ") {
			t.Fatalf("SSE line without data: prefix: %q", line)
		}
		events = append(events, strings.TrimPrefix(line, "data: "))
		if line == "data: [DONE]" {
			break
		}
	}
	return events
}

func TestChatStreaming(t *testing.T) {
	ts := startServer(t, Config{}, nil, "")
	_, body := ts.post(t, "/v1/chat/completions", chatBody("Count to ten.", map[string]any{"max_tokens": 10}))
	var cr chatResp
	_ = json.Unmarshal(body, &cr)

	req := chatBody("Count to ten.", map[string]any{"max_tokens": 10, "stream": true, "stream_options": map[string]any{"include_usage": true}})
	j, _ := json.Marshal(req)
	resp, err := http.Post(ts.url+"/v1/chat/completions", "application/json", bytes.NewReader(j))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	events := readSSE(t, resp.Body)
	if len(events) < 4 || events[len(events)-1] != "[DONE]" {
		t.Fatalf("events %v", events)
	}
	type chunk struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Choices []struct {
			Delta        map[string]string `json:"delta"`
			FinishReason *string           `json:"finish_reason"`
		} `json:"choices"`
		Usage *usage `json:"usage"`
	}
	var text strings.Builder
	var finish string
	var id string
	var gotUsage *usage
	for i, ev := range events[:len(events)-1] {
		var c chunk
		if err := json.Unmarshal([]byte(ev), &c); err != nil {
			t.Fatalf("event %d %q: %v", i, ev, err)
		}
		if c.Object != "chat.completion.chunk" {
			t.Fatalf("event %d object %q", i, c.Object)
		}
		if id == "" {
			id = c.ID
		} else if c.ID != id {
			t.Fatalf("chunk ids differ: %s %s", id, c.ID)
		}
		if i == 0 && (len(c.Choices) != 1 || c.Choices[0].Delta["role"] != "assistant") {
			t.Fatalf("first chunk has no assistant role: %s", ev)
		}
		if c.Usage != nil {
			gotUsage = c.Usage
			if len(c.Choices) != 0 {
				t.Fatalf("usage chunk has choices: %s", ev)
			}
			continue
		}
		text.WriteString(c.Choices[0].Delta["content"])
		if c.Choices[0].FinishReason != nil {
			finish = *c.Choices[0].FinishReason
		}
	}
	if text.String() != cr.Choices[0].Message.Content {
		t.Fatalf("streamed text %q, non-streamed %q", text.String(), cr.Choices[0].Message.Content)
	}
	if finish != cr.Choices[0].FinishReason {
		t.Fatalf("streamed finish %q, non-streamed %q", finish, cr.Choices[0].FinishReason)
	}
	if gotUsage == nil || *gotUsage != cr.Usage {
		t.Fatalf("stream usage %+v, non-stream %+v", gotUsage, cr.Usage)
	}
}

func TestTextStreamHoldsBackStops(t *testing.T) {
	tok := tinyPipeline(t).Tokenizer
	ids := tok.Encode("Hello world, this is a test of stop strings.")
	ts := &textStream{tok: tok, stops: []string{"test of"}}
	var got strings.Builder
	for i, id := range ids {
		d, err := ts.add(id, i == len(ids)-1)
		if err != nil {
			t.Fatal(err)
		}
		got.WriteString(d)
		if ts.stopped {
			break
		}
	}
	if got.String() != "Hello world, this is a " || !ts.stopped {
		t.Fatalf("got %q stopped=%v", got.String(), ts.stopped)
	}
}

func TestErrorShapes(t *testing.T) {
	remote := startImageHost(t)
	ts := startServer(t, Config{MaxImages: 2, MaxBodyBytes: 1 << 20, MaxImagePixels: 100 * 100, MaxContext: 256}, nil, "")
	img := pngDataURI(t, 20, 20)
	imgPart := map[string]any{"type": "image_url", "image_url": map[string]any{"url": img}}
	cases := []struct {
		name   string
		path   string
		body   any
		status int
		param  string
	}{
		{"bad json", "/v1/chat/completions", `{"messages": [`, 400, ""},
		{"trailing data", "/v1/chat/completions", `{"messages": []} {}`, 400, ""},
		{"not an object", "/v1/chat/completions", `[1,2]`, 400, ""},
		{"messages wrong type", "/v1/chat/completions", `{"messages": "hi"}`, 400, "messages"},
		{"max_tokens string", "/v1/chat/completions", `{"messages": [{"role":"user","content":"x"}], "max_tokens": "5"}`, 400, "max_tokens"},
		{"max_tokens float", "/v1/chat/completions", `{"messages": [{"role":"user","content":"x"}], "max_tokens": 2.5}`, 400, "max_tokens"},
		{"negative max_tokens", "/v1/chat/completions", chatBody("x", map[string]any{"max_tokens": -3}), 400, "max_tokens"},
		{"zero max_tokens", "/v1/chat/completions", chatBody("x", map[string]any{"max_tokens": 0}), 400, "max_tokens"},
		{"temperature", "/v1/chat/completions", chatBody("x", map[string]any{"temperature": 9}), 400, "temperature"},
		{"top_p", "/v1/chat/completions", chatBody("x", map[string]any{"top_p": -1}), 400, "top_p"},
		{"stop type", "/v1/chat/completions", chatBody("x", map[string]any{"stop": 3}), 400, "stop"},
		{"too many stops", "/v1/chat/completions", chatBody("x", map[string]any{"stop": []string{"a", "b", "c", "d", "e"}}), 400, "stop"},
		{"n=2", "/v1/chat/completions", chatBody("x", map[string]any{"n": 2}), 400, "n"},
		{"unknown model", "/v1/chat/completions", chatBody("x", map[string]any{"model": "gpt-4"}), 404, "model"},
		{"empty messages", "/v1/chat/completions", `{"messages": []}`, 400, "messages"},
		{"bad role", "/v1/chat/completions", `{"messages": [{"role":"tool","content":"x"}]}`, 400, "messages[0].role"},
		{"no content", "/v1/chat/completions", `{"messages": [{"role":"user"}]}`, 400, "messages[0].content"},
		{"content number", "/v1/chat/completions", `{"messages": [{"role":"user","content":5}]}`, 400, "messages"},
		{"part type", "/v1/chat/completions", chatBody([]map[string]any{{"type": "audio"}}, nil), 400, "messages[0].content[0].type"},
		{"image token in text", "/v1/chat/completions", chatBody("look <image> here", nil), 400, "messages[0].content[0]"},
		{"undecodable image", "/v1/chat/completions", chatBody([]map[string]any{{"type": "image_url", "image_url": map[string]any{"url": "data:image/png;base64,aGVsbG8="}}}, nil), 400, "messages[0].content[0].image_url.url"},
		{"bad base64", "/v1/chat/completions", chatBody([]map[string]any{{"type": "image_url", "image_url": map[string]any{"url": "data:image/png;base64,@@@"}}}, nil), 400, "messages[0].content[0].image_url.url"},
		{"non-image data uri", "/v1/chat/completions", chatBody([]map[string]any{{"type": "image_url", "image_url": map[string]any{"url": "data:text/plain;base64,aGVsbG8="}}}, nil), 400, "messages[0].content[0].image_url.url"},
		{"file url", "/v1/chat/completions", chatBody([]map[string]any{{"type": "image_url", "image_url": map[string]any{"url": "file:///etc/passwd"}}}, nil), 400, "messages[0].content[0].image_url.url"},
		{"path", "/v1/chat/completions", chatBody([]map[string]any{{"type": "image_url", "image_url": map[string]any{"url": "/etc/passwd"}}}, nil), 400, "messages[0].content[0].image_url.url"},
		{"remote refused", "/v1/chat/completions", chatBody([]map[string]any{{"type": "image_url", "image_url": map[string]any{"url": remote + "/a.png"}}}, nil), 400, "messages[0].content[0].image_url.url"},
		{"image too large", "/v1/chat/completions", chatBody([]map[string]any{{"type": "image_url", "image_url": map[string]any{"url": pngDataURI(t, 200, 200)}}}, nil), 400, "messages[0].content[0].image_url.url"},
		{"too many images", "/v1/chat/completions", chatBody([]map[string]any{imgPart, imgPart, imgPart}, nil), 400, "messages[0].content[2]"},
		{"image in assistant", "/v1/chat/completions", `{"messages": [{"role":"assistant","content":[{"type":"image_url","image_url":{"url":"` + img + `"}}]}]}`, 400, "messages[0].content[0]"},
		{"context exceeded", "/v1/chat/completions", chatBody("x", map[string]any{"max_tokens": 100000}), 400, "max_tokens"},
		{"body too large", "/v1/chat/completions", `{"messages": [{"role":"user","content":"` + strings.Repeat("a", 2<<20) + `"}]}`, 413, ""},
		{"ground no image", "/v1/ground", `{"instruction": "x"}`, 400, "image"},
		{"ground bad box", "/v1/ground", map[string]any{"image": img, "instruction": "x", "boxes": [][]float64{{1, 2, 3}}}, 400, "boxes[0]"},
		{"ground box outside", "/v1/ground", map[string]any{"image": img, "instruction": "x", "boxes": [][]float64{{100, 100, 120, 120}}}, 400, "boxes"},
		{"ground box type", "/v1/ground", `{"image": "x", "instruction": "x", "boxes": "all"}`, 400, "boxes"},
		{"act no stats", "/act", map[string]any{"image": [][][]int{{{1, 2, 3}}}, "instruction": "pick"}, 404, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := ts.post(t, c.path, c.body)
			checkError(t, resp, body, c.status, c.param)
		})
	}
	// Method and path errors are JSON too.
	resp, body := ts.get(t, "/v1/chat/completions")
	checkError(t, resp, body, 405, "")
	resp, body = ts.get(t, "/v2/nothing")
	checkError(t, resp, body, 404, "")
}

func checkError(t *testing.T, resp *http.Response, body []byte, status int, param string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d: %s", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("content type %q", ct)
	}
	var e struct {
		Error *struct {
			Message string  `json:"message"`
			Type    string  `json:"type"`
			Param   *string `json:"param"`
			Code    *string `json:"code"`
		} `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&e); err != nil || e.Error == nil || e.Error.Message == "" || e.Error.Type == "" {
		t.Fatalf("not an OpenAI error: %s (%v)", body, err)
	}
	var raw map[string]map[string]any
	_ = json.Unmarshal(body, &raw)
	for _, k := range []string{"message", "type", "param", "code"} {
		if _, ok := raw["error"][k]; !ok {
			t.Fatalf("error lacks %q: %s", k, body)
		}
	}
	if param != "" && (e.Error.Param == nil || *e.Error.Param != param) {
		t.Fatalf("param %v, want %q: %s", e.Error.Param, param, body)
	}
}

// startImageHost serves a PNG on 127.0.0.1 (for the remote-image paths).
func startImageHost(t *testing.T) string {
	t.Helper()
	uri := pngDataURI(t, 16, 16)
	data, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(uri, "data:image/png;base64,"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/a.png" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "image/png")
		_, _ = w.Write(data)
	})}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })
	return "http://" + ln.Addr().String()
}

func TestRemoteImagesAllowed(t *testing.T) {
	remote := startImageHost(t)
	// The image host is on loopback: allowed only explicitly (issue 20).
	ts := startServer(t, Config{AllowRemoteImages: true, AllowPrivateImages: true}, nil, "")
	content := []map[string]any{{"type": "image_url", "image_url": map[string]any{"url": remote + "/a.png"}}, {"type": "text", "text": "hi"}}
	resp, body := ts.post(t, "/v1/chat/completions", chatBody(content, map[string]any{"max_tokens": 2}))
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	content[0]["image_url"] = map[string]any{"url": remote + "/missing.png"}
	resp, body = ts.post(t, "/v1/chat/completions", chatBody(content, map[string]any{"max_tokens": 2}))
	checkError(t, resp, body, 400, "messages[0].content[0].image_url.url")
}
