package som

import (
	"math/rand"
	"reflect"
	"strings"
	"testing"

	"github.com/magma-go/magma/vision"
)

func grayImage(w, h int, v uint8) vision.Image {
	pix := make([]uint8, w*h*3)
	for i := range pix {
		pix[i] = v
	}
	return vision.Image{W: w, H: h, Pix: pix}
}

func px(img vision.Image, x, y int) [3]uint8 {
	i := (y*img.W + x) * 3
	return [3]uint8{img.Pix[i], img.Pix[i+1], img.Pix[i+2]}
}

func TestGridCoordEdges(t *testing.T) {
	cases := []struct {
		v    float64
		ext  int
		want int
	}{
		{0, 512, 0}, {512, 512, 255}, {511.999, 512, 255}, {256, 512, 128}, {-3, 100, 0},
		{1000, 100, 255}, {1, 3, 85}, {1919, 1920, 255}, {1920, 1920, 255}, {7.5, 1920, 1},
	}
	for _, c := range cases {
		if got := GridCoord(c.v, c.ext); got != c.want {
			t.Errorf("GridCoord(%v,%d)=%d want %d", c.v, c.ext, got, c.want)
		}
	}
	if GridCoord(5, 0) != 0 {
		t.Error("zero extent")
	}
	x, y := GridPoint(640, 480, 640, 480)
	if x != 255 || y != 255 {
		t.Errorf("GridPoint corner = %d,%d", x, y)
	}
}

// Official format strings, quoted from microsoft/Magma:
//
// data/conversations.py, _construct_conv_som:
//
//	f"{self.image_placeholder}\nThe image is split into {self.spatial_quant_size}x{self.spatial_quant_size} grids, and labeled with numeric marks.\n"
//	f"Please locate all the numerical marks in the image.\n"
//	marks_pos.append(f'Mark {key} at {val_str}')   # val_str = f"[{x},{y}]", x = int(256 * x / W)
//	conv_gpt = ". ".join(marks_pos) + '\n'
//
// agents/ui_agent/app.py:
//
//	magma_som_prompt = "<image>\nIn this view I need to click a button to \"{}\"? Provide the coordinates and the mark index of the containing bounding box if applicable."
//
// agents/ui_agent/util/process_utils.py: bbox_2_point "({},{})" of
// f"{item:.2f}" fractions; extract_mark_id r'Mark: (\d+)'.
// (The chat template trims the trailing newlines.)
func TestTargetStrings(t *testing.T) {
	if SoMQuestion != "The image is split into 256x256 grids, and labeled with numeric marks.\nPlease locate all the numerical marks in the image." {
		t.Error(SoMQuestion)
	}
	got := SoMAnswer([]Mark{{7, 200, 10}, {3, 123, 45}})
	if got != "Mark 3 at [123,45]. Mark 7 at [200,10]" {
		t.Error(got)
	}
	// SeeClick's bbox_2_point: f"{item:.2f}" in "({},{})" (Magma's
	// agents/ui_agent/util/process_utils.py), then " Mark: {id}".
	if s := UIGroundingAnswer(960, 1080, 1920, 1080, 12); s != "(0.50,1.00) Mark: 12" {
		t.Error(s)
	}
	if s := FormatFracBox(Box{192, 108, 960, 540}, 1920, 1080); s != "(0.10,0.10,0.50,0.50)" {
		t.Error(s)
	}
	if s := MarkSuffix(3); s != " Mark: 3" {
		t.Error(s)
	}
	if s := StripMarkIDs("[10,20] Mark: 11"); s != "[10,20]" {
		t.Error(s)
	}
	if id, ok := ParseMarkID("click [3,4] Mark: 17"); !ok || id != 17 {
		t.Error(id, ok)
	}
	if _, ok := ParseMarkID("nothing"); ok {
		t.Error("parsed a mark from nothing")
	}
	want := "In this view I need to click a button to \"open settings\"? Provide the coordinates and the mark index of the containing bounding box if applicable."
	if s := UIAgentPrompt("open settings"); s != want {
		t.Error(s)
	}
}

