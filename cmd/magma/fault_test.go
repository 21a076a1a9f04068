package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/magma-go/magma/eval"
)

// Issue 20, point 9: unknown splits and unreadable annotation files are
// errors (non-zero exit), not a run over zero records.
func TestEvalScreenSpotBadInputFails(t *testing.T) {
	dir := t.TempDir()
	if err := eval.WriteSynthetic(dir, eval.SyntheticOptions{Records: 3, Widgets: 3, Seed: 1, Format: eval.FormatScreenSpot}); err != nil {
		t.Fatal(err)
	}
	out, err := runMagma(t, "eval", "screenspot", "--data", dir, "--split", "tablet", "--predictions", filepath.Join(dir, "none.jsonl"))
	if err == nil || !strings.Contains(err.Error(), `"tablet"`) || !strings.Contains(err.Error(), "mobile") {
		t.Fatalf("--split tablet: %v\n%s", err, out)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "screenspot_*.json"))
	if len(files) == 0 {
		t.Fatal("no annotation files written")
	}
	for _, bad := range []string{`[{"img_filename": "a.png", "bbox": [1,2`, "{not json at all\n", "   \n"} {
		if err := os.WriteFile(files[0], []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := runMagma(t, "eval", "screenspot", "--data", dir, "--predictions", filepath.Join(dir, "none.jsonl"))
		if err == nil || !strings.Contains(err.Error(), filepath.Base(files[0])) {
			t.Fatalf("malformed %q: %v\n%s", bad, err, out)
		}
	}
}

// Issue 20, point 9: invalid ToM values are refused, not replaced.
func TestTomRefusesInvalidValues(t *testing.T) {
	for _, args := range [][]string{{"--grid", "0"}, {"--grid", "-3"}, {"--future", "0"}, {"--start", "-1"}, {"--grid", "100000"}} {
		out, err := runMagma(t, append([]string{"tom", "--video", "x.mp4", "--out", filepath.Join(t.TempDir(), "t.json")}, args...)...)
		if err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(args[0], "--")) {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
}

// Issue 20, point 10: help, log and behaviour agree on the learning rate
// and on what trains.
func TestFinetuneLiberoLRAndCounts(t *testing.T) {
	help, _ := runMagma(t, "finetune", "libero", "--help")
	if strings.Contains(help, "(default 2e-05)") || !strings.Contains(help, "default 0.0005 with LoRA") {
		t.Fatalf("--lr help:\n%s", help)
	}
	suite := liberoSuite(t)
	root := t.TempDir()
	initDir := filepath.Join(root, "init")
	if out, err := runMagma(t, "init", "--preset", "tiny", "--out", initDir, "--seed", "1"); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	out, err := runMagma(t, "finetune", "libero", "--data", suite, "--init", initDir, "--out", filepath.Join(root, "run"),
		"--shots", "1", "--steps", "1", "--batch-size", "2", "--save-every", "0", "--lora-rank", "4")
	if err != nil {
		t.Fatalf("finetune: %v\n%s", err, out)
	}
	ad := regexp.MustCompile(`(\d+) adapter parameters train`).FindStringSubmatch(out)
	tr := regexp.MustCompile(`training (\d+) of (\d+) parameters \(lora\), lr ([0-9.e-]+) \(constant\)`).FindStringSubmatch(out)
	if ad == nil || tr == nil || ad[1] != tr[1] || tr[3] != "0.0005" {
		t.Fatalf("adapter count %v, training line %v:\n%s", ad, tr, out)
	}
	if _, err := runMagma(t, "finetune", "libero", "--data", suite, "--init", initDir, "--out", filepath.Join(root, "x"), "--lr", "-1"); err == nil {
		t.Fatal("--lr -1 accepted")
	}
}
