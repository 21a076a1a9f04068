package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/magma-go/magma/data"
)

// Issue 31 point 13 (one item): an --out that cannot be written (under
// /proc, under a file) is reported before any data is prepared or model
// loaded, for pretrain and finetune.
func TestOutCheckedBeforeData(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	sft := filepath.Join(dir, "sft.json")
	if err := os.WriteFile(sft, []byte(`[{"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]}]`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{"/proc/magma-run", filepath.Join(file, "run")} {
		for _, args := range [][]string{
			{"pretrain", "--max-steps", "1"},
			{"finetune", "sft", "--data", sft, "--model", filepath.Join(dir, "no-model")},
			{"finetune", "libero", "--data", dir, "--init", filepath.Join(dir, "no-model")},
		} {
			t0 := time.Now()
			log, err := runMagma(t, append(args, "--out", out)...)
			if err == nil || !strings.Contains(err.Error(), "--out "+out) {
				t.Errorf("%v --out %s: %v\n%s", args, out, err, log)
			}
			if strings.Contains(log, "preparing data") || strings.Contains(log, "synthetic data") {
				t.Errorf("%v --out %s: data prepared before the check:\n%s", args, out, log)
			}
			if d := time.Since(t0); d > 10*time.Second {
				t.Errorf("%v --out %s: %v before the error", args, out, d)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(file, "run")); err == nil {
		t.Error("a folder appeared under a file")
	}
}

// Issue 31 point 2 through the command: a synthetic count over its limit
// and all counts at 0 fail at once, naming the keys, without writing data.
func TestPretrainRecipeLimits(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		synthetic string
		want      []string
	}{
		{"{ui: 100000000}", []string{"synthetic.ui", "100000000", "10000"}},
		{"{ui: 0, videos: 0, robot_episodes: 0, captions: 0}", []string{"synthetic.ui", "synthetic.videos", "synthetic.robot_episodes", "synthetic.captions"}},
	} {
		recipe := filepath.Join(dir, "r.yaml")
		if err := os.WriteFile(recipe, []byte("model: {preset: tiny}\ndata:\n  synthetic: "+c.synthetic+"\nsteps: 1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, "run")
		log, err := runMagma(t, "pretrain", "--config", recipe, "--out", out)
		if err == nil {
			t.Fatalf("%s accepted:\n%s", c.synthetic, log)
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q lacks %q", c.synthetic, err, w)
			}
		}
		if _, err := os.Stat(filepath.Join(out, "synthetic-data")); err == nil {
			t.Errorf("%s: synthetic data written", c.synthetic)
		}
	}
}

// Issue 31 points 5 and 6 through the commands, on the data a default
// pretrain writes: `magma data inspect` opens each synthetic source folder
// and `magma tom` with its default flags accepts the synthetic clips and
// robot episodes.
func TestSyntheticDataWithInspectAndTom(t *testing.T) {
	dir := t.TempDir()
	sd := filepath.Join(dir, "synthetic-data")
	if err := data.GenerateSynthetic(data.SyntheticConfig{Dir: sd, UI: 1, Videos: 1, RobotEpisodes: 1, Captions: 1}, 0); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ path, typ string }{{"ui", "ui"}, {"video", "video"}, {"robot", "robot"}, {"captions", "llava"}} {
		png := filepath.Join(dir, c.path+".png")
		log, err := runMagma(t, "data", "inspect", filepath.Join(sd, c.path), "--out", png)
		if err != nil || !strings.Contains(log, "source type: "+c.typ) {
			t.Errorf("inspect %s: %v\n%s", c.path, err, log)
		}
		if st, err := os.Stat(png); err != nil || st.Size() == 0 {
			t.Errorf("inspect %s: no PNG: %v", c.path, err)
		}
	}
	for _, v := range []string{filepath.Join(sd, "video", "clip_000.avi"), filepath.Join(sd, "robot", "episode_000")} {
		out := filepath.Join(dir, "t.json")
		log, err := runMagma(t, "tom", "--video", v, "--out", out)
		if err != nil || !strings.Contains(log, "over 17 frames") {
			t.Errorf("tom %s: %v\n%s", v, err, log)
		}
	}
	// Too few frames left after --start: the error says what to change.
	_, err := runMagma(t, "tom", "--video", filepath.Join(sd, "video", "clip_000.avi"), "--out", filepath.Join(dir, "t.json"), "--start", "5")
	if err == nil || !strings.Contains(err.Error(), "12 frames, need 17") || !strings.Contains(err.Error(), "smaller --future") {
		t.Errorf("tom --start 5: %v", err)
	}
}
