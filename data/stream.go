package data

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"sync"
	"time"
)

// Mixture is a set of sources sampled by weight.
type Mixture struct {
	Builder *SampleBuilder
	Sources []Source
	// Weights are relative (normalised when sampling); one per source.
	Weights []float64
}

// NewMixture checks that every source has records and a positive, finite
// weight.
func NewMixture(env *SampleBuilder, sources []Source, weights []float64) (*Mixture, error) {
	if env == nil {
		return nil, errors.New("data: mixture needs a SampleBuilder")
	}
	if len(sources) == 0 {
		return nil, errors.New("data: mixture has no sources")
	}
	if len(weights) != len(sources) {
		return nil, fmt.Errorf("data: %d weights for %d sources", len(weights), len(sources))
	}
	seen := map[string]bool{}
	for i, s := range sources {
		w := weights[i]
		if !(w > 0) || math.IsInf(w, 0) {
			return nil, fmt.Errorf("data: source %q: weight %v must be positive and finite", s.Name(), w)
		}
		if s.Len() <= 0 {
			return nil, fmt.Errorf("data: source %q has no records", s.Name())
		}
		if seen[s.Name()] {
			return nil, fmt.Errorf("data: two sources are named %q (names must be unique)", s.Name())
		}
		seen[s.Name()] = true
	}
	return &Mixture{Builder: env, Sources: sources, Weights: append([]float64(nil), weights...)}, nil
}

// StreamOptions configure Mixture.Stream.
type StreamOptions struct {
	// Seed drives source choice, record order and per-sample randomness.
	Seed uint64
	// BatchSize is the number of samples per batch (> 0).
	BatchSize int
	// Workers is the number of goroutines building samples (default
	// GOMAXPROCS, at most 4). The output does not depend on it.
	Workers int
	// Prefetch is the reorder window: at most this many samples are drawn
	// ahead of the consumer (default 2*BatchSize + 2*Workers).
	Prefetch int
	// State restores a position returned by Stream.State (nil: the start).
	State []byte
	// Rank and World slice the stream for data-parallel training: every
	// rank draws the same global sequence of BatchSize-sample batches and
	// builds (decodes, marks, tokenises) only its own BatchSize/World
	// consecutive samples of each, so Next returns rank Rank's slice of the
	// global batch and the ranks' slices, concatenated in rank order, are
	// the batch one process gets. World <= 1: the whole stream. The state
	// after a batch is the global position (the end of the global batch),
	// the same on every rank unless a rank skipped bad records (it then
	// fills its slice from its part of the next global batch, and its state
	// moves on to that batch's end).
	Rank, World int
}

// StreamState is the JSON position of a stream (what State returns):
// the next sequence number, the sampler's PCG state, every source's epoch
// and offset in its shuffled order, and the number of records skipped so far.
type StreamState struct {
	Version int            `json:"version"`
	Seed    uint64         `json:"seed"`
	Seq     uint64         `json:"seq"`
	RNG     []byte         `json:"rng"`
	Sources []SourceCursor `json:"sources"`
	Skipped int64          `json:"skipped"`
}

// SourceCursor is one source's position: records are visited in a
// permutation derived from (seed, source, epoch).
type SourceCursor struct {
	Name   string `json:"name"`
	Len    int    `json:"len"`
	Epoch  int    `json:"epoch"`
	Offset int    `json:"offset"`
}

const streamStateVersion = 1

// sampler draws (source, record, sample seed) triples; it runs on one
// goroutine, so its output depends only on the seed.
type sampler struct {
	seed    uint64
	seq     uint64
	pcg     *rand.PCG
	rng     *rand.Rand
	cum     []float64
	sources []Source
	cursors []SourceCursor
	perms   [][]int
}

type task struct {
	seq   uint64
	ord   uint64 // position in this rank's part of the stream (= seq without ranks)
	src   int
	index int
	seed  uint64
	after StreamState
}

func newSampler(m *Mixture, seed uint64, st *StreamState) (*sampler, error) {
	s := &sampler{seed: seed, sources: m.Sources, perms: make([][]int, len(m.Sources))}
	total := 0.0
	for _, w := range m.Weights {
		total += w
		s.cum = append(s.cum, total)
	}
	for i := range s.cum {
		s.cum[i] /= total
	}
	s.pcg = rand.NewPCG(seed, 0x6d61676d61) // "magma"
	for _, src := range m.Sources {
		s.cursors = append(s.cursors, SourceCursor{Name: src.Name(), Len: src.Len()})
	}
	if st != nil {
		if st.Version != streamStateVersion {
			return nil, fmt.Errorf("data: stream state version %d, want %d", st.Version, streamStateVersion)
		}
		if st.Seed != seed {
			return nil, fmt.Errorf("data: stream state was saved with seed %d, the stream has seed %d", st.Seed, seed)
		}
		if len(st.Sources) != len(s.cursors) {
			return nil, fmt.Errorf("data: stream state has %d sources, the mixture %d", len(st.Sources), len(s.cursors))
		}
		for i, c := range st.Sources {
			if c.Name != s.cursors[i].Name || c.Len != s.cursors[i].Len {
				return nil, fmt.Errorf("data: stream state source %d is %q with %d records, the mixture has %q with %d (the data changed)", i, c.Name, c.Len, s.cursors[i].Name, s.cursors[i].Len)
			}
			if c.Offset < 0 || c.Offset > c.Len || c.Epoch < 0 {
				return nil, fmt.Errorf("data: stream state source %q: bad position epoch %d offset %d", c.Name, c.Epoch, c.Offset)
			}
		}
		copy(s.cursors, st.Sources)
		if err := s.pcg.UnmarshalBinary(st.RNG); err != nil {
			return nil, fmt.Errorf("data: stream state RNG: %w", err)
		}
		s.seq = st.Seq
	}
	s.rng = rand.New(s.pcg)
	return s, nil
}

