package model

import (
	"context"
	"github.com/magma-go/magma/model/ckpt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/magma-go/magma/kernels"
)

// copyFixture copies the parity checkpoint (config, preprocessor, weights)
// into a temporary directory that a test may damage.
func copyFixture(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"config.json", "preprocessor_config.json", "model.safetensors"} {
		data, err := os.ReadFile(filepath.Join(parityDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadErrors(t *testing.T) {
	cases := []struct {
		name   string
		damage func(t *testing.T, dir string)
		want   []string // substrings the error must contain
	}{
		{"missing directory", func(t *testing.T, dir string) { os.RemoveAll(dir) }, []string{"config.json"}},
		{"no weights", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "model.safetensors")) }, []string{"safetensors"}},
		{"truncated weights", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "model.safetensors")
			st, _ := os.Stat(p)
			if err := os.Truncate(p, st.Size()/2); err != nil {
				t.Fatal(err)
			}
		}, []string{"model.safetensors"}},
		{"empty weights", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "model.safetensors"), nil, 0o644)
		}, []string{"model.safetensors"}},
		{"shape disagrees with config", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "config.json")
			data, _ := os.ReadFile(p)
			data = []byte(strings.Replace(string(data), `"intermediate_size": 192`, `"intermediate_size": 200`, 1))
			os.WriteFile(p, data, 0o644)
		}, []string{"language_model.model.layers.0.mlp.gate_proj.weight", "shape mismatch", "[200 64]"}},
		{"missing tensor", func(t *testing.T, dir string) {
			ld, err := Load(parityDir)
			if err != nil {
				t.Fatal(err)
			}
			ts, _ := ckpt.WriteItems(ld.Model, "")
			var kept []ckpt.WriteItem
			for _, x := range ts {
				if x.Name != "multi_modal_projector.row_seperator" {
					kept = append(kept, x)
				}
			}
			if err := ckpt.Save(dir, kept, ckpt.SaveOptions{}); err != nil {
				t.Fatal(err)
			}
		}, []string{"multi_modal_projector.row_seperator", "missing"}},
		{"config not JSON", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "config.json"), []byte("{vision_config:"), 0o644)
		}, []string{"config.json"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := copyFixture(t)
			c.damage(t, dir)
			_, err := Load(dir)
			if err == nil {
				t.Fatal("Load succeeded on a damaged checkpoint")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestGenerateErrors(t *testing.T) {
	p, err := LoadPipeline(parityDir, "")
	if err != nil {
		t.Fatal(err)
	}
	p.Model.SetKernels(kernels.TestOptions())
	long := make([]int, 2040)
	cases := []struct {
		name string
		req  Request
		want string
	}{
		{"prompt longer than the context", Request{PromptIDs: long, MaxNewTokens: 16}, "exceeds the context of 2048"},
		{"text without tokenizer", Request{Prompt: "hi", MaxNewTokens: 1}, "no tokenizer.json"},
		{"token outside vocabulary", Request{PromptIDs: []int{1, 999}, MaxNewTokens: 1}, "outside the vocabulary"},
		{"image token without image", Request{PromptIDs: []int{1, 500}, MaxNewTokens: 1}, "image tokens"},
		{"no new tokens", Request{PromptIDs: []int{1}, MaxNewTokens: 0}, "positive"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := p.Generate(context.Background(), c.req)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got error %v, want one containing %q", err, c.want)
			}
		})
	}
}
