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
	"sort"
	"strings"
	"time"

	"github.com/magma-go/magma/model"
	"github.com/magma-go/magma/tom"
	"github.com/magma-go/magma/vision/imaging"
)

// Question-answering benchmarks (VQAv2, TextVQA, POPE, NextQA, VideoMME,
// AITW) run through RunQA on the per-item loop every benchmark shares
// (eachItem): per item, the reader's error if any; else
// the answer (from the model given the item's images or sampled video
// frames and its prompt, or from a --predictions file); the answer is
// scored by the benchmark's QATask; progress lines; predictions.jsonl as it
// goes; results.json (QAResults) at the end and timing.json beside it (kept
// out of results.json so that a --predictions run writes a bit-identical
// results.json).
//
// An item that cannot be evaluated (reader error, missing or undecodable
// image or video, model error, empty answer) is reported in ErrorRecords
// with its file and line and counts as wrong: errors can only lower a
// score. Nothing is dropped: Total is every item read.

// QAItem is one question.
type QAItem struct {
	Index int
	// ID keys the item in predictions files (question_id, qid, ...).
	ID    string
	Where string // "file line N" / "file item N"
	// Images are image files; Video, when set, is a clip sampled to
	// Frames frames (Options.Frames when 0).
	Images []string
	Video  string
	Frames int
	Prompt string
	// Question is the question alone (POPE), checked against the question
	// an answer file matched by order repeats.
	Question string
	// Category is the item's table row (answer type, split, duration...).
	Category string
	// Err is a bad record found by the reader.
	Err error
	// Gold is the benchmark's ground truth (read by its QATask).
	Gold any
}

// QATask scores one benchmark's answers.
type QATask interface {
	// Add scores answer for it; failed is true when the item could not be
	// evaluated (it then counts as wrong). It returns the item's score in
	// [0,1] and a short text of the expected answer for the predictions file.
	Add(it *QAItem, answer string, failed bool) (score float64, gold string)
	// Finish fills the benchmark's metrics and per-category tables.
	Finish(r *QAResults)
}

// QABench is a loaded benchmark.
type QABench struct {
	Name  string
	Items []QAItem
	// Files are the files read (for the report).
	Files []string
	// NewTask makes a fresh scorer for a run.
	NewTask func() QATask
	// PredFormats are the published answer files --predictions takes
	// besides predictions.jsonl (qa_predictions.go).
	PredFormats []PredFormat
	// ByOrder: answer files without our ids answer the items in order
	// (POPE), not by question_id.
	ByOrder bool
	// OfficialResults: RunQA also writes OfficialResultsFile in OutDir
	// (VQAv2, TextVQA).
	OfficialResults bool
}

// QAResults is results.json of a QA benchmark.
type QAResults struct {
	Benchmark string `json:"benchmark"`
	// Metrics are the headline numbers in [0,1] (accuracy, f1, ...).
	Metrics map[string]float64 `json:"metrics"`
	// Tables are per-category numbers: table row -> column -> value
	// (VQA: answer type -> accuracy, n; POPE: split -> accuracy,
	// precision, recall, f1, yes_ratio, n; ...).
	Tables       map[string]map[string]float64 `json:"tables"`
	Total        int                           `json:"total"`
	Errors       int                           `json:"errors"`
	ErrorRecords []RecordError                 `json:"error_records"`
	// Timing is written to timing.json, not results.json.
	Timing *StageTiming `json:"-"`
}

// QAPrediction is one line of predictions.jsonl. As --predictions input
// only id and answer (or error: an item the producing run could not
// evaluate) are read.
type QAPrediction struct {
	Index    int     `json:"index"`
	ID       string  `json:"id"`
	Category string  `json:"category,omitempty"`
	Answer   string  `json:"answer"`
	Gold     string  `json:"gold,omitempty"`
	Score    float64 `json:"score"`
	Error    string  `json:"error,omitempty"`
}

// QAFrames is the default number of frames sampled from a video.
const QAFrames = 8

