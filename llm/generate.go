package llm

import (
	"context"
	"errors"
	"fmt"

	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/nn"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Generator runs a Model autoregressively with one KV cache per layer.
//
// Prefill appends a block of T input embeddings (the prompt) to the caches
// through a graph built for that length (kept for reuse), and returns the
// logits of the block's last position only: the last hidden row is gathered
// before lm_head, so no [T, V] logits are computed. Step appends one token
// through a single decode graph built for T = 1 on first use and re-run for
// every token with new id and position values, so a decode step costs one
// token's worth of work plus attention over the cache.
//
// A Generator is not safe for concurrent use.
type Generator struct {
	m      *Model
	maxLen int
	names  map[*tensor.Dense]string

	caches  []*kernels.KVCache
	kvDtype tensor.Dtype // the caches' storage: zero (float32) or kernels.BFloat16
	pos     int          // tokens in the caches
	broken  error        // set when a failed run could not be rolled back
	prefill map[int]*graphRun
	decode  *graphRun
	exec    *kernels.Executor // one arena for the prefill and decode programs
	shared  bool              // exec belongs to a BatchDecoder
}

// graphRun is a compiled graph with its input nodes.
type graphRun struct {
	prog    *kernels.Program
	x       *G.Node // prefill: embeddings [T, D]; decode: ids [1]
	pos     *G.Node // positions [T]
	logits  *G.Node // [1, V]
	posVals *tensor.Dense
	xVals   *tensor.Dense
}

// maxPrefillGraphs bounds how many prefill graphs (one per prompt length)
// a Generator keeps compiled.
const maxPrefillGraphs = 4

// NewGenerator prepares generation for sequences of up to maxLen positions
// (prompt plus generated tokens). maxLen <= 0 means the model's
// max_position_embeddings. The caches are allocated on first use.
func NewGenerator(m *Model, maxLen int) *Generator {
	if maxLen <= 0 && m != nil {
		maxLen = m.Config.MaxPositionEmbeddings
	}
	return &Generator{m: m, maxLen: maxLen}
}

// SetKVCacheDtype chooses how the KV caches store keys and values:
// tensor.Float32 (the default) or kernels.BFloat16 (half the bytes; keys and
// values are rounded to bfloat16 as they are cached, and prefill attends over
// the rounded values too; float32 models only). Caches already allocated are
// dropped, so the generator starts a new sequence.
func (g *Generator) SetKVCacheDtype(dt tensor.Dtype) error {
	if _, err := kernels.KVElemSize(dt); err != nil {
		return fmt.Errorf("llm: %w", err)
	}
	if dt == tensor.Float32 {
		dt = tensor.Dtype{}
	}
	if dt != g.kvDtype {
		g.kvDtype, g.caches, g.pos, g.broken = dt, nil, 0, nil
	}
	return nil
}

// Len is the number of positions held in the caches (prompt and steps so far).
func (g *Generator) Len() int { return g.pos }

// MaxLen is the capacity of the caches.
func (g *Generator) MaxLen() int { return g.maxLen }

// Release hands the generator's activation arena back now instead of when
// the generator is garbage collected (the arena is mapped outside the Go
// heap, so the collector does not hurry for it); a later run maps it again.
// The KV caches stay. A generator of a BatchDecoder shares the decoder's
// arena and keeps it.
func (g *Generator) Release() {
	if g.exec != nil && !g.shared {
		g.exec.Release()
	}
}

// Reset empties the caches so the next Prefill starts a new sequence; the
// compiled graphs are kept.
func (g *Generator) Reset() {
	g.pos, g.broken = 0, nil
	for _, c := range g.caches {
		c.Reset()
	}
}

// checkRoom checks that n more positions fit in the context and the caches.
func (g *Generator) checkRoom(n int) error {
	if n <= 0 {
		return fmt.Errorf("llm: nothing to run (%d positions)", n)
	}
	cfgMax := g.m.Config.MaxPositionEmbeddings
	if g.pos+n > cfgMax {
		return fmt.Errorf("llm: sequence of %d positions (%d cached + %d new) exceeds max_position_embeddings %d",
			g.pos+n, g.pos, n, cfgMax)
	}
	if g.pos+n > g.maxLen {
		return fmt.Errorf("llm: sequence of %d positions (%d cached + %d new) exceeds the generator's maxLen %d",
			g.pos+n, g.pos, n, g.maxLen)
	}
	return nil
}

func (g *Generator) ready() error {
	if g == nil || g.m == nil {
		return errors.New("llm: generator has no model")
	}
	if g.maxLen <= 0 {
		return fmt.Errorf("llm: generator maxLen %d must be positive", g.maxLen)
	}
	if g.broken != nil {
		return fmt.Errorf("llm: generator is unusable after an earlier failure (call Reset): %w", g.broken)
	}
	if g.names == nil {
		g.names = nn.ParamNames(g.m, "language_model.")
	}
	if g.caches == nil {
		cfg := &g.m.Config
		g.caches = make([]*kernels.KVCache, cfg.NumHiddenLayers)
		for i := range g.caches {
			c, err := kernels.NewKVCacheDtype(1, cfg.NumKeyValueHeads, cfg.HeadDim, g.maxLen, g.kvDtype)
			if err != nil {
				g.caches = nil
				return fmt.Errorf("llm: %w", err)
			}
			g.caches[i] = c
		}
		g.prefill, g.decode = nil, nil
	}
	return nil
}

// Prefill appends the input embeddings embeds [T, D] (the model's dtype, or
// float32/float64 which is converted) at positions Len()..Len()+T-1 and
// returns the next-token logits at the last of them.
func (g *Generator) Prefill(embeds *tensor.Dense) ([]float32, error) {
	if err := g.ready(); err != nil {
		return nil, err
	}
	cfg := &g.m.Config
	if embeds == nil || embeds.Shape().Dims() != 2 || embeds.Shape()[1] != cfg.HiddenSize {
		var s any = "nil"
		if embeds != nil {
			s = embeds.Shape()
		}
		return nil, fmt.Errorf("llm: Prefill wants embeddings [T, %d], got %v", cfg.HiddenSize, s)
	}
	x, err := asDtype(embeds, g.m.Dtype())
	if err != nil {
		return nil, err
	}
	T := x.Shape()[0]
	if err := g.checkRoom(T); err != nil {
		return nil, err
	}
	run := g.prefill[T]
	if run == nil {
		if run, err = g.buildPrefill(T); err != nil {
			return nil, err
		}
		if len(g.prefill) >= maxPrefillGraphs {
			g.prefill = nil
		}
		if g.prefill == nil {
			g.prefill = map[int]*graphRun{}
		}
		g.prefill[T] = run
	}
	setRange(run.posVals, g.pos)
	if err := G.Let(run.x, x); err != nil {
		return nil, fmt.Errorf("llm: prefill input: %w", err)
	}
	return g.run(run, T)
}

// PrefillIDs is Prefill on the embeddings of token ids.
func (g *Generator) PrefillIDs(ids []int) ([]float32, error) {
	if err := g.ready(); err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, errors.New("llm: PrefillIDs: empty prompt")
	}
	e, err := g.m.EmbedIDs(ids)
	if err != nil {
		return nil, err
	}
	return g.Prefill(e)
}

