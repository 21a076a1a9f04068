package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Regression tests of issue 31 (queue capacity, error statuses, /metrics).

// errCode returns the error's code and message from an OpenAI error body.
func errCode(t *testing.T, body []byte) (code, msg string, param *string) {
	t.Helper()
	var e errorBody
	if err := json.Unmarshal(body, &e); err != nil || e.Error == nil {
		t.Fatalf("not an OpenAI error: %s", body)
	}
	if e.Error.Code != nil {
		code = *e.Error.Code
	}
	return code, e.Error.Message, e.Error.Param
}

// Point 11: at the defaults (8 slots, 64 queue places) a burst of exactly
// max-batch + max-queue requests is admitted whole, with the worker
// blocked so none finishes; one more request gets exactly one 429.
func TestBurstAdmitsBatchPlusQueue(t *testing.T) {
	gate := make(chan struct{})
	ts := startServer(t, Config{}, func() { <-gate }, "")
	capacity := ts.cfg.MaxBatch + ts.cfg.MaxQueue
	if capacity != 72 {
		t.Fatalf("defaults give capacity %d, want 8 + 64", capacity)
	}
	n := capacity + 1
	codes := make([]int, n)
	var wg sync.WaitGroup
	body, _ := json.Marshal(chatBody("hello", map[string]any{"max_tokens": 3}))
	for i := range n {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			resp, err := http.Post(ts.url+"/v1/chat/completions", "application/json", bytes.NewReader(body))
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes[i] = resp.StatusCode
		}(i)
	}
	admitted := func() int {
		ts.eng.mu.Lock()
		defer ts.eng.mu.Unlock()
		return ts.eng.queued + ts.eng.running
	}
	waitFor(t, "every request admitted or refused", func() bool {
		return admitted()+int(ts.m.rejected.Load()) == n
	})
	if a := admitted(); a != capacity {
		t.Errorf("%d requests admitted, want %d", a, capacity)
	}
	close(gate)
	wg.Wait()
	count := map[int]int{}
	for _, c := range codes {
		count[c]++
	}
	if count[200] != capacity || count[http.StatusTooManyRequests] != 1 {
		t.Fatalf("burst of %d: status counts %v, want %d x 200 and 1 x 429", n, count, capacity)
	}
}

// rawRequest writes req on a fresh connection and reads one response.
func rawRequest(t *testing.T, ts *testServer, req string, pause time.Duration) (*http.Response, []byte) {
	t.Helper()
	addr := strings.TrimPrefix(ts.url, "http://")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, strings.ReplaceAll(req, "HOST", addr)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10*time.Second + pause))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no response: %v", err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp, out
}

// Point 12: a body that does not arrive within the read timeout is 408;
// a broken chunked encoding or a body shorter than its length is named as
// such, not as malformed JSON.
func TestBodyReadErrors(t *testing.T) {
	ts := startServer(t, Config{ReadTimeout: 300 * time.Millisecond}, nil, "")
	cases := []struct {
		name, req string
		status    int
		code      string
		msg       string
	}{
		{"slow body", "POST /v1/chat/completions HTTP/1.1\r\nHost: HOST\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"messages\":",
			http.StatusRequestTimeout, "request_timeout", "read timeout"},
		{"bad chunk size", "POST /v1/chat/completions HTTP/1.1\r\nHost: HOST\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
			http.StatusBadRequest, "invalid_chunked_encoding", "chunked transfer encoding is malformed"},
		{"bad chunk end", "POST /act HTTP/1.1\r\nHost: HOST\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"aXX\r\n0\r\n\r\n",
			http.StatusBadRequest, "invalid_chunked_encoding", "chunked transfer encoding is malformed"},
		{"error after the object", "POST /act HTTP/1.1\r\nHost: HOST\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}XX\r\n0\r\n\r\n",
			http.StatusBadRequest, "invalid_chunked_encoding", "chunked transfer encoding is malformed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, out := rawRequest(t, ts, c.req, 0)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, out)
			}
			code, msg, _ := errCode(t, out)
			if code != c.code || !strings.Contains(msg, c.msg) || strings.Contains(msg, "JSON") {
				t.Fatalf("code %q message %q", code, msg)
			}
		})
	}
	// A body cut short by the client (connection half-closed).
	addr := strings.TrimPrefix(ts.url, "http://")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/ground HTTP/1.1\r\nHost: %s\r\nContent-Length: 100\r\n\r\n{\"image\":", addr)
	_ = conn.(*net.TCPConn).CloseWrite()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	if code, msg, _ := errCode(t, out); resp.StatusCode != 400 || code != "invalid_body" || !strings.Contains(msg, "Content-Length") {
		t.Fatalf("short body: %d %s", resp.StatusCode, out)
	}
}

