package som

import (
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"math"
	"math/rand"
	"sort"

	"gocv.io/x/gocv"

	"github.com/magma-go/magma/vision"
)

// Box is an axis-aligned pixel rectangle, X1 <= X2 and Y1 <= Y2, in the
// image's pixel coordinates (x to the right, y down).
type Box struct {
	X1, Y1, X2, Y2 float64
}

// W and H are the box's width and height.
func (b Box) W() float64 { return b.X2 - b.X1 }

// H is the box height.
func (b Box) H() float64 { return b.Y2 - b.Y1 }

// Center is the box centre.
func (b Box) Center() Point { return Point{(b.X1 + b.X2) / 2, (b.Y1 + b.Y2) / 2} }

// Contains reports whether p lies in the box, edges inclusive (ScreenSpot's rule).
func (b Box) Contains(p Point) bool {
	return p.X >= b.X1 && p.X <= b.X2 && p.Y >= b.Y1 && p.Y <= b.Y2
}

func (b Box) area() float64 {
	if b.X2 <= b.X1 || b.Y2 <= b.Y1 {
		return 0
	}
	return (b.X2 - b.X1) * (b.Y2 - b.Y1)
}

func interArea(a, b Box) float64 {
	w := math.Min(a.X2, b.X2) - math.Max(a.X1, b.X1)
	h := math.Min(a.Y2, b.Y2) - math.Max(a.Y1, b.Y1)
	if w <= 0 || h <= 0 {
		return 0
	}
	return w * h
}

// Point is a pixel position.
type Point struct {
	X, Y float64
}

// Region is one drawn mark: its id, what it marks and where its label went.
type Region struct {
	// ID is the number drawn on the image (1-based unless Options.ZeroBased).
	ID int `json:"id"`
	// Index is the position of the box/point in the caller's input slice.
	Index int `json:"index"`
	// Box is the marked box; for a point mark it is the zero-size box at the point.
	Box Box `json:"-"`
	// IsPoint is true for point marks (filled circles).
	IsPoint bool `json:"-"`
	// Point is the box centre or the marked point: the position the SoM text quantises.
	Point Point `json:"-"`
	// Label is the pixel rectangle of the drawn label (for points, the circle's bounding square).
	Label Box `json:"-"`
}

// MarshalJSON writes {"id","index","bbox":[x1,y1,x2,y2]} for boxes or
// {"id","index","point":[x,y]} for points, plus "label":[x1,y1,x2,y2].
func (r Region) MarshalJSON() ([]byte, error) {
	m := map[string]any{"id": r.ID, "index": r.Index,
		"label": []float64{r.Label.X1, r.Label.Y1, r.Label.X2, r.Label.Y2}}
	if r.IsPoint {
		m["point"] = []float64{r.Point.X, r.Point.Y}
	} else {
		m["bbox"] = []float64{r.Box.X1, r.Box.Y1, r.Box.X2, r.Box.Y2}
	}
	return json.Marshal(m)
}

// Result is a marked image and its id -> region map.
type Result struct {
	Image vision.Image
	// Marks are sorted by ID.
	Marks []Region
}

// ByID returns the region with the given id.
func (r *Result) ByID(id int) (Region, bool) {
	for _, m := range r.Marks {
		if m.ID == id {
			return m, true
		}
	}
	return Region{}, false
}

// GridMarks quantises every mark's point to the 256 grid (GridPoint) for SoMAnswer.
func (r *Result) GridMarks() []Mark {
	out := make([]Mark, len(r.Marks))
	for i, m := range r.Marks {
		x, y := GridPoint(m.Point.X, m.Point.Y, r.Image.W, r.Image.H)
		out[i] = Mark{ID: m.ID, X: x, Y: y}
	}
	return out
}

// Options controls drawing. The zero value is valid (red, ids 1..K in input order).
type Options struct {
	// Color is the RGB of box outlines, label backgrounds and point circles;
	// the zero value means red (255,0,0).
	Color [3]uint8
	// LineWidth of box outlines in pixels; 0 means 2.
	LineWidth int
	// Shuffle assigns the ids (1..K, or 0..K-1) in a random order drawn from Seed (as
	// Magma's video SoM does with torch.randperm); otherwise mark i gets id i+1.
	Shuffle bool
	Seed    int64
	// IDs, when non-nil, gives each input its id explicitly (unique, >= 0).
	IDs []int
	// ZeroBased numbers the marks 0..K-1 instead of 1..K. Magma's UI agent
	// (agents/ui_agent/util/som.py plot_boxes_with_marks, text = str(idx))
	// and OmniParser's boxes are 0-based; the paper's Algorithm 1, the video
	// and robot ToM marks (som_tom.py, mark_id+1) are 1-based.
	ZeroBased bool
}