func (s *sampler) perm(src int) []int {
	c := s.cursors[src]
	if s.perms[src] == nil {
		r := rand.New(rand.NewPCG(s.seed^0x9e3779b97f4a7c15*uint64(src+1), uint64(c.Epoch)))
		s.perms[src] = r.Perm(c.Len)
	}
	return s.perms[src]
}

func (s *sampler) next(skipped int64) task {
	u := s.rng.Float64()
	src := len(s.cum) - 1
	for i, c := range s.cum {
		if u < c {
			src = i
			break
		}
	}
	c := &s.cursors[src]
	if c.Offset >= c.Len {
		c.Epoch++
		c.Offset = 0
		s.perms[src] = nil
	}
	idx := s.perm(src)[c.Offset]
	c.Offset++
	t := task{seq: s.seq, ord: s.seq, src: src, index: idx, seed: s.rng.Uint64()}
	s.seq++
	t.after = s.state(skipped)
	return t
}

func (s *sampler) state(skipped int64) StreamState {
	rng, _ := s.pcg.MarshalBinary() // never fails
	return StreamState{Version: streamStateVersion, Seed: s.seed, Seq: s.seq, RNG: rng,
		Sources: append([]SourceCursor(nil), s.cursors...), Skipped: skipped}
}

type result struct {
	task
	sample Sample
	err    error
}

// MixtureStream is the Stream over a Mixture: one sampler goroutine draws
// numbered tasks, Workers goroutines build them (decode, mark, tokenise,
// preprocess) out of order, and Next puts them back in sequence order
// through a reorder buffer bounded by Prefetch. Next and State are meant
// for one consumer (they are nevertheless safe to call concurrently).
type MixtureStream struct {
	mix     *Mixture
	batch   int // samples per Next (this rank's slice of the global batch)
	global  int // samples per global batch
	rank    int
	world   int
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	tasks   chan task
	results chan result
	window  chan struct{}

	mu      sync.Mutex
	pending map[uint64]result
	next    uint64
	partial []Sample
	last    StreamState // state after the last completed batch
	cur     StreamState // state after the last consumed sample
	skipped int64
	err     error
	closed  bool
	waited  time.Duration
}

// Stream starts the workers. Cancelling ctx or calling Close stops them.
func (m *Mixture) Stream(ctx context.Context, o StreamOptions) (*MixtureStream, error) {
	if o.BatchSize <= 0 {
		return nil, fmt.Errorf("data: batch size %d must be positive", o.BatchSize)
	}
	if o.World < 1 {
		o.World, o.Rank = 1, 0
	}
	if o.Rank < 0 || o.Rank >= o.World {
		return nil, fmt.Errorf("data: rank %d outside a world of %d", o.Rank, o.World)
	}
	if o.BatchSize%o.World != 0 {
		return nil, fmt.Errorf("data: the global batch of %d samples does not divide over %d ranks", o.BatchSize, o.World)
	}
	local := o.BatchSize / o.World
	if o.Workers <= 0 {
		o.Workers = min(runtime.GOMAXPROCS(0), 4)
	}
	if o.Prefetch <= 0 {
		o.Prefetch = 2*local + 2*o.Workers
	}
	o.Prefetch = max(o.Prefetch, local)
	var st *StreamState
	if len(o.State) > 0 {
		st = new(StreamState)
		if err := json.Unmarshal(o.State, st); err != nil {
			return nil, fmt.Errorf("data: stream state: %w", err)
		}
	}
	smp, err := newSampler(m, o.Seed, st)
	if err != nil {
		return nil, err
	}
	s := &MixtureStream{
		mix: m, batch: local, global: o.BatchSize, rank: o.Rank, world: o.World,
		tasks:   make(chan task, o.Workers),
		results: make(chan result, o.Prefetch),
		window:  make(chan struct{}, o.Prefetch),
		pending: map[uint64]result{},
		next:    smp.seq,
	}
	if st != nil {
		s.skipped = st.Skipped
	}
	s.last = smp.state(s.skipped)
	s.cur = s.last
	s.ctx, s.cancel = context.WithCancel(ctx)
	s.wg.Add(1 + o.Workers)
	if o.World > 1 {
		go s.sampleRank(smp)
	} else {
		go s.sample(smp)
	}
	for w := 0; w < o.Workers; w++ {
		go s.work()
	}
	return s, nil
}

