package server

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/magma-go/magma/llm"
)

// latencyBuckets are the upper bounds (seconds) of the request latency histogram.
var latencyBuckets = []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}

// tokenWindow is the span over which magma_tokens_per_second is measured.
const tokenWindow = 10 * time.Second

type histogram struct {
	counts []uint64 // per bucket (not cumulative), +Inf last
	sum    float64
	n      uint64
}

type reqKey struct {
	endpoint string
	code     int
}

// metrics is a small hand-written Prometheus registry.
type metrics struct {
	mu        sync.Mutex
	requests  map[reqKey]uint64
	latency   map[string]*histogram
	promptTok uint64
	genTok    uint64
	// per-second buckets of generated tokens over the last tokenWindow
	tokSec  [16]uint64
	tokTime [16]int64

	queueDepth atomic.Int64
	cancelled  atomic.Int64
	rejected   atomic.Int64
	// refusedConns counts connections closed at once over Config.MaxConns;
	// openConns is the number held now.
	refusedConns atomic.Int64
	openConns    atomic.Int64
	start        time.Time
}

func newMetrics() *metrics {
	return &metrics{requests: map[reqKey]uint64{}, latency: map[string]*histogram{}, start: time.Now()}
}

func (m *metrics) observe(endpoint string, code int, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.requests[reqKey{endpoint, code}]++
	h := m.latency[endpoint]
	if h == nil {
		h = &histogram{counts: make([]uint64, len(latencyBuckets)+1)}
		m.latency[endpoint] = h
	}
	s := d.Seconds()
	i, _ := slices.BinarySearch(latencyBuckets, s)
	h.counts[i]++
	h.sum += s
	h.n++
}

func (m *metrics) tokens(n int) {
	now := time.Now().Unix()
	m.mu.Lock()
	m.genTok += uint64(n)
	i := now % int64(len(m.tokSec))
	if m.tokTime[i] != now {
		m.tokTime[i], m.tokSec[i] = now, 0
	}
	m.tokSec[i] += uint64(n)
	m.mu.Unlock()
}

func (m *metrics) promptTokens(n int) {
	m.mu.Lock()
	m.promptTok += uint64(n)
	m.mu.Unlock()
}

// tokensPerSecond averages generated tokens over the last tokenWindow
// (whole seconds, the current one excluded).
func (m *metrics) tokensPerSecond() float64 {
	now := time.Now().Unix()
	w := int64(tokenWindow / time.Second)
	var n uint64
	for i, t := range m.tokTime {
		if t < now && t >= now-w {
			n += m.tokSec[i]
		}
	}
	return float64(n) / float64(w)
}

