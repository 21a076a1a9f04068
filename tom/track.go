package tom

import (
	"fmt"
	"image"
	"math"

	"gocv.io/x/gocv"

	"github.com/magma-go/magma/som"
	"github.com/magma-go/magma/vision/imaging"
)

// Tracks are point tracks over T frames: Points[t][n] in pixels and
// Visible[t][n], CoTracker's (T,N,2) and (T,N) layout. Row 0 holds the
// queries, all visible.
type Tracks struct {
	Points  [][]som.Point
	Visible [][]bool
	// ThroughOcclusion says the invisible positions are the tracker's
	// estimates of where an occluded point is (CoTracker): Run then applies
	// microsoft/Magma's rules unchanged — visibility only filters traces
	// seen in at most half the steps, lengths and the camera homography use
	// every position. When false (LKTracker, whose invisible positions are
	// guesses or held), lost and occluded steps are left out instead: they
	// hold the last visible position (after camera-motion removal, in the
	// start frame's coordinates), lengths average the visible steps only and
	// the homography is fitted on visible points only.
	ThroughOcclusion bool `json:"through_occlusion,omitempty"`
}

// Tracker tracks query points given on frame 0 through all frames. The
// default, LKTracker, is a classical stand-in for CoTracker (which Magma
// uses); a learned tracker can implement this interface instead.
type Tracker interface {
	Track(frames []imaging.Image, queries []som.Point) (*Tracks, error)
}

// GridQueries is CoTracker's grid of s x s query points, row-major (for
// each y, every x): CoTracker places the grid at its 384x512 model
// resolution with a margin of 512/64 = 8 px, i.e. W/64 horizontally and
// H/48 vertically once scaled back to a w x h frame.
func GridQueries(w, h, s int) []som.Point {
	if s <= 0 || w <= 0 || h <= 0 {
		return nil
	}
	mx, my := float64(w)/64, float64(h)/48
	lin := func(a, b float64, i int) float64 {
		if s == 1 {
			return (a + b) / 2
		}
		// rounded to 1e-6 px so that e.g. the centre lands exactly on W/2
		// instead of 127.99999999999999 (which would quantise one cell low).
		return math.Round((a+(b-a)*float64(i)/float64(s-1))*1e6) / 1e6
	}
	pts := make([]som.Point, 0, s*s)
	for iy := 0; iy < s; iy++ {
		for ix := 0; ix < s; ix++ {
			pts = append(pts, som.Point{X: lin(mx, float64(w)-mx, ix), Y: lin(my, float64(h)-my, iy)})
		}
	}
	return pts
}

// LKTracker is pyramidal Lucas-Kanade optical flow (OpenCV
// calcOpticalFlowPyrLK) chained frame to frame and made robust for use as
// CoTracker's fallback. A point stays visible at frame t only when
//
//   - the forward and the backward flow both converge,
//   - the backward track from its new position returns within FBMaxError
//     px of where the step started (forward-backward consistency), both
//     with the WinSize window and with a small CheckWinSize one: a point
//     beside a moving edge is dragged by the part of the big window that
//     moves, consistently both ways, but the small window sees only the
//     point's own surroundings and sends it back where they are,
//   - the (2*PatchRadius+1)² grey patch around the new position still looks
//     like the patch around the query on frame 0: zero-mean normalised
//     cross-correlation at least MinNCC, and RMS difference at most
//     MaxPatchDiff times the query patch's contrast (standard deviation),
//     which catches a slide along a smooth ramp that the correlation cannot
//     see. An occluder passing over the point, or a track dragged along by
//     a neighbouring motion inside the 21 px LK window, changes the patch;
//     both checks are skipped for flat query patches (nothing to compare),
//   - and it lies inside the frame, at least CheckWinSize/2 px from its
//     border.
//
// A point that fails once is lost from that step on: it is never revived
// by a later step that happens to pass (LK has no memory to re-find it),
// and its position holds the last visible one (Tracks.Visible says which
// steps were seen). LK has no occlusion reasoning: a lost point is dropped,
// not tracked through, so traces are approximate next to CoTracker's.
type LKTracker struct {
	WinSize      int     // search window side (default 21)
	Levels       int     // pyramid levels above the base (default 3)
	FBMaxError   float64 // forward-backward tolerance in px (default 1)
	CheckWinSize int     // window of the second backward check (default 7)
	PatchRadius  int     // appearance patch radius in px (default 4: 9x9)
	MinNCC       float64 // least patch correlation with the query (default 0.5)
	MaxPatchDiff float64 // most RMS patch difference over the query's contrast (default 1.5)
	// NoAppearance turns the two patch checks off (forward-backward only).
	NoAppearance bool
}

var lkCriteria = gocv.NewTermCriteria(gocv.Count|gocv.EPS, 30, 0.01)

// LK defaults (see LKTracker).
const (
	lkWinSize      = 21
	lkLevels       = 3
	lkFBMaxError   = 1.0
	lkCheckWinSize = 5
	lkPatchRadius  = 4
	lkMinNCC       = 0.5
	lkMaxPatchDiff = 1.5
	// lkFlatStd: a query patch whose grey levels vary less than this
	// (standard deviation) has no appearance to compare.
	lkFlatStd = 2.0
)

