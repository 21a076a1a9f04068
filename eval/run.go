package eval

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/magma-go/magma/model"
	"github.com/magma-go/magma/model/action"
	"github.com/magma-go/magma/som"
	"github.com/magma-go/magma/vision/imaging"
)

// Generator answers a request; *model.Pipeline is one.
type Generator interface {
	Generate(ctx context.Context, req model.Request) (*model.Result, error)
}

// Marker draws the numbered marks; DefaultMarker is som.DrawBoxes.
type Marker interface {
	Mark(img imaging.Image, boxes []som.Box) (*som.Result, error)
}

// MarkerFunc adapts a function to Marker.
type MarkerFunc func(img imaging.Image, boxes []som.Box) (*som.Result, error)

// Mark calls f.
func (f MarkerFunc) Mark(img imaging.Image, boxes []som.Box) (*som.Result, error) {
	return f(img, boxes)
}

// DefaultMarker draws with som's defaults (red outlines and labels, ids 1..K
// in proposal order).
var DefaultMarker = MarkerFunc(func(img imaging.Image, boxes []som.Box) (*som.Result, error) {
	return som.DrawBoxes(img, boxes, som.Options{})
})

// Options configures a run.
type Options struct {
	// Model answers the prompts; nil is allowed only with Predictions.
	Model Generator
	// Proposals, when not nil, give the candidate boxes per img_filename
	// (--proposals); otherwise Proposer is run on the screenshot. With
	// neither, the screenshot is not marked.
	Proposals Proposals
	Proposer  som.Proposer
	// Marker draws the marks (DefaultMarker when nil).
	Marker Marker
	// Prompt builds the question from the instruction (som.UIAgentPrompt when nil).
	Prompt       func(instruction string) string
	MaxNewTokens int // default 32
	Parse        action.ParseOptions
	// PreferPoint uses the answer's point even when it also names a mark
	// (by default a drawn mark wins: the click is its box centre).
	PreferPoint bool
	// Predictions scores this predictions file instead of running Model.
	Predictions string
	// Limit evaluates only the first Limit records (0 = all).
	Limit int
	// OutDir receives results.json, predictions.jsonl and failures/*.png
	// ("" writes nothing).
	OutDir string
	// Failures is the number of failure PNGs to draw (default 20, <0 none);
	// the first failures in record order are drawn.
	Failures int
	// Progress receives a line every ProgressEvery records (default 50).
	Progress      io.Writer
	ProgressEvery int
	// Frames is the number of frames sampled from a video item (QA
	// benchmarks; default QAFrames).
	Frames int
	// Resume (QA benchmarks) reuses the answers of OutDir/predictions.jsonl
	// written by an interrupted run and runs Model only for the rest.
	Resume bool
}

func (o *Options) defaults() {
	if o.Marker == nil {
		o.Marker = DefaultMarker
	}
	if o.Prompt == nil {
		o.Prompt = som.UIAgentPrompt
	}
	if o.MaxNewTokens <= 0 {
		o.MaxNewTokens = 32
	}
	if o.Failures == 0 {
		o.Failures = 20
	}
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = 50
	}
}

// limited returns the first opt.Limit items (all when Limit is 0).
func limited[T any](items []T, limit int) []T {
	if limit > 0 && limit < len(items) {
		return items[:limit]
	}
	return items
}

// Proposals are candidate boxes per img_filename.
type Proposals map[string][]som.Box

// LoadProposals reads an OmniParser-like proposals file:
// {"img_filename": [[x1,y1,x2,y2], ...], ...} in pixels; entries may also be
// objects with a "bbox" field ({"bbox":[x1,y1,x2,y2], ...}).
func LoadProposals(path string) (Proposals, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("proposals: %w", err)
	}
	var raw map[string][]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("proposals %s (want {\"img_filename\": [[x1,y1,x2,y2], ...]}): %w", path, err)
	}
	out := make(Proposals, len(raw))
	for name, items := range raw {
		boxes := make([]som.Box, 0, len(items))
		for i, it := range items {
			var v []float64
			if err := json.Unmarshal(it, &v); err != nil {
				var obj struct {
					BBox []float64 `json:"bbox"`
				}
				if err2 := json.Unmarshal(it, &obj); err2 != nil {
					return nil, fmt.Errorf("proposals %s: %s box %d: %v", path, name, i, err)
				}
				v = obj.BBox
			}
			b, err := BoxFromXYXY(v)
			if err != nil {
				return nil, fmt.Errorf("proposals %s: %s box %d: %v", path, name, i, err)
			}
			boxes = append(boxes, b)
		}
		out[name] = boxes
	}
	return out, nil
}