// ErrNoImage is returned for an image without pixels.
var ErrNoImage = errors.New("som: empty or malformed image")

// LabelHeight is the box-label height in pixels for a w x h image, as
// Magma's MarkHelper (agents/ui_agent/util/som.py) sizes it: the font
// starts at min_font_size 20 and grows until the text box of "555" is at
// least min(max_font_size 30, max_font_proportion 0.04 * the short side)
// tall. An Arial text box is about 0.91 of the font size tall, so the
// height is max(18, ceil(min(30, 0.04*short side))).
func LabelHeight(w, h int) int {
	s := min(w, h)
	return max(minLabelHeight, int(math.Ceil(math.Min(maxLabelHeight, 0.04*float64(s))-1e-9)))
}

// minLabelHeight is the text-box height of Arial at MarkHelper's minimum
// font size 20 (0.91 * 20, rounded); maxLabelHeight is max_font_size.
const (
	minLabelHeight = 18
	maxLabelHeight = 30
)

// PointLabelHeight is the text height of the numbers on point marks for an
// image w pixels wide, as Magma's som_prompting (data/utils/som_tom.py)
// sizes them for video and robot frames: the font grows from 1 until the
// text box of "55" is at least 3% of the width; the circle's diameter is
// the larger side of the number's text box plus 2.
func PointLabelHeight(w int) int {
	return max(1, int(math.Ceil(0.03*float64(w)-1e-9)))
}

// font describes the Hershey font setup for a label height.
type font struct {
	scale     float64
	thickness int
	height    int // label box height
	pad       int
}

const fontFace = gocv.FontHersheySimplex

func fontFor(labelH int) font {
	// FontHersheySimplex digits are about 22 px tall at scale 1; in an
	// Arial text box the digits fill the lower ~75% (the rest is the
	// ascender gap above them).
	th := 0.75 * float64(labelH)
	f := font{scale: th / 22, height: labelH, pad: int(math.Max(1, math.Round(0.1*float64(labelH))))}
	f.thickness = int(math.Max(1, math.Round(float64(labelH)/14)))
	return f
}

// textW is the width of a label box for text.
func (f font) textW(text string) (int, image.Point) {
	sz := gocv.GetTextSize(text, fontFace, f.scale, f.thickness)
	return sz.X + 2*f.pad, sz
}

func (o Options) color() color.RGBA {
	c := o.Color
	if c == [3]uint8{} {
		c = [3]uint8{255, 0, 0}
	}
	// The Mat holds RGB bytes, while gocv passes color.RGBA as a BGR scalar:
	// swap so that the bytes written are the RGB asked for.
	return color.RGBA{R: c[2], G: c[1], B: c[0], A: 255}
}

var white = color.RGBA{255, 255, 255, 255}

func (o Options) ids(n int) ([]int, error) {
	if o.IDs != nil {
		if len(o.IDs) != n {
			return nil, fmt.Errorf("som: %d ids for %d marks", len(o.IDs), n)
		}
		seen := make(map[int]bool, n)
		for _, id := range o.IDs {
			if id < 0 || seen[id] {
				return nil, fmt.Errorf("som: ids must be unique and >= 0, got %v", o.IDs)
			}
			seen[id] = true
		}
		return append([]int(nil), o.IDs...), nil
	}
	ids := make([]int, n)
	base := 1
	if o.ZeroBased {
		base = 0
	}
	for i := range ids {
		ids[i] = i + base
	}
	if o.Shuffle {
		r := rand.New(rand.NewSource(o.Seed))
		r.Shuffle(n, func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	}
	return ids, nil
}

// toMat copies an RGB image into a new CV_8UC3 Mat (bytes stay in RGB order).
func toMat(img vision.Image) (gocv.Mat, error) {
	if img.Validate() != nil {
		return gocv.Mat{}, fmt.Errorf("%w: %v", ErrNoImage, img.Validate())
	}
	// gocv.NewMatFromBytes would alias the Go slice: copy into a Mat that
	// owns its memory instead.
	m := gocv.NewMatWithSize(img.H, img.W, gocv.MatTypeCV8UC3)
	dst, err := m.DataPtrUint8()
	if err != nil || len(dst) != len(img.Pix) {
		m.Close()
		return gocv.Mat{}, fmt.Errorf("som: cannot allocate a %dx%d Mat", img.W, img.H)
	}
	copy(dst, img.Pix)
	return m, nil
}

func fromMat(m gocv.Mat) vision.Image {
	return vision.Image{W: m.Cols(), H: m.Rows(), Pix: m.ToBytes()}
}

// ValidateBoxes checks boxes against a w x h image and returns them clipped
// to the image. A box with a non-finite coordinate, x2 < x1 or y2 < y1, or
// no area inside the image (including zero-width boxes) is an error naming
// its index; a box partly outside is clipped (documented behaviour).
func ValidateBoxes(boxes []Box, w, h int) ([]Box, error) {
	out := make([]Box, len(boxes))
	for i, b := range boxes {
		for _, v := range []float64{b.X1, b.Y1, b.X2, b.Y2} {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("som: box %d %v has a non-finite coordinate", i, b)
			}
		}
		if b.X2 < b.X1 || b.Y2 < b.Y1 {
			return nil, fmt.Errorf("som: box %d %v has x2<x1 or y2<y1 (want [x1,y1,x2,y2])", i, b)
		}
		c := Box{math.Max(0, b.X1), math.Max(0, b.Y1), math.Min(float64(w), b.X2), math.Min(float64(h), b.Y2)}
		if c.X2 <= c.X1 || c.Y2 <= c.Y1 {
			return nil, fmt.Errorf("som: box %d [%g,%g,%g,%g] has no area inside the %dx%d image", i, b.X1, b.Y1, b.X2, b.Y2, w, h)
		}
		out[i] = c
	}
	return out, nil
}

