package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/magma-go/magma/data"
	"github.com/magma-go/magma/tom"
)

// Issue 29: the tracker choice on `magma tom`. CoTracker3 needs weights
// (the binary links it: a file that is no checkpoint is refused naming the
// file); without weights LK runs with a one-line warning that traces are
// approximate.
func TestTomTrackerChoice(t *testing.T) {
	dir := t.TempDir()
	weights := filepath.Join(dir, "scaled_offline.pth")
	os.WriteFile(weights, []byte("not read"), 0o644)
	out := filepath.Join(dir, "t.json")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--tracker", "cotracker"}, "needs its weights"},
		{[]string{"--tracker", "raft"}, `unknown tracker "raft"`},
		{[]string{"--tracker", "lk", "--tracker-weights", weights}, "takes no weights"},
		{[]string{"--tracker", "cotracker", "--tracker-weights", filepath.Join(dir, "none.pth")}, "none.pth"},
		{[]string{"--tracker", "cotracker", "--tracker-weights", weights}, "scaled_offline.pth"},
		{[]string{"--tracker-weights", weights}, "scaled_offline.pth"},
	} {
		log, err := runMagma(t, append([]string{"tom", "--video", "x.mp4", "--out", out}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error with %q\n%s", c.args, err, c.want, log)
		}
		if strings.Contains(c.want, "not built") && !errors.Is(err, tom.ErrNoCoTracker) {
			t.Errorf("%v: %v is not ErrNoCoTracker", c.args, err)
		}
	}

	img, err := filepath.Abs(filepath.Join(parityDir, "square.png"))
	if err != nil {
		t.Fatal(err)
	}
	frames := filepath.Join(dir, "frames")
	os.Mkdir(frames, 0o755)
	src, _ := os.ReadFile(img)
	for i := 0; i < 5; i++ {
		os.WriteFile(filepath.Join(frames, "f"+string(rune('0'+i))+".png"), src, 0o644)
	}
	for _, c := range []struct {
		args []string
		warn bool
	}{{nil, true}, {[]string{"--tracker", "lk"}, false}} {
		log, err := runMagma(t, append([]string{"tom", "--video", frames, "--out", out, "--future", "4", "--grid", "4"}, c.args...)...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", c.args, err, log)
		}
		n := strings.Count(log, tom.LKWarning)
		if (n == 1) != c.warn || n > 1 {
			t.Errorf("%v: the LK warning appears %d times:\n%s", c.args, n, log)
		}
		var res struct {
			Tracker string `json:"tracker"`
		}
		b, _ := os.ReadFile(out)
		if err := json.Unmarshal(b, &res); err != nil || res.Tracker != "lk" {
			t.Errorf("%v: TRACES.json tracker %q (%v)", c.args, res.Tracker, err)
		}
	}
}

// The same choice on `magma data inspect` for a video source.
func TestDataInspectTracker(t *testing.T) {
	dir := t.TempDir()
	if err := data.GenerateSynthetic(data.SyntheticConfig{Videos: 1, Size: 64, Frames: 5, Dir: dir}, 1); err != nil {
		t.Fatal(err)
	}
	video := filepath.Join(dir, data.SyntheticVideoFile)
	if _, err := runMagma(t, "data", "inspect", video, "--tracker", "cotracker"); err == nil || !strings.Contains(err.Error(), "needs its weights") {
		t.Errorf("--tracker cotracker: %v", err)
	}
	log, err := runMagma(t, "data", "inspect", video, "--steps", "4")
	if err != nil || !strings.Contains(log, "tracker: lk\nwarning: "+tom.LKWarning) {
		t.Errorf("default: %v\n%s", err, log)
	}
}

// --shot-threshold sets the shot check's threshold: a hard cut inside the
// horizon is refused at the default, accepted when the threshold is raised,
// and a negative threshold is an error naming it.
func TestTomShotThreshold(t *testing.T) {
	dir := t.TempDir()
	frames := filepath.Join(dir, "frames")
	os.Mkdir(frames, 0o755)
	for i := 0; i < 5; i++ {
		img := image.NewGray(image.Rect(0, 0, 64, 64))
		for p := range img.Pix {
			img.Pix[p] = uint8((p*7 + p/64*13) % 97) // texture
			if i >= 3 {
				img.Pix[p] = 255 - img.Pix[p] // the cut
			}
		}
		var buf bytes.Buffer
		if err := png.Encode(&buf, img); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(frames, fmt.Sprintf("f%d.png", i)), buf.Bytes(), 0o644)
	}
	out := filepath.Join(dir, "t.json")
	base := []string{"tom", "--video", frames, "--out", out, "--future", "4", "--grid", "4", "--height", "0", "--tracker", "lk"}
	for _, c := range []struct {
		threshold string
		want      string // "" = success
	}{
		{"27", "shot boundary"},
		{"1000000", ""},
		{"-1", "shot threshold"},
	} {
		log, err := runMagma(t, append(base, "--shot-threshold", c.threshold)...)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("--shot-threshold %s: %v\n%s", c.threshold, err, log)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("--shot-threshold %s: %v, want an error with %q", c.threshold, err, c.want)
		}
	}
}
