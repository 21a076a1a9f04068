package eval

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/magma-go/magma/model/action"
	"github.com/magma-go/magma/som"
	"github.com/magma-go/magma/vision/imaging"
)

// Mind2WebSplits are SeeClick's test files, mind2web_data_test_{split}.json:
// task = Cross-Task, website = Cross-Website, domain = Cross-Domain.
var Mind2WebSplits = []string{"task", "website", "domain"}

// Step is one Mind2Web action to predict.
type Step struct {
	Index   int // position among all loaded steps
	Split   string
	Episode int // episode position in its split file
	Step    int // position in the episode
	File    string

	AnnotationID string
	ActionUID    string
	Task         string
	// Op is CLICK, TYPE or SELECT (HOVER and ENTER are CLICK, as in
	// SeeClick's action2step); OriginalOp is the file's original_op.
	Op, OriginalOp, Value string
	Box                   som.Box
	ImgFilename           string
	// Previous are the ground-truth actions before this one ("CLICK",
	// "TYPE value"), as SeeClick feeds them.
	Previous []string
	// PreviousReprs are the episode's action_reprs before this one
	// ("[link] Store Locator -> CLICK") when the file has them, as
	// Magma's Mind2Web SoM prompt lists them; otherwise Previous.
	PreviousReprs []string
	Err           error
}

// ActionString is the operation string whose tokens Op.F1 compares:
// "CLICK", "TYPE <value>", "SELECT <value>".
func ActionString(op, value string) string {
	op = strings.ToUpper(strings.TrimSpace(op))
	if op == "TYPE" || op == "SELECT" {
		return strings.TrimSpace(op + " " + strings.TrimSpace(value))
	}
	return op
}

// Where names the step in messages.
func (s *Step) Where() string {
	return fmt.Sprintf("step %d (%s episode %d step %d)", s.Index, filepath.Base(s.File), s.Episode, s.Step)
}

// Mind2Web is a loaded SeeClick-format Mind2Web test set.
type Mind2Web struct {
	Dir       string
	ImageDirs []string
	Steps     []Step
	// Protocol, when set, is Magma's candidate protocol (crop, top-K
	// ranked Candidates, official prompt and answer); nil keeps the
	// SeeClick-style run with Options.Proposals/Proposer.
	Protocol   *Mind2WebProtocol
	Candidates RankedCandidates
}

// LoadMind2Web reads mind2web_data_test_{task,website,domain}.json from
// dir (split "" = all three present). Each file is a JSON array of episodes
// {"annotation_id", "confirmed_task", "actions": [{"action_uid",
// "operation": {"original_op", "value"}, "bbox": {"x","y","width","height"}}]}.
// Screenshots are {annotation_id}-{action_uid}.jpg in mind2web_images/ (or
// images/, or dir), or an action's "img_filename" when present. A malformed
// episode or action is kept as an error step.
func LoadMind2Web(dir, split, imageDir string) (*Mind2Web, error) {
	splits := Mind2WebSplits
	if split != "" {
		if !contains(Mind2WebSplits, split) {
			return nil, fmt.Errorf("mind2web: unknown split %q: want task, website or domain", split)
		}
		splits = []string{split}
	}
	if err := checkDataDir("mind2web", dir); err != nil {
		return nil, err
	}
	d := &Mind2Web{Dir: dir, ImageDirs: existingDirs(dir, "mind2web_images", "images", "")}
	if imageDir != "" {
		d.ImageDirs = []string{imageDir}
	}
	found := 0
	for _, sp := range splits {
		path := filepath.Join(dir, "mind2web_data_test_"+sp+".json")
		if _, err := os.Stat(path); err != nil {
			continue
		}
		found++
		items, errs, err := readJSONItems(path)
		if err != nil {
			return nil, fmt.Errorf("mind2web: %w", err)
		}
		for ei, it := range items {
			d.addEpisode(path, sp, ei, it, errs[ei])
		}
	}
	if found == 0 {
		return nil, fmt.Errorf("mind2web: no mind2web_data_test_{task,website,domain}.json in %s", dir)
	}
	return d, nil
}

