package server

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/magma-go/magma/llm"
	"github.com/magma-go/magma/model"
	"github.com/magma-go/magma/model/action"
	"github.com/magma-go/magma/som"
)

// Config holds the server's options and limits. Zero fields take the
// defaults of DefaultConfig.
type Config struct {
	// ModelName is the id reported in responses and first in /v1/models,
	// and accepted in the "model" field of requests ("" in a request also
	// means this model).
	ModelName string
	// ModelAliases are further ids accepted in "model" fields and listed by
	// /v1/models (vLLM's --served-model-name takes the same list).
	ModelAliases []string
	// MaxBatch is the number of sequences decoded together (decoder slots).
	MaxBatch int
	// MaxQueue is the number of admitted requests waiting for a slot; the
	// next request gets 429 with Retry-After.
	MaxQueue int
	// Timeout bounds each request end to end (queueing included).
	Timeout time.Duration
	// MaxContext bounds prompt + generated positions per sequence (and the
	// KV cache allocated per slot); 0 = the model's max_position_embeddings.
	MaxContext int
	// DefaultMaxTokens is used when a request gives no max_tokens (capped
	// by the room left in the context).
	DefaultMaxTokens int
	MaxBodyBytes     int64
	MaxImagePixels   int // per image, width*height
	MaxImages        int // per request
	// AllowRemoteImages lets image_url parts name http(s) URLs, fetched
	// with RemoteImageTimeout and MaxBodyBytes as limits; otherwise only
	// data: URIs are accepted. No file path or file: URL is ever opened.
	AllowRemoteImages  bool
	RemoteImageTimeout time.Duration
	// AllowPrivateImages lets remote image URLs reach loopback, link-local
	// and private addresses (refused by default: SSRF).
	AllowPrivateImages bool
	// APIKey, when set, is required on every endpoint but /health as
	// "Authorization: Bearer <key>" (OpenAI clients send it) or X-API-Key.
	APIKey string
	// AllowedHosts are extra names accepted in the Host header (IP
	// literals and localhost always are); others get 403 (DNS rebinding).
	AllowedHosts []string
	// ReadTimeout bounds reading a whole request, body included, so a
	// client sending a byte now and then cannot hold a connection.
	ReadTimeout time.Duration
	// MaxConns bounds open connections; the next gets a JSON 503.
	MaxConns int
	// EmbedConcurrency bounds how many requests run the vision tower at once.
	EmbedConcurrency int
	Logger           *slog.Logger
}

// DefaultConfig is the configuration `magma serve` starts from.
func DefaultConfig() Config {
	return Config{
		ModelName: "magma", MaxBatch: 8, MaxQueue: 64, Timeout: 5 * time.Minute,
		DefaultMaxTokens: 256, MaxBodyBytes: 32 << 20, MaxImagePixels: 16 << 20, MaxImages: 8,
		RemoteImageTimeout: 10 * time.Second, EmbedConcurrency: 1, ReadTimeout: 60 * time.Second, MaxConns: 512,
	}
}

