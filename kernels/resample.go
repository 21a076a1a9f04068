package kernels

import (
	"fmt"
	"math"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Resampling ops on channels-last images [N*H*W, C] (inference, forward
// only: none of them has a gradient): bilinear resize, 2x2 average pooling,
// bilinear point sampling (grid_sample) and CoTracker's local correlation
// volume.

// ResizeBilinear resizes the images x [N*H*W, C] (grid g) to ho x wo with
// bilinear interpolation and aligned corners (PyTorch's
// F.interpolate(mode="bilinear", align_corners=True)): output pixel (oy, ox)
// reads the input at (oy·(H−1)/(ho−1), ox·(W−1)/(wo−1)) (0 when the output
// side is 1). The result is [N*ho*wo, C].
func ResizeBilinear(x *G.Node, g Grid, ho, wo int) (*G.Node, error) {
	op, err := newOp("ResizeBilinear", fmt.Sprintf("N=%d,H=%d,W=%d,to=%dx%d", g.N, g.H, g.W, ho, wo), 2, x)
	if err != nil {
		return nil, err
	}
	op.shape = func(in []tensor.Shape) (tensor.Shape, error) {
		if err := gridShape("ResizeBilinear", in[0], g); err != nil {
			return nil, err
		}
		if ho <= 0 || wo <= 0 {
			return nil, shapeErr("ResizeBilinear", "bad output size %dx%d", ho, wo)
		}
		return tensor.Shape{g.N * ho * wo, in[0][1]}, nil
	}
	op.do = func(in []*tensor.Dense, o *tensor.Dense) (G.Value, error) {
		return dispatch(in[0], func() (G.Value, error) { return resizeDo[float32](g, ho, wo, in, o), nil },
			func() (G.Value, error) { return resizeDo[float64](g, ho, wo, in, o), nil })
	}
	op.fullWrite = true
	return apply(op, x)
}

func gridShape(name string, x tensor.Shape, g Grid) error {
	if g.N <= 0 || g.H <= 0 || g.W <= 0 || x.Dims() != 2 || x[0] != g.N*g.H*g.W {
		return shapeErr(name, "x must be [N*H*W=%d, C] for grid %+v, got %v", g.N*g.H*g.W, g, x)
	}
	return nil
}

// alignedTap is the source index pair and weight of output index o for an
// align_corners=True resize from n to m samples.
func alignedTap(o, n, m int) (i0, i1 int, l float64) {
	if m <= 1 {
		return 0, 0, 0
	}
	src := float64(n-1) / float64(m-1) * float64(o)
	i0 = min(int(src), n-1)
	i1 = min(i0+1, n-1)
	return i0, i1, src - float64(i0)
}

func resizeDo[T float](g Grid, ho, wo int, in []*tensor.Dense, o *tensor.Dense) *tensor.Dense {
	x := data[T](in[0])
	c := in[0].Shape()[1]
	t, y := newOut[T](o, g.N*ho*wo, c)
	parallelFor(g.N*ho, 1, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			n, oy := r/ho, r%ho
			y0, y1, ly := alignedTap(oy, g.H, ho)
			h1, h0 := T(ly), T(1-ly)
			for ox := 0; ox < wo; ox++ {
				x0, x1, lx := alignedTap(ox, g.W, wo)
				w1, w0 := T(lx), T(1-lx)
				p00 := x[((n*g.H+y0)*g.W+x0)*c:]
				p01 := x[((n*g.H+y0)*g.W+x1)*c:]
				p10 := x[((n*g.H+y1)*g.W+x0)*c:]
				p11 := x[((n*g.H+y1)*g.W+x1)*c:]
				dst := y[((n*ho+oy)*wo+ox)*c : ((n*ho+oy)*wo+ox+1)*c]
				for j := range dst {
					dst[j] = h0*(w0*p00[j]+w1*p01[j]) + h1*(w0*p10[j]+w1*p11[j])
				}
			}
		}
	})
	return t
}

