package cotracker

import (
	"fmt"
	"math"

	"github.com/magma-go/magma/som"
	"github.com/magma-go/magma/tom"
	"github.com/magma-go/magma/vision/imaging"
)

// Predictor is the official CoTrackerPredictor (offline model) or
// CoTrackerOnlinePredictor (online model) around a Model: it resizes the
// frames to the model resolution, places the queries (a grid, or given
// points plus the offline predictor's support grid), runs the model and
// maps the tracks back to the input frames' pixels.
type Predictor struct {
	Model *Model
	// SupportGrid is the side of the support grid added to given query
	// points (the predictors' support_grid_size, 6). The offline predictor
	// always adds it for given points; the online one only when
	// OnlineSupport is set (its add_support_grid, off by default).
	SupportGrid   int
	OnlineSupport bool
}

// NewPredictor wraps m with the official defaults.
func NewPredictor(m *Model) *Predictor { return &Predictor{Model: m, SupportGrid: 6} }

// Prediction is a predictor's output for N queries over T frames,
// frame-major (t*N+n): tracks in input pixels, the thresholded visibility
// (offline: sigmoid(vis) > 0.9; online: sigmoid(vis)·sigmoid(conf) > 0.6)
// and the model's own output at the model resolution (support points
// included, after the N queries).
type Prediction struct {
	T, N    int
	Tracks  []float64 // [T*N*2]
	Visible []bool    // [T*N]
	Queries []Query   // at the model resolution, as the model saw them
	Model   *Result
}

// GridPoints is get_points_on_a_grid(size, (h, w)): size x size points
// row-major (for each y, every x) with a margin of w/64 on both axes
// (the image centre for size 1), linspace computed as torch does.
func GridPoints(size, h, w int, f32 bool) [][2]float64 {
	if size <= 0 {
		return nil
	}
	if size == 1 {
		return [][2]float64{{float64(w) / 2, float64(h) / 2}}
	}
	margin := float64(w) / 64
	ys := linspace(margin, float64(h)-margin, size, f32)
	xs := linspace(margin, float64(w)-margin, size, f32)
	out := make([][2]float64, 0, size*size)
	for _, y := range ys {
		for _, x := range xs {
			out = append(out, [2]float64{x, y})
		}
	}
	return out
}

// linspace is torch.linspace's CPU kernel: the first half counted up
// from start, the second half down from end, in float32 arithmetic when
// f32 is set.
func linspace(start, end float64, steps int, f32 bool) []float64 {
	out := make([]float64, steps)
	if steps == 1 {
		out[0] = start
		return out
	}
	if f32 {
		s, e := float32(start), float32(end)
		st := (e - s) / float32(steps-1)
		for i := range out {
			if i < steps/2 {
				out[i] = float64(s + st*float32(i))
			} else {
				out[i] = float64(e - st*float32(steps-1-i))
			}
		}
		return out
	}
	st := (end - start) / float64(steps-1)
	for i := range out {
		if i < steps/2 {
			out[i] = start + st*float64(i)
		} else {
			out[i] = end - st*float64(steps-1-i)
		}
	}
	return out
}

// resizeClip converts frames to a Clip at the model resolution: the
// predictor's F.interpolate(bilinear, align_corners=True) on the float
// pixel values.
func (p *Predictor) resizeClip(frames []imaging.Image) (Clip, error) {
	if len(frames) == 0 {
		return Clip{}, fmt.Errorf("cotracker: no frames")
	}
	H, W := p.Model.cfg.Resolution[0], p.Model.cfg.Resolution[1]
	fw, fh := frames[0].W, frames[0].H
	for i, f := range frames {
		if err := f.Validate(); err != nil {
			return Clip{}, fmt.Errorf("cotracker: frame %d: %w", i, err)
		}
		if f.W != fw || f.H != fh {
			return Clip{}, fmt.Errorf("cotracker: frame %d is %dx%d, frame 0 is %dx%d", i, f.W, f.H, fw, fh)
		}
	}
	c := Clip{T: len(frames), H: H, W: W, Data: make([]float64, len(frames)*H*W*3)}
	tap := func(o, n, m int) (int, int, float64) {
		if m <= 1 {
			return 0, 0, 0
		}
		src := float64(n-1) / float64(m-1) * float64(o)
		i0 := min(int(src), n-1)
		return i0, min(i0+1, n-1), src - float64(i0)
	}
	for t, f := range frames {
		dst := c.Data[t*H*W*3 : (t+1)*H*W*3]
		for oy := 0; oy < H; oy++ {
			y0, y1, ly := tap(oy, fh, H)
			for ox := 0; ox < W; ox++ {
				x0, x1, lx := tap(ox, fw, W)
				for ch := 0; ch < 3; ch++ {
					px := func(y, x int) float64 { return float64(f.Pix[(y*fw+x)*3+ch]) }
					dst[(oy*W+ox)*3+ch] = (1-ly)*((1-lx)*px(y0, x0)+lx*px(y0, x1)) + ly*((1-lx)*px(y1, x0)+lx*px(y1, x1))
				}
			}
		}
	}
	return c, nil
}

