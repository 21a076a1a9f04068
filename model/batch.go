package model

import (
	"fmt"
	"github.com/magma-go/magma/llm/tokenizer"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/vision/imaging"
)

// Sequence is one sample as the Magma graph sees it: token ids with one
// image token per image, labels aligned with the ids (Hugging Face
// convention: the shift to next-token targets happens in the loss;
// tokenizer.IgnoreIndex where unsupervised; nil for inference), and the images,
// preprocessed, in the order of their image tokens.
type Sequence struct {
	IDs    []int
	Labels []int
	Images []*imaging.Pixels
}

// BatchShape is everything a Magma graph over a batch depends on. What else
// varies between batches (token ids, where the images sit, how each image's
// crops are stitched, which rows are supervised) is data in the batch's
// index inputs, so one compiled graph serves every batch of its shape.
type BatchShape struct {
	B, T  int // sequences, padded length (a multiple of the bucket)
	Crops int // image crops of the whole batch (one trunk pass for all)
	S     int // supervised rows fed to lm_head (a multiple of the bucket, <= B*T)
}

func (s BatchShape) String() string {
	return fmt.Sprintf("B=%d T=%d crops=%d supervised=%d", s.B, s.T, s.Crops, s.S)
}

// Plan is the shape of a batch and what the trainer reports about it.
type Plan struct {
	Shape   BatchShape
	Lengths []int // decoder length of each sequence (images expanded)
	Tokens  int   // real (unpadded) positions
	Targets int   // supervised positions
}

// SequenceError is an invalid sequence of a batch.
type SequenceError struct {
	Index int // position in the batch
	Err   error
}

func (e *SequenceError) Error() string { return fmt.Sprintf("sequence %d: %v", e.Index, e.Err) }
func (e *SequenceError) Unwrap() error { return e.Err }

// PlanBatch checks every sequence and computes the batch's shape: each
// sequence's expanded length, T (the longest, rounded up to a multiple of
// bucket, at most max(maxLen, longest)), the crop count and S (the
// supervised positions, rounded up likewise). Errors are *SequenceError.
func (m *Magma) PlanBatch(seqs []Sequence, bucket, maxLen int) (Plan, error) {
	var p Plan
	if len(seqs) == 0 {
		return p, fmt.Errorf("empty batch")
	}
	bucket = max(bucket, 1)
	longest := 0
	for i, s := range seqs {
		n, crops, sup, err := m.checkSequence(s, maxLen)
		if err != nil {
			return p, &SequenceError{Index: i, Err: err}
		}
		p.Shape.Crops += crops
		p.Targets += sup
		p.Lengths = append(p.Lengths, n)
		p.Tokens += n
		longest = max(longest, n)
	}
	p.Shape.B = len(seqs)
	p.Shape.T = min((longest+bucket-1)/bucket*bucket, max(maxLen, longest))
	p.Shape.S = min(max(1, (p.Targets+bucket-1)/bucket*bucket), p.Shape.B*p.Shape.T)
	return p, nil
}

// checkSequence validates one sequence and returns its expanded length, its
// crops and its supervised positions.
func (m *Magma) checkSequence(s Sequence, maxLen int) (n, crops, supervised int, err error) {
	if len(s.IDs) == 0 {
		return 0, 0, 0, fmt.Errorf("no tokens")
	}
	if s.Labels != nil && len(s.Labels) != len(s.IDs) {
		return 0, 0, 0, fmt.Errorf("%d labels for %d ids", len(s.Labels), len(s.IDs))
	}
	if n, err = m.SequenceLength(s.IDs, s.Images); err != nil {
		return 0, 0, 0, err
	}
	if maxLen > 0 && n > maxLen {
		return 0, 0, 0, fmt.Errorf("%d positions (images expanded) exceed max_seq_len %d", n, maxLen)
	}
	base := m.Config.Vision.ImageSize
	for k, px := range s.Images {
		if px == nil || px.Base != base || px.Rows <= 0 || px.Cols <= 0 || len(px.Data) != px.NumCrops()*px.Base*px.Base*3 {
			return 0, 0, 0, fmt.Errorf("image %d is not preprocessed for %d px crops", k, base)
		}
		crops += px.NumCrops()
	}
	vocab := m.Config.Text.VocabSize
	for i, id := range s.IDs {
		if id < 0 || id >= vocab {
			return 0, 0, 0, fmt.Errorf("token %d at index %d is outside the vocabulary [0, %d)", id, i, vocab)
		}
		if s.Labels == nil {
			continue
		}
		if l := s.Labels[i]; l != tokenizer.IgnoreIndex && (l < 0 || l >= vocab) {
			return 0, 0, 0, fmt.Errorf("label %d at index %d is outside the vocabulary", l, i)
		}
	}
	for i := 1; i < len(s.Labels); i++ {
		if s.Labels[i] != tokenizer.IgnoreIndex {
			supervised++
		}
	}
	return n, crops, supervised, nil
}

