package model

import (
	"fmt"

	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/llm"
	"github.com/magma-go/magma/vision"
	G "gorgonia.org/gorgonia"
)

// IgnoreIndex marks unsupervised label positions (PyTorch's ignore_index).
const IgnoreIndex = -100

// LossGraph adds one sample's language-modelling loss to b's graph:
//
//	loss = mean over supervised t of −log softmax(logits[t])[target[t]]
//
// where labels are aligned with ids as in Hugging Face (the shift happens
// here: position t predicts the label of t+1), image positions are never
// supervised, and label IgnoreIndex skips a position.
func (m *Magma) LossGraph(b *kernels.Builder, ids, labels []int, images []*vision.Pixels) (*G.Node, error) {
	if len(labels) != len(ids) {
		return nil, fmt.Errorf("loss: %d labels for %d ids", len(labels), len(ids))
	}
	e, err := m.embedGraph(b, ids, images)
	if err != nil {
		return nil, err
	}
	// Expand labels like the ids: an image token becomes its feature rows, all unsupervised.
	h := m.featureGrid()
	expanded := make([]int, 0, e.length)
	k := 0
	for i, id := range ids {
		if id == m.Config.ImageTokenIndex {
			n := ImageTokens(images[k].Rows, images[k].Cols, h, h)
			for j := 0; j < n; j++ {
				expanded = append(expanded, IgnoreIndex)
			}
			k++
			continue
		}
		expanded = append(expanded, labels[i])
	}
	targets := make([]int, e.length)
	for t := range targets {
		targets[t] = IgnoreIndex
		if t+1 < e.length {
			targets[t] = expanded[t+1]
		}
	}
	dt := m.Projector.RowSeparator.Dtype()
	pos := make([]int, e.length)
	for i := range pos {
		pos[i] = i
	}
	lm := b.In("language_model")
	hidden := m.LM.Forward(lm, e.seq, b.Input("positions", indexTensor(pos, dt)), llm.ForwardOptions{Batch: 1, Seq: e.length})
	loss := b.CrossEntropy(m.LM.Logits(lm, hidden), b.Input("targets", indexTensor(targets, dt)), IgnoreIndex)
	return loss, b.Err()
}
