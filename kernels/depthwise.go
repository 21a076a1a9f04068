package kernels

import (
	"fmt"
	"sort"
	"sync"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// DepthwiseConv2d is a stride-1 depthwise convolution with zero padding pad on
// channels-last x [N*H*W, C]; weight [C, 1, k, k] (PyTorch layout); bias [C] or nil.
//
//	y[n, oy, ox, c] = bias[c] + Σ_{ky, kx} weight[c, 0, ky, kx]·x[n, oy+ky-pad, ox+kx-pad, c]
//
// The output grid is N×Ho×Wo with Ho = H+2·pad-k+1 (equal to the input grid
// when pad = (k-1)/2, e.g. k=7, pad=3), so the result is [N*Ho*Wo, C].
// The inner loop runs over channels (contiguous in channels-last); rows of
// the output are spread over GOMAXPROCS goroutines. Gradients for x, weight
// and bias.
func DepthwiseConv2d(x, weight, bias *G.Node, g Grid, pad int) (*G.Node, error) {
	children := []*G.Node{x, weight}
	if bias != nil {
		children = append(children, bias)
	}
	op, err := newOp("DepthwiseConv2d", fmt.Sprintf("grid=%v,pad=%d", g, pad), 2, children...)
	if err != nil {
		return nil, err
	}
	hasBias := bias != nil
	op.shape = func(in []tensor.Shape) (tensor.Shape, error) {
		xs, ws := in[0], in[1]
		if g.N <= 0 || g.H <= 0 || g.W <= 0 || pad < 0 {
			return nil, shapeErr("DepthwiseConv2d", "bad grid %+v or pad %d", g, pad)
		}
		if xs.Dims() != 2 || xs[0] != g.N*g.H*g.W {
			return nil, shapeErr("DepthwiseConv2d", "x must be [N*H*W=%d, C], got %v", g.N*g.H*g.W, xs)
		}
		if ws.Dims() != 4 || ws[0] != xs[1] || ws[1] != 1 || ws[2] != ws[3] {
			return nil, shapeErr("DepthwiseConv2d", "weight must be [C=%d, 1, k, k], got %v", xs[1], ws)
		}
		if hasBias && (in[2].Dims() != 1 || in[2][0] != xs[1]) {
			return nil, shapeErr("DepthwiseConv2d", "bias must be [%d], got %v", xs[1], in[2])
		}
		geo := dwGeom{Grid: g, C: xs[1], K: ws[2], Pad: pad}
		if geo.outH() <= 0 || geo.outW() <= 0 {
			return nil, shapeErr("DepthwiseConv2d", "kernel %d with pad %d does not fit grid %+v", geo.K, pad, g)
		}
		return tensor.Shape{g.N * geo.outH() * geo.outW(), geo.C}, nil
	}
	shapes := make([]tensor.Shape, len(children))
	for i, c := range children {
		shapes[i] = c.Shape()
	}
	if _, err := op.shape(shapes); err != nil {
		return nil, err
	}
	geo := dwGeom{Grid: g, C: shapes[0][1], K: shapes[1][2], Pad: pad}
	op.do = func(in []*tensor.Dense, o *tensor.Dense) (G.Value, error) {
		return dispatch(in[0], func() (G.Value, error) { return dwFwd[float32](geo, in, o), nil },
			func() (G.Value, error) { return dwFwd[float64](geo, in, o), nil })
	}
	op.wrt = []bool{true, true, true}
	op.diff = func(in G.Nodes, _, dy *G.Node) (G.Nodes, error) {
		dx, err := dwGrad("DepthwiseConv2dGradX", geo, in[1], dy)
		if err != nil {
			return nil, err
		}
		dw, err := dwGrad("DepthwiseConv2dGradW", geo, in[0], dy)
		if err != nil {
			return nil, err
		}
		r := G.Nodes{dx, dw}
		if len(in) == 3 {
			db, err := colSum(dy)
			if err != nil {
				return nil, err
			}
			r = append(r, db)
		}
		return r, nil
	}
	return apply(op, children...)
}

// Grid is the spatial layout of a channels-last activation [N*H*W, C].
type Grid struct{ N, H, W int }

// dwGeom is the geometry of one depthwise convolution.
type dwGeom struct {
	Grid
	C, K, Pad int
}

func (d dwGeom) outH() int { return d.H + 2*d.Pad - d.K + 1 }
func (d dwGeom) outW() int { return d.W + 2*d.Pad - d.K + 1 }

// taps transposes a PyTorch [C, 1, k, k] weight into [k*k][C] so that the
// inner loop over channels reads it contiguously.
func taps[T float](w []T, c, k int) []T {
	t := make([]T, len(w))
	for ch := 0; ch < c; ch++ {
		for i := 0; i < k*k; i++ {
			t[i*c+ch] = w[ch*k*k+i]
		}
	}
	return t
}

func dwFwd[T float](d dwGeom, in []*tensor.Dense, o *tensor.Dense) *tensor.Dense {
	x := data[T](in[0])
	wt := taps(data[T](in[1]), d.C, d.K)
	var bias []T
	if len(in) == 3 {
		bias = data[T](in[2])
	}
	ho, wo, c, k := d.outH(), d.outW(), d.C, d.K
	t, y := newOut[T](o, d.N*ho*wo, c)
	if x32, ok := any(x).([]float32); ok {
		dwFwd32(d, x32, any(wt).([]float32), any(bias).([]float32), any(y).([]float32))
		return t
	}
	parallelFor(d.N*ho, 1, func(lo, hi int) {
		xoff, woff := make([]int, 0, k*k), make([]int, 0, k*k)
		for row := lo; row < hi; row++ {
			n, oy := row/ho, row%ho
			for ox := 0; ox < wo; ox++ {
				xoff, woff = xoff[:0], woff[:0]
				for ky := 0; ky < k; ky++ {
					iy := oy + ky - d.Pad
					if iy < 0 || iy >= d.H {
						continue
					}
					for kx := 0; kx < k; kx++ {
						ix := ox + kx - d.Pad
						if ix < 0 || ix >= d.W {
							continue
						}
						xoff = append(xoff, ((n*d.H+iy)*d.W+ix)*c)
						woff = append(woff, (ky*k+kx)*c)
					}
				}
				dwPixel(y[((n*ho+oy)*wo+ox)*c:][:c], bias, x, wt, xoff, woff)
			}
		}
	})
	return t
}

// dwPixel computes out[ch] = bias[ch] + Σ_t w[woff[t]+ch]·x[xoff[t]+ch] for
// one pixel, eight channels at a time with the partial sums kept in
// registers (two loads per multiply-add instead of three loads and a store).
func dwPixel[T float](out, bias, x, w []T, xoff, woff []int) {
	c := len(out)
	woff = woff[:len(xoff)]
	ch := 0
	for ; ch+8 <= c; ch += 8 {
		var a0, a1, a2, a3, a4, a5, a6, a7 T
		if bias != nil {
			b := bias[ch : ch+8 : ch+8]
			a0, a1, a2, a3, a4, a5, a6, a7 = b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]
		}
		for i, xo := range xoff {
			xr := x[xo+ch : xo+ch+8 : xo+ch+8]
			wr := w[woff[i]+ch : woff[i]+ch+8 : woff[i]+ch+8]
			a0 += wr[0] * xr[0]
			a1 += wr[1] * xr[1]
			a2 += wr[2] * xr[2]
			a3 += wr[3] * xr[3]
			a4 += wr[4] * xr[4]
			a5 += wr[5] * xr[5]
			a6 += wr[6] * xr[6]
			a7 += wr[7] * xr[7]
		}
		o := out[ch : ch+8 : ch+8]
		o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7] = a0, a1, a2, a3, a4, a5, a6, a7
	}
	for ; ch < c; ch++ {
		var a T
		if bias != nil {
			a = bias[ch]
		}
		for i, xo := range xoff {
			a += w[woff[i]+ch] * x[xo+ch]
		}
		out[ch] = a
	}
}