type m2wEpisode struct {
	AnnotationID  string            `json:"annotation_id"`
	ConfirmedTask string            `json:"confirmed_task"`
	Actions       []json.RawMessage `json:"actions"`
	ActionReprs   []string          `json:"action_reprs"`
}

type m2wAction struct {
	ActionUID string `json:"action_uid"`
	Operation struct {
		Op         string `json:"op"`
		OriginalOp string `json:"original_op"`
		Value      string `json:"value"`
	} `json:"operation"`
	BBox *struct {
		X      *float64 `json:"x"`
		Y      *float64 `json:"y"`
		Width  *float64 `json:"width"`
		Height *float64 `json:"height"`
	} `json:"bbox"`
	ImgFilename string `json:"img_filename"`
}

func (d *Mind2Web) add(s Step) {
	s.Index = len(d.Steps)
	d.Steps = append(d.Steps, s)
}

func (d *Mind2Web) addEpisode(path, split string, ei int, raw json.RawMessage, readErr error) {
	base := Step{Split: split, Episode: ei, File: path}
	if readErr != nil {
		base.Err = readErr
		d.add(base)
		return
	}
	var ep m2wEpisode
	if err := json.Unmarshal(raw, &ep); err != nil {
		base.Err = fmt.Errorf("malformed episode: %w", err)
		d.add(base)
		return
	}
	base.AnnotationID, base.Task = ep.AnnotationID, ep.ConfirmedTask
	if len(ep.Actions) == 0 {
		base.Err = errors.New("episode has no actions")
		d.add(base)
		return
	}
	var prev []string
	for si, ar := range ep.Actions {
		s := base
		s.Step = si
		s.Previous = append([]string(nil), prev...)
		s.PreviousReprs = s.Previous
		if len(ep.ActionReprs) == len(ep.Actions) {
			s.PreviousReprs = append([]string(nil), ep.ActionReprs[:si]...)
		}
		var a m2wAction
		if err := json.Unmarshal(ar, &a); err != nil {
			s.Err = fmt.Errorf("malformed action: %w", err)
			d.add(s)
			prev = append(prev, "?")
			continue
		}
		s.ActionUID, s.Value, s.OriginalOp = a.ActionUID, a.Operation.Value, strings.ToUpper(a.Operation.OriginalOp)
		s.ImgFilename = a.ImgFilename
		if s.ImgFilename == "" {
			s.ImgFilename = ep.AnnotationID + "-" + a.ActionUID + ".jpg"
		}
		switch s.OriginalOp {
		case "CLICK", "HOVER", "ENTER":
			s.Op = "CLICK"
		case "TYPE", "SELECT":
			s.Op = s.OriginalOp
		default:
			s.Err = fmt.Errorf("operation original_op %q: want CLICK, TYPE, SELECT, HOVER or ENTER", a.Operation.OriginalOp)
		}
		if s.Err == nil {
			if b := a.BBox; b == nil || b.X == nil || b.Y == nil || b.Width == nil || b.Height == nil {
				s.Err = errors.New("action has no bbox {x,y,width,height}")
			} else {
				s.Box, s.Err = BoxFromXYWH([]float64{*b.X, *b.Y, *b.Width, *b.Height})
			}
		}
		d.add(s)
		prev = append(prev, ActionString(s.Op, s.Value))
	}
}

// Mind2WebPrompt is the question for a step: the task, the last four
// previous actions and the answer format (operation, value, coordinates and
// mark). Magma's Mind2Web finetuning prompt is not public in the material
// this was written from; this template keeps the UI-agent prompt's wording.
func Mind2WebPrompt(task string, previous []string) string {
	if len(previous) > 4 {
		previous = previous[len(previous)-4:]
	}
	prev := "None"
	if len(previous) > 0 {
		prev = strings.Join(previous, "; ")
	}
	return "Imagine that you are imitating humans doing web navigation for a task step by step. The task is: \"" + task +
		"\". Previous actions: " + prev + ". What is the next action? Give the operation (CLICK, TYPE or SELECT) with the value to type or select, " +
		"the coordinates and the mark index of the containing bounding box if applicable."
}

