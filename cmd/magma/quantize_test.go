package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/magma-go/magma/model"
)

// `magma quantize` on the bf16 parity fixture: the folder's info reports
// the mix and bytes by type, generate (with --verify, which checks the
// folder's manifest and every weight) runs on the GGUF's blocks in place,
// and bad arguments are refused before anything is written.
func TestQuantizeCLI(t *testing.T) {
	src := filepath.Join(parityDir, "model_bf16")
	out := filepath.Join(t.TempDir(), "q8")
	if msg, err := runMagma(t, "quantize", "--model", src, "--type", "q8_0", "--out", out); err != nil || !strings.Contains(msg, "bytes by type: Q8_0") {
		t.Fatalf("%v\n%s", err, msg)
	}
	msg, err := runMagma(t, "info", "--model", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, msg)
	}
	var info struct {
		Weights model.CheckpointWeights `json:"weights"`
	}
	if err := json.Unmarshal([]byte(msg), &info); err != nil {
		t.Fatalf("%v: %s", err, msg)
	}
	q := info.Weights.Quantization
	if q == nil || q.Type != "q8_0" || q.ByType["Q8_0"].Tensors == 0 || info.Weights.Stored["Q8_0"] == 0 || info.Weights.InMemory.Bytes["Q8_0"] == 0 {
		t.Fatalf("info weights %+v", info.Weights)
	}
	msg, err = runMagma(t, "generate", "--model", out, "--image", filepath.Join(parityDir, "tall.png"),
		"--prompt-ids", "1,5,500,7", "--max-new-tokens", "3", "--json", "--verify")
	if err != nil {
		t.Fatalf("%v\n%s", err, msg)
	}
	var res struct {
		OutputIDs []int `json:"output_ids"`
		Weights   struct {
			Bytes   map[string]int64 `json:"bytes_by_dtype"`
			Copied  int64            `json:"copied_bytes"`
			InPlace int64            `json:"in_place_bytes"`
		} `json:"weights"`
	}
	if err := json.Unmarshal([]byte(msg[strings.Index(msg, "{"):]), &res); err != nil {
		t.Fatalf("%v: %s", err, msg)
	}
	if len(res.OutputIDs) != 3 || res.Weights.Bytes["Q8_0"] == 0 || res.Weights.Copied != 0 {
		t.Fatalf("generate on the quantized folder: %+v", res)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--model", src, "--type", "q3_k", "--out", filepath.Join(t.TempDir(), "x")}, "q4_k_m"},
		{[]string{"--model", src, "--type", "q8_0", "--out", src}, "already holds a checkpoint"},
		{[]string{"--model", out, "--type", "q4_k", "--out", filepath.Join(t.TempDir(), "z")}, "already quantized"},
		{[]string{"--model", filepath.Join(t.TempDir(), "none"), "--type", "q8_0", "--out", filepath.Join(t.TempDir(), "y")}, "config"},
	} {
		if msg, err := runMagma(t, append([]string{"quantize"}, c.args...)...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("quantize %v: %v (want %q)\n%s", c.args, err, c.want, msg)
		}
	}
}