// AvgPool2 is 2x2 average pooling with stride 2 (floor: an odd last row or
// column is dropped) on x [N*H*W, C] → [N*(H/2)*(W/2), C].
func AvgPool2(x *G.Node, g Grid) (*G.Node, error) {
	op, err := newOp("AvgPool2", fmt.Sprintf("N=%d,H=%d,W=%d", g.N, g.H, g.W), 2, x)
	if err != nil {
		return nil, err
	}
	op.shape = func(in []tensor.Shape) (tensor.Shape, error) {
		if err := gridShape("AvgPool2", in[0], g); err != nil {
			return nil, err
		}
		if g.H < 2 || g.W < 2 {
			return nil, shapeErr("AvgPool2", "image %dx%d smaller than the 2x2 window", g.H, g.W)
		}
		return tensor.Shape{g.N * (g.H / 2) * (g.W / 2), in[0][1]}, nil
	}
	op.do = func(in []*tensor.Dense, o *tensor.Dense) (G.Value, error) {
		return dispatch(in[0], func() (G.Value, error) { return avgPool2Do[float32](g, in, o), nil },
			func() (G.Value, error) { return avgPool2Do[float64](g, in, o), nil })
	}
	op.fullWrite = true
	return apply(op, x)
}

func avgPool2Do[T float](g Grid, in []*tensor.Dense, o *tensor.Dense) *tensor.Dense {
	x := data[T](in[0])
	c := in[0].Shape()[1]
	ho, wo := g.H/2, g.W/2
	t, y := newOut[T](o, g.N*ho*wo, c)
	parallelFor(g.N*ho, 1, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			n, oy := r/ho, r%ho
			for ox := 0; ox < wo; ox++ {
				p00 := x[((n*g.H+2*oy)*g.W+2*ox)*c:]
				p01 := p00[c:]
				p10 := x[((n*g.H+2*oy+1)*g.W+2*ox)*c:]
				p11 := p10[c:]
				dst := y[((n*ho+oy)*wo+ox)*c : ((n*ho+oy)*wo+ox+1)*c]
				for j := range dst {
					dst[j] = (p00[j] + p01[j] + p10[j] + p11[j]) / 4
				}
			}
		}
	})
	return t
}

// Padding is how bilinear sampling treats points outside the image.
type Padding int

const (
	// PadBorder clamps the point into the image (grid_sample's "border").
	PadBorder Padding = iota
	// PadZeros reads zero outside the image (grid_sample's "zeros").
	PadZeros
)

func (p Padding) String() string {
	if p == PadZeros {
		return "zeros"
	}
	return "border"
}

// GridSample samples the frames src [F*H*W, C] (grid g, g.N = F) at points
// pts [P, 3] = (frame, x, y) in pixel units with aligned corners (x = 0 is
// the centre of the first column, W−1 of the last: PyTorch's
// grid_sample(align_corners=True) after CoTracker's bilinear_sampler
// rescaling), bilinearly in x and y; the frame coordinate is rounded to the
// nearest frame and clamped to [0, F−1]. The result is [P, C]:
//
//	out[p] = Σ_corners w·src[f, yc, xc]   (PadBorder: x, y clamped first;
//	                                       PadZeros: corners outside read 0)
//
// A non-finite point makes Do fail.
func GridSample(src, pts *G.Node, g Grid, pad Padding) (*G.Node, error) {
	op, err := newOp("GridSample", fmt.Sprintf("F=%d,H=%d,W=%d,pad=%v", g.N, g.H, g.W, pad), 2, src, pts)
	if err != nil {
		return nil, err
	}
	op.shape = func(in []tensor.Shape) (tensor.Shape, error) {
		if err := gridShape("GridSample", in[0], g); err != nil {
			return nil, err
		}
		if in[1].Dims() != 2 || in[1][1] != 3 {
			return nil, shapeErr("GridSample", "points must be [P, 3] (frame, x, y), got %v", in[1])
		}
		return tensor.Shape{in[1][0], in[0][1]}, nil
	}
	op.do = func(in []*tensor.Dense, o *tensor.Dense) (G.Value, error) {
		return dispatch(in[0], func() (G.Value, error) { return gridSampleDo[float32](g, pad, in, o) },
			func() (G.Value, error) { return gridSampleDo[float64](g, pad, in, o) })
	}
	op.fullWrite = true
	return apply(op, src, pts)
}

