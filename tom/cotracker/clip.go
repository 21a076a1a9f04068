package cotracker

import (
	"fmt"

	"github.com/magma-go/magma/vision/imaging"
)

// ClipParams describes a synthetic test clip (testdata/README.md): T frames
// of W x H pixels showing a textured square that moves (VX, VY) px per
// frame over a textured background panned (PanX, PanY) px per frame.
type ClipParams struct {
	T, H, W    int
	PanX, PanY int
	VX, VY     int
}

// maxClipPixels bounds T*H*W of a synthetic clip (3 bytes per pixel).
const maxClipPixels = 1 << 28

// SyntheticClip renders the deterministic clip of the CoTracker goldens,
// the same bytes as make_clip in scripts/cotracker/goldens.py. With side
// = min(H,W)*3/8 and the square's top-left corner at (W/4 + VX*t,
// H/8 + VY*t) (integer division), pixel (x, y), channel c of frame t is
//
//	inside the square (u = x-ox, v = y-oy): 96 + cellHash(u/3, v/3, c, 2) % 160
//	elsewhere (X = x+PanX*t+1024, Y = y+PanY*t+1024): 32 + cellHash(X/4, Y/4, c, 1) % 160
//
// with cellHash(a, b, c, s) = lowbias32(a*0x9E3779B1 + b*0x85EBCA77 +
// c*0xC2B2AE3D + s*0x27D4EB2F), all uint32 arithmetic. Background
// coordinates must stay non-negative (X/4 is integer division of a
// non-negative number).
func SyntheticClip(p ClipParams) ([]imaging.Image, error) {
	if p.T <= 0 || p.H <= 0 || p.W <= 0 {
		return nil, fmt.Errorf("cotracker: synthetic clip needs positive T, H, W, got %d, %d, %d", p.T, p.H, p.W)
	}
	if p.W > maxClipPixels/p.H || p.T > maxClipPixels/(p.H*p.W) {
		return nil, fmt.Errorf("cotracker: synthetic clip %dx%dx%d has more than %d pixels", p.T, p.H, p.W, maxClipPixels)
	}
	for _, v := range []int{p.PanX, p.PanY} {
		if v > 1<<20 || v < -(1<<20) || v*(p.T-1) < -1024 {
			return nil, fmt.Errorf("cotracker: synthetic clip pan (%d, %d) px/frame over %d frames leaves the texture's range", p.PanX, p.PanY, p.T)
		}
	}
	if p.VX > 1<<20 || p.VX < -(1<<20) || p.VY > 1<<20 || p.VY < -(1<<20) {
		return nil, fmt.Errorf("cotracker: synthetic clip square velocity (%d, %d) px/frame is out of range", p.VX, p.VY)
	}
	side := min(p.H, p.W) * 3 / 8
	frames := make([]imaging.Image, p.T)
	for t := range frames {
		pix := make([]uint8, p.H*p.W*3)
		ox, oy := p.W/4+p.VX*t, p.H/8+p.VY*t
		for y := 0; y < p.H; y++ {
			for x := 0; x < p.W; x++ {
				o := (y*p.W + x) * 3
				if x >= ox && x < ox+side && y >= oy && y < oy+side {
					u, v := uint32((x-ox)/3), uint32((y-oy)/3)
					for c := uint32(0); c < 3; c++ {
						pix[o+int(c)] = uint8(96 + cellHash(u, v, c, 2)%160)
					}
					continue
				}
				bx, by := uint32((x+p.PanX*t+1024)/4), uint32((y+p.PanY*t+1024)/4)
				for c := uint32(0); c < 3; c++ {
					pix[o+int(c)] = uint8(32 + cellHash(bx, by, c, 1)%160)
				}
			}
		}
		frames[t] = imaging.Image{W: p.W, H: p.H, Pix: pix}
	}
	return frames, nil
}

func cellHash(a, b, c, salt uint32) uint32 {
	return lowbias32(a*0x9E3779B1 + b*0x85EBCA77 + c*0xC2B2AE3D + salt*0x27D4EB2F)
}

func lowbias32(x uint32) uint32 {
	x ^= x >> 16
	x *= 0x7FEB352D
	x ^= x >> 15
	x *= 0x846CA68B
	x ^= x >> 16
	return x
}
