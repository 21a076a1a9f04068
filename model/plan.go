package model

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/nn"
)

// PlanInfo is the execution plan of one batch shape, known before anything
// runs: what `magma info --plan` prints.
type PlanInfo struct {
	Shape BatchShape `json:"shape"`
	// Mode is "forward" (the decoder's hidden states of a batch: prefill)
	// or "training" (loss and the gradient of every parameter), with
	// "+recompute" when activations are recomputed in the backward pass.
	Mode       string `json:"mode"`
	ArenaBytes int64  `json:"arena_bytes"`
	// PeakLiveBytes is the largest sum of live values (ArenaBytes minus
	// fragmentation); KeepAllBytes what keeping every value would take.
	PeakLiveBytes int64 `json:"peak_live_bytes"`
	KeepAllBytes  int64 `json:"keep_all_bytes"`
	// OutputBytes is the part of the arena that holds the results read
	// after the run: the hidden states, or the loss and every gradient.
	OutputBytes int64  `json:"output_bytes"`
	Ops         int    `json:"ops"`
	Summary     string `json:"summary"`
}

// PlanMemory compiles the program of a batch of shape s for cfg without
// allocating or reading any weight (the parameters are placeholders) and
// reports its activation arena: the memory a step of that shape needs
// besides the weights (and, for training, the optimizer state).
func PlanMemory(cfg *Config, s BatchShape, training, recompute bool) (*PlanInfo, error) {
	if s.B <= 0 || s.T <= 0 || s.Crops < 0 {
		return nil, fmt.Errorf("plan: batch %v: B and T must be positive, crops >= 0", s)
	}
	if s.S > s.B*s.T {
		return nil, fmt.Errorf("plan: batch %v: %d supervised rows, but the batch has only %d positions", s, s.S, s.B*s.T)
	}
	if s.S <= 0 {
		s.S = s.B * s.T // every position supervised
	}
	if recompute && !training {
		return nil, fmt.Errorf("plan: activation recomputation applies to training only")
	}
	m, err := newForLoad(cfg)
	if err != nil {
		return nil, err
	}
	names := nn.ParamNames(m, "")
	var g *G.ExprGraph
	var outputs G.Nodes
	mode := "forward"
	if training {
		mode = "training"
		if recompute {
			mode += "+recompute"
		}
		trainable := map[*tensor.Dense]bool{}
		for t := range names {
			trainable[t] = true
		}
		gr, err := m.BuildGradients(s, names, trainable)
		if err != nil {
			return nil, err
		}
		g, outputs = gr.Graph, append(G.Nodes{gr.Loss}, gr.Grads...)
	} else {
		b := kernels.NewBuilder(names)
		h := m.Forward(b, NewBatch(s, tensor.Float32))
		if err := b.Err(); err != nil {
			return nil, err
		}
		g, outputs = b.G, G.Nodes{h}
	}
	p, err := kernels.Compile(g, kernels.CompileOptions{Name: mode + " " + s.String(), Outputs: outputs, Recompute: recompute})
	if err != nil {
		return nil, err
	}
	st := p.Stats()
	return &PlanInfo{Shape: s, Mode: mode, ArenaBytes: st.ArenaBytes, PeakLiveBytes: st.PeakLive,
		KeepAllBytes: st.KeepAll, OutputBytes: st.OutputBytes, Ops: st.Steps, Summary: st.String()}, nil
}
