package train

import (
	"fmt"
	"math"
	"runtime"
	"strings"
	"testing"

	"github.com/magma-go/magma/model"
	"github.com/magma-go/magma/nn"
)

// Hugging Face's schedules: linear warmup from 0 over ceil(ratio·total)
// updates, then constant or half-cosine to 0.
func TestSchedules(t *testing.T) {
	s := NewSchedule("cosine", 1e-3, 100, 0.05)
	if s.WarmupSteps != 5 {
		t.Fatalf("warmup %d, want ceil(0.05*100)=5", s.WarmupSteps)
	}
	s2 := NewSchedule("cosine", 1, 10, 0.11)
	if s2.WarmupSteps != 2 {
		t.Fatalf("warmup %d, want ceil(1.1)=2", s2.WarmupSteps)
	}
	want := map[int]float64{0: 0, 1: 2e-4, 4: 8e-4, 5: 1e-3, 100: 0,
		// half way through the decay: (52.5-5)/95 = 0.5
		52: 1e-3 * 0.5 * (1 + math.Cos(math.Pi*47/95.0))}
	for step, w := range want {
		if got := s.LR(step); math.Abs(got-w) > 1e-15 {
			t.Errorf("cosine LR(%d) = %v, want %v", step, got, w)
		}
	}
	c := NewSchedule("constant", 1e-5, 10, 0)
	for step := 0; step < 10; step++ {
		if c.LR(step) != 1e-5 {
			t.Errorf("constant LR(%d) = %v", step, c.LR(step))
		}
	}
	cw := NewSchedule("constant", 1e-5, 10, 0.3)
	if cw.LR(0) != 0 || math.Abs(cw.LR(1)-1e-5/3) > 1e-20 || cw.LR(3) != 1e-5 || cw.LR(9) != 1e-5 {
		t.Errorf("constant with warmup: %v %v %v", cw.LR(0), cw.LR(1), cw.LR(3))
	}
}

// AdamW against a hand-computed float64 reference (PyTorch's formula) over
// a few steps, with decay on one parameter and not on the other, and a
// gradient scale (clipping).
func TestAdamWReference(t *testing.T) {
	w0 := []float32{0.5, -1.25, 2}
	b0 := []float32{0.1, -0.2}
	o := &AdamW{Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1, slots: []*optSlot{
		{Name: "w", Data: append([]float32(nil), w0...), Decay: true},
		{Name: "b", Data: append([]float32(nil), b0...), Decay: false},
	}}
	gradsAt := func(step int) [][]float32 {
		s := float32(step + 1)
		return [][]float32{{0.3 * s, -0.1, 0.02 / s}, {-0.5, 0.25 * s}}
	}
	lrs := []float64{1e-2, 5e-3, 2e-2, 1e-3}
	scales := []float64{1, 0.5, 1, 0.25}
	// Reference state in float64.
	ref := [][]float64{{0.5, -1.25, 2}, {0.1, -0.2}}
	m := [][]float64{make([]float64, 3), make([]float64, 2)}
	v := [][]float64{make([]float64, 3), make([]float64, 2)}
	for step := range lrs {
		g := gradsAt(step)
		if err := o.Update(g, lrs[step], scales[step]); err != nil {
			t.Fatal(err)
		}
		tt := float64(step + 1)
		for p := range ref {
			for j := range ref[p] {
				gg := float64(g[p][j]) * scales[step]
				if p == 0 {
					ref[p][j] *= 1 - lrs[step]*0.1
				}
				m[p][j] = 0.9*m[p][j] + 0.1*gg
				v[p][j] = 0.95*v[p][j] + 0.05*gg*gg
				mhat := m[p][j] / (1 - math.Pow(0.9, tt))
				vhat := v[p][j] / (1 - math.Pow(0.95, tt))
				ref[p][j] -= lrs[step] * mhat / (math.Sqrt(vhat) + 1e-8)
			}
		}
		for p, prm := range o.slots {
			for j := range prm.Data {
				if d := math.Abs(float64(prm.Data[j]) - ref[p][j]); d > 1e-6 {
					t.Errorf("step %d %s[%d]: got %v want %v", step+1, prm.Name, j, prm.Data[j], ref[p][j])
				}
			}
		}
	}
	if o.Step != 4 {
		t.Errorf("step counter %d", o.Step)
	}
	if err := o.Update([][]float32{{1}}, 1, 1); err == nil {
		t.Error("mismatched gradients accepted")
	}
}