func (s *MixtureStream) sample(smp *sampler) {
	defer s.wg.Done()
	defer close(s.tasks)
	for {
		select {
		case s.window <- struct{}{}:
		case <-s.ctx.Done():
			return
		}
		t := smp.next(0)
		select {
		case s.tasks <- t:
		case <-s.ctx.Done():
			return
		}
	}
}

// sampleRank draws the global stream a global batch at a time and passes
// on this rank's slice of it, each task carrying the state at the end of
// the global batch (so every rank's State is the global position).
func (s *MixtureStream) sampleRank(smp *sampler) {
	defer s.wg.Done()
	defer close(s.tasks)
	ord := smp.seq
	mine := make([]task, 0, s.batch)
	for {
		mine = mine[:0]
		for j := 0; j < s.global; j++ {
			t := smp.next(0)
			if j/s.batch == s.rank {
				mine = append(mine, t)
			}
		}
		end := smp.state(0)
		for _, t := range mine {
			t.ord, t.after = ord, end
			ord++
			select {
			case s.window <- struct{}{}:
			case <-s.ctx.Done():
				return
			}
			select {
			case s.tasks <- t:
			case <-s.ctx.Done():
				return
			}
		}
	}
}

func (s *MixtureStream) work() {
	defer s.wg.Done()
	for {
		var t task
		select {
		case tt, ok := <-s.tasks:
			if !ok {
				return
			}
			t = tt
		case <-s.ctx.Done():
			return
		}
		r := result{task: t}
		r.sample, r.err = s.build(t)
		select {
		case s.results <- r:
		case <-s.ctx.Done():
			return
		}
	}
}

// build runs a source on one task, turning a panic into an error.
func (s *MixtureStream) build(t task) (smp Sample, err error) {
	src := s.mix.Sources[t.src]
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("data: source %q record %d: panic: %v\n%s", src.Name(), t.index, p, debug.Stack())
		}
	}()
	rng := rand.New(rand.NewPCG(t.seed, t.seq))
	smp, err = src.Sample(t.index, rng)
	if err == nil && len(smp.IDs) != len(smp.Labels) {
		err = fmt.Errorf("data: source %q record %d: %d ids but %d labels", src.Name(), t.index, len(smp.IDs), len(smp.Labels))
	}
	return smp, err
}

// ErrClosed is returned by Next after Close.
var ErrClosed = errors.New("data: stream closed")

// Next returns the next BatchSize samples in sequence order. Bad records
// are skipped (and logged) or, under OnErrorStop, end the stream with their
// *RecordError. If ctx is cancelled mid-batch the samples gathered so far
// are kept for the next call.
func (s *MixtureStream) Next(ctx context.Context) (Batch, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Batch{}, ErrClosed
	}
	if s.err != nil {
		return Batch{}, s.err
	}
	// A cancelled stream fails at once, even when finished samples are
	// buffered (select would otherwise pick between them and the
	// cancellation at random).
	if err := s.ctx.Err(); err != nil {
		return Batch{}, err
	}
	for len(s.partial) < s.batch {
		r, ok := s.pending[s.next]
		if !ok {
			t0 := time.Now()
			select {
			case r := <-s.results:
				s.pending[r.ord] = r
			case <-ctx.Done():
				s.waited += time.Since(t0)
				return Batch{}, ctx.Err()
			case <-s.ctx.Done():
				return Batch{}, s.ctx.Err()
			}
			s.waited += time.Since(t0)
			continue
		}
		delete(s.pending, s.next)
		s.next++
		<-s.window
		if r.err != nil {
			if s.mix.Builder.OnError == OnErrorStop {
				s.err = r.err
				return Batch{}, r.err
			}
			s.skipped++
			s.mix.Builder.logf("data: skipping bad record: %v", r.err)
		} else {
			s.partial = append(s.partial, r.sample)
		}
		s.cur = r.after
		s.cur.Skipped = s.skipped
	}
	b := Batch{Samples: s.partial}
	s.partial = nil
	s.last = s.cur
	return b, nil
}

// State returns the JSON StreamState after the last batch Next returned.
func (s *MixtureStream) State() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return json.Marshal(s.last)
}

// Skipped is the number of records skipped by this stream (restored
// streams include the count saved in their state).
func (s *MixtureStream) Skipped() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.skipped
}

// WaitTime is the total time Next spent waiting for workers: near zero
// when the pipeline keeps ahead of the trainer.
func (s *MixtureStream) WaitTime() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.waited
}

// Close stops the goroutines and waits for them to exit.
func (s *MixtureStream) Close() error {
	s.cancel()
	s.wg.Wait()
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return nil
}

var _ Stream = (*MixtureStream)(nil)