func (c *Config) fill() {
	d := DefaultConfig()
	if c.ModelName == "" {
		c.ModelName = d.ModelName
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = d.MaxBatch
	}
	if c.MaxQueue <= 0 {
		c.MaxQueue = d.MaxQueue
	}
	if c.Timeout <= 0 {
		c.Timeout = d.Timeout
	}
	if c.DefaultMaxTokens <= 0 {
		c.DefaultMaxTokens = d.DefaultMaxTokens
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = d.MaxBodyBytes
	}
	if c.MaxImagePixels <= 0 {
		c.MaxImagePixels = d.MaxImagePixels
	}
	if c.MaxImages <= 0 {
		c.MaxImages = d.MaxImages
	}
	if c.RemoteImageTimeout <= 0 {
		c.RemoteImageTimeout = d.RemoteImageTimeout
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = d.ReadTimeout
	}
	if c.MaxConns <= 0 {
		c.MaxConns = d.MaxConns
	}
	if c.EmbedConcurrency <= 0 {
		c.EmbedConcurrency = d.EmbedConcurrency
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
}

// Server is the HTTP front of a loaded Magma pipeline. Create it with New,
// start serving with Serve (the health check answers 503 until Load has
// given it a model), stop it with Shutdown.
type Server struct {
	cfg     Config
	log     *slog.Logger
	m       *metrics
	handler http.Handler

	mu       sync.RWMutex // guards p, eng, stats (set once by Load)
	p        *model.Pipeline
	eng      *engine
	stats    map[string]*action.DatasetStats
	statsErr error
	allowed  []bool // ids the tokenizer can decode: the only ones sampled

	embedSem chan struct{}
	proposer som.Proposer
	draining atomic.Bool
	http     *http.Server
	// busy counts requests being handled, /health and /metrics excepted:
	// Shutdown keeps the listener open until it is zero.
	busy     atomic.Int64
	metricsH http.Handler
	keyHash  []byte // sha256 of Config.APIKey; nil: no key
	cop      *http.CrossOriginProtection
}

// New creates a server without a model.
func New(cfg Config) *Server {
	cfg.fill()
	s := &Server{cfg: cfg, log: cfg.Logger, embedSem: make(chan struct{}, cfg.EmbedConcurrency),
		proposer: som.NewClassicalProposer(), cop: http.NewCrossOriginProtection()}
	s.m = newMetrics(s.metricsState)
	s.metricsH = s.m.handler(s.log)
	if cfg.APIKey != "" {
		h := sha256.Sum256([]byte(cfg.APIKey))
		s.keyHash = h[:]
	}
	mux := http.NewServeMux()
	s.route(mux, "/v1/chat/completions", http.MethodPost, true, s.handleChat)
	s.route(mux, "/v1/ground", http.MethodPost, true, s.handleGround)
	s.route(mux, "/act", http.MethodPost, true, s.handleAct)
	s.route(mux, "/v1/models", http.MethodGet, false, s.handleModels)
	s.route(mux, "/v1/models/", http.MethodGet, false, s.handleModel)
	s.route(mux, "/health", http.MethodGet, false, s.handleHealth)
	s.route(mux, "/metrics", http.MethodGet, false, s.handleMetrics)
	notFound := s.wrap("other", func(w http.ResponseWriter, r *http.Request) error {
		return newAPIError(http.StatusNotFound, "invalid_request_error", "not_found", "no endpoint %s %q", r.Method, r.URL.Path)
	})
	mux.HandleFunc("/", notFound)
	// Paths ServeMux would redirect (//x, /a/../b, trailing slashes) and
	// CONNECT get a JSON 404 instead of Go's plain-text answers.
	s.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodConnect || !cleanPath(r.URL.Path) {
			notFound(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
	return s
}

// Load attaches the model: builds the decoder batch and the worker, reads
// dataset_statistics.json from the model directory when present (for /act).
func (s *Server) Load(p *model.Pipeline) error {
	if p == nil || p.Model == nil {
		return errors.New("server: nil pipeline")
	}
	if p.Tokenizer == nil {
		return fmt.Errorf("server: model %s has no tokenizer (tokenizer.json)", p.Dir)
	}
	// The server's context is the pipeline's (Pipeline.ContextLimit),
	// narrowed by Config.MaxContext; it serves a copy so narrowed.
	served := *p
	if c := s.cfg.MaxContext; c > 0 && (served.MaxContext <= 0 || c < served.MaxContext) {
		served.MaxContext = c
	}
	p = &served
	maxCtx, _ := p.ContextLimit()
	kvSize, err := p.KVElemSize()
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	if err := model.CheckKVCache(p.Model.Config, s.cfg.MaxBatch, maxCtx, kvSize); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	dec, err := llm.NewBatchDecoder(p.Model.LM, s.cfg.MaxBatch, maxCtx)
	if err != nil {
		return err
	}
	if err := dec.SetKVCacheDtype(p.KVCacheDtype); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	stats, statsErr := loadDatasetStats(p.Dir)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.p != nil {
		return errors.New("server: a model is already loaded")
	}
	s.p, s.stats, s.statsErr, s.allowed = p, stats, statsErr, p.AllowedIDs()
	s.eng = newEngine(dec, s.cfg.MaxQueue, s.m, s.log)
	s.log.Info("model loaded", "dir", p.Dir, "names", strings.Join(s.modelNames(), ","), "max_batch", s.cfg.MaxBatch,
		"max_queue", s.cfg.MaxQueue, "max_context", maxCtx, "act_stats", statsSummary(stats, statsErr))
	return nil
}

func statsSummary(st map[string]*action.DatasetStats, err error) string {
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("%d datasets", len(st))
}

// ready returns the pipeline and engine, or a 503 while loading/draining.
func (s *Server) ready() (*model.Pipeline, *engine, error) {
	if s.draining.Load() {
		return nil, nil, errShuttingDown
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.p == nil {
		return nil, nil, newAPIError(http.StatusServiceUnavailable, "server_error", "model_loading", "the model is still loading")
	}
	return s.p, s.eng, nil
}

// Handler is the server's HTTP handler (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.handler }

// Serve serves HTTP on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.http == nil {
		s.http = &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: s.cfg.ReadTimeout,
			IdleTimeout: 2 * time.Minute, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	}
	hs := s.http
	s.mu.Unlock()
	s.warnExposure(ln.Addr())
	ln = newLimitListener(ln, s.cfg.MaxConns, func() { s.m.refusedConns.Add(1) }, &s.m.openConns)
	err := hs.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown drains the server: from the call on, /health answers 503
// "draining" and new generating requests 503 "shutting_down", while the
// listener stays open and in-flight requests finish until ctx ends. Then
// the listener and idle connections are closed; sequences still running
// when ctx ends are failed with 503 and their connections closed. Last it
// stops the decoder worker.
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	s.mu.RLock()
	hs, eng := s.http, s.eng
	s.mu.RUnlock()
	drained := s.waitIdle(ctx)
	var err error
	if hs != nil {
		err = hs.Shutdown(ctx)
	}
	if !drained && eng != nil {
		s.log.Warn("shutdown deadline passed; failing running requests")
		eng.kill()
		grace, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if hs != nil {
			_ = hs.Shutdown(grace)
			_ = hs.Close()
		}
		s.waitIdle(grace)
		cancel()
	}
	if eng != nil {
		eng.stop()
		select {
		case <-eng.done:
		case <-time.After(5 * time.Second):
			eng.kill()
			<-eng.done
		}
	}
	return err
}

// waitIdle waits until no request but /health and /metrics is being
// handled, or ctx ends; it reports whether the server became idle.
func (s *Server) waitIdle(ctx context.Context) bool {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for s.busy.Load() > 0 {
		select {
		case <-ctx.Done():
			return s.busy.Load() == 0
		case <-t.C:
		}
	}
	return true
}

// statusWriter records the status for logs and metrics and keeps Flush.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.status, w.wrote = http.StatusOK, true
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

type handlerFunc func(w http.ResponseWriter, r *http.Request) error

func (s *Server) route(mux *http.ServeMux, path, method string, body bool, h handlerFunc) {
	mux.HandleFunc(path, s.wrap(path, func(w http.ResponseWriter, r *http.Request) error {
		if r.Method != method {
			w.Header().Set("Allow", method)
			return newAPIError(http.StatusMethodNotAllowed, "invalid_request_error", "method_not_allowed",
				"%s %s: use %s", r.Method, path, method)
		}
		if body {
			if err := checkContentType(r); err != nil {
				return err
			}
			r.Body = &bodyReader{ReadCloser: http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes),
				chunked: slices.Contains(r.TransferEncoding, "chunked")}
		}
		return h(w, r)
	}))
}

// wrap adds logging, metrics, error rendering and panic recovery.
func (s *Server) wrap(endpoint string, h handlerFunc) http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		if endpoint != "/health" && endpoint != "/metrics" {
			s.busy.Add(1)
			defer s.busy.Add(-1)
		}
		t0 := time.Now()
		w := &statusWriter{ResponseWriter: rw}
		if s.draining.Load() {
			// Clients should reconnect (to another replica) for the next request.
			w.Header().Set("Connection", "close")
		}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("panic in handler", "endpoint", endpoint, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				if !w.wrote {
					writeError(w, newAPIError(http.StatusInternalServerError, "server_error", "internal_error", "internal error"))
				}
			}
			status := w.status
			if !w.wrote {
				status = http.StatusOK
			}
			d := time.Since(t0)
			s.m.observe(endpoint, status, d)
			if status == http.StatusTooManyRequests {
				s.m.rejected.Add(1)
			}
			lvl := slog.LevelInfo
			if endpoint == "/health" || endpoint == "/metrics" {
				lvl = slog.LevelDebug
			}
			s.log.Log(r.Context(), lvl, "request", "method", r.Method, "path", r.URL.Path, "status", status,
				"ms", float64(d.Microseconds())/1000, "remote", r.RemoteAddr)
		}()
		err := s.guard(endpoint, r)
		if err == nil {
			err = h(w, r)
		}
		if err != nil {
			ae := asAPIError(err)
			if ae.Status >= 500 && ae.Status != http.StatusServiceUnavailable {
				s.log.Error("request failed", "endpoint", endpoint, "err", err)
			}
			if !w.wrote {
				writeError(w, ae)
			}
		}
	}
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) error {
	if s.draining.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "draining"})
		return nil
	}
	s.mu.RLock()
	loaded := s.p != nil
	s.mu.RUnlock()
	if !loaded {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "loading"})
		return nil
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "model": s.cfg.ModelName})
	return nil
}

