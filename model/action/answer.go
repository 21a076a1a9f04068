package action

import (
	"regexp"
	"strconv"
	"strings"

	"github.com/magma-go/magma/som"
)

// Point forms recognised in an answer (Answer.PointForm).
const (
	FormFraction = "fraction" // (0.23, 0.51) or [0.23,0.51]: 0-1 of the image size
	FormGrid     = "grid256"  // [59,131]: Magma's 256 grid, cell centre
	FormBox      = "box"      // <box>x1,y1,x2,y2</box> etc.: centre of the box
	FormPixels   = "pixels"   // a predictions file's "point" in pixels
)

// ParseOptions adjusts ParseAnswer.
type ParseOptions struct {
	// BoxScale is the range of integer coordinates inside <box> tags:
	// 1000 (Qwen-VL / SeeClick, the default when 0) or 256 (Magma's grid).
	BoxScale float64
}

func (o ParseOptions) boxScale() float64 {
	if o.BoxScale > 0 {
		return o.BoxScale
	}
	return 1000
}

// Answer is what a model answer says, in pixels of the w x h screenshot.
type Answer struct {
	// Mark is the first mark id ("Mark: 7", "Mark 7", "mark #7"); HasMark
	// tells whether there was one.
	Mark    int
	HasMark bool
	// Point is the first point the answer gives, converted to pixels.
	Point     som.Point
	HasPoint  bool
	PointForm string
}

// Parsed reports whether the answer gave a mark or a point.
func (a Answer) Parsed() bool { return a.HasMark || a.HasPoint }

var (
	// "Mark: 7", "Mark 7", "mark #7", "Mark:7", "Mark id 7", "Mark 3 at [..]".
	markRE = regexp.MustCompile(`(?i)\bmarks?\s*(?:id|index|number)?\s*[:#=]?\s*(\d+)`)
	num    = `(-?\d+(?:\.\d*)?|-?\.\d+)`
	// <box>...</box>, <|box_start|>...<|box_end|>: the numbers inside.
	boxTagRE = regexp.MustCompile(`(?s)(?:<box>|<\|box_start\|>)(.*?)(?:</box>|<\|box_end\|>)`)
	quadRE   = regexp.MustCompile(`[\(\[]\s*` + num + `\s*,\s*` + num + `\s*,\s*` + num + `\s*,\s*` + num + `\s*[\)\]]`)
	pairRE   = regexp.MustCompile(`[\(\[]\s*` + num + `\s*,\s*` + num + `\s*[\)\]]`)
	numRE    = regexp.MustCompile(num)
)

