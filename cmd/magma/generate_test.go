package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/magma-go/magma/model"
	"github.com/magma-go/magma/model/ckpt"
)

const parityDir = "../../model/testdata/parity"

// runMagma executes a freshly built command tree in-process, so each call
// sees only its own arguments and every flag starts at its default.
func runMagma(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

// `magma generate --json --logits-out` on the PyTorch parity fixture prints
// the reference's greedy tokens and writes its logits.
func TestGenerateMatchesReference(t *testing.T) {
	var golden struct {
		Cases map[string]struct {
			PromptIDs []int `json:"prompt_ids"`
			Generated []int `json:"generated"`
		} `json:"cases"`
	}
	data, err := os.ReadFile(filepath.Join(parityDir, "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &golden); err != nil {
		t.Fatal(err)
	}
	c := golden.Cases["tall"]
	ids := strings.Trim(strings.ReplaceAll(fmt.Sprint(c.PromptIDs), " ", ","), "[]")
	logits := filepath.Join(t.TempDir(), "logits.safetensors")
	out, err := runMagma(t, "generate", "--model", parityDir, "--image", filepath.Join(parityDir, "tall.png"),
		"--prompt-ids", ids, "--max-new-tokens", fmt.Sprint(len(c.Generated)), "--json", "--logits-out", logits)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var res struct {
		OutputIDs []int `json:"output_ids"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if fmt.Sprint(res.OutputIDs) != fmt.Sprint(c.Generated) {
		t.Fatalf("output ids %v, reference %v", res.OutputIDs, c.Generated)
	}
	got, err := ckpt.OpenSafetensors(logits)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	want, err := ckpt.OpenSafetensors(filepath.Join(parityDir, "golden_tall.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer want.Close()
	g, gs, _ := got.Tensor("logits")
	w, ws, _ := want.Tensor("logits")
	if fmt.Sprint(gs) != fmt.Sprint(ws) {
		t.Fatalf("logits shape %v, reference %v", gs, ws)
	}
	var md, mr float64
	for i := range g {
		md = math.Max(md, math.Abs(float64(g[i]-w[i])))
		mr = math.Max(mr, math.Abs(float64(w[i])))
	}
	if md/mr > 1e-4 {
		t.Fatalf("logits rel diff %.3g", md/mr)
	}
}

func TestInfoTokens(t *testing.T) {
	out, err := runMagma(t, "info", "--preset", "magma-8b", "--image-width", "1920", "--image-height", "1080")
	if err != nil {
		t.Fatal(err)
	}
	var info model.Info
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatal(err)
	}
	// 1920x1080 → a 2x2 grid of 512 crops, 16x16 features each: 2*2*256 + 2*16 separators.
	if info.Image.Rows != 2 || info.Image.Cols != 2 || info.Image.Tokens != 1056 {
		t.Fatalf("image info %+v", info.Image)
	}
	if v := info.Parameters["vision"]; v != 843391872 {
		t.Fatalf("ConvNeXt-XXL trunk parameters %d", v)
	}
}

// info --plan compiles a shape's program without weights: the default
// pretrain's largest shape takes the 302.9 MiB arena the trainer reports,
// a full 8B training step's plan is dominated by its gradients.
func TestInfoPlan(t *testing.T) {
	cases := []struct {
		args      []string
		mode      string
		wantArena int64 // 0: only checked positive
		outputsGE int64
	}{
		{[]string{"--preset", "tiny", "--plan", "4,512,8,512", "--train"}, "training", 317644800, 0},
		{[]string{"--preset", "tiny", "--plan", "1,256"}, "forward", 0, 0},
		{[]string{"--preset", "magma-8b", "--plan", "1,2048,1,1024", "--train", "--recompute"}, "training+recompute", 0, 8_000_000_000 * 4},
	}
	for _, c := range cases {
		out, err := runMagma(t, append([]string{"info"}, c.args...)...)
		if err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		var info model.Info
		if err := json.Unmarshal([]byte(out), &info); err != nil {
			t.Fatal(err)
		}
		p := info.Plan
		if p != nil {
			t.Logf("%v: %s", c.args, p.Summary)
		}
		if p == nil || p.Mode != c.mode || p.ArenaBytes <= 0 || (c.wantArena != 0 && p.ArenaBytes != c.wantArena) || p.OutputBytes < c.outputsGE {
			t.Errorf("%v: plan %+v", c.args, p)
		}
	}
	for _, bad := range [][]string{
		{"--preset", "tiny", "--plan", "4"},
		{"--preset", "tiny", "--plan", "0,512"},
		{"--preset", "tiny", "--plan", "4,x"},
		{"--preset", "tiny", "--train"},
		{"--preset", "tiny", "--plan", "1,64", "--recompute"},
	} {
		if _, err := runMagma(t, append([]string{"info"}, bad...)...); err == nil {
			t.Errorf("info %v: no error", bad)
		}
	}
}
