package eval

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/magma-go/magma/model"
)

// readQALines reads a run's predictions.jsonl.
func readQALines(t *testing.T, path string) []QAPrediction {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []QAPrediction
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var p QAPrediction
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

func writeJSONLines(t *testing.T, path string, recs []map[string]any) {
	t.Helper()
	var sb strings.Builder
	for _, r := range recs {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		sb.Write(b)
		sb.WriteByte('\n')
	}
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// numericID is a question_id as the official files write it (an int).
func numericID(t *testing.T, id string) any {
	if n, err := strconv.Atoi(id); err == nil {
		return n
	}
	return id
}

// sameScores compares what a re-scoring must reproduce: the numbers, the
// item and error counts.
func sameScores(t *testing.T, what string, a, b *QAResults) {
	t.Helper()
	if a.Total != b.Total || a.Errors != b.Errors {
		t.Errorf("%s: total/errors %d/%d, want %d/%d: %+v", what, b.Total, b.Errors, a.Total, a.Errors, b.ErrorRecords)
	}
	if len(a.Metrics) == 0 {
		t.Errorf("%s: no metrics", what)
	}
	for k, v := range a.Metrics {
		if !near(b.Metrics[k], v) {
			t.Errorf("%s: metric %s = %v, want %v", what, k, b.Metrics[k], v)
		}
	}
	for row, cols := range a.Tables {
		for c, v := range cols {
			if !near(b.Tables[row][c], v) {
				t.Errorf("%s: table %s/%s = %v, want %v", what, row, c, b.Tables[row][c], v)
			}
		}
	}
}

// Issue 31, point 3: each QA benchmark's published answer file scores the
// same as the run's own predictions.jsonl (answers taken from a scripted
// model run on the synthetic fixtures with bad records), and VQAv2/TextVQA
// runs write results_official.json, which scores the same again.
func TestQAPredictionsOfficialFormats(t *testing.T) {
	dir := t.TempDir()
	if err := WriteSyntheticQA(dir, SyntheticQAOptions{Items: 6, Bad: true}); err != nil {
		t.Fatal(err)
	}
	run := func(t *testing.T, b *QABench, opt Options) *QAResults {
		t.Helper()
		r, err := RunQA(context.Background(), b, opt)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	for _, name := range QABenchmarks {
		t.Run(name, func(t *testing.T) {
			out := t.TempDir()
			ref := run(t, loadQA(t, dir, name), Options{Model: scriptedQA, OutDir: out, Frames: 4})
			preds := readQALines(t, filepath.Join(out, "predictions.jsonl"))
			files := map[string]string{} // what -> answer file
			tmp := t.TempDir()
			switch name {
			case "vqav2", "textvqa":
				// official results: [{"question_id": int, "answer": str}]
				var res []map[string]any
				var llava []map[string]any
				for _, p := range preds {
					if _, err := strconv.Atoi(p.ID); err != nil {
						continue // a bad record without question_id
					}
					res = append(res, map[string]any{"question_id": numericID(t, p.ID), "answer": p.Answer})
					llava = append(llava, map[string]any{"question_id": numericID(t, p.ID), "prompt": "q", "text": p.Answer,
						"answer_id": "x" + p.ID, "model_id": "magma", "metadata": map[string]any{}})
				}
				files["official"] = filepath.Join(tmp, "results.json")
				writeJSON(t, files["official"], res)
				files["llava"] = filepath.Join(tmp, "answers.jsonl")
				writeJSONLines(t, files["llava"], llava)
				files["written"] = filepath.Join(out, OfficialResultsFile)
			case "pope":
				// POPE's answer file: {"question", "answer"} in question order
				// (LLaVA's: {"question_id", "prompt", "text"}, same order)
				var pope, llava []map[string]any
				b := loadQA(t, dir, name)
				for i, p := range preds {
					q := b.Items[i].Question
					pope = append(pope, map[string]any{"question": strings.ToLower(q), "answer": p.Answer})
					llava = append(llava, map[string]any{"question_id": i, "prompt": q + "\n" + ShortAnswerPrompt, "text": p.Answer})
				}
				files["official"] = filepath.Join(tmp, "answers.json")
				writeJSONLines(t, files["official"], pope)
				files["llava"] = filepath.Join(tmp, "llava.jsonl")
				writeJSONLines(t, files["llava"], llava)
			case "nextqa":
				// eval_mc.py: {"<video>_<qid>": {"prediction": index, "answer": index}}
				res := map[string]any{}
				for _, p := range preds {
					if c := ExtractChoice(p.Answer, 5); c != "" {
						res[p.ID] = map[string]any{"prediction": int(c[0] - 'A'), "answer": 0}
					}
				}
				files["official"] = filepath.Join(tmp, "HGA-results.json")
				writeJSON(t, files["official"], res)
			case "videomme":
				// output_test_template.json: videos with their questions' responses
				var vids []map[string]any
				for _, p := range preds {
					if p.ID == "" || strings.HasPrefix(p.ID, "item:") {
						continue
					}
					vids = append(vids, map[string]any{"video_id": p.ID[:3], "duration": p.Category, "domain": "Knowledge",
						"questions": []map[string]any{{"question_id": p.ID, "task_type": "Counting Problem", "question": "?",
							"options": []string{"A. a", "B. b", "C. c", "D. d"}, "answer": "A", "response": p.Answer}}})
				}
				files["official"] = filepath.Join(tmp, "results.json")
				writeJSON(t, files["official"], vids)
			case "aitw":
				// no published answer file: another format is refused
				f := filepath.Join(tmp, "llava.jsonl")
				writeJSONLines(t, f, []map[string]any{{"question_id": 1, "text": "x"}})
				_, err := RunQA(context.Background(), loadQA(t, dir, name), Options{Predictions: f})
				if err == nil || !strings.Contains(err.Error(), "does not take") {
					t.Errorf("aitw with an LLaVA answer file: %v", err)
				}
			}
			for what, f := range files {
				r := run(t, loadQA(t, dir, name), Options{Predictions: f, OutDir: filepath.Join(tmp, "re-"+what)})
				sameScores(t, name+" "+what, ref, r)
			}
		})
	}
}

// Issue 31, point 3: POPE answer files are matched by order; one of
// another length (one split's against all three) is refused, and answers
// out of the questions' order are reported item by item.
func TestPOPEAnswerFileOrder(t *testing.T) {
	dir := t.TempDir()
	if err := WriteSyntheticQA(dir, SyntheticQAOptions{Items: 4}); err != nil {
		t.Fatal(err)
	}
	d := filepath.Join(dir, "pope")
	one, err := LoadPOPE(d, "popular", "")
	if err != nil {
		t.Fatal(err)
	}
	ref, err := RunQA(context.Background(), one, Options{Model: scriptedQA})
	if err != nil {
		t.Fatal(err)
	}
	var recs []map[string]any
	for _, it := range one.Items {
		recs = append(recs, map[string]any{"question": it.Question, "answer": scriptedQA(model.Request{Prompt: it.Prompt})})
	}
	f := filepath.Join(t.TempDir(), "popular_answers.jsonl")
	writeJSONLines(t, f, recs)
	one, _ = LoadPOPE(d, "popular", "")
	r, err := RunQA(context.Background(), one, Options{Predictions: f})
	if err != nil {
		t.Fatal(err)
	}
	sameScores(t, "popular", ref, r)
	if r.Errors != 0 {
		t.Errorf("errors %+v", r.ErrorRecords)
	}
	all, _ := LoadPOPE(d, "", "")
	if _, err := RunQA(context.Background(), all, Options{Predictions: f}); err == nil || !strings.Contains(err.Error(), "--split") ||
		!strings.Contains(err.Error(), "4 answers") || !strings.Contains(err.Error(), "12 questions") {
		t.Errorf("one split's answers against three splits: %v", err)
	}
	recs[0], recs[1] = recs[1], recs[0]
	writeJSONLines(t, f, recs)
	one, _ = LoadPOPE(d, "popular", "")
	r, err = RunQA(context.Background(), one, Options{Predictions: f})
	if err != nil {
		t.Fatal(err)
	}
	if r.Errors != 2 || !strings.Contains(r.ErrorRecords[0].Error, "popular_answers.jsonl line 1 is for") ||
		!strings.Contains(r.ErrorRecords[0].Error, "not in the questions' order") {
		t.Errorf("swapped answers: %+v", r.ErrorRecords)
	}
}

// Issue 31, point 3: a predictions file that cannot be scored is an error
// naming the file and the first reasons, not a score of 0; a file with
// some bad records scores the rest and lists the bad ones by line.
func TestQAPredictionsUnreadable(t *testing.T) {
	dir := t.TempDir()
	if err := WriteSyntheticQA(dir, SyntheticQAOptions{Items: 3}); err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	cases := []struct {
		name, bench, content string
		want                 []string // substrings of the error; nil: no error
	}{
		{"empty", "vqav2", "\n\n", []string{"empty.txt", "no records"}},
		{"empty array", "vqav2", "[]", []string{"no records"}},
		{"garbage", "vqav2", "not json\n{also not\n", []string{"garbage.txt", "none of its 2 records", "garbage.txt line 1: malformed JSON line", "line 2"}},
		{"broken array", "textvqa", `[{"question_id": 1, "answer": "x"`, []string{"broken array.txt", "does not parse"}},
		{"array of numbers", "vqav2", "[1, 2, 3, 4]", []string{"none of its 4 records", "entry 0: not a JSON object", "; ..."}},
		{"ours without id", "vqav2", `{"id": "", "answer": "red"}` + "\n" + `{"id": "", "answer": "x"}`, []string{`prediction without "id"`}},
		{"results without answer", "vqav2", `[{"question_id": 10001}]`, []string{`result without "answer"`}},
		{"unknown keys", "pope", `{"foo": 1}`, []string{`no "id"`}},
		{"other split", "vqav2", `[{"question_id": 123, "answer": "red"}, {"question_id": 456, "answer": "blue"}]`,
			[]string{"none of its 2 answers is for a question of vqav2", `"123"`, `"10001"`}},
		{"nextqa file to vqav2", "vqav2", `{"4000000000_1": {"prediction": 0, "answer": 0}}`, []string{"NExT-QA results JSON", "vqav2 does not take", "VQA results JSON"}},
		{"vqa file to pope", "pope", `[{"question_id": 1, "answer": "yes"}]`, []string{"pope does not take"}},
		{"nextqa bad index", "nextqa", `{"4000000000_1": {"prediction": "A"}}`, []string{"not an option index"}},
		{"videomme without response", "videomme", `[{"video_id": "000", "questions": [{"question_id": "000-1"}]}]`, []string{`no "response"`}},
		// partly readable: scored, the bad lines listed
		{"partly", "vqav2", `{"question_id": 10001, "text": "red"}` + "\nnot json\n" + `{"text": "x"}` + "\n", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := filepath.Join(tmp, c.name+".txt")
			if err := os.WriteFile(f, []byte(c.content), 0o644); err != nil {
				t.Fatal(err)
			}
			r, err := RunQA(context.Background(), loadQA(t, dir, c.bench), Options{Predictions: f})
			if c.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				var lines []string
				for _, e := range r.ErrorRecords {
					if e.Index == -1 {
						lines = append(lines, e.Where+": "+e.Error)
					}
				}
				j := strings.Join(lines, "\n")
				if len(lines) != 2 || !strings.Contains(j, "partly.txt line 2: malformed JSON line") || !strings.Contains(j, `partly.txt line 3: answer without "question_id"`) {
					t.Errorf("bad lines: %s", j)
				}
				if r.Metrics["accuracy"] == 0 {
					t.Errorf("the readable answer was not scored: %+v", r)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted: %+v", r)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// Issue 31, point 3: ScreenSpot and Mind2Web take predictions.jsonl only;
// a file none of whose records is one of theirs is an error too.
func TestGroundingPredictionsUnreadable(t *testing.T) {
	dir := t.TempDir()
	if err := WriteSynthetic(dir, SyntheticOptions{Records: 3, Widgets: 3, Seed: 1, Format: FormatScreenSpot}); err != nil {
		t.Fatal(err)
	}
	ds, err := Load(dir, FormatAuto, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m2wDir := t.TempDir()
	writeMind2Web(t, m2wDir)
	m2w, err := LoadMind2Web(m2wDir, "", "")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	for _, c := range []struct{ name, content, want string }{
		{"vqa.json", `[{"question_id": 1, "answer": "red"}]`, "no record can be read"},
		{"llava.jsonl", `{"question_id": 1, "text": "red"}`, `1 records without`},
		{"empty.jsonl", "\n", "no record"},
		{"garbage.jsonl", "nope\nnope\n", "garbage.jsonl line 1: malformed JSON"},
	} {
		f := filepath.Join(tmp, c.name)
		os.WriteFile(f, []byte(c.content), 0o644)
		if _, err := RunScreenSpot(context.Background(), ds, Options{Predictions: f, Failures: -1}); err == nil ||
			!strings.Contains(err.Error(), c.name) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("screenspot %s: %v", c.name, err)
		}
		if _, err := RunMind2Web(context.Background(), m2w, Options{Predictions: f, Failures: -1}); err == nil || !strings.Contains(err.Error(), c.name) {
			t.Errorf("mind2web %s: %v", c.name, err)
		}
	}
}

// Issue 31, point 13: a missing --data folder is an error naming it and
// saying that it does not exist, for every benchmark.
func TestLoadMissingDataDir(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no", "such")
	file := filepath.Join(t.TempDir(), "file.json")
	os.WriteFile(file, []byte("{}"), 0o644)
	loaders := map[string]func(dir string) error{
		"vqav2":      func(d string) error { _, err := LoadVQAv2(d, "", ""); return err },
		"textvqa":    func(d string) error { _, err := LoadTextVQA(d, "", ""); return err },
		"pope":       func(d string) error { _, err := LoadPOPE(d, "", ""); return err },
		"nextqa":     func(d string) error { _, err := LoadNextQA(d, "", "", 0); return err },
		"videomme":   func(d string) error { _, err := LoadVideoMME(d, "", "", 0); return err },
		"aitw":       func(d string) error { _, err := LoadAITW(d, "", ""); return err },
		"screenspot": func(d string) error { _, err := Load(d, FormatAuto, LoadOptions{}); return err },
		"mind2web":   func(d string) error { _, err := LoadMind2Web(d, "", ""); return err },
	}
	for name, load := range loaders {
		err := load(missing)
		if err == nil || !strings.Contains(err.Error(), name+": data folder "+missing+" does not exist") {
			t.Errorf("%s, missing folder: %v", name, err)
		}
		err = load(file)
		if err == nil || !strings.Contains(err.Error(), file+" is not a folder") {
			t.Errorf("%s, a file: %v", name, err)
		}
	}
	// an existing folder without the files names what it looked for
	if _, err := LoadVQAv2(t.TempDir(), "", ""); err == nil || strings.Contains(err.Error(), "()") || !strings.Contains(err.Error(), "no *questions*.json file in") {
		t.Errorf("empty folder: %v", err)
	}
}
