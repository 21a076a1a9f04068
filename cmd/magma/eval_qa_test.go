package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/magma-go/magma/llm/tokenizer"
)

// Every QA benchmark end to end with a random tiny checkpoint on the
// synthetic published-layout fixtures (with bad records): the run
// completes, reports every bad record with its file and line, and the
// predictions it wrote re-score to a byte-identical results.json.
func TestEvalQATinyEndToEnd(t *testing.T) {
	if _, err := tokenizer.Locate("magma"); err != nil {
		t.Skipf("no tokenizer (run `bash scripts/fetch-tokenizer.sh`): %v", err)
	}
	tmp := t.TempDir()
	ckpt, data := filepath.Join(tmp, "tiny"), filepath.Join(tmp, "data")
	if o, err := runMagma(t, "init", "--preset", "tiny", "--out", ckpt); err != nil {
		t.Fatalf("%v\n%s", err, o)
	}
	if o, err := runMagma(t, "eval", "synthetic-qa", "--out", data, "--items", "3", "--bad"); err != nil {
		t.Fatalf("%v\n%s", err, o)
	}
	bad := map[string]string{
		"vqav2":    "has no annotation",
		"textvqa":  "question without question_id",
		"pope":     "coco_pope_random.json line 2: malformed JSON line",
		"nextqa":   "val.csv line 5: answer \"7\" is not an option index",
		"videomme": "video:",
		"aitw":     "unknown action_type_id 2",
	}
	for _, name := range []string{"vqav2", "textvqa", "pope", "nextqa", "videomme", "aitw"} {
		t.Run(name, func(t *testing.T) {
			out, out2 := filepath.Join(tmp, "out-"+name), filepath.Join(tmp, "re-"+name)
			args := []string{"eval", name, "--model", ckpt, "--data", filepath.Join(data, name), "--out", out,
				"--max-new-tokens", "4", "--progress-every", "2"}
			if name == "nextqa" || name == "videomme" {
				args = append(args, "--frames", "2")
			}
			o, err := runMagma(t, args...)
			if err != nil {
				t.Fatalf("%v\n%s", err, o)
			}
			if !strings.Contains(o, name+" [2/") || !strings.Contains(o, "records/s") {
				t.Errorf("no progress or timing:\n%s", o)
			}
			if bad[name] != "" && !strings.Contains(o, bad[name]) {
				t.Errorf("bad record %q not reported:\n%s", bad[name], o)
			}
			var res struct {
				Total  int                           `json:"total"`
				Errors int                           `json:"errors"`
				Tables map[string]map[string]float64 `json:"tables"`
			}
			j1, err := os.ReadFile(filepath.Join(out, "results.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(j1, &res); err != nil || res.Total == 0 {
				t.Fatalf("results.json: %v\n%s", err, j1)
			}
			if name != "textvqa" && len(res.Tables) == 0 {
				t.Errorf("no per-category table: %s", j1)
			}
			if o, err := runMagma(t, "eval", name, "--data", filepath.Join(data, name), "--predictions", filepath.Join(out, "predictions.jsonl"), "--out", out2); err != nil {
				t.Fatalf("%v\n%s", err, o)
			}
			j2, _ := os.ReadFile(filepath.Join(out2, "results.json"))
			if !bytes.Equal(j1, j2) {
				t.Errorf("--predictions results.json differs:\n%s\n---\n%s", j1, j2)
			}
		})
	}
	// unknown split and missing data are errors (non-zero exit)
	if _, err := runMagma(t, "eval", "pope", "--data", filepath.Join(data, "pope"), "--split", "hard", "--predictions", "x"); err == nil || !strings.Contains(err.Error(), "unknown split") {
		t.Errorf("unknown split: %v", err)
	}
	if _, err := runMagma(t, "eval", "vqav2", "--data", filepath.Join(tmp, "nowhere"), "--predictions", "x"); err == nil {
		t.Error("missing data folder accepted")
	}
}

// `magma generate --video FILE --frames N` passes N uniformly sampled
// frames as images: the prompt has N image blocks.
func TestGenerateVideo(t *testing.T) {
	if _, err := tokenizer.Locate("magma"); err != nil {
		t.Skipf("no tokenizer: %v", err)
	}
	tmp := t.TempDir()
	ckpt, data := filepath.Join(tmp, "tiny"), filepath.Join(tmp, "data")
	if o, err := runMagma(t, "init", "--preset", "tiny", "--out", ckpt); err != nil {
		t.Fatalf("%v\n%s", err, o)
	}
	if o, err := runMagma(t, "eval", "synthetic-qa", "--out", data, "--items", "1"); err != nil {
		t.Fatalf("%v\n%s", err, o)
	}
	clip := filepath.Join(data, "videomme", "data", "vid000.avi")
	lengths := map[int]int{}
	for _, n := range []int{1, 3} {
		o, err := runMagma(t, "generate", "--model", ckpt, "--video", clip, "--frames", fmt.Sprint(n), "--prompt", "What happens?", "--max-new-tokens", "2", "--json")
		if err != nil {
			t.Fatalf("%v\n%s", err, o)
		}
		var r struct {
			PromptIDs []int `json:"prompt_ids"`
		}
		if err := json.Unmarshal([]byte(o[strings.Index(o, "{"):]), &r); err != nil {
			t.Fatalf("%v\n%s", err, o)
		}
		lengths[n] = len(r.PromptIDs)
	}
	// each frame adds <image_start><image><image_end>\n
	if d := lengths[3] - lengths[1]; d <= 0 || d%2 != 0 {
		t.Errorf("prompt lengths %v", lengths)
	}
	if _, err := runMagma(t, "generate", "--model", ckpt, "--video", filepath.Join(tmp, "none.mp4"), "--prompt", "x"); err == nil {
		t.Error("missing video accepted")
	}
}

// Issue 31, point 3 and 13 on the command line (no model needed): VQAv2's
// official results file scores exactly like the equivalent
// predictions.jsonl; a file nothing of which can be read, and a missing
// --data folder, are errors (non-zero exit) that name the file or folder;
// synthetic-qa --bad gives TextVQA bad records too.
func TestEvalQAOfficialPredictions(t *testing.T) {
	tmp := t.TempDir()
	data := filepath.Join(tmp, "data")
	if o, err := runMagma(t, "eval", "synthetic-qa", "--out", data, "--items", "3", "--bad"); err != nil {
		t.Fatalf("%v\n%s", err, o)
	}
	// the fixture's question ids are (1000+i)*10+1; 999001 and 7771 are
	// its bad records
	answers := map[int]string{10001: "Red.", 10011: "Yes", 10021: "one", 7771: "gone"}
	var ours []string
	var official []map[string]any
	for _, id := range []int{10001, 10011, 10021, 7771} {
		b, _ := json.Marshal(map[string]any{"id": fmt.Sprint(id), "answer": answers[id]})
		ours = append(ours, string(b))
		official = append(official, map[string]any{"question_id": id, "answer": answers[id]})
	}
	oursPath, offPath := filepath.Join(tmp, "predictions.jsonl"), filepath.Join(tmp, "vqav2_val2014_results.json")
	os.WriteFile(oursPath, []byte(strings.Join(ours, "\n")+"\n"), 0o644)
	ob, _ := json.MarshalIndent(official, "", " ")
	os.WriteFile(offPath, ob, 0o644)
	var results [][]byte
	for i, p := range []string{oursPath, offPath} {
		out := filepath.Join(tmp, fmt.Sprint("out", i))
		o, err := runMagma(t, "eval", "vqav2", "--data", filepath.Join(data, "vqav2"), "--predictions", p, "--out", out)
		if err != nil {
			t.Fatalf("%s: %v\n%s", p, err, o)
		}
		if !strings.Contains(o, "results_official.json") {
			t.Errorf("official results file not announced:\n%s", o)
		}
		j, _ := os.ReadFile(filepath.Join(out, "results.json"))
		results = append(results, j)
	}
	if !bytes.Contains(results[0], []byte(`"accuracy": 0.`)) || !bytes.Equal(results[0], results[1]) {
		t.Errorf("official results file scores differently:\n%s\n---\n%s", results[0], results[1])
	}
	// the results_official.json a run writes is in the official format
	var written []struct {
		QuestionID *int    `json:"question_id"`
		Answer     *string `json:"answer"`
	}
	wb, _ := os.ReadFile(filepath.Join(tmp, "out0", "results_official.json"))
	if err := json.Unmarshal(wb, &written); err != nil || len(written) != 4 || written[0].QuestionID == nil || *written[0].QuestionID != 10001 || *written[0].Answer != "red" {
		t.Errorf("results_official.json: %v\n%s", err, wb)
	}
	// nothing readable: an error naming the file and the reasons
	bad := filepath.Join(tmp, "bad.jsonl")
	os.WriteFile(bad, []byte("oops\n{\"foo\": 1}\n"), 0o644)
	if o, err := runMagma(t, "eval", "textvqa", "--data", filepath.Join(data, "textvqa"), "--predictions", bad); err == nil ||
		!strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "bad.jsonl line 1: malformed JSON line") {
		t.Errorf("unreadable predictions: %v\n%s", err, o)
	}
	// synthetic-qa --bad: TextVQA has bad records
	o, err := runMagma(t, "eval", "textvqa", "--data", filepath.Join(data, "textvqa"), "--predictions", oursPath)
	if err == nil || !strings.Contains(err.Error(), "none of its 4 answers") {
		t.Errorf("vqav2 predictions to textvqa: %v\n%s", err, o)
	}
	tv := filepath.Join(tmp, "tv.jsonl")
	os.WriteFile(tv, []byte(`{"id": "34602", "answer": "red"}`+"\n"), 0o644)
	o, err = runMagma(t, "eval", "textvqa", "--data", filepath.Join(data, "textvqa"), "--predictions", tv)
	if err != nil || !strings.Contains(o, "TextVQA_0.5.1_val.json item 4: question without question_id") || !strings.Contains(o, "textvqa: 5 items, 4 errors") {
		t.Errorf("textvqa --bad records: %v\n%s", err, o)
	}
	// a missing --data folder, for every benchmark
	nowhere := filepath.Join(tmp, "nowhere")
	for _, name := range []string{"vqav2", "textvqa", "pope", "nextqa", "videomme", "aitw", "screenspot", "mind2web"} {
		o, err := runMagma(t, "eval", name, "--data", nowhere, "--predictions", oursPath)
		if err == nil || !strings.Contains(err.Error(), "data folder "+nowhere+" does not exist") {
			t.Errorf("%s with a missing --data: %v\n%s", name, err, o)
		}
	}
}
