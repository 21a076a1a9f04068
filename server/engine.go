package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/magma-go/magma/llm"
	"gorgonia.org/tensor"
)

// errShuttingDown fails sequences still running when the shutdown deadline
// passes.
var errShuttingDown = newAPIError(http.StatusServiceUnavailable, "server_error", "shutting_down",
	"the server is shutting down")

// engine queues generation requests and runs them with step-level batching
// on one worker goroutine that owns the llm.BatchDecoder: between decode
// steps it moves waiting sequences into free slots (prefill), then advances
// every active sequence by one token in one batched step.
//
// Admission control: a request is "queued" from the moment it is admitted
// (before its prompt is embedded) until it gets a slot, and "running" while
// it holds one. At most MaxBatch + maxQueue requests are admitted at once
// (running or queued): a burst of that many on an idle server is admitted
// whole even though none has reached a slot yet; the next one gets 429.
type engine struct {
	dec      *llm.BatchDecoder
	maxQueue int
	m        *metrics
	log      *slog.Logger

	mu      sync.Mutex
	queued  int
	running int // sequences taken by the worker and not yet finished
	pending []*sequence

	active atomic.Int32
	wake   chan struct{}
	quit   chan struct{} // close: exit once nothing is left to do
	abort  chan struct{} // close: fail everything now and exit
	done   chan struct{}

	quitOnce, abortOnce sync.Once

	// hookBeforeStep, if set (tests), runs on the worker before every decode step.
	hookBeforeStep func()
}

// sequence is one generation request inside the engine.
type sequence struct {
	ctx       context.Context
	embeds    *tensor.Dense // prompt embeddings [L, D]; dropped after prefill
	maxTokens int
	sampler   *llm.Sampler
	stop      map[int]bool
	events    chan event // buffered: the worker never blocks on it

	slot int
	ids  []int
	// logprobs: -1 = off; otherwise events carry the token's log-probability
	// and this many alternatives.
	logprobs int
}

// event is one generated token, or the end of a sequence (finish set or err).
type event struct {
	id     int
	finish string // "stop" or "length" on the last token
	err    error
	lp     *llm.TokenLogProbs // with sequence.logprobs >= 0
}

func newEngine(dec *llm.BatchDecoder, maxQueue int, m *metrics, log *slog.Logger) *engine {
	e := &engine{dec: dec, maxQueue: maxQueue, m: m, log: log, wake: make(chan struct{}, 1),
		quit: make(chan struct{}), abort: make(chan struct{}), done: make(chan struct{})}
	go e.run()
	return e
}

func newSequence(ctx context.Context, embeds *tensor.Dense, maxTokens int, sampler *llm.Sampler, stop []int) *sequence {
	s := &sequence{ctx: ctx, embeds: embeds, maxTokens: maxTokens, sampler: sampler,
		stop: map[int]bool{}, events: make(chan event, maxTokens+2), slot: -1, logprobs: -1}
	for _, id := range stop {
		s.stop[id] = true
	}
	return s
}

// admit reserves a queue place or answers 429.
func (e *engine) admit() error {
	select {
	case <-e.quit:
		return errShuttingDown
	default:
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.queued+e.running >= e.maxQueue+e.dec.MaxBatch() {
		ae := newAPIError(http.StatusTooManyRequests, "rate_limit_error", "queue_full",
			"the server is full (%d requests running, %d waiting; at most %d + %d); retry later",
			e.running, e.queued, e.dec.MaxBatch(), e.maxQueue)
		ae.RetryAfter = 1
		return ae
	}
	e.queued++
	e.m.queueDepth.Store(int64(e.queued))
	return nil
}

// release gives back a queue place of a request that never reached submit.
func (e *engine) release() {
	e.mu.Lock()
	e.queued--
	e.m.queueDepth.Store(int64(e.queued))
	e.mu.Unlock()
}

// submit hands an admitted, embedded sequence to the worker.
func (e *engine) submit(s *sequence) {
	e.mu.Lock()
	e.pending = append(e.pending, s)
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// withdraw removes a sequence that is still waiting (its client left);
// it reports false when the worker already took it.
func (e *engine) withdraw(s *sequence) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	i := slices.Index(e.pending, s)
	if i < 0 {
		return false
	}
	e.pending = slices.Delete(e.pending, i, i+1)
	e.queued--
	e.m.queueDepth.Store(int64(e.queued))
	return true
}

// take pops up to n waiting sequences.
func (e *engine) take(n int) []*sequence {
	e.mu.Lock()
	defer e.mu.Unlock()
	n = min(n, len(e.pending))
	out := append([]*sequence(nil), e.pending[:n]...)
	e.pending = slices.Delete(e.pending, 0, n)
	e.queued -= n
	e.running += n // until the worker reports what became of them (setActive)
	e.m.queueDepth.Store(int64(e.queued))
	return out
}

// setActive records the number of sequences in the batch.
func (e *engine) setActive(n int) {
	e.active.Store(int32(n))
	e.mu.Lock()
	e.running = n
	e.mu.Unlock()
}

func (e *engine) idle() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.queued == 0 && len(e.pending) == 0
}