func TestParseJSON(t *testing.T) {
	b, err := ParseBoxesJSON([]byte(`[{"bbox":[1,2,3,4]},{"bbox":[5,6,7,8.5]}]`))
	if err != nil || !reflect.DeepEqual(b, []Box{{1, 2, 3, 4}, {5, 6, 7, 8.5}}) {
		t.Error(b, err)
	}
	if _, err := ParseBoxesJSON([]byte(`[{"bbox":[1,2,3]}]`)); err == nil {
		t.Error("3-number bbox accepted")
	}
	if _, err := ParseBoxesJSON([]byte(`{`)); err == nil {
		t.Error("bad JSON accepted")
	}
	p, err := ParsePointsJSON([]byte(`[[1,2],{"point":[3,4]}]`))
	if err != nil || !reflect.DeepEqual(p, []Point{{1, 2}, {3, 4}}) {
		t.Error(p, err)
	}
	if _, err := ParsePointsJSON([]byte(`[[1]]`)); err == nil {
		t.Error("1-number point accepted")
	}
}

// MarkHelper (agents/ui_agent/util/som.py): min_font_size = 20,
// max_font_size = 30, max_font_proportion = 0.04, grown "while
// min(self.__get_markSize("555", ...)) < min(self.max_font_size,
// self.max_font_proportion * min(image_height, image_width))".
func TestLabelHeight(t *testing.T) {
	for _, c := range [][3]int{{1920, 1080, 30}, {512, 512, 21}, {500, 800, 20}, {100, 100, 18}, {4000, 3000, 30}} {
		if got := LabelHeight(c[0], c[1]); got != c[2] {
			t.Errorf("LabelHeight(%d,%d)=%d want %d", c[0], c[1], got, c[2])
		}
	}
}