// candidates lists the 8 label positions of Magma's UI SoM tool (top-left
// above, top-right above, right-top, right-bottom, bottom-right below,
// bottom-left below, left-bottom, left-top), all just outside the box, and
// then, used only when none of those fits in the image, the 4 inside corners.
func candidates(b Box, lw, lh float64) (outside, inside [][2]float64) {
	outside = [][2]float64{
		{b.X1, b.Y1 - lh},
		{b.X2 - lw, b.Y1 - lh},
		{b.X2, b.Y1},
		{b.X2, b.Y2 - lh},
		{b.X2 - lw, b.Y2},
		{b.X1, b.Y2},
		{b.X1 - lw, b.Y2 - lh},
		{b.X1 - lw, b.Y1},
	}
	inside = [][2]float64{
		{b.X1, b.Y1},
		{b.X2 - lw, b.Y1},
		{b.X2 - lw, b.Y2 - lh},
		{b.X1, b.Y2 - lh},
	}
	return
}

// placeLabel picks the label rectangle for box i as Magma's
// _find_least_overlapping_corner does: among the 8 outside candidates that
// lie fully inside the image, the one whose worst case over every other
// box and every label already drawn, max(intersection area - 0.0001 *
// nearest-corner distance), is smallest; the first candidate wins ties.
// When no outside candidate fits (Magma would then draw the first one off
// the image) the 4 inside corners, clamped to the image, compete instead.
func placeLabel(i int, boxes []Box, drawn []Box, lw, lh float64, w, h int) Box {
	out, in := candidates(boxes[i], lw, lh)
	fits := func(x, y float64) bool {
		return x >= 0 && y >= 0 && x+lw <= float64(w) && y+lh <= float64(h)
	}
	var pool [][2]float64
	for _, c := range out {
		if fits(c[0], c[1]) {
			pool = append(pool, c)
		}
	}
	if len(pool) == 0 {
		for _, c := range in {
			x := math.Min(math.Max(c[0], 0), float64(w)-lw)
			y := math.Min(math.Max(c[1], 0), float64(h)-lh)
			pool = append(pool, [2]float64{math.Max(x, 0), math.Max(y, 0)})
		}
	}
	best := Box{}
	bestScore := math.Inf(1)
	for _, c := range pool {
		lb := Box{c[0], c[1], c[0] + lw, c[1] + lh}
		worst := -float64(w + h)
		score := func(o Box) {
			worst = math.Max(worst, interArea(lb, o)-0.0001*cornerDist(lb, o))
		}
		for j, o := range boxes {
			if j != i && o != boxes[i] {
				score(o)
			}
		}
		for _, o := range drawn {
			score(o)
		}
		if worst < bestScore {
			best, bestScore = lb, worst
		}
	}
	return best
}

// cornerDist is the smallest distance between a corner of a and a corner of b.
func cornerDist(a, b Box) float64 {
	d := math.Inf(1)
	for _, p := range [4][2]float64{{a.X1, a.Y1}, {a.X2, a.Y1}, {a.X1, a.Y2}, {a.X2, a.Y2}} {
		for _, q := range [4][2]float64{{b.X1, b.Y1}, {b.X2, b.Y1}, {b.X1, b.Y2}, {b.X2, b.Y2}} {
			d = math.Min(d, math.Hypot(p[0]-q[0], p[1]-q[1]))
		}
	}
	return d
}

