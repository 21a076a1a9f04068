package eval

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Answer files that --predictions (Options.Predictions) scores for the QA
// benchmarks, recognised by their content (never by the file name):
//
//   - PredOurs, this project's predictions.jsonl (all benchmarks);
//   - PredVQAResults, the VQA challenge results file the official VQAv2 and
//     TextVQA evaluators and EvalAI take (VQAv2, TextVQA);
//   - PredLLaVA, LLaVA's answer file (VQAv2, TextVQA by question_id; POPE
//     by order, as LLaVA's eval_pope.py pairs it with the labels);
//   - PredPOPE, POPE's answer file as its evaluate.py reads it (POPE);
//   - PredNextQA, NExT-QA's results file as its eval_mc.py reads it;
//   - PredVideoMME, Video-MME's results file (output_test_template.json).
//
// AITW has no published answer file (SeeClick's aitw_test.py scores inside
// the generation loop), nor do ScreenSpot and Mind2Web: they take
// predictions.jsonl only.
//
// A record that cannot be read is reported in ErrorRecords with its file and
// line (or entry); a file in which no record can be read, an empty file, a
// format the benchmark does not take, an answer file matched by order whose
// length is not the benchmark's, and a file none of whose ids is a
// question of the benchmark are errors: RunQA fails instead of scoring 0.

// PredFormat names a predictions file layout.
type PredFormat string

const (
	// PredOurs is predictions.jsonl: JSON lines {"id", "answer", "error"}.
	PredOurs PredFormat = "predictions.jsonl"
	// PredVQAResults is a JSON array [{"question_id": int, "answer": str}].
	PredVQAResults PredFormat = "VQA results JSON ([{question_id, answer}])"
	// PredLLaVA is JSON lines {"question_id", "text", "prompt", ...}
	// (LLaVA's model_vqa_loader; "answer" instead of "text" is read too).
	PredLLaVA PredFormat = "LLaVA answers JSONL ({question_id, text})"
	// PredPOPE is JSON lines {"question", "answer"} in question order.
	PredPOPE PredFormat = "POPE answers JSONL ({question, answer} in question order)"
	// PredNextQA is {"<video>_<qid>": {"prediction": option index, ...}}.
	PredNextQA PredFormat = "NExT-QA results JSON ({video_qid: {prediction}})"
	// PredVideoMME is [{"video_id", ..., "questions": [{"question_id",
	// ..., "response"}]}].
	PredVideoMME PredFormat = "Video-MME results JSON ([{questions: [{question_id, response}]}])"
)

// OfficialResultsFile is what RunQA writes in OutDir for VQAv2 and TextVQA
// (QABench.OfficialResults): every question as {"question_id", "answer"}
// with the answer normalised by VQANormalize (EvalAI's answer processor),
// ready for the official evaluator or an EvalAI submission.
const OfficialResultsFile = "results_official.json"

// qaRec is one record of an answer file.
type qaRec struct {
	id, answer string
	// failed is the producing run's error (predictions.jsonl "error").
	failed   string
	question string // the question as the file repeats it (checked when matched by order)
	where    string
	bad      string // why the record could not be read
}

// qaPreds is a read answer file.
type qaPreds struct {
	path    string
	format  PredFormat
	recs    []*qaRec // file order, bad ones included
	byID    map[string][]*qaRec
	byOrder bool
	bad     []RecordError
}

// take returns the answer record of it (nil when the file has none).
func (p *qaPreds) take(it *QAItem) *qaRec {
	if p.byOrder {
		if it.Index >= 0 && it.Index < len(p.recs) {
			return p.recs[it.Index]
		}
		return nil
	}
	q := p.byID[it.ID]
	if len(q) == 0 {
		return nil
	}
	p.byID[it.ID] = q[1:]
	return q[0]
}