// WebAction is a parsed Mind2Web answer.
type WebAction struct {
	Op    string // CLICK, TYPE, SELECT or "" when none was found
	Value string
	action.Answer
}

var (
	actionTypeRE = regexp.MustCompile(`"?action_type"?\s*:\s*(\d+)`)
	valueRE      = regexp.MustCompile(`"(?:value|typed_text)"\s*:\s*"((?:[^"\\]|\\.)*)"`)
	opRE         = regexp.MustCompile(`(?i)\b(CLICK|TYPE|SELECT|HOVER|ENTER)\b`)
	quotedRE     = regexp.MustCompile(`"((?:[^"\\]|\\.)*)"|'([^']*)'`)
	valueStopRE  = regexp.MustCompile(`(?i)\s*(?:\bmarks?\b|[\[\(<]).*$`)
)

// ParseWebAction reads a Mind2Web answer: Magma's SoM dictionary
// {"ACTION": "TYPE", "MARK": 13, "VALUE": "new york"} ("None" = no value),
// SeeClick's dict form
// {"action_type": 4|3|2, "click_point": (x,y), "value"/"typed_text": "..."}
// (4 CLICK, 3 TYPE, 2 SELECT), or text "TYPE \"new york\" [x,y] Mark: 5" /
// "CLICK Mark: 3" (first operation word; the value is the first quoted
// string after it, or the words up to the mark/coordinates). The click is
// parsed by ParseAnswer.
func ParseWebAction(text string, w, h int, opt action.ParseOptions) WebAction {
	a := WebAction{Answer: action.ParseAnswer(text, w, h, opt)}
	if parseSoMDict(text, &a) {
		return a
	}
	if m := actionTypeRE.FindStringSubmatch(text); m != nil {
		switch m[1] {
		case "4":
			a.Op = "CLICK"
		case "3":
			a.Op = "TYPE"
		case "2":
			a.Op = "SELECT"
		}
		if v := valueRE.FindStringSubmatch(text); v != nil {
			a.Value = unescape(v[1])
		}
		return a
	}
	loc := opRE.FindStringSubmatchIndex(text)
	if loc == nil {
		return a
	}
	a.Op = strings.ToUpper(text[loc[2]:loc[3]])
	if a.Op == "HOVER" || a.Op == "ENTER" {
		a.Op = "CLICK"
	}
	if a.Op == "CLICK" {
		return a
	}
	rest := text[loc[1]:]
	if q := quotedRE.FindStringSubmatch(rest); q != nil {
		a.Value = unescape(q[1] + q[2])
		return a
	}
	rest = valueStopRE.ReplaceAllString(rest, "")
	a.Value = strings.TrimSpace(strings.TrimLeft(rest, " :"))
	return a
}

func unescape(s string) string {
	if u, err := strconv.Unquote(`"` + s + `"`); err == nil {
		return u
	}
	return s
}

// TokenF1 is Mind2Web's operation F1: the F1 of the sets of lower-cased
// whitespace tokens (1 when both are empty, 0 when one is).
func TokenF1(pred, ref string) float64 {
	p := tokenSet(pred)
	r := tokenSet(ref)
	if len(p) == 0 && len(r) == 0 {
		return 1
	}
	if len(p) == 0 || len(r) == 0 {
		return 0
	}
	tp := 0
	for t := range p {
		if r[t] {
			tp++
		}
	}
	if tp == 0 {
		return 0
	}
	prec := float64(tp) / float64(len(p))
	rec := float64(tp) / float64(len(r))
	return 2 * prec * rec / (prec + rec)
}

func tokenSet(s string) map[string]bool {
	out := map[string]bool{}
	for _, t := range strings.Fields(strings.ToLower(s)) {
		out[t] = true
	}
	return out
}