// Labels never cover another mark's box when a free candidate exists.
func TestLabelPlacementAvoidsBoxes(t *testing.T) {
	img := grayImage(400, 300, 200)
	// Box 1 sits right below box 2's top-left-above slot, and a box to the
	// left and right of box 2 block the side slots; box 2's label must go
	// to a free slot.
	boxes := []Box{
		{100, 100, 200, 150}, // 1
		{100, 60, 200, 99},   // 2: directly above 1 (blocks 1's above-slots)
		{40, 100, 99, 150},   // 3: left of 1
		{201, 100, 260, 150}, // 4: right of 1
	}
	res, err := DrawBoxes(img, boxes, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range res.Marks {
		for j, b := range boxes {
			if j == m.Index {
				continue
			}
			if interArea(m.Label, b) > 0 {
				t.Errorf("label of mark %d %v covers box %d %v", m.ID, m.Label, j+1, b)
			}
		}
		for _, o := range res.Marks {
			if o.ID != m.ID && interArea(m.Label, o.Label) > 0 {
				t.Errorf("labels of %d and %d overlap", m.ID, o.ID)
			}
		}
		if m.Label.X1 < 0 || m.Label.Y1 < 0 || m.Label.X2 > 400 || m.Label.Y2 > 300 {
			t.Errorf("label %v outside image", m.Label)
		}
	}
	// The label pixels are red with white digits.
	l := res.Marks[0].Label
	c := px(res.Image, int(l.X1)+1, int(l.Y1)+1)
	if c != [3]uint8{255, 0, 0} {
		t.Errorf("label background %v, want red", c)
	}
	white := 0
	for y := int(l.Y1); y < int(l.Y2); y++ {
		for x := int(l.X1); x < int(l.X2); x++ {
			if p := px(res.Image, x, y); p[0] > 200 && p[1] > 200 && p[2] > 200 {
				white++
			}
		}
	}
	if white == 0 {
		t.Error("no white digit pixels in label")
	}
	// Box outline drawn in red on the box edge.
	if c := px(res.Image, 150, 150); c != [3]uint8{255, 0, 0} {
		t.Errorf("outline pixel %v", c)
	}
}

// A random screen of many boxes: whenever some candidate of a box is free of
// other boxes and drawn labels, the chosen one is free too.
func TestLabelPlacementRandom(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	W, H := 800, 600
	var boxes []Box
	for i := 0; i < 40; i++ {
		x, y := r.Float64()*700, r.Float64()*550
		boxes = append(boxes, Box{x, y, x + 20 + r.Float64()*80, y + 10 + r.Float64()*40})
	}
	boxes, _ = ValidateBoxes(boxes, W, H)
	lh := float64(LabelHeight(W, H))
	f := fontFor(int(lh))
	var drawn []Box
	for i := range boxes {
		lw, _ := f.textW(string(rune('0' + (i+1)%10)))
		if i+1 >= 10 {
			lw, _ = f.textW("00")
		}
		lb := placeLabel(i, boxes, drawn, float64(lw), lh, W, H)
		out, _ := candidates(boxes[i], float64(lw), lh)
		free := false
		for _, c := range out {
			cb := Box{c[0], c[1], c[0] + float64(lw), c[1] + lh}
			if cb.X1 < 0 || cb.Y1 < 0 || cb.X2 > float64(W) || cb.Y2 > float64(H) {
				continue
			}
			if overlapAll(cb, i, boxes, drawn) == 0 {
				free = true
			}
		}
		if free && overlapAll(lb, i, boxes, drawn) > 0 {
			t.Errorf("box %d: a free slot existed but label %v overlaps", i, lb)
		}
		drawn = append(drawn, lb)
	}
}

func overlapAll(b Box, i int, boxes, drawn []Box) float64 {
	s := 0.0
	for j, o := range boxes {
		if j != i {
			s += interArea(b, o)
		}
	}
	for _, o := range drawn {
		s += interArea(b, o)
	}
	return s
}

func TestDrawDeterministicAndShuffle(t *testing.T) {
	img := grayImage(320, 240, 90)
	boxes := []Box{{10, 30, 60, 60}, {100, 100, 150, 140}, {200, 50, 300, 90}, {20, 150, 90, 200}}
	a, err := DrawBoxes(img, boxes, Options{Shuffle: true, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := DrawBoxes(img, boxes, Options{Shuffle: true, Seed: 5})
	if !reflect.DeepEqual(a, b) {
		t.Error("same seed gave different results")
	}
	ids := map[int]bool{}
	for _, m := range a.Marks {
		ids[m.ID] = true
		if m.Box != boxes[m.Index] {
			t.Errorf("mark %d box %v != input %v", m.ID, m.Box, boxes[m.Index])
		}
	}
	if len(ids) != 4 || !ids[1] || !ids[4] {
		t.Errorf("ids %v", ids)
	}
	plain, _ := DrawBoxes(img, boxes, Options{})
	for i, m := range plain.Marks {
		if m.ID != i+1 || m.Index != i {
			t.Errorf("unshuffled mark %d: id %d index %d", i, m.ID, m.Index)
		}
	}
	if got := plain.GridMarks()[0]; got != (Mark{1, GridCoord(35, 320), GridCoord(45, 240)}) {
		t.Errorf("GridMarks[0]=%v", got)
	}
	// input image untouched
	for _, v := range img.Pix {
		if v != 90 {
			t.Fatal("DrawBoxes modified its input")
		}
	}
}

func TestDrawPoints(t *testing.T) {
	img := grayImage(256, 256, 0)
	res, err := DrawPoints(img, []Point{{50, 50}, {200, 120}}, Options{IDs: []int{7, 3}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Marks[0].ID != 3 || res.Marks[0].Point != (Point{200, 120}) || !res.Marks[0].IsPoint {
		t.Errorf("marks %+v", res.Marks)
	}
	// Circle is red around the centre, a white digit stroke near it.
	if c := px(res.Image, 50-int(res.Marks[1].Label.W()/2)+3, 50); c != [3]uint8{255, 0, 0} {
		t.Errorf("circle pixel %v", c)
	}
	if s := SoMAnswer(res.GridMarks()); s != "Mark 3 at [200,120]. Mark 7 at [50,50]" {
		t.Error(s)
	}
	if _, err := DrawPoints(img, []Point{{300, 5}}, Options{}); err == nil {
		t.Error("point outside accepted")
	}
	if _, err := DrawPoints(img, []Point{{1, 5}}, Options{IDs: []int{-1}}); err == nil {
		t.Error("id -1 accepted")
	}
}

func TestBadInput(t *testing.T) {
	img := grayImage(100, 80, 10)
	cases := map[string][]Box{
		"outside":  {{200, 10, 300, 40}},
		"negative": {{-50, -50, -10, -10}},
		"inverted": {{50, 50, 10, 10}},
		"zero":     {{10, 10, 10, 40}},
	}
	for name, bs := range cases {
		if _, err := DrawBoxes(img, bs, Options{}); err == nil || !strings.Contains(err.Error(), "box 0") {
			t.Errorf("%s: err %v", name, err)
		}
	}
	// Partly outside: clipped.
	res, err := DrawBoxes(img, []Box{{-10, -10, 50, 40}}, Options{})
	if err != nil || res.Marks[0].Box != (Box{0, 0, 50, 40}) {
		t.Errorf("clip: %v %+v", err, res)
	}
	// Empty list: unmarked copy.
	res, err = DrawBoxes(img, nil, Options{})
	if err != nil || len(res.Marks) != 0 || !reflect.DeepEqual(res.Image, img) {
		t.Errorf("empty: %v", err)
	}
	if _, err := DrawBoxes(vision.Image{}, nil, Options{}); err == nil {
		t.Error("empty image accepted")
	}
	if _, err := DrawBoxes(vision.Image{W: 2, H: 2, Pix: make([]uint8, 5)}, nil, Options{}); err == nil {
		t.Error("short pixel buffer accepted")
	}
	// Box filling the whole image: label goes inside.
	res, err = DrawBoxes(img, []Box{{0, 0, 100, 80}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if l := res.Marks[0].Label; l.X1 < 0 || l.Y1 < 0 || l.X2 > 100 || l.Y2 > 80 {
		t.Errorf("label %v outside", l)
	}
}

func TestClassicalProposer(t *testing.T) {
	img := grayImage(400, 300, 240)
	// Draw three dark "buttons" by hand.
	btns := []Box{{20, 20, 120, 60}, {200, 100, 330, 140}, {50, 200, 150, 260}}
	for _, b := range btns {
		for y := int(b.Y1); y < int(b.Y2); y++ {
			for x := int(b.X1); x < int(b.X2); x++ {
				i := (y*img.W + x) * 3
				img.Pix[i], img.Pix[i+1], img.Pix[i+2] = 40, 60, 90
			}
		}
	}
	var p Proposer = NewClassicalProposer()
	got, err := p.Propose(img)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range btns {
		found := false
		for _, g := range got {
			if iou(b, g) > 0.7 {
				found = true
			}
		}
		if !found {
			t.Errorf("button %v not proposed; got %v", b, got)
		}
	}
	if _, err := p.Propose(vision.Image{}); err == nil {
		t.Error("empty image accepted")
	}
	blank, err := p.Propose(grayImage(64, 64, 0))
	if err != nil || len(blank) != 0 {
		t.Errorf("blank image: %v %v", blank, err)
	}
}

func iou(a, b Box) float64 {
	in := interArea(a, b)
	return in / (a.area() + b.area() - in)
}

// ZeroBased numbers 0..K-1 as Magma's UI agent draws them (text = str(idx)).
func TestZeroBasedIDs(t *testing.T) {
	img := grayImage(200, 100, 240)
	res, err := DrawBoxes(img, []Box{{10, 10, 50, 40}, {100, 50, 150, 90}}, Options{ZeroBased: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Marks[0].ID != 0 || res.Marks[1].ID != 1 || res.Marks[0].Index != 0 {
		t.Errorf("ids %+v", res.Marks)
	}
	res, _ = DrawBoxes(img, []Box{{10, 10, 50, 40}}, Options{})
	if res.Marks[0].ID != 1 {
		t.Errorf("default base: id %d", res.Marks[0].ID)
	}
}

// Placement minimises the worst-case overlap (Magma's
// _find_least_overlapping_corner: "find the largest iou with other bboxes
// ... the smaller the max_IOU, the better the corner"), not the total: the
// above-left slot touches two boxes a little (60 px² each, 120 in all), the
// right-top slot one box more (100 px²); the worst case prefers above-left.
func TestPlacementWorstCase(t *testing.T) {
	boxes := []Box{
		{100, 100, 200, 200},
		{100, 90, 106, 100}, {114, 90, 120, 100}, // above-left: 2 x 60
		{200, 100, 210, 110}, // right-top: 100
		{180, 90, 200, 100}, {200, 190, 220, 200}, {180, 200, 200, 210},
		{100, 200, 120, 210}, {80, 190, 100, 200}, {80, 100, 100, 110},
	}
	got := placeLabel(0, boxes, nil, 20, 10, 300, 300)
	if got != (Box{100, 90, 120, 100}) {
		t.Errorf("label at %v, want above-left {100 90 120 100}", got)
	}
}
