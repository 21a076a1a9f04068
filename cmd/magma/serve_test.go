package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServedModelNames (issue 31, point 10): --served-model-name NAME[,ALIAS...]
// wins (first name reported); by default the checkpoint folder's name, the
// preset of a training run's checkpoint (RUN/config.yaml) and config.json's
// _name_or_path are accepted, the folder's name first.
func TestServedModelNames(t *testing.T) {
	root := t.TempDir()
	write := func(path, text string) string {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return filepath.Dir(path)
	}
	initDir := write(filepath.Join(root, "out", "tiny", "config.json"), `{"model_type": "magma"}`)
	runCk := write(filepath.Join(root, "runs", "pretrain", "checkpoints", "step-000300", "config.json"), `{"model_type": "magma"}`)
	write(filepath.Join(root, "runs", "pretrain", "config.yaml"), "model:\n  preset: tiny\nsteps: 300\n")
	fileCk := write(filepath.Join(root, "runs", "mine", "checkpoints", "step-000010", "config.json"), `{}`)
	write(filepath.Join(root, "runs", "mine", "config.yaml"), "model:\n  preset: configs/my-small.yaml\n")
	ftCk := write(filepath.Join(root, "runs", "ft", "checkpoints", "step-000002", "config.json"), `{}`)
	write(filepath.Join(root, "runs", "ft", "config.yaml"), "model:\n  preset: tiny\n  init_from: /models/magma-8b\n")
	hfDir := write(filepath.Join(root, "Magma-8B", "config.json"), `{"_name_or_path": "microsoft/Magma-8B", "model_type": "magma"}`)
	badYAML := write(filepath.Join(root, "runs", "bad", "checkpoints", "step-000001", "config.json"), `not json`)
	write(filepath.Join(root, "runs", "bad", "config.yaml"), "model: [unclosed\n")

	for _, c := range []struct {
		name string
		flag []string
		dir  string
		want string
	}{
		{"init folder", nil, initDir, "tiny"},
		{"training checkpoint", nil, runCk, "step-000300 tiny"},
		{"relative dir", nil, "rel", "rel"},
		{"preset file", nil, fileCk, "step-000010 my-small"},
		{"fine-tuned from a checkpoint: no preset", nil, ftCk, "step-000002"},
		{"Hugging Face name", nil, hfDir, "Magma-8B microsoft/Magma-8B"},
		{"unreadable recipe and config: the folder only", nil, badYAML, "step-000001"},
		{"flag", []string{"tiny"}, runCk, "tiny"},
		{"flag with aliases, deduplicated", []string{"magma", " tiny", "magma"}, runCk, "magma tiny"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := servedModelNames(c.flag, c.dir)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, " ") != c.want {
				t.Fatalf("names %q, want %q", got, c.want)
			}
		})
	}
	if _, err := servedModelNames([]string{"a", ""}, runCk); err == nil || !strings.Contains(err.Error(), "--served-model-name: name 2") {
		t.Fatalf("an empty name: %v", err)
	}
}

// TestServeModelNameFlags: --model-name (the old spelling) and
// --served-model-name together are refused before anything is loaded.
func TestServeModelNameFlags(t *testing.T) {
	cmd := newServeCmd()
	cmd.SetArgs([]string{"--model", t.TempDir(), "--model-name", "a", "--served-model-name", "b", "--addr", "127.0.0.1:0"})
	cmd.SetOut(new(strings.Builder))
	cmd.SetErr(new(strings.Builder))
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "--served-model-name") {
		t.Fatalf("both flags: %v", err)
	}
}
