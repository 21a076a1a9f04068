package model

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/llm/tokenizer"
	"github.com/magma-go/magma/nn"
	"github.com/magma-go/magma/vision/imaging"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// toFloat64 turns every parameter of m into a float64 copy in place, for
// gradient checks (finite differences need float64 to be meaningful).
func toFloat64(t *testing.T, m *Magma) {
	t.Helper()
	ps, err := nn.Parameters(m, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		d := p.T
		src := d.Data().([]float32)
		f := make([]float64, len(src))
		for i, v := range src {
			f[i] = float64(v)
		}
		*d = *tensor.New(tensor.WithShape(d.Shape().Clone()...), tensor.WithBacking(f))
	}
}

func lossValue(t *testing.T, m *Magma, ids, labels []int, px []*imaging.Pixels) float64 {
	t.Helper()
	b := kernels.NewBuilder(nn.ParamNames(m, ""))
	loss, err := m.LossGraph(b, ids, labels, px)
	if err != nil {
		t.Fatal(err)
	}
	v, err := kernels.RunGraphWith(kernels.TestOptions(), b.G, "loss", loss)
	if err != nil {
		t.Fatal(err)
	}
	return v[0].Data().(float64)
}

// A whole tiny Magma step (ConvNeXt → projector → stitch → splice → Llama →
// cross-entropy) differentiated by Gorgonia agrees with central finite
// differences on parameters of every component.
func TestWholeModelGradient(t *testing.T) {
	ld, err := Load(parityDir)
	if err != nil {
		t.Fatal(err)
	}
	m := ld.Model
	c := readGolden(t)["wide"]
	px := preprocessFile(t, filepath.Join(parityDir, *c.Image), ld.Preprocessor)
	toFloat64(t, m)
	ids := append(append([]int(nil), c.PromptIDs...), 40, 41, 2)
	labels := make([]int, len(ids))
	for i := range labels {
		labels[i] = tokenizer.IgnoreIndex
		if i >= len(c.PromptIDs)-2 {
			labels[i] = ids[i]
		}
	}
	images := []*imaging.Pixels{px}

	b := kernels.NewBuilder(nn.ParamNames(m, ""))
	loss, err := m.LossGraph(b, ids, labels, images)
	if err != nil {
		t.Fatal(err)
	}
	checked := []string{
		"vision_tower.clip_vision_model.trunk.stem.0.weight",
		"vision_tower.clip_vision_model.trunk.stages.2.blocks.1.conv_dw.weight",
		"vision_tower.clip_vision_model.trunk.stages.3.blocks.0.gamma",
		"multi_modal_projector.proj.0.weight",
		"multi_modal_projector.row_seperator",
		"language_model.model.embed_tokens.weight",
		"language_model.model.layers.1.self_attn.k_proj.weight",
		"language_model.model.layers.0.mlp.down_proj.weight",
		"language_model.lm_head.weight",
	}
	byName := map[string]*tensor.Dense{}
	for _, p := range must(nn.Parameters(m, "")) {
		byName[p.Name] = p.T
	}
	var nodes G.Nodes
	for _, n := range checked {
		nodes = append(nodes, b.Param(byName[n]))
	}
	grads, err := G.Grad(loss, nodes...)
	if err != nil {
		t.Fatal(err)
	}
	vals, err := kernels.RunGraphWith(kernels.TestOptions(), b.G, "whole-model gradient", grads...)
	if err != nil {
		t.Fatal(err)
	}
	analytic := make([][]float64, len(grads))
	for i, v := range vals {
		analytic[i] = v.Data().([]float64)
	}

	const eps = 1e-6
	for i, name := range checked {
		data := byName[name].Data().([]float64)
		// Probe a few elements spread over the tensor; for the embedding, a used row.
		probes := []int{0, len(data) / 3, len(data) - 1}
		if name == "language_model.model.embed_tokens.weight" {
			D := m.Config.Text.HiddenSize
			probes = []int{10 * D, 10*D + 5, 41*D + 7}
		}
		var largest float64
		for _, j := range probes {
			orig := data[j]
			data[j] = orig + eps
			lp := lossValue(t, m, ids, labels, images)
			data[j] = orig - eps
			lm := lossValue(t, m, ids, labels, images)
			data[j] = orig
			num := (lp - lm) / (2 * eps)
			got := analytic[i][j]
			largest = math.Max(largest, math.Abs(num))
			if d := math.Abs(num - got); d > 1e-6+1e-4*math.Abs(num) {
				t.Errorf("%s[%d]: analytic %.8g numeric %.8g", name, j, got, num)
			}
		}
		if largest < 1e-9 {
			t.Errorf("%s: all probed gradients are zero; the check proves nothing", name)
		}
	}
}
