package train

import (
	"context"
	"errors"
	"github.com/magma-go/magma/llm"
	"github.com/magma-go/magma/model/ckpt"
	"github.com/magma-go/magma/nn"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/magma-go/magma/model"
)

func loraTestConfig(steps int) *Config {
	c := testConfig(steps)
	c.Trainable = TrainLoRA
	c.LoRA = llm.LoRAConfig{Rank: 4, Alpha: 8, Targets: []string{"q_proj", "v_proj", "down_proj"}}
	c.Optimizer.LR = 1e-2
	c.Checkpoint = CheckpointConfig{Every: 4, Keep: 0}
	c.GradAccum = 2
	return c
}

func runLoRA(t *testing.T, out string, steps int, resume bool, stopAt int) (*Result, *model.Magma, error) {
	t.Helper()
	return runLoRAWith(t, out, steps, resume, stopAt, nil)
}

// runLoRAWith is runLoRA with the recipe changed by edit first (nil: as is).
func runLoRAWith(t *testing.T, out string, steps int, resume bool, stopAt int, edit func(*Config)) (*Result, *model.Magma, error) {
	t.Helper()
	c := loraTestConfig(steps)
	if edit != nil {
		edit(c)
	}
	m, pp := testModel(t, c)
	samples := testSamples(t, m, pp, 5)
	o := Options{Config: c, Model: m, Preprocessor: pp, Data: openCycle(samples, 2), OutDir: out, Resume: resume, Log: quiet(), NoPlot: true}
	if stopAt > 0 {
		o.Hooks.OnStep = func(si StepInfo) error {
			if si.Step == stopAt {
				return errStop
			}
			return nil
		}
	}
	res, err := Run(context.Background(), o)
	return res, m, err
}

var errStop = errors.New("stopped by the test")

func snapshot(m *model.Magma) map[string][]float32 {
	out := map[string][]float32{}
	ps, _ := nn.Parameters(m, "")
	for _, p := range ps {
		out[p.Name] = append([]float32(nil), p.T.Data().([]float32)...)
	}
	return out
}

