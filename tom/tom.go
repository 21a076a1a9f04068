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
	"github.com/magma-go/magma/vision"
)

// Config holds Algorithm 2's settings. DefaultConfig gives Magma's values.
type Config struct {
	Grid   int   // s: s x s query grid (15)
	Future int   // l: future steps; the clip uses Future+1 frames (16)
	Seed   int64 // drives k, K-Means initialisation and the mark ids (1)

	// Epsilon: a trace is foreground when its mean per-step motion, in
	// 256-grid units (pixels * 256 / width, resp. height), exceeds it (2).
	Epsilon float64
	// Eta: a trace "moves" for camera-motion detection when its mean
	// per-step motion in grid units exceeds it (2).
	Eta float64
	// CameraMotionFrac: global camera motion when more than this fraction
	// of the traces move (0.8).
	CameraMotionFrac float64
	// RANSACThreshold is the homography reprojection threshold in px (4.0).
	RANSACThreshold float64
	// MinVisibleFrac: traces visible in fewer than this fraction of the
	// Future+1 steps are dropped (0.5).
	MinVisibleFrac float64
	// ShotThreshold for DetectShots (27).
	ShotThreshold float64
	// MaxFgClusters caps k (5): k is uniform in [1, min(MaxFgClusters, n_fg)].
	MaxFgClusters int

	// Tracker defaults to LKTracker{}.
	Tracker Tracker
	// Task fills the ToM question; Robot switches "The person is doing"
	// to "The robot is doing".
	Task  string
	Robot bool
}

// DefaultConfig returns Magma's official ToM settings.
func DefaultConfig() Config {
	return Config{Grid: 15, Future: 16, Seed: 1, Epsilon: 2, Eta: 2, CameraMotionFrac: 0.8,
		RANSACThreshold: 4.0, MinVisibleFrac: 0.5, ShotThreshold: DefaultShotThreshold, MaxFgClusters: 5}
}

// Limits of Validate: a grid of MaxGrid² query points and MaxFuture steps
// already mean minutes of tracking per clip.
const (
	MaxGrid   = 128
	MaxFuture = 1024
)

// Validate refuses values out of range; zero fields mean the defaults of
// DefaultConfig (so the zero Config is valid), negative or absurd ones are
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
	case c.MaxFgClusters < 0:
		return bad("max foreground clusters", c.MaxFgClusters, ">= 0")
	}
	return nil
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Grid <= 0 {
		c.Grid = d.Grid
	}
	if c.Future <= 0 {
		c.Future = d.Future
	}
	if c.Epsilon <= 0 {
		c.Epsilon = d.Epsilon
	}
	if c.Eta <= 0 {
		c.Eta = d.Eta
	}
	if c.CameraMotionFrac <= 0 {
		c.CameraMotionFrac = d.CameraMotionFrac
	}
	if c.RANSACThreshold <= 0 {
		c.RANSACThreshold = d.RANSACThreshold
	}
	if c.MinVisibleFrac <= 0 {
		c.MinVisibleFrac = d.MinVisibleFrac
	}
	if c.ShotThreshold <= 0 {
		c.ShotThreshold = d.ShotThreshold
	}
	if c.MaxFgClusters <= 0 {
		c.MaxFgClusters = d.MaxFgClusters
	}
	if c.Tracker == nil {
		c.Tracker = LKTracker{}
	}
	return c
}

// Mark is one selected trace: its SoM id, class and Future+1 points in
// pixels, in the first frame's coordinates (camera motion removed).
type Mark struct {
	ID         int          `json:"id"`
	Foreground bool         `json:"foreground"`
	Points     [][2]float64 `json:"points"`
	Visible    []bool       `json:"visible"`
}

// Result is Algorithm 2's output; it marshals to the TRACES.json layout of
// `magma tom`.
type Result struct {
	Width        int     `json:"width"`
	Height       int     `json:"height"`
	FPS          float64 `json:"fps"`
	FramesUsed   int     `json:"frames_used"`
	CameraMotion bool    `json:"camera_motion"`
	// Marks are sorted by id; foreground ones are the marks that move.
	Marks []Mark `json:"marks"`
	// SoMText is the SoM answer for every mark at frame 0.
	SoMText string `json:"som_text"`
	// ToMText is the ToM answer (empty when no trace is foreground).
	ToMText string `json:"tom_text"`
	// ToMQuestion is the matching question (Config.Task, Future steps).
	ToMQuestion string `json:"-"`
	// Marked is the first frame with the SoM marks drawn.
	Marked vision.Image `json:"-"`
	// First is the unmarked first frame.
	First vision.Image `json:"-"`
}