// dwGrad builds dx (from weight and dy) or dweight (from x and dy).
func dwGrad(name string, d dwGeom, other, dy *G.Node) (*G.Node, error) {
	gradX := name == "DepthwiseConv2dGradX"
	rank := 4
	if gradX {
		rank = 2
	}
	op, err := newOp(name, fmt.Sprintf("%+v", d), rank, other, dy)
	if err != nil {
		return nil, err
	}
	op.shape = func(in []tensor.Shape) (tensor.Shape, error) {
		ys := tensor.Shape{d.N * d.outH() * d.outW(), d.C}
		if !in[1].Eq(ys) {
			return nil, shapeErr(name, "dy %v, want %v", in[1], ys)
		}
		if gradX {
			return tensor.Shape{d.N * d.H * d.W, d.C}, nil
		}
		return tensor.Shape{d.C, 1, d.K, d.K}, nil
	}
	op.do = func(in []*tensor.Dense, o *tensor.Dense) (G.Value, error) {
		if gradX {
			return dispatch(in[0], func() (G.Value, error) { return dwBwdX[float32](d, in, o), nil },
				func() (G.Value, error) { return dwBwdX[float64](d, in, o), nil })
		}
		return dispatch(in[0], func() (G.Value, error) { return dwBwdW[float32](d, in, o), nil },
			func() (G.Value, error) { return dwBwdW[float64](d, in, o), nil })
	}
	return apply(op, other, dy)
}