// Batch is a batch laid out as the inputs of a Magma graph: host tensors
// (float-coded indices, the parameters' float type) that a graph built on
// the batch reads, and that Fill rewrites for the next batch of the same
// shape. The B sequences are right-padded to T and laid out as B·T rows;
// the decoder input is one gather (Splice) from
//
//	[ text embeddings of the B·T ids ; projected crop features (Crops·h·w rows) ; row separator ]
//
// so neither where images sit nor their anyres grids are graph structure.
// Positions restart at 0 for each sequence; causal attention keeps the
// trailing pads invisible to real tokens. Only the S supervised rows (Rows)
// reach lm_head, with their next-token Targets (pads: tokenizer.IgnoreIndex).
type Batch struct {
	Shape                          BatchShape
	IDs, Positions, Splice, Pixels *tensor.Dense
	Rows, Targets                  *tensor.Dense

	dtype  tensor.Dtype
	inputs []input
	nodes  []*G.Node
}

// input is one graph input node of a batch and its host tensor.
type input struct {
	name string
	t    *tensor.Dense
}

// NewBatch allocates the inputs of a batch of shape s in dtype dt
// (tensor.Float64 for gradient checks, otherwise float32).
func NewBatch(s BatchShape, dt tensor.Dtype) *Batch {
	if dt != tensor.Float64 {
		dt = tensor.Float32
	}
	alloc := func(shape ...int) *tensor.Dense { return tensor.New(tensor.WithShape(shape...), tensor.Of(dt)) }
	rows := s.B * s.T
	in := &Batch{Shape: s, dtype: dt, IDs: alloc(rows), Positions: alloc(rows), Rows: alloc(max(s.S, 1)), Targets: alloc(max(s.S, 1))}
	if s.Crops > 0 {
		in.Splice = alloc(rows)
	}
	return in
}

// allocPixels allocates the pixel input once its crop size is known.
func (in *Batch) allocPixels(base int) {
	if in.Shape.Crops > 0 && in.Pixels == nil {
		in.Pixels = tensor.New(tensor.WithShape(in.Shape.Crops*base*base, 3), tensor.Of(in.dtype))
	}
}

