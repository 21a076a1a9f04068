package train

import (
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// PlotFile is the curves image written into a run folder.
const PlotFile = "curves.png"

// PlotWidth and PlotHeight are the size of the curves image in pixels.
const PlotWidth, PlotHeight = 900, 700

// Series colours: loss (top panel) and learning rate (bottom panel).
var (
	lossColor = color.RGBA{R: 200, G: 60, B: 20, A: 255}
	lrColor   = color.RGBA{R: 30, G: 90, B: 200, A: 255}
)

// PlotRun draws RUN/metrics.jsonl into RUN/curves.png.
func PlotRun(runDir string) error {
	ms, err := ReadMetrics(filepath.Join(runDir, MetricsFile))
	if err != nil {
		return err
	}
	return Plot(ms, filepath.Join(runDir, PlotFile), filepath.Base(runDir))
}

// Plot draws the loss curve (top) and the learning-rate curve (bottom)
// against the step, with axes, ticks, grid, labels and a legend, into an
// image whose format follows path's extension (.png; .jpg/.jpeg and
// .tif/.tiff too). The panels are drawn by gonum.org/v1/plot with its
// embedded fonts. NaN and infinite values are left out of a curve (a
// diverged step leaves a gap in the line, not a broken axis); a single
// point is drawn as a dot.
func Plot(ms []Metric, path, title string) error {
	if len(ms) == 0 {
		return errors.New("plot: no metrics to draw")
	}
	encode, err := imageEncoder(path)
	if err != nil {
		return err
	}
	steps := make([]float64, len(ms))
	loss := make([]float64, len(ms))
	lr := make([]float64, len(ms))
	for i, m := range ms {
		steps[i], loss[i], lr[i] = float64(m.Step), m.Loss, m.LR
	}
	top, err := panel(steps, loss, "loss", lossColor)
	if err != nil {
		return err
	}
	top.Title.Text = title
	bottom, err := panel(steps, lr, "learning rate", lrColor)
	if err != nil {
		return err
	}
	bottom.X.Label.Text = "step"
	// Both panels over the same step range, so that they line up.
	xlo, xhi := math.Min(top.X.Min, bottom.X.Min), math.Max(top.X.Max, bottom.X.Max)
	top.X.Min, top.X.Max, bottom.X.Min, bottom.X.Max = xlo, xhi, xlo, xhi

	const dpi = 96
	c := vgimg.NewWith(vgimg.UseWH(vg.Length(PlotWidth)*vg.Inch/dpi, vg.Length(PlotHeight)*vg.Inch/dpi),
		vgimg.UseDPI(dpi), vgimg.UseBackgroundColor(color.White))
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 4,
		PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 4}
	plots := [][]*plot.Plot{{top}, {bottom}}
	canvases := plot.Align(plots, tiles, draw.New(c))
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	if _, err := encode(c).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("plot: writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("plot: writing %s: %w", path, err)
	}
	return nil
}

// imageEncoder picks the image format from path's extension.
func imageEncoder(path string) (func(*vgimg.Canvas) io.WriterTo, error) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".png":
		return func(c *vgimg.Canvas) io.WriterTo { return vgimg.PngCanvas{Canvas: c} }, nil
	case ".jpg", ".jpeg":
		return func(c *vgimg.Canvas) io.WriterTo { return vgimg.JpegCanvas{Canvas: c} }, nil
	case ".tif", ".tiff":
		return func(c *vgimg.Canvas) io.WriterTo { return vgimg.TiffCanvas{Canvas: c} }, nil
	}
	return nil, fmt.Errorf("plot: %s: unknown image extension %q (want .png, .jpg, .jpeg, .tif or .tiff)", path, filepath.Ext(path))
}

// panel is one curve of ys against xs: finite points only, the y axis
// from 0 when the curve stays within a factor 2 of it (loss and lr read
// better against their origin), the x axis from step 0.
func panel(xs, ys []float64, label string, c color.RGBA) (*plot.Plot, error) {
	p := plot.New()
	p.Y.Label.Text = label
	p.Legend.Top = true
	grid := plotter.NewGrid()
	grid.Vertical.Color = color.Gray{Y: 225}
	grid.Horizontal.Color = color.Gray{Y: 225}
	p.Add(grid)

	// Runs of consecutive finite points: each is one line (a NaN or Inf
	// step leaves a gap), a run of one point is a dot.
	var runs []plotter.XYs
	var cur plotter.XYs
	xlo, xhi := math.Inf(1), math.Inf(-1)
	ylo, yhi := math.Inf(1), math.Inf(-1)
	for i := range xs {
		xlo, xhi = math.Min(xlo, xs[i]), math.Max(xhi, xs[i])
		y := ys[i]
		if math.IsNaN(y) || math.IsInf(y, 0) {
			if len(cur) > 0 {
				runs, cur = append(runs, cur), nil
			}
			continue
		}
		cur = append(cur, plotter.XY{X: xs[i], Y: y})
		ylo, yhi = math.Min(ylo, y), math.Max(yhi, y)
	}
	if len(cur) > 0 {
		runs = append(runs, cur)
	}
	var legend plot.Thumbnailer
	for _, run := range runs {
		if len(run) == 1 {
			dot, err := plotter.NewScatter(run)
			if err != nil {
				return nil, fmt.Errorf("plot: %s: %w", label, err)
			}
			dot.Color = c
			dot.Shape = draw.CircleGlyph{}
			dot.Radius = vg.Points(3)
			p.Add(dot)
			if legend == nil {
				legend = dot
			}
			continue
		}
		line, err := plotter.NewLine(run)
		if err != nil {
			return nil, fmt.Errorf("plot: %s: %w", label, err)
		}
		line.Color = c
		line.Width = vg.Points(1.5)
		p.Add(line)
		if _, isLine := legend.(*plotter.Line); !isLine {
			legend = line
		}
	}
	if legend == nil { // nothing finite: empty axes, the legend says so
		line, err := plotter.NewLine(plotter.XYs{})
		if err != nil {
			return nil, fmt.Errorf("plot: %s: %w", label, err)
		}
		line.Color = c
		p.Legend.Add(label+" (no finite values)", line)
		ylo, yhi = 0, 1
	} else {
		p.Legend.Add(label, legend)
	}
	if xlo > 0 {
		xlo = 0
	}
	if xhi <= xlo {
		xhi = xlo + 1
	}
	if ylo > 0 && ylo < 0.5*yhi {
		ylo = 0
	}
	if yhi-ylo < 1e-12 {
		d := math.Max(math.Abs(yhi)*0.1, 1e-9)
		ylo, yhi = ylo-d, yhi+d
	}
	p.X.Min, p.X.Max = xlo, xhi
	// Headroom above the curve for the legend in the top right corner.
	p.Y.Min, p.Y.Max = ylo, yhi+0.08*(yhi-ylo)
	return p, nil
}
