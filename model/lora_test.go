package model

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"gorgonia.org/tensor"

	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/llm"
	"github.com/magma-go/magma/model/ckpt"
)

// A LoRA checkpoint over a bf16 base: loaded in place, the adapters stay
// beside the mapped base (no merged copies); converted to float32 on load,
// they are folded into the weights. Both answer with the same logits
// (within float32 rounding of W + ΔW) and the same greedy tokens, which
// differ from the base's own.
func TestPipelineLoRAOverMappedBase(t *testing.T) {
	cfg, _, err := PresetConfigs("tiny")
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.InitRandom(3); err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(t.TempDir(), "base")
	if err := m.Save(base, nil, ckpt.SaveOptions{DType: "BF16"}); err != nil {
		t.Fatal(err)
	}
	adapted := copyDir(t, base)
	if _, err := m.LM.AttachLoRA(llm.LoRAConfig{Rank: 4, Alpha: 8}, LoRAPrefix, 7); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for _, mod := range m.LM.LoRAModules("") {
		for i, d := 0, mod.Linear.LoRA.B.Data().([]float32); i < len(d); i++ {
			d[i] = float32(0.05 * r.NormFloat64())
		}
	}
	if err := SaveLoRA(adapted, m, base); err != nil {
		t.Fatal(err)
	}

	run := func(dir string, opts LoadOptions) (*Pipeline, *Result) {
		t.Helper()
		p, err := LoadPipelineWith(dir, "", opts)
		if err != nil {
			t.Fatal(err)
		}
		p.Model.SetKernels(kernels.TestOptions())
		t.Cleanup(func() { p.Close() })
		res, err := p.Generate(context.Background(), Request{PromptIDs: []int{1, 5, 9, 13, 17, 21}, MaxNewTokens: 5, KeepLogits: true})
		if err != nil {
			t.Fatal(err)
		}
		return p, res
	}
	mapped, unmerged := run(adapted, LoadOptions{})
	merged32, merged := run(adapted, LoadOptions{Dtype: tensor.Float32})
	_, plain := run(base, LoadOptions{})

	mods := mapped.Model.LM.LoRAModules("")
	if !mapped.LoRA || len(mods) == 0 {
		t.Fatalf("in place: LoRA %v, %d adapters attached: want them kept beside the base", mapped.LoRA, len(mods))
	}
	for _, mod := range mods {
		if w := mod.Linear.Weight; w.Dtype() != kernels.BFloat16 || !kernels.IsReadOnly(w) {
			t.Fatalf("%s: %v, read-only %v: want the mapped bf16 weight", mod.Name, w.Dtype(), kernels.IsReadOnly(w))
		}
	}
	if !merged32.LoRA || len(merged32.Model.LM.LoRAModules("")) != 0 {
		t.Fatalf("float32 copies: LoRA %v, %d adapters still attached: want them merged", merged32.LoRA, len(merged32.Model.LM.LoRAModules("")))
	}
	if !slices.Equal(unmerged.OutputIDs, merged.OutputIDs) {
		t.Fatalf("greedy tokens: unmerged %v, merged %v", unmerged.OutputIDs, merged.OutputIDs)
	}
	worst, baseDiff := 0.0, 0.0
	for s := range unmerged.Logits {
		scale := 0.0
		for _, v := range merged.Logits[s] {
			scale = math.Max(scale, math.Abs(float64(v)))
		}
		for i, v := range unmerged.Logits[s] {
			worst = math.Max(worst, math.Abs(float64(v-merged.Logits[s][i]))/scale)
			if s == 0 {
				baseDiff = math.Max(baseDiff, math.Abs(float64(v-plain.Logits[s][i]))/scale)
			}
		}
	}
	t.Logf("unmerged vs merged: %.2g of max |logit|; adapter's effect on the first logits: %.2g", worst, baseDiff)
	if worst > 1e-4 {
		t.Errorf("unmerged and merged logits differ by %.3g of max |logit| (bound 1e-4)", worst)
	}
	if baseDiff < 1e-3 {
		t.Errorf("the adapter changed the logits by only %.3g: not applied?", baseDiff)
	}
}

// The adapters attached to the decoder are written under PEFT's names
// (LoRATensors) and described by PEFT's adapter_config.json
// (LoRAAdapterConfigJSON), which reads back as the same LoRAConfig.
func TestLoRAPEFTNamesAndConfig(t *testing.T) {
	cfg, _, err := PresetConfigs("tiny")
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.LM.AttachLoRA(llm.LoRAConfig{Rank: 4, Alpha: 8}, LoRAPrefix, 1); err != nil {
		t.Fatal(err)
	}
	names := LoRATensors(m.LM, LoRAPrefix)
	for _, want := range []string{
		"base_model.model.language_model.model.layers.0.self_attn.q_proj.lora_A.weight",
		"base_model.model.language_model.model.layers.1.mlp.down_proj.lora_B.weight",
	} {
		if _, ok := names[want]; !ok {
			t.Fatalf("missing %s", want)
		}
	}
	if s := names["base_model.model.language_model.model.layers.1.mlp.down_proj.lora_B.weight"].Shape(); s[0] != cfg.Text.HiddenSize || s[1] != 4 {
		t.Fatalf("down_proj lora_B shape %v", s)
	}
	cj, err := LoRAAdapterConfigJSON(m.LM, "base")
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	json.Unmarshal(cj, &c)
	if c["r"].(float64) != 4 || c["lora_alpha"].(float64) != 8 || c["peft_type"] != "LORA" || len(c["target_modules"].([]any)) != 7 {
		t.Fatalf("adapter_config.json: %s", cj)
	}
	back, err := ParseLoRAAdapterConfig(cj)
	if err != nil || back.Rank != 4 || back.Alpha != 8 || len(back.Targets) != 7 {
		t.Fatalf("parse back: %+v %v", back, err)
	}
}
