package som

import (
	"fmt"
	"image"
	"math"
	"sort"

	"gocv.io/x/gocv"

	"github.com/magma-go/magma/vision"
)

// Proposer finds candidate UI elements (boxes in pixels) on a screenshot
// that has no DOM/accessibility boxes. A learned detector (e.g. OmniParser's)
// can implement it in place of ClassicalProposer.
type Proposer interface {
	Propose(img vision.Image) ([]Box, error)
}

// ClassicalProposer proposes UI elements without a model: Canny edges closed
// with a wide kernel so glyphs merge into words/buttons, external contours,
// MSER keypoints (text and icon blobs); every candidate is shrunk to the
// edge pixels it covers (dropped when it covers none), characters on one
// line are merged into word boxes, fragments of a bigger box are dropped,
// and the rest are scored by edge density and non-maximum suppressed. It is
// a heuristic for screenshots, not a detector.
type ClassicalProposer struct {
	// MinSide is the smallest box side kept, in pixels (default 8).
	MinSide int
	// MaxAreaFrac drops boxes covering more than this fraction of the image (default 0.25).
	MaxAreaFrac float64
	// NMSIoU is the IoU above which the lower-scored box is suppressed (default 0.3).
	NMSIoU float64
	// MaxBoxes keeps the best-scored boxes (default 200).
	MaxBoxes int
	// UseMSER adds MSER keypoint regions (default true via NewClassicalProposer).
	UseMSER bool
}

// NewClassicalProposer returns a ClassicalProposer with the defaults.
func NewClassicalProposer() *ClassicalProposer {
	return &ClassicalProposer{MinSide: 8, MaxAreaFrac: 0.25, NMSIoU: 0.3, MaxBoxes: 200, UseMSER: true}
}