// RunQA runs (or, with opt.Predictions, re-scores) a QA benchmark.
// Options used: Model, Predictions, Resume, Limit, OutDir, MaxNewTokens,
// Progress, ProgressEvery, Frames.
func RunQA(ctx context.Context, b *QABench, opt Options) (*QAResults, error) {
	opt.defaults()
	items := limited(b.Items, opt.Limit)
	var preds *qaPreds
	if opt.Resume {
		if opt.OutDir == "" || opt.Model == nil || opt.Predictions != "" {
			return nil, fmt.Errorf("%s: --resume needs --out and a model, and no --predictions", b.Name)
		}
		// answers already in OutDir/predictions.jsonl are reused; a line
		// cut short by the interruption (malformed) and items that failed
		// are run again, so nothing is lost.
		path := filepath.Join(opt.OutDir, "predictions.jsonl")
		if _, err := os.Stat(path); err == nil {
			old, err := parseQAPredictions(path)
			if err != nil {
				return nil, err
			}
			if old.format != PredOurs {
				return nil, fmt.Errorf("%s: --resume: %s is a %s file, not this project's predictions.jsonl", b.Name, path, old.format)
			}
			preds = &qaPreds{path: path, format: PredOurs, byID: map[string][]*qaRec{}}
			for _, r := range old.recs {
				if r.bad == "" && r.failed == "" {
					preds.byID[r.id] = append(preds.byID[r.id], r)
				}
			}
		}
	} else if opt.Predictions != "" {
		var err error
		if preds, err = loadQAPredictions(opt.Predictions, b, opt.Limit); err != nil {
			return nil, fmt.Errorf("%s: %w", b.Name, err)
		}
	} else if opt.Model == nil {
		return nil, fmt.Errorf("%s: no model and no predictions file", b.Name)
	}
	var enc *json.Encoder
	var pw *bufio.Writer
	if opt.OutDir != "" {
		if err := os.MkdirAll(opt.OutDir, 0o755); err != nil {
			return nil, fmt.Errorf("report: %w", err)
		}
		f, err := os.Create(filepath.Join(opt.OutDir, "predictions.jsonl"))
		if err != nil {
			return nil, fmt.Errorf("report: %w", err)
		}
		defer f.Close()
		pw = bufio.NewWriter(f)
		enc = json.NewEncoder(pw)
		enc.SetEscapeHTML(false)
	}
	task := b.NewTask()
	var official []officialResult
	res := &QAResults{Benchmark: b.Name, Metrics: map[string]float64{}, Tables: map[string]map[string]float64{}, ErrorRecords: []RecordError{}}
	var tm timers
	start := time.Now()
	sum := 0.0
	err := eachItem(ctx, len(items), opt.ProgressEvery, opt.Progress, func(i int) (func() error, error) {
		it := &items[i]
		answer, err := qaAnswer(ctx, it, preds, &opt, &tm)
		return func() error {
			if err == nil && strings.TrimSpace(answer) == "" {
				err = errors.New("empty answer")
			}
			t0 := time.Now()
			score, gold := task.Add(it, answer, err != nil)
			tm.add(&tm.parse, t0)
			if b.OfficialResults {
				if o, ok := officialEntry(it, answer, err != nil); ok {
					official = append(official, o)
				}
			}
			sum += score
			p := QAPrediction{Index: it.Index, ID: it.ID, Category: it.Category, Answer: answer, Gold: gold, Score: score}
			res.Total++
			if err != nil {
				res.Errors++
				p.Error = err.Error()
				res.ErrorRecords = append(res.ErrorRecords, RecordError{Index: it.Index, Where: it.Where, Error: err.Error()})
			}
			t0 = time.Now()
			defer tm.add(&tm.report, t0)
			if enc != nil {
				if err := enc.Encode(p); err != nil {
					return fmt.Errorf("report: writing predictions.jsonl: %w", err)
				}
			}
			return nil
		}, nil
	}, func(done int, el float64) string {
		return fmt.Sprintf("%s [%d/%d] mean score %.1f%% errors %d | %.2f records/s | %.0fs\n",
			b.Name, done, len(items), 100*sum/float64(done), res.Errors, float64(done)/el, el)
	})
	if err != nil {
		return nil, err
	}
	if preds != nil {
		for _, e := range preds.bad {
			res.Errors++
			res.ErrorRecords = append(res.ErrorRecords, e)
		}
	}
	task.Finish(res)
	res.Timing = tm.timing(len(items), time.Since(start))
	if opt.OutDir != "" {
		if err := pw.Flush(); err != nil {
			return nil, fmt.Errorf("report: %w", err)
		}
		if err := writeJSONFile(filepath.Join(opt.OutDir, "results.json"), res); err != nil {
			return nil, err
		}
		if err := writeJSONFile(filepath.Join(opt.OutDir, "timing.json"), res.Timing); err != nil {
			return nil, err
		}
		if b.OfficialResults {
			if official == nil {
				official = []officialResult{}
			}
			if err := writeJSONFile(filepath.Join(opt.OutDir, OfficialResultsFile), official); err != nil {
				return nil, err
			}
		}
	}
	return res, nil
}

