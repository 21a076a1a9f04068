package cotracker

import (
	"fmt"
	"math"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/nn"
)

// Query is a point to track: its frame and its position in pixels of the
// model resolution (x right, y down; (0, 0) is the centre of the top-left
// pixel).
type Query struct {
	T    int
	X, Y float64
}

// Clip is a video at the model resolution: T frames of H x W RGB pixels
// with values in [0, 255], Data[((t*H+y)*W+x)*3+c].
type Clip struct {
	T, H, W int
	Data    []float64
}

// Result is the model's output for N queries over T frames, frame-major
// (index t*N+n): coordinates at the model resolution and the pre-sigmoid
// visibility and confidence logits.
type Result struct {
	T, N       int
	Coords     []float64 // [T*N*2] (x, y)
	VisLogits  []float64 // [T*N]
	ConfLogits []float64 // [T*N]
}

// pyramid is the normalised feature maps of one window at the 4 levels.
type pyramid struct {
	maps  [CorrLevels]*tensor.Dense
	grids [CorrLevels]kernels.Grid
}

// levelGrids are the grids of the pyramid of S frames of H x W pixels.
func levelGrids(s, h, w int) [CorrLevels]kernels.Grid {
	var gs [CorrLevels]kernels.Grid
	g := kernels.Grid{N: s, H: h / Stride, W: w / Stride}
	for l := range gs {
		gs[l] = g
		g.H, g.W = g.H/2, g.W/2
	}
	return gs
}

func (m *Model) checkClip(c Clip) error {
	switch {
	case c.T <= 0:
		return fmt.Errorf("cotracker: clip has %d frames", c.T)
	case c.H != m.cfg.Resolution[0] || c.W != m.cfg.Resolution[1]:
		return fmt.Errorf("cotracker: clip is %dx%d, the model runs at %dx%d (resize first)", c.H, c.W, m.cfg.Resolution[0], m.cfg.Resolution[1])
	case len(c.Data) != c.T*c.H*c.W*3:
		return fmt.Errorf("cotracker: clip has %d values, want %d for %d frames of %dx%dx3", len(c.Data), c.T*c.H*c.W*3, c.T, c.H, c.W)
	}
	return nil
}

// encodeChunkValues bounds the activations of one feature-CNN run: about
// 80 values per input pixel live at its peak, so frames go through fnet in
// chunks of at most 2^26/(80·H·W) (e.g. 4 at 384x512, every frame of a
// small clip at once). fnet works frame by frame (instance norms
// included), so chunking changes nothing.
const encodeChunkValues = 1 << 26

// features runs fnet and the L2 normalisation on frames [first, first+s)
// of c (frames past the end repeat the last one, the online model's
// padding) and returns the [s*(H/4)*(W/4), 128] feature maps:
//
//	f = fnet(2·v/255 − 1);  f = f / sqrt(max(|f|², 1e-12))
func (m *Model) features(c Clip, first, s int) (*tensor.Dense, error) {
	return m.fnet(c, first, s, true)
}

// fnet is features, without the L2 normalisation unless normalize.
func (m *Model) fnet(c Clip, first, s int, normalize bool) (*tensor.Dense, error) {
	dt := m.Dtype()
	hw := c.H * c.W * 3
	k := max(1, min(s, encodeChunkValues/(80*c.H*c.W)))
	px := make([]float64, k*hw)
	in := denseOf(dt, px, k*c.H*c.W, 3)
	b := kernels.NewBuilder(nn.ParamNames(m, ""))
	x := b.Input("video", in)
	f, g := m.FNet.Forward(b.In("fnet"), x, kernels.Grid{N: k, H: c.H, W: c.W})
	if normalize {
		f = b.L2NormRows(f, 1e-12)
	}
	if err := b.Err(); err != nil {
		return nil, fmt.Errorf("cotracker: encoder graph: %w", err)
	}
	if want := levelGrids(k, c.H, c.W)[0]; g != want {
		return nil, fmt.Errorf("cotracker: encoder grid %+v, want %+v", g, want)
	}
	prog, err := kernels.Compile(b.G, kernels.CompileOptions{Name: fmt.Sprintf("cotracker fnet %dx%dx%d", k, c.H, c.W), Outputs: G.Nodes{f}})
	if err != nil {
		return nil, fmt.Errorf("cotracker: encoder: %w", err)
	}
	exec := kernels.NewExecutor()
	defer exec.Release()
	per := g.H * g.W * LatentDim
	out := make([]float64, s*per)
	for c0 := 0; c0 < s; c0 += k {
		for i := 0; i < k; i++ {
			fr := min(first+min(c0+i, s-1), c.T-1)
			src := c.Data[fr*hw : (fr+1)*hw]
			dst := px[i*hw : (i+1)*hw]
			for j, v := range src {
				dst[j] = 2*(v/255) - 1
			}
		}
		if err := G.Let(x, denseOf(dt, px, k*c.H*c.W, 3)); err != nil {
			return nil, fmt.Errorf("cotracker: encoder input: %w", err)
		}
		if err := exec.Run(prog, nil); err != nil {
			return nil, fmt.Errorf("cotracker: encoder: %w", err)
		}
		v, err := prog.Value(f)
		if err != nil {
			return nil, fmt.Errorf("cotracker: encoder: %w", err)
		}
		fv, err := nn.Float64s(v.(*tensor.Dense))
		if err != nil {
			return nil, err
		}
		n := min(k, s-c0)
		copy(out[c0*per:(c0+n)*per], fv[:n*per])
	}
	return denseOf(dt, out, s*g.H*g.W, LatentDim), nil
}