// Prediction is one line of predictions.jsonl. As input (--predictions)
// only img_filename, instruction and point (pixels) or answer (raw model
// text, parsed by ParseAnswer; "marks" {"id": [x1,y1,x2,y2]} resolve mark
// ids) are read, plus error (a record the producing run could not evaluate).
type Prediction struct {
	Index       int                  `json:"index"`
	ImgFilename string               `json:"img_filename"`
	Instruction string               `json:"instruction"`
	Cell        string               `json:"cell,omitempty"`
	Answer      string               `json:"answer,omitempty"`
	Mark        *int                 `json:"mark,omitempty"`
	MarkBox     []float64            `json:"mark_box,omitempty"`
	Point       []float64            `json:"point,omitempty"`
	PointSource string               `json:"point_source,omitempty"`
	Correct     bool                 `json:"correct"`
	Error       string               `json:"error,omitempty"`
	Marks       map[string][]float64 `json:"marks,omitempty"`
}

// stage timers of the loop
type timers struct {
	load, propose, mark, model, parse, report time.Duration
	mt                                        model.Timing
	tokens                                    int
}

func (t *timers) modelTiming(m model.Timing) {
	t.mt.Preprocess += m.Preprocess
	t.mt.Embed += m.Embed
	t.mt.Prefill += m.Prefill
	t.mt.Decode += m.Decode
	t.tokens += m.Steps + 1
}

// timing reports the stage times of a loop over n records that took wall.
func (t *timers) timing(n int, wall time.Duration) *StageTiming {
	s := &StageTiming{Records: n, WallS: secs(wall), LoadS: secs(t.load), ProposeS: secs(t.propose),
		MarkS: secs(t.mark), ModelS: secs(t.model), ParseS: secs(t.parse), ReportS: secs(t.report)}
	s.ModelPreprocessS, s.ModelEmbedS = secs(t.mt.Preprocess), secs(t.mt.Embed)
	s.ModelPrefillS, s.ModelDecodeS, s.ModelTokens = secs(t.mt.Prefill), secs(t.mt.Decode), t.tokens
	if wall > 0 {
		s.RecPerS = float64(n) / wall.Seconds()
	}
	return s
}

func (t *timers) add(d *time.Duration, t0 time.Time) { *d += time.Since(t0) }

// loadImage decodes a record's screenshot and checks it against the
// record (img_size, the element box inside the image).
func loadImage(path string, rec *Record) (imaging.Image, error) {
	img, err := imaging.DecodeImage(path)
	if err != nil {
		return img, err
	}
	if rec.ImgSize != [2]int{} && (rec.ImgSize[0] != img.W || rec.ImgSize[1] != img.H) {
		return img, fmt.Errorf("img_size %dx%d but image %s is %dx%d", rec.ImgSize[0], rec.ImgSize[1], path, img.W, img.H)
	}
	if err := CheckBox(rec.Box, img.W, img.H); err != nil {
		return img, err
	}
	return img, nil
}