// Global-norm clipping as torch.nn.utils.clip_grad_norm_.
func TestClipping(t *testing.T) {
	big := make([]float32, 100000)
	for i := range big {
		big[i] = 0.01
	}
	n := GradNorm([][]float32{{3, 4}, nil, big})
	want := math.Sqrt(25 + 100000*float64(float32(0.01))*float64(float32(0.01)))
	if math.Abs(n-want) > 1e-9 {
		t.Fatalf("norm %v want %v", n, want)
	}
	if c := ClipCoef(10, 1); math.Abs(c-1/(10+1e-6)) > 1e-15 {
		t.Errorf("coef %v", c)
	}
	if ClipCoef(0.5, 1) != 1 || ClipCoef(100, 0) != 1 {
		t.Error("no clipping expected")
	}
	// A clipped update moves parameters exactly as the scaled gradient.
	a := &AdamW{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, slots: []*optSlot{{Name: "x", Data: []float32{1, 1}}}}
	b := &AdamW{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, slots: []*optSlot{{Name: "x", Data: []float32{1, 1}}}}
	g := []float32{30, 40}
	coef := ClipCoef(GradNorm([][]float32{g}), 1)
	_ = a.Update([][]float32{g}, 0.1, coef)
	_ = b.Update([][]float32{{float32(30 * coef), float32(40 * coef)}}, 0.1, 1)
	if math.Abs(float64(a.slots[0].M[0]-b.slots[0].M[0])) > 1e-7 || math.Abs(float64(a.slots[0].Data[1]-b.slots[0].Data[1])) > 1e-7 {
		t.Errorf("clipped update differs: %v vs %v", a.slots[0], b.slots[0])
	}
}

// Weight decay exemptions are declared by the layers (nn tags "norm" and
// "nodecay") and reported by the tag walker: biases, norm scales, layer
// scales and the row separator — on the whole model exactly the tensors
// with at most one non-unit dimension (timm's rule, a superset of Hugging
// Face's "bias and LayerNorm weights"); embeddings and lm_head decay.
func TestNoDecay(t *testing.T) {
	cfg, _, err := model.PresetConfigs("tiny")
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ps, _, err := trainableParams(m, TrainAll)
	if err != nil {
		t.Fatal(err)
	}
	all, _ := nn.Parameters(m, "")
	noDecay := map[string]bool{}
	for i, p := range ps {
		noDecay[p.Name] = !p.Decay
		big := 0
		for _, d := range all[i].T.Shape() {
			if d > 1 {
				big++
			}
		}
		if want := big <= 1; !p.Decay != want {
			t.Errorf("%s %v: no decay %v, want %v", p.Name, all[i].T.Shape(), !p.Decay, want)
		}
	}
	cases := map[string]bool{
		"language_model.model.layers.0.input_layernorm.weight":                  true,
		"language_model.model.norm.weight":                                      true,
		"vision_tower.clip_vision_model.trunk.stages.0.blocks.0.gamma":          true,
		"vision_tower.clip_vision_model.trunk.stem.0.bias":                      true,
		"vision_tower.clip_vision_model.trunk.stem.1.weight":                    true,
		"multi_modal_projector.row_seperator":                                   true,
		"multi_modal_projector.proj.0.weight":                                   false,
		"language_model.model.embed_tokens.weight":                              false,
		"language_model.lm_head.weight":                                         false,
		"vision_tower.clip_vision_model.trunk.stages.0.blocks.0.conv_dw.weight": false,
		"vision_tower.clip_vision_model.trunk.stages.1.downsample.0.weight":     true,
	}
	for name, want := range cases {
		if got, ok := noDecay[name]; !ok || got != want {
			t.Errorf("no decay of %s = %v (present %v), want %v", name, got, ok, want)
		}
	}
}

// A panic inside a worker of parallel reaches the calling goroutine (it
// would otherwise end the process), and recovered turns it into an error.
func TestParallelWorkerPanic(t *testing.T) {
	old := runtime.GOMAXPROCS(2)
	defer runtime.GOMAXPROCS(old)
	for _, bad := range []int{0, 5, 63} {
		err := recovered("adamw: update", func() {
			parallel(64, func(i int) {
				if i == bad {
					panic(fmt.Sprintf("item %d", i))
				}
			})
		})
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("adamw: update: item %d", bad)) {
			t.Errorf("panic at item %d: got error %v", bad, err)
		}
	}
	if err := recovered("x", func() { parallel(8, func(int) {}) }); err != nil {
		t.Errorf("no panic: got %v", err)
	}
}