// encode computes the features of frames [first, first+s) of c (see
// features), builds the 4-level pyramid by 2x2 average pooling,
//
//	f_{l+1} = avgpool2(f_l)
//
// and samples it at pts[l] ([P, 3] = (frame, x, y) at level l; nil for
// none) with border padding.
func (m *Model) encode(c Clip, first, s int, pts [CorrLevels][]float64) (*pyramid, [CorrLevels]*tensor.Dense, error) {
	var sup [CorrLevels]*tensor.Dense
	dt := m.Dtype()
	feats, err := m.features(c, first, s)
	if err != nil {
		return nil, sup, err
	}
	b := kernels.NewBuilder(nn.ParamNames(m, ""))
	f := b.Input("fmaps", feats)
	grids := levelGrids(s, c.H, c.W)
	outs := []*G.Node{f}
	lv := f
	for l := 1; l < CorrLevels; l++ {
		lv = b.AvgPool2(lv, grids[l-1])
		outs = append(outs, lv)
	}
	var supN []*G.Node
	for l := 0; l < CorrLevels; l++ {
		if pts[l] == nil {
			continue
		}
		p := b.Input(fmt.Sprintf("support_points_%d", l), denseOf(dt, pts[l], len(pts[l])/3, 3))
		supN = append(supN, b.GridSample(outs[l], p, grids[l], kernels.PadBorder))
	}
	if err := b.Err(); err != nil {
		return nil, sup, fmt.Errorf("cotracker: pyramid graph: %w", err)
	}
	vals, err := kernels.RunGraph(b.G, fmt.Sprintf("cotracker pyramid S=%d %dx%d", s, c.H, c.W), append(outs[1:], supN...)...)
	if err != nil {
		return nil, sup, fmt.Errorf("cotracker: pyramid: %w", err)
	}
	py := &pyramid{grids: grids}
	py.maps[0] = feats
	for l := 1; l < CorrLevels; l++ {
		py.maps[l] = vals[l-1].(*tensor.Dense)
	}
	k := CorrLevels - 1
	for l := 0; l < CorrLevels; l++ {
		if pts[l] != nil {
			sup[l] = vals[k].(*tensor.Dense)
			k++
		}
	}
	return py, sup, nil
}

// supportPoints are the (2r+1)² points around each query at level l, as
// CoTracker's get_support_points: row n·49 + i·7 + j is (frame,
// x/4/2^l + i − 3, y/4/2^l + j − 3) (the first offset moves x).
func supportPoints(qs []Query, frame func(Query) float64, l int) []float64 {
	const s = 2*CorrRadius + 1
	out := make([]float64, 0, len(qs)*s*s*3)
	for _, q := range qs {
		cx, cy := q.X/Stride/float64(int(1)<<l), q.Y/Stride/float64(int(1)<<l)
		for i := 0; i < s; i++ {
			for j := 0; j < s; j++ {
				out = append(out, frame(q), cx+float64(i-CorrRadius), cy+float64(j-CorrRadius))
			}
		}
	}
	return out
}

