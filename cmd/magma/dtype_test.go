package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/model"
	"github.com/magma-go/magma/model/ckpt"
)

// bf16Case is a case of the PyTorch golden file's bf16 section: the prompt
// and the greedy tokens of the model with bf16-rounded weights.
type bf16Case struct {
	PromptIDs []int `json:"prompt_ids"`
	Generated []int `json:"generated"`
}

// bf16Golden reads case name of golden.json's bf16 section.
func bf16Golden(t *testing.T, name string) bf16Case {
	t.Helper()
	var golden struct {
		Bf16 map[string]bf16Case `json:"bf16"`
	}
	data, err := os.ReadFile(filepath.Join(parityDir, "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &golden); err != nil {
		t.Fatal(err)
	}
	c, ok := golden.Bf16[name]
	if !ok {
		t.Fatalf("golden.json has no bf16 case %q", name)
	}
	return c
}

// The bf16 PyTorch fixture (two shards) through the CLI: info reports its
// bytes by dtype, stored and as loaded with --dtype f32; generate answers
// with the weights in place (the default) and converted (--dtype f32) with
// PyTorch's greedy tokens; a context too small for the prompt is refused.
func TestDtypeCLI(t *testing.T) {
	dir := filepath.Join(parityDir, "model_bf16")
	c := bf16Golden(t, "square")

	for _, dt := range []string{"", "f32"} {
		out, err := runMagma(t, "info", "--model", dir, "--dtype", dt)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		var info struct {
			Parameters map[string]int64        `json:"parameters"`
			Weights    model.CheckpointWeights `json:"weights"`
		}
		if err := json.Unmarshal([]byte(out), &info); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		w := info.Weights
		if w.Shards != 2 || w.Stored["BF16"] == 0 || len(w.Stored) != 1 {
			t.Errorf("--dtype %q: stored %v in %d shards", dt, w.Stored, w.Shards)
		}
		want := map[string]int64{"BF16": 2 * info.Parameters["total"]}
		if dt == "f32" {
			want = map[string]int64{"F32": 4 * info.Parameters["total"]}
		}
		if fmt.Sprint(w.InMemory.Bytes) != fmt.Sprint(want) {
			t.Errorf("--dtype %q: in memory %v, want %v", dt, w.InMemory.Bytes, want)
		}
	}

	ids := strings.Trim(strings.ReplaceAll(fmt.Sprint(c.PromptIDs), " ", ","), "[]")
	for _, dt := range []string{"stored", "f32"} {
		out, err := runMagma(t, "generate", "--model", dir, "--dtype", dt, "--image", filepath.Join(parityDir, "square.png"),
			"--prompt-ids", ids, "--max-new-tokens", fmt.Sprint(len(c.Generated)), "--max-context", "1024", "--json")
		if err != nil {
			t.Fatalf("--dtype %s: %v\n%s", dt, err, out)
		}
		var res struct {
			OutputIDs []int            `json:"output_ids"`
			Weights   ckpt.WeightStats `json:"weights"`
			Steps     []float64        `json:"decode_step_ms"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if !slices.Equal(res.OutputIDs, c.Generated) {
			t.Errorf("--dtype %s: tokens %v, PyTorch %v", dt, res.OutputIDs, c.Generated)
		}
		if inPlace := res.Weights.InPlace > 0 && res.Weights.Copied == 0; inPlace != (dt == "stored") {
			t.Errorf("--dtype %s: weights %+v", dt, res.Weights)
		}
		if len(res.Steps) != len(c.Generated)-1 {
			t.Errorf("--dtype %s: %d step times for %d tokens", dt, len(res.Steps), len(c.Generated))
		}
	}
	out, err := runMagma(t, "generate", "--model", dir, "--image", filepath.Join(parityDir, "square.png"),
		"--prompt-ids", ids, "--max-new-tokens", "4", "--max-context", "8")
	if err == nil || !strings.Contains(err.Error(), "--max-context") {
		t.Errorf("context of 8: %v\n%s", err, out)
	}
	if _, err := runMagma(t, "generate", "--model", dir, "--dtype", "int8", "--prompt-ids", ids); err == nil || !strings.Contains(err.Error(), "--dtype") {
		t.Errorf("--dtype int8: %v", err)
	}
}

// --compute bf16 (bf16 activations in the decode products) answers on the
// bf16 fixture where the CPU has avx512_bf16 and is refused by name where
// it has not; --compute f32 answers after it (no mode outlives a command).
func TestComputeFlag(t *testing.T) {
	dir := filepath.Join(parityDir, "model_bf16")
	args := []string{"generate", "--model", dir, "--prompt-ids", "1,2,3", "--max-new-tokens", "3", "--max-context", "1024", "--json"}
	out, err := runMagma(t, append(args, "--compute", "bf16")...)
	switch {
	case !kernels.HasBF16Dot:
		if err == nil || !strings.Contains(err.Error(), "avx512_bf16") {
			t.Errorf("--compute bf16 without avx512_bf16: %v", err)
		}
	case err != nil:
		t.Fatalf("--compute bf16: %v\n%s", err, out)
	case !strings.Contains(out, "output_ids"):
		t.Errorf("--compute bf16: %s", out)
	}
	if out, err := runMagma(t, append(args, "--compute", "f32")...); err != nil {
		t.Fatalf("--compute f32: %v\n%s", err, out)
	}
	if _, err := runMagma(t, append(args, "--compute", "fp8")...); err == nil || !strings.Contains(err.Error(), "--compute") {
		t.Errorf("--compute fp8: %v", err)
	}
}

// --kv-cache bf16 (bfloat16 keys and values) answers on the bf16 fixture
// with PyTorch's greedy tokens, as the float32 cache does; a bad value is
// refused by name.
func TestKVCacheFlag(t *testing.T) {
	dir := filepath.Join(parityDir, "model_bf16")
	c := bf16Golden(t, "square")
	ids := strings.Trim(strings.ReplaceAll(fmt.Sprint(c.PromptIDs), " ", ","), "[]")
	args := []string{"generate", "--model", dir, "--image", filepath.Join(parityDir, "square.png"),
		"--prompt-ids", ids, "--max-new-tokens", fmt.Sprint(len(c.Generated)), "--max-context", "1024", "--json"}
	for _, tc := range []struct {
		kv  string
		err string
	}{
		{"f32", ""}, {"bf16", ""}, {"f16", "--kv-cache"}, {"", "--kv-cache"},
	} {
		out, err := runMagma(t, append(args, "--kv-cache", tc.kv)...)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("--kv-cache %q: %v", tc.kv, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("--kv-cache %s: %v\n%s", tc.kv, err, out)
		}
		var res struct {
			OutputIDs []int `json:"output_ids"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if !slices.Equal(res.OutputIDs, c.Generated) {
			t.Errorf("--kv-cache %s: tokens %v, PyTorch %v", tc.kv, res.OutputIDs, c.Generated)
		}
	}
}

// magma init streams: a bf16 tiny checkpoint has the parameter count's
// bytes, in the Hugging Face layout, and loads with its weights in place.
func TestInitStreamsBF16(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tiny")
	out, err := runMagma(t, "init", "--preset", "tiny", "--dtype", "bf16", "--out", dir)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	out, err = runMagma(t, "info", "--model", dir)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var info struct {
		Parameters map[string]int64        `json:"parameters"`
		Weights    model.CheckpointWeights `json:"weights"`
	}
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatal(err)
	}
	if got, want := info.Weights.Stored["BF16"], 2*info.Parameters["total"]; got != want || info.Weights.InMemory.InPlace != want {
		t.Errorf("stored %v, in memory %+v, want %d bytes of BF16 in place", info.Weights.Stored, info.Weights.InMemory, want)
	}
}