// Track implements Tracker.
func (lk LKTracker) Track(frames []imaging.Image, queries []som.Point) (*Tracks, error) {
	if err := checkFrames(frames); err != nil {
		return nil, err
	}
	win, lev, fb, pr, minNCC, maxDiff := lk.WinSize, lk.Levels, lk.FBMaxError, lk.PatchRadius, lk.MinNCC, lk.MaxPatchDiff
	if win <= 2 {
		win = lkWinSize
	}
	if lev <= 0 {
		lev = lkLevels
	}
	if fb <= 0 || math.IsNaN(fb) {
		fb = lkFBMaxError
	}
	if pr <= 0 {
		pr = lkPatchRadius
	}
	if minNCC <= 0 || math.IsNaN(minNCC) {
		minNCC = lkMinNCC
	}
	if maxDiff <= 0 || math.IsNaN(maxDiff) {
		maxDiff = lkMaxPatchDiff
	}
	cw := lk.CheckWinSize
	if cw <= 2 {
		cw = lkCheckWinSize
	}
	// edge: a point whose small check window leaves the frame is lost (LK
	// on a half-window at the border drifts).
	edge := float64(cw / 2)
	appear := !lk.NoAppearance
	T, N := len(frames), len(queries)
	W, H := float64(frames[0].W), float64(frames[0].H)
	tr := &Tracks{Points: make([][]som.Point, T), Visible: make([][]bool, T)}
	tr.Points[0] = append([]som.Point(nil), queries...)
	tr.Visible[0] = make([]bool, N)
	for i := range tr.Visible[0] {
		tr.Visible[0][i] = true
	}
	if N == 0 {
		for t := 1; t < T; t++ {
			tr.Points[t], tr.Visible[t] = []som.Point{}, []bool{}
		}
		return tr, nil
	}
	prevGray, err := grayMat(frames[0])
	if err != nil {
		return nil, err
	}
	defer func() { prevGray.Close() }()
	g0, err := grayPlane(prevGray, frames[0].W, frames[0].H)
	if err != nil {
		return nil, err
	}
	// The query patches as sampled and zero-mean; tmpl is nil where the
	// patch is flat (no appearance to check).
	tmpl := make([][]float64, N)
	raw0 := make([][]float64, N)
	if appear {
		for n, q := range queries {
			raw0[n] = g0.raw(q.X, q.Y, pr)
			if _, sd := meanStd(raw0[n]); sd >= lkFlatStd {
				tmpl[n] = zeroMean(raw0[n])
			}
		}
	}
	pts := gocv.NewMatWithSize(N, 1, gocv.MatTypeCV32FC2)
	defer pts.Close()
	next, back := gocv.NewMat(), gocv.NewMat()
	defer next.Close()
	defer back.Close()
	st, st2, e1, e2 := gocv.NewMat(), gocv.NewMat(), gocv.NewMat(), gocv.NewMat()
	defer st.Close()
	defer st2.Close()
	defer e1.Close()
	defer e2.Close()
	ws := image.Pt(win, win)
	wsS := image.Pt(cw, cw)
	backS, st3, e3 := gocv.NewMat(), gocv.NewMat(), gocv.NewMat()
	defer backS.Close()
	defer st3.Close()
	defer e3.Close()
	lost := make([]bool, N)
	for t := 1; t < T; t++ {
		pv, err := pts.DataPtrFloat32()
		if err != nil {
			return nil, err
		}
		for n, p := range tr.Points[t-1] {
			pv[2*n], pv[2*n+1] = float32(p.X), float32(p.Y)
		}
		curGray, err := grayMat(frames[t])
		if err != nil {
			return nil, err
		}
		gocv.CalcOpticalFlowPyrLKWithParams(prevGray, curGray, pts, next, &st, &e1, ws, lev, lkCriteria, 0, 1e-4)
		gocv.CalcOpticalFlowPyrLKWithParams(curGray, prevGray, next, back, &st2, &e2, ws, lev, lkCriteria, 0, 1e-4)
		gocv.CalcOpticalFlowPyrLKWithParams(curGray, prevGray, next, backS, &st3, &e3, wsS, lev, lkCriteria, 0, 1e-4)
		bsv, err5 := backS.DataPtrFloat32()
		s3, err6 := st3.DataPtrUint8()
		prevGray.Close()
		prevGray = curGray
		nv, err1 := next.DataPtrFloat32()
		bv, err2 := back.DataPtrFloat32()
		s1, err3 := st.DataPtrUint8()
		s2, err4 := st2.DataPtrUint8()
		if err1 != nil || err2 != nil || err3 != nil || err4 != nil || err5 != nil || err6 != nil ||
			len(nv) != 2*N || len(bv) != 2*N || len(bsv) != 2*N || len(s1) != N || len(s2) != N || len(s3) != N {
			return nil, fmt.Errorf("tom: optical flow returned no result at frame %d", t)
		}
		var gt plane
		if appear {
			if gt, err = grayPlane(curGray, frames[t].W, frames[t].H); err != nil {
				return nil, err
			}
		}
		tr.Points[t] = make([]som.Point, N)
		tr.Visible[t] = make([]bool, N)
		for n := 0; n < N; n++ {
			prev := tr.Points[t-1][n]
			tr.Points[t][n] = prev // held unless the step is trusted
			if lost[n] {
				continue
			}
			x, y := float64(nv[2*n]), float64(nv[2*n+1])
			ok := s1[n] == 1 && s2[n] == 1 && finite(x) && finite(y) &&
				x >= edge && y >= edge && x <= W-1-edge && y <= H-1-edge &&
				math.Hypot(float64(bv[2*n])-prev.X, float64(bv[2*n+1])-prev.Y) <= fb &&
				s3[n] == 1 && math.Hypot(float64(bsv[2*n])-prev.X, float64(bsv[2*n+1])-prev.Y) <= fb
			if ok && tmpl[n] != nil {
				cur := gt.raw(x, y, pr)
				ok = ncc(tmpl[n], zeroMean(cur)) >= minNCC && relDiff(raw0[n], cur) <= maxDiff
			}
			if !ok {
				lost[n] = true
				continue
			}
			tr.Points[t][n] = som.Point{X: x, Y: y}
			tr.Visible[t][n] = true
		}
	}
	return tr, nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// plane is a grey image as float64 levels, row-major.
type plane struct {
	w, h int
	v    []float64
}

func grayPlane(g gocv.Mat, w, h int) (plane, error) {
	b, err := g.DataPtrUint8()
	if err != nil || len(b) != w*h {
		return plane{}, fmt.Errorf("%w: cannot read a %dx%d grey frame", ErrBadFrames, w, h)
	}
	p := plane{w: w, h: h, v: make([]float64, w*h)}
	for i, c := range b {
		p.v[i] = float64(c)
	}
	return p, nil
}

// at samples the plane bilinearly at (x, y), coordinates clamped to the
// frame (border replicated).
func (p plane) at(x, y float64) float64 {
	x = math.Min(math.Max(x, 0), float64(p.w-1))
	y = math.Min(math.Max(y, 0), float64(p.h-1))
	x0, y0 := int(x), int(y)
	x1, y1 := min(x0+1, p.w-1), min(y0+1, p.h-1)
	fx, fy := x-float64(x0), y-float64(y0)
	a := p.v[y0*p.w+x0]*(1-fx) + p.v[y0*p.w+x1]*fx
	b := p.v[y1*p.w+x0]*(1-fx) + p.v[y1*p.w+x1]*fx
	return a*(1-fy) + b*fy
}

// raw returns the (2r+1)² patch centred on (x, y) as sampled.
func (p plane) raw(x, y float64, r int) []float64 {
	out := make([]float64, 0, (2*r+1)*(2*r+1))
	for dy := -r; dy <= r; dy++ {
		for dx := -r; dx <= r; dx++ {
			out = append(out, p.at(x+float64(dx), y+float64(dy)))
		}
	}
	return out
}

// meanStd is the mean and standard deviation of a patch.
func meanStd(a []float64) (mean, sd float64) {
	for _, v := range a {
		mean += v
	}
	mean /= float64(len(a))
	for _, v := range a {
		sd += (v - mean) * (v - mean)
	}
	return mean, math.Sqrt(sd / float64(len(a)))
}

// zeroMean returns a - mean(a).
func zeroMean(a []float64) []float64 {
	m, _ := meanStd(a)
	out := make([]float64, len(a))
	for i, v := range a {
		out[i] = v - m
	}
	return out
}

// relDiff is the RMS difference of two raw patches over the contrast of a
// (its standard deviation, at least lkFlatStd). Unlike the correlation it
// sees a shift along a smooth ramp, which changes the mean level.
func relDiff(a, b []float64) float64 {
	_, sd := meanStd(a)
	d := 0.0
	for i := range a {
		d += (a[i] - b[i]) * (a[i] - b[i])
	}
	return math.Sqrt(d/float64(len(a))) / math.Max(sd, lkFlatStd)
}

// ncc is the normalised cross-correlation of two zero-mean patches of the
// same size; a flat b (nil) correlates 0.
func ncc(a, b []float64) float64 {
	if len(a) == 0 || len(a) != len(b) {
		return 0
	}
	var ab, aa, bb float64
	for i := range a {
		ab += a[i] * b[i]
		aa += a[i] * a[i]
		bb += b[i] * b[i]
	}
	if aa == 0 || bb == 0 {
		return 0
	}
	return ab / math.Sqrt(aa*bb)
}

func grayMat(img imaging.Image) (gocv.Mat, error) {
	m, err := rgbMat(img)
	if err != nil {
		return gocv.Mat{}, err
	}
	g := gocv.NewMat()
	gocv.CvtColor(m, &g, gocv.ColorRGBToGray)
	m.Close()
	return g, nil
}
