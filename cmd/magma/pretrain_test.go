package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/magma-go/magma/model"
	"github.com/magma-go/magma/model/ckpt"
)

// README's main job, shortened: `magma pretrain` on the embedded default
// (synthetic four-source mixture, tiny model) runs, logs metrics.jsonl with
// the contract's fields, writes a checkpoint and the plot, and resumes.
func TestPretrainDefault(t *testing.T) {
	if testing.Short() {
		t.Skip("trains for a few steps")
	}
	out := filepath.Join(t.TempDir(), "run")
	if log, err := runMagma(t, "pretrain", "--out", out, "--max-steps", "6"); err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	data, err := os.ReadFile(filepath.Join(out, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	var last map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"step", "loss", "lr", "tokens_per_s"} {
		if _, ok := last[k]; !ok {
			t.Errorf("metrics.jsonl line lacks %q: %v", k, last)
		}
	}
	if last["step"].(float64) != 6 {
		t.Errorf("last logged step %v, want 6", last["step"])
	}
	for _, f := range []string{"curves.png", "checkpoints/latest"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	// Resuming a finished run with a larger budget continues from step 6.
	if log, err := runMagma(t, "pretrain", "--out", out, "--max-steps", "8", "--resume"); err != nil {
		t.Fatalf("resume: %v\n%s", err, log)
	}
}

// `magma finetune sft` trains on LLaVA conversation JSON through the same engine.
func TestFinetuneSFT(t *testing.T) {
	if testing.Short() {
		t.Skip("trains for a few steps")
	}
	dir := t.TempDir()
	img, err := filepath.Abs(filepath.Join(parityDir, "square.png"))
	if err != nil {
		t.Fatal(err)
	}
	recs := `[{"id": "a", "image": "` + img + `", "conversations": [
	   {"from": "human", "value": "<image>\nWhat colour dominates?"}, {"from": "gpt", "value": "Blue."}]},
	  {"id": "b", "conversations": [{"from": "human", "value": "Say hi."}, {"from": "gpt", "value": "Hi."}]}]`
	path := filepath.Join(dir, "sft.json")
	if err = os.WriteFile(path, []byte(recs), 0o644); err != nil {
		t.Fatal(err)
	}
	init := filepath.Join(dir, "tiny")
	if log, err := runMagma(t, "init", "--preset", "tiny", "--out", init); err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	out := filepath.Join(dir, "run")
	if log, err := runMagma(t, "finetune", "sft", "--data", path, "--model", init, "--steps", "3", "--batch-size", "2", "--out", out); err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	if _, err := os.Stat(filepath.Join(out, "metrics.jsonl")); err != nil {
		t.Fatal(err)
	}
}

// Issue 31, point 13: `finetune sft --lora-rank N` trains LoRA adapters
// (trainable: lora, which --trainable now lists), and --steps with an
// equal --max-steps is accepted.
func TestFinetuneSFTLoRA(t *testing.T) {
	if testing.Short() {
		t.Skip("trains for a few steps")
	}
	dir := t.TempDir()
	recs := `[{"id": "b", "conversations": [{"from": "human", "value": "Say hi."}, {"from": "gpt", "value": "Hi."}]}]`
	path := filepath.Join(dir, "sft.json")
	if err := os.WriteFile(path, []byte(recs), 0o644); err != nil {
		t.Fatal(err)
	}
	init := filepath.Join(dir, "tiny")
	if log, err := runMagma(t, "init", "--preset", "tiny", "--out", init); err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	out := filepath.Join(dir, "run")
	log, err := runMagma(t, "finetune", "sft", "--data", path, "--model", init, "--lora-rank", "4", "--lora-alpha", "8",
		"--lora-targets", "q_proj,v_proj", "--steps", "2", "--max-steps", "2", "--out", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	if !strings.Contains(log, "(lora)") || !strings.Contains(log, "for 2 updates") {
		t.Errorf("log:\n%s", log)
	}
	ck := filepath.Join(out, "checkpoints", "step-000002")
	if _, err := os.Stat(filepath.Join(ck, ckpt.AdapterWeightsFile)); err != nil {
		t.Fatalf("no adapters in the checkpoint: %v\n%s", err, log)
	}
	cfg, err := os.ReadFile(filepath.Join(ck, ckpt.AdapterConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	ac, err := model.ParseLoRAAdapterConfig(cfg)
	if err != nil || ac.Rank != 4 || ac.Alpha != 8 || len(ac.Targets) != 2 {
		t.Errorf("adapter_config.json %s: %+v %v", cfg, ac, err)
	}
}
