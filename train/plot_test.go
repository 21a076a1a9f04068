package train

import (
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gocv.io/x/gocv"
)

func TestPlot(t *testing.T) {
	var ms []Metric
	s := NewSchedule("cosine", 1e-3, 200, 0.05)
	for i := 1; i <= 200; i++ {
		ms = append(ms, Metric{Step: i, Loss: 5*math.Exp(-float64(i)/40) + 0.3 + 0.1*math.Sin(float64(i)), LR: s.LR(i - 1)})
	}
	out := filepath.Join(t.TempDir(), "curves.png")
	if dir := os.Getenv("MAGMA_PLOT_OUT"); dir != "" {
		out = dir
	}
	if err := Plot(ms, out, "test run"); err != nil {
		t.Fatal(err)
	}
	img := gocv.IMRead(out, gocv.IMReadColor)
	defer img.Close()
	if img.Empty() || img.Cols() != 900 || img.Rows() != 700 {
		t.Fatalf("plot image %dx%d", img.Cols(), img.Rows())
	}
	if err := Plot(nil, out, "x"); err == nil {
		t.Error("empty metrics accepted")
	}
}

// Issue 31, point 14: curves.png is drawn by gonum.org/v1/plot. The PNG
// decodes at 900x700, both series are drawn in their colours with axes and
// text, and NaN/Inf values, a single point or no finite value at all draw
// without panicking; an unknown extension is an error naming it.
func TestPlotGonum(t *testing.T) {
	lin := func(n int, f func(i int) (loss, lr float64)) []Metric {
		var ms []Metric
		for i := 1; i <= n; i++ {
			l, r := f(i)
			ms = append(ms, Metric{Step: i, Loss: l, LR: r})
		}
		return ms
	}
	nan, inf := math.NaN(), math.Inf(1)
	cases := []struct {
		name         string
		ms           []Metric
		loss, lrLine bool // expect pixels of that series' colour
	}{
		{"curves", lin(50, func(i int) (float64, float64) { return 5 / float64(i), 1e-3 * float64(i) / 50 }), true, true},
		{"nan and inf", lin(20, func(i int) (float64, float64) {
			switch i {
			case 3:
				return nan, nan
			case 7:
				return inf, -inf
			}
			return 2 + math.Sin(float64(i)), 1e-4
		}), true, true},
		{"single point", []Metric{{Step: 1, Loss: 3.2, LR: 5e-5}}, true, true},
		{"resumed steps", lin(10, func(i int) (float64, float64) { return 1, 2e-5 })[5:], true, true},
		{"no finite value", lin(3, func(int) (float64, float64) { return nan, inf }), false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), PlotFile)
			if dir := os.Getenv("MAGMA_PLOT_DIR"); dir != "" {
				out = filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".png")
			}
			if err := Plot(tc.ms, out, "run "+tc.name); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			img, err := png.Decode(f)
			if err != nil {
				t.Fatalf("curves.png does not decode: %v", err)
			}
			if b := img.Bounds(); b.Dx() != PlotWidth || b.Dy() != PlotHeight {
				t.Fatalf("size %dx%d, want %dx%d", b.Dx(), b.Dy(), PlotWidth, PlotHeight)
			}
			var dark, red, blue int
			b := img.Bounds()
			for y := b.Min.Y; y < b.Max.Y; y++ {
				for x := b.Min.X; x < b.Max.X; x++ {
					r, g, bl, _ := img.At(x, y).RGBA()
					r, g, bl = r>>8, g>>8, bl>>8
					switch {
					case r < 160 && g < 160 && bl < 160 && max(r, g, bl)-min(r, g, bl) < 30:
						dark++ // axes, ticks, text
					case r > 150 && g < 110 && bl < 80:
						red++
					case bl > 150 && r < 80 && g < 140:
						blue++
					}
				}
			}
			if dark < 2000 {
				t.Errorf("only %d dark pixels: no axes or labels?", dark)
			}
			// A drawn series has more than 50 pixels; its legend swatch alone ~25.
			if tc.loss != (red > 50) || tc.lrLine != (blue > 50) {
				t.Errorf("loss pixels %d (want some: %v), lr pixels %d (want some: %v)", red, tc.loss, blue, tc.lrLine)
			}
		})
	}
	if err := Plot(lin(2, func(int) (float64, float64) { return 1, 1 }), filepath.Join(t.TempDir(), "curves.bmp"), "x"); err == nil || !strings.Contains(err.Error(), ".bmp") {
		t.Errorf("unknown extension: %v", err)
	}
}