// loadQAPredictions reads opt.Predictions for b and refuses files that
// cannot be scored (see the notes above).
func loadQAPredictions(path string, b *QABench, limit int) (*qaPreds, error) {
	p, err := parseQAPredictions(path)
	if err != nil {
		return nil, err
	}
	base := filepath.Base(path)
	good := 0
	var reasons []string
	for _, r := range p.recs {
		if r.bad == "" {
			good++
		} else if len(reasons) < 3 {
			reasons = append(reasons, r.where+": "+r.bad)
		}
	}
	if len(p.recs) == 0 {
		return nil, fmt.Errorf("predictions %s: no records", path)
	}
	if good == 0 {
		if len(p.recs) > len(reasons) {
			reasons = append(reasons, "...")
		}
		return nil, fmt.Errorf("predictions %s: none of its %d records can be read (%s)", path, len(p.recs), strings.Join(reasons, "; "))
	}
	if p.format != PredOurs && !predFormatIn(b.PredFormats, p.format) {
		takes := []string{string(PredOurs)}
		for _, f := range b.PredFormats {
			takes = append(takes, string(f))
		}
		return nil, fmt.Errorf("predictions %s is a %s file, which %s does not take (it takes %s)", path, p.format, b.Name, strings.Join(takes, ", "))
	}
	items := limited(b.Items, limit)
	p.byOrder = p.format == PredPOPE || (p.format == PredLLaVA && b.ByOrder)
	if p.byOrder {
		n := len(p.recs)
		if n != len(b.Items) && !(limit > 0 && limit < len(b.Items) && n >= limit) {
			return nil, fmt.Errorf("predictions %s: a %s file answers the questions in order, but it has %d answers and %s has %d questions (%s): give --split for an answer file of one split",
				path, p.format, n, b.Name, len(b.Items), categoryCounts(b.Items))
		}
		return p, nil
	}
	p.byID = map[string][]*qaRec{}
	for _, r := range p.recs {
		if r.bad != "" {
			p.bad = append(p.bad, RecordError{Index: -1, Where: r.where, Error: r.bad})
			continue
		}
		p.byID[r.id] = append(p.byID[r.id], r)
	}
	matched := 0
	for i := range items {
		if len(p.byID[items[i].ID]) > 0 {
			matched++
		}
	}
	if matched == 0 && len(items) > 0 {
		var fileIDs []string
		for _, r := range p.recs {
			if r.bad == "" && len(fileIDs) < 3 {
				fileIDs = append(fileIDs, strconv.Quote(r.id))
			}
		}
		var benchIDs []string
		for i := 0; i < len(items) && i < 3; i++ {
			benchIDs = append(benchIDs, strconv.Quote(items[i].ID))
		}
		return nil, fmt.Errorf("predictions %s: none of its %d answers is for a question of %s (%s ids %s; the benchmark's %s): a different split or benchmark?",
			path, good, b.Name, base, strings.Join(fileIDs, ", "), strings.Join(benchIDs, ", "))
	}
	return p, nil
}

func predFormatIn(list []PredFormat, f PredFormat) bool {
	for _, x := range list {
		if x == f {
			return true
		}
	}
	return false
}

// categoryCounts is "random 3000, popular 3000" in item order.
func categoryCounts(items []QAItem) string {
	var order []string
	n := map[string]int{}
	for _, it := range items {
		if n[it.Category] == 0 {
			order = append(order, it.Category)
		}
		n[it.Category]++
	}
	parts := make([]string, len(order))
	for i, c := range order {
		parts[i] = fmt.Sprintf("%s %d", c, n[c])
	}
	return strings.Join(parts, ", ")
}

// parseQAPredictions reads an answer file in any of the formats, detected
// from its content; only an unreadable file (or a JSON document that does
// not parse) is an error here.
func parseQAPredictions(path string) (*qaPreds, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("predictions: %w", err)
	}
	base := filepath.Base(path)
	p := &qaPreds{path: path}
	trim := bytes.TrimLeft(data, " \t\r\n\ufeff")
	if len(trim) > 0 && trim[0] == '[' {
		var arr []json.RawMessage
		if err := json.Unmarshal(trim, &arr); err != nil {
			return nil, fmt.Errorf("predictions %s: a JSON array that does not parse: %v", path, err)
		}
		p.parseArray(base, arr)
		return p, nil
	}
	if len(trim) > 0 && trim[0] == '{' {
		var obj map[string]json.RawMessage
		if json.Unmarshal(trim, &obj) == nil && len(obj) > 0 && allObjects(obj) {
			p.parseNextQA(base, obj)
			return p, nil
		}
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if line == 1 {
			b = bytes.TrimPrefix(b, []byte("\ufeff"))
		}
		if len(b) == 0 {
			continue
		}
		p.recs = append(p.recs, p.parseLine(b, fmt.Sprintf("%s line %d", base, line)))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("predictions %s: %w", path, err)
	}
	if p.format == "" {
		p.format = PredOurs
	}
	return p, nil
}