// timeEmbed is the [t, 1110] time embedding: the sin/cos table of
// window_len positions (computed in float64 and stored as float32, as the
// reference's buffer is, also in a model converted to float64) and, when t differs, its linear interpolation
// (F.interpolate, align_corners=False) to t positions, in float32
// arithmetic for a float32 model as the reference computes it, in float64
// for a float64 one.
func timeEmbed(windowLen, t int, f64 bool) []float64 {
	const half = InputDim / 2
	tab := make([]float64, windowLen*InputDim)
	for p := 0; p < windowLen; p++ {
		for d := 0; d < half; d++ {
			omega := 1 / math.Pow(10000, float64(d)/(float64(InputDim)/2))
			tab[p*InputDim+d] = float64(float32(math.Sin(float64(p) * omega)))
			tab[p*InputDim+half+d] = float64(float32(math.Cos(float64(p) * omega)))
		}
	}
	if t == windowLen {
		return tab
	}
	out := make([]float64, t*InputDim)
	for o := 0; o < t; o++ {
		if f64 {
			src := max(float64(windowLen)/float64(t)*(float64(o)+0.5)-0.5, 0)
			i0 := int(src)
			i1 := min(i0+1, windowLen-1)
			l1 := src - float64(i0)
			l0 := 1 - l1
			for d := 0; d < InputDim; d++ {
				out[o*InputDim+d] = l0*tab[i0*InputDim+d] + l1*tab[i1*InputDim+d]
			}
			continue
		}
		src := max(float32(windowLen)/float32(t)*(float32(o)+0.5)-0.5, 0)
		i0 := int(src)
		i1 := min(i0+1, windowLen-1)
		l1 := src - float32(i0)
		l0 := 1 - l1
		for d := 0; d < InputDim; d++ {
			out[o*InputDim+d] = float64(l0*float32(tab[i0*InputDim+d]) + l1*float32(tab[i1*InputDim+d]))
		}
	}
	return out
}

// update runs the iterative refinement of one window of s frames and n
// tracks on the pyramid py with the tracks' support features sup[l]
// ([n*49, 128]), starting from coords0 ([s*n*2], feature-map units, i.e.
// pixels / 4) and the visibility/confidence logits vc0 ([s*n*2]). Each
// iteration:
//
//	corr_l = corr_mlp(CorrVolume(f_l, coords/2^l, sup_l))           l = 0..3
//	rel    = posenc(cat(coords_t − coords_{t+1}, coords_t − coords_{t−1}) / (W/4, H/4))
//	x      = cat(vis, conf, corr_0..3, rel) + time_emb
//	coords += flow, (vis, conf) += visconf  (UpdateFormer(x))
//
// It returns the coordinates in pixels (×4) and the logits, frame-major.
func (m *Model) update(py *pyramid, sup [CorrLevels]*tensor.Dense, s, n int, coords0, vc0 []float64) (coords, vc []float64, err error) {
	dt := m.Dtype()
	b := kernels.NewBuilder(nn.ParamNames(m, ""))
	var maps, sups [CorrLevels]*G.Node
	for l := 0; l < CorrLevels; l++ {
		maps[l] = b.Input(fmt.Sprintf("fmaps_%d", l), py.maps[l])
		if sup[l] == nil {
			return nil, nil, fmt.Errorf("cotracker: no support features at level %d", l)
		}
		sups[l] = b.Input(fmt.Sprintf("support_%d", l), sup[l])
	}
	idx := func(name string, k int, f func(i int) int) *G.Node {
		v := make([]float64, k)
		for i := range v {
			v[i] = float64(f(i))
		}
		return b.Input(name, denseOf(dt, v, k))
	}
	next := idx("next", s*n, func(i int) int { return min(i/n+1, s-1)*n + i%n })
	prev := idx("prev", s*n, func(i int) int { return max(i/n-1, 0)*n + i%n })
	toNT := idx("tn_to_nt", n*s, func(i int) int { return (i%s)*n + i/s })
	ix := formerIndex{n: n, t: s}
	ix.virt = idx("virtual_rows", VirtualN*s, func(i int) int { return i / s })
	ix.points = idx("points_tn", s*n, func(i int) int { return (i%n)*s + i/n })
	ix.virtTV = idx("virtual_tv", s*VirtualN, func(i int) int { return (n+i%VirtualN)*s + i/VirtualN })
	ix.back = idx("tokens_back", (n+VirtualN)*s, func(i int) int {
		tr, t := i/s, i%s
		if tr < n {
			return t*n + tr
		}
		return s*n + t*VirtualN + tr - n
	})
	ix.virtual = b.In("updateformer", "virual_tracks").Reshape(b.Param(m.UpdateFormer.VirtualTracks), tensor.Shape{VirtualN, HiddenSize})
	ones := make([]float64, HiddenSize)
	for i := range ones {
		ones[i] = 1
	}
	nm := norms{one: b.Input("ln_one", denseOf(dt, ones, HiddenSize)), zero: b.Input("ln_zero", denseOf(dt, make([]float64, HiddenSize), HiddenSize))}
	sx, sy := float64(m.cfg.Resolution[1])/Stride, float64(m.cfg.Resolution[0])/Stride
	relScale := b.Input("rel_scale", denseOf(dt, []float64{1 / sx, 1 / sy, 1 / sx, 1 / sy}, 4))
	temb := b.Input("time_emb", denseOf(dt, timeEmbed(m.cfg.WindowLen, s, dt == tensor.Float64), s, InputDim))

	co := b.Input("coords_init", denseOf(dt, coords0, s*n, 2))
	v := b.Input("visconf_init", denseOf(dt, vc0, s*n, 2))
	bu := b.In("updateformer")
	for it := 0; it < m.cfg.Iters; it++ {
		feats := []*G.Node{v}
		for l := 0; l < CorrLevels; l++ {
			cl := co
			if l > 0 {
				cl = b.Scale(co, 1/float64(int(1)<<l))
			}
			corr := b.CorrVolume(maps[l], cl, sups[l], py.grids[l], CorrRadius)
			feats = append(feats, m.CorrMLP.Forward(b.In("corr_mlp"), corr, false))
		}
		fwd := b.Add(co, b.Scale(b.Gather(co, next), -1))
		bwd := b.Add(co, b.Scale(b.Gather(co, prev), -1))
		rel := b.ChannelScale(b.Concat(1, fwd, bwd), relScale)
		feats = append(feats, b.SinCosEncode(rel, 0, posEncDegree))
		x := b.Gather(b.Concat(1, feats...), toNT)
		x = b.AddTiled(x, temb)
		flow, visconf := m.UpdateFormer.Forward(bu, nm, ix, x)
		co = b.Add(co, flow)
		v = b.Add(v, visconf)
	}
	out := b.Scale(co, Stride)
	if err := b.Err(); err != nil {
		return nil, nil, fmt.Errorf("cotracker: update graph: %w", err)
	}
	vals, err := kernels.RunGraph(b.G, fmt.Sprintf("cotracker update S=%d N=%d iters=%d", s, n, m.cfg.Iters), out, v)
	if err != nil {
		return nil, nil, fmt.Errorf("cotracker: update: %w", err)
	}
	c64, err := nn.Float64s(vals[0].(*tensor.Dense))
	if err != nil {
		return nil, nil, err
	}
	v64, err := nn.Float64s(vals[1].(*tensor.Dense))
	if err != nil {
		return nil, nil, err
	}
	return c64, v64, nil
}