// bilinear adds into dst the bilinear sample of one frame img [H*W*C] at
// (x, y) with grid_sample's corner weights and order (nw, ne, sw, se).
func bilinear[T float](dst, img []T, h, w, c int, x, y float64, pad Padding) {
	if pad == PadBorder {
		x = min(max(x, 0), float64(w-1))
		y = min(max(y, 0), float64(h-1))
	}
	fx, fy := math.Floor(x), math.Floor(y)
	ix, iy := int(fx), int(fy)
	ex, ey := T(x-fx), T(y-fy) // weights of the east / south neighbours
	wx, wy := 1-ex, 1-ey
	corner := func(cx, cy int, wgt T) {
		if cx < 0 || cy < 0 || cx >= w || cy >= h {
			return
		}
		v := img[(cy*w+cx)*c : (cy*w+cx+1)*c]
		for j := range dst {
			dst[j] += wgt * v[j]
		}
	}
	corner(ix, iy, wx*wy)
	corner(ix+1, iy, ex*wy)
	corner(ix, iy+1, wx*ey)
	corner(ix+1, iy+1, ex*ey)
}

func checkPoint(what string, i int, vs ...float64) error {
	for _, v := range vs {
		if !isFinite(v) || math.Abs(v) > 1<<30 {
			return fmt.Errorf("kernels: %s: point %d is not finite or out of range: %v", what, i, vs)
		}
	}
	return nil
}

func gridSampleDo[T float](g Grid, pad Padding, in []*tensor.Dense, o *tensor.Dense) (G.Value, error) {
	src, pts := data[T](in[0]), data[T](in[1])
	c := in[0].Shape()[1]
	np := in[1].Shape()[0]
	for i := 0; i < np; i++ {
		if err := checkPoint("GridSample", i, float64(pts[3*i]), float64(pts[3*i+1]), float64(pts[3*i+2])); err != nil {
			return nil, err
		}
	}
	t, y := newOut[T](o, np, c)
	frame := g.H * g.W * c
	parallelFor(np, 64, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			f := min(max(int(math.Round(float64(pts[3*i]))), 0), g.N-1)
			dst := y[i*c : (i+1)*c]
			clear(dst)
			bilinear(dst, src[f*frame:(f+1)*frame], g.H, g.W, c, float64(pts[3*i+1]), float64(pts[3*i+2]), pad)
		}
	})
	return t, nil
}

