package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/magma-go/magma/model/gguf"
)

func TestExportGGUFRefusals(t *testing.T) {
	par := parityDir
	exists := filepath.Join(t.TempDir(), "exists.gguf")
	os.WriteFile(exists, []byte("x"), 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"export", "gguf", "--model", par, "--out", "x.gguf"}, "--text-only is required"},
		{[]string{"export", "gguf", "--model", par, "--text-only", "--type", "q5_k", "--out", "x.gguf"}, `--type "q5_k"`},
		{[]string{"export", "gguf", "--model", par, "--text-only"}, "--model and --out are required"},
		{[]string{"export", "gguf", "--model", par, "--text-only", "--placeholder-vocab", "--out", exists}, "exists; pass --force"},
		// the parity checkpoint has no tokenizer
		{[]string{"export", "gguf", "--model", par, "--text-only", "--out", filepath.Join(t.TempDir(), "p.gguf")}, "tokenizer.json"},
	} {
		_, err := runMagma(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error containing %q", c.args, err, c.want)
		}
	}
}

// TestExportGGUFParity: the parity checkpoint (no tokenizer: placeholder
// vocabulary) exported as q4_k_m: llama.cpp's names and the types of
// magma quantize's table (rows of 64 and 192 take Q8_0; the embedding is
// kept F32), and --json lists what the file holds.
func TestExportGGUFParity(t *testing.T) {
	par := parityDir
	out := filepath.Join(t.TempDir(), "p.gguf")
	stdout, err := runMagma(t, "export", "gguf", "--model", par, "--text-only", "--type", "q4_k_m", "--placeholder-vocab", "--json", "--out", out)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Tensors []gguf.ExportedTensor `json:"tensors"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("--json: %v\n%s", err, stdout)
	}
	g, err := gguf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if len(g.Tensors) != 21 || len(rep.Tensors) != 21 {
		t.Fatalf("%d tensors, %d listed", len(g.Tensors), len(rep.Tensors))
	}
	for i, ti := range g.Tensors {
		w := rep.Tensors[i]
		want := "Q8_0"
		switch {
		case len(ti.Dims) == 1, ti.Name == "token_embd.weight":
			want = "F32"
		}
		if ti.Name != w.Name || ti.Type.String() != w.Type || w.Type != want {
			t.Errorf("tensor %d: %s %v, listed %s %s, want type %s", i, ti.Name, ti.Type, w.Name, w.Type, want)
		}
	}
	if ft, _ := g.Uint("general.file_type"); ft != 15 {
		t.Errorf("general.file_type %d, want 15 (MOSTLY_Q4_K_M)", ft)
	}
	if m, _ := g.String("tokenizer.ggml.model"); m != "gpt2" {
		t.Errorf("tokenizer.ggml.model %q", m)
	}
}