// stop asks the worker to exit when idle; kill fails what is left now.
func (e *engine) stop() { e.quitOnce.Do(func() { close(e.quit) }) }
func (e *engine) kill() { e.abortOnce.Do(func() { close(e.abort) }) }

func (s *sequence) fail(err error) {
	select {
	case s.events <- event{err: err}:
	default:
	}
}

func (e *engine) run() {
	defer close(e.done)
	var active []*sequence
	leave := func(s *sequence) {
		e.dec.Leave(s.slot)
		s.slot = -1
	}
	for {
		select {
		case <-e.abort:
			for _, s := range active {
				leave(s)
				s.fail(errShuttingDown)
			}
			for _, s := range e.take(1 << 30) {
				s.fail(errShuttingDown)
			}
			e.setActive(0)
			return
		default:
		}
		// Join waiting sequences into free slots.
		for _, s := range e.take(e.dec.MaxBatch() - len(active)) {
			if err := s.ctx.Err(); err != nil {
				s.fail(err)
				continue
			}
			var slot int
			var logits []float32
			err := safely(e.log, func() (err error) { slot, logits, err = e.dec.Join(s.embeds); return })
			s.embeds = nil
			if err != nil {
				s.fail(err)
				continue
			}
			s.slot = slot
			if e.emit(s, logits) {
				active = append(active, s)
			} else {
				leave(s)
			}
		}
		e.setActive(len(active))
		if len(active) == 0 {
			select {
			case <-e.wake:
			case <-e.abort:
			case <-e.quit:
				if e.idle() {
					return
				}
				select {
				case <-e.wake:
				case <-e.abort:
				}
			}
			continue
		}
		// Drop sequences whose client left or whose time ran out.
		kept := active[:0]
		for _, s := range active {
			if err := s.ctx.Err(); err != nil {
				leave(s)
				s.fail(err)
				e.m.cancelled.Add(1)
				continue
			}
			kept = append(kept, s)
		}
		active = kept
		if len(active) == 0 {
			e.setActive(0)
			continue
		}
		slots := make([]int, len(active))
		ids := make([]int, len(active))
		for i, s := range active {
			slots[i], ids[i] = s.slot, s.ids[len(s.ids)-1]
		}
		var out [][]float32
		err := safely(e.log, func() (err error) {
			if e.hookBeforeStep != nil {
				e.hookBeforeStep()
			}
			out, err = e.dec.Step(slots, ids)
			return
		})
		if err != nil {
			for _, s := range active {
				leave(s)
				s.fail(err)
			}
			active = active[:0]
			e.setActive(0)
			continue
		}
		kept = active[:0]
		for i, s := range active {
			if e.emit(s, out[i]) {
				kept = append(kept, s)
			} else {
				leave(s)
			}
		}
		active = kept
		e.setActive(len(active))
	}
}

// errInternal is what a client sees when the worker recovered a panic (the
// details go to the log).
var errInternal = newAPIError(http.StatusInternalServerError, "server_error", "internal_error", "internal error")

// safely runs fn on the worker goroutine, turning a panic into an error: a
// panic there would end the process, since no handler's recover sees it.
func safely(log *slog.Logger, fn func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			log.Error("panic in the decoder worker", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			err = errInternal
		}
	}()
	return fn()
}

// emit samples the next token of s from logits and sends it; it reports
// whether the sequence goes on.
func (e *engine) emit(s *sequence, logits []float32) bool {
	var id int
	var lp *llm.TokenLogProbs
	err := safely(e.log, func() (err error) {
		if s.logprobs < 0 {
			id, err = s.sampler.Sample(logits)
			return
		}
		var l llm.TokenLogProbs
		id, l, err = s.sampler.SampleLogProbs(logits, s.logprobs)
		lp = &l
		return
	})
	if err != nil {
		s.fail(err)
		return false
	}
	s.ids = append(s.ids, id)
	e.m.tokens(1)
	ev := event{id: id, lp: lp}
	switch {
	case s.stop[id]:
		ev.finish = "stop"
	case len(s.ids) >= s.maxTokens:
		ev.finish = "length"
	}
	select {
	case s.events <- ev:
	default:
		// Cannot happen (the buffer holds maxTokens+2 events); end the sequence.
		s.fail(errors.New("server: event buffer full"))
		return false
	}
	return ev.finish == ""
}
