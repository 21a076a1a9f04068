package eval

import (
	"bufio"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"strings"

	"gocv.io/x/gocv"

	"github.com/magma-go/magma/som"
	"github.com/magma-go/magma/vision/imaging"
)

// reporter writes predictions.jsonl as the run goes, failure PNGs for the
// first failures, and results.json at the end.
type reporter struct {
	dir      string
	maxFail  int
	nFail    int
	f        *os.File
	w        *bufio.Writer
	enc      *json.Encoder
	failures []string
}

func newReporter(dir string, maxFail int) (*reporter, error) {
	r := &reporter{dir: dir, maxFail: maxFail}
	if dir == "" {
		return r, nil
	}
	if err := os.MkdirAll(filepath.Join(dir, "failures"), 0o755); err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	f, err := os.Create(filepath.Join(dir, "predictions.jsonl"))
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	r.f, r.w = f, bufio.NewWriter(f)
	r.enc = json.NewEncoder(r.w)
	r.enc.SetEscapeHTML(false)
	return r, nil
}

// failInfo is what a failure PNG shows.
type failInfo struct {
	Index       int
	Cell        string
	Instruction string
	Answer      string
	GT          som.Box
	Correct     bool
	Err         error
	vis         visual
}

func (r *reporter) write(pred any, fi failInfo) error {
	if r.enc == nil {
		return nil
	}
	if err := r.enc.Encode(pred); err != nil {
		return fmt.Errorf("report: writing predictions.jsonl: %w", err)
	}
	vis := fi.vis
	if fi.Correct || !vis.hasImg || r.maxFail < 0 || r.nFail >= r.maxFail {
		return nil
	}
	r.nFail++
	name := fmt.Sprintf("%05d_%s.png", fi.Index, strings.ReplaceAll(fi.Cell, "/", "_"))
	lines := []string{fmt.Sprintf("#%d %s: %s", fi.Index, fi.Cell, fi.Instruction)}
	switch {
	case fi.Err != nil:
		lines = append(lines, "error: "+fi.Err.Error())
	case vis.point == nil:
		lines = append(lines, "unparsable answer: "+fi.Answer)
	default:
		lines = append(lines, fmt.Sprintf("click (%.0f,%.0f) outside the green box; answer: %s", vis.point.X, vis.point.Y, fi.Answer))
	}
	if err := DrawFailure(filepath.Join(r.dir, "failures", name), vis.img, fi.GT, vis.markBox, vis.point, lines); err != nil {
		return err
	}
	r.failures = append(r.failures, name)
	return nil
}