// modelNames are the served model ids: ModelName first, then the aliases.
func (s *Server) modelNames() []string {
	names := []string{s.cfg.ModelName}
	for _, a := range s.cfg.ModelAliases {
		if a != "" && !slices.Contains(names, a) {
			names = append(names, a)
		}
	}
	return names
}

// checkModel accepts a request's "model" field: "" or one of the served
// names; anything else is OpenAI's 404 model_not_found.
func (s *Server) checkModel(name string) error {
	if name == "" || slices.Contains(s.modelNames(), name) {
		return nil
	}
	return &apiError{Status: http.StatusNotFound, Type: "invalid_request_error", Param: strPtr("model"),
		Code: strPtr("model_not_found"), Message: fmt.Sprintf("the model %q does not exist; this server serves %s", name, quoteList(s.modelNames()))}
}

func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, ", ")
}

func (s *Server) modelCard(name string, p *model.Pipeline) map[string]any {
	limit, _ := p.ContextLimit()
	return map[string]any{"id": name, "object": "model", "created": s.m.start.Unix(),
		"owned_by": "magma", "root": filepath.Base(p.Dir), "context_length": limit}
}

func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) error {
	s.mu.RLock()
	p := s.p
	s.mu.RUnlock()
	data := []map[string]any{}
	if p != nil {
		for _, n := range s.modelNames() {
			data = append(data, s.modelCard(n, p))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
	return nil
}

// handleModel is GET /v1/models/{id} (the OpenAI SDK's models.retrieve);
// an id may contain "/" (sent as is or as %2F).
func (s *Server) handleModel(w http.ResponseWriter, r *http.Request) error {
	id := strings.TrimPrefix(r.URL.Path, "/v1/models/")
	s.mu.RLock()
	p := s.p
	s.mu.RUnlock()
	if p == nil {
		return newAPIError(http.StatusServiceUnavailable, "server_error", "model_loading", "the model is still loading")
	}
	if id == "" { // "/v1/models/" itself never gets here (unclean path)
		return newAPIError(http.StatusNotFound, "invalid_request_error", "model_not_found", "no model id in %q", r.URL.Path)
	}
	if err := s.checkModel(id); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.modelCard(id, p))
	return nil
}

func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) error {
	s.metricsH.ServeHTTP(w, r)
	return nil
}