func allObjects(m map[string]json.RawMessage) bool {
	for _, v := range m {
		v = bytes.TrimSpace(v)
		if len(v) == 0 || v[0] != '{' {
			return false
		}
	}
	return true
}

// str reads an optional string field.
func str(m map[string]json.RawMessage, key string) (string, bool, error) {
	raw, ok := m[key]
	if !ok || string(bytes.TrimSpace(raw)) == "null" {
		return "", false, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", true, fmt.Errorf("%q is not a string", key)
	}
	return s, true, nil
}

// parseLine reads one JSON line; the first readable line fixes the format.
func (p *qaPreds) parseLine(b []byte, where string) *qaRec {
	r := &qaRec{where: where}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		r.bad = fmt.Sprintf("malformed JSON line: %v", err)
		return r
	}
	_, hasID := m["id"]
	_, hasQID := m["question_id"]
	_, hasAnswer := m["answer"]
	_, hasText := m["text"]
	if p.format == "" {
		switch {
		case hasID:
			p.format = PredOurs
		case hasQID && (hasAnswer || hasText):
			p.format = PredLLaVA
		case hasAnswer:
			p.format = PredPOPE
		default:
			r.bad = `no "id" (predictions.jsonl), "question_id" with "text" or "answer" (LLaVA) or "answer" (POPE)`
			return r
		}
	}
	switch p.format {
	case PredOurs:
		var q QAPrediction
		if err := json.Unmarshal(b, &q); err != nil {
			r.bad = fmt.Sprintf("malformed prediction: %v", err)
		} else if q.ID == "" {
			r.bad = `prediction without "id"`
		}
		r.id, r.answer, r.failed = q.ID, q.Answer, q.Error
	case PredLLaVA:
		r.id = jsonID(m["question_id"])
		ans, ok, err := str(m, "answer")
		if err == nil && !ok {
			ans, ok, err = str(m, "text")
		}
		q, _, qerr := str(m, "prompt")
		if q == "" && qerr == nil {
			q, _, qerr = str(m, "question")
		}
		switch {
		case r.id == "":
			r.bad = `answer without "question_id"`
		case err != nil:
			r.bad = err.Error()
		case !ok:
			r.bad = `answer without "text"`
		case qerr != nil:
			r.bad = qerr.Error()
		}
		r.answer, r.question = ans, q
	case PredPOPE:
		ans, ok, err := str(m, "answer")
		q, _, qerr := str(m, "question")
		switch {
		case err != nil:
			r.bad = err.Error()
		case !ok:
			r.bad = `answer line without "answer"`
		case qerr != nil:
			r.bad = qerr.Error()
		}
		r.answer, r.question = ans, q
	}
	return r
}

