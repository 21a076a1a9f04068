package data

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"

	"github.com/magma-go/magma/llm/tokenizer"
	"github.com/magma-go/magma/som"
	"github.com/magma-go/magma/vision/imaging"
)

// UI grounding subtasks (paper appendix B.1.1), sampled per element with
// DefaultUISubtasks weights.
const (
	Text2Point = "text_2_point"
	Text2BBox  = "text_2_bbox"
	Point2Text = "point_2_text"
	BBox2Text  = "bbox_2_text"
)

// DefaultUISubtasks is Magma's [0.4, 0.4, 0.1, 0.1] subtask mix.
var DefaultUISubtasks = map[string]float64{Text2Point: 0.4, Text2BBox: 0.4, Point2Text: 0.1, BBox2Text: 0.1}

var uiSubtaskOrder = []string{Text2Point, Text2BBox, Point2Text, BBox2Text}

// BBox formats of UI records.
const (
	BBoxAuto     = "auto"      // xyxy_norm if every value of the record is in [0,1], else xyxy
	BBoxXYXY     = "xyxy"      // [x1,y1,x2,y2] pixels (Vision2UI, ScreenSpot-Pro)
	BBoxXYXYNorm = "xyxy_norm" // [x1,y1,x2,y2] in [0,1] of the width/height (SeeClick web/mobile)
	BBoxXYWH     = "xywh"      // [x,y,w,h] pixels (ScreenSpot, Mind2Web)
	BBoxXYWHNorm = "xywh_norm" // [x,y,w,h] in [0,1]
)

// UIOptions are the ui source's per-type options.
type UIOptions struct {
	ImageFolder string             `yaml:"image_folder"`
	BBoxFormat  string             `yaml:"bbox_format"`
	Subtasks    map[string]float64 `yaml:"subtasks"`
	// MaxMarks bounds the elements marked per screenshot (default 20); the
	// marked ones are drawn at random when there are more.
	MaxMarks int `yaml:"max_marks"`
	// MaxTurns bounds the question/answer turns merged into one sample
	// (default 4), one element each (paper: subtasks of a page are merged).
	MaxTurns int `yaml:"max_turns"`
}

// UISource turns UI screenshots with element boxes into SoM grounding
// conversations. Records (JSON array or JSON lines) are SeeClick-style:
//
//	{"img_filename": "web_0001.png",
//	 "elements": [{"instruction": "search button", "bbox": [0.81, 0.02, 0.86, 0.06]}, ...]}
//
// with "image" or "img_path" accepted for the file name and "text" for the
// instruction; a ScreenSpot-style record with top-level "instruction" and
// "bbox" is one element. Boxes follow UIOptions.BBoxFormat. Per sample all
// marked elements (up to MaxMarks) get numbered boxes drawn with som
// (Algorithm 1, ids in random order), and up to MaxTurns of them get one
// subtask each, drawn with the Subtasks weights:
//
//	text_2_point: UIAgentPrompt(text)                                  → "(0.42,0.17) Mark: k"
//	text_2_bbox:  "... bounding box of the element \"text\"? ..."       → "(0.40,0.15,0.44,0.19) Mark: k"
//	point_2_text: "What is the text of the element at (0.42,0.17)?"     → "text"
//	bbox_2_text:  "What is the text of the element in (x1,y1,x2,y2)?"  → "text"
//
// Coordinates are SeeClick's two-decimal 0-1 fractions (som.FormatFrac),
// the form Magma's UI agent parses (pred_2_point); the point is the box
// centre. (The paper's Fig. 3 shows 256-bin coordinates for SoM marks;
// those are the video/robot SoM/ToM texts, not the UI answers.) The first question carries the <image> and som.SoMQuestion is
// not asked (UI data has no SoM localisation turn). No augmentation.
type UISource struct {
	name, path, folder string
	env                *SampleBuilder
	opt                UIOptions
	cum                []float64
	recs               []uiRecord
}

type uiElement struct {
	text string
	box  [4]float64
	norm bool // box in [0,1], scaled by the image size at sample time
}

type uiRecord struct {
	index    int
	image    string
	elements []uiElement
}

type uiElementJSON struct {
	Instruction *string   `json:"instruction"`
	Text        *string   `json:"text"`
	BBox        []float64 `json:"bbox"`
}

type uiRecordJSON struct {
	ImgFilename string          `json:"img_filename"`
	Image       string          `json:"image"`
	ImgPath     string          `json:"img_path"`
	Elements    []uiElementJSON `json:"elements"`
	uiElementJSON
}