// RunScreenSpot evaluates ds with the model (or scores opt.Predictions)
// and writes the report to opt.OutDir. Bad records are reported in the
// results and the run goes on; only I/O on the output and a cancelled
// context stop it.
func RunScreenSpot(ctx context.Context, ds *Dataset, opt Options) (*Results, error) {
	opt.defaults()
	recs := limited(ds.Records, opt.Limit)
	var preds *predictionIndex
	if opt.Predictions != "" {
		var err error
		if preds, err = readPredictions(opt.Predictions); err != nil {
			return nil, err
		}
	} else if opt.Model == nil {
		return nil, errors.New("screenspot: no model and no predictions file")
	}
	return runReported(ctx, &opt, len(recs), func(i int, tm *timers) (Outcome, any, failInfo, bool) {
		rec := &recs[i]
		o, pred, vis := evalRecord(ctx, ds, rec, preds, &opt, tm)
		return o, pred, failInfo{Index: o.Index, Cell: o.Cell, Instruction: rec.Instruction, Answer: pred.Answer,
			GT: rec.Box, Correct: o.Correct, Err: o.Err, vis: vis}, o.Correct
	}, func(done, correct, nerr int, el float64) string {
		return fmt.Sprintf("screenspot [%d/%d] acc %.1f%% (%d correct) errors %d | %.2f records/s | %.0fs\n",
			done, len(recs), 100*float64(correct)/float64(done), correct, nerr, float64(done)/el, el)
	}, func(outs []Outcome) *Results {
		if preds != nil {
			outs = append(outs, preds.leftover()...)
		}
		return Summarize("screenspot", ds.Format, outs)
	})
}

// markAndAsk is the model side of a SoM benchmark item: candidate boxes for
// img (opt.Proposals[key], or opt.Proposer's), the numbered marks drawn,
// and the model asked prompt about the marked image. Stage times go to tm;
// the marked image to vis.
func markAndAsk(ctx context.Context, img imaging.Image, key, prompt string, opt *Options, tm *timers, vis *visual) (*som.Result, string, error) {
	t0 := time.Now()
	var boxes []som.Box
	if opt.Proposals != nil {
		boxes = opt.Proposals[key]
	} else if opt.Proposer != nil {
		var err error
		if boxes, err = opt.Proposer.Propose(img); err != nil {
			tm.add(&tm.propose, t0)
			return nil, "", fmt.Errorf("proposer: %w", err)
		}
	}
	tm.add(&tm.propose, t0)
	t0 = time.Now()
	marks, err := opt.Marker.Mark(img, boxes)
	tm.add(&tm.mark, t0)
	if err != nil {
		return nil, "", fmt.Errorf("marking %d candidate boxes: %w", len(boxes), err)
	}
	vis.img, vis.marks = marks.Image, marks
	t0 = time.Now()
	res, err := opt.Model.Generate(ctx, model.Request{Images: []imaging.Image{marks.Image}, Prompt: prompt, MaxNewTokens: opt.MaxNewTokens})
	tm.add(&tm.model, t0)
	if err != nil {
		return marks, "", fmt.Errorf("model: %w", err)
	}
	tm.modelTiming(res.Timing)
	return marks, res.Text, nil
}

// visual is what a failure PNG needs.
type visual struct {
	img     imaging.Image // marked screenshot (or the plain one)
	hasImg  bool
	marks   *som.Result
	point   *som.Point
	markBox *som.Box
}