// StepOutcome is one scored step.
type StepOutcome struct {
	Index, Episode int
	Split          string
	EleMatch       bool
	OpF1           float64
	Op             string // ground-truth op
	Err            error
	Where          string
}

// StepSuccess is element right and Op.F1 = 1.
func (o StepOutcome) StepSuccess() bool { return o.EleMatch && o.OpF1 == 1 }

// SplitMetrics are one split's Mind2Web numbers, fractions in [0,1].
// EleAcc, OpF1 and StepSR are macro averages (mean over episodes of the
// per-episode mean: Mind2Web's reported convention, and SeeClick's "Macro"
// figures); the Micro* fields are over all steps; OpF1ByOp is the mean F1
// per ground-truth operation.
type SplitMetrics struct {
	EleAcc      float64            `json:"ele_acc"`
	OpF1        float64            `json:"op_f1"`
	StepSR      float64            `json:"step_sr"`
	MicroEleAcc float64            `json:"micro_ele_acc"`
	MicroOpF1   float64            `json:"micro_op_f1"`
	MicroStepSR float64            `json:"micro_step_sr"`
	EpisodeSR   float64            `json:"episode_sr"`
	OpF1ByOp    map[string]float64 `json:"op_f1_by_op"`
	// OpF1OpMean is the mean of OpF1ByOp over the operations present (the
	// figure SeeClick's script prints as "Operation F1").
	OpF1OpMean float64 `json:"op_f1_op_mean"`
	Steps      int     `json:"steps"`
	Episodes   int     `json:"episodes"`
	Errors     int     `json:"errors"`
}

// Mind2WebResults is results.json of `magma eval mind2web`.
type Mind2WebResults struct {
	Benchmark    string                  `json:"benchmark"`
	Splits       map[string]SplitMetrics `json:"splits"`
	Total        int                     `json:"total"`
	Errors       int                     `json:"errors"`
	ErrorRecords []RecordError           `json:"error_records"`
	Timing       *StageTiming            `json:"timing,omitempty"`
}

// SummarizeMind2Web computes the per-split metrics. Error steps count as
// wrong element, F1 0.
func SummarizeMind2Web(outs []StepOutcome) *Mind2WebResults {
	r := &Mind2WebResults{Benchmark: "mind2web", Splits: map[string]SplitMetrics{}, ErrorRecords: []RecordError{}}
	type epKey struct {
		split string
		ep    int
	}
	bySplit := map[string][]StepOutcome{}
	for _, o := range outs {
		if o.Err != nil {
			r.Errors++
			r.ErrorRecords = append(r.ErrorRecords, RecordError{Index: o.Index, Where: o.Where, Error: o.Err.Error()})
		}
		if o.Index < 0 {
			continue
		}
		r.Total++
		bySplit[o.Split] = append(bySplit[o.Split], o)
	}
	for sp, list := range bySplit {
		m := SplitMetrics{OpF1ByOp: map[string]float64{}}
		eps := map[epKey][]StepOutcome{}
		var order []epKey
		opSum, opN := map[string]float64{}, map[string]int{}
		var ele, f1, sr float64
		for _, o := range list {
			k := epKey{sp, o.Episode}
			if _, ok := eps[k]; !ok {
				order = append(order, k)
			}
			eps[k] = append(eps[k], o)
			m.Steps++
			if o.Err != nil {
				m.Errors++
			}
			if o.EleMatch {
				ele++
			}
			f1 += o.OpF1
			if o.StepSuccess() {
				sr++
			}
			if o.Op != "" {
				opSum[o.Op] += o.OpF1
				opN[o.Op]++
			}
		}
		n := float64(m.Steps)
		m.MicroEleAcc, m.MicroOpF1, m.MicroStepSR = ele/n, f1/n, sr/n
		var me, mf, ms, epOK float64
		for _, k := range order {
			st := eps[k]
			var e, f, s float64
			all := true
			for _, o := range st {
				if o.EleMatch {
					e++
				}
				f += o.OpF1
				if o.StepSuccess() {
					s++
				} else {
					all = false
				}
			}
			c := float64(len(st))
			me += e / c
			mf += f / c
			ms += s / c
			if all {
				epOK++
			}
		}
		ne := float64(len(order))
		m.Episodes = len(order)
		m.EleAcc, m.OpF1, m.StepSR, m.EpisodeSR = me/ne, mf/ne, ms/ne, epOK/ne
		for op, s := range opSum {
			m.OpF1ByOp[op] = s / float64(opN[op])
		}
		// Sum in a fixed order: map order would change the last bit between
		// runs, and a predictions file must score exactly like its model run.
		ops := make([]string, 0, len(m.OpF1ByOp))
		for op := range m.OpF1ByOp {
			ops = append(ops, op)
		}
		sort.Strings(ops)
		for _, op := range ops {
			m.OpF1OpMean += m.OpF1ByOp[op] / float64(len(ops))
		}
		r.Splits[sp] = m
	}
	return r
}