// parseArray reads a JSON array: VQA results, or Video-MME's per-video
// records when the first object has "questions".
func (p *qaPreds) parseArray(base string, arr []json.RawMessage) {
	for i, raw := range arr {
		where := fmt.Sprintf("%s entry %d", base, i)
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil {
			p.recs = append(p.recs, &qaRec{where: where, bad: fmt.Sprintf("not a JSON object: %v", err)})
			continue
		}
		if p.format == "" {
			_, hasQs := m["questions"]
			_, hasQID := m["question_id"]
			switch {
			case hasQs:
				p.format = PredVideoMME
			case hasQID:
				p.format = PredVQAResults
			default:
				p.recs = append(p.recs, &qaRec{where: where, bad: `neither "question_id" (VQA results) nor "questions" (Video-MME results)`})
				continue
			}
		}
		if p.format == PredVQAResults {
			r := &qaRec{where: where, id: jsonID(m["question_id"])}
			ans, ok, err := str(m, "answer")
			switch {
			case r.id == "":
				r.bad = `result without "question_id"`
			case err != nil:
				r.bad = err.Error()
			case !ok:
				r.bad = fmt.Sprintf(`question_id %s: result without "answer"`, r.id)
			}
			r.answer = ans
			p.recs = append(p.recs, r)
			continue
		}
		var qs []json.RawMessage
		if err := json.Unmarshal(m["questions"], &qs); err != nil || len(qs) == 0 {
			p.recs = append(p.recs, &qaRec{where: where, bad: `video without a "questions" list`})
			continue
		}
		for j, rq := range qs {
			r := &qaRec{where: fmt.Sprintf("%s entry %d question %d", base, i, j)}
			var q map[string]json.RawMessage
			if err := json.Unmarshal(rq, &q); err != nil {
				r.bad = fmt.Sprintf("not a JSON object: %v", err)
				p.recs = append(p.recs, r)
				continue
			}
			r.id = jsonID(q["question_id"])
			resp, ok, err := str(q, "response")
			switch {
			case r.id == "":
				r.bad = `question without "question_id"`
			case err != nil:
				r.bad = err.Error()
			case !ok:
				r.bad = fmt.Sprintf(`question_id %s: no "response"`, r.id)
			}
			r.answer = resp
			p.recs = append(p.recs, r)
		}
	}
	if p.format == "" {
		p.format = PredVQAResults
	}
}

// parseNextQA reads NExT-QA's {"<video>_<qid>": {"prediction": index}}.
func (p *qaPreds) parseNextQA(base string, obj map[string]json.RawMessage) {
	p.format = PredNextQA
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		r := &qaRec{id: k, where: fmt.Sprintf("%s key %q", base, k)}
		var v map[string]json.RawMessage
		err := json.Unmarshal(obj[k], &v)
		raw, ok := v["prediction"]
		var n int
		switch {
		case err != nil:
			r.bad = fmt.Sprintf("malformed result: %v", err)
		case !ok:
			r.bad = `no "prediction"`
		case json.Unmarshal(raw, &n) != nil || n < 0 || n >= 26:
			r.bad = fmt.Sprintf("prediction %s is not an option index", bytes.TrimSpace(raw))
		default:
			r.answer = ChoiceLetter(n)
		}
		p.recs = append(p.recs, r)
	}
}

// sameQuestion: one question text contains the other, ignoring case and
// spacing (answer files repeat it lower-cased or with the instruction).
func sameQuestion(a, b string) bool {
	na, nb := strings.Join(strings.Fields(strings.ToLower(a)), " "), strings.Join(strings.Fields(strings.ToLower(b)), " ")
	return strings.Contains(na, nb) || strings.Contains(nb, na)
}

// answer is it's answer in the file (found false when the file has none)
// and the reason it cannot be scored.
func (p *qaPreds) answer(it *QAItem) (answer string, found bool, err error) {
	r := p.take(it)
	if r == nil {
		return "", false, nil
	}
	if r.bad != "" {
		return "", true, fmt.Errorf("%s: %s", r.where, r.bad)
	}
	if r.question != "" && it.Question != "" && !sameQuestion(r.question, it.Question) {
		return r.answer, true, fmt.Errorf("%s is for %q, not %q: the answer file is not in the questions' order", r.where, clip(r.question, 80), clip(it.Question, 80))
	}
	if r.failed != "" {
		return r.answer, true, errors.New(r.failed)
	}
	return r.answer, true, nil
}

// officialResult is one entry of results_official.json.
type officialResult struct {
	QuestionID json.RawMessage `json:"question_id"`
	Answer     string          `json:"answer"`
}

// officialEntry is it's entry (false for an item without a question id).
func officialEntry(it *QAItem, answer string, failed bool) (officialResult, bool) {
	if it.ID == "" || it.Err != nil {
		return officialResult{}, false
	}
	id, _ := json.Marshal(it.ID)
	if _, err := strconv.ParseInt(it.ID, 10, 64); err == nil {
		id = []byte(it.ID)
	}
	if failed {
		answer = ""
	}
	return officialResult{QuestionID: id, Answer: VQANormalize(answer)}, true
}