func evalRecord(ctx context.Context, ds *Dataset, rec *Record, preds *predictionIndex, opt *Options, tm *timers) (Outcome, Prediction, visual) {
	o := Outcome{Index: rec.Index, Cell: rec.Cell(), Where: rec.Where()}
	pred := Prediction{Index: rec.Index, ImgFilename: rec.ImgFilename, Instruction: rec.Instruction, Cell: rec.Cell()}
	var vis visual
	fail := func(err error) (Outcome, Prediction, visual) {
		o.Err = err
		pred.Error = err.Error()
		return o, pred, vis
	}
	if rec.Err != nil {
		return fail(rec.Err)
	}
	var given *Prediction
	if preds != nil {
		var ok bool
		if given, ok = preds.take(rec.ImgFilename, rec.Instruction); !ok {
			return fail(errors.New("no prediction for this record in the predictions file"))
		}
	}
	t0 := time.Now()
	path, err := ds.ImagePath(rec)
	if err != nil {
		tm.add(&tm.load, t0)
		return fail(err)
	}
	img, err := loadImage(path, rec)
	tm.add(&tm.load, t0)
	if img.Validate() == nil {
		vis.img, vis.hasImg = img, true // a failure PNG can show a bad box
	}
	if err != nil {
		return fail(err)
	}

	var ans action.Answer
	var marks *som.Result
	if given != nil {
		if given.Error != "" {
			return fail(fmt.Errorf("predictions: %s", given.Error))
		}
		t0 = time.Now()
		pred.Answer = given.Answer
		if len(given.Point) == 2 {
			ans = action.Answer{Point: som.Point{X: given.Point[0], Y: given.Point[1]}, HasPoint: true, PointForm: action.FormPixels}
		} else if given.Point != nil {
			tm.add(&tm.parse, t0)
			return fail(fmt.Errorf("predictions: point has %d numbers, want [x,y] in pixels", len(given.Point)))
		} else {
			ans = action.ParseAnswer(given.Answer, img.W, img.H, opt.Parse)
			marks = marksFromJSON(given.Marks)
		}
		tm.add(&tm.parse, t0)
	} else {
		var text string
		if marks, text, err = markAndAsk(ctx, img, rec.ImgFilename, opt.Prompt(rec.Instruction), opt, tm, &vis); err != nil {
			return fail(err)
		}
		pred.Answer = text
		t0 = time.Now()
		ans = action.ParseAnswer(text, img.W, img.H, opt.Parse)
		tm.add(&tm.parse, t0)
	}
	t0 = time.Now()
	if ans.HasMark {
		m := ans.Mark
		pred.Mark = &m
	}
	p, src, mb, ok := action.Click(ans, marks, opt.PreferPoint)
	if ok {
		pred.Point, pred.PointSource = []float64{p.X, p.Y}, src
		vis.point = &p
		if mb != nil {
			pred.MarkBox = []float64{mb.X1, mb.Y1, mb.X2, mb.Y2}
			vis.markBox = mb
		}
		o.Correct = rec.Box.Contains(p)
	} else {
		o.Unparsed = true
	}
	pred.Correct = o.Correct
	tm.add(&tm.parse, t0)
	return o, pred, vis
}

// predictionIndex matches prediction lines to records by (img_filename,
// instruction), in file order for repeated keys.
type predictionIndex struct {
	path   string
	byKey  map[string][]*Prediction
	lines  map[*Prediction]int
	errors []Outcome
}

func predKey(img, instr string) string { return img + "\x00" + instr }

func readPredictions(path string) (*predictionIndex, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("predictions: %w", err)
	}
	defer f.Close()
	idx := &predictionIndex{path: path, byKey: map[string][]*Prediction{}, lines: map[*Prediction]int{}}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	line := 0
	for sc.Scan() {
		line++
		b := sc.Bytes()
		if len(trimSpace(b)) == 0 {
			continue
		}
		var p Prediction
		if err := json.Unmarshal(b, &p); err != nil {
			idx.errors = append(idx.errors, Outcome{Index: -1, Where: fmt.Sprintf("%s line %d", filepath.Base(path), line),
				Err: fmt.Errorf("malformed JSON line: %v", err)})
			continue
		}
		k := predKey(p.ImgFilename, p.Instruction)
		pp := &p
		idx.byKey[k] = append(idx.byKey[k], pp)
		idx.lines[pp] = line
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("predictions %s: %w", path, err)
	}
	// a file none of whose records can be used is refused, not scored 0
	named := 0
	for p := range idx.lines {
		if p.ImgFilename != "" {
			named++
		}
	}
	if named == 0 {
		var why []string
		for i, o := range idx.errors {
			if i == 3 {
				why = append(why, "...")
				break
			}
			why = append(why, o.Where+": "+o.Err.Error())
		}
		if len(idx.lines) > 0 {
			why = append(why, fmt.Sprintf(`%d records without "img_filename"`, len(idx.lines)))
		}
		if len(why) == 0 {
			return nil, fmt.Errorf("predictions %s: no records", path)
		}
		return nil, fmt.Errorf("predictions %s: no record can be read as a ScreenSpot prediction {\"img_filename\", \"instruction\", \"point\" or \"answer\"} (%s)", path, strings.Join(why, "; "))
	}
	return idx, nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\r') {
		b = b[1:]
	}
	return b
}

func (p *predictionIndex) take(img, instr string) (*Prediction, bool) {
	k := predKey(img, instr)
	q := p.byKey[k]
	if len(q) == 0 {
		return nil, false
	}
	p.byKey[k] = q[1:]
	return q[0], true
}

// leftover reports malformed lines and predictions that matched no record
// (only when the whole dataset was scored, a --limit run leaves many).
func (p *predictionIndex) leftover() []Outcome {
	return p.errors
}
