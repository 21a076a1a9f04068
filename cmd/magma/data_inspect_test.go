package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDataInspect(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"../../data/rlds/testdata/libero_spatial_no_noops"},
			[]string{"source type: rlds", "records: 15", "steps/observation/image: Image uint8 [64 64 3] (step) jpeg", "num_transitions", "What action should the robot take to pick up the black bowl"}},
		// row 1: its traces move 2.8 px per step, foreground under the demo's
		// 2 px rule (row 0's 1.68 px give the SoM fallback)
		{[]string{"../../data/hf/testdata/video_tom", "--video-folder", "../../data/hf/testdata/video_tom/videos", "--index", "1"},
			[]string{"source type: magma_tom", "records: 8", "trace: list<item: list<item: list<item: float32", "The person is doing: C opens the fridge door"}},
		{[]string{"../../data/hf/testdata/mind2web_som", "--index", "1"},
			[]string{"source type: magma_som", "format: arrow-stream", "records: 5", `"MARK": 14`}},
	} {
		png := filepath.Join(dir, "s.png")
		out, err := runMagma(t, append(append([]string{"data", "inspect"}, c.args...), "--out", png)...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", c.args, err, out)
		}
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Fatalf("%v: output lacks %q:\n%s", c.args, w, out)
			}
		}
		if st, err := os.Stat(png); err != nil || st.Size() == 0 {
			t.Fatalf("%v: no PNG: %v", c.args, err)
		}
		os.Remove(png)
	}
	stats := filepath.Join(dir, "dataset_statistics.json")
	if out, err := runMagma(t, "data", "inspect", "../../data/rlds/testdata/fractal20220817_data", "--statistics-out", stats); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	b, err := os.ReadFile(stats)
	if err != nil || !strings.Contains(string(b), `"fractal20220817_data"`) || !strings.Contains(string(b), `"q99"`) {
		t.Fatalf("statistics file: %v %s", err, b)
	}
	if _, err := runMagma(t, "data", "inspect", "../../data/hf/testdata/bad/missing_column"); err == nil {
		t.Fatal("a shard without its trace column was inspected without error")
	}
}
