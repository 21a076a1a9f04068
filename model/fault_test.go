package model

import (
	"github.com/magma-go/magma/model/ckpt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadRefusesUnworkableCheckpoints (issue 20, point 7): checkpoints
// that load but cannot work are refused at load, naming the key or tensor.
func TestLoadRefusesUnworkableCheckpoints(t *testing.T) {
	edit := func(file, old, new string) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			p := filepath.Join(dir, file)
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(data), old) {
				t.Fatalf("%s has no %q", file, old)
			}
			if err := os.WriteFile(p, []byte(strings.Replace(string(data), old, new, 1)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	cases := []struct {
		name   string
		damage func(t *testing.T, dir string)
		want   []string
	}{
		{"all-NaN lm_head", func(t *testing.T, dir string) {
			ld, err := Load(parityDir)
			if err != nil {
				t.Fatal(err)
			}
			ts, _ := ckpt.WriteItems(ld.Model, "")
			for i, x := range ts {
				if x.Name == "language_model.lm_head.weight" {
					nan := make([]float32, len(x.Data))
					for j := range nan {
						nan[j] = float32(math.NaN())
					}
					ts[i].Data = nan
				}
			}
			if err := ckpt.Save(dir, ts, ckpt.SaveOptions{}); err != nil {
				t.Fatal(err)
			}
		}, []string{"language_model.lm_head.weight", "NaN"}},
		{"num_crops 1e9", edit(PreprocessorFileName, `"num_crops": 4`, `"num_crops": 1000000000`), []string{"num_crops", "1000000000"}},
		{"num_hidden_layers below the tensors", edit(ConfigFileName, `"num_hidden_layers": 2`, `"num_hidden_layers": 1`),
			[]string{"num_hidden_layers", "layer 1"}},
		{"image_token_index is EOS", edit(ConfigFileName, `"image_token_index": 500`, `"image_token_index": 2`),
			[]string{"image_token_index", "eos_token_id"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := copyFixture(t)
			c.damage(t, dir)
			_, err := Load(dir)
			if err == nil {
				t.Fatal("Load accepted a checkpoint that cannot work")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}