// dwBwdX: dx[n, iy, ix, c] = Σ_{ky, kx} w[c, ky, kx]·dy[n, iy-ky+pad, ix-kx+pad, c].
func dwBwdX[T float](d dwGeom, in []*tensor.Dense, o *tensor.Dense) *tensor.Dense {
	wt := taps(data[T](in[0]), d.C, d.K)
	dy := data[T](in[1])
	ho, wo, c, k := d.outH(), d.outW(), d.C, d.K
	t, dx := newOut[T](o, d.N*d.H*d.W, c)
	if dy32, ok := any(dy).([]float32); ok {
		// dx is the forward convolution of dy (grid ho×wo) with the taps
		// flipped and padding k-1-pad, whose output grid is H×W.
		flip := make([]float32, len(wt))
		for i := 0; i < k*k; i++ {
			copy(flip[(k*k-1-i)*c:][:c], any(wt).([]float32)[i*c:][:c])
		}
		fd := dwGeom{Grid: Grid{d.N, ho, wo}, C: c, K: k, Pad: k - 1 - d.Pad}
		dwFwd32(fd, dy32, flip, nil, any(dx).([]float32))
		return t
	}
	parallelFor(d.N*d.H, 1, func(lo, hi int) {
		yoff, woff := make([]int, 0, k*k), make([]int, 0, k*k)
		for row := lo; row < hi; row++ {
			n, iy := row/d.H, row%d.H
			for ix := 0; ix < d.W; ix++ {
				yoff, woff = yoff[:0], woff[:0]
				for ky := 0; ky < k; ky++ {
					oy := iy - ky + d.Pad
					if oy < 0 || oy >= ho {
						continue
					}
					for kx := 0; kx < k; kx++ {
						ox := ix - kx + d.Pad
						if ox < 0 || ox >= wo {
							continue
						}
						yoff = append(yoff, ((n*ho+oy)*wo+ox)*c)
						woff = append(woff, (ky*k+kx)*c)
					}
				}
				dwPixel(dx[((n*d.H+iy)*d.W+ix)*c:][:c], nil, dy, wt, yoff, woff)
			}
		}
	})
	return t
}

// dwBwdW: dw[c, ky, kx] = Σ_{n, oy, ox} dy[n, oy, ox, c]·x[n, oy+ky-pad, ox+kx-pad, c].
// Sums within one output row use the element type; rows are accumulated in
// float64 per worker and the workers' partial sums are reduced.
func dwBwdW[T float](d dwGeom, in []*tensor.Dense, o *tensor.Dense) *tensor.Dense {
	x, dy := data[T](in[0]), data[T](in[1])
	ho, c, k := d.outH(), d.C, d.K
	var parts [][]float64
	var mu sync.Mutex
	if x32, ok := any(x).([]float32); ok {
		parallelFor(d.N*ho, 1, func(lo, hi int) {
			acc := make([]float64, k*k*c)
			acc = append(acc, float64(lo)) // chunk start, for an ordered reduction
			dwBwdW32(d, x32, any(dy).([]float32), acc[:k*k*c], lo, hi)
			mu.Lock()
			parts = append(parts, acc)
			mu.Unlock()
		})
	} else {
		dwBwdWGo(d, x, dy, &parts, &mu)
	}
	// Chunks finish in any order: reduce them in row order so that results
	// do not depend on scheduling.
	sort.Slice(parts, func(i, j int) bool { return parts[i][k*k*c] < parts[j][k*k*c] })
	t, dw := newOut[T](o, c, 1, k, k)
	for ch := 0; ch < c; ch++ {
		for i := 0; i < k*k; i++ {
			var s float64
			for _, p := range parts {
				s += p[i*c+ch]
			}
			dw[ch*k*k+i] = T(s)
		}
	}
	return t
}

func dwBwdWGo[T float](d dwGeom, x, dy []T, parts *[][]float64, mu *sync.Mutex) {
	ho, wo, c, k := d.outH(), d.outW(), d.C, d.K
	parallelFor(d.N*ho, 1, func(lo, hi int) {
		acc := make([]float64, k*k*c, k*k*c+1) // [tap][C], float64 across rows
		part := make([]T, k*k*c)               // element type within one output row
		for row := lo; row < hi; row++ {
			clear(part)
			n, oy := row/ho, row%ho
			for ox := 0; ox < wo; ox++ {
				gr := dy[((n*ho+oy)*wo+ox)*c:][:c]
				for ky := 0; ky < k; ky++ {
					iy := oy + ky - d.Pad
					if iy < 0 || iy >= d.H {
						continue
					}
					for kx := 0; kx < k; kx++ {
						ix := ox + kx - d.Pad
						if ix < 0 || ix >= d.W {
							continue
						}
						xr := x[((n*d.H+iy)*d.W+ix)*c:][:c]
						pr := part[(ky*k+kx)*c:][:c]
						for ch, v := range xr {
							pr[ch] += gr[ch] * v
						}
					}
				}
			}
			for i, v := range part {
				acc[i] += float64(v)
			}
		}
		mu.Lock()
		*parts = append(*parts, append(acc, float64(lo)))
		mu.Unlock()
	})
}
