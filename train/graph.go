package train

import (
	"errors"
	"fmt"
	"time"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/magma-go/magma/data"
	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/llm/tokenizer"
	"github.com/magma-go/magma/model"
)

// stepGraph is a compiled forward+backward graph for one batch shape (see
// model.Batch for the layout: the shape is all a graph depends on, so a run
// compiles a handful of graphs, not one per step).
type stepGraph struct {
	*model.Gradients
	key     model.BatchShape
	prog    *kernels.Program
	inputs  []*G.Node
	values  []*tensor.Dense // host buffers, aligned with inputs (filled, then Let)
	lastUse int
}

// buildGraph compiles the graph for key; trainable selects the parameter
// tensors to differentiate.
// With recompute, the program recomputes forward values in the backward
// pass (activation checkpointing, kernels.CompileOptions.Recompute).
func buildGraph(m *model.Magma, names map[*tensor.Dense]string, key model.BatchShape, trainable map[*tensor.Dense]bool, recompute bool) (*stepGraph, error) {
	g, err := m.BuildGradients(key, names, trainable)
	if err != nil {
		return nil, err
	}
	sg := &stepGraph{Gradients: g, key: key}
	sg.prog, err = kernels.Compile(g.Graph, kernels.CompileOptions{Name: "training step " + key.String(), Outputs: append(G.Nodes{g.Loss}, g.Grads...), Recompute: recompute})
	if err != nil {
		return nil, err
	}
	sg.inputs, sg.values = g.Batch.Inputs()
	return sg, nil
}

// sequences is a data batch as the model sees it.
func sequences(batch data.Batch) []model.Sequence {
	seqs := make([]model.Sequence, len(batch.Samples))
	for i, s := range batch.Samples {
		seqs[i] = model.Sequence{IDs: s.IDs, Labels: s.Labels, Images: s.Images}
	}
	return seqs
}

// plan computes the shape of a batch; errors name the sample's source and
// index. The padded length T is rounded up to bucket·2^k, the supervised
// rows S to (T/2)·2^k and the crop count to a power of two: a run then
// compiles a few programs (the default pretrain: 98 with multiples of the
// bucket), at the price of at most 2x padding. Padding crops are zero pixels that no
// position reads, padding rows are ignored targets.
func plan(m *model.Magma, batch data.Batch, bucket, maxLen int) (model.Plan, error) {
	p, err := m.PlanBatch(sequences(batch), bucket, maxLen)
	var se *model.SequenceError
	if errors.As(err, &se) {
		s := batch.Samples[se.Index]
		return p, fmt.Errorf("sample %s#%d: %w", s.Source, s.Index, se.Err)
	}
	if err != nil {
		return p, err
	}
	longest := 0
	for _, n := range p.Lengths {
		longest = max(longest, n)
	}
	sh := &p.Shape
	sh.T = max(sh.T, min(bucketUp(longest, bucket), max(maxLen, longest)))
	// S in units of T/2: per T at most a few values (T/2, T, 2T, ...).
	sh.S = max(sh.S, min(bucketUp(max(1, p.Targets), max(bucket, sh.T/2)), sh.B*sh.T))
	sh.Crops = bucketUp(sh.Crops, 1)
	return p, nil
}

// bucketUp rounds n up to unit·2^k (0 stays 0).
func bucketUp(n, unit int) int {
	if n <= 0 {
		return 0
	}
	b := max(unit, 1)
	for b < n {
		b *= 2
	}
	return b
}

// checkLabels refuses labels that generation could never produce: ids the
// tokenizer has no token for (allowed nil: no check).
func checkLabels(batch data.Batch, allowed []bool) error {
	if allowed == nil {
		return nil
	}
	for j, s := range batch.Samples {
		for i, l := range s.Labels {
			if l != tokenizer.IgnoreIndex && (l < 0 || l >= len(allowed) || !allowed[l]) {
				return fmt.Errorf("sample %d: label %d at index %d has no token in the tokenizer (generation masks such ids)", j, l, i)
			}
		}
	}
	return nil
}

