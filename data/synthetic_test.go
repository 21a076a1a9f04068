package data

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSyntheticMixture(t *testing.T) {
	env := testEnv(t)
	dir := t.TempDir()
	cfg, err := ParseMixtureConfig([]byte(`
batch_size: 4
workers: 2
on_error: stop
synthetic: {ui: 6, videos: 4, robot_episodes: 3, captions: 6}
`), dir)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	mix, err := cfg.Build(env, dir, 7)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("generated and indexed in %v", time.Since(t0))
	stamp, _ := os.ReadFile(filepath.Join(dir, "synthetic-data", syntheticStamp))
	if len(stamp) == 0 {
		t.Fatal("no stamp")
	}
	s, err := mix.Stream(context.Background(), StreamOptions{Seed: 1, BatchSize: cfg.BatchSize, Workers: cfg.Workers})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 = time.Now()
	kinds := map[string]int{}
	for i := 0; i < 10; i++ {
		b, err := s.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, smp := range b.Samples {
			ans := supervisedText(t, env.Tokenizer, smp)
			// Video and robot items are multi-turn (caption or action turn,
			// then ToM/SoM) with up to two images.
			if strings.Contains(ans, "should be moved") {
				kinds["tom"]++
			}
			switch {
			case strings.Contains(smp.Source, "robot"):
				kinds["action"]++
			case strings.Contains(ans, "should be moved"):
			case strings.Contains(ans, " Mark: "):
				kinds["ui-grounding"]++
			case strings.Contains(ans, "Mark "):
				kinds["som"]++
			default:
				kinds["text"]++
			}
			if len(smp.Images) < 1 || len(smp.Images) > 2 {
				t.Fatalf("%s: %d images", smp.Source, len(smp.Images))
			}
			if i == 0 {
				t.Logf("%s #%d: %d tokens, answer %q", filepath.Base(smp.Source), smp.Index, len(smp.IDs), ans)
			}
		}
	}
	t.Logf("40 samples in %v: %v", time.Since(t0), kinds)
	for _, k := range []string{"tom", "ui-grounding", "action", "text"} {
		if kinds[k] == 0 {
			t.Errorf("no %s sample in 40", k)
		}
	}
	// deterministic generation: same seed, same files
	dir2 := t.TempDir()
	c2 := *cfg.Synthetic
	c2.Dir = dir2
	if err := GenerateSynthetic(c2, 7); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{SyntheticUIFile, SyntheticVideoFile, SyntheticCaptionFile, "robot/episode_000/episode.json", "ui/ui_0001.png", "robot/episode_001/000003.png"} {
		a, _ := os.ReadFile(filepath.Join(dir, "synthetic-data", f))
		b, _ := os.ReadFile(filepath.Join(dir2, f))
		if len(a) == 0 || string(a) != string(b) {
			t.Errorf("%s differs between two generations with the same seed", f)
		}
	}
}
