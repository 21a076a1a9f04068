package model

import (
	"errors"
	"fmt"
	"github.com/magma-go/magma/llm/tokenizer"

	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/llm"
	"github.com/magma-go/magma/nn"
	"github.com/magma-go/magma/vision"
	"github.com/magma-go/magma/vision/imaging"
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
	return newWith(cfg, nn.Zeros)
}

// newForLoad builds the model with placeholders for its parameters (shape
// only, no memory): a checkpoint binding replaces every one (Bind with
// BindOptions.Replace).
func newForLoad(cfg *Config) (m *Magma, err error) {
	defer func() {
		if r := recover(); r != nil { // kernels.Placeholder: address space exhausted
			m, err = nil, fmt.Errorf("model placeholders: %v", r)
		}
	}()
	return newWith(cfg, kernels.Placeholder)
}

func newWith(cfg *Config, alloc nn.Alloc) (*Magma, error) {
	v, err := vision.NewConvNeXtWith(cfg.Vision, alloc)
	if err != nil {
		return nil, err
	}
	lm, err := llm.NewWith(cfg.Text, tensor.Float32, alloc)
	if err != nil {
		return nil, err
	}
	return &Magma{
		Config:    cfg,
		Vision:    v,
		Projector: newProjector(alloc, cfg.Vision.Dims[3], cfg.Text.HiddenSize),
		LM:        lm,
	}, nil
}

// SetKernels sets the options every executor of the model runs with: its
// decoder's generators and batch decoders, the vision trunk's and the
// embedding's (--compute bf16; the tests' NaN-poison mode).
func (m *Magma) SetKernels(o kernels.Options) { m.LM.Kernels, m.Vision.Kernels = o, o }

// Kernels are the options the model's executors run with (SetKernels).
func (m *Magma) Kernels() kernels.Options { return m.LM.Kernels }

// Names of the checkpoint's parts, which are also the scopes of graph errors.
const (
	visionPrefix    = "vision_tower.clip_vision_model.trunk"
	projectorPrefix = "multi_modal_projector"
	lmPrefix        = "language_model"
)

// featureGrid is the feature map size of one crop.
func (m *Magma) featureGrid() int { return m.Config.Vision.ImageSize / vision.FeatureStride }

// SequenceLength is the decoder length of ids once every image token is
// expanded to its image's features.
func (m *Magma) SequenceLength(ids []int, images []*imaging.Pixels) (int, error) {
	n, k := 0, 0
	h := m.featureGrid()
	for _, id := range ids {
		if id != m.Config.ImageTokenIndex {
			n++
			continue
		}
		if k >= len(images) {
			return 0, fmt.Errorf("prompt has %d image tokens (id %d) but %d images were given", countID(ids, m.Config.ImageTokenIndex), m.Config.ImageTokenIndex, len(images))
		}
		if images[k] == nil {
			return 0, fmt.Errorf("image %d is nil", k)
		}
		n += ImageTokens(images[k].Rows, images[k].Cols, h, h)
		k++
	}
	if k != len(images) {
		return 0, fmt.Errorf("prompt has %d image tokens (id %d) but %d images were given", k, m.Config.ImageTokenIndex, len(images))
	}
	return n, nil
}

// countID is the number of times id occurs in ids.
func countID(ids []int, id int) int {
	n := 0
	for _, x := range ids {
		if x == id {
			n++
		}
	}
	return n
}

// The Magma composition, written once over a batch (see Batch): inference
// is a batch of one, training adds the loss (and the trainer the gradients).
// The graph's float type follows the parameters (float32, or float64 in
// gradient checks); errors are recorded in b (see kernels.Builder).

// Embed adds the decoder input of a batch to b's graph, [B·T, D]: every crop
// of every image goes through the ConvNeXt trunk and the projector in one
// pass, and one gather splices text embeddings, crop features and row
// separators into the sequences. It also returns the trunk's output
// [Crops·h·w, C] (nil without images).
func (m *Magma) Embed(b *kernels.Builder, in *Batch) (embeds, features *G.Node) {
	in.allocPixels(m.Config.Vision.ImageSize)
	text := m.LM.Embed(b.In(lmPrefix), in.input(b, "input_ids", in.IDs))
	if in.Shape.Crops == 0 {
		return text, nil
	}
	base := m.Config.Vision.ImageSize
	features, _ = m.Vision.Forward(b.In(visionPrefix), in.input(b, "pixel_values", in.Pixels), kernels.Grid{N: in.Shape.Crops, H: base, W: base})
	bp := b.In(projectorPrefix)
	proj := m.Projector.Forward(bp, features)
	sep := bp.Reshape(bp.In("row_seperator").Param(m.Projector.RowSeparator), tensor.Shape{1, m.Config.Text.HiddenSize})
	return b.In("splice").Gather(b.Concat(0, text, proj, sep), in.input(b, "splice", in.Splice)), features
}