func checkQueries(qs []Query, c Clip) error {
	if len(qs) == 0 {
		return fmt.Errorf("cotracker: no query points")
	}
	for i, q := range qs {
		if q.T < 0 || q.T >= c.T {
			return fmt.Errorf("cotracker: query %d is on frame %d of a %d-frame clip", i, q.T, c.T)
		}
		if math.IsNaN(q.X) || math.IsNaN(q.Y) || math.IsInf(q.X, 0) || math.IsInf(q.Y, 0) {
			return fmt.Errorf("cotracker: query %d has a non-finite position (%v, %v)", i, q.X, q.Y)
		}
	}
	return nil
}

// ForwardOffline is CoTrackerThreeOffline.forward on a clip at the model
// resolution: one window over all frames, tracks initialised at their
// queries with zero logits, Config.Iters refinements.
func (m *Model) ForwardOffline(c Clip, qs []Query) (*Result, error) {
	if err := m.checkClip(c); err != nil {
		return nil, err
	}
	if err := checkQueries(qs, c); err != nil {
		return nil, err
	}
	var pts [CorrLevels][]float64
	for l := range pts {
		pts[l] = supportPoints(qs, func(q Query) float64 { return float64(q.T) }, l)
	}
	py, sup, err := m.encode(c, 0, c.T, pts)
	if err != nil {
		return nil, err
	}
	n := len(qs)
	coords0 := make([]float64, c.T*n*2)
	for t := 0; t < c.T; t++ {
		for i, q := range qs {
			coords0[(t*n+i)*2], coords0[(t*n+i)*2+1] = q.X/Stride, q.Y/Stride
		}
	}
	co, vc, err := m.update(py, sup, c.T, n, coords0, make([]float64, c.T*n*2))
	if err != nil {
		return nil, err
	}
	r := &Result{T: c.T, N: n, Coords: co, VisLogits: make([]float64, c.T*n), ConfLogits: make([]float64, c.T*n)}
	for i := range r.VisLogits {
		r.VisLogits[i], r.ConfLogits[i] = vc[2*i], vc[2*i+1]
	}
	return r, nil
}