// CorrVolume is CoTracker3's local 4-D correlation: for frame f of
// fmap [F*H*W, C] (grid g) and track n, the (2r+1)² features sampled
// around coords[f*N+n] = (x, y) are correlated with the track's (2r+1)²
// support features support [N*(2r+1)², C]:
//
//	out[f*N+n, ((a·S+b)·S+i)·S+j] = Σ_c bilinear(fmap[f], x+a−r, y+b−r)[c] · support[n·S²+i·S+j, c]
//
// with S = 2r+1 and border padding (CoTracker's bilinear_sampler). The
// first offset index moves x and the second y, as in CoTracker's
// get_support_points; the result is [F*N, S⁴]. A non-finite coordinate
// makes Do fail.
func CorrVolume(fmap, coords, support *G.Node, g Grid, r int) (*G.Node, error) {
	op, err := newOp("CorrVolume", fmt.Sprintf("F=%d,H=%d,W=%d,r=%d", g.N, g.H, g.W, r), 2, fmap, coords, support)
	if err != nil {
		return nil, err
	}
	s := 2*r + 1
	op.shape = func(in []tensor.Shape) (tensor.Shape, error) {
		if err := gridShape("CorrVolume", in[0], g); err != nil {
			return nil, err
		}
		if r < 0 {
			return nil, shapeErr("CorrVolume", "negative radius %d", r)
		}
		co, sp := in[1], in[2]
		if co.Dims() != 2 || co[1] != 2 || co[0]%g.N != 0 {
			return nil, shapeErr("CorrVolume", "coords must be [F*N, 2] with F=%d, got %v", g.N, co)
		}
		n := co[0] / g.N
		if sp.Dims() != 2 || sp[0] != n*s*s || sp[1] != in[0][1] {
			return nil, shapeErr("CorrVolume", "support must be [N*S²=%d, C=%d], got %v", n*s*s, in[0][1], sp)
		}
		return tensor.Shape{co[0], s * s * s * s}, nil
	}
	op.do = func(in []*tensor.Dense, o *tensor.Dense) (G.Value, error) {
		return dispatch(in[0], func() (G.Value, error) { return corrDo[float32](g, r, in, o) },
			func() (G.Value, error) { return corrDo[float64](g, r, in, o) })
	}
	op.fullWrite = true
	return apply(op, fmap, coords, support)
}

func corrDo[T float](g Grid, r int, in []*tensor.Dense, o *tensor.Dense) (G.Value, error) {
	fm, co, sp := data[T](in[0]), data[T](in[1]), data[T](in[2])
	c := in[0].Shape()[1]
	rows := in[1].Shape()[0]
	n := rows / g.N
	s := 2*r + 1
	s2 := s * s
	for i := 0; i < rows; i++ {
		if err := checkPoint("CorrVolume", i, float64(co[2*i]), float64(co[2*i+1])); err != nil {
			return nil, err
		}
	}
	t, y := newOut[T](o, rows, s2*s2)
	frame := g.H * g.W * c
	parallelFor(rows, 4, func(lo, hi int) {
		samp := make([]T, s2*c)
		for i := lo; i < hi; i++ {
			f, track := i/n, i%n
			img := fm[f*frame : (f+1)*frame]
			x, yy := float64(co[2*i]), float64(co[2*i+1])
			clear(samp)
			for a := 0; a < s; a++ {
				for b := 0; b < s; b++ {
					bilinear(samp[(a*s+b)*c:(a*s+b+1)*c], img, g.H, g.W, c, x+float64(a-r), yy+float64(b-r), PadBorder)
				}
			}
			gemmSeq(false, true, s2, s2, c, 1, samp, c, sp[track*s2*c:], c, 0, y[i*s2*s2:], s2)
		}
	})
	return t, nil
}

// Builder methods of the ops above.

// ResizeBilinear is ResizeBilinear(x, g, ho, wo).
func (b *Builder) ResizeBilinear(x *G.Node, g Grid, ho, wo int) *G.Node {
	return b.do("ResizeBilinear", false, func() (*G.Node, error) { return ResizeBilinear(x, g, ho, wo) }, x)
}

// AvgPool2 is AvgPool2(x, g).
func (b *Builder) AvgPool2(x *G.Node, g Grid) *G.Node {
	return b.do("AvgPool2", false, func() (*G.Node, error) { return AvgPool2(x, g) }, x)
}

// GridSample is GridSample(src, pts, g, pad).
func (b *Builder) GridSample(src, pts *G.Node, g Grid, pad Padding) *G.Node {
	return b.do("GridSample", false, func() (*G.Node, error) { return GridSample(src, pts, g, pad) }, src, pts)
}

// CorrVolume is CorrVolume(fmap, coords, support, g, r).
func (b *Builder) CorrVolume(fmap, coords, support *G.Node, g Grid, r int) *G.Node {
	return b.do("CorrVolume", false, func() (*G.Node, error) { return CorrVolume(fmap, coords, support, g, r) }, fmap, coords, support)
}