// Grid tracks a size x size grid of points on frame queryFrame
// (predictor(video, grid_size=size, grid_query_frame=queryFrame)).
func (p *Predictor) Grid(frames []imaging.Image, size, queryFrame int) (*Prediction, error) {
	if size <= 0 {
		return nil, fmt.Errorf("cotracker: grid size %d, want at least 1", size)
	}
	H, W := p.Model.cfg.Resolution[0], p.Model.cfg.Resolution[1]
	var qs []Query
	for _, pt := range GridPoints(size, H, W, p.f32()) {
		qs = append(qs, Query{T: queryFrame, X: pt[0], Y: pt[1]})
	}
	return p.run(frames, qs, false)
}

// Points tracks the given queries (frame, x, y in input pixels), with the
// support grid where the official predictor adds it.
func (p *Predictor) Points(frames []imaging.Image, queries []Query) (*Prediction, error) {
	if len(frames) == 0 {
		return nil, fmt.Errorf("cotracker: no frames")
	}
	H, W := p.Model.cfg.Resolution[0], p.Model.cfg.Resolution[1]
	fw, fh := frames[0].W, frames[0].H
	sx, sy := float64(W-1)/float64(max(fw-1, 1)), float64(H-1)/float64(max(fh-1, 1))
	qs := make([]Query, len(queries))
	for i, q := range queries {
		qs[i] = Query{T: q.T, X: q.X * sx, Y: q.Y * sy}
	}
	support := p.Model.cfg.Variant == Offline || p.OnlineSupport
	return p.run(frames, qs, support)
}

func (p *Predictor) f32() bool { return p.Model.Dtype().Name() == "float32" }

func (p *Predictor) run(frames []imaging.Image, qs []Query, support bool) (*Prediction, error) {
	c, err := p.resizeClip(frames)
	if err != nil {
		return nil, err
	}
	n := len(qs)
	all := append([]Query(nil), qs...)
	if support && p.SupportGrid > 0 {
		for _, pt := range GridPoints(p.SupportGrid, c.H, c.W, p.f32()) {
			all = append(all, Query{T: 0, X: pt[0], Y: pt[1]})
		}
	}
	var r *Result
	if p.Model.cfg.Variant == Offline {
		r, err = p.Model.ForwardOffline(c, all)
	} else {
		r, err = p.Model.ForwardOnline(c, all)
	}
	if err != nil {
		return nil, err
	}
	T, fw, fh := c.T, frames[0].W, frames[0].H
	bx, by := float64(fw-1)/float64(c.W-1), float64(fh-1)/float64(c.H-1)
	pr := &Prediction{T: T, N: n, Tracks: make([]float64, T*n*2), Visible: make([]bool, T*n), Queries: qs, Model: r}
	na := len(all)
	for t := 0; t < T; t++ {
		for i := 0; i < n; i++ {
			k := t*na + i
			x, y := r.Coords[2*k], r.Coords[2*k+1]
			var vis bool
			if p.Model.cfg.Variant == Offline {
				vis = sigmoid(r.VisLogits[k]) > 0.9
				if qs[i].T == t { // the predictor's query-point correction
					x, y, vis = qs[i].X, qs[i].Y, true
				}
			} else {
				vis = sigmoid(r.VisLogits[k])*sigmoid(r.ConfLogits[k]) > 0.6
			}
			o := t*n + i
			pr.Tracks[2*o], pr.Tracks[2*o+1] = x*bx, y*by
			pr.Visible[o] = vis
		}
	}
	return pr, nil
}

// Tracker implements tom.Tracker with a CoTracker3 predictor: the queries
// are points on frame 0 (Predictor.Points), and row 0 of the result holds
// them, all visible, as the interface requires (the offline predictor's
// own query-point correction; enforced for the online model too).
type Tracker struct{ P *Predictor }

var _ tom.Tracker = (*Tracker)(nil)

// Track implements tom.Tracker.
func (tr *Tracker) Track(frames []imaging.Image, queries []som.Point) (*tom.Tracks, error) {
	if tr == nil || tr.P == nil || tr.P.Model == nil {
		return nil, fmt.Errorf("cotracker: tracker has no model")
	}
	if len(frames) == 0 {
		return nil, fmt.Errorf("cotracker: no frames")
	}
	T, N := len(frames), len(queries)
	out := &tom.Tracks{Points: make([][]som.Point, T), Visible: make([][]bool, T)}
	if N == 0 {
		for t := range out.Points {
			out.Points[t], out.Visible[t] = []som.Point{}, []bool{}
		}
		return out, nil
	}
	qs := make([]Query, N)
	for i, q := range queries {
		qs[i] = Query{T: 0, X: q.X, Y: q.Y}
	}
	pr, err := tr.P.Points(frames, qs)
	if err != nil {
		return nil, err
	}
	for t := 0; t < T; t++ {
		out.Points[t] = make([]som.Point, N)
		out.Visible[t] = make([]bool, N)
		for i := 0; i < N; i++ {
			k := t*N + i
			out.Points[t][i] = som.Point{X: pr.Tracks[2*k], Y: pr.Tracks[2*k+1]}
			out.Visible[t][i] = pr.Visible[k]
		}
	}
	out.Points[0] = append([]som.Point(nil), queries...)
	for i := range out.Visible[0] {
		out.Visible[0][i] = true
	}
	return out, nil
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }
