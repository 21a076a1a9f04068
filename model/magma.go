package model

import (
	"fmt"

	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/llm"
	"github.com/magma-go/magma/vision"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Magma is the whole model: ConvNeXt trunk, projector and Llama decoder, with
// the parameter names of the published microsoft/Magma-8B checkpoint.
type Magma struct {
	Config    *Config          `weights:"-"`
	Vision    *vision.ConvNeXt `weights:"vision_tower.clip_vision_model.trunk"`
	Projector *Projector       `weights:"multi_modal_projector"`
	LM        *llm.Model       `weights:"language_model"`
}

// New allocates a zero-initialised model for cfg, after checking that its
// weights fit in the memory available.
func New(cfg *Config) (*Magma, error) {
	if err := CheckMemory(cfg, 1, fmt.Sprintf("a model of hidden size %d with %d layers", cfg.Text.HiddenSize, cfg.Text.NumHiddenLayers)); err != nil {
		return nil, err
	}
	v, err := vision.NewConvNeXt(cfg.Vision)
	if err != nil {
		return nil, err
	}
	lm, err := llm.New(cfg.Text)
	if err != nil {
		return nil, err
	}
	return &Magma{
		Config:    cfg,
		Vision:    v,
		Projector: NewProjector(cfg.Vision.Dims[3], cfg.Text.HiddenSize),
		LM:        lm,
	}, nil
}

// Embedded is the result of EmbedSequence: the spliced input embeddings and,
// per image, the intermediate tensors (kept for tests and debugging).
type Embedded struct {
	Embeds         *tensor.Dense   // [L, D]: the sequence fed to the decoder
	VisionFeatures []*tensor.Dense // per image [crops*h*w, C], channels-last
	ImageFeatures  []*tensor.Dense // per image [rows*h*(cols*w+1), D]
	Length         int
}

// featureGrid is the feature map size of one crop (stride 32).
func (m *Magma) featureGrid() int { return m.Config.Vision.ImageSize / 32 }

// SequenceLength is the decoder length of ids once every image token is
// expanded to its image's features.
func (m *Magma) SequenceLength(ids []int, images []*vision.Pixels) (int, error) {
	n, k := 0, 0
	h := m.featureGrid()
	for _, id := range ids {
		if id != m.Config.ImageTokenIndex {
			n++
			continue
		}
		if k >= len(images) {
			return 0, fmt.Errorf("prompt has more %d image tokens than the %d images given", m.Config.ImageTokenIndex, len(images))
		}
		n += ImageTokens(images[k].Rows, images[k].Cols, h, h)
		k++
	}
	if k != len(images) {
		return 0, fmt.Errorf("prompt has %d image tokens (id %d) but %d images were given", k, m.Config.ImageTokenIndex, len(images))
	}
	return n, nil
}

// EmbedSequence builds and runs the embedding graph: each image goes through
// the ConvNeXt trunk and the projector, is stitched with row separators, and
// replaces its image token in the embedded prompt.
func (m *Magma) EmbedSequence(ids []int, images []*vision.Pixels) (*Embedded, error) {
	b := kernels.NewBuilder(Names(m))
	g, err := m.embedGraph(b, ids, images)
	if err != nil {
		return nil, err
	}
	outs := append(append(G.Nodes{g.seq}, g.vision...), g.images...)
	vals, err := kernels.RunGraph(b.G, fmt.Sprintf("embed L=%d images=%d", g.length, len(images)), outs...)
	if err != nil {
		return nil, fmt.Errorf("embedding graph: %w", err)
	}
	out := &Embedded{Embeds: vals[0].(*tensor.Dense), Length: g.length}
	for k := range images {
		out.VisionFeatures = append(out.VisionFeatures, vals[1+k].(*tensor.Dense))
		out.ImageFeatures = append(out.ImageFeatures, vals[1+len(images)+k].(*tensor.Dense))
	}
	return out, nil
}

// embedNodes are the nodes of an embedding graph.
type embedNodes struct {
	seq            *G.Node   // [L, D] spliced sequence
	vision, images []*G.Node // per image: trunk output, stitched projector output
	length         int
}

// embedGraph adds the multimodal embedding of one prompt to b's graph. The
// graph's float type follows the parameters (float32, or float64 in
// gradient checks).
func (m *Magma) embedGraph(b *kernels.Builder, ids []int, images []*vision.Pixels) (*embedNodes, error) {
	total, err := m.SequenceLength(ids, images)
	if err != nil {
		return nil, err
	}
	vocab := m.Config.Text.VocabSize
	for i, id := range ids {
		if id < 0 || id >= vocab {
			return nil, fmt.Errorf("prompt token %d at index %d is outside the vocabulary [0, %d)", id, i, vocab)
		}
	}
	dt := m.Projector.RowSeparator.Dtype()
	out := &embedNodes{length: total, vision: make([]*G.Node, len(images)), images: make([]*G.Node, len(images))}
	h := m.featureGrid()
	D := m.Config.Text.HiddenSize
	for k, px := range images {
		if px.Base != m.Config.Vision.ImageSize {
			return nil, fmt.Errorf("image %d was preprocessed for %d px crops, model expects %d", k, px.Base, m.Config.Vision.ImageSize)
		}
		crops := px.Rows * px.Cols
		in := b.Input(fmt.Sprintf("pixels_%d", k), asDType(tensor.New(tensor.WithShape(crops*px.Base*px.Base, 3), tensor.WithBacking(px.Data)), dt))
		feats, _, err := m.Vision.Forward(b, in, kernels.Grid{N: crops, H: px.Base, W: px.Base})
		if err != nil {
			return nil, fmt.Errorf("image %d: vision tower: %w", k, err)
		}
		out.vision[k] = feats
		proj, err := m.Projector.Forward(b, feats)
		if err != nil {
			return nil, fmt.Errorf("image %d: %w", k, err)
		}
		sep, err := G.Reshape(b.Param(m.Projector.RowSeparator), tensor.Shape{1, D})
		if err != nil {
			return nil, err
		}
		withSep, err := G.Concat(0, proj, sep)
		if err != nil {
			return nil, err
		}
		idx := StitchIndex(px.Rows, px.Cols, h, h, crops*h*h)
		stitched, err := kernels.Gather(withSep, b.Input(fmt.Sprintf("stitch_%d", k), indexTensor(idx, dt)))
		if err != nil {
			return nil, fmt.Errorf("image %d: stitch: %w", k, err)
		}
		out.images[k] = stitched
	}
	// Embed every prompt id (image tokens too; the splice drops their rows).
	textEmb, err := m.LM.Embed(b, b.Input("input_ids", indexTensor(ids, dt)))
	if err != nil {
		return nil, err
	}
	out.seq = textEmb
	if len(images) == 0 {
		return out, nil
	}
	all, err := G.Concat(0, append([]*G.Node{textEmb}, out.images...)...)
	if err != nil {
		return nil, err
	}
	splice := make([]int, 0, total)
	offset, k := len(ids), 0
	for i, id := range ids {
		if id != m.Config.ImageTokenIndex {
			splice = append(splice, i)
			continue
		}
		n := ImageTokens(images[k].Rows, images[k].Cols, h, h)
		for j := 0; j < n; j++ {
			splice = append(splice, offset+j)
		}
		offset += n
		k++
	}
	if out.seq, err = kernels.Gather(all, b.Input("splice", indexTensor(splice, dt))); err != nil {
		return nil, err
	}
	return out, nil
}

// denseOf copies a node's value out of the graph (the machine may reuse it).
func denseOf(n *G.Node) *tensor.Dense {
	return n.Value().(*tensor.Dense).Clone().(*tensor.Dense)
}

// indexTensor encodes integer indices as a float vector of dtype dt, the
// form the Gather and CrossEntropy kernels take them in (exact below 2^24).
func indexTensor(idx []int, dt tensor.Dtype) *tensor.Dense {
	if dt == tensor.Float64 {
		f := make([]float64, len(idx))
		for i, v := range idx {
			f[i] = float64(v)
		}
		return tensor.New(tensor.WithShape(len(f)), tensor.WithBacking(f))
	}
	f := make([]float32, len(idx))
	for i, v := range idx {
		f[i] = float32(v)
	}
	return tensor.New(tensor.WithShape(len(f)), tensor.WithBacking(f))
}

// asDType returns t converted to dt (a copy) or t itself.
func asDType(t *tensor.Dense, dt tensor.Dtype) *tensor.Dense {
	if t.Dtype() == dt {
		return t
	}
	src := t.Data().([]float32)
	f := make([]float64, len(src))
	for i, v := range src {
		f[i] = float64(v)
	}
	return tensor.New(tensor.WithShape(t.Shape().Clone()...), tensor.WithBacking(f))
}