// RunFile reads Future+1 frames from path (video or image folder, see
// ReadFrames) starting at frame start, then runs Run.
func RunFile(path string, start int, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if start < 0 {
		return nil, fmt.Errorf("tom: start frame %d must be >= 0", start)
	}
	cfg = cfg.withDefaults()
	clip, err := ReadFrames(path, start, cfg.Future+1)
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

// Run is Algorithm 2 on frames[0:Future+1]: shot check, grid tracking,
// visibility filter, camera-motion detection and homography removal,
// foreground/background split, K-Means selection, SoM on the first frame
// and the training strings. Fewer than Future+1 frames is ErrTooShort; a
// shot boundary inside them is ErrShotBoundary (start after it instead).
func Run(frames []vision.Image, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if err := checkFrames(frames); err != nil {
		return nil, err
	}
	T := cfg.Future + 1
	if len(frames) < T {
		return nil, fmt.Errorf("%w: %d frames, need %d (future %d)", ErrTooShort, len(frames), T, cfg.Future)
	}
	frames = frames[:T]
	cuts, err := DetectShots(frames, cfg.ShotThreshold)
	if err != nil {
		return nil, err
	}
	if len(cuts) > 0 {
		return nil, fmt.Errorf("%w: new shot at frame %d of %d", ErrShotBoundary, cuts[0], T)
	}
	ts, err := analyze(frames, cfg)
	if err != nil {
		return nil, err
	}
	W, H, pts, vis, fg, bg := ts.w, ts.h, ts.pts, ts.vis, ts.fg, ts.bg
	res := &Result{Width: W, Height: H, FramesUsed: T, First: frames[0], CameraMotion: ts.camera}
	rng := rand.New(rand.NewSource(cfg.Seed))
	k := 1
	if len(fg) > 0 {
		k = 1 + rng.Intn(imin(cfg.MaxFgClusters, len(fg)))
	}
	fgSel, err := clusterSelect(pts, fg, k, cfg.Seed)
	if err != nil {
		return nil, err
	}
	bgSel, err := clusterSelect(pts, bg, 2*k, cfg.Seed+1)
	if err != nil {
		return nil, err
	}
	sel := append(append([]int(nil), fgSel...), bgSel...)
	ids := rng.Perm(len(sel))
	for i := range ids {
		ids[i]++
	}
	res.Marks = make([]Mark, len(sel))
	first := make([]som.Point, len(sel))
	for j, i := range sel {
		m := Mark{ID: ids[j], Foreground: j < len(fgSel), Points: make([][2]float64, T), Visible: make([]bool, T)}
		for t := 0; t < T; t++ {
			m.Points[t] = [2]float64{pts[t][i].X, pts[t][i].Y}
			m.Visible[t] = vis[t][i]
		}
		res.Marks[j] = m
		first[j] = pts[0][i]
	}
	drawn, err := som.DrawPoints(frames[0], clampPts(first, W, H), som.Options{IDs: ids})
	if err != nil {
		return nil, err
	}
	res.Marked = drawn.Image
	sort.Slice(res.Marks, func(a, b int) bool { return res.Marks[a].ID < res.Marks[b].ID })
	res.SoMText = som.SoMAnswer(drawn.GridMarks())
	res.ToMText = ToMAnswer(res.Marks, W, H)
	res.ToMQuestion = ToMQuestion(cfg.Task, cfg.Future, cfg.Robot)
	return res, nil
}

// traceSet is the tracked, filtered and camera-compensated grid traces,
// split into foreground and background (indices into pts[t]).
type traceSet struct {
	w, h   int
	pts    [][]som.Point
	vis    [][]bool
	fg, bg []int
	camera bool
}

// analyze runs Algorithm 2 up to the foreground/background split on
// frames (exactly Future+1 of them, one shot).
func analyze(frames []vision.Image, cfg Config) (*traceSet, error) {
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

	// Visibility filter.
	var keep []int
	for n := range queries {
		v := 0
		for t := 0; t < T; t++ {
			if tr.Visible[t][n] {
				v++
			}
		}
		if float64(v) >= cfg.MinVisibleFrac*float64(T) {
			keep = append(keep, n)
		}
	}
	if len(keep) == 0 {
		return nil, ErrNoTraces
	}
	N := len(keep)
	pts := make([][]som.Point, T) // [t][i] over kept traces
	vis := make([][]bool, T)
	for t := 0; t < T; t++ {
		pts[t] = make([]som.Point, N)
		vis[t] = make([]bool, N)
		for i, n := range keep {
			pts[t][i], vis[t][i] = tr.Points[t][n], tr.Visible[t][n]
		}
	}
	holdLastVisible(pts, vis)

	ts := &traceSet{w: W, h: H, pts: pts, vis: vis}
	moving := 0
	for i := 0; i < N; i++ {
		if meanStep(pts, vis, i, W, H) > cfg.Eta {
			moving++
		}
	}
	if float64(moving) > cfg.CameraMotionFrac*float64(N) {
		ts.camera = true
		if err := removeCameraMotion(pts, vis, cfg.RANSACThreshold); err != nil {
			return nil, err
		}
	}

	var fg, bg []int
	for i := 0; i < N; i++ {
		if meanStep(pts, vis, i, W, H) > cfg.Epsilon {
			fg = append(fg, i)
		} else {
			bg = append(bg, i)
		}
	}
	ts.fg, ts.bg = fg, bg
	return ts, nil
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

// meanStep is trace i's mean per-step displacement in 256-grid units over
// consecutive steps where it is visible at both ends.
func meanStep(pts [][]som.Point, vis [][]bool, i, w, h int) float64 {
	sx, sy := float64(som.CoordGrid)/float64(w), float64(som.CoordGrid)/float64(h)
	s, n := 0.0, 0
	for t := 1; t < len(pts); t++ {
		if vis[t][i] && vis[t-1][i] {
			s += math.Hypot((pts[t][i].X-pts[t-1][i].X)*sx, (pts[t][i].Y-pts[t-1][i].Y)*sy)
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return s / float64(n)
}

// removeCameraMotion fits, for every future frame t, a RANSAC homography
// from the points visible at t to their frame-0 positions and maps all of
// frame t's points through it: the traces then live in the first frame's
// coordinates. A frame with fewer than 4 visible points or no homography
// keeps its points and marks them invisible.
func removeCameraMotion(pts [][]som.Point, vis [][]bool, thr float64) error {
	N := len(pts[0])
	for t := 1; t < len(pts); t++ {
		var idx []int
		for i := 0; i < N; i++ {
			if vis[t][i] {
				idx = append(idx, i)
			}
		}
		hm, ok := homography(pts[t], pts[0], idx, thr)
		if !ok {
			for i := 0; i < N; i++ {
				vis[t][i] = false
			}
			continue
		}
		for i := 0; i < N; i++ {
			p := pts[t][i]
			x := hm[0]*p.X + hm[1]*p.Y + hm[2]
			y := hm[3]*p.X + hm[4]*p.Y + hm[5]
			z := hm[6]*p.X + hm[7]*p.Y + hm[8]
			if math.Abs(z) < 1e-12 {
				vis[t][i] = false
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

// kmeansPP is OpenCV's KMEANS_PP_CENTERS (2). gocv v0.31's KMeansPPCenters
// constant is 1, which OpenCV reads as KMEANS_USE_INITIAL_LABELS and then
// aborts on the uninitialised labels.
const kmeansPP gocv.KMeansFlags = 2

var kmCriteria = gocv.NewTermCriteria(gocv.Count|gocv.EPS, 100, 1e-3)

// clusterSelect runs K-Means (OpenCV, k-means++ init, 3 attempts, OpenCV's
// RNG seeded with seed) on the flattened traces [x0,y0,x1,y1,...] of the
// given members and returns, per cluster in label order, the member
// nearest its centre. k is capped at len(members); none gives nil.
func clusterSelect(pts [][]som.Point, members []int, k int, seed int64) ([]int, error) {
	if len(members) == 0 || k <= 0 {
		return nil, nil
	}
	if k >= len(members) {
		return append([]int(nil), members...), nil
	}
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
	cv, err2 := centers.DataPtrFloat32()
	if err2 != nil || labels.Rows()*labels.Cols() != len(members) || labels.Type() != gocv.MatTypeCV32S || len(cv) != k*D {
		return nil, fmt.Errorf("tom: k-means returned no result")
	}
	best := make([]int, k)
	bestD := make([]float64, k)
	for c := range best {
		best[c], bestD[c] = -1, math.Inf(1)
	}
	for r := range members {
		c := int(labels.GetIntAt(r, 0))
		if c < 0 || c >= k {
			continue
		}
		d := 0.0
		for j := 0; j < D; j++ {
			e := float64(dv[r*D+j] - cv[c*D+j])
			d += e * e
		}
		if d < bestD[c] {
			best[c], bestD[c] = r, d
		}
	}
	var out []int
	for _, r := range best {
		if r >= 0 {
			out = append(out, members[r])
		}
	}
	return out, nil
}

// ToMQuestion is Magma's ToM question for a clip with the given task:
// "The image is split into 256x256 grids, and labeled with numeric marks.\n
// The person is doing: {task}. To finish the task, how to move the numerical
// marks in the image for the next {steps} steps?\n" ("The robot is doing"
// when robot is true).
func ToMQuestion(task string, steps int, robot bool) string {
	who := "The person is doing: "
	if robot {
		who = "The robot is doing: "
	}
	return "The image is split into 256x256 grids, and labeled with numeric marks.\n" + who + task +
		". To finish the task, how to move the numerical marks in the image for the next " + strconv.Itoa(steps) + " steps?\n"
}

// ToMAnswer is Magma's ToM answer over the foreground marks (sorted by id):
//
//	Mark a at [x,y], Mark b at [x,y] should be moved, and their future positions are:\n\n
//	"Mark a": "[[x,y],[x,y],...]"\n\n"Mark b": "[[x,y],...]"\n\n
//
// with every coordinate on the 256 grid (som.GridCoord) and only the future
// points (steps 1..) in the lists. As in Magma's data code every entry,
// the last included, ends with a blank line. No foreground mark gives "".
func ToMAnswer(marks []Mark, w, h int) string {
	ms := make([]Mark, 0, len(marks))
	for _, m := range marks {
		if m.Foreground && len(m.Points) > 0 {
			ms = append(ms, m)
		}
	}
	if len(ms) == 0 {
		return ""
	}
	sort.SliceStable(ms, func(a, b int) bool { return ms[a].ID < ms[b].ID })
	heads := make([]string, len(ms))
	var body strings.Builder
	for i, m := range ms {
		x, y := som.GridPoint(m.Points[0][0], m.Points[0][1], w, h)
		heads[i] = "Mark " + strconv.Itoa(m.ID) + " at " + som.FormatPoint(x, y)
		fut := make([][2]int, 0, len(m.Points)-1)
		for _, p := range m.Points[1:] {
			qx, qy := som.GridPoint(p[0], p[1], w, h)
			fut = append(fut, [2]int{qx, qy})
		}
		body.WriteString("\"Mark " + strconv.Itoa(m.ID) + "\": \"" + som.FormatTrace(fut) + "\"\n\n")
	}
	return strings.Join(heads, ", ") + " should be moved, and their future positions are:\n\n" + body.String()
}

// DrawTraces draws every mark's trace over img (foreground in red-to-yellow
// along time, background in cyan) and the SoM marks at their first points,
// for a person to inspect.
func DrawTraces(img vision.Image, marks []Mark) (vision.Image, error) {
	if err := img.Validate(); err != nil {
		return vision.Image{}, fmt.Errorf("%w: %v", ErrBadFrames, err)
	}
	m, err := rgbMat(img)
	if err != nil {
		return vision.Image{}, err
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
	out := vision.Image{W: img.W, H: img.H, Pix: m.ToBytes()}
	pts := make([]som.Point, len(marks))
	ids := make([]int, len(marks))
	for i, mk := range marks {
		if len(mk.Points) == 0 {
			return vision.Image{}, fmt.Errorf("tom: mark %d has no points", mk.ID)
		}
		pts[i] = som.Point{X: mk.Points[0][0], Y: mk.Points[0][1]}
		ids[i] = mk.ID
	}
	r, err := som.DrawPoints(out, clampPts(pts, img.W, img.H), som.Options{IDs: ids})
	if err != nil {
		return vision.Image{}, err
	}
	return r.Image, nil
}