// WriteTable prints the Mind2Web table (macro, with micro in brackets).
func (r *Mind2WebResults) WriteTable(w io.Writer) {
	var names []string
	for _, s := range Mind2WebSplits {
		if _, ok := r.Splits[s]; ok {
			names = append(names, s)
		}
	}
	fmt.Fprintf(w, "%-10s %8s %9s %18s %18s %18s\n", "mind2web", "episodes", "steps", "Ele.Acc", "Op.F1", "Step SR")
	for _, s := range names {
		m := r.Splits[s]
		fmt.Fprintf(w, "%-10s %8d %9d %18s %18s %18s\n", "cross-"+s, m.Episodes, m.Steps,
			fmt.Sprintf("%5.1f (micro %5.1f)", 100*m.EleAcc, 100*m.MicroEleAcc),
			fmt.Sprintf("%5.1f (micro %5.1f)", 100*m.OpF1, 100*m.MicroOpF1),
			fmt.Sprintf("%5.1f (micro %5.1f)", 100*m.StepSR, 100*m.MicroStepSR))
	}
	fmt.Fprintf(w, "steps: %d   errors: %d\n", r.Total, r.Errors)
	if t := r.Timing; t != nil && t.WallS > 0 {
		fmt.Fprintf(w, "%.2f steps/s; time share: load %s, propose %s, mark %s, model %s, parse %s, report %s\n",
			t.RecPerS, pct(t.LoadS, t.WallS), pct(t.ProposeS, t.WallS), pct(t.MarkS, t.WallS),
			pct(t.ModelS, t.WallS), pct(t.ParseS, t.WallS), pct(t.ReportS, t.WallS))
	}
}

// StepPrediction is one line of a Mind2Web predictions.jsonl. As input only
// annotation_id, action_uid and either op/value/point (pixels) or answer
// (raw text, parsed by ParseWebAction; "marks" resolve mark ids) are read.
type StepPrediction struct {
	Index        int                  `json:"index"`
	Split        string               `json:"split,omitempty"`
	AnnotationID string               `json:"annotation_id"`
	ActionUID    string               `json:"action_uid"`
	Answer       string               `json:"answer,omitempty"`
	Op           string               `json:"op,omitempty"`
	Value        string               `json:"value,omitempty"`
	Mark         *int                 `json:"mark,omitempty"`
	MarkBox      []float64            `json:"mark_box,omitempty"`
	Point        []float64            `json:"point,omitempty"`
	EleMatch     bool                 `json:"ele_match"`
	OpF1         float64              `json:"op_f1"`
	StepSuccess  bool                 `json:"step_success"`
	Error        string               `json:"error,omitempty"`
	Marks        map[string][]float64 `json:"marks,omitempty"`
	// CropTop is where the evaluated window starts on the page (Magma's
	// protocol crops to MaxHeight); Point and MarkBox are in the window.
	CropTop float64 `json:"crop_top,omitempty"`
}