// Forward adds the decoder's hidden states of a batch, [B·T, D] after the
// final norm, to b's graph.
func (m *Magma) Forward(b *kernels.Builder, in *Batch) *G.Node {
	embeds, _ := m.Embed(b, in)
	return m.LM.Forward(b.In(lmPrefix), embeds, in.input(b, "positions", in.Positions), llm.ForwardOptions{Batch: in.Shape.B, Seq: in.Shape.T})
}

// Loss adds the language-modelling loss of a batch to b's graph:
//
//	loss = mean over supervised rows r of −log softmax(lm_head(h_r))[target_r]
//
// Only the S supervised rows reach lm_head (the largest product of a step
// with a 128k vocabulary), gathered from the hidden states.
func (m *Magma) Loss(b *kernels.Builder, in *Batch) *G.Node {
	hidden := m.Forward(b, in)
	picked := b.In("supervised_rows").Gather(hidden, in.input(b, "supervised_rows", in.Rows))
	return b.CrossEntropy(m.LM.Logits(b.In(lmPrefix), picked), in.input(b, "targets", in.Targets), tokenizer.IgnoreIndex)
}

// input adds t as a named input of b's graph and remembers it (Inputs).
func (in *Batch) input(b *kernels.Builder, name string, t *tensor.Dense) *G.Node {
	n := b.Input(name, t)
	in.inputs = append(in.inputs, input{name, t})
	in.nodes = append(in.nodes, n)
	return n
}

// Inputs lists the input nodes of the graph built on the batch and their
// host tensors (aligned), for re-feeding them after Fill.
func (in *Batch) Inputs() ([]*G.Node, []*tensor.Dense) {
	ts := make([]*tensor.Dense, len(in.inputs))
	for i, x := range in.inputs {
		ts[i] = x.t
	}
	return append([]*G.Node(nil), in.nodes...), ts
}

// Embedded is the result of EmbedSequence: the spliced input embeddings and,
// per image, the intermediate tensors (kept for tests and debugging).
type Embedded struct {
	Embeds         *tensor.Dense   // [L, D]: the sequence fed to the decoder
	VisionFeatures []*tensor.Dense // per image [crops*h*w, C], channels-last
	ImageFeatures  []*tensor.Dense // per image [rows*h*(cols*w+1), D]
	Length         int
}

// EmbedSequence builds and runs the embedding graph of one prompt, a batch
// of one: each image goes through the ConvNeXt trunk and the projector, is
// stitched with row separators, and replaces its image token.
func (m *Magma) EmbedSequence(ids []int, images []*imaging.Pixels) (*Embedded, error) {
	seq := []Sequence{{IDs: ids, Images: images}}
	plan, err := m.PlanBatch(seq, 1, 0)
	if err != nil {
		return nil, fmt.Errorf("prompt: %w", errors.Unwrap(err))
	}
	in := NewBatch(plan.Shape, kernels.ComputeDtype(m.Projector.RowSeparator.Dtype()))
	m.Fill(in, seq)
	b := kernels.NewBuilder(nn.ParamNames(m, ""))
	embeds, features := m.Embed(b, in)
	if err := b.Err(); err != nil {
		return nil, fmt.Errorf("embedding graph: %w", err)
	}
	outs := G.Nodes{embeds}
	if features != nil {
		outs = append(outs, features)
	}
	vals, err := kernels.RunGraphWith(m.Kernels(), b.G, fmt.Sprintf("embed %v", plan.Shape), outs...)
	if err != nil {
		return nil, fmt.Errorf("embedding graph: %w", err)
	}
	embedsV := vals[0].(*tensor.Dense)
	var featuresV *tensor.Dense
	if features != nil {
		featuresV = vals[1].(*tensor.Dense)
	}
	out := &Embedded{Embeds: embedsV, Length: plan.Shape.T}
	// Per image: its crops' trunk features, and its stitched rows of the sequence.
	h := m.featureGrid()
	feat, pos, k := 0, 0, 0
	for _, id := range ids {
		if id != m.Config.ImageTokenIndex {
			pos++
			continue
		}
		px := images[k]
		n, f := ImageTokens(px.Rows, px.Cols, h, h), px.NumCrops()*h*h
		out.VisionFeatures = append(out.VisionFeatures, rowSlice(featuresV, feat, feat+f))
		out.ImageFeatures = append(out.ImageFeatures, rowSlice(embedsV, pos, pos+n))
		feat, pos, k = feat+f, pos+n, k+1
	}
	return out, nil
}

// rowSlice copies rows [lo, hi) of a 2-D tensor.
func rowSlice(v *tensor.Dense, lo, hi int) *tensor.Dense {
	cols := v.Shape()[1]
	switch d := v.Data().(type) {
	case []float64:
		return tensor.New(tensor.WithShape(hi-lo, cols), tensor.WithBacking(append([]float64(nil), d[lo*cols:hi*cols]...)))
	case []float32:
		return tensor.New(tensor.WithShape(hi-lo, cols), tensor.WithBacking(append([]float32(nil), d[lo*cols:hi*cols]...)))
	}
	return nil
}
