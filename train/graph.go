package train

import (
	"errors"
	"fmt"
	"github.com/magma-go/magma/llm/tokenizer"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/magma-go/magma/data"
	"github.com/magma-go/magma/model"
)

// stepGraph is a compiled forward+backward graph for one batch shape (see
// model.Batch for the layout: the shape is all a graph depends on, so a run
// compiles a handful of graphs, not one per step).
type stepGraph struct {
	*model.Gradients
	key     model.BatchShape
	vm      G.VM
	inputs  []*G.Node
	values  []*tensor.Dense // host buffers, aligned with inputs (filled, then Let)
	lastUse int
}

// buildGraph compiles the graph for key; trainable selects the parameter
// tensors to differentiate.
func buildGraph(m *model.Magma, names map[*tensor.Dense]string, key model.BatchShape, trainable map[*tensor.Dense]bool) (*stepGraph, error) {
	g, err := m.BuildGradients(key, names, trainable)
	if err != nil {
		return nil, err
	}
	sg := &stepGraph{Gradients: g, key: key, vm: G.NewTapeMachine(g.Graph)}
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

// plan computes the shape of a batch; errors name the sample's source and index.
func plan(m *model.Magma, batch data.Batch, bucket, maxLen int) (model.Plan, error) {
	p, err := m.PlanBatch(sequences(batch), bucket, maxLen)
	var se *model.SequenceError
	if errors.As(err, &se) {
		s := batch.Samples[se.Index]
		return p, fmt.Errorf("sample %s#%d: %w", s.Source, s.Index, se.Err)
	}
	return p, err
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

// run executes forward and backward on the filled inputs; the gradient
// values stay valid until reset.
func (sg *stepGraph) run() (float64, error) {
	for i, n := range sg.inputs {
		if err := G.Let(n, sg.values[i]); err != nil {
			return 0, fmt.Errorf("input %s: %w", n.Name(), err)
		}
	}
	if err := sg.vm.RunAll(); err != nil {
		sg.vm.Reset()
		return 0, err
	}
	switch v := sg.Loss.Value().Data().(type) {
	case float32:
		return float64(v), nil
	case float64:
		return v, nil
	case []float32:
		return float64(v[0]), nil
	}
	return 0, fmt.Errorf("loss value of type %T", sg.Loss.Value().Data())
}

// grad returns the gradient data of the i-th trainable tensor of the graph.
func (sg *stepGraph) grad(i int) ([]float32, error) {
	v := sg.Grads[i].Value()
	if v == nil {
		return nil, fmt.Errorf("gradient of %v has no value", sg.Grads[i].Name())
	}
	d, ok := v.Data().([]float32)
	if !ok {
		return nil, fmt.Errorf("gradient of type %T, want []float32", v.Data())
	}
	return d, nil
}

// graphCache keeps compiled graphs by shape (least recently used dropped).
type graphCache struct {
	max    int
	graphs map[model.BatchShape]*stepGraph
	clock  int
	builds int
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
		oldest.vm.Close()
		delete(c.graphs, oldest.key)
	}
	g, err := build()
	if err != nil {
		return nil, err
	}
	c.builds++
	g.lastUse = c.clock
	c.graphs[key] = g
	return g, nil
}

func (c *graphCache) close() {
	for _, g := range c.graphs {
		g.vm.Close()
	}
	c.graphs = nil
}
