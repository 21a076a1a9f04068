package tom

import (
	"fmt"
	"math"

	"github.com/magma-go/magma/som"
	"github.com/magma-go/magma/vision"
)

// Precomputed is a Tracker that returns tracks extracted beforehand, such
// as the CoTracker traces published with Magma's Video-ToM and OXE-ToM
// data, instead of tracking. The tracks must have one point per query.
type Precomputed struct{ Tracks *Tracks }

// Track implements Tracker.
func (p Precomputed) Track(frames []vision.Image, queries []som.Point) (*Tracks, error) {
	tr := p.Tracks
	if tr == nil || len(tr.Points) != len(frames) {
		return nil, errTrackerOutput
	}
	for t := range tr.Points {
		if len(tr.Points[t]) != len(queries) || len(tr.Visible[t]) != len(queries) {
			return nil, fmt.Errorf("%w: %d points per step, the grid has %d", errTrackerOutput, len(tr.Points[t]), len(queries))
		}
	}
	return tr, nil
}

// RunTracks is Run on pre-extracted tracks: tr holds T = Future+1 steps of
// N = g*g points (a CoTracker g x g grid, row-major) in the pixel space of
// first, the frame the marks are drawn on. cfg.Grid and cfg.Future are set
// from the tracks; cfg.Tracker is ignored. The rest of Algorithm 2 —
// visibility filter, camera-motion removal, foreground split, K-Means
// selection, marks and texts — is Run's.
func RunTracks(first vision.Image, tr *Tracks, cfg Config) (*Result, error) {
	T := len(tr.Points)
	if T < 2 || len(tr.Visible) != T {
		return nil, fmt.Errorf("tom: tracks have %d steps and %d visibility rows; need at least 2 steps", T, len(tr.Visible))
	}
	n := len(tr.Points[0])
	g := int(math.Round(math.Sqrt(float64(n))))
	if n == 0 || g*g != n {
		return nil, fmt.Errorf("tom: %d points per step is not a square grid", n)
	}
	cfg.Grid, cfg.Future, cfg.Tracker = g, T-1, Precomputed{Tracks: tr}
	frames := make([]vision.Image, T)
	for i := range frames {
		frames[i] = first // one frame: Run's shot check sees no cut
	}
	return Run(frames, cfg)
}