// metricsState is what /metrics reads at scrape time: the engine (nil
// before Load) and whether the server accepts requests (magma_up).
func (s *Server) metricsState() (*engine, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.eng, s.p != nil && !s.draining.Load()
}

// decodeJSON reads the (size-limited) body into v, mapping every failure to
// a 4xx: 413 for an oversized body, 408 for one that does not arrive in
// time, 400 naming the field for a type error.
func decodeJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	// Read to the end: a transfer error after the object is reported too.
	if _, err := dec.Token(); err != io.EOF {
		var be *bodyReadError
		if errors.As(err, &be) {
			return bodyError(be)
		}
		return badRequest("", "invalid_json", "request body has data after the JSON object")
	}
	return nil
}

func jsonError(err error) error {
	var mb *http.MaxBytesError
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	var ae *apiError
	var be *bodyReadError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &be):
		return bodyError(be)
	case errors.As(err, &mb):
		return &apiError{Status: http.StatusRequestEntityTooLarge, Type: "invalid_request_error", Code: strPtr("request_too_large"),
			Message: fmt.Sprintf("request body exceeds %d bytes", mb.Limit)}
	case errors.As(err, &te):
		return badRequest(te.Field, "invalid_type", "field %q: expected %s, got JSON %s", te.Field, jsonKind(te.Type.Kind()), te.Value)
	case errors.As(err, &se):
		return badRequest("", "invalid_json", "malformed JSON at byte %d: %v", se.Offset, err)
	case errors.Is(err, errBadField):
		return badRequest("", "invalid_type", "%v", err)
	}
	return badRequest("", "invalid_json", "malformed JSON body: %v", err)
}

var errBadField = errors.New("bad field")

// jsonKind names a Go kind the way JSON users think of it.
func jsonKind(k reflect.Kind) string {
	switch k {
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return k.String()
}
