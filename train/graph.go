package train

import (
	"fmt"
	"time"

	"github.com/magma-go/magma/data"
	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/llm"
	"github.com/magma-go/magma/model"
	"github.com/magma-go/magma/vision"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// shapeKey is what a compiled training graph depends on. Everything else
// about a batch (token ids, where images sit in each sequence, how crops are
// stitched, the labels) is data fed into the graph's index inputs.
type shapeKey struct {
	B, T  int // samples, padded sequence length (a multiple of the bucket)
	Crops int // image crops in the whole batch (all images share one trunk pass)
	S     int // supervised rows fed to lm_head (a multiple of the bucket, <= B*T)
}

func (k shapeKey) String() string {
	return fmt.Sprintf("B=%d T=%d crops=%d supervised=%d", k.B, k.T, k.Crops, k.S)
}

// stepGraph is a compiled forward+backward graph for one shapeKey.
//
// The batch's B sequences are right-padded to T and laid out as B·T rows.
// All crops of all images go through the ConvNeXt trunk and the projector as
// one batch of N crops; the spliced decoder input is a single gather from
//
//	[ text embeddings of the B·T padded ids ; projected crop features (N·h·w rows) ; row separator ]
//
// with a host-computed index (text rows, stitched image rows with separators),
// so neither the image placement nor the anyres grid of each image is part
// of the graph. Positions restart at 0 for each sequence; causal attention
// keeps the trailing pads invisible to real tokens, and pad targets are
// IgnoreIndex, so padding changes nothing but cost.
//
// Only supervised positions reach lm_head: their hidden rows are gathered
// (S rows, padded with ignored rows up to a bucket multiple) before the
// [S, V] logits and the cross-entropy, so prompt and image positions cost
// nothing in the vocabulary projection, usually the largest matrix product
// of a step with a 128k vocabulary.
type stepGraph struct {
	key     shapeKey
	prog    *kernels.Program
	loss    *G.Node
	inputs  []*G.Node
	values  []*tensor.Dense // host buffers, aligned with inputs (filled, then Let)
	params  []*tensor.Dense // trainable tensors present in this graph
	grads   G.Nodes         // aligned with params
	ids     []float32
	splice  []float32
	targets []float32
	rowsIdx []float32 // hidden row of each supervised slot
	pixels  []float32
	lastUse int
}

func zeros(shape ...int) *tensor.Dense {
	return tensor.New(tensor.WithShape(shape...), tensor.Of(tensor.Float32))
}

// buildGraph compiles the graph for key; trainable selects the parameter
// tensors to differentiate.
func buildGraph(m *model.Magma, names map[*tensor.Dense]string, key shapeKey, trainable map[*tensor.Dense]bool) (*stepGraph, error) {
	cfg := m.Config
	D := cfg.Text.HiddenSize
	rows := key.B * key.T
	b := kernels.NewBuilder(names)
	sg := &stepGraph{key: key}
	input := func(name string, t *tensor.Dense) *G.Node {
		n := b.Input(name, t)
		sg.inputs = append(sg.inputs, n)
		sg.values = append(sg.values, t)
		return n
	}
	idsT := zeros(rows)
	sg.ids = idsT.Data().([]float32)
	emb, err := m.LM.Embed(b, input("input_ids", idsT))
	if err != nil {
		return nil, err
	}
	seq := emb
	if key.Crops > 0 {
		base := cfg.Vision.ImageSize
		pxT := zeros(key.Crops*base*base, 3)
		sg.pixels = pxT.Data().([]float32)
		feats, _, err := m.Vision.Forward(b, input("pixel_values", pxT), kernels.Grid{N: key.Crops, H: base, W: base})
		if err != nil {
			return nil, err
		}
		proj, err := m.Projector.Forward(b, feats)
		if err != nil {
			return nil, err
		}
		sep, err := G.Reshape(b.Param(m.Projector.RowSeparator), tensor.Shape{1, D})
		if err != nil {
			return nil, err
		}
		all, err := G.Concat(0, emb, proj, sep)
		if err != nil {
			return nil, err
		}
		spT := zeros(rows)
		sg.splice = spT.Data().([]float32)
		if seq, err = kernels.Gather(all, input("splice", spT)); err != nil {
			return nil, fmt.Errorf("splice: %w", err)
		}
	}
	posT := zeros(rows)
	pos := posT.Data().([]float32)
	for i := range pos {
		pos[i] = float32(i % key.T)
	}
	hidden, err := m.LM.Forward(b, seq, input("positions", posT), llm.ForwardOptions{Batch: key.B, Seq: key.T})
	if err != nil {
		return nil, err
	}
	riT := zeros(key.S)
	sg.rowsIdx = riT.Data().([]float32)
	picked, err := kernels.Gather(hidden, input("supervised_rows", riT))
	if err != nil {
		return nil, fmt.Errorf("supervised rows: %w", err)
	}
	logits, err := m.LM.Logits(b, picked)
	if err != nil {
		return nil, err
	}
	tgT := zeros(key.S)
	sg.targets = tgT.Data().([]float32)
	if sg.loss, err = kernels.CrossEntropy(logits, input("targets", tgT), data.IgnoreIndex); err != nil {
		return nil, err
	}
	var wrt G.Nodes
	for _, n := range b.Params() {
		t := n.Value().(*tensor.Dense)
		if trainable[t] {
			wrt = append(wrt, n)
			sg.params = append(sg.params, t)
		}
	}
	if len(wrt) == 0 {
		return nil, fmt.Errorf("no trainable parameter takes part in a batch of shape %v", key)
	}
	if sg.grads, err = G.Grad(sg.loss, wrt...); err != nil {
		return nil, fmt.Errorf("gradient graph: %w", err)
	}
	sg.prog, err = kernels.Compile(b.G, kernels.CompileOptions{Name: "training step " + key.String(), Outputs: append(G.Nodes{sg.loss}, sg.grads...)})
	if err != nil {
		return nil, err
	}
	return sg, nil
}

// layout is a batch turned into graph inputs.
type layout struct {
	key     shapeKey
	lengths []int // decoder length of each sample (images expanded)
	tokens  int   // real (unpadded) positions
	targets int   // supervised positions
}

// plan computes the shape of a batch: every sample's expanded length, the
// bucketed T and the crop count. Errors name the sample's source and index.
func plan(m *model.Magma, batch data.Batch, bucket, maxLen int) (layout, error) {
	var lay layout
	if len(batch.Samples) == 0 {
		return lay, fmt.Errorf("empty batch")
	}
	longest := 0
	for _, s := range batch.Samples {
		where := fmt.Sprintf("sample %s#%d", s.Source, s.Index)
		if len(s.IDs) == 0 {
			return lay, fmt.Errorf("%s: no tokens", where)
		}
		if len(s.Labels) != len(s.IDs) {
			return lay, fmt.Errorf("%s: %d labels for %d ids", where, len(s.Labels), len(s.IDs))
		}
		n, err := m.SequenceLength(s.IDs, s.Images)
		if err != nil {
			return lay, fmt.Errorf("%s: %w", where, err)
		}
		if n > maxLen {
			return lay, fmt.Errorf("%s: %d positions (images expanded) exceed max_seq_len %d", where, n, maxLen)
		}
		for k, px := range s.Images {
			if px == nil || px.Base != m.Config.Vision.ImageSize || len(px.Data) != px.NumCrops()*px.Base*px.Base*3 {
				return lay, fmt.Errorf("%s: image %d is not preprocessed for %d px crops", where, k, m.Config.Vision.ImageSize)
			}
			lay.key.Crops += px.NumCrops()
		}
		for i, id := range s.IDs {
			if id < 0 || id >= m.Config.Text.VocabSize {
				return lay, fmt.Errorf("%s: token %d at index %d is outside the vocabulary [0, %d)", where, id, i, m.Config.Text.VocabSize)
			}
			if l := s.Labels[i]; l != data.IgnoreIndex && (l < 0 || l >= m.Config.Text.VocabSize) {
				return lay, fmt.Errorf("%s: label %d at index %d is outside the vocabulary", where, l, i)
			}
		}
		sup := 0
		for i := 1; i < len(s.Labels); i++ {
			if s.Labels[i] != data.IgnoreIndex {
				sup++
			}
		}
		lay.targets += sup
		lay.lengths = append(lay.lengths, n)
		lay.tokens += n
		longest = max(longest, n)
	}
	lay.key.B = len(batch.Samples)
	lay.key.T = min(bucketUp(longest, bucket), max(maxLen, longest))
	lay.key.S = min(bucketUp(max(1, lay.targets), bucket), lay.key.B*lay.key.T)
	lay.key.Crops = bucketUp(lay.key.Crops, 1)
	return lay, nil
}

// bucketUp rounds n up to unit·2^k (0 stays 0). Padded lengths, supervised
// rows and crop counts take few distinct values this way (a compiled
// program per combination), at the price of at most 2x padding; a
// multiple-of-unit rounding gave the default pretrain run 98 shapes.
func bucketUp(n, unit int) int {
	if n <= 0 {
		return 0
	}
	b := unit
	for b < n {
		b *= 2
	}
	return b
}

// fill writes a batch into the graph's input buffers and returns the number
// of supervised target positions.
func (sg *stepGraph) fill(m *model.Magma, batch data.Batch, lay layout) int {
	T, rows := sg.key.T, sg.key.B*sg.key.T
	h := m.Config.Vision.ImageSize / vision.FeatureStride
	featRows := sg.key.Crops * h * h
	sepRow := rows + featRows
	padID := float32(0)
	if p := m.Config.Text.PadTokenID; p != nil && *p >= 0 && *p < m.Config.Text.VocabSize {
		padID = float32(*p)
	}
	cropOff, pxOff := 0, 0
	supervised := 0
	expanded := make([]int, 0, T)
	for i, s := range batch.Samples {
		r0 := i * T
		expanded = expanded[:0]
		pos, k := 0, 0
		for j, id := range s.IDs {
			if id != m.Config.ImageTokenIndex {
				sg.ids[r0+pos] = float32(id)
				if sg.splice != nil {
					sg.splice[r0+pos] = float32(r0 + pos)
				}
				expanded = append(expanded, s.Labels[j])
				pos++
				continue
			}
			px := s.Images[k]
			for _, ix := range model.StitchIndex(px.Rows, px.Cols, h, h, -1) {
				src := sepRow
				if ix >= 0 {
					src = rows + cropOff*h*h + ix
				}
				sg.ids[r0+pos] = float32(id)
				sg.splice[r0+pos] = float32(src)
				expanded = append(expanded, data.IgnoreIndex)
				pos++
			}
			copy(sg.pixels[pxOff:], px.Data)
			pxOff += len(px.Data)
			cropOff += px.NumCrops()
			k++
		}
		for t := pos; t < T; t++ {
			sg.ids[r0+t] = padID
			if sg.splice != nil {
				sg.splice[r0+t] = float32(r0 + t)
			}
		}
		for t := 0; t+1 < len(expanded); t++ {
			if tg := expanded[t+1]; tg != data.IgnoreIndex {
				sg.rowsIdx[supervised] = float32(r0 + t)
				sg.targets[supervised] = float32(tg)
				supervised++
			}
		}
	}
	if sg.pixels != nil {
		clear(sg.pixels[pxOff:]) // crops padding the count to its bucket: never spliced
	}
	for j := supervised; j < len(sg.targets); j++ {
		sg.rowsIdx[j], sg.targets[j] = 0, data.IgnoreIndex
	}
	return supervised
}

// run executes forward and backward on the filled inputs on exec; the
// gradient values stay valid until exec runs again.
func (sg *stepGraph) run(exec *kernels.Executor) (float64, error) {
	for i, n := range sg.inputs {
		if err := G.Let(n, sg.values[i]); err != nil {
			return 0, fmt.Errorf("input %s: %w", n.Name(), err)
		}
	}
	if err := exec.Run(sg.prog, nil); err != nil {
		return 0, err
	}
	lv, err := sg.prog.Value(sg.loss)
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
	v, err := sg.prog.Value(sg.grads[i])
	if err != nil || v == nil {
		return nil, fmt.Errorf("gradient of %v has no value: %v", sg.grads[i].Name(), err)
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
	graphs map[shapeKey]*stepGraph
	clock  int
	builds int
	exec   *kernels.Executor

	largest string        // the shape with the largest plan, and its plan
	arena   int64         // its arena bytes
	compile time.Duration // building and compiling graphs, in total
}

func (c *graphCache) get(key shapeKey, build func() (*stepGraph, error)) (*stepGraph, error) {
	c.clock++
	if g, ok := c.graphs[key]; ok {
		g.lastUse = c.clock
		return g, nil
	}
	if c.graphs == nil {
		c.graphs = map[shapeKey]*stepGraph{}
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
func (c *graphCache) executor() *kernels.Executor {
	if c.exec == nil {
		c.exec = kernels.NewExecutor()
	}
	return c.exec
}

func (c *graphCache) close() {
	c.graphs = nil
	if c.exec != nil {
		c.exec.Release()
	}
}