// Step appends token id at position Len() through the decode graph and
// returns the next-token logits.
func (g *Generator) Step(id int) ([]float32, error) {
	if err := g.ready(); err != nil {
		return nil, err
	}
	if id < 0 || id >= g.m.Config.VocabSize {
		return nil, fmt.Errorf("llm: token id %d outside the vocabulary [0, %d)", id, g.m.Config.VocabSize)
	}
	if err := g.checkRoom(1); err != nil {
		return nil, err
	}
	if g.decode == nil {
		run, err := g.buildDecode()
		if err != nil {
			return nil, err
		}
		g.decode = run
	}
	setScalar(g.decode.xVals, float64(id))
	setRange(g.decode.posVals, g.pos)
	return g.run(g.decode, 1)
}

// run executes a compiled graph that appends n positions and copies out the
// logits row.
func (g *Generator) run(r *graphRun, n int) ([]float32, error) {
	if err := G.Let(r.pos, r.posVals); err != nil {
		return nil, fmt.Errorf("llm: positions input: %w", err)
	}
	if g.exec == nil {
		e, err := kernels.NewExecutorWith(g.m.Kernels)
		if err != nil {
			return nil, fmt.Errorf("llm: %w", err)
		}
		g.exec = e
	}
	if err := g.exec.Run(r.prog, nil); err != nil {
		g.rollback(err)
		return nil, fmt.Errorf("llm: running the decoder at position %d: %w", g.pos, err)
	}
	g.pos += n
	lv, err := r.prog.Value(r.logits)
	v, ok := lv.(*tensor.Dense)
	if err != nil || !ok || v == nil {
		g.broken = fmt.Errorf("logits have no value (%T, %v)", lv, err)
		return nil, fmt.Errorf("llm: %w", g.broken)
	}
	out := make([]float32, g.m.Config.VocabSize)
	switch d := v.Data().(type) {
	case []float32:
		copy(out, d)
	case []float64:
		for i := range out {
			out[i] = float32(d[i])
		}
	default:
		return nil, fmt.Errorf("llm: logits of unexpected type %T", d)
	}
	return out, nil
}