// onlineChunk is one call of the online predictor: the frames [Ind, End)
// processed as one window of WindowLen frames (padded with the last frame).
type onlineChunk struct{ Ind, End int }

// onlineChunks is the schedule of CoTrackerOnlinePredictor as the official
// online demo drives it on a t-frame video: with step = S/2, a window of
// the last 2·step frames is processed whenever step more frames have
// arrived (from the second step on), and a last window covers the frames
// left at the end; window k starts at frame k·step. (A clip of at most
// step frames, which the demo leaves unprocessed, is one window.)
func onlineChunks(t, s int) []onlineChunk {
	step := s / 2
	var out []onlineChunk
	ind := 0
	for i := 2 * step; i <= t-1; i += step {
		out = append(out, onlineChunk{Ind: ind, End: i})
		ind += step
	}
	return append(out, onlineChunk{Ind: ind, End: t})
}

// ForwardOnline is CoTrackerThreeOnline in online mode (is_online=True)
// driven over the whole clip as the online predictor and demo do (see
// onlineChunks). For the window starting at ind:
//
//   - a query on frame q contributes its support features from the window
//     with left <= q < ind+S (left = 0 for the first window, ind+step
//     after), accumulated over windows;
//   - tracks whose query frame is not before ind+S get zero support;
//   - tracks queried before ind+S−step start from the previous window's
//     predictions on the overlapping frames (the last one repeated), the
//     others from their query with zero logits;
//   - the window's predictions overwrite frames [ind, end).
func (m *Model) ForwardOnline(c Clip, qs []Query) (*Result, error) {
	if err := m.checkClip(c); err != nil {
		return nil, err
	}
	if err := checkQueries(qs, c); err != nil {
		return nil, err
	}
	S := m.cfg.WindowLen
	step := S / 2
	n := len(qs)
	const ss = (2*CorrRadius + 1) * (2*CorrRadius + 1)
	r := &Result{T: c.T, N: n, Coords: make([]float64, c.T*n*2), VisLogits: make([]float64, c.T*n), ConfLogits: make([]float64, c.T*n)}
	var acc [CorrLevels][]float64
	for _, ch := range onlineChunks(c.T, S) {
		ind := ch.Ind
		left, right := ind+step, ind+S
		if ind == 0 {
			left = 0
		}
		var pts [CorrLevels][]float64
		for l := range pts {
			pts[l] = supportPoints(qs, func(q Query) float64 { return float64(q.T - ind) }, l)
		}
		py, sup, err := m.encode(c, ind, S, pts)
		if err != nil {
			return nil, err
		}
		var use [CorrLevels]*tensor.Dense
		for l := 0; l < CorrLevels; l++ {
			f, err := nn.Float64s(sup[l])
			if err != nil {
				return nil, err
			}
			if acc[l] == nil {
				acc[l] = make([]float64, len(f))
			}
			rowLen := len(f) / n
			u := make([]float64, len(f))
			for i, q := range qs {
				if q.T >= left && q.T < right {
					for j := i * rowLen; j < (i+1)*rowLen; j++ {
						acc[l][j] += f[j]
					}
				}
				if q.T < ind+S {
					copy(u[i*rowLen:(i+1)*rowLen], acc[l][i*rowLen:(i+1)*rowLen])
				}
			}
			use[l] = denseOf(m.Dtype(), u, n*ss, LatentDim)
		}
		coords0 := make([]float64, S*n*2)
		vc0 := make([]float64, S*n*2)
		for t := 0; t < S; t++ {
			for i, q := range qs {
				k := t*n + i
				if ind > 0 && q.T < ind+S-step {
					src := (ind+min(t, S-step-1))*n + i
					coords0[2*k], coords0[2*k+1] = r.Coords[2*src]/Stride, r.Coords[2*src+1]/Stride
					vc0[2*k], vc0[2*k+1] = r.VisLogits[src], r.ConfLogits[src]
					continue
				}
				coords0[2*k], coords0[2*k+1] = q.X/Stride, q.Y/Stride
			}
		}
		co, vc, err := m.update(py, use, S, n, coords0, vc0)
		if err != nil {
			return nil, err
		}
		for t := 0; t < ch.End-ind; t++ {
			for i := 0; i < n; i++ {
				src, dst := t*n+i, (ind+t)*n+i
				r.Coords[2*dst], r.Coords[2*dst+1] = co[2*src], co[2*src+1]
				r.VisLogits[dst], r.ConfLogits[dst] = vc[2*src], vc[2*src+1]
			}
		}
	}
	return r, nil
}