// RunMind2Web evaluates d step by step with the same machinery as
// RunScreenSpot (proposals or proposer, SoM marking, model, answer parsing,
// report), or scores opt.Predictions keyed by (annotation_id, action_uid).
func RunMind2Web(ctx context.Context, d *Mind2Web, opt Options) (*Mind2WebResults, error) {
	opt.defaults()
	steps := limited(d.Steps, opt.Limit)
	var preds map[string][]*StepPrediction
	var predErrs []StepOutcome
	if opt.Predictions != "" {
		items, errs, err := readJSONItems(opt.Predictions)
		if err != nil {
			return nil, fmt.Errorf("predictions: %w", err)
		}
		preds = map[string][]*StepPrediction{}
		named := 0
		for i, it := range items {
			var p StepPrediction
			if errs[i] == nil {
				errs[i] = json.Unmarshal(it, &p)
			}
			if errs[i] != nil {
				predErrs = append(predErrs, StepOutcome{Index: -1, Where: fmt.Sprintf("%s entry %d", filepath.Base(opt.Predictions), i), Err: errs[i]})
				continue
			}
			k := p.AnnotationID + "\x00" + p.ActionUID
			preds[k] = append(preds[k], &p)
			if p.AnnotationID != "" {
				named++
			}
		}
		// a file none of whose records can be used is refused, not scored 0
		if named == 0 {
			var why []string
			for i, o := range predErrs {
				if i == 3 {
					why = append(why, "...")
					break
				}
				why = append(why, o.Where+": "+o.Err.Error())
			}
			if n := len(items) - len(predErrs); n > 0 {
				why = append(why, fmt.Sprintf(`%d records without "annotation_id"`, n))
			}
			return nil, fmt.Errorf("predictions %s: no record can be read as a Mind2Web step prediction {\"annotation_id\", \"action_uid\", ...} (%s)", opt.Predictions, strings.Join(why, "; "))
		}
	} else if opt.Model == nil {
		return nil, errors.New("mind2web: no model and no predictions file")
	}
	return runReported(ctx, &opt, len(steps), func(i int, tm *timers) (StepOutcome, any, failInfo, bool) {
		s := &steps[i]
		o, pred, vis := evalStep(ctx, d, s, preds, &opt, tm)
		return o, pred, failInfo{Index: s.Index, Cell: s.Split, Instruction: s.Task + " -> " + ActionString(s.Op, s.Value),
			Answer: pred.Answer, GT: som.Box{X1: s.Box.X1, Y1: s.Box.Y1 - pred.CropTop, X2: s.Box.X2, Y2: s.Box.Y2 - pred.CropTop}, Correct: o.StepSuccess(), Err: o.Err, vis: vis}, o.EleMatch
	}, func(done, nEle, nErr int, el float64) string {
		return fmt.Sprintf("mind2web [%d/%d] ele.acc %.1f%% errors %d | %.2f steps/s | %.0fs\n",
			done, len(steps), 100*float64(nEle)/float64(done), nErr, float64(done)/el, el)
	}, func(outs []StepOutcome) *Mind2WebResults {
		return SummarizeMind2Web(append(outs, predErrs...))
	})
}