// rollback undoes the partial appends of a failed run (layers before the
// failure have stored their keys and values); if that fails too the
// generator stays unusable until Reset.
func (g *Generator) rollback(cause error) {
	for _, c := range g.caches {
		if c.Len() > g.pos {
			if err := c.Truncate(g.pos); err != nil {
				g.broken = cause
				return
			}
		}
	}
}

func (g *Generator) buildPrefill(T int) (*graphRun, error) {
	m, dt := g.m, g.m.Dtype()
	b := kernels.NewBuilder(g.names)
	xv := tensor.New(tensor.WithShape(T, m.Config.HiddenSize), tensor.Of(dt))
	r := &graphRun{posVals: tensor.New(tensor.WithShape(T), tensor.Of(dt))}
	r.x = b.Input("prefill_embeds", xv)
	r.pos = b.Input("prefill_positions", r.posVals)
	hidden := m.Forward(b, r.x, r.pos, ForwardOptions{Batch: 1, Seq: T, Caches: g.caches})
	last := tensor.New(tensor.WithShape(1), tensor.Of(dt))
	setScalar(last, float64(T-1))
	r.logits = m.Logits(b, b.In("last_position").Gather(hidden, b.Input("prefill_last_row", last)))
	if err := b.Err(); err != nil {
		return nil, fmt.Errorf("llm: prefill graph: %w", err)
	}
	var err error
	if r.prog, err = kernels.Compile(b.G, kernels.CompileOptions{Name: fmt.Sprintf("prefill T=%d", T), Outputs: G.Nodes{r.logits}}); err != nil {
		return nil, fmt.Errorf("llm: %w", err)
	}
	return r, nil
}

func (g *Generator) buildDecode() (*graphRun, error) {
	m, dt := g.m, g.m.Dtype()
	b := kernels.NewBuilder(g.names)
	r := &graphRun{
		xVals:   tensor.New(tensor.WithShape(1), tensor.Of(dt)),
		posVals: tensor.New(tensor.WithShape(1), tensor.Of(dt)),
	}
	r.x = b.Input("decode_id", r.xVals)
	r.pos = b.Input("decode_position", r.posVals)
	hidden := m.Forward(b, m.Embed(b, r.x), r.pos, ForwardOptions{Batch: 1, Seq: 1, Caches: g.caches})
	r.logits = m.Logits(b, hidden)
	if err := b.Err(); err != nil {
		return nil, fmt.Errorf("llm: decode graph: %w", err)
	}
	var err error
	if r.prog, err = kernels.Compile(b.G, kernels.CompileOptions{Name: "decode T=1", Outputs: G.Nodes{r.logits}}); err != nil {
		return nil, fmt.Errorf("llm: %w", err)
	}
	return r, nil
}

// EmbedIDs looks token ids up in embed_tokens on the host: [len(ids), D].
func (m *Model) EmbedIDs(ids []int) (*tensor.Dense, error) {
	w := m.Decoder.EmbedTokens.Weight
	if w == nil {
		return nil, errors.New("llm: embed_tokens not initialised")
	}
	V, D := m.Config.VocabSize, m.Config.HiddenSize
	if !w.Shape().Eq(tensor.Shape{V, D}) {
		return nil, fmt.Errorf("llm: embed_tokens has shape %v, config wants [%d, %d]", w.Shape(), V, D)
	}
	for i, id := range ids {
		if id < 0 || id >= V {
			return nil, fmt.Errorf("llm: token %d of the prompt has id %d outside the vocabulary [0, %d)", i, id, V)
		}
	}
	out := tensor.New(tensor.WithShape(len(ids), D), tensor.Of(m.Dtype()))
	if kernels.IsHalf(w.Dtype()) {
		dst := out.Data().([]float32)
		for i, id := range ids {
			kernels.Widen32(dst[i*D:(i+1)*D], w, id*D)
		}
		return out, nil
	}
	switch src := w.Data().(type) {
	case []float32:
		dst := out.Data().([]float32)
		for i, id := range ids {
			copy(dst[i*D:(i+1)*D], src[id*D:(id+1)*D])
		}
	case []float64:
		dst := out.Data().([]float64)
		for i, id := range ids {
			copy(dst[i*D:(i+1)*D], src[id*D:(id+1)*D])
		}
	default:
		return nil, fmt.Errorf("llm: embed_tokens has unsupported data %T", src)
	}
	return out, nil
}

// setRange writes start, start+1, ... into the float tensor t.
func setRange(t *tensor.Dense, start int) {
	switch d := t.Data().(type) {
	case []float32:
		for i := range d {
			d[i] = float32(start + i)
		}
	case []float64:
		for i := range d {
			d[i] = float64(start + i)
		}
	}
}

func setScalar(t *tensor.Dense, v float64) {
	switch d := t.Data().(type) {
	case []float32:
		d[0] = float32(v)
	case []float64:
		d[0] = v
	}
}