// ParseAnswer reads a model answer for a w x h screenshot. Every accepted
// form, the first occurrence in the text winning among the point forms:
//
//   - mark id: "Mark: 7" (Magma's " Mark: {id}"), "Mark 7", "mark #7";
//   - a pair with a decimal point, "(0.23, 0.51)" or "[0.23,0.51]": both
//     numbers must lie in [0,1]; they are fractions of the width and height;
//   - a pair of integers, "[59,131]": Magma's 256 grid (int(256*x/W)); the
//     click is the cell centre (q+0.5)*W/256; values outside 0..255 are
//     rejected. Integers are never read as fractions, so "[0,1]" is grid cell
//     (0,1), and a decimal pair is never read as the grid;
//   - four numbers in brackets, "[0.1,0.2,0.3,0.4]" or "(12,40,60,80)": a box
//     by the same rules (decimals: fractions, integers: 256 grid), its centre
//     is the point;
//   - <box>x1,y1,x2,y2</box>, SeeClick's <box>(x1,y1),(x2,y2)</box>, Qwen's
//     <|box_start|>(x1,y1),(x2,y2)<|box_end|>, or two numbers as a point
//     inside the tags: decimals in [0,1] are fractions; otherwise the numbers
//     are on 0..BoxScale (1000 by default, Qwen-VL's convention; 256 for the
//     grid), and values above the scale are rejected.
//
// Pixel coordinates are not accepted in text (they cannot be told apart from
// grid values); a predictions file gives pixels in its "point" field.
func ParseAnswer(text string, w, h int, opt ParseOptions) Answer {
	var a Answer
	if m := markRE.FindStringSubmatch(text); m != nil {
		if id, err := strconv.Atoi(m[1]); err == nil {
			a.Mark, a.HasMark = id, true
		}
	}
	type cand struct {
		pos  int
		pt   som.Point
		form string
	}
	best := cand{pos: -1}
	consider := func(pos int, pt som.Point, form string) {
		if best.pos < 0 || pos < best.pos {
			best = cand{pos, pt, form}
		}
	}
	W, H := float64(w), float64(h)
	// Spans inside box tags are handled only by the tag rule.
	tagged := boxTagRE.FindAllStringSubmatchIndex(text, -1)
	inTag := func(pos int) bool {
		for _, t := range tagged {
			if pos >= t[0] && pos < t[1] {
				return true
			}
		}
		return false
	}
	for _, t := range tagged {
		nums := numRE.FindAllString(text[t[2]:t[3]], -1)
		if pt, ok := boxTagPoint(nums, W, H, opt.boxScale()); ok {
			consider(t[0], pt, FormBox)
		}
	}
	for _, m := range quadRE.FindAllStringSubmatchIndex(text, -1) {
		if inTag(m[0]) {
			continue
		}
		nums := []string{text[m[2]:m[3]], text[m[4]:m[5]], text[m[6]:m[7]], text[m[8]:m[9]]}
		if vals, form, ok := plainNumbers(nums); ok {
			x, y := (vals[0]+vals[2])/2, (vals[1]+vals[3])/2
			if form == FormGrid {
				// centre of the covered cells: from the first cell's start to the last cell's end
				x, y = (vals[0]+vals[2]+1)/2, (vals[1]+vals[3]+1)/2
				consider(m[0], som.Point{X: x * W / som.CoordGrid, Y: y * H / som.CoordGrid}, FormBox)
			} else {
				consider(m[0], som.Point{X: x * W, Y: y * H}, FormBox)
			}
		}
	}
	for _, m := range pairRE.FindAllStringSubmatchIndex(text, -1) {
		if inTag(m[0]) {
			continue
		}
		nums := []string{text[m[2]:m[3]], text[m[4]:m[5]]}
		vals, form, ok := plainNumbers(nums)
		if !ok {
			continue
		}
		if form == FormGrid {
			consider(m[0], som.Point{X: som.CellCenter(int(vals[0]), W), Y: som.CellCenter(int(vals[1]), H)}, FormGrid)
		} else {
			consider(m[0], som.Point{X: vals[0] * W, Y: vals[1] * H}, FormFraction)
		}
	}
	if best.pos >= 0 {
		a.Point, a.HasPoint, a.PointForm = best.pt, true, best.form
	}
	return a
}

// plainNumbers applies the bracket rules: any decimal point makes the group
// fractions (all must be in [0,1]); otherwise integers on the 256 grid.
func plainNumbers(nums []string) ([]float64, string, bool) {
	vals := make([]float64, len(nums))
	dec := false
	for i, s := range nums {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, "", false
		}
		vals[i] = v
		if strings.Contains(s, ".") {
			dec = true
		}
	}
	for _, v := range vals {
		if dec && (v < 0 || v > 1) {
			return nil, "", false
		}
		if !dec && (v < 0 || v > som.CoordGrid-1) {
			return nil, "", false
		}
	}
	if dec {
		return vals, FormFraction, true
	}
	return vals, FormGrid, true
}

func boxTagPoint(nums []string, W, H, scale float64) (som.Point, bool) {
	if len(nums) != 2 && len(nums) != 4 {
		return som.Point{}, false
	}
	vals := make([]float64, len(nums))
	frac := true
	for i, s := range nums {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || v < 0 {
			return som.Point{}, false
		}
		vals[i] = v
		if !strings.Contains(s, ".") || v > 1 {
			frac = false
		}
	}
	div := scale
	if frac {
		div = 1
	}
	for _, v := range vals {
		if v > div {
			return som.Point{}, false
		}
	}
	x, y := vals[0], vals[1]
	if len(vals) == 4 {
		x, y = (vals[0]+vals[2])/2, (vals[1]+vals[3])/2
	}
	return som.Point{X: x / div * W, Y: y / div * H}, true
}

// Click resolves an answer to the click point: the centre of the answered
// mark's box when the mark exists on the marked image (unless preferPoint and
// the answer also has a point), else the answer's point. source says which
// ("mark", or the point form); ok is false for an unparsable answer or a
// mark id that was not drawn and no point.
func Click(a Answer, marks *som.Result, preferPoint bool) (p som.Point, source string, markBox *som.Box, ok bool) {
	if a.HasPoint && (preferPoint || !a.HasMark) {
		return a.Point, a.PointForm, nil, true
	}
	if a.HasMark && marks != nil {
		if r, found := marks.ByID(a.Mark); found {
			b := r.Box
			return b.Center(), "mark", &b, true
		}
	}
	if a.HasPoint {
		return a.Point, a.PointForm, nil, true
	}
	return som.Point{}, "", nil, false
}