// Point 12: only JSON bodies are accepted: declared form-urlencoded, XML or
// other types are 415; application/json (with parameters), +json types and
// a body without Content-Type are parsed.
func TestContentTypes(t *testing.T) {
	ts := startServer(t, Config{}, nil, "")
	chat := `{"messages":[{"role":"user","content":"hi"}],"max_tokens":1,"temperature":0}`
	cases := []struct {
		ct     string // "-" = no Content-Type header
		status int
	}{
		{"application/x-www-form-urlencoded", 415},
		{"application/xml", 415},
		{"text/xml; charset=utf-8", 415},
		{"text/plain", 415},
		{"multipart/form-data; boundary=x", 415},
		{"application/octet-stream", 415},
		{"nonsense;;", 415},
		{"application/json", 200},
		{"application/json; charset=utf-8", 200},
		{"Application/JSON", 200},
		{"application/vnd.api+json", 200},
		{"-", 200},
	}
	for _, c := range cases {
		t.Run(c.ct, func(t *testing.T) {
			req, _ := http.NewRequest("POST", ts.url+"/v1/chat/completions", strings.NewReader(chat))
			if c.ct != "-" {
				req.Header.Set("Content-Type", c.ct)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			out, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, out)
			}
			if c.status == 415 {
				if code, msg, _ := errCode(t, out); code != "unsupported_media_type" || !strings.Contains(msg, "application/json") {
					t.Fatalf("415 body %s", out)
				}
			}
		})
	}
	// The hint for curl users who forgot the header.
	_, out := ts.do(t, "POST", "/act", "{}", map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	if _, msg, _ := errCode(t, out); !strings.Contains(msg, "curl -d") {
		t.Fatalf("form-urlencoded message lacks the curl hint: %s", out)
	}
}

// Point 12: /act errors name the request's own fields: invalid base64 says
// so (with the offset), an over-long instruction is param "instruction".
func TestActErrorLabels(t *testing.T) {
	ts := startServer(t, Config{MaxContext: 512}, nil, testStats)
	img := [][][]int{{{1, 2, 3}, {4, 5, 6}}, {{7, 8, 9}, {10, 11, 12}}}
	long := strings.Repeat("pick up the black bowl and place it on the plate ", 200)
	cases := []struct {
		name       string
		body       map[string]any
		param      string
		code, want string
	}{
		{"bad base64", map[string]any{"unnorm_key": "other", "instruction": "x", "image": map[string]any{"__numpy__": "!!!!AAAAAAAA", "dtype": "|u1", "shape": []int{2, 2, 3}}},
			"image", "invalid_image", "not valid base64: illegal base64 data at input byte 0"},
		{"short base64", map[string]any{"unnorm_key": "other", "instruction": "x", "image": map[string]any{"__numpy__": "AAAA", "dtype": "|u1", "shape": []int{2, 2, 3}}},
			"image", "invalid_image", "image data has 3 bytes, shape [2 2 3] needs 12"},
		{"long base64", map[string]any{"unnorm_key": "other", "instruction": "x", "image": map[string]any{"__numpy__": strings.Repeat("A", 64), "dtype": "|u1", "shape": []int{2, 2, 3}}},
			"image", "invalid_image", "64 base64 characters"},
		{"over-long instruction", map[string]any{"unnorm_key": "other", "instruction": long, "image": img},
			"instruction", "context_length_exceeded", "context of 512"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, enc := range []bool{false, true} {
				body := any(c.body)
				if enc {
					inner, _ := json.Marshal(c.body)
					body = map[string]any{"encoded": string(inner)}
				}
				resp, out := ts.post(t, "/act", body)
				checkError(t, resp, out, http.StatusBadRequest, c.param)
				if code, msg, _ := errCode(t, out); code != c.code || !strings.Contains(msg, c.want) || strings.Contains(msg, "about") {
					t.Fatalf("code %q message %q, want %q", code, msg, c.want)
				}
			}
		})
	}
	// /v1/ground's over-long instruction too.
	resp, out := ts.post(t, "/v1/ground", map[string]any{"image": pngDataURI(t, 32, 32), "instruction": long, "boxes": [][]float64{{1, 1, 10, 10}}})
	checkError(t, resp, out, http.StatusBadRequest, "instruction")
}

// Point 12: the auth scheme is case-insensitive (RFC 9110 11.1).
func TestBearerSchemeCase(t *testing.T) {
	ts := startServer(t, Config{APIKey: "s3cret"}, nil, "")
	for _, c := range []struct {
		auth   string
		status int
	}{
		{"Bearer s3cret", 200}, {"bearer s3cret", 200}, {"BEARER s3cret", 200}, {"bEaReR   s3cret ", 200},
		{"Basic s3cret", 401}, {"bearer nope", 401}, {"bearers3cret", 401}, {"s3cret", 401},
	} {
		resp, out := ts.do(t, "GET", "/v1/models", "", map[string]string{"Authorization": c.auth})
		if resp.StatusCode != c.status {
			t.Errorf("Authorization %q: %d %s", c.auth, resp.StatusCode, out)
		}
	}
}