// write renders the Prometheus text exposition format (version 0.0.4).
func (m *metrics) write(w io.Writer, e *engine, ready bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	b2i := map[bool]int{false: 0, true: 1}
	p("# HELP magma_up Whether the model is loaded and the server accepts requests.\n# TYPE magma_up gauge\nmagma_up %d\n", b2i[ready])
	p("# HELP magma_requests_total HTTP requests by endpoint and status code.\n# TYPE magma_requests_total counter\n")
	keys := slices.SortedFunc(maps.Keys(m.requests), func(a, b reqKey) int {
		if a.endpoint != b.endpoint {
			if a.endpoint < b.endpoint {
				return -1
			}
			return 1
		}
		return a.code - b.code
	})
	errs := map[string]uint64{}
	for _, k := range keys {
		p("magma_requests_total{endpoint=%q,code=\"%d\"} %d\n", k.endpoint, k.code, m.requests[k])
		if k.code >= 400 {
			errs[k.endpoint] += m.requests[k]
		}
	}
	p("# HELP magma_request_errors_total Requests answered with a 4xx or 5xx status.\n# TYPE magma_request_errors_total counter\n")
	for _, ep := range slices.Sorted(maps.Keys(errs)) {
		p("magma_request_errors_total{endpoint=%q} %d\n", ep, errs[ep])
	}
	p("# HELP magma_open_connections Connections open now (at most --max-conns).\n# TYPE magma_open_connections gauge\nmagma_open_connections %d\n", m.openConns.Load())
	p("# HELP magma_connections_refused_total Connections answered 503 and closed because --max-conns were open.\n# TYPE magma_connections_refused_total counter\nmagma_connections_refused_total %d\n", m.refusedConns.Load())
	p("# HELP magma_requests_rejected_total Requests refused with 429 because the queue was full.\n# TYPE magma_requests_rejected_total counter\nmagma_requests_rejected_total %d\n", m.rejected.Load())
	p("# HELP magma_sequences_cancelled_total Sequences stopped because the client left or the request timed out.\n# TYPE magma_sequences_cancelled_total counter\nmagma_sequences_cancelled_total %d\n", m.cancelled.Load())
	p("# HELP magma_queue_depth Requests admitted and waiting for a decoder slot.\n# TYPE magma_queue_depth gauge\nmagma_queue_depth %d\n", m.queueDepth.Load())
	var active int32
	var st llm.BatchStats
	if e != nil {
		active = e.active.Load()
		st = e.dec.Stats()
	}
	p("# HELP magma_active_sequences Sequences in the decoder batch.\n# TYPE magma_active_sequences gauge\nmagma_active_sequences %d\n", active)
	p("# HELP magma_prompt_tokens_total Prompt positions prefilled (images expanded).\n# TYPE magma_prompt_tokens_total counter\nmagma_prompt_tokens_total %d\n", m.promptTok)
	p("# HELP magma_generated_tokens_total Tokens generated.\n# TYPE magma_generated_tokens_total counter\nmagma_generated_tokens_total %d\n", m.genTok)
	p("# HELP magma_tokens_per_second Generated tokens per second over the last %v.\n# TYPE magma_tokens_per_second gauge\nmagma_tokens_per_second %g\n", tokenWindow, m.tokensPerSecond())
	p("# HELP magma_decode_steps_total Batched decode steps.\n# TYPE magma_decode_steps_total counter\nmagma_decode_steps_total %d\n", st.Steps)
	p("# HELP magma_decode_rows_total Sequence-steps run in batched decode steps (rows/steps = mean batch size).\n# TYPE magma_decode_rows_total counter\nmagma_decode_rows_total %d\n", st.Rows)
	p("# HELP magma_decode_seconds_total Time in batched decode steps.\n# TYPE magma_decode_seconds_total counter\nmagma_decode_seconds_total %g\n", st.StepDur.Seconds())
	p("# HELP magma_decode_graph_builds_total Decode graphs compiled (one per new active-slot set).\n# TYPE magma_decode_graph_builds_total counter\nmagma_decode_graph_builds_total %d\n", st.GraphBuilds)
	p("# HELP magma_decode_graph_build_seconds_total Time spent compiling decode graphs.\n# TYPE magma_decode_graph_build_seconds_total counter\nmagma_decode_graph_build_seconds_total %g\n", st.GraphBuildDur.Seconds())
	p("# HELP magma_request_duration_seconds Request latency by endpoint.\n# TYPE magma_request_duration_seconds histogram\n")
	for _, ep := range slices.Sorted(maps.Keys(m.latency)) {
		h := m.latency[ep]
		var cum uint64
		for i, le := range latencyBuckets {
			cum += h.counts[i]
			p("magma_request_duration_seconds_bucket{endpoint=%q,le=\"%g\"} %d\n", ep, le, cum)
		}
		cum += h.counts[len(latencyBuckets)]
		p("magma_request_duration_seconds_bucket{endpoint=%q,le=\"+Inf\"} %d\n", ep, cum)
		p("magma_request_duration_seconds_sum{endpoint=%q} %g\n", ep, h.sum)
		p("magma_request_duration_seconds_count{endpoint=%q} %d\n", ep, h.n)
	}
	p("# HELP magma_uptime_seconds Seconds since the server started.\n# TYPE magma_uptime_seconds gauge\nmagma_uptime_seconds %g\n", time.Since(m.start).Seconds())
}
