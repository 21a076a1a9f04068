package data

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/magma-go/magma/som"
	"github.com/magma-go/magma/tom"
	"github.com/magma-go/magma/vision/imaging"
)

type fakeCoTracker struct{}

func (fakeCoTracker) Track(frames []imaging.Image, q []som.Point) (*tom.Tracks, error) {
	return tom.LKTracker{}.Track(frames, q)
}

// Issue 29: the video and robot sources take the tracker choice from the
// data section (tracker:, tracker_weights:) or their own keys; bad names
// are refused when the recipe is read, CoTracker3 without weights or
// without an implementation in the binary when the sources open, and the
// LK fallback warns once.
func TestRecipeTracker(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"tracker: raft\nsynthetic: {videos: 1}\n", `data: tracker: "raft" is not cotracker or lk`},
		{"sources: [{type: video, path: v.json, weight: 1, tracker: raft}]\n", `data: source 0 (video): tracker: "raft" is not cotracker or lk`},
		{"sources: [{type: robot, path: r, weight: 1, tracker_weights: 3}]\n", `data: source 0 (robot): tracker_weights: 3 is not a string`},
	} {
		if _, err := ParseMixtureConfig([]byte(c.yaml), t.TempDir()); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.yaml, err, c.want)
		}
	}

	dir := t.TempDir()
	weights := filepath.Join(dir, "w.pth")
	if err := os.WriteFile(weights, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	build := func(extra string) (*Mixture, []string, error) {
		env := testEnv(t)
		var logs []string
		env.Logf = func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) }
		cfg, err := ParseMixtureConfig([]byte(extra+"synthetic: {ui: 0, videos: 1, robot_episodes: 1, captions: 0, frames: 5}\n"), dir)
		if err != nil {
			return nil, nil, err
		}
		mix, err := cfg.Build(env, dir, 1)
		return mix, logs, err
	}
	// default: LK, one warning for both sources
	mix, logs, err := build("")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(strings.Join(logs, "\n"), tom.LKWarning); n != 1 {
		t.Errorf("LK warning logged %d times: %q", n, logs)
	}
	for _, s := range mix.Sources {
		if tr := sourceTracker(s); tr != nil && tom.TrackerName(tr) != tom.TrackerLK {
			t.Errorf("%s: tracker %T", s.Name(), tr)
		}
	}
	if _, logs, err := build("tracker: lk\n"); err != nil || len(logs) != 0 {
		t.Errorf("tracker: lk: %v, logs %q", err, logs)
	}
	if _, _, err := build("tracker: cotracker\n"); err == nil || !strings.Contains(err.Error(), "needs its weights") || !strings.Contains(err.Error(), `source "synthetic-video"`) {
		t.Errorf("cotracker without weights: %v", err)
	}
	// relative weights resolve against the recipe's folder
	tom.RegisterCoTracker(nil)
	if _, _, err := build("tracker_weights: w.pth\n"); !errors.Is(err, tom.ErrNoCoTracker) || !strings.Contains(err.Error(), weights) {
		t.Errorf("weights without CoTracker3 in the binary: %v", err)
	}
	var loads int
	tom.RegisterCoTracker(func(w string) (tom.Tracker, error) { loads++; return fakeCoTracker{}, nil })
	defer tom.RegisterCoTracker(nil)
	mix, logs, err = build("tracker_weights: w.pth\n")
	if err != nil || len(logs) != 0 || loads != 1 {
		t.Fatalf("CoTracker3 registered: %v, logs %q, weights loaded %d times (want once for both sources)", err, logs, loads)
	}
	n := 0
	for _, s := range mix.Sources {
		if tr := sourceTracker(s); tr != nil {
			n++
			if tom.TrackerName(tr) != tom.TrackerCoTracker {
				t.Errorf("%s: tracker %s", s.Name(), tom.TrackerName(tr))
			}
		}
	}
	if n != 2 {
		t.Errorf("%d video/robot sources", n)
	}
}

func sourceTracker(s Source) tom.Tracker {
	switch s := s.(type) {
	case *VideoSource:
		return s.tracker
	case *RobotSource:
		return s.tracker
	}
	return nil
}

// data inspect takes the same choice and reports it.
func TestInspectTracker(t *testing.T) {
	dir := t.TempDir()
	sc := SyntheticConfig{Videos: 1, RobotEpisodes: 1, Size: 64, Frames: 5, Dir: dir}
	if err := GenerateSynthetic(sc, 1); err != nil {
		t.Fatal(err)
	}
	video := filepath.Join(dir, SyntheticVideoFile)
	tom.RegisterCoTracker(nil)
	if _, err := Inspect(video, InspectOptions{Type: "video", Tracker: "cotracker"}); err == nil || !strings.Contains(err.Error(), "needs its weights") {
		t.Errorf("inspect --tracker cotracker: %v", err)
	}
	if _, err := Inspect(video, InspectOptions{Type: "video", TrackerWeights: video}); !errors.Is(err, tom.ErrNoCoTracker) {
		t.Errorf("inspect --tracker-weights: %v", err)
	}
	for _, typ := range []string{"video", "robot"} {
		p := video
		if typ == "robot" {
			p = filepath.Join(dir, SyntheticRobotDir)
		}
		in, err := Inspect(p, InspectOptions{Type: typ, Steps: 4})
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		var sb strings.Builder
		in.WriteText(&sb)
		if in.Tracker != "lk" || len(in.Warnings) != 1 || in.Warnings[0] != tom.LKWarning || len(in.Bad) != 0 ||
			!strings.Contains(sb.String(), "tracker: lk\nwarning: "+tom.LKWarning) {
			t.Errorf("%s: tracker %q warnings %q bad %q\n%s", typ, in.Tracker, in.Warnings, in.Bad, sb.String())
		}
		if in, err := Inspect(p, InspectOptions{Type: typ, Steps: 4, Tracker: "lk"}); err != nil || len(in.Warnings) != 0 {
			t.Errorf("%s --tracker lk: %v %q", typ, err, in.Warnings)
		}
	}
}
