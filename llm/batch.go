package llm

import (
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/nn"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// BatchDecoder runs step-level (continuous) batching: up to MaxBatch
// sequences are active at once, each in its own slot with its own KV caches
// (one kernels.KVCache per layer per slot). A sequence joins by prefilling
// its prompt into a free slot through the slot's Generator (the ordinary
// prefill graphs), and from then on every Step advances all the sequences it
// names by one token in a single decode graph:
//
//	x = embed_tokens[ids]                          [B, D]
//	per layer: n = RMSNorm(x); q,k,v = n·Wᵀ          [B, ·]  (one GEMM each)
//	           q,k = RoPE(q,k at each row's position)
//	           o_i = Attention(q_i, k_i, v_i; cache of slot i, T = 1) per row i
//	           o = concat_i(o_i); x += o·Woᵀ; x += MLP(RMSNorm(x))  (GEMMs)
//	logits = lm_head(RMSNorm(x))                   [B, V]
//
// The dense layers, which dominate the cost, read every weight matrix once
// per step for all B rows instead of once per sequence; attention, which is
// per sequence, reads only that sequence's cache (rows are split with
// kernels.Gather and joined with Concat).
//
// A decode graph bakes in the KV caches it attends to, so one graph is
// compiled per set of slots (the "active-set signature", a bitmask) and kept
// for reuse; slot caches are reset and reused by later sequences, so the
// number of distinct signatures is bounded by the slot count, not by the
// number of requests. BuildStats reports how often graphs were compiled and
// what that cost.
//
// A BatchDecoder is not safe for concurrent use; one goroutine (a scheduler)
// drives it.
type BatchDecoder struct {
	m       *Model
	maxLen  int
	slots   []*Generator
	active  []bool
	names   map[*tensor.Dense]string
	kvDtype tensor.Dtype // every slot's KV cache storage (Generator.SetKVCacheDtype)

	graphs    map[uint64]*batchRun
	lru       []uint64 // signatures, least recently used first
	maxGraphs int

	exec *kernels.Executor // one arena for the batched steps and every slot's prefill

	statsMu sync.Mutex
	stats   BatchStats
}

// BatchStats counts decode-graph compilations (one per new active-set
// signature) and decode steps.
type BatchStats struct {
	GraphBuilds   int           // decode graphs compiled
	GraphBuildDur time.Duration // total time spent compiling them
	GraphHits     int           // steps that reused a compiled graph
	Steps         int           // batched decode steps run
	Rows          int           // sequence-steps (sum of batch sizes)
	StepDur       time.Duration // total time in decode steps (build excluded)
}

// batchRun is a compiled decode graph for one set of slots.
type batchRun struct {
	slots   []int // ascending slot indices; row i belongs to slots[i]
	prog    *kernels.Program
	ids     *G.Node
	pos     *G.Node
	logits  *G.Node // [B, V]
	idVals  *tensor.Dense
	posVals *tensor.Dense
}

// DefaultMaxBatchGraphs bounds the compiled decode graphs a BatchDecoder keeps.
const DefaultMaxBatchGraphs = 64

// NewBatchDecoder prepares maxBatch slots for sequences of up to maxLen
// positions each (prompt + generated; <= 0 means max_position_embeddings).
// KV caches are allocated when a slot is first used.
func NewBatchDecoder(m *Model, maxBatch, maxLen int) (*BatchDecoder, error) {
	if m == nil {
		return nil, errors.New("llm: NewBatchDecoder: nil model")
	}
	if maxBatch <= 0 || maxBatch > 64 {
		return nil, fmt.Errorf("llm: NewBatchDecoder: max batch %d must be in [1, 64]", maxBatch)
	}
	if maxLen <= 0 || maxLen > m.Config.MaxPositionEmbeddings {
		maxLen = m.Config.MaxPositionEmbeddings
	}
	d := &BatchDecoder{m: m, maxLen: maxLen, slots: make([]*Generator, maxBatch), active: make([]bool, maxBatch),
		graphs: map[uint64]*batchRun{}, maxGraphs: DefaultMaxBatchGraphs}
	return d, nil
}

// SetKVCacheDtype chooses the slots' KV cache storage, tensor.Float32 (the
// default) or kernels.BFloat16 (see Generator.SetKVCacheDtype); it must be
// called before the first Join.
func (d *BatchDecoder) SetKVCacheDtype(dt tensor.Dtype) error {
	if _, err := kernels.KVElemSize(dt); err != nil {
		return fmt.Errorf("llm: %w", err)
	}
	for _, g := range d.slots {
		if g != nil {
			return errors.New("llm: BatchDecoder.SetKVCacheDtype: slots are already in use")
		}
	}
	d.kvDtype = dt
	return nil
}

// MaxBatch is the number of slots.
func (d *BatchDecoder) MaxBatch() int { return len(d.slots) }

// MaxLen is the capacity of every slot in positions.
func (d *BatchDecoder) MaxLen() int { return d.maxLen }

// Model is the decoder the batch runs.
func (d *BatchDecoder) Model() *Model { return d.m }

// Free is the number of slots without a sequence.
func (d *BatchDecoder) Free() int {
	n := 0
	for _, a := range d.active {
		if !a {
			n++
		}
	}
	return n
}

// Active lists the occupied slots in ascending order.
func (d *BatchDecoder) Active() []int {
	var out []int
	for i, a := range d.active {
		if a {
			out = append(out, i)
		}
	}
	return out
}

// Len is the number of positions held by slot's sequence.
func (d *BatchDecoder) Len(slot int) int {
	if slot < 0 || slot >= len(d.slots) || d.slots[slot] == nil {
		return 0
	}
	return d.slots[slot].Len()
}

// Stats returns a copy of the counters (safe to call from any goroutine).
func (d *BatchDecoder) Stats() BatchStats {
	d.statsMu.Lock()
	defer d.statsMu.Unlock()
	return d.stats
}

// Join prefills embeds [T, D] into a free slot and returns the slot and the
// next-token logits at the prompt's last position. T must leave room for
// the tokens the caller means to generate (T + new <= MaxLen).
func (d *BatchDecoder) Join(embeds *tensor.Dense) (int, []float32, error) {
	slot := slices.Index(d.active, false)
	if slot < 0 {
		return -1, nil, fmt.Errorf("llm: BatchDecoder: all %d slots are busy", len(d.slots))
	}
	g := d.slots[slot]
	if g == nil {
		g = NewGenerator(d.m, d.maxLen)
		if err := g.SetKVCacheDtype(d.kvDtype); err != nil {
			return -1, nil, err
		}
		if d.exec == nil {
			e, err := kernels.NewExecutorWith(d.m.Kernels)
			if err != nil {
				return -1, nil, fmt.Errorf("llm: %w", err)
			}
			d.exec = e
		}
		g.exec, g.shared = d.exec, true // the slots' prefills share the decoder's arena
		d.slots[slot] = g
	}
	g.Reset()
	logits, err := g.Prefill(embeds)
	if err != nil {
		g.Reset()
		return -1, nil, err
	}
	d.active[slot] = true
	return slot, logits, nil
}

// JoinIDs is Join on the embeddings of token ids.
func (d *BatchDecoder) JoinIDs(ids []int) (int, []float32, error) {
	if len(ids) == 0 {
		return -1, nil, errors.New("llm: BatchDecoder.JoinIDs: empty prompt")
	}
	e, err := d.m.EmbedIDs(ids)
	if err != nil {
		return -1, nil, err
	}
	return d.Join(e)
}

// Leave frees slot (its caches are kept for the next sequence).
func (d *BatchDecoder) Leave(slot int) {
	if slot < 0 || slot >= len(d.slots) {
		return
	}
	d.active[slot] = false
	if g := d.slots[slot]; g != nil {
		g.Reset()
	}
}

// Step appends ids[i] to the sequence in slots[i] for every i in one decode
// graph and returns each sequence's next-token logits (out[i] belongs to
// slots[i]; the slices are the caller's). Slots must be distinct and
// active; their order is free.
func (d *BatchDecoder) Step(slots, ids []int) ([][]float32, error) {
	if len(slots) == 0 {
		return nil, nil
	}
	if len(slots) != len(ids) {
		return nil, fmt.Errorf("llm: BatchDecoder.Step: %d slots but %d ids", len(slots), len(ids))
	}
	var sig uint64
	V := d.m.Config.VocabSize
	for i, s := range slots {
		if s < 0 || s >= len(d.slots) || !d.active[s] {
			return nil, fmt.Errorf("llm: BatchDecoder.Step: slot %d is not active", s)
		}
		if sig&(1<<uint(s)) != 0 {
			return nil, fmt.Errorf("llm: BatchDecoder.Step: slot %d given twice", s)
		}
		sig |= 1 << uint(s)
		if ids[i] < 0 || ids[i] >= V {
			return nil, fmt.Errorf("llm: token id %d outside the vocabulary [0, %d)", ids[i], V)
		}
		g := d.slots[s]
		if err := g.ready(); err != nil {
			return nil, err
		}
		if err := g.checkRoom(1); err != nil {
			return nil, fmt.Errorf("slot %d: %w", s, err)
		}
	}
	run, err := d.graph(sig)
	if err != nil {
		return nil, err
	}
	// Row r of the graph is slot run.slots[r]; map the caller's order onto it.
	row := make(map[int]int, len(slots))
	for r, s := range run.slots {
		row[s] = r
	}
	for i, s := range slots {
		r := row[s]
		setAt(run.idVals, r, float64(ids[i]))
		setAt(run.posVals, r, float64(d.slots[s].pos))
	}
	if err := G.Let(run.ids, run.idVals); err != nil {
		return nil, err
	}
	if err := G.Let(run.pos, run.posVals); err != nil {
		return nil, err
	}
	t0 := time.Now()
	if d.exec == nil {
		e, err := kernels.NewExecutorWith(d.m.Kernels)
		if err != nil {
			return nil, fmt.Errorf("llm: %w", err)
		}
		d.exec = e
	}
	if err := d.exec.Run(run.prog, nil); err != nil {
		for _, s := range run.slots {
			d.slots[s].rollback(err)
		}
		return nil, fmt.Errorf("llm: batched decode step: %w", err)
	}
	for _, s := range run.slots {
		d.slots[s].pos++
	}
	lv, err := run.prog.Value(run.logits)
	v, ok := lv.(*tensor.Dense)
	if err != nil || !ok || v == nil {
		return nil, fmt.Errorf("llm: batched logits have no value (%T, %v)", lv, err)
	}
	out := make([][]float32, len(slots))
	for i, s := range slots {
		r := row[s]
		o := make([]float32, V)
		switch src := v.Data().(type) {
		case []float32:
			copy(o, src[r*V:(r+1)*V])
		case []float64:
			for j := range o {
				o[j] = float32(src[r*V+j])
			}
		default:
			return nil, fmt.Errorf("llm: logits of unexpected type %T", src)
		}
		out[i] = o
	}
	d.statsMu.Lock()
	d.stats.Steps++
	d.stats.Rows += len(slots)
	d.stats.StepDur += time.Since(t0)
	d.statsMu.Unlock()
	return out, nil
}

// graph returns the compiled decode graph of the slot set sig.
func (d *BatchDecoder) graph(sig uint64) (*batchRun, error) {
	if r := d.graphs[sig]; r != nil {
		if i := slices.Index(d.lru, sig); i >= 0 {
			d.lru = append(slices.Delete(d.lru, i, i+1), sig)
		}
		d.statsMu.Lock()
		d.stats.GraphHits++
		d.statsMu.Unlock()
		return r, nil
	}
	t0 := time.Now()
	slots := make([]int, 0, bits.OnesCount64(sig))
	for s := range d.slots {
		if sig&(1<<uint(s)) != 0 {
			slots = append(slots, s)
		}
	}
	r, err := d.buildStep(slots)
	if err != nil {
		return nil, err
	}
	if len(d.lru) >= d.maxGraphs {
		old := d.lru[0]
		d.lru = d.lru[1:]
		delete(d.graphs, old)
	}
	d.graphs[sig] = r
	d.lru = append(d.lru, sig)
	d.statsMu.Lock()
	d.stats.GraphBuilds++
	d.stats.GraphBuildDur += time.Since(t0)
	d.statsMu.Unlock()
	return r, nil
}

// buildStep compiles the decode graph for slots (ascending).
func (d *BatchDecoder) buildStep(slots []int) (*batchRun, error) {
	m, dt, cfg := d.m, d.m.Dtype(), &d.m.Config
	if d.names == nil {
		d.names = nn.ParamNames(m, "language_model.")
	}
	B := len(slots)
	b := kernels.NewBuilder(d.names)
	r := &batchRun{
		slots:   slots,
		idVals:  tensor.New(tensor.WithShape(B), tensor.Of(dt)),
		posVals: tensor.New(tensor.WithShape(B), tensor.Of(dt)),
	}
	r.ids = b.Input("batch_ids", r.idVals)
	r.pos = b.Input("batch_positions", r.posVals)
	rowIdx := make([]*G.Node, B)
	if B > 1 {
		for i := range rowIdx {
			v := tensor.New(tensor.WithShape(1), tensor.Of(dt))
			setAt(v, 0, float64(i))
			rowIdx[i] = b.Input(fmt.Sprintf("batch_row_%d", i), v)
		}
	}
	x := m.Embed(b, r.ids)
	for l := range m.Decoder.Layers {
		caches := make([]*kernels.KVCache, B)
		for i, s := range slots {
			if caches[i] = d.slots[s].caches[l]; caches[i] == nil {
				return nil, fmt.Errorf("llm: slot %d has no cache for layer %d", s, l)
			}
		}
		x = m.Decoder.Layers[l].Forward(b.In("model", "layers", strconv.Itoa(l)), x, r.pos, cfg, perRow(cfg, caches, rowIdx))
	}
	r.logits = m.Logits(b, m.Decoder.Norm.Forward(b.In("model", "norm"), x, cfg.RMSNormEps))
	if err := b.Err(); err != nil {
		return nil, fmt.Errorf("llm: batched decode graph: %w", err)
	}
	var err error
	if r.prog, err = kernels.Compile(b.G, kernels.CompileOptions{Name: fmt.Sprintf("batched decode B=%d", B), Outputs: G.Nodes{r.logits}}); err != nil {
		return nil, fmt.Errorf("llm: %w", err)
	}
	return r, nil
}

// perRow attends each of B independent sequences at T = 1 to its own cache:
// every dense product of the layer runs on all B rows, attention per row
// (rows picked with rowIdx and joined again).
func perRow(cfg *Config, caches []*kernels.KVCache, rowIdx []*G.Node) Attend {
	if len(caches) == 1 {
		return Causal(cfg, 1, 1, caches[0])
	}
	return func(b *kernels.Builder, q, k, v *G.Node) *G.Node {
		outs := make([]*G.Node, len(caches))
		for i, c := range caches {
			outs[i] = Causal(cfg, 1, 1, c)(b, b.Gather(q, rowIdx[i]), b.Gather(k, rowIdx[i]), b.Gather(v, rowIdx[i]))
		}
		return b.Concat(0, outs...)
	}
}

// setAt writes v at index i of a float tensor.
func setAt(t *tensor.Dense, i int, v float64) {
	switch d := t.Data().(type) {
	case []float32:
		d[i] = float32(v)
	case []float64:
		d[i] = v
	}
}