func rect(b Box) image.Rectangle {
	return image.Rect(int(math.Round(b.X1)), int(math.Round(b.Y1)), int(math.Round(b.X2)), int(math.Round(b.Y2)))
}

// DrawBoxes is Algorithm 1: it outlines every box, then for each box in
// order places a filled label (Options.Color, red by default) with white
// digits at the least-overlapping of the 8 candidate positions and returns
// the marked copy of img with the id -> box map. Boxes are [x1,y1,x2,y2]
// pixels; see ValidateBoxes for boxes outside the image. An empty box list
// returns an unmarked copy and no marks (not an error).
func DrawBoxes(img vision.Image, boxes []Box, opt Options) (*Result, error) {
	if err := img.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoImage, err)
	}
	clipped, err := ValidateBoxes(boxes, img.W, img.H)
	if err != nil {
		return nil, err
	}
	ids, err := opt.ids(len(boxes))
	if err != nil {
		return nil, err
	}
	m, err := toMat(img)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	col := opt.color()
	lwid := opt.LineWidth
	if lwid <= 0 {
		lwid = 2
	}
	for _, b := range clipped {
		gocv.Rectangle(&m, rect(b), col, lwid)
	}
	f := fontFor(LabelHeight(img.W, img.H))
	marks := make([]Region, len(boxes))
	drawn := make([]Box, 0, len(boxes))
	for i, b := range clipped {
		text := fmt.Sprint(ids[i])
		lw, tsz := f.textW(text)
		lb := placeLabel(i, clipped, drawn, float64(lw), float64(f.height), img.W, img.H)
		r := rect(lb)
		gocv.Rectangle(&m, r, col, -1)
		org := image.Pt(r.Min.X+(r.Dx()-tsz.X)/2, r.Min.Y+(r.Dy()+tsz.Y)/2)
		gocv.PutTextWithParams(&m, text, org, fontFace, f.scale, white, f.thickness, gocv.LineAA, false)
		drawn = append(drawn, lb)
		marks[i] = Region{ID: ids[i], Index: i, Box: b, Point: b.Center(), Label: lb}
	}
	sort.Slice(marks, func(a, b int) bool { return marks[a].ID < marks[b].ID })
	return &Result{Image: fromMat(m), Marks: marks}, nil
}

// DrawPoints draws each point as a filled circle (Options.Color) with its
// number in white, sized like the box labels, and returns the marked copy
// with the id -> point map. Points must be finite and inside the image
// (edges inclusive); an empty list returns an unmarked copy.
func DrawPoints(img vision.Image, pts []Point, opt Options) (*Result, error) {
	if err := img.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoImage, err)
	}
	for i, p := range pts {
		if math.IsNaN(p.X) || math.IsNaN(p.Y) || p.X < 0 || p.Y < 0 || p.X > float64(img.W) || p.Y > float64(img.H) {
			return nil, fmt.Errorf("som: point %d (%v,%v) is outside the %dx%d image", i, p.X, p.Y, img.W, img.H)
		}
	}
	ids, err := opt.ids(len(pts))
	if err != nil {
		return nil, err
	}
	m, err := toMat(img)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	col := opt.color()
	f := fontFor(PointLabelHeight(img.W))
	marks := make([]Region, len(pts))
	for i, p := range pts {
		text := fmt.Sprint(ids[i])
		tsz := gocv.GetTextSize(text, fontFace, f.scale, f.thickness)
		// som_prompting: radius max(text_size)//2 + 1 around the point.
		rad := max(tsz.X+2*f.pad, f.height)/2 + 1
		c := image.Pt(int(math.Round(p.X)), int(math.Round(p.Y)))
		gocv.CircleWithParams(&m, c, rad, col, -1, gocv.LineAA, 0)
		org := image.Pt(c.X-tsz.X/2, c.Y+tsz.Y/2)
		gocv.PutTextWithParams(&m, text, org, fontFace, f.scale, white, f.thickness, gocv.LineAA, false)
		r := float64(rad)
		marks[i] = Region{ID: ids[i], Index: i, Box: Box{p.X, p.Y, p.X, p.Y}, IsPoint: true, Point: p,
			Label: Box{p.X - r, p.Y - r, p.X + r, p.Y + r}}
	}
	sort.Slice(marks, func(a, b int) bool { return marks[a].ID < marks[b].ID })
	return &Result{Image: fromMat(m), Marks: marks}, nil
}
