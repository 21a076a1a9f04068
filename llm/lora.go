package llm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"

	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/nn"
)

// LoRA adapters (nn.LoRA) on the decoder's linear layers: which layers get
// them (attaching, listing under their PEFT names), the config that
// describes them (adapter_config.json's format is package ckpt's), and
// merging.

// LoRAConfig selects and shapes the adapters (PEFT's LoraConfig fields; a
// training recipe's lora: section).
type LoRAConfig struct {
	Rank    int     `yaml:"rank"`
	Alpha   float64 `yaml:"alpha"`   // 0: equal to Rank (scale 1)
	Dropout float64 `yaml:"dropout"` // training needs 0 (see train.Config.Validate)
	// Targets are module names (q_proj, k_proj, v_proj, o_proj, gate_proj,
	// up_proj, down_proj); nil: all seven.
	Targets []string `yaml:"targets"`
}

// DefaultLoRATargets are every linear layer of the decoder blocks
// (OpenVLA's target_modules="all-linear" minus the LM head).
var DefaultLoRATargets = []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}

// LoRAModule is one adapted layer: its PEFT module name (prefix +
// "model.layers.{i}.self_attn.q_proj") and the layer.
type LoRAModule struct {
	Name   string
	Linear *nn.Linear
}

// linearModules lists the decoder blocks' linear layers by module name.
func (m *Model) linearModules(prefix string) []LoRAModule {
	var out []LoRAModule
	for i := range m.Decoder.Layers {
		L := &m.Decoder.Layers[i]
		p := fmt.Sprintf("%smodel.layers.%d.", prefix, i)
		out = append(out,
			LoRAModule{p + "self_attn.q_proj", &L.SelfAttention.Query},
			LoRAModule{p + "self_attn.k_proj", &L.SelfAttention.Key},
			LoRAModule{p + "self_attn.v_proj", &L.SelfAttention.Value},
			LoRAModule{p + "self_attn.o_proj", &L.SelfAttention.Output},
			LoRAModule{p + "mlp.gate_proj", &L.MLP.Gate},
			LoRAModule{p + "mlp.up_proj", &L.MLP.Up},
			LoRAModule{p + "mlp.down_proj", &L.MLP.Down},
		)
	}
	return out
}

// AttachLoRA puts a fresh adapter on every targeted layer (replacing any
// attached before) and returns them in module-name order. prefix is the
// model's name prefix in the checkpoint ("language_model." in Magma).
func (m *Model) AttachLoRA(cfg LoRAConfig, prefix string, seed uint64) ([]LoRAModule, error) {
	if cfg.Rank <= 0 {
		return nil, fmt.Errorf("lora: rank %d must be positive", cfg.Rank)
	}
	if cfg.Alpha == 0 {
		cfg.Alpha = float64(cfg.Rank)
	}
	if cfg.Alpha < 0 || math.IsNaN(cfg.Alpha) || math.IsInf(cfg.Alpha, 0) {
		return nil, fmt.Errorf("lora: alpha %v must be positive and finite", cfg.Alpha)
	}
	if !(cfg.Dropout >= 0 && cfg.Dropout < 1) {
		return nil, fmt.Errorf("lora: dropout %v must be in [0, 1)", cfg.Dropout)
	}
	targets := cfg.Targets
	if len(targets) == 0 {
		targets = DefaultLoRATargets
	}
	want := map[string]bool{}
	for _, t := range targets {
		ok := false
		for _, d := range DefaultLoRATargets {
			ok = ok || d == t
		}
		if !ok {
			return nil, fmt.Errorf("lora: unknown target module %q (want some of %s)", t, strings.Join(DefaultLoRATargets, ", "))
		}
		want[t] = true
	}
	dt := m.Dtype()
	r := rand.New(rand.NewPCG(seed, 0x6c6f7261))
	var out []LoRAModule
	for _, mod := range m.linearModules(prefix) {
		short := mod.Name[strings.LastIndexByte(mod.Name, '.')+1:]
		if !want[short] {
			mod.Linear.LoRA = nil
			continue
		}
		w := mod.Linear.Weight
		if w == nil || w.Shape().Dims() != 2 {
			return nil, fmt.Errorf("lora: %s has no 2-D weight", mod.Name)
		}
		// A quantized base (QLoRA) is stored as blocks along the input:
		// the adapter takes the logical [out, in].
		ls := kernels.LogicalShape(w)
		mod.Linear.LoRA = nn.NewLoRA(dt, ls[0], ls[1], cfg.Rank, cfg.Alpha, cfg.Dropout, r)
		out = append(out, mod)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("lora: no layer matched the targets %v", targets)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// LoRAModules lists the layers that carry an adapter.
func (m *Model) LoRAModules(prefix string) []LoRAModule {
	var out []LoRAModule
	for _, mod := range m.linearModules(prefix) {
		if mod.Linear.LoRA != nil {
			out = append(out, mod)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// SetLoRATraining switches adapter dropout on or off.
func (m *Model) SetLoRATraining(on bool) {
	for _, mod := range m.LoRAModules("") {
		mod.Linear.LoRA.Train = on
	}
}

// MergeLoRA folds every adapter into its base weight (nn.Linear.MergeLoRA)
// and detaches it: the model then computes the same function with plain
// Linear layers and saves as an ordinary checkpoint.
func (m *Model) MergeLoRA() (int, error) {
	n := 0
	for _, mod := range m.LoRAModules("") {
		if _, err := mod.Linear.MergeLoRA(); err != nil {
			return n, fmt.Errorf("lora: %s: %w", mod.Name, err)
		}
		n++
	}
	return n, nil
}