func writeJSONFile(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// qaAnswer gets the item's answer from the predictions file or the model.
func qaAnswer(ctx context.Context, it *QAItem, preds *qaPreds, opt *Options, tm *timers) (string, error) {
	if it.Err != nil {
		return "", it.Err
	}
	if preds != nil {
		if answer, found, err := preds.answer(it); found {
			return answer, err
		}
		if !opt.Resume {
			return "", errors.New("no prediction for this item in the predictions file")
		}
	}
	t0 := time.Now()
	var imgs []imaging.Image
	for _, path := range it.Images {
		img, err := imaging.DecodeImage(path)
		if err != nil {
			tm.add(&tm.load, t0)
			return "", fmt.Errorf("image: %w", err)
		}
		imgs = append(imgs, img)
	}
	if it.Video != "" {
		n := it.Frames
		if n <= 0 {
			n = opt.Frames
		}
		if n <= 0 {
			n = QAFrames
		}
		frames, err := tom.SampleFrames(it.Video, n)
		if err != nil {
			tm.add(&tm.load, t0)
			return "", fmt.Errorf("video: %w", err)
		}
		imgs = append(imgs, frames...)
	}
	tm.add(&tm.load, t0)
	t0 = time.Now()
	r, err := opt.Model.Generate(ctx, model.Request{Images: imgs, Prompt: it.Prompt, MaxNewTokens: opt.MaxNewTokens})
	tm.add(&tm.model, t0)
	if err != nil {
		return "", fmt.Errorf("model: %w", err)
	}
	tm.modelTiming(r.Timing)
	return r.Text, nil
}

// WriteTable prints the headline metrics and the per-category table.
func (r *QAResults) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "%s: %d items, %d errors\n", r.Benchmark, r.Total, r.Errors)
	for _, k := range sortedKeys(r.Metrics) {
		fmt.Fprintf(w, "  %-22s %s\n", k, fmtMetric(k, r.Metrics[k]))
	}
	rows := sortedKeys(r.Tables)
	if len(rows) == 0 {
		return
	}
	colSet := map[string]bool{}
	for _, row := range r.Tables {
		for c := range row {
			colSet[c] = true
		}
	}
	cols := sortedKeys(colSet)
	fmt.Fprintf(w, "%-16s", "")
	for _, c := range cols {
		fmt.Fprintf(w, " %14s", c)
	}
	fmt.Fprintln(w)
	for _, row := range rows {
		fmt.Fprintf(w, "%-16s", row)
		for _, c := range cols {
			v, ok := r.Tables[row][c]
			if !ok {
				fmt.Fprintf(w, " %14s", "-")
				continue
			}
			fmt.Fprintf(w, " %14s", fmtMetric(c, v))
		}
		fmt.Fprintln(w)
	}
	if t := r.Timing; t != nil && t.WallS > 0 {
		fmt.Fprintf(w, "%.2f records/s; time share: load %s, model %s, scoring %s, report %s\n",
			t.RecPerS, pct(t.LoadS, t.WallS), pct(t.ModelS, t.WallS), pct(t.ParseS, t.WallS), pct(t.ReportS, t.WallS))
	}
}

// counts ("n", "total"...) print as integers, the rest as percentages.
func fmtMetric(name string, v float64) string {
	switch name {
	case "n", "total", "correct", "unanswered", "steps", "errors":
		return fmt.Sprintf("%d", int(v))
	}
	return fmt.Sprintf("%.2f%%", 100*v)
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