// NewUISource indexes a UI annotation file.
func NewUISource(env *SampleBuilder, name, path string, o UIOptions) (*UISource, error) {
	if o.ImageFolder == "" {
		o.ImageFolder = filepath.Dir(path)
	}
	if o.BBoxFormat == "" {
		o.BBoxFormat = BBoxAuto
	}
	switch o.BBoxFormat {
	case BBoxAuto, BBoxXYXY, BBoxXYXYNorm, BBoxXYWH, BBoxXYWHNorm:
	default:
		return nil, fmt.Errorf("data: ui source %q: bbox_format %q (want auto, xyxy, xyxy_norm, xywh or xywh_norm)", name, o.BBoxFormat)
	}
	if o.Subtasks == nil {
		o.Subtasks = DefaultUISubtasks
	}
	if o.MaxMarks <= 0 {
		o.MaxMarks = 20
	}
	if o.MaxTurns <= 0 {
		o.MaxTurns = 4
	}
	s := &UISource{name: name, path: path, folder: o.ImageFolder, env: env, opt: o}
	total := 0.0
	for k, w := range o.Subtasks {
		if !(w >= 0) || math.IsInf(w, 0) {
			return nil, fmt.Errorf("data: ui source %q: subtask %s weight %v", name, k, w)
		}
		known := false
		for _, n := range uiSubtaskOrder {
			known = known || n == k
		}
		if !known {
			return nil, fmt.Errorf("data: ui source %q: unknown subtask %q (want %s)", name, k, strings.Join(uiSubtaskOrder, ", "))
		}
	}
	for _, n := range uiSubtaskOrder {
		total += o.Subtasks[n]
		s.cum = append(s.cum, total)
	}
	if !(total > 0) {
		return nil, fmt.Errorf("data: ui source %q: subtask weights sum to 0", name)
	}
	recs, err := loadRecords(env, path, func(index int, data []byte) (uiRecord, error) {
		rec, err := s.parse(data)
		rec.index = index
		return rec, err
	})
	if err != nil {
		return nil, err
	}
	s.recs = recs
	return s, nil
}

func (s *UISource) parse(data []byte) (uiRecord, error) {
	var j uiRecordJSON
	if err := strictDecode(data, &j); err != nil {
		return uiRecord{}, fmt.Errorf("not a UI record: %v", err)
	}
	rec := uiRecord{image: j.ImgFilename}
	if rec.image == "" {
		rec.image = j.Image
	}
	if rec.image == "" {
		rec.image = j.ImgPath
	}
	if strings.TrimSpace(rec.image) == "" {
		return rec, fmt.Errorf(`no screenshot ("img_filename", "image" or "img_path")`)
	}
	els := j.Elements
	if len(els) == 0 && j.BBox != nil {
		els = []uiElementJSON{j.uiElementJSON}
	}
	if len(els) == 0 {
		return rec, fmt.Errorf(`no "elements"`)
	}
	norm := s.opt.BBoxFormat == BBoxXYXYNorm || s.opt.BBoxFormat == BBoxXYWHNorm
	if s.opt.BBoxFormat == BBoxAuto {
		norm = true
		for _, e := range els {
			for _, v := range e.BBox {
				norm = norm && v >= 0 && v <= 1
			}
		}
	}
	for i, e := range els {
		text := ""
		switch {
		case e.Instruction != nil:
			text = *e.Instruction
		case e.Text != nil:
			text = *e.Text
		}
		text = strings.TrimSpace(text)
		if text == "" {
			return rec, fmt.Errorf(`element %d has no "instruction" or "text"`, i)
		}
		if len(e.BBox) != 4 {
			return rec, fmt.Errorf("element %d: bbox has %d numbers, want 4", i, len(e.BBox))
		}
		var b [4]float64
		copy(b[:], e.BBox)
		for _, v := range b {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return rec, fmt.Errorf("element %d: bbox %v is not finite", i, e.BBox)
			}
		}
		if s.opt.BBoxFormat == BBoxXYWH || s.opt.BBoxFormat == BBoxXYWHNorm {
			b[2], b[3] = b[0]+b[2], b[1]+b[3]
		}
		if b[2] <= b[0] || b[3] <= b[1] {
			return rec, fmt.Errorf("element %d: bbox %v is empty or not [x1,y1,x2,y2]", i, e.BBox)
		}
		if norm {
			for _, v := range b {
				if v < 0 || v > 1 {
					return rec, fmt.Errorf("element %d: normalised bbox %v outside [0,1]", i, e.BBox)
				}
			}
		}
		rec.elements = append(rec.elements, uiElement{text: text, box: b, norm: norm})
	}
	return rec, nil
}