// trainable: lora trains the adapters only: every checkpoint tensor stays
// bit for bit, the loss falls, and checkpoints carry PEFT's adapter files
// (and AdamW moments under the PEFT names) beside the base weights.
func TestLoRATrainsAdaptersOnly(t *testing.T) {
	out := t.TempDir()
	const steps = 40
	c := loraTestConfig(steps)
	base, _ := testModel(t, c)
	before := snapshot(base)
	res, m, err := runLoRA(t, out, steps, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	after := snapshot(m)
	for name, w := range before {
		for i, x := range after[name] {
			if x != w[i] {
				t.Fatalf("frozen %s[%d] changed: %v -> %v", name, i, w[i], x)
			}
		}
	}
	first, last := res.Losses[0], res.FinalLoss
	t.Logf("lora loss %.4f -> %.4f", first, last)
	if !(last < first-0.5) {
		t.Errorf("loss did not fall enough: %.4f -> %.4f", first, last)
	}
	mods := m.LM.LoRAModules(model.LoRAPrefix)
	if len(mods) != 3*m.Config.Text.NumHiddenLayers {
		t.Fatalf("%d adapted layers", len(mods))
	}
	nonzero := false
	for _, v := range mods[0].Linear.LoRA.B.Data().([]float32) {
		nonzero = nonzero || v != 0
	}
	if !nonzero {
		t.Error("lora_B is still zero after training")
	}
	ck := filepath.Join(out, checkpointsDir, stepName(steps))
	for _, f := range []string{ckpt.AdapterWeightsFile, ckpt.AdapterConfigFile, "model.safetensors", optimizerFile} {
		if _, err := os.Stat(filepath.Join(ck, f)); err != nil {
			t.Fatal(err)
		}
	}
	st, err := readState(ck)
	if err != nil || st.Trainable != TrainLoRA || st.Optimizer.Params != 2*len(mods) {
		t.Fatalf("state %+v %v", st, err)
	}
	f, err := ckpt.OpenSafetensors(filepath.Join(ck, optimizerFile))
	if err != nil {
		t.Fatal(err)
	}
	names := strings.Join(f.Names(), " ")
	f.Close()
	if !strings.Contains(names, "exp_avg.base_model.model.language_model.model.layers.0.self_attn.q_proj.lora_A.weight") || strings.Contains(names, "embed_tokens") {
		t.Fatalf("optimizer tensors: %s", names)
	}
	// The checkpoint loads as base + adapter and computes the trained model.
	m2, err := model.Load(ck)
	if err != nil {
		t.Fatal(err)
	}
	ok, err := model.LoadLoRA(ck, m2.Model)
	if err != nil || !ok {
		t.Fatalf("LoadLoRA: %v %v", ok, err)
	}
	a, b := model.LoRATensors(m.LM, ""), model.LoRATensors(m2.Model.LM, "")
	if len(a) != len(b) {
		t.Fatalf("%d adapter tensors loaded, want %d", len(b), len(a))
	}
	for k, v := range a {
		w := b[k].Data().([]float32)
		for i, x := range v.Data().([]float32) {
			if w[i] != x {
				t.Fatalf("%s[%d] differs after reload", k, i)
			}
		}
	}
}

// A LoRA run stopped after step 6 and resumed from its step-4 checkpoint
// logs the uninterrupted run's losses bit for bit (adapters re-attached and
// restored, moments, schedule and data position).
func TestLoRAResume(t *testing.T) {
	const steps = 12
	ref := t.TempDir()
	if _, _, err := runLoRA(t, ref, steps, false, 0); err != nil {
		t.Fatal(err)
	}
	want := losses(t, ref)
	out := t.TempDir()
	if _, _, err := runLoRA(t, out, steps, false, 6); !errors.Is(err, errStop) {
		t.Fatalf("interrupted run: %v", err)
	}
	res, _, err := runLoRA(t, out, steps, true, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Resumed != 4 || res.Steps != steps {
		t.Fatalf("resumed at %d, ended at %d", res.Resumed, res.Steps)
	}
	got := losses(t, out)
	compareLosses(t, "lora stopped+resumed", got, want)
	t.Logf("lora resume: %d losses equal bit for bit (last %.9g)", len(got), got[len(got)-1])

	// Resuming with another adapter shape is refused by the recipe hash.
	c := loraTestConfig(steps)
	c.LoRA.Rank = 8
	m, pp := testModel(t, c)
	_, err = Run(context.Background(), Options{Config: c, Model: m, Preprocessor: pp, Data: openCycle(testSamples(t, m, pp, 5), 2), OutDir: out, Resume: true, Log: quiet(), NoPlot: true})
	if err == nil || !strings.Contains(err.Error(), "different recipe") {
		t.Fatalf("resume with rank 8: %v", err)
	}
	// A checkpoint whose adapter config disagrees with the attached one.
	ck := filepath.Join(out, checkpointsDir, stepName(steps))
	m3, _ := testModel(t, c)
	l, err := AttachLoRA(m3, c.LoRA, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Load(ck); err == nil || !strings.Contains(err.Error(), "r=4") {
		t.Fatalf("mismatched adapter load: %v", err)
	}
}

func TestLoRAConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.LoRA.Rank = 0 }, "positive rank"},
		{func(c *Config) { c.LoRA.Dropout = 0.1 }, "not supported"},
		{func(c *Config) { c.LoRA.Dropout = 1 }, "[0, 1)"},
		{func(c *Config) { c.LoRA.Alpha = -1 }, "lora.alpha"},
		{func(c *Config) { c.Trainable = TrainAll }, "only trained with trainable: lora"},
		{func(c *Config) { c.LoRA.Targets = []string{"nope"} }, "unknown target"},
	} {
		c := loraTestConfig(2)
		tc.edit(c)
		err := c.Validate()
		if err == nil {
			m, pp := testModel(t, c)
			_, err = Run(context.Background(), Options{Config: c, Model: m, Preprocessor: pp, Data: openCycle(testSamples(t, m, pp, 2), 2), OutDir: t.TempDir(), Log: quiet(), NoPlot: true})
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("want error containing %q, got %v", tc.want, err)
		}
	}
	// Adapters with a full fine-tuning setting.
	c := testConfig(2)
	m, pp := testModel(t, c)
	l, err := AttachLoRA(m, llm.LoRAConfig{Rank: 2}, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Run(context.Background(), Options{Config: c, Model: m, Preprocessor: pp, Adapters: l, Data: openCycle(testSamples(t, m, pp, 2), 2), OutDir: t.TempDir(), Log: quiet(), NoPlot: true})
	if err == nil || !strings.Contains(err.Error(), "trainable: lora") {
		t.Fatalf("adapters with trainable all: %v", err)
	}
	// A recipe round trip keeps the lora section; other recipes hash as before.
	y, err := loraTestConfig(2).Marshal()
	if err != nil || !strings.Contains(string(y), "rank: 4") {
		t.Fatalf("%s %v", y, err)
	}
	if y, _ := testConfig(2).Marshal(); strings.Contains(string(y), "lora") {
		t.Fatalf("non-LoRA recipe mentions lora:\n%s", y)
	}
}
