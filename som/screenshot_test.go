package som

import (
	"image"
	"image/color"
	"os"
	"path/filepath"
	"testing"

	"gocv.io/x/gocv"

	"github.com/magma-go/magma/vision"
)

// uiScreenshot renders a 640x400 synthetic web page: a title, a search
// field with a button, a row of menu words, two paragraphs of text and
// two buttons. words are the pixel boxes of every word drawn (for checks).
func uiScreenshot() (vision.Image, []Box) {
	m := gocv.NewMatWithSize(400, 640, gocv.MatTypeCV8UC3)
	defer m.Close()
	m.SetTo(gocv.NewScalar(245, 245, 245, 0))
	var words []Box
	put := func(s string, x, y int, scale float64, c color.RGBA) {
		sz := gocv.GetTextSize(s, gocv.FontHersheySimplex, scale, 1)
		gocv.PutText(&m, s, image.Pt(x, y), gocv.FontHersheySimplex, scale, c, 1)
		words = append(words, Box{float64(x), float64(y - sz.Y), float64(x + sz.X), float64(y)})
	}
	dark := color.RGBA{30, 30, 30, 0}
	put("Weather", 20, 40, 1.0, dark)
	put("Forecast", 160, 40, 1.0, dark)
	gocv.Rectangle(&m, image.Rect(20, 60, 420, 92), color.RGBA{120, 120, 120, 0}, 1)
	put("Search", 30, 82, 0.6, color.RGBA{150, 150, 150, 0})
	put("city", 100, 82, 0.6, color.RGBA{150, 150, 150, 0})
	gocv.Rectangle(&m, image.Rect(430, 60, 520, 92), color.RGBA{200, 110, 40, 0}, -1)
	put("Go", 460, 83, 0.6, color.RGBA{255, 255, 255, 0})
	x := 20
	for _, w := range []string{"Home", "Maps", "Radar", "News", "Settings"} {
		put(w, x, 130, 0.55, color.RGBA{40, 60, 160, 0})
		x += 100
	}
	for i, line := range [][]string{{"Sunny", "with", "light", "winds", "today"}, {"Rain", "expected", "on", "Friday", "evening"}} {
		x = 20
		for _, w := range line {
			put(w, x, 190+i*30, 0.5, dark)
			sz := gocv.GetTextSize(w, gocv.FontHersheySimplex, 0.5, 1)
			x += sz.X + 9
		}
	}
	gocv.Rectangle(&m, image.Rect(20, 300, 160, 340), color.RGBA{40, 120, 60, 0}, -1)
	put("Subscribe", 38, 326, 0.6, color.RGBA{255, 255, 255, 0})
	gocv.Rectangle(&m, image.Rect(200, 300, 340, 340), color.RGBA{90, 90, 90, 0}, 2)
	put("Details", 228, 326, 0.6, dark)
	return vision.Image{W: 640, H: 400, Pix: m.ToBytes()}, words
}

// MAGMA_SOM_PNG_DIR=dir writes the proposer's boxes drawn on the synthetic
// page (for the closing note's before/after pictures).
func TestProposerPNG(t *testing.T) {
	dir := os.Getenv("MAGMA_SOM_PNG_DIR")
	if dir == "" {
		t.Skip("MAGMA_SOM_PNG_DIR not set")
	}
	img, _ := uiScreenshot()
	boxes, err := NewClassicalProposer().Propose(img)
	if err != nil {
		t.Fatal(err)
	}
	res, err := DrawBoxes(img, boxes, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d boxes", len(boxes))
	if err := WriteImage(filepath.Join(dir, "proposer.png"), res.Image); err != nil {
		t.Fatal(err)
	}
}

// The proposer gives one box per word (letters merged) and no box on
// empty background.
func TestProposerWords(t *testing.T) {
	img, words := uiScreenshot()
	boxes, err := NewClassicalProposer().Propose(img)
	if err != nil {
		t.Fatal(err)
	}
	matched := 0
	for _, w := range words {
		for _, b := range boxes {
			if iou(w, b) >= 0.5 {
				matched++
				break
			}
		}
	}
	if matched*10 < len(words)*8 {
		t.Errorf("only %d of %d words have their own box: %v", matched, len(words), boxes)
	}
	for _, b := range boxes {
		for _, w := range words {
			in := interArea(b, w)
			if in >= 0.8*b.area() && b.area() < 0.4*w.area() {
				t.Errorf("box %v is a fragment of word %v", b, w)
			}
		}
		// every box covers some non-background pixel
		ink := false
		for y := int(b.Y1); y < int(b.Y2) && !ink; y++ {
			for x := int(b.X1); x < int(b.X2); x++ {
				if img.Pix[(y*img.W+x)*3] != 245 {
					ink = true
					break
				}
			}
		}
		if !ink {
			t.Errorf("box %v covers only background", b)
		}
	}
}
