package data

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/magma-go/magma/tom"
)

// Issue 31 point 2: every synthetic count and every numeric data key is
// bounded (the error names the key, the value and the limit), a given 0 is
// kept (never replaced by the default), and absent keys take the defaults.
func TestRecipeLimits(t *testing.T) {
	for _, c := range []struct {
		name, yaml string
		want       []string // error substrings; none: must parse
	}{
		{"huge ui", "synthetic: {ui: 100000000}", []string{"synthetic.ui", "100000000", "10000"}},
		{"huge videos", "synthetic: {videos: 1001}", []string{"synthetic.videos", "1001", "1000"}},
		{"huge robot", "synthetic: {robot_episodes: 5000}", []string{"synthetic.robot_episodes", "5000", "1000"}},
		{"huge captions", "synthetic: {captions: 10001}", []string{"synthetic.captions", "10001", "10000"}},
		{"negative ui", "synthetic: {ui: -1}", []string{"synthetic.ui", "-1"}},
		{"size 0 given", "synthetic: {size: 0}", []string{"synthetic.size", "0", "[32, 512]"}},
		{"huge size", "synthetic: {size: 4096}", []string{"synthetic.size", "4096", "512"}},
		{"frames 0 given", "synthetic: {frames: 0}", []string{"synthetic.frames", "[2, 256]"}},
		{"too many pixels", "synthetic: {videos: 1000, robot_episodes: 1000, size: 512, frames: 256}", []string{"megapixels", "limit"}},
		{"unknown synthetic key", "synthetic: {uis: 3}", []string{"unknown key", "uis"}},
		{"all zero", "synthetic: {ui: 0, videos: 0, robot_episodes: 0, captions: 0}",
			[]string{"synthetic.ui", "synthetic.videos", "synthetic.robot_episodes", "synthetic.captions", "all 0"}},
		{"workers", "workers: 1000\nsynthetic: {}", []string{"workers", "1000", "64"}},
		{"batch_size", "batch_size: 100000\nsynthetic: {}", []string{"batch_size", "100000", "4096"}},
		{"prefetch", "prefetch: 1000000\nsynthetic: {}", []string{"prefetch", "65536"}},
		{"max_crops", "max_crops: 65\nsynthetic: {}", []string{"max_crops", "64"}},
		{"max_tokens", "max_tokens: 2000000\nsynthetic: {}", []string{"max_tokens", "1048576"}},
		{"ui max_marks 0", "sources: [{type: ui, path: a.json, weight: 1, max_marks: 0}]", []string{"max_marks", "0", "[1, 1000]"}},
		{"ui max_turns", "sources: [{type: ui, path: a.json, weight: 1, max_turns: 1000}]", []string{"max_turns", "1000", "64"}},
		{"video steps", "sources: [{type: video, path: a.json, weight: 1, steps: 5000}]", []string{"steps", "5000", "1024"}},
		{"video grid 0", "sources: [{type: video, path: a.json, weight: 1, grid: 0}]", []string{"grid", "0", "128"}},
		{"video fps", "sources: [{type: video, path: a.json, weight: 1, fps: 0}]", []string{"fps", "0"}},
		{"robot steps", "sources: [{type: robot, path: r, weight: 1, steps: 0}]", []string{"steps", "[1, 1024]"}},
		{"robot grid text", "sources: [{type: robot, path: r, weight: 1, grid: many}]", []string{"grid", "not a number"}},
		{"weight", "sources: [{type: llava, path: a.json, weight: 1e9}]", []string{"weight", "1e+09"}},
		{"zero counts with a source", "synthetic: {ui: 0, videos: 0, robot_episodes: 0, captions: 0}\nsources: [{type: llava, path: a.json, weight: 1}]", nil},
		{"in range", "workers: 64\nsynthetic: {ui: 10000, videos: 0, robot_episodes: 0, captions: 0, size: 32}", nil},
	} {
		_, err := ParseMixtureConfig([]byte(c.yaml), t.TempDir())
		if len(c.want) == 0 {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q lacks %q", c.name, err, w)
			}
		}
	}

	// Given zeros stay zeros; absent keys take the defaults.
	mc, err := ParseMixtureConfig([]byte("synthetic: {ui: 0, captions: 5}"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	d := DefaultSyntheticConfig()
	want := SyntheticConfig{UI: 0, Videos: d.Videos, RobotEpisodes: d.RobotEpisodes, Captions: 5, Size: d.Size, Frames: d.Frames}
	if *mc.Synthetic != want {
		t.Errorf("synthetic %+v, want %+v", *mc.Synthetic, want)
	}
	var names []string
	for _, s := range SyntheticSources(*mc.Synthetic) {
		names = append(names, s.Name)
	}
	if strings.Join(names, ",") != "synthetic-video,synthetic-robot,synthetic-captions" {
		t.Errorf("sources with ui: 0: %v", names)
	}
	// The Go API bounds the counts too (no silent 441 MB).
	if err := GenerateSynthetic(SyntheticConfig{Dir: t.TempDir(), UI: 100000000}, 1); err == nil || !strings.Contains(err.Error(), "synthetic.ui") {
		t.Errorf("GenerateSynthetic with 1e8 screenshots: %v", err)
	}
}

// A count of 0 generates nothing of that kind and the mixture is built
// from the rest; progress is reported with counts.
func TestSyntheticZeroCountsAndProgress(t *testing.T) {
	env := testEnv(t)
	dir := t.TempDir()
	mc, err := ParseMixtureConfig([]byte("synthetic: {ui: 0, videos: 0, robot_episodes: 0, captions: 3}"), dir)
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	mc.Progress = &log
	mix, err := mc.Build(env, dir, 1)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(mix.Sources); n != 1 {
		t.Errorf("%d sources, want 1 (captions only)", n)
	}
	for _, d := range []string{"ui", "video", "robot"} {
		if _, err := os.Stat(filepath.Join(dir, "synthetic-data", d)); err == nil {
			t.Errorf("%s written with a count of 0", d)
		}
	}
	if got := log.String(); got == "" || !strings.Contains(got, "synthetic data: captions 3/3") || strings.Contains(got, "\r") {
		t.Errorf("progress on a non-terminal: %q", got)
	}

	var seen []SyntheticProgress
	err = GenerateSyntheticProgress(SyntheticConfig{Dir: t.TempDir(), UI: 2, Videos: 1, RobotEpisodes: 1, Captions: 0, Frames: 4}, 1,
		func(p SyntheticProgress) { seen = append(seen, p) })
	if err != nil {
		t.Fatal(err)
	}
	want := []SyntheticProgress{{"ui", 0, 2}, {"ui", 1, 2}, {"ui", 2, 2}, {"videos", 0, 1}, {"videos", 1, 1}, {"robot_episodes", 0, 1}, {"robot_episodes", 1, 1}}
	if len(seen) != len(want) {
		t.Fatalf("progress %v, want %v", seen, want)
	}
	for i := range want {
		if seen[i] != want[i] {
			t.Fatalf("progress %v, want %v", seen, want)
		}
	}
	// On a terminal: one redrawn line, ended by finish.
	var tty bytes.Buffer
	p, finish := syntheticPrinter(&tty, true)
	p(SyntheticProgress{"ui", 0, 2})
	p(SyntheticProgress{"ui", 2, 2})
	finish()
	if s := tty.String(); !strings.HasPrefix(s, "\r\033[Ksynthetic data: ui 0/2") || !strings.Contains(s, "ui 2/2") || !strings.HasSuffix(s, "\n") {
		t.Errorf("terminal progress %q", s)
	}
}

// Issue 31 point 6: the synthetic clips and episodes are long enough for
// the ToM defaults (16 future steps, 17 frames) that `magma tom` uses.
func TestSyntheticClipsFitToMDefaults(t *testing.T) {
	d := DefaultSyntheticConfig()
	if need := tom.DefaultConfig().Future + 1; d.Frames < need {
		t.Fatalf("synthetic clips have %d frames, the ToM default horizon needs %d", d.Frames, need)
	}
	dir := t.TempDir()
	if err := GenerateSynthetic(SyntheticConfig{Dir: dir, Videos: 1, RobotEpisodes: 1}, 3); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path string
		src  tom.Source
	}{{filepath.Join(dir, "video", "clip_000.avi"), tom.SourceDemo}, {filepath.Join(dir, "video", "clip_000.avi"), tom.SourceVideo},
		{filepath.Join(dir, "robot", "episode_000"), tom.SourceRobot}} {
		cfg := tom.SourceConfig(c.src)
		cfg.Grid = 6
		res, err := tom.RunFile(c.path, 0, cfg)
		if err != nil {
			t.Fatalf("%s (%s): %v", c.path, c.src, err)
		}
		if c.src != tom.SourceVideo && res.FramesUsed != d.Frames {
			t.Errorf("%s (%s): %d frames used, want %d", c.path, c.src, res.FramesUsed, d.Frames)
		}
	}
}
