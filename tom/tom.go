package tom

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"math/rand"
	"runtime"
	"sort"
	"strconv"
	"strings"

	"gocv.io/x/gocv"

	"github.com/magma-go/magma/som"
	"github.com/magma-go/magma/vision/imaging"
)

// Source names a data source whose official ToM settings Config follows.
// microsoft/Magma uses different thresholds and cluster counts per source
// (see SourceConfig); lengths are in pixels of the frames as tracked.
type Source string

// The sources with official settings.
const (
	// SourceDemo is tools/som_tom/demo.py: camera motion above 0.5 px per
	// step, foreground above 2 px, k+ in [2,5], k- in [6,14], frames
	// resized to height 512.
	SourceDemo Source = "demo"
	// SourceVideo is data/conversations.py (Ego4D, Epic, Sth-Sth, ...):
	// camera motion above 1 px, foreground above 3 px, k+ in [2,5], k- in
	// [6,14], a random start frame and traces to the end of the clip with
	// points closer than 2 grid units removed.
	SourceVideo Source = "video"
	// SourceRobot is data/openx_magma/data_utils.py (Open-X): camera motion
	// above 1 px, foreground above 1 px, k+ in [2,4], k- in [4,9], traces
	// from the step's frame to start+16, close points removed (the released
	// recipes pass --remove_static_trace_pts True).
	SourceRobot Source = "robot"
)

// ParseSource accepts "demo", "video" or "robot".
func ParseSource(s string) (Source, error) {
	switch Source(s) {
	case SourceDemo, SourceVideo, SourceRobot:
		return Source(s), nil
	}
	return "", fmt.Errorf("tom: unknown source %q (want demo, video or robot)", s)
}

// Config holds Algorithm 2's settings. SourceConfig gives the official
// values of each source; DefaultConfig is the demo's.
type Config struct {
	// Source selects the official per-source rules (SourceDemo when empty)
	// and fills the zero-valued numbers below from SourceConfig(Source).
	Source Source
	Grid   int   // s: s x s query grid (15)
	Future int   // l: future steps for demo and robot; the clip uses Future+1 frames (16)
	Seed   int64 // drives k, cluster members, the start frame and the mark ids (1)

	// Eta: a trace "moves" for camera-motion detection when its mean
	// per-step displacement, in pixels, exceeds it (demo 0.5, video and
	// robot 1).
	Eta float64
	// Epsilon: after camera-motion removal a trace is foreground when its
	// mean per-step displacement in pixels exceeds it (demo 2, video 3,
	// robot 1).
	Epsilon float64
	// CameraMotionFrac: global camera motion when more than this fraction
	// of the traces move (0.8).
	CameraMotionFrac float64
	// ForceCamera always removes camera motion, as the official video code
	// does for egocentric sources (ego4d, epic, exoego4d).
	ForceCamera bool
	// RANSACThreshold is the homography reprojection threshold in px (4.0).
	RANSACThreshold float64
	// MinVisibleFrac: traces visible in at most this fraction of the steps
	// are dropped (0.5, strictly more must be visible as in Magma).
	MinVisibleFrac float64
	// ShotThreshold for DetectShots (27).
	ShotThreshold float64
	// PosClusters and NegClusters are the inclusive ranges k is drawn from
	// for the foreground and background K-Means (demo and video [2,5] and
	// [6,14]; robot [2,4] and [4,9]). One random member of each cluster
	// becomes a mark.
	PosClusters, NegClusters [2]int
	// StartMotionRatio (video): the start frame is uniform over the steps
	// before this fraction of the clip's accumulated motion (0.5,
	// settings.yaml's trace_planner.step_rightmost_ratio).
	StartMotionRatio float64
	// CloseDist (video, robot): consecutive answer points closer than this
	// many grid units are dropped (2, Magma's remove_close_points_tensor).
	CloseDist float64
	// Height resizes every frame to this height (aspect kept, bicubic)
	// before tracking, as the demo does with 512; 0 tracks the frames as
	// given. Marks, Width and Height are then in the resized frame.
	Height int

	// Tracker defaults to LKTracker{}.
	Tracker Tracker
	// Task fills the ToM question; the source picks "The person is doing"
	// (demo, video) or "The robot is doing" (robot).
	Task string
}

// SourceConfig returns the official settings of a source (an unknown or
// empty source gives the demo's).
func SourceConfig(src Source) Config {
	c := Config{Source: SourceDemo, Grid: 15, Future: 16, Seed: 1, Eta: 0.5, Epsilon: 2, CameraMotionFrac: 0.8,
		RANSACThreshold: 4.0, MinVisibleFrac: 0.5, ShotThreshold: DefaultShotThreshold,
		PosClusters: [2]int{2, 5}, NegClusters: [2]int{6, 14}}
	switch src {
	case SourceVideo:
		c.Source, c.Eta, c.Epsilon = SourceVideo, 1, 3
		c.StartMotionRatio, c.CloseDist = 0.5, 2
	case SourceRobot:
		c.Source, c.Eta, c.Epsilon, c.CloseDist = SourceRobot, 1, 1, 2
		c.PosClusters, c.NegClusters = [2]int{2, 4}, [2]int{4, 9}
	}
	return c
}

