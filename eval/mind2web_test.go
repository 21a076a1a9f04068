package eval

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/magma-go/magma/model"
	"github.com/magma-go/magma/model/action"
	"github.com/magma-go/magma/som"
)

func TestTokenF1(t *testing.T) {
	cases := []struct {
		p, r string
		f1   float64
	}{
		{"CLICK", "CLICK", 1},
		{"TYPE new york city", "TYPE new york", 2 * 0.75 * 1 / 1.75},
		{"TYPE New York", "type new york", 1},
		{"TYPE hello", "CLICK", 0},
		{"", "", 1},
		{"", "CLICK", 0},
		{"SELECT 2 2 adults", "SELECT 2 adults", 1}, // token sets
	}
	for _, c := range cases {
		if got := TokenF1(c.p, c.r); math.Abs(got-c.f1) > 1e-12 {
			t.Errorf("F1(%q,%q) = %v, want %v", c.p, c.r, got, c.f1)
		}
	}
	if ActionString("type", " abc ") != "TYPE abc" || ActionString("CLICK", "ignored") != "CLICK" {
		t.Error("ActionString")
	}
}

func TestParseWebAction(t *testing.T) {
	cases := []struct {
		text, op, value string
		mark            int
		point           bool
	}{
		{`{"action_type": 4, "click_point": (0.49,0.31)}`, "CLICK", "", -1, true},
		{`{"action_type": 3, "click_point": (0.5,0.5), "value": "new \"york\""}`, "TYPE", `new "york"`, -1, true},
		{`{"action_type": 2, "click_point": (0.5,0.5), "typed_text": "2 adults"}`, "SELECT", "2 adults", -1, true},
		{`CLICK Mark: 3`, "CLICK", "", 3, false},
		{`TYPE "new york" [12,40] Mark: 5`, "TYPE", "new york", 5, true},
		{`type: hello world Mark 2`, "TYPE", "hello world", 2, false},
		{`SELECT 'Economy' (0.2,0.3)`, "SELECT", "Economy", -1, true},
		{`hover over Mark: 1`, "CLICK", "", 1, false},
		{`no idea`, "", "", -1, false},
	}
	for _, c := range cases {
		a := ParseWebAction(c.text, 100, 100, action.ParseOptions{})
		if a.Op != c.op || a.Value != c.value || a.HasPoint != c.point || (c.mark >= 0) != a.HasMark || (a.HasMark && a.Mark != c.mark) {
			t.Errorf("%q: %+v", c.text, a)
		}
	}
}

type funcGen func(req model.Request) string

func (f funcGen) Generate(ctx context.Context, req model.Request) (*model.Result, error) {
	return &model.Result{Text: f(req)}, nil
}

// writeMind2Web writes the SeeClick layout: split "task" with two episodes
// (3 and 2 steps) and split "website" with one step whose image is missing.
func writeMind2Web(t *testing.T, dir string) {
	t.Helper()
	act := func(uid, op, value string) map[string]any {
		return map[string]any{"action_uid": uid, "operation": map[string]any{"op": op, "original_op": op, "value": value},
			"bbox": map[string]any{"x": 20, "y": 40, "width": 40, "height": 30}}
	}
	task := []any{
		map[string]any{"annotation_id": "ep0", "confirmed_task": "book a flight", "website": "w", "domain": "Travel",
			"actions": []any{act("a", "CLICK", ""), act("b", "TYPE", "new york"), act("c", "SELECT", "2 adults")}},
		map[string]any{"annotation_id": "ep1", "confirmed_task": "find shoes", "website": "w", "domain": "Shopping",
			"actions": []any{act("d", "HOVER", ""), act("e", "CLICK", "")}},
	}
	writeJSON(t, filepath.Join(dir, "mind2web_data_test_task.json"), task)
	writeJSON(t, filepath.Join(dir, "mind2web_data_test_website.json"), []any{
		map[string]any{"annotation_id": "ep2", "confirmed_task": "read news", "actions": []any{act("f", "CLICK", "")}}})
	for _, n := range []string{"ep0-a", "ep0-b", "ep0-c", "ep1-d", "ep1-e"} {
		writeScreenshot(t, filepath.Join(dir, "mind2web_images", n+".jpg"), fixW, fixH,
			[]widget{{20, 40, 60, 70, red}, {100, 10, 150, 30, blue}})
	}
}

func m2wProposals() Proposals {
	p := Proposals{}
	for _, n := range []string{"ep0-a", "ep0-b", "ep0-c", "ep1-d", "ep1-e", "ep2-f"} {
		p[n+".jpg"] = []som.Box{{X1: 20, Y1: 40, X2: 60, Y2: 70}, {X1: 100, Y1: 10, X2: 150, Y2: 30}}
	}
	return p
}

var m2wAnswers = map[string]string{
	Mind2WebPrompt("book a flight", nil):                                "CLICK Mark: 1",
	Mind2WebPrompt("book a flight", []string{"CLICK"}):                  `{"action_type": 3, "click_point": (0.2,0.45), "value": "New York City"}`,
	Mind2WebPrompt("book a flight", []string{"CLICK", "TYPE new york"}): `SELECT "2 adults" (0.9,0.9)`,
	Mind2WebPrompt("find shoes", nil):                                   "CLICK [51,117]",
	Mind2WebPrompt("find shoes", []string{"CLICK"}):                     "TYPE hello Mark: 1",
	Mind2WebPrompt("read news", nil):                                    "CLICK Mark: 1",
}