// fill writes a batch into the graph's input buffers and returns the number
// of supervised target positions.
func (sg *stepGraph) fill(m *model.Magma, batch data.Batch) int {
	return m.Fill(sg.Batch, sequences(batch))
}

// run executes forward and backward on the filled inputs on exec; the
// gradient values stay valid until exec runs again.
func (sg *stepGraph) run(exec *kernels.Executor) (float64, error) {
	return sg.runWith(exec, nil)
}

// runWith is run with run options (OnOutput sees each gradient the moment
// it is final).
func (sg *stepGraph) runWith(exec *kernels.Executor, o *kernels.RunOptions) (float64, error) {
	for i, n := range sg.inputs {
		if err := G.Let(n, sg.values[i]); err != nil {
			return 0, fmt.Errorf("input %s: %w", n.Name(), err)
		}
	}
	if err := exec.Run(sg.prog, o); err != nil {
		return 0, err
	}
	lv, err := sg.prog.Value(sg.Loss)
	if err != nil {
		return 0, err
	}
	switch v := lv.Data().(type) {
	case float32:
		return float64(v), nil
	case float64:
		return v, nil
	case []float32:
		return float64(v[0]), nil
	}
	return 0, fmt.Errorf("loss value of type %T", lv.Data())
}

// grad returns the gradient data of the i-th trainable tensor of the graph.
func (sg *stepGraph) grad(i int) ([]float32, error) {
	v, err := sg.prog.Value(sg.Grads[i])
	if err != nil || v == nil {
		return nil, fmt.Errorf("gradient of %v has no value: %v", sg.Grads[i].Name(), err)
	}
	d, ok := v.Data().([]float32)
	if !ok {
		return nil, fmt.Errorf("gradient of type %T, want []float32", v.Data())
	}
	return d, nil
}

// graphCache keeps compiled graphs by shape (least recently used dropped).
// Programs hold no buffers: every graph runs on the cache's one executor,
// whose arena grows to the largest plan in use.
type graphCache struct {
	max    int
	graphs map[model.BatchShape]*stepGraph
	clock  int
	builds int
	exec   *kernels.Executor
	// kernels are the executor's options (the model's, Magma.Kernels).
	kernels kernels.Options

	largest string        // the shape with the largest plan, and its plan
	arena   int64         // its arena bytes
	compile time.Duration // building and compiling graphs, in total
}

func (c *graphCache) get(key model.BatchShape, build func() (*stepGraph, error)) (*stepGraph, error) {
	c.clock++
	if g, ok := c.graphs[key]; ok {
		g.lastUse = c.clock
		return g, nil
	}
	if c.graphs == nil {
		c.graphs = map[model.BatchShape]*stepGraph{}
	}
	if len(c.graphs) >= c.max {
		var oldest *stepGraph
		for _, g := range c.graphs {
			if oldest == nil || g.lastUse < oldest.lastUse {
				oldest = g
			}
		}
		delete(c.graphs, oldest.key)
	}
	t0 := time.Now()
	g, err := build()
	if err != nil {
		return nil, err
	}
	c.compile += time.Since(t0)
	if a := g.prog.ArenaBytes(); a > c.arena {
		c.arena, c.largest = a, fmt.Sprintf("%v: %v", key, g.prog.Stats())
	}
	c.builds++
	g.lastUse = c.clock
	c.graphs[key] = g
	return g, nil
}

// executor is the cache's executor (created on first use).
func (c *graphCache) executor() (*kernels.Executor, error) {
	if c.exec == nil {
		e, err := kernels.NewExecutorWith(c.kernels)
		if err != nil {
			return nil, err
		}
		c.exec = e
	}
	return c.exec, nil
}

func (c *graphCache) close() {
	c.graphs = nil
	if c.exec != nil {
		c.exec.Release()
	}
}