// Fill writes seqs (planned to in.Shape by PlanBatch) into the batch and
// returns the number of supervised target positions.
func (m *Magma) Fill(in *Batch, seqs []Sequence) int {
	T, rows := in.Shape.T, in.Shape.B*in.Shape.T
	h := m.featureGrid()
	sepRow := rows + in.Shape.Crops*h*h
	padID := 0
	if p := m.Config.Text.PadTokenID; p != nil && *p >= 0 && *p < m.Config.Text.VocabSize {
		padID = *p
	}
	in.allocPixels(m.Config.Vision.ImageSize)
	ids, splice, pos := writer(in.IDs), writer(in.Splice), writer(in.Positions)
	rowIdx, targets := writer(in.Rows), writer(in.Targets)
	cropOff, pxOff := 0, 0
	supervised := 0
	expanded := make([]int, 0, T)
	for i, s := range seqs {
		r0 := i * T
		expanded = expanded[:0]
		p, k := 0, 0
		for j, id := range s.IDs {
			if id != m.Config.ImageTokenIndex {
				ids(r0+p, id)
				splice(r0+p, r0+p)
				expanded = append(expanded, labelAt(s.Labels, j))
				p++
				continue
			}
			px := s.Images[k]
			for _, ix := range StitchIndex(px.Rows, px.Cols, h, h, -1) {
				src := sepRow
				if ix >= 0 {
					src = rows + cropOff*h*h + ix
				}
				ids(r0+p, id)
				splice(r0+p, src)
				expanded = append(expanded, tokenizer.IgnoreIndex)
				p++
			}
			copyPixels(in.Pixels, pxOff, px.Data)
			pxOff += len(px.Data)
			cropOff += px.NumCrops()
			k++
		}
		for t := p; t < T; t++ {
			ids(r0+t, padID)
			splice(r0+t, r0+t)
		}
		for t := 0; t < T; t++ {
			pos(r0+t, t)
		}
		for t := 0; t+1 < len(expanded); t++ {
			if tg := expanded[t+1]; tg != tokenizer.IgnoreIndex && supervised < in.Shape.S {
				rowIdx(supervised, r0+t)
				targets(supervised, tg)
				supervised++
			}
		}
	}
	for j := supervised; j < in.Targets.Shape().TotalSize(); j++ {
		rowIdx(j, 0)
		targets(j, tokenizer.IgnoreIndex)
	}
	if in.Pixels != nil {
		clearFrom(in.Pixels, pxOff) // crops padding a bucketed crop count: never spliced
	}
	return supervised
}

func labelAt(labels []int, j int) int {
	if labels == nil {
		return tokenizer.IgnoreIndex
	}
	return labels[j]
}

// writer returns a setter of float-coded integers into t (a no-op for nil).
func writer(t *tensor.Dense) func(i, v int) {
	if t == nil {
		return func(int, int) {}
	}
	switch d := t.Data().(type) {
	case []float32:
		return func(i, v int) { d[i] = float32(v) }
	case []float64:
		return func(i, v int) { d[i] = float64(v) }
	}
	return func(int, int) {} // NewBatch allocates only float32 and float64
}

// clearFrom zeroes t's elements from off on.
func clearFrom(t *tensor.Dense, off int) {
	switch d := t.Data().(type) {
	case []float32:
		clear(d[off:])
	case []float64:
		clear(d[off:])
	}
}

// copyPixels copies float32 pixels into the pixel input at offset off.
func copyPixels(dst *tensor.Dense, off int, src []float32) {
	switch d := dst.Data().(type) {
	case []float32:
		copy(d[off:], src)
	case []float64:
		for i, v := range src {
			d[off+i] = float64(v)
		}
	}
}

// Gradients is the graph of a batch's loss with the symbolic gradients of
// the trainable parameters that take part in it.
type Gradients struct {
	Graph  *G.ExprGraph
	Batch  *Batch // the graph's inputs: Fill it, then re-feed Batch.Inputs
	Loss   *G.Node
	Params []*tensor.Dense // trainable tensors present in the graph, in first-use order
	Grads  G.Nodes         // aligned with Params
}

// BuildGradients builds the loss graph of a float32 batch of shape s (Loss)
// and differentiates it with respect to the trainable tensors; names are
// the parameters' node names (Names, plus any adapters).
func (m *Magma) BuildGradients(s BatchShape, names map[*tensor.Dense]string, trainable map[*tensor.Dense]bool) (*Gradients, error) {
	b := kernels.NewBuilder(names)
	g := &Gradients{Graph: b.G, Batch: NewBatch(s, tensor.Float32)}
	g.Loss = m.Loss(b, g.Batch)
	if err := b.Err(); err != nil {
		return nil, err
	}
	var wrt G.Nodes
	for _, n := range b.Params() {
		t := n.Value().(*tensor.Dense)
		if trainable[t] {
			wrt = append(wrt, n)
			g.Params = append(g.Params, t)
		}
	}
	if len(wrt) == 0 {
		return nil, fmt.Errorf("no trainable parameter takes part in a batch of shape %v", s)
	}
	if err := kernels.CheckTrainable(wrt); err != nil {
		return nil, err
	}
	var err error
	if g.Grads, err = G.Grad(g.Loss, wrt...); err != nil {
		return nil, fmt.Errorf("gradient graph: %w", err)
	}
	return g, nil
}