// Propose returns boxes sorted top-to-bottom, left-to-right.
func (p *ClassicalProposer) Propose(img vision.Image) ([]Box, error) {
	if err := img.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoImage, err)
	}
	minSide, maxFrac, iou, maxN := p.MinSide, p.MaxAreaFrac, p.NMSIoU, p.MaxBoxes
	if minSide <= 0 {
		minSide = 8
	}
	if maxFrac <= 0 {
		maxFrac = 0.25
	}
	if iou <= 0 {
		iou = 0.3
	}
	if maxN <= 0 {
		maxN = 200
	}
	src, err := toMat(img)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	gray := gocv.NewMat()
	defer gray.Close()
	gocv.CvtColor(src, &gray, gocv.ColorRGBToGray)
	edges := gocv.NewMat()
	defer edges.Close()
	gocv.Canny(gray, &edges, 50, 150)

	// Integral of the edge map for O(1) density scores.
	eb := edges.ToBytes()
	W, H := img.W, img.H
	integ := make([]int32, (W+1)*(H+1))
	for y := 0; y < H; y++ {
		var row int32
		for x := 0; x < W; x++ {
			if eb[y*W+x] != 0 {
				row++
			}
			integ[(y+1)*(W+1)+x+1] = integ[y*(W+1)+x+1] + row
		}
	}
	count := func(r image.Rectangle) int32 {
		return integ[r.Max.Y*(W+1)+r.Max.X] - integ[r.Min.Y*(W+1)+r.Max.X] - integ[r.Max.Y*(W+1)+r.Min.X] + integ[r.Min.Y*(W+1)+r.Min.X]
	}
	density := func(r image.Rectangle) float32 {
		r = r.Intersect(image.Rect(0, 0, W, H))
		if r.Empty() {
			return 0
		}
		return float32(count(r)) / float32(r.Dx()*r.Dy())
	}

	var rects []image.Rectangle
	closed := gocv.NewMat()
	defer closed.Close()
	kernel := gocv.GetStructuringElement(gocv.MorphRect, image.Pt(9, 3))
	defer kernel.Close()
	gocv.MorphologyEx(edges, &closed, gocv.MorphClose, kernel)
	contours := gocv.FindContours(closed, gocv.RetrievalList, gocv.ChainApproxSimple)
	for i := 0; i < contours.Size(); i++ {
		rects = append(rects, gocv.BoundingRect(contours.At(i)))
	}
	contours.Close()
	if p.UseMSER {
		mser := gocv.NewMSER()
		kps := mser.Detect(gray)
		mser.Close()
		for _, k := range kps {
			if k.Size > maxMSER {
				continue // MSER stands in for text and icon blobs only
			}
			h := k.Size / 2
			rects = append(rects, image.Rect(int(k.X-h), int(k.Y-h), int(math.Ceil(k.X+h)), int(math.Ceil(k.Y+h))))
		}
	}

	// Shrink every candidate to the edges it covers and drop the ones that
	// cover none (MSER squares on flat background, empty closures).
	maxArea := maxFrac * float64(W*H)
	var cand []image.Rectangle
	for _, r := range rects {
		r = r.Intersect(image.Rect(0, 0, W, H))
		if r.Empty() {
			continue
		}
		t, ok := tighten(r, count)
		if !ok {
			continue
		}
		cand = append(cand, t)
	}
	cand = mergeWords(cand)
	cand = dropFragments(cand)
	var keep []image.Rectangle
	var scores []float32
	for _, r := range cand {
		if r.Dx() < minSide || r.Dy() < minSide || float64(r.Dx()*r.Dy()) > maxArea {
			continue
		}
		d := density(r)
		if d <= 0 {
			continue
		}
		keep = append(keep, r)
		scores = append(scores, d)
	}
	if len(keep) == 0 {
		return []Box{}, nil
	}
	idx := nms(keep, scores, iou, maxN)
	out := make([]Box, len(idx))
	for i, j := range idx {
		r := keep[j]
		out[i] = Box{float64(r.Min.X), float64(r.Min.Y), float64(r.Max.X), float64(r.Max.Y)}
	}
	sort.SliceStable(out, func(a, b int) bool {
		if out[a].Y1 != out[b].Y1 {
			return out[a].Y1 < out[b].Y1
		}
		return out[a].X1 < out[b].X1
	})
	return out, nil
}

// nms is greedy non-maximum suppression: indices by descending score,
// dropping any box whose IoU with a kept one exceeds thr, stopping at maxN.
func nms(rs []image.Rectangle, scores []float32, thr float64, maxN int) []int {
	order := make([]int, len(rs))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return scores[order[a]] > scores[order[b]] })
	var kept []int
	for _, i := range order {
		if len(kept) >= maxN {
			break
		}
		ok := true
		for _, j := range kept {
			in := rs[i].Intersect(rs[j])
			if in.Empty() {
				continue
			}
			ia := float64(in.Dx() * in.Dy())
			u := float64(rs[i].Dx()*rs[i].Dy()+rs[j].Dx()*rs[j].Dy()) - ia
			if ia/u > thr {
				ok = false
				break
			}
		}
		if ok {
			kept = append(kept, i)
		}
	}
	return kept
}

