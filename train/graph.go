package train

import (
	"fmt"

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
	vm      G.VM
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
	lm := b.In("language_model")
	emb := m.LM.Embed(lm, input("input_ids", idsT))
	seq := emb
	if key.Crops > 0 {
		base := cfg.Vision.ImageSize
		pxT := zeros(key.Crops*base*base, 3)
		sg.pixels = pxT.Data().([]float32)
		feats, _ := m.Vision.Forward(b.In("vision_tower.clip_vision_model.trunk"), input("pixel_values", pxT), kernels.Grid{N: key.Crops, H: base, W: base})
		bp := b.In("multi_modal_projector")
		proj := m.Projector.Forward(bp, feats)
		sep := bp.Reshape(bp.In("row_seperator").Param(m.Projector.RowSeparator), tensor.Shape{1, D})
		spT := zeros(rows)
		sg.splice = spT.Data().([]float32)
		seq = b.In("splice").Gather(b.Concat(0, emb, proj, sep), input("splice", spT))
	}
	posT := zeros(rows)
	pos := posT.Data().([]float32)
	for i := range pos {
		pos[i] = float32(i % key.T)
	}
	hidden := m.LM.Forward(lm, seq, input("positions", posT), llm.ForwardOptions{Batch: key.B, Seq: key.T})
	riT := zeros(key.S)
	sg.rowsIdx = riT.Data().([]float32)
	picked := b.In("supervised_rows").Gather(hidden, input("supervised_rows", riT))
	tgT := zeros(key.S)
	sg.targets = tgT.Data().([]float32)
	sg.loss = b.CrossEntropy(m.LM.Logits(lm, picked), input("targets", tgT), data.IgnoreIndex)
	if err := b.Err(); err != nil {
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
	var err error
	if sg.grads, err = G.Grad(sg.loss, wrt...); err != nil {
		return nil, fmt.Errorf("gradient graph: %w", err)
	}
	sg.vm = G.NewTapeMachine(b.G)
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
	lay.key.T = min((longest+bucket-1)/bucket*bucket, max(maxLen, longest))
	lay.key.S = min(max(1, (lay.targets+bucket-1)/bucket*bucket), lay.key.B*lay.key.T)
	return lay, nil
}

// checkLabels refuses labels that generation could never produce: ids the
// tokenizer has no token for (allowed nil: no check).
func checkLabels(batch data.Batch, allowed []bool) error {
	if allowed == nil {
		return nil
	}
	for j, s := range batch.Samples {
		for i, l := range s.Labels {
			if l != data.IgnoreIndex && (l < 0 || l >= len(allowed) || !allowed[l]) {
				return fmt.Errorf("sample %d: label %d at index %d has no token in the tokenizer (generation masks such ids)", j, l, i)
			}
		}
	}
	return nil
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
	for j := supervised; j < len(sg.targets); j++ {
		sg.rowsIdx[j], sg.targets[j] = 0, data.IgnoreIndex
	}
	return supervised
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
	switch v := sg.loss.Value().Data().(type) {
	case float32:
		return float64(v), nil
	case float64:
		return v, nil
	case []float32:
		return float64(v[0]), nil
	}
	return 0, fmt.Errorf("loss value of type %T", sg.loss.Value().Data())
}

// grad returns the gradient data of the i-th trainable tensor of the graph.
func (sg *stepGraph) grad(i int) ([]float32, error) {
	v := sg.grads[i].Value()
	if v == nil {
		return nil, fmt.Errorf("gradient of %v has no value", sg.grads[i].Name())
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
	graphs map[shapeKey]*stepGraph
	clock  int
	builds int
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
