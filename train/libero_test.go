package train

import (
	"testing"

	"github.com/magma-go/magma/data"
	"github.com/magma-go/magma/llm"
)

// LiberoRun.Config picks the LoRA or the full fine-tuning recipe and
// records the demos read in the data section, so a run on another suite
// or selection hashes differently.
func TestLiberoRunConfig(t *testing.T) {
	r := LiberoRun{Data: "suite", Libero: data.LiberoOptions{Shots: 10, ShotsPer: data.ShotsPerSuite, Camera: "agentview_rgb"},
		Init: "ckpt", BatchSize: 2, GradAccum: 1, Steps: 5, LoRA: llm.LoRAConfig{Rank: 4, Alpha: 8}, Trainable: "all"}
	lora, err := r.Config("libero_spatial")
	if err != nil {
		t.Fatal(err)
	}
	if lora.LoRA.Rank != 4 || lora.Model.InitFrom != "ckpt" || lora.Steps != 5 || lora.Source != "finetune libero" {
		t.Fatalf("LoRA recipe: %+v", lora)
	}
	var got struct {
		Libero map[string]any `yaml:"libero"`
	}
	if err := lora.Data.Decode(&got); err != nil {
		t.Fatal(err)
	}
	if got.Libero["suite"] != "libero_spatial" || got.Libero["data"] != "suite" || got.Libero["shots"] != 10 {
		t.Fatalf("data section: %v", got.Libero)
	}
	r.LoRA = llm.LoRAConfig{}
	full, err := r.Config("libero_goal")
	if err != nil {
		t.Fatal(err)
	}
	if full.Trainable != "all" || full.LoRA.Rank != 0 || full.Optimizer.LR == lora.Optimizer.LR {
		t.Fatalf("full recipe: trainable %q, rank %d, lr %g (LoRA's %g)", full.Trainable, full.LoRA.Rank, full.Optimizer.LR, lora.Optimizer.LR)
	}
}
