package server

import (
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// latencyBuckets are the upper bounds (seconds) of the request latency histogram.
var latencyBuckets = []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}

// tokenWindow is the span over which magma_tokens_per_second is measured.
const tokenWindow = 10 * time.Second

// metrics holds the server's Prometheus metrics in a registry of its own
// (never the process-wide default one: two servers in one process, as in
// the tests, must not share or clash). The text at /metrics is written by
// client_golang's promhttp.
type metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec   // endpoint, code
	errors    *prometheus.CounterVec   // endpoint
	latency   *prometheus.HistogramVec // endpoint
	promptTok prometheus.Counter
	genTok    prometheus.Counter

	mu sync.Mutex // guards the token window
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

// newMetrics builds the registry. state reports, at scrape time, the
// engine (nil before Load) and whether the server accepts requests.
func newMetrics(state func() (*engine, bool)) *metrics {
	m := &metrics{reg: prometheus.NewRegistry(), start: time.Now()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "magma_requests_total",
		Help: "HTTP requests by endpoint and status code."}, []string{"endpoint", "code"})
	m.errors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "magma_request_errors_total",
		Help: "Requests answered with a 4xx or 5xx status."}, []string{"endpoint"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "magma_request_duration_seconds",
		Help: "Request latency by endpoint.", Buckets: latencyBuckets}, []string{"endpoint"})
	m.promptTok = prometheus.NewCounter(prometheus.CounterOpts{Name: "magma_prompt_tokens_total",
		Help: "Prompt positions prefilled (images expanded)."})
	m.genTok = prometheus.NewCounter(prometheus.CounterOpts{Name: "magma_generated_tokens_total",
		Help: "Tokens generated."})
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	counter := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f)
	}
	load := func(v *atomic.Int64) func() float64 { return func() float64 { return float64(v.Load()) } }
	m.reg.MustRegister(m.requests, m.errors, m.latency, m.promptTok, m.genTok,
		gauge("magma_up", "Whether the model is loaded and the server accepts requests.", func() float64 {
			if _, ready := state(); ready {
				return 1
			}
			return 0
		}),
		gauge("magma_open_connections", "Connections open now (at most --max-conns).", load(&m.openConns)),
		counter("magma_connections_refused_total", "Connections answered 503 and closed because --max-conns were open.", load(&m.refusedConns)),
		counter("magma_requests_rejected_total", "Requests refused with 429 because the queue was full.", load(&m.rejected)),
		counter("magma_sequences_cancelled_total", "Sequences stopped because the client left or the request timed out.", load(&m.cancelled)),
		gauge("magma_queue_depth", "Requests admitted and waiting for a decoder slot.", load(&m.queueDepth)),
		gauge("magma_tokens_per_second", fmt.Sprintf("Generated tokens per second over the last %v.", tokenWindow), m.tokensPerSecond),
		gauge("magma_uptime_seconds", "Seconds since the server started.", func() float64 { return time.Since(m.start).Seconds() }),
		&engineCollector{state: state},
	)
	return m
}

// handler serves the registry in Prometheus' text format (or what the
// scraper negotiates); a failing collector is logged and the rest served.
func (m *metrics) handler(log *slog.Logger) http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)})
}

func (m *metrics) observe(endpoint string, code int, d time.Duration) {
	c := strconv.Itoa(code)
	m.requests.WithLabelValues(endpoint, c).Inc()
	if code >= 400 {
		m.errors.WithLabelValues(endpoint).Inc()
	}
	m.latency.WithLabelValues(endpoint).Observe(d.Seconds())
}

func (m *metrics) tokens(n int) {
	m.genTok.Add(float64(n))
	now := time.Now().Unix()
	m.mu.Lock()
	i := now % int64(len(m.tokSec))
	if m.tokTime[i] != now {
		m.tokTime[i], m.tokSec[i] = now, 0
	}
	m.tokSec[i] += uint64(n)
	m.mu.Unlock()
}

func (m *metrics) promptTokens(n int) { m.promptTok.Add(float64(n)) }

// tokensPerSecond averages generated tokens over the last tokenWindow
// (whole seconds, the current one excluded).
func (m *metrics) tokensPerSecond() float64 {
	now := time.Now().Unix()
	w := int64(tokenWindow / time.Second)
	var n uint64
	m.mu.Lock()
	for i, t := range m.tokTime {
		if t < now && t >= now-w {
			n += m.tokSec[i]
		}
	}
	m.mu.Unlock()
	return float64(n) / float64(w)
}

// engineCollector reports the decoder's state: one llm.BatchStats read per
// scrape for all the decode_* series.
type engineCollector struct {
	state func() (*engine, bool)
}

var (
	descActive = prometheus.NewDesc("magma_active_sequences", "Sequences in the decoder batch.", nil, nil)
	descSteps  = prometheus.NewDesc("magma_decode_steps_total", "Batched decode steps.", nil, nil)
	descRows   = prometheus.NewDesc("magma_decode_rows_total",
		"Sequence-steps run in batched decode steps (rows/steps = mean batch size).", nil, nil)
	descStepSec = prometheus.NewDesc("magma_decode_seconds_total", "Time in batched decode steps.", nil, nil)
	descBuilds  = prometheus.NewDesc("magma_decode_graph_builds_total",
		"Decode graphs compiled (one per new active-slot set).", nil, nil)
	descBuildSec = prometheus.NewDesc("magma_decode_graph_build_seconds_total", "Time spent compiling decode graphs.", nil, nil)
)

func (c *engineCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descActive, descSteps, descRows, descStepSec, descBuilds, descBuildSec} {
		ch <- d
	}
}

func (c *engineCollector) Collect(ch chan<- prometheus.Metric) {
	var active float64
	var steps, rows, builds float64
	var stepSec, buildSec float64
	if e, _ := c.state(); e != nil {
		st := e.dec.Stats()
		active = float64(e.active.Load())
		steps, rows, builds = float64(st.Steps), float64(st.Rows), float64(st.GraphBuilds)
		stepSec, buildSec = st.StepDur.Seconds(), st.GraphBuildDur.Seconds()
	}
	ch <- prometheus.MustNewConstMetric(descActive, prometheus.GaugeValue, active)
	ch <- prometheus.MustNewConstMetric(descSteps, prometheus.CounterValue, steps)
	ch <- prometheus.MustNewConstMetric(descRows, prometheus.CounterValue, rows)
	ch <- prometheus.MustNewConstMetric(descStepSec, prometheus.CounterValue, stepSec)
	ch <- prometheus.MustNewConstMetric(descBuilds, prometheus.CounterValue, builds)
	ch <- prometheus.MustNewConstMetric(descBuildSec, prometheus.CounterValue, buildSec)
}