// DefaultConfig returns the official demo settings (tools/som_tom/demo.py),
// without the resize (Height 0).
func DefaultConfig() Config { return SourceConfig(SourceDemo) }

// Limits of Validate: a grid of MaxGrid² query points and MaxFuture steps
// already mean minutes of tracking per clip.
const (
	MaxGrid   = 128
	MaxFuture = 1024
	MaxHeight = 4096
)

// Validate refuses values out of range; zero fields mean the defaults of
// SourceConfig (so the zero Config is valid), negative or absurd ones are
// errors naming the field rather than being replaced silently.
func (c Config) Validate() error {
	bad := func(name string, v any, want string) error {
		return fmt.Errorf("tom: %s %v must be %s", name, v, want)
	}
	nonNeg := func(v float64) bool { return v >= 0 && !math.IsInf(v, 0) } // false for NaN
	switch {
	case c.Grid < 0 || c.Grid > MaxGrid:
		return bad("grid", c.Grid, fmt.Sprintf("in [1, %d]", MaxGrid))
	case c.Future < 0 || c.Future > MaxFuture:
		return bad("future", c.Future, fmt.Sprintf("in [1, %d]", MaxFuture))
	case !nonNeg(c.Epsilon):
		return bad("epsilon", c.Epsilon, "a finite number >= 0")
	case !nonNeg(c.Eta):
		return bad("eta", c.Eta, "a finite number >= 0")
	case !nonNeg(c.CameraMotionFrac) || c.CameraMotionFrac > 1:
		return bad("camera motion fraction", c.CameraMotionFrac, "in [0, 1]")
	case !nonNeg(c.RANSACThreshold):
		return bad("RANSAC threshold", c.RANSACThreshold, "a finite number >= 0")
	case !nonNeg(c.MinVisibleFrac) || c.MinVisibleFrac > 1:
		return bad("minimum visible fraction", c.MinVisibleFrac, "in [0, 1]")
	case !nonNeg(c.ShotThreshold):
		return bad("shot threshold", c.ShotThreshold, "a finite number >= 0")
	case c.Source != "" && c.Source != SourceDemo && c.Source != SourceVideo && c.Source != SourceRobot:
		return bad("source", c.Source, "demo, video or robot")
	case c.PosClusters != [2]int{} && (c.PosClusters[0] < 1 || c.PosClusters[1] < c.PosClusters[0] || c.PosClusters[1] > MaxGrid*MaxGrid):
		return bad("foreground cluster range", c.PosClusters, "[lo, hi] with 1 <= lo <= hi")
	case c.NegClusters != [2]int{} && (c.NegClusters[0] < 1 || c.NegClusters[1] < c.NegClusters[0] || c.NegClusters[1] > MaxGrid*MaxGrid):
		return bad("background cluster range", c.NegClusters, "[lo, hi] with 1 <= lo <= hi")
	case !nonNeg(c.StartMotionRatio) || c.StartMotionRatio > 1:
		return bad("start motion ratio", c.StartMotionRatio, "in [0, 1]")
	case !nonNeg(c.CloseDist):
		return bad("close-point distance", c.CloseDist, "a finite number >= 0")
	case c.Height < 0 || c.Height > MaxHeight:
		return bad("height", c.Height, fmt.Sprintf("in [0, %d]", MaxHeight))
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Source == "" {
		c.Source = SourceDemo
	}
	d := SourceConfig(c.Source)
	setI := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	setF := func(v *float64, def float64) {
		if *v <= 0 {
			*v = def
		}
	}
	setI(&c.Grid, d.Grid)
	setI(&c.Future, d.Future)
	setF(&c.Epsilon, d.Epsilon)
	setF(&c.Eta, d.Eta)
	setF(&c.CameraMotionFrac, d.CameraMotionFrac)
	setF(&c.RANSACThreshold, d.RANSACThreshold)
	setF(&c.MinVisibleFrac, d.MinVisibleFrac)
	setF(&c.ShotThreshold, d.ShotThreshold)
	setF(&c.StartMotionRatio, d.StartMotionRatio)
	setF(&c.CloseDist, d.CloseDist)
	if c.PosClusters[0] <= 0 || c.PosClusters[1] < c.PosClusters[0] {
		c.PosClusters = d.PosClusters
	}
	if c.NegClusters[0] <= 0 || c.NegClusters[1] < c.NegClusters[0] {
		c.NegClusters = d.NegClusters
	}
	if c.Tracker == nil {
		c.Tracker = LKTracker{}
	}
	return c
}

// frames returns how many frames a source's run uses out of n given: the
// whole clip for video, Future+1 otherwise.
func (c Config) frames(n int) int {
	if c.Source == SourceVideo {
		return n
	}
	return c.Future + 1
}

// Mark is one selected trace: its SoM id, class and points in pixels from
// the start frame on, in the start frame's coordinates (camera motion
// removed).
type Mark struct {
	ID         int          `json:"id"`
	Foreground bool         `json:"foreground"`
	Points     [][2]float64 `json:"points"`
	Visible    []bool       `json:"visible"`
}

// Result is Algorithm 2's output; it marshals to the TRACES.json layout of
// `magma tom`.
type Result struct {
	Source     Source  `json:"source"`
	Tracker    string  `json:"tracker,omitempty"` // the point tracker (TrackerName: lk, cotracker, precomputed)
	Width      int     `json:"width"`
	Height     int     `json:"height"`
	FPS        float64 `json:"fps"`
	FramesUsed int     `json:"frames_used"`
	// StartFrame is the frame the traces start at (video: drawn at random;
	// 0 otherwise), relative to the first frame given.
	StartFrame   int  `json:"start_frame"`
	CameraMotion bool `json:"camera_motion"`
	// Marks are sorted by id; foreground ones are the marks that move.
	Marks []Mark `json:"marks"`
	// SoMText is the SoM answer for every mark at the start frame.
	SoMText string `json:"som_text"`
	// ToMText is the ToM answer (empty when no trace is foreground; see Warnings).
	ToMText string `json:"tom_text"`
	// Steps is the horizon the ToM question asks for (the longest answer trace).
	Steps int `json:"steps"`
	// ToMQuestion is the matching question (Config.Task, the mark ids, Steps).
	ToMQuestion string `json:"-"`
	// Warnings say why a run produced no ToM answer (nothing moved, or
	// nothing trackable), so that an empty tom_text is never silent.
	Warnings []string `json:"warnings,omitempty"`
	// Marked is the start frame with the SoM marks drawn.
	Marked imaging.Image `json:"-"`
	// First is the unmarked start frame.
	First imaging.Image `json:"-"`
}

// RunFile reads the frames a source needs from path (video or image
// folder, see ReadFrames) starting at frame start, then runs Run: Future+1
// frames for demo and robot, the rest of the clip (at most MaxFrames) for
// video.
func RunFile(path string, start int, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if start < 0 {
		return nil, fmt.Errorf("tom: start frame %d must be >= 0", start)
	}
	cfg = cfg.withDefaults()
	n := cfg.Future + 1
	if cfg.Source == SourceVideo {
		n = 0
	}
	clip, err := ReadFrames(path, start, n)
	if err != nil {
		return nil, err
	}
	res, err := Run(clip.Frames, cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	res.FPS = clip.FPS
	return res, nil
}

// Run is Algorithm 2 as microsoft/Magma runs it for cfg.Source: shot
// check, grid tracking, visibility filter, camera-motion detection and
// homography removal, foreground/background split, K-Means with one random
// member per cluster, SoM on the start frame and the training strings.
// Demo and robot use frames[0:Future+1] (fewer is ErrTooShort); video uses
// every frame given (at least 2) and starts the traces at a random frame.
// A shot boundary inside the frames used is ErrShotBoundary.
func Run(frames []imaging.Image, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if err := checkFrames(frames); err != nil {
		return nil, err
	}
	T := cfg.frames(len(frames))
	if len(frames) < T || T < 2 {
		return nil, fmt.Errorf("%w: %d frames, need %d (future %d)", ErrTooShort, len(frames), max(T, 2), cfg.Future)
	}
	frames = frames[:T]
	cuts, err := DetectShots(frames, cfg.ShotThreshold)
	if err != nil {
		return nil, err
	}
	if len(cuts) > 0 {
		return nil, fmt.Errorf("%w: new shot at frame %d of %d", ErrShotBoundary, cuts[0], T)
	}
	if cfg.Height > 0 && frames[0].H != cfg.Height {
		if frames, err = resizeFrames(frames, cfg.Height); err != nil {
			return nil, err
		}
	}
	rng := rand.New(rand.NewSource(cfg.Seed))
	ts, err := analyze(frames, cfg, rng)
	if err != nil {
		return nil, err
	}
	W, H, pts, vis, fg, bg := ts.w, ts.h, ts.pts, ts.vis, ts.fg, ts.bg
	res := &Result{Source: cfg.Source, Tracker: TrackerName(cfg.Tracker), Width: W, Height: H, FramesUsed: T, StartFrame: ts.start,
		First: frames[ts.start], CameraMotion: ts.camera}
	drawK := func(r [2]int) int { return r[0] + rng.Intn(r[1]-r[0]+1) }
	kPos := drawK(cfg.PosClusters)
	kNeg := drawK(cfg.NegClusters)
	fgSel, err := clusterSelect(pts, fg, kPos, cfg.Seed, rng)
	if err != nil {
		return nil, err
	}
	bgSel, err := clusterSelect(pts, bg, kNeg, cfg.Seed+1, rng)
	if err != nil {
		return nil, err
	}
	sel := append(append([]int(nil), fgSel...), bgSel...)
	// Magma's som_prompting: all_idx = randperm(total); mark i gets all_idx[i]+1.
	ids := rng.Perm(len(sel))
	for i := range ids {
		ids[i]++
	}
	L := len(pts)
	res.Marks = make([]Mark, len(sel))
	first := make([]som.Point, len(sel))
	for j, i := range sel {
		m := Mark{ID: ids[j], Foreground: j < len(fgSel), Points: make([][2]float64, L), Visible: make([]bool, L)}
		for t := 0; t < L; t++ {
			m.Points[t] = [2]float64{pts[t][i].X, pts[t][i].Y}
			m.Visible[t] = vis[t][i]
		}
		res.Marks[j] = m
		first[j] = pts[0][i]
	}
	drawn, err := som.DrawPoints(res.First, clampPts(first, W, H), som.Options{IDs: ids})
	if err != nil {
		return nil, err
	}
	res.Marked = drawn.Image
	sort.Slice(res.Marks, func(a, b int) bool { return res.Marks[a].ID < res.Marks[b].ID })
	res.SoMText = som.SoMAnswer(drawn.GridMarks())
	rules := AnswerRules{}
	switch cfg.Source {
	case SourceVideo:
		rules = AnswerRules{CloseDist: cfg.CloseDist, MinPoints: L/4 + 1, MinSpeed: 1}
	case SourceRobot:
		rules = AnswerRules{CloseDist: cfg.CloseDist, MinSpeed: 1}
	}
	if !ts.static {
		res.ToMText, res.Steps = ToMAnswer(res.Marks, W, H, rules)
	}
	allIDs := append([]int(nil), ids...)
	sort.Ints(allIDs)
	res.ToMQuestion = ToMQuestion(cfg.Task, res.Steps, allIDs, cfg.Source == SourceRobot)
	if res.ToMText == "" {
		res.Warnings = append(res.Warnings, noTraceReason(frames[ts.start], ts, cfg))
	}
	return res, nil
}

// traceSet is the tracked, filtered and camera-compensated grid traces
// from the start frame on, split into foreground and background (indices
// into pts[t]).
type traceSet struct {
	w, h    int
	start   int
	pts     [][]som.Point
	vis     [][]bool
	fg, bg  []int
	camera  bool
	static  bool // at most one foreground trace: Magma falls back to SoM
	queries []som.Point
	dropped int // traces removed by the visibility filter
}

// analyze runs Algorithm 2 up to the foreground/background split.
func analyze(frames []imaging.Image, cfg Config, rng *rand.Rand) (*traceSet, error) {
	T := len(frames)
	W, H := frames[0].W, frames[0].H
	queries := GridQueries(W, H, cfg.Grid)
	tr, err := cfg.Tracker.Track(frames, queries)
	if err != nil {
		return nil, fmt.Errorf("tom: tracking: %w", err)
	}
	if len(tr.Points) != T || len(tr.Visible) != T {
		return nil, errTrackerOutput
	}
	for t := 0; t < T; t++ {
		if len(tr.Points[t]) != len(queries) || len(tr.Visible[t]) != len(queries) {
			return nil, errTrackerOutput
		}
	}
	allPts := make([][]som.Point, T)
	allVis := make([][]bool, T)
	for t := 0; t < T; t++ {
		allPts[t] = append([]som.Point(nil), tr.Points[t]...)
		allVis[t] = append([]bool(nil), tr.Visible[t]...)
	}
	raw := tr.ThroughOcclusion
	if !raw {
		holdLastVisible(allPts, allVis)
	}

	// Video: a random start before StartMotionRatio of the accumulated
	// motion (conversations.py: frame_rightmost, then randint(0, rightmost)).
	start := 0
	if cfg.Source == SourceVideo {
		start = rng.Intn(rightmostStart(allPts, cfg.StartMotionRatio))
	}
	allPts, allVis = allPts[start:], allVis[start:]
	L := len(allPts)

	// Visibility filter: visible in more than half the steps.
	var keep []int
	for n := range queries {
		v := 0
		for t := 0; t < L; t++ {
			if allVis[t][n] {
				v++
			}
		}
		if float64(v) > cfg.MinVisibleFrac*float64(L) {
			keep = append(keep, n)
		}
	}
	if len(keep) == 0 {
		flat, n := flatQueries(frames[start], queries)
		return nil, fmt.Errorf("%w (%d of %d query points lie on texture-less regions with nothing to track)", ErrNoTraces, flat, n)
	}
	N := len(keep)
	pts := make([][]som.Point, L) // [t][i] over kept traces
	vis := make([][]bool, L)
	for t := 0; t < L; t++ {
		pts[t] = make([]som.Point, N)
		vis[t] = make([]bool, N)
		for i, n := range keep {
			pts[t][i], vis[t][i] = allPts[t][n], allVis[t][n]
		}
	}

	ts := &traceSet{w: W, h: H, start: start, pts: pts, vis: vis, queries: queries, dropped: len(queries) - N}
	// length is Magma's over every step for a tracker that estimates
	// occluded positions; otherwise the lost steps are left out.
	length := func(i int) float64 {
		if raw {
			return traceLength(pts, i)
		}
		return visibleLength(pts, vis, i)
	}
	moving := 0
	for i := 0; i < N; i++ {
		if length(i) > cfg.Eta {
			moving++
		}
	}
	if cfg.ForceCamera || float64(moving) > cfg.CameraMotionFrac*float64(N) {
		ts.camera = true
		if err := removeCameraMotion(pts, vis, cfg.RANSACThreshold, raw); err != nil {
			return nil, err
		}
	}

	// Foreground / background split on the lengths after camera-motion
	// removal (conversations.py and openx_magma recompute them).
	var fg, bg []int
	for i := 0; i < N; i++ {
		if length(i) > cfg.Epsilon {
			fg = append(fg, i)
		} else {
			bg = append(bg, i)
		}
	}
	ts.fg, ts.bg = fg, bg
	ts.static = len(fg) == 0 || (cfg.Source != SourceDemo && len(fg) <= 1)
	return ts, nil
}

// rightmostStart is Magma's frame_rightmost: the number of steps whose
// accumulated mean motion stays below ratio of the total, at least 1 and
// at most T-1 (T-1 is the last step that still has a future).
func rightmostStart(pts [][]som.Point, ratio float64) int {
	T := len(pts)
	if T < 2 {
		return 1
	}
	steps := make([]float64, T-1)
	total := 0.0
	for t := 1; t < T; t++ {
		s := 0.0
		for i := range pts[t] {
			s += math.Hypot(pts[t][i].X-pts[t-1][i].X, pts[t][i].Y-pts[t-1][i].Y)
		}
		if n := len(pts[t]); n > 0 {
			s /= float64(n)
		}
		steps[t-1] = s
		total += s
	}
	n, acc := 0, 0.0
	for _, s := range steps {
		acc += s
		if acc/(1e-5+total) < ratio {
			n++
		}
	}
	return min(max(1, n), T-1)
}

func resizeFrames(frames []imaging.Image, h int) ([]imaging.Image, error) {
	w := int(float64(frames[0].W) * float64(h) / float64(frames[0].H))
	if w < 1 {
		w = 1
	}
	out := make([]imaging.Image, len(frames))
	dst := gocv.NewMat()
	defer dst.Close()
	for i, f := range frames {
		m, err := rgbMat(f)
		if err != nil {
			return nil, err
		}
		gocv.Resize(m, &dst, image.Pt(w, h), 0, 0, gocv.InterpolationCubic)
		m.Close()
		out[i] = imaging.Image{W: w, H: h, Pix: dst.ToBytes()}
	}
	return out, nil
}

func imin(a, b int) int {
	if a < b {
		return a
	}
	return b
}

func clampPts(p []som.Point, w, h int) []som.Point {
	out := make([]som.Point, len(p))
	for i, q := range p {
		out[i] = som.Point{X: math.Min(math.Max(q.X, 0), float64(w)), Y: math.Min(math.Max(q.Y, 0), float64(h))}
	}
	return out
}

// holdLastVisible replaces each invisible position with the last visible
// one (frame 0 is always visible), so that an occluded or lost point does
// not carry the tracker's drifting guess into the targets.
func holdLastVisible(pts [][]som.Point, vis [][]bool) {
	for t := 1; t < len(pts); t++ {
		for i := range pts[t] {
			if !vis[t][i] {
				pts[t][i] = pts[t-1][i]
			}
		}
	}
}

// traceLength is Magma's visual_trace_length with image_size (1,1): the
// mean displacement in pixels over all consecutive steps of trace i.
func traceLength(pts [][]som.Point, i int) float64 {
	if len(pts) < 2 {
		return 0
	}
	s := 0.0
	for t := 1; t < len(pts); t++ {
		s += math.Hypot(pts[t][i].X-pts[t-1][i].X, pts[t][i].Y-pts[t-1][i].Y)
	}
	return s / float64(len(pts)-1)
}

// visibleLength is traceLength over the visible steps of trace i only
// (the steps t with vis[t][i]), for trackers whose invisible positions are
// not estimates: a lost point then counts with the speed it was seen
// moving at, neither slowed by its held steps nor sped up by a guess.
func visibleLength(pts [][]som.Point, vis [][]bool, i int) float64 {
	s, n := 0.0, 0
	for t := 1; t < len(pts); t++ {
		if vis[t][i] {
			s += math.Hypot(pts[t][i].X-pts[t-1][i].X, pts[t][i].Y-pts[t-1][i].Y)
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return s / float64(n)
}

// removeCameraMotion fits, for every future frame t, a RANSAC homography
// from frame t's points to their frame-0 positions and maps frame t's
// points through it: the traces then live in the first frame's
// coordinates. raw (a tracker that estimates occluded positions) fits on
// every point as Magma does; otherwise only visible points are fitted and
// mapped, and an invisible point holds its previous, already mapped,
// position (mapping a held position with a later frame's homography would
// move it with the camera). A frame with fewer than 4 points to fit or no
// homography keeps its points and marks them invisible.
func removeCameraMotion(pts [][]som.Point, vis [][]bool, thr float64, raw bool) error {
	N := len(pts[0])
	for t := 1; t < len(pts); t++ {
		var idx []int
		for i := 0; i < N; i++ {
			if raw || vis[t][i] {
				idx = append(idx, i)
			}
		}
		hm, ok := homography(pts[t], pts[0], idx, thr)
		if !ok {
			for i := 0; i < N; i++ {
				vis[t][i] = false
				if !raw {
					pts[t][i] = pts[t-1][i]
				}
			}
			continue
		}
		for i := 0; i < N; i++ {
			if !raw && !vis[t][i] {
				pts[t][i] = pts[t-1][i]
				continue
			}
			p := pts[t][i]
			x := hm[0]*p.X + hm[1]*p.Y + hm[2]
			y := hm[3]*p.X + hm[4]*p.Y + hm[5]
			z := hm[6]*p.X + hm[7]*p.Y + hm[8]
			if math.Abs(z) < 1e-12 {
				vis[t][i] = false
				if !raw {
					pts[t][i] = pts[t-1][i]
				}
				continue
			}
			pts[t][i] = som.Point{X: x / z, Y: y / z}
		}
	}
	return nil
}

func homography(src, dst []som.Point, idx []int, thr float64) ([9]float64, bool) {
	var hm [9]float64
	if len(idx) < 4 {
		return hm, false
	}
	a := gocv.NewMatWithSize(len(idx), 1, gocv.MatTypeCV32FC2)
	defer a.Close()
	b := gocv.NewMatWithSize(len(idx), 1, gocv.MatTypeCV32FC2)
	defer b.Close()
	av, err1 := a.DataPtrFloat32()
	bv, err2 := b.DataPtrFloat32()
	if err1 != nil || err2 != nil {
		return hm, false
	}
	for j, i := range idx {
		av[2*j], av[2*j+1] = float32(src[i].X), float32(src[i].Y)
		bv[2*j], bv[2*j+1] = float32(dst[i].X), float32(dst[i].Y)
	}
	mask := gocv.NewMat()
	defer mask.Close()
	h := gocv.FindHomography(a, &b, gocv.HomograpyMethodRANSAC, thr, &mask, 2000, 0.995)
	defer h.Close()
	if h.Empty() || h.Rows() != 3 || h.Cols() != 3 || h.Type() != gocv.MatTypeCV64F {
		return hm, false
	}
	v, err := h.DataPtrFloat64()
	if err != nil || len(v) != 9 {
		return hm, false
	}
	copy(hm[:], v)
	for _, x := range hm {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return hm, false
		}
	}
	return hm, true
}

// flatMinEig is the smallest structure-tensor eigenvalue (mean squared
// Sobel gradient, squared grey levels per pixel) at which a query point counts as
// trackable: below it the window is flat or a straight edge, and no point
// tracker can follow it.
const flatMinEig = 0.25

// noTraceReason says why a run has no ToM answer: too few trackable
// (textured) query points, or no trace moving more than Epsilon.
func noTraceReason(first imaging.Image, ts *traceSet, cfg Config) string {
	flat, n := flatQueries(first, ts.queries)
	nfg := len(ts.fg)
	switch {
	case n > 0 && flat*2 >= n:
		return fmt.Sprintf("no ToM answer: %d of %d query points lie on texture-less (flat colour or straight-edge) regions with no trackable points, "+
			"so their motion cannot be measured (%d moving traces after camera-motion removal, %d dropped as invisible); "+
			"a flat-colour object needs texture or corners to be traced", flat, n, nfg, ts.dropped)
	default:
		return fmt.Sprintf("no ToM answer: %d of %d traces move more than %.3g px per step after camera-motion removal (%s rules need %s); "+
			"the clip looks static over these frames", nfg, len(ts.pts[0]), cfg.Epsilon, cfg.Source, map[bool]string{true: "at least 2", false: "at least 1"}[cfg.Source != SourceDemo])
	}
}

// flatQueries counts the query points whose 21x21 window on img has a
// smallest structure-tensor eigenvalue below flatMinEig.
func flatQueries(img imaging.Image, queries []som.Point) (flat, n int) {
	g, err := grayMat(img)
	if err != nil {
		return 0, 0
	}
	defer g.Close()
	gf := gocv.NewMat()
	defer gf.Close()
	g.ConvertTo(&gf, gocv.MatTypeCV32F)
	gx, gy := gocv.NewMat(), gocv.NewMat()
	defer gx.Close()
	defer gy.Close()
	gocv.Sobel(gf, &gx, gocv.MatTypeCV32F, 1, 0, 3, 0.125, 0, gocv.BorderReflect101)
	gocv.Sobel(gf, &gy, gocv.MatTypeCV32F, 0, 1, 3, 0.125, 0, gocv.BorderReflect101)
	xv, e1 := gx.DataPtrFloat32()
	yv, e2 := gy.DataPtrFloat32()
	if e1 != nil || e2 != nil {
		return 0, 0
	}
	W, H := img.W, img.H
	const r = 10
	for _, q := range queries {
		cx, cy := int(math.Round(q.X)), int(math.Round(q.Y))
		var sxx, syy, sxy float64
		c := 0
		for y := max(0, cy-r); y <= min(H-1, cy+r); y++ {
			for x := max(0, cx-r); x <= min(W-1, cx+r); x++ {
				a, b := float64(xv[y*W+x]), float64(yv[y*W+x])
				sxx += a * a
				syy += b * b
				sxy += a * b
				c++
			}
		}
		if c == 0 {
			continue
		}
		sxx, syy, sxy = sxx/float64(c), syy/float64(c), sxy/float64(c)
		tr, det := sxx+syy, sxx*syy-sxy*sxy
		minEig := tr/2 - math.Sqrt(math.Max(0, tr*tr/4-det))
		n++
		if minEig < flatMinEig {
			flat++
		}
	}
	return flat, n
}

// kmeansPP is OpenCV's KMEANS_PP_CENTERS (2). gocv v0.31's KMeansPPCenters
// constant is 1, which OpenCV reads as KMEANS_USE_INITIAL_LABELS and then
// aborts on the uninitialised labels.
const kmeansPP gocv.KMeansFlags = 2

var kmCriteria = gocv.NewTermCriteria(gocv.Count|gocv.EPS, 100, 1e-3)

// clusterSelect runs K-Means (OpenCV, k-means++ init, 3 attempts, OpenCV's
// RNG seeded with seed) with min(k, members) clusters on the flattened
// traces [x0,y0,x1,y1,...] of the given members and returns one member per
// non-empty cluster drawn uniformly by rng, in label order, as Magma's
// cluster_traces_kmeans does (num_pts_to_sample = 1, randperm). None gives
// nil; one member is returned as is.
func clusterSelect(pts [][]som.Point, members []int, k int, seed int64, rng *rand.Rand) ([]int, error) {
	if len(members) == 0 || k <= 0 {
		return nil, nil
	}
	if len(members) == 1 {
		return append([]int(nil), members...), nil
	}
	k = min(k, len(members))
	T := len(pts)
	D := 2 * T
	data := gocv.NewMatWithSize(len(members), D, gocv.MatTypeCV32F)
	defer data.Close()
	dv, err := data.DataPtrFloat32()
	if err != nil {
		return nil, err
	}
	for r, i := range members {
		for t := 0; t < T; t++ {
			dv[r*D+2*t], dv[r*D+2*t+1] = float32(pts[t][i].X), float32(pts[t][i].Y)
		}
	}
	labels, centers := gocv.NewMat(), gocv.NewMat()
	defer labels.Close()
	defer centers.Close()
	// OpenCV's kmeans draws from the calling thread's cv::theRNG().
	runtime.LockOSThread()
	gocv.SetRNGSeed(int(seed & 0x7fffffff))
	gocv.KMeans(data, k, &labels, kmCriteria, 3, kmeansPP, &centers)
	runtime.UnlockOSThread()
	if labels.Rows()*labels.Cols() != len(members) || labels.Type() != gocv.MatTypeCV32S {
		return nil, fmt.Errorf("tom: k-means returned no result")
	}
	byCluster := make([][]int, k)
	for r := range members {
		c := int(labels.GetIntAt(r, 0))
		if c >= 0 && c < k {
			byCluster[c] = append(byCluster[c], members[r])
		}
	}
	var out []int
	for _, ms := range byCluster {
		if len(ms) > 0 {
			out = append(out, ms[rng.Intn(len(ms))])
		}
	}
	return out, nil
}

// ToMQuestion is Magma's ToM question over the marks ids (sorted), task and
// horizon steps. Video (data/conversations.py):
//
//	The image is split into 256x256 grids, and labeled with numeric marks [1, 4, 7].\n
//	The person is doing: {task}. To finish the task, how to move the numerical marks in the image for the next {steps} steps?\n
//
// Robot (data/openx_magma/data_utils.py, visual SoM format) writes "numeric
// marks: [1, 4, 7]." and "The robot is doing: {task}.". The ids are
// printed as a Python list, as the f-string does.
func ToMQuestion(task string, steps int, ids []int, robot bool) string {
	marks, who := " ", "The person is doing: "
	if robot {
		marks, who = ": ", "The robot is doing: "
	}
	return "The image is split into 256x256 grids, and labeled with numeric marks" + marks + pyIntList(ids) + ".\n" + who + task +
		". To finish the task, how to move the numerical marks in the image for the next " + strconv.Itoa(steps) + " steps?\n"
}

// pyIntList is Python's str() of a list of ints: "[1, 4, 7]".
func pyIntList(ids []int) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.Itoa(id)
	}
	return "[" + strings.Join(s, ", ") + "]"
}

// AnswerRules are the per-source filters Magma applies to a foreground
// trace before it enters the ToM answer. The zero value (demo, robot)
// keeps every point.
type AnswerRules struct {
	// CloseDist drops each point closer than this many grid units to the
	// last kept one, then every point with a grid coordinate <= 0 (video:
	// 2, remove_close_points_tensor and the "invisible" filter).
	CloseDist float64
	// MinPoints drops a trace left with fewer points (video: T/4+1 of the
	// T frames, Magma's "size(0) <= step_to_predict // 4").
	MinPoints int
	// MinSpeed drops a trace whose mean step on the grid, after the point
	// filters, is below it (video and robot: 1, settings.yaml's
	// postive_speed_threshold).
	MinSpeed float64
}

// ToMAnswer is Magma's ToM answer over the foreground marks (sorted by id)
// and the horizon the question should ask for (the longest answer trace):
//
//	Mark a at [x,y], Mark b at [x,y] should be moved, and their future positions are:\n\n
//	"Mark a": "[[x,y],[x,y],...]"\n\n"Mark b": "[[x,y],...]"\n\n
//
// with every coordinate on the 256 grid (som.GridCoord) and only the
// future points (steps 1..) in the lists; every entry, the last included,
// ends with a blank line. No foreground mark left gives "" and 0.
func ToMAnswer(marks []Mark, w, h int, rules AnswerRules) (string, int) {
	ms := make([]Mark, 0, len(marks))
	for _, m := range marks {
		if m.Foreground && len(m.Points) > 0 {
			ms = append(ms, m)
		}
	}
	sort.SliceStable(ms, func(a, b int) bool { return ms[a].ID < ms[b].ID })
	var heads []string
	var body strings.Builder
	steps := 0
	for _, m := range ms {
		pts, speed := gridTrace(m.Points, w, h, rules.CloseDist)
		if len(pts) == 0 || len(pts) < rules.MinPoints || speed < rules.MinSpeed {
			continue
		}
		steps = max(steps, len(pts)-1)
		heads = append(heads, "Mark "+strconv.Itoa(m.ID)+" at "+som.FormatPoint(pts[0][0], pts[0][1]))
		body.WriteString("\"Mark " + strconv.Itoa(m.ID) + "\": \"" + som.FormatTrace(pts[1:]) + "\"\n\n")
	}
	if len(heads) == 0 {
		return "", 0
	}
	return strings.Join(heads, ", ") + " should be moved, and their future positions are:\n\n" + body.String(), steps
}

// gridTrace maps a pixel trace to grid floats 256*x/w, 256*y/h, drops
// close points (closeDist > 0) and then non-positive ones as Magma's video
// and robot code do, and quantises with som.GridCoord. speed is the mean
// step of the kept float points (NaN-free; 0 for a single point).
func gridTrace(p [][2]float64, w, h int, closeDist float64) ([][2]int, float64) {
	g := make([][2]float64, len(p))
	for i, q := range p {
		g[i] = [2]float64{som.CoordGrid * q[0] / float64(w), som.CoordGrid * q[1] / float64(h)}
	}
	if closeDist > 0 {
		kept := [][2]float64{g[0]}
		for _, q := range g[1:] {
			l := kept[len(kept)-1]
			if math.Hypot(q[0]-l[0], q[1]-l[1]) >= closeDist {
				kept = append(kept, q)
			}
		}
		g = kept[:0:0]
		for _, q := range kept {
			if q[0] > 0 && q[1] > 0 {
				g = append(g, q)
			}
		}
	}
	out := make([][2]int, len(g))
	speed := 0.0
	for i, q := range g {
		out[i] = [2]int{gridQ(q[0]), gridQ(q[1])}
		if i > 0 {
			speed += math.Hypot(q[0]-g[i-1][0], q[1]-g[i-1][1])
		}
	}
	if len(g) > 1 {
		speed /= float64(len(g) - 1)
	}
	return out, speed
}

// gridQ is som.GridCoord on a value already on the grid: floor, clamped to 0..255.
func gridQ(v float64) int {
	if math.IsNaN(v) || v < 0 {
		return 0
	}
	return int(math.Min(math.Floor(v), som.CoordGrid-1))
}

// DrawTraces draws every mark's trace over img (foreground in red-to-yellow
// along time, background in cyan) and the SoM marks at their first points,
// for a person to inspect.
func DrawTraces(img imaging.Image, marks []Mark) (imaging.Image, error) {
	if err := img.Validate(); err != nil {
		return imaging.Image{}, fmt.Errorf("%w: %v", ErrBadFrames, err)
	}
	m, err := rgbMat(img)
	if err != nil {
		return imaging.Image{}, err
	}
	defer m.Close()
	for _, mk := range marks {
		T := len(mk.Points)
		for t := 1; t < T; t++ {
			a := image.Pt(int(math.Round(mk.Points[t-1][0])), int(math.Round(mk.Points[t-1][1])))
			b := image.Pt(int(math.Round(mk.Points[t][0])), int(math.Round(mk.Points[t][1])))
			// colours are given in the Mat's RGB byte order via the BGR slots.
			c := color.RGBA{R: 255, G: 255, B: 0, A: 255} // cyan (0,255,255) in RGB bytes
			if mk.Foreground {
				g := uint8(255 * t / T)
				c = color.RGBA{R: 0, G: g, B: 255, A: 255} // (255,g,0)
			}
			gocv.Line(&m, a, b, c, 2)
		}
	}
	out := imaging.Image{W: img.W, H: img.H, Pix: m.ToBytes()}
	pts := make([]som.Point, len(marks))
	ids := make([]int, len(marks))
	for i, mk := range marks {
		if len(mk.Points) == 0 {
			return imaging.Image{}, fmt.Errorf("tom: mark %d has no points", mk.ID)
		}
		pts[i] = som.Point{X: mk.Points[0][0], Y: mk.Points[0][1]}
		ids[i] = mk.ID
	}
	r, err := som.DrawPoints(out, clampPts(pts, img.W, img.H), som.Options{IDs: ids})
	if err != nil {
		return imaging.Image{}, err
	}
	return r.Image, nil
}
