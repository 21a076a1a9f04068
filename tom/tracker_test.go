package tom

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/magma-go/magma/som"
	"github.com/magma-go/magma/vision/imaging"
)

// fakeCoTracker stands in for tom/cotracker: every point moves +1 px in x
// per frame and is reported invisible from frame 2 on (an occluded point
// CoTracker still places).
type fakeCoTracker struct{}

func (fakeCoTracker) Track(frames []imaging.Image, q []som.Point) (*Tracks, error) {
	tr := &Tracks{Points: make([][]som.Point, len(frames)), Visible: make([][]bool, len(frames))}
	for t := range frames {
		tr.Points[t] = make([]som.Point, len(q))
		tr.Visible[t] = make([]bool, len(q))
		for n, p := range q {
			tr.Points[t][n] = som.Point{X: p.X + float64(t), Y: p.Y}
			tr.Visible[t][n] = t < 2
		}
	}
	return tr, nil
}

func TestNewTracker(t *testing.T) {
	dir := t.TempDir()
	w := filepath.Join(dir, "scaled_offline.pth")
	if err := os.WriteFile(w, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pth")
	RegisterCoTracker(nil)
	for _, c := range []struct {
		name, weights string
		lk            bool   // an LKTracker comes back
		warn          bool   // with LKWarning
		err           string // else an error containing this
		notBuilt      bool   // errors.Is ErrNoCoTracker
	}{
		{name: "", weights: "", lk: true, warn: true},
		{name: "lk", weights: "", lk: true},
		{name: "lk", weights: w, err: "takes no weights"},
		{name: "cotracker", weights: "", err: "needs its weights"},
		{name: "cotracker", weights: missing, err: "missing.pth"},
		{name: "cotracker", weights: dir, err: "is a directory"},
		{name: "cotracker", weights: w, err: "not built in this binary", notBuilt: true},
		{name: "", weights: w, err: "not built in this binary", notBuilt: true},
		{name: "raft", weights: "", err: `unknown tracker "raft"`},
	} {
		tr, warn, err := NewTracker(c.name, c.weights)
		if c.lk {
			if _, ok := tr.(LKTracker); !ok || err != nil || (warn == LKWarning) != c.warn {
				t.Errorf("%q %q: tracker %T warn %q err %v", c.name, c.weights, tr, warn, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.err) || errors.Is(err, ErrNoCoTracker) != c.notBuilt || tr != nil {
			t.Errorf("%q %q: err %v, want one containing %q (not built: %v)", c.name, c.weights, err, c.err, c.notBuilt)
		}
	}
	if strings.Contains(LKWarning, "\n") {
		t.Error("LKWarning is more than one line")
	}

	// With an implementation registered, the choice builds it and its
	// tracks are marked as estimated through occlusion.
	var got string
	RegisterCoTracker(func(weights string) (Tracker, error) { got = weights; return fakeCoTracker{}, nil })
	defer RegisterCoTracker(nil)
	if !CoTrackerBuilt() {
		t.Fatal("CoTrackerBuilt false after RegisterCoTracker")
	}
	for _, name := range []string{"", "cotracker"} {
		tr, warn, err := NewTracker(name, w)
		if err != nil || warn != "" || got != w {
			t.Fatalf("%q: %v %q (factory got %q)", name, err, warn, got)
		}
		frames := scene(3, 64, 0, 0, 0)
		out, err := tr.Track(frames, GridQueries(64, 64, 2))
		if err != nil || !out.ThroughOcclusion {
			t.Errorf("%q: tracks %+v err %v: want ThroughOcclusion", name, out, err)
		}
	}
	RegisterCoTracker(func(string) (Tracker, error) { return nil, errors.New("bad pickle") })
	if _, _, err := NewTracker("cotracker", w); err == nil || !strings.Contains(err.Error(), "bad pickle") || !strings.Contains(err.Error(), w) {
		t.Errorf("factory error: %v", err)
	}
}

// TestThroughOcclusionRules: for a tracker that estimates occluded
// positions, Magma's rules measure every position (an invisible point
// still moves), while LK-style tracks hold the last visible one.
func TestThroughOcclusionRules(t *testing.T) {
	frames := scene(5, 64, 0, 0, 0)
	q := GridQueries(64, 64, 3)
	tr, _ := fakeCoTracker{}.Track(frames, q)
	// Only point 0 moves (no camera motion); it is visible in steps 0-2 of
	// 0-4 (more than half, so it stays), the others always.
	for ti := range tr.Visible {
		for n := range tr.Visible[ti] {
			tr.Visible[ti][n] = n > 0 || ti < 3
			if n > 0 {
				tr.Points[ti][n] = q[n]
			}
		}
	}
	for _, through := range []bool{true, false} {
		tr.ThroughOcclusion = through
		cfg := DefaultConfig()
		cfg.Grid, cfg.Future, cfg.Tracker = 3, 4, Precomputed{Tracks: tr}
		ts, err := analyze(frames, cfg.withDefaults(), nil)
		if err != nil {
			t.Fatal(err)
		}
		want := q[0].X + 4 // raw: still moving at the last step
		if !through {
			want = q[0].X + 2 // held at the last visible step
		}
		if got := ts.pts[4][0].X; got != want {
			t.Errorf("through occlusion %v: last x %v, want %v", through, got, want)
		}
	}
}