func TestMind2WebMetrics(t *testing.T) {
	dir := t.TempDir()
	writeMind2Web(t, dir)
	d, err := LoadMind2Web(dir, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Steps) != 6 || d.Steps[3].Op != "CLICK" || d.Steps[3].OriginalOp != "HOVER" || d.Steps[1].Value != "new york" ||
		d.Steps[2].Box != (som.Box{X1: 20, Y1: 40, X2: 60, Y2: 70}) || fmt.Sprint(d.Steps[2].Previous) != "[CLICK TYPE new york]" {
		t.Fatalf("steps: %+v", d.Steps)
	}
	gen := funcGen(func(req model.Request) string {
		a, ok := m2wAnswers[req.Prompt]
		if !ok {
			t.Errorf("unexpected prompt %q", req.Prompt)
		}
		return a
	})
	out := filepath.Join(t.TempDir(), "m2w")
	res, err := RunMind2Web(context.Background(), d, Options{Model: gen, Proposals: m2wProposals(), OutDir: out})
	if err != nil {
		t.Fatal(err)
	}
	m := res.Splits["task"]
	f1 := 2 * 0.75 / 1.75 // "TYPE new york city" vs "TYPE new york"
	want := SplitMetrics{
		EleAcc: (2.0/3 + 1) / 2, OpF1: ((1+f1+1)/3 + 0.5) / 2, StepSR: (1.0/3 + 0.5) / 2,
		MicroEleAcc: 0.8, MicroOpF1: (3 + f1) / 5, MicroStepSR: 0.4, EpisodeSR: 0, Steps: 5, Episodes: 2,
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-12 }
	if !near(m.EleAcc, want.EleAcc) || !near(m.OpF1, want.OpF1) || !near(m.StepSR, want.StepSR) ||
		!near(m.MicroEleAcc, want.MicroEleAcc) || !near(m.MicroOpF1, want.MicroOpF1) || !near(m.MicroStepSR, want.MicroStepSR) ||
		m.EpisodeSR != 0 || m.Steps != 5 || m.Episodes != 2 || m.Errors != 0 {
		t.Errorf("task split %+v\nwant %+v", m, want)
	}
	if !near(m.OpF1ByOp["CLICK"], (1+1+0)/3.0) || !near(m.OpF1ByOp["TYPE"], f1) || m.OpF1ByOp["SELECT"] != 1 {
		t.Errorf("op F1 by op %v", m.OpF1ByOp)
	}
	if !near(m.OpF1OpMean, (2.0/3+f1+1)/3) {
		t.Errorf("op F1 op mean %v", m.OpF1OpMean)
	}
	w := res.Splits["website"]
	if w.Steps != 1 || w.Errors != 1 || w.EleAcc != 0 || res.Errors != 1 || !strings.Contains(res.ErrorRecords[0].Error, "ep2-f.jpg not found") {
		t.Errorf("website split %+v, errors %+v", w, res.ErrorRecords)
	}
	var table strings.Builder
	res.WriteTable(&table)
	if !strings.Contains(table.String(), "cross-task") || !strings.Contains(table.String(), "83.3") {
		t.Errorf("table:\n%s", table.String())
	}

	// the predictions file scores identically
	res2, err := RunMind2Web(context.Background(), d, Options{Predictions: filepath.Join(out, "predictions.jsonl")})
	if err != nil {
		t.Fatal(err)
	}
	j1, _ := json.Marshal(res.Splits)
	j2, _ := json.Marshal(res2.Splits)
	if string(j1) != string(j2) || res2.Errors != 1 {
		t.Errorf("predictions scoring:\n%s\n%s", j1, j2)
	}
}

func TestMind2WebBadInput(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "mind2web_data_test_domain.json"), []byte(`[
 {"annotation_id": "x", "confirmed_task": "t", "actions": [
   {"action_uid": "1", "operation": {"original_op": "SCROLL", "value": ""}, "bbox": {"x": 1, "y": 1, "width": 5, "height": 5}},
   {"action_uid": "2", "operation": {"original_op": "CLICK", "value": ""}},
   {"action_uid": "3", "operation": {"original_op": "CLICK", "value": ""}, "bbox": {"x": 500, "y": 1, "width": 5, "height": 5}}]},
 {"annotation_id": 7, "actions": []}
]`), 0o644)
	writeScreenshot(t, filepath.Join(dir, "images", "x-3.jpg"), fixW, fixH, nil)
	d, err := LoadMind2Web(dir, "domain", "")
	if err != nil {
		t.Fatal(err)
	}
	res, err := RunMind2Web(context.Background(), d, Options{Model: funcGen(func(model.Request) string { return "CLICK Mark: 1" })})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`original_op "SCROLL"`, "no bbox", "outside the 200x120 image", "malformed episode"}
	if res.Errors != 4 || len(res.ErrorRecords) != 4 {
		t.Fatalf("errors %+v", res.ErrorRecords)
	}
	for i, e := range res.ErrorRecords {
		if e.Index != i || !strings.Contains(e.Error, want[i]) {
			t.Errorf("error %d: %+v, want %q", i, e, want[i])
		}
	}
	if _, err := LoadMind2Web(dir, "train", ""); err == nil {
		t.Error("split train accepted")
	}
	if _, err := LoadMind2Web(t.TempDir(), "", ""); err == nil {
		t.Error("empty dir accepted")
	}
}