func (s *UISource) Name() string { return s.name }
func (s *UISource) Len() int     { return len(s.recs) }

func (s *UISource) subtask(rng *rand.Rand) string {
	u := rng.Float64() * s.cum[len(s.cum)-1]
	for i, c := range s.cum {
		if u < c && (i == 0 || c > s.cum[i-1]) {
			return uiSubtaskOrder[i]
		}
	}
	for i := len(s.cum) - 1; i >= 0; i-- {
		if i == 0 || s.cum[i] > s.cum[i-1] {
			return uiSubtaskOrder[i]
		}
	}
	return Text2Point
}

// Sample marks the screenshot and builds the conversation.
func (s *UISource) Sample(i int, rng *rand.Rand) (Sample, error) {
	msgs, img, err := s.conversation(i, rng)
	if err != nil {
		return Sample{}, err
	}
	rec := s.recs[i]
	smp, err := s.env.ChatSample(msgs, []imaging.Image{img})
	if err != nil {
		return Sample{}, recordErr(s.path, rec.index, "%v", err)
	}
	smp.Source, smp.Index = s.path, rec.index
	return smp, nil
}

// conversation is Sample before tokenisation: the turns and the marked
// screenshot (also what `magma data inspect` shows).
func (s *UISource) conversation(i int, rng *rand.Rand) ([]tokenizer.Message, imaging.Image, error) {
	if i < 0 || i >= len(s.recs) {
		return nil, imaging.Image{}, fmt.Errorf("data: %s: index %d out of range", s.name, i)
	}
	if rng == nil {
		rng = rand.New(rand.NewPCG(uint64(i), 0))
	}
	rec := s.recs[i]
	fail := func(format string, args ...any) ([]tokenizer.Message, imaging.Image, error) {
		return nil, imaging.Image{}, recordErr(s.path, rec.index, format, args...)
	}
	p, err := resolve(s.folder, rec.image)
	if err != nil {
		return fail("%v", err)
	}
	img, err := s.env.decode(p)
	if err != nil {
		return fail("image: %v", err)
	}
	W, H := float64(img.W), float64(img.H)
	boxes := make([]som.Box, len(rec.elements))
	for k, e := range rec.elements {
		b := e.box
		if e.norm {
			b = [4]float64{b[0] * W, b[1] * H, b[2] * W, b[3] * H}
		}
		boxes[k] = som.Box{X1: b[0], Y1: b[1], X2: b[2], Y2: b[3]}
	}
	clipped, err := som.ValidateBoxes(boxes, img.W, img.H)
	if err != nil {
		return fail("element box outside the %dx%d screenshot: %v", img.W, img.H, err)
	}
	// choose the marked elements, then number them in random order
	order := rng.Perm(len(clipped))
	if len(order) > s.opt.MaxMarks {
		order = order[:s.opt.MaxMarks]
	}
	marked := make([]som.Box, len(order))
	for k, o := range order {
		marked[k] = clipped[o]
	}
	ids := rng.Perm(len(marked))
	for k := range ids {
		ids[k]++
	}
	res, err := som.DrawBoxes(img, marked, som.Options{IDs: ids})
	if err != nil {
		return fail("marks: %v", err)
	}
	var msgs []tokenizer.Message
	turns := min(len(order), s.opt.MaxTurns)
	for k := 0; k < turns; k++ {
		e := rec.elements[order[k]]
		b := marked[k]
		id := ids[k]
		c := b.Center()
		var q, a string
		box := som.FormatFracBox(b, img.W, img.H)
		switch s.subtask(rng) {
		case Text2Point:
			q, a = som.UIAgentPrompt(e.text), som.UIGroundingAnswer(c.X, c.Y, img.W, img.H, id)
		case Text2BBox:
			q = "In this view, what is the bounding box of the element \"" + e.text + "\"? Provide the box coordinates and the mark index of the element."
			a = box + som.MarkSuffix(id)
		case Point2Text:
			q, a = "What is the text of the element at "+som.FormatFrac(c.X, c.Y, img.W, img.H)+"?", e.text
		case BBox2Text:
			q, a = "What is the text of the element in "+box+"?", e.text
		}
		if k == 0 {
			q = tokenizer.ImageToken + "\n" + q
		}
		msgs = append(msgs, tokenizer.Message{Role: "user", Content: q}, tokenizer.Message{Role: "assistant", Content: a})
	}
	return msgs, res.Image, nil
}