// Point 12: during a drain the listener stays open: /health answers 503
// "draining", new generation requests 503, the running stream finishes;
// after the drain the port is closed.
func TestDrainKeepsHealthAnswering(t *testing.T) {
	gate := make(chan struct{})
	var once sync.Once
	var blocked atomic.Bool
	ts := startServer(t, Config{MaxBatch: 2}, func() { blocked.Store(true); <-gate }, "")
	j, _ := json.Marshal(chatBody("x", map[string]any{"max_tokens": 5, "stream": true}))
	resp, err := http.Post(ts.url+"/v1/chat/completions", "application/json", bytes.NewReader(j))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	defer once.Do(func() { close(gate) })
	waitFor(t, "the stream to run", blocked.Load)
	shutdownErr := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		shutdownErr <- ts.Shutdown(ctx)
	}()
	waitFor(t, "draining", ts.draining.Load)
	// Fresh connections, as a load balancer's probe makes.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for range 3 {
		hr, err := client.Get(ts.url + "/health")
		if err != nil {
			t.Fatalf("health during the drain: %v", err)
		}
		hb, _ := io.ReadAll(hr.Body)
		hr.Body.Close()
		if hr.StatusCode != 503 || !strings.Contains(string(hb), `"draining"`) {
			t.Fatalf("health during the drain: %d %s", hr.StatusCode, hb)
		}
	}
	cr, err := client.Post(ts.url+"/v1/chat/completions", "application/json", bytes.NewReader(j))
	if err != nil {
		t.Fatalf("chat during the drain: %v", err)
	}
	cb, _ := io.ReadAll(cr.Body)
	cr.Body.Close()
	if code, _, _ := errCode(t, cb); cr.StatusCode != 503 || code != "shutting_down" {
		t.Fatalf("chat during the drain: %d %s", cr.StatusCode, cb)
	}
	mr, err := client.Get(ts.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := io.ReadAll(mr.Body)
	mr.Body.Close()
	if !strings.Contains(string(mb), "\nmagma_up 0\n") {
		t.Fatalf("magma_up during the drain:\n%s", mb)
	}
	select {
	case err := <-shutdownErr:
		t.Fatalf("Shutdown returned during the drain: %v", err)
	default:
	}
	once.Do(func() { close(gate) })
	events := readSSE(t, resp.Body)
	if events[len(events)-1] != "[DONE]" || strings.Contains(strings.Join(events, ""), `"error"`) {
		t.Fatalf("in-flight stream did not finish cleanly: %v", events)
	}
	if err := <-shutdownErr; err != nil {
		t.Fatal(err)
	}
	if _, err := client.Get(ts.url + "/health"); err == nil {
		t.Fatal("server still accepts connections after the drain")
	}
}

// Point 12: errors a retry cannot help carry x-should-retry: false (the
// OpenAI SDKs honour it); a 429 does not.
func TestShouldRetryHeader(t *testing.T) {
	ts := startServer(t, Config{MaxBatch: 1, MaxQueue: 1, Timeout: 150 * time.Millisecond}, func() { time.Sleep(5 * time.Millisecond) }, "")
	resp, out := ts.post(t, "/v1/chat/completions", chatBody("x", map[string]any{"max_tokens": 1000}))
	checkError(t, resp, out, http.StatusGatewayTimeout, "")
	if h := resp.Header.Get("X-Should-Retry"); h != "false" {
		t.Fatalf("504 x-should-retry %q", h)
	}
	rec := &recorder{h: http.Header{}}
	writeError(rec, errInternal)
	if rec.h.Get("X-Should-Retry") != "false" {
		t.Fatal("500 without x-should-retry: false")
	}
	for _, e := range []*apiError{
		newAPIError(http.StatusTooManyRequests, "rate_limit_error", "queue_full", "full"),
		errShuttingDown,
		badRequest("x", "invalid_value", "bad"),
	} {
		rec := &recorder{h: http.Header{}}
		writeError(rec, e)
		if v := rec.h.Get("X-Should-Retry"); v != "" {
			t.Fatalf("%d has x-should-retry %q", e.Status, v)
		}
	}
}

// family is what the exposition says of one metric family.
type family struct {
	typ, help string
	labels    []string // label names of its samples (le excluded)
}

func parseExposition(t *testing.T, text []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		t.Fatalf("exposition does not parse: %v\n%s", err, text)
	}
	return mfs
}

