package train

import (
	"strings"
	"testing"

	"github.com/magma-go/magma/llm"
)

func TestEmbeddedRecipe(t *testing.T) {
	c, err := LoadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	if c.Model.Preset != "tiny" || !c.HasData() || c.Steps <= 0 || c.Schedule.Name != "cosine" {
		t.Errorf("default recipe: %+v", c)
	}
	if _, err := c.MixtureConfig(); err != nil {
		t.Errorf("data section: %v", err)
	}
	h := c.Hash()
	c2 := *c
	c2.Steps, c2.Checkpoint.Every = 7, 1
	if c2.Hash() != h {
		t.Error("steps/checkpoint cadence change the hash")
	}
	c2.Seed++
	if c2.Hash() == h {
		t.Error("seed does not change the hash")
	}
}

func TestConfigErrors(t *testing.T) {
	cases := map[string]string{
		"steps: 0\n":                    "steps",
		"optimizer: {lr: -1}\n":         "optimizer.lr",
		"optimizer: {beta1: 1}\n":       "optimizer.beta1",
		"schedule: {name: linear}\n":    "schedule.name",
		"schedule: {warmup_ratio: 2}\n": "schedule.warmup_ratio",
		"trainable: lm_only\n":          "trainable",
		"batch_size: -1\n":              "batch_size",
		"checkpoint: {keep: -1}\n":      "checkpoint.keep",
		"stepz: 3\n":                    "stepz",
		"optimizer: {name: sgd}\n":      "optimizer.name",
		"model: {preset: \"\"}\n":       "model",
		"":                              "empty",
	}
	for y, want := range cases {
		_, err := ParseConfig([]byte(y), "x.yaml")
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "x.yaml") {
			t.Errorf("%q: error %v, want one naming x.yaml and %s", y, err, want)
		}
	}
}

// The finetune recipes hold the defaults magma finetune sft / libero used
// to build in Go: the same values, hence the same config hash (runs
// started before keep resuming).
func TestFinetuneRecipes(t *testing.T) {
	sft := DefaultConfig()
	sft.Optimizer.LR, sft.Optimizer.WeightDecay = 2e-5, 0
	sft.Schedule = ScheduleConfig{Name: "cosine", WarmupRatio: 0.03}
	sft.Checkpoint = CheckpointConfig{Every: 100, Keep: 2}
	lora := DefaultConfig()
	lora.Optimizer.LR, lora.Optimizer.WeightDecay = 5e-4, 0
	lora.Schedule = ScheduleConfig{Name: "constant"}
	lora.Checkpoint = CheckpointConfig{Every: 500, Keep: 2}
	lora.Steps, lora.Trainable = 1000, TrainLoRA
	lora.LoRA = llm.LoRAConfig{Rank: 32, Targets: llm.DefaultLoRATargets}
	full := lora
	full.Optimizer.LR, full.Trainable, full.LoRA = 2e-5, TrainAll, llm.LoRAConfig{}
	for name, want := range map[string]Config{"sft": sft, "libero": lora, "libero-full": full} {
		got, err := LoadConfig(name)
		if err != nil {
			t.Fatal(err)
		}
		got.Source, want.Source = "", ""
		g, _ := got.Marshal()
		w, _ := want.Marshal()
		if string(g) != string(w) || got.Hash() != want.Hash() {
			t.Errorf("recipe %s:\n%s\nwant\n%s", name, g, w)
		}
	}
}