func (r *reporter) finish(res any) error {
	if r.dir == "" {
		return nil
	}
	if err := r.w.Flush(); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(r.dir, "results.json"), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

func (r *reporter) close() {
	if r.f != nil {
		r.w.Flush()
		r.f.Close()
		r.f = nil
	}
}

// Colours of the failure drawings (RGB; gocv takes them as RGBA and the Mat
// is BGR, which gocv handles).
var (
	colGT   = color.RGBA{0, 200, 0, 255}   // ground truth: green
	colPred = color.RGBA{255, 0, 255, 255} // predicted point: magenta
	colMark = color.RGBA{255, 200, 0, 255} // answered mark's box: amber
)

// DrawFailure writes a PNG of img (the marked screenshot) with a caption
// banner on top, the ground-truth box in green, the answered mark's box in
// amber and the predicted click as a magenta cross in a circle (the SoM
// marks are those already drawn on the marked screenshot, in red). Text is
// ASCII-only (OpenCV's Hershey fonts); other runes become '?'.
func DrawFailure(path string, img imaging.Image, gt som.Box, markBox *som.Box, pt *som.Point, lines []string) error {
	if err := img.Validate(); err != nil {
		return fmt.Errorf("failure image %s: %w", path, err)
	}
	rgb, err := gocv.NewMatFromBytes(img.H, img.W, gocv.MatTypeCV8UC3, img.Pix)
	if err != nil {
		return fmt.Errorf("failure image %s: %w", path, err)
	}
	defer rgb.Close()
	m := gocv.NewMat()
	defer m.Close()
	gocv.CvtColor(rgb, &m, gocv.ColorBGRToRGB) // the same channel swap as RGB->BGR

	short := math.Min(float64(img.W), float64(img.H))
	th := int(math.Max(2, math.Round(short/250)))
	if markBox != nil {
		gocv.Rectangle(&m, rectOf(*markBox), colMark, th)
	}
	gocv.Rectangle(&m, rectOf(gt), colGT, th+1)
	if pt != nil {
		clampC := func(v float64) int { return int(math.Round(math.Max(-1e6, math.Min(1e6, v)))) }
		c := image.Pt(clampC(pt.X), clampC(pt.Y)) // a wild pixel point from a predictions file
		r := int(math.Max(8, short/30))
		gocv.Circle(&m, c, r, colPred, th)
		gocv.Line(&m, image.Pt(c.X-r, c.Y), image.Pt(c.X+r, c.Y), colPred, th)
		gocv.Line(&m, image.Pt(c.X, c.Y-r), image.Pt(c.X, c.Y+r), colPred, th)
	}

	// caption banner
	scale := math.Max(0.4, math.Min(1.2, float64(img.W)/1200))
	thick := 1
	if scale > 0.8 {
		thick = 2
	}
	sz := gocv.GetTextSize("Hg", gocv.FontHersheySimplex, scale, thick)
	lineH := sz.Y*2 + 4
	fits := func(t string) bool { return gocv.GetTextSize(t, gocv.FontHersheySimplex, scale, thick).X <= img.W-8 }
	var wrapped []string
	for _, l := range lines {
		wrapped = append(wrapped, wrapText(asciiOnly(l), fits)...)
	}
	const maxLines = 8
	if len(wrapped) > maxLines {
		wrapped = append(wrapped[:maxLines-1], "...")
	}
	banner := lineH*len(wrapped) + 6
	out := gocv.NewMat()
	defer out.Close()
	gocv.CopyMakeBorder(m, &out, banner, 0, 0, 0, gocv.BorderConstant, color.RGBA{255, 255, 255, 255})
	for i, l := range wrapped {
		gocv.PutText(&out, l, image.Pt(4, 4+lineH*i+sz.Y+sz.Y/2), gocv.FontHersheySimplex, scale, color.RGBA{0, 0, 0, 255}, thick)
	}
	if !gocv.IMWrite(path, out) {
		return fmt.Errorf("writing failure image %s failed", path)
	}
	return nil
}

func rectOf(b som.Box) image.Rectangle {
	return image.Rect(int(math.Round(b.X1)), int(math.Round(b.Y1)), int(math.Round(b.X2)), int(math.Round(b.Y2)))
}

func asciiOnly(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\n' || r == '\t':
			b.WriteByte(' ')
		case r >= 32 && r < 127:
			b.WriteRune(r)
		default:
			b.WriteByte('?')
		}
	}
	return b.String()
}

// wrapText breaks s at spaces (or inside a word longer than a line) into
// lines for which fits is true.
func wrapText(s string, fits func(string) bool) []string {
	var out []string
	cur := ""
	for _, w := range strings.Fields(s) {
		next := w
		if cur != "" {
			next = cur + " " + w
		}
		if fits(next) {
			cur = next
			continue
		}
		if cur != "" {
			out = append(out, cur)
		}
		cur = w
		for len(cur) > 1 && !fits(cur) { // a word wider than the line
			k := len(cur) - 1
			for k > 1 && !fits(cur[:k]) {
				k--
			}
			out = append(out, cur[:k])
			cur = cur[k:]
		}
	}
	if cur != "" || len(out) == 0 {
		out = append(out, cur)
	}
	return out
}