func families(mfs map[string]*dto.MetricFamily) map[string]family {
	out := map[string]family{}
	for name, mf := range mfs {
		set := map[string]bool{}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				set[lp.GetName()] = true
			}
		}
		var names []string
		for n := range set {
			names = append(names, n)
		}
		sort.Strings(names)
		out[name] = family{typ: mf.GetType().String(), help: mf.GetHelp(), labels: names}
	}
	return out
}

// findMetric returns the series of name with exactly the given labels
// (name, value pairs; a histogram's le is not a label here).
func findMetric(mfs map[string]*dto.MetricFamily, name string, labels ...string) *dto.Metric {
outer:
	for _, m := range mfs[name].GetMetric() {
		if len(m.GetLabel()) != len(labels)/2 {
			continue
		}
		for i := 0; i < len(labels); i += 2 {
			if !slices.ContainsFunc(m.GetLabel(), func(lp *dto.LabelPair) bool {
				return lp.GetName() == labels[i] && lp.GetValue() == labels[i+1]
			}) {
				continue outer
			}
		}
		return m
	}
	return nil
}

// sample returns the value of a series: a counter's, gauge's or untyped
// value, or a histogram's sample count.
func sample(mfs map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	m := findMetric(mfs, name, labels...)
	switch {
	case m == nil:
		return 0, false
	case m.Counter != nil:
		return m.Counter.GetValue(), true
	case m.Gauge != nil:
		return m.Gauge.GetValue(), true
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount()), true
	case m.Untyped != nil:
		return m.Untyped.GetValue(), true
	}
	return 0, false
}

// Point 14: /metrics, now written by client_golang, has the families
// (names, types, help, labels) of the hand-written exposition it replaces
// (testdata/metrics_handwritten.prom, captured from it after the same
// requests) and the same values where they do not depend on timing.
func TestMetricsExposition(t *testing.T) {
	golden, err := os.ReadFile("testdata/metrics_handwritten.prom")
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, Config{}, nil, "")
	ts.post(t, "/v1/chat/completions", chatBody("hi", map[string]any{"max_tokens": 3}))
	ts.post(t, "/v1/chat/completions", "{bad")
	ts.get(t, "/nope")
	ts.get(t, "/health")
	resp, body := ts.get(t, "/metrics")
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Fatalf("metrics content type %q", ct)
	}
	want, got := parseExposition(t, golden), parseExposition(t, body)
	wf, gf := families(want), families(got)
	for name, w := range wf {
		g, ok := gf[name]
		if !ok {
			t.Errorf("family %s missing", name)
			continue
		}
		if g.typ != w.typ || g.help != w.help || !slices.Equal(g.labels, w.labels) {
			t.Errorf("family %s: got %+v, want %+v", name, g, w)
		}
	}
	for name := range gf {
		if _, ok := wf[name]; !ok {
			t.Errorf("new family %s", name)
		}
	}
	// Every series of the golden exists; timing-independent values match.
	timed := map[string]bool{"magma_uptime_seconds": true, "magma_decode_seconds_total": true,
		"magma_decode_graph_build_seconds_total": true, "magma_tokens_per_second": true}
	for name, mf := range want {
		for _, m := range mf.GetMetric() {
			var lv []string
			for _, lp := range m.GetLabel() {
				lv = append(lv, lp.GetName(), lp.GetValue())
			}
			wv, _ := sample(want, name, lv...)
			gv, ok := sample(got, name, lv...)
			if !ok {
				t.Errorf("series %s%v missing", name, lv)
				continue
			}
			if !timed[name] && gv != wv {
				t.Errorf("series %s%v = %v, hand-written exposition had %v", name, lv, gv, wv)
			}
			if m.Histogram != nil {
				bounds := func(m *dto.Metric) (b []float64) {
					for _, x := range m.GetHistogram().GetBucket() {
						b = append(b, x.GetUpperBound())
					}
					return b
				}
				if gb, wb := bounds(findMetric(got, name, lv...)), bounds(m); !slices.Equal(gb, wb) {
					t.Errorf("%s%v buckets %v, want %v", name, lv, gb, wb)
				}
			}
		}
	}
	// Two servers in one process keep separate registries.
	other := New(Config{Logger: ts.log})
	rec := &recorder{h: http.Header{}}
	req, _ := http.NewRequest("GET", "/metrics", nil)
	other.Handler().ServeHTTP(rec, req)
	om := parseExposition(t, rec.body.Bytes())
	if v, ok := sample(om, "magma_requests_total", "endpoint", "/v1/chat/completions", "code", "200"); ok {
		t.Fatalf("a new server shows the first one's requests (%v)", v)
	}
	if v, _ := sample(om, "magma_up"); v != 0 {
		t.Fatalf("unloaded server: magma_up %v", v)
	}
}
