package model

import (
	"fmt"

	G "gorgonia.org/gorgonia"

	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/vision/imaging"
)

// LossGraph adds one sample's language-modelling loss to b's graph, a batch
// of one (see Loss):
//
//	loss = mean over supervised t of −log softmax(logits[t])[target[t]]
//
// where labels are aligned with ids as in Hugging Face (the shift happens
// in the loss: position t predicts the label of t+1), image positions are
// never supervised, and label tokenizer.IgnoreIndex skips a position.
func (m *Magma) LossGraph(b *kernels.Builder, ids, labels []int, images []*imaging.Pixels) (*G.Node, error) {
	if len(labels) != len(ids) {
		return nil, fmt.Errorf("loss: %d labels for %d ids", len(labels), len(ids))
	}
	seq := []Sequence{{IDs: ids, Labels: labels, Images: images}}
	plan, err := m.PlanBatch(seq, 1, 0)
	if err != nil {
		return nil, fmt.Errorf("loss: %w", err)
	}
	in := NewBatch(plan.Shape, kernels.ComputeDtype(m.Projector.RowSeparator.Dtype()))
	m.Fill(in, seq)
	loss := m.Loss(b, in)
	return loss, b.Err()
}
