package tom

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/magma-go/magma/som"
	"github.com/magma-go/magma/vision/imaging"
)

// Tracker names accepted by NewTracker (magma's --tracker flag and the
// recipes' tracker: key).
const (
	TrackerCoTracker = "cotracker"
	TrackerLK        = "lk"
)

// LKWarning is the one-line warning NewTracker gives when it falls back to
// LK because no CoTracker3 weights were given.
const LKWarning = "no CoTracker3 weights given (--tracker-weights / tracker_weights): tracking with Lucas-Kanade, traces are approximate"

// ErrNoCoTracker: CoTracker3 was asked for but this binary has no
// implementation registered (RegisterCoTracker).
var ErrNoCoTracker = errors.New("tom: CoTracker3 is not built in this binary (use --tracker lk)")

// CoTrackerFactory builds a CoTracker3 tracker from a checkpoint file
// (scaled_offline.pth / scaled_online.pth).
type CoTrackerFactory func(weights string) (Tracker, error)

var (
	coMu      sync.Mutex
	coFactory CoTrackerFactory
)

// RegisterCoTracker installs the CoTracker3 implementation NewTracker
// builds for "cotracker". The package that implements it calls this from
// its init, and the binary links it in with a blank import, so that tom
// (and data, which uses NewTracker) never import it. A nil f unregisters.
func RegisterCoTracker(f CoTrackerFactory) {
	coMu.Lock()
	coFactory = f
	coMu.Unlock()
}

// CoTrackerBuilt reports whether a CoTracker3 implementation is registered.
func CoTrackerBuilt() bool {
	coMu.Lock()
	defer coMu.Unlock()
	return coFactory != nil
}

// NewTracker resolves the tracker choice of --tracker NAME and
// --tracker-weights FILE:
//
//	name ""           CoTracker3 when weights are given, else LK with LKWarning
//	name "cotracker"  CoTracker3 from weights (required)
//	name "lk"         LKTracker (weights must not be given)
//
// A CoTracker3 choice needs a readable weights file and an implementation
// in the binary (ErrNoCoTracker otherwise). The tracker it returns marks
// its tracks ThroughOcclusion (Magma's rules use every position) and
// serialises Track calls, so one tracker can serve several workers. warn
// is "" unless the choice fell back to LK by default.
func NewTracker(name, weights string) (tr Tracker, warn string, err error) {
	switch name {
	case "":
		if weights == "" {
			return LKTracker{}, LKWarning, nil
		}
	case TrackerLK:
		if weights != "" {
			return nil, "", fmt.Errorf("tom: tracker lk takes no weights (%s is for cotracker)", weights)
		}
		return LKTracker{}, "", nil
	case TrackerCoTracker:
		if weights == "" {
			return nil, "", errors.New("tom: tracker cotracker needs its weights (--tracker-weights / tracker_weights: a CoTracker3 scaled_offline.pth or scaled_online.pth)")
		}
	default:
		return nil, "", fmt.Errorf("tom: unknown tracker %q (want %s or %s)", name, TrackerCoTracker, TrackerLK)
	}
	if st, err := os.Stat(weights); err != nil {
		return nil, "", fmt.Errorf("tom: CoTracker3 weights: %w", err)
	} else if st.IsDir() {
		return nil, "", fmt.Errorf("tom: CoTracker3 weights %s is a directory, not a .pth file", weights)
	}
	coMu.Lock()
	f := coFactory
	coMu.Unlock()
	if f == nil {
		return nil, "", fmt.Errorf("%w: cannot load %s", ErrNoCoTracker, weights)
	}
	t, err := f(weights)
	if err != nil {
		return nil, "", fmt.Errorf("tom: CoTracker3 weights %s: %w", weights, err)
	}
	if t == nil {
		return nil, "", fmt.Errorf("tom: CoTracker3 weights %s: the implementation returned no tracker", weights)
	}
	return &occlusionTracker{t: t}, "", nil
}

// TrackerName names a tracker for TRACES.json: "lk", "cotracker",
// "precomputed", or "" for another implementation.
func TrackerName(t Tracker) string {
	switch t.(type) {
	case LKTracker, *LKTracker:
		return TrackerLK
	case *occlusionTracker:
		return TrackerCoTracker
	case Precomputed, *Precomputed:
		return "precomputed"
	}
	return ""
}

// occlusionTracker wraps a tracker that estimates occluded positions
// (CoTracker): its tracks are marked ThroughOcclusion, and calls are
// serialised.
type occlusionTracker struct {
	mu sync.Mutex
	t  Tracker
}

// Track implements Tracker.
func (o *occlusionTracker) Track(frames []imaging.Image, queries []som.Point) (*Tracks, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	tr, err := o.t.Track(frames, queries)
	if err != nil {
		return nil, err
	}
	if tr == nil {
		return nil, errTrackerOutput
	}
	tr.ThroughOcclusion = true
	return tr, nil
}