// tighten shrinks r to the bounding box of the edge pixels inside it
// (count gives the number of edge pixels in a rectangle); ok is false when
// r covers none.
func tighten(r image.Rectangle, count func(image.Rectangle) int32) (image.Rectangle, bool) {
	if count(r) == 0 {
		return r, false
	}
	// Each side moves inwards while the strip it leaves behind is empty:
	// binary search on the integral counts.
	lo, hi := r.Min.Y, r.Max.Y-1 // first row with an edge
	for lo < hi {
		m := (lo + hi) / 2
		if count(image.Rect(r.Min.X, r.Min.Y, r.Max.X, m+1)) > 0 {
			hi = m
		} else {
			lo = m + 1
		}
	}
	y1 := lo
	lo, hi = y1, r.Max.Y-1 // last row with an edge
	for lo < hi {
		m := (lo + hi + 1) / 2
		if count(image.Rect(r.Min.X, m, r.Max.X, r.Max.Y)) > 0 {
			lo = m
		} else {
			hi = m - 1
		}
	}
	y2 := lo + 1
	lo, hi = r.Min.X, r.Max.X-1
	for lo < hi {
		m := (lo + hi) / 2
		if count(image.Rect(r.Min.X, y1, m+1, y2)) > 0 {
			hi = m
		} else {
			lo = m + 1
		}
	}
	x1 := lo
	lo, hi = x1, r.Max.X-1
	for lo < hi {
		m := (lo + hi + 1) / 2
		if count(image.Rect(m, y1, r.Max.X, y2)) > 0 {
			lo = m
		} else {
			hi = m - 1
		}
	}
	return image.Rect(x1, y1, lo+1, y2), true
}

// Word merging: text-like boxes (at most maxTextH tall) on one line whose
// heights differ by at most 2x, overlapping vertically by half the smaller
// height and separated by at most wordGap of the taller height, are one word.
const (
	maxMSER  = 64
	maxTextH = 48
	wordGap  = 0.4
)

// mergeWords unions character boxes into word boxes (connected components
// of the "same word" relation) and returns them with the other boxes.
func mergeWords(rs []image.Rectangle) []image.Rectangle {
	n := len(rs)
	parent := make([]int, n)
	for i := range parent {
		parent[i] = i
	}
	var find func(int) int
	find = func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	text := func(r image.Rectangle) bool { return r.Dy() <= maxTextH }
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return rs[order[a]].Min.X < rs[order[b]].Min.X })
	for ai, i := range order {
		a := rs[i]
		if !text(a) {
			continue
		}
		for _, j := range order[ai+1:] {
			b := rs[j]
			hMax := max(a.Dy(), b.Dy())
			if float64(b.Min.X-a.Max.X) > wordGap*float64(max(hMax, 1))+float64(maxTextH) {
				break // sorted by x: nothing further right can be close
			}
			if !text(b) {
				continue
			}
			hMin := min(a.Dy(), b.Dy())
			if hMax > 2*hMin {
				continue
			}
			ov := min(a.Max.Y, b.Max.Y) - max(a.Min.Y, b.Min.Y)
			if 2*ov < hMin {
				continue
			}
			gap := max(b.Min.X-a.Max.X, a.Min.X-b.Max.X)
			if float64(gap) > wordGap*float64(hMax) {
				continue
			}
			parent[find(j)] = find(i)
		}
	}
	groups := map[int]image.Rectangle{}
	var roots []int
	for i, r := range rs {
		k := find(i)
		if g, ok := groups[k]; ok {
			groups[k] = g.Union(r)
		} else {
			groups[k] = r
			roots = append(roots, k)
		}
	}
	out := make([]image.Rectangle, 0, len(roots))
	for _, k := range roots {
		out = append(out, groups[k])
	}
	return out
}

// dropFragments removes duplicates and every box lying at least 80% inside
// a bigger box that is less than twice as tall and 2.5 times as wide (a letter,
// glyph hole or border piece of the word or button it belongs to); a word
// inside a much taller button or field is kept.
func dropFragments(rs []image.Rectangle) []image.Rectangle {
	var out []image.Rectangle
	for i, a := range rs {
		aa := a.Dx() * a.Dy()
		drop := false
		for j, b := range rs {
			if i == j {
				continue
			}
			if b == a {
				drop = j < i
			} else if ab := b.Dx() * b.Dy(); ab > aa {
				in := a.Intersect(b)
				if 5*in.Dx()*in.Dy() >= 4*aa && b.Dy() < 2*a.Dy() && 2*b.Dx() < 5*a.Dx() {
					drop = true
				}
			}
			if drop {
				break
			}
		}
		if !drop {
			out = append(out, a)
		}
	}
	return out
}
