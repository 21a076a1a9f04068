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
// calcOpticalFlowPyrLK) chained frame to frame, with a forward-backward
// check: a point is visible at frame t when the forward and the backward
// flow both converge, the backward track returns within FBMaxError px of
// where it started and the point lies inside the frame. A point that is
// lost keeps being tracked from its last estimate, so it can come back.
// This is a stand-in for CoTracker: it has no long-range memory, no
// occlusion reasoning and drifts on texture-less regions.
type LKTracker struct {
	WinSize    int     // search window side (default 21)
	Levels     int     // pyramid levels above the base (default 3)
	FBMaxError float64 // forward-backward tolerance in px (default 1)
}

var lkCriteria = gocv.NewTermCriteria(gocv.Count|gocv.EPS, 30, 0.01)

// Track implements Tracker.
func (lk LKTracker) Track(frames []imaging.Image, queries []som.Point) (*Tracks, error) {
	if err := checkFrames(frames); err != nil {
		return nil, err
	}
	win, lev, fb := lk.WinSize, lk.Levels, lk.FBMaxError
	if win <= 2 {
		win = 21
	}
	if lev <= 0 {
		lev = 3
	}
	if fb <= 0 {
		fb = 1
	}
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
		prevGray.Close()
		prevGray = curGray
		nv, err1 := next.DataPtrFloat32()
		bv, err2 := back.DataPtrFloat32()
		s1, err3 := st.DataPtrUint8()
		s2, err4 := st2.DataPtrUint8()
		if err1 != nil || err2 != nil || err3 != nil || err4 != nil || len(nv) != 2*N || len(bv) != 2*N || len(s1) != N || len(s2) != N {
			return nil, fmt.Errorf("tom: optical flow returned no result at frame %d", t)
		}
		tr.Points[t] = make([]som.Point, N)
		tr.Visible[t] = make([]bool, N)
		for n := 0; n < N; n++ {
			x, y := float64(nv[2*n]), float64(nv[2*n+1])
			prev := tr.Points[t-1][n]
			if math.IsNaN(x) || math.IsNaN(y) || math.IsInf(x, 0) || math.IsInf(y, 0) {
				tr.Points[t][n] = prev
				continue
			}
			tr.Points[t][n] = som.Point{X: x, Y: y}
			fbErr := math.Hypot(float64(bv[2*n])-prev.X, float64(bv[2*n+1])-prev.Y)
			tr.Visible[t][n] = s1[n] == 1 && s2[n] == 1 && fbErr <= fb && x >= 0 && y >= 0 && x <= W-1 && y <= H-1
		}
	}
	return tr, nil
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