func evalStep(ctx context.Context, d *Mind2Web, s *Step, preds map[string][]*StepPrediction, opt *Options, tm *timers) (StepOutcome, StepPrediction, visual) {
	o := StepOutcome{Index: s.Index, Episode: s.Episode, Split: s.Split, Op: s.Op, Where: s.Where()}
	pred := StepPrediction{Index: s.Index, Split: s.Split, AnnotationID: s.AnnotationID, ActionUID: s.ActionUID}
	var vis visual
	fail := func(err error) (StepOutcome, StepPrediction, visual) {
		o.Err = err
		pred.Error = err.Error()
		return o, pred, vis
	}
	if s.Err != nil {
		return fail(s.Err)
	}
	var given *StepPrediction
	if preds != nil {
		k := s.AnnotationID + "\x00" + s.ActionUID
		if q := preds[k]; len(q) > 0 {
			given, preds[k] = q[0], q[1:]
		} else {
			return fail(errors.New("no prediction for this step in the predictions file"))
		}
	}
	t0 := time.Now()
	path := ""
	for _, dir := range d.ImageDirs {
		p := filepath.Join(dir, s.ImgFilename)
		if _, err := os.Stat(p); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		tm.add(&tm.load, t0)
		return fail(fmt.Errorf("image %s not found in %s", s.ImgFilename, strings.Join(d.ImageDirs, ", ")))
	}
	img, err := imaging.DecodeImage(path)
	gt := s.Box
	if err == nil {
		err = CheckBox(gt, img.W, img.H)
	}
	var cands []som.Box
	if err == nil && d.Protocol != nil && given == nil {
		img, gt, cands = d.Protocol.apply(img, gt, d.Candidates[s.ImgFilename])
		pred.CropTop = s.Box.Y1 - gt.Y1
	}
	tm.add(&tm.load, t0)
	if err != nil {
		return fail(err)
	}
	vis.img, vis.hasImg = img, true
	var act WebAction
	var marks *som.Result
	if given != nil {
		if given.Error != "" {
			return fail(fmt.Errorf("predictions: %s", given.Error))
		}
		t0 = time.Now()
		pred.Answer = given.Answer
		switch {
		case len(given.Point) == 2 || given.Op != "":
			act.Op, act.Value = strings.ToUpper(given.Op), given.Value
			if len(given.Point) == 2 {
				act.Point, act.HasPoint, act.PointForm = som.Point{X: given.Point[0], Y: given.Point[1]}, true, action.FormPixels
			}
		default:
			act = ParseWebAction(given.Answer, img.W, img.H, opt.Parse)
			marks = marksFromJSON(given.Marks)
		}
		tm.add(&tm.parse, t0)
	} else {
		prompt, askOpt := Mind2WebPrompt(s.Task, s.Previous), opt
		if d.Protocol != nil {
			c := *opt
			c.Proposals, c.Proposer = Proposals{s.ImgFilename: cands}, nil
			askOpt = &c
			if !d.Protocol.Project {
				prompt = Mind2WebSoMPrompt(s.Task, s.PreviousReprs)
			}
		}
		var text string
		if marks, text, err = markAndAsk(ctx, img, s.ImgFilename, prompt, askOpt, tm, &vis); err != nil {
			return fail(err)
		}
		pred.Answer = text
		t0 = time.Now()
		act = ParseWebAction(text, img.W, img.H, opt.Parse)
		tm.add(&tm.parse, t0)
	}
	t0 = time.Now()
	pred.Op, pred.Value = act.Op, act.Value
	if act.HasMark {
		m := act.Mark
		pred.Mark = &m
	}
	if p, _, mb, ok := action.Click(act.Answer, marks, opt.PreferPoint); ok {
		pred.Point = []float64{p.X, p.Y}
		vis.point = &p
		if mb != nil {
			pred.MarkBox = []float64{mb.X1, mb.Y1, mb.X2, mb.Y2}
			vis.markBox = mb
		}
		o.EleMatch = gt.Contains(p)
	}
	o.OpF1 = TokenF1(ActionString(act.Op, act.Value), ActionString(s.Op, s.Value))
	pred.EleMatch, pred.OpF1, pred.StepSuccess = o.EleMatch, o.OpF1, o.StepSuccess()
	tm.add(&tm.parse, t0)
	return o, pred, vis
}

// marksFromJSON turns {"id": [x1,y1,x2,y2]} into a mark map for Click.
func marksFromJSON(m map[string][]float64) *som.Result {
	if len(m) == 0 {
		return nil
	}
	r := &som.Result{}
	for k, v := range m {
		id, err := strconv.Atoi(k)
		if err != nil || len(v) != 4 {
			continue
		}
		b := som.Box{X1: v[0], Y1: v[1], X2: v[2], Y2: v[3]}
		r.Marks = append(r.Marks, som.Region{ID: id, Box: b, Point: b.Center()})
	}
	sort.Slice(r.Marks, func(i, j int) bool { return r.Marks[i].ID < r.Marks[j].ID })
	return r
}