// asDtype returns t converted (copied) to dt when needed, contiguous.
func asDtype(t *tensor.Dense, dt tensor.Dtype) (*tensor.Dense, error) {
	if t.IsView() {
		m := t.Materialize()
		d, ok := m.(*tensor.Dense)
		if !ok {
			return nil, fmt.Errorf("llm: cannot materialise %T", m)
		}
		t = d
	}
	if t.Dtype() == dt {
		return t, nil
	}
	vals, err := nn.Float64s(t)
	if err != nil {
		return nil, err
	}
	out := tensor.New(tensor.WithShape(t.Shape().Clone()...), tensor.Of(dt))
	switch d := out.Data().(type) {
	case []float32:
		for i, v := range vals {
			d[i] = float32(v)
		}
	case []float64:
		copy(d, vals)
	}
	return out, nil
}

// Prompt is the input of Generate: token ids, or input embeddings [T, D]
// (for the multimodal model, with image features spliced in). Exactly one
// must be set.
type Prompt struct {
	IDs    []int
	Embeds *tensor.Dense
}

func (p Prompt) len() int {
	if p.Embeds != nil {
		if p.Embeds.Shape().Dims() == 0 {
			return 0
		}
		return p.Embeds.Shape()[0]
	}
	return len(p.IDs)
}

// GenerateOptions configures Generate.
type GenerateOptions struct {
	MaxNewTokens int     // tokens to generate at most (> 0)
	Temperature  float64 // 0 = greedy
	TopP         float64 // nucleus sampling; 0 or 1 = disabled
	TopK         int     // 0 = disabled
	Seed         uint64  // seed of the sampler's random source
	StopIDs      []int   // generation ends after emitting one of these (it is returned)
	Allowed      []bool  // ids that may be generated (nil = all; see SampleOptions.Allowed)
}

// TokenFunc receives every generated token with the logits it was drawn
// from (step 0: the logits at the prompt's last position; step k: after the
// k-th generated token). The slice is the caller's to keep. Returning an
// error stops generation with that error.
type TokenFunc func(step, id int, logits []float32) error

// Generate resets the generator, prefills the prompt and generates up to
// opt.MaxNewTokens tokens, stopping after a token in opt.StopIDs. It returns
// the generated ids (a stop token included). The context is checked before
// every decoder run. fn may be nil.
func (g *Generator) Generate(ctx context.Context, p Prompt, opt GenerateOptions, fn TokenFunc) ([]int, error) {
	if g == nil || g.m == nil {
		return nil, errors.New("llm: generator has no model")
	}
	if ctx == nil {
		ctx = context.Background()
	}
	if (p.IDs != nil) == (p.Embeds != nil) {
		return nil, errors.New("llm: Generate wants exactly one of prompt ids or prompt embeddings")
	}
	n := p.len()
	if n == 0 {
		return nil, errors.New("llm: Generate: empty prompt")
	}
	if opt.MaxNewTokens <= 0 {
		return nil, fmt.Errorf("llm: max new tokens %d must be positive", opt.MaxNewTokens)
	}
	if total, lim := n+opt.MaxNewTokens, g.m.Config.MaxPositionEmbeddings; total > lim {
		return nil, fmt.Errorf("llm: prompt of %d tokens + %d new tokens = %d exceeds max_position_embeddings %d",
			n, opt.MaxNewTokens, total, lim)
	}
	if total := n + opt.MaxNewTokens; total > g.maxLen {
		return nil, fmt.Errorf("llm: prompt of %d tokens + %d new tokens = %d exceeds the generator's maxLen %d",
			n, opt.MaxNewTokens, total, g.maxLen)
	}
	sampler, err := NewSampler(SampleOptions{Temperature: opt.Temperature, TopK: opt.TopK, TopP: opt.TopP, Allowed: opt.Allowed}, opt.Seed)
	if err != nil {
		return nil, err
	}
	stop := map[int]bool{}
	for _, id := range opt.StopIDs {
		stop[id] = true
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	g.Reset()
	var logits []float32
	if p.Embeds != nil {
		logits, err = g.Prefill(p.Embeds)
	} else {
		logits, err = g.PrefillIDs(p.IDs)
	}
	if err != nil {
		return nil, err
	}
	var out []int
	for step := 0; ; step++ {
		id, err := sampler.Sample(logits)
		if err != nil {
			return out, fmt.Errorf("llm: sampling token %d: %w", step, err)
		}
		out = append(out, id)
		if fn != nil {
			if err := fn(step, id, logits); err != nil {
				return out, err
			}
		}
		if stop[id] || len(out) >= opt.MaxNewTokens {
			return out, nil
		}
		if err := ctx.Err(); err != nil {
			return out, err
		}
		if logits, err = g.Step(id); err != nil {
			return out, err
		}
	}
}
