package eval

import (
	"bufio"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/magma-go/magma/som"
)

func TestBoxConversion(t *testing.T) {
	b, err := BoxFromXYWH([]float64{10, 20, 30, 40})
	if err != nil || b != (som.Box{X1: 10, Y1: 20, X2: 40, Y2: 60}) {
		t.Fatalf("xywh: %v %v", b, err)
	}
	b, err = BoxFromXYXY([]float64{10, 20, 30, 40})
	if err != nil || b != (som.Box{X1: 10, Y1: 20, X2: 30, Y2: 40}) {
		t.Fatalf("xyxy: %v %v", b, err)
	}
	for _, bad := range [][]float64{{1, 2, 3}, {0, 0, 0, 5}, {0, 0, 5, -1}, {math.NaN(), 0, 1, 1}} {
		if _, err := BoxFromXYWH(bad); err == nil {
			t.Errorf("xywh %v accepted", bad)
		}
	}
	for _, bad := range [][]float64{{1, 2, 3}, {5, 0, 5, 5}, {0, 9, 5, 3}, {0, 0, math.Inf(1), 1}} {
		if _, err := BoxFromXYXY(bad); err == nil {
			t.Errorf("xyxy %v accepted", bad)
		}
	}
	if err := CheckBox(som.Box{X1: 190, Y1: 100, X2: 230, Y2: 140}, 200, 120); err != nil {
		t.Errorf("box partly inside rejected: %v", err)
	}
	for _, b := range []som.Box{{X1: 200, Y1: 0, X2: 220, Y2: 10}, {X1: -30, Y1: 0, X2: 0, Y2: 10}, {X1: 0, Y1: 120, X2: 5, Y2: 130}} {
		if err := CheckBox(b, 200, 120); err == nil {
			t.Errorf("box %v outside the image accepted", b)
		}
	}
}

func TestPointInBoxEdges(t *testing.T) {
	b, _ := BoxFromXYWH([]float64{10, 20, 30, 40}) // x 10..40, y 20..60
	in := []som.Point{pt(10, 20), pt(40, 60), pt(10, 60), pt(40, 20), pt(25, 40), pt(10, 40), pt(40, 40), pt(25, 20), pt(25, 60)}
	out := []som.Point{pt(9.999, 40), pt(40.001, 40), pt(25, 19.999), pt(25, 60.001), pt(0, 0)}
	for _, p := range in {
		if !b.Contains(p) {
			t.Errorf("%v not in %v (edges are inclusive)", p, b)
		}
	}
	for _, p := range out {
		if b.Contains(p) {
			t.Errorf("%v in %v", p, b)
		}
	}
}

func TestLoadLayouts(t *testing.T) {
	items := fixtureItems()
	v1 := t.TempDir()
	writeScreenSpot(t, v1, "", "screenspot_imgs", items)
	v2 := t.TempDir()
	writeScreenSpot(t, v2, "_v2", "screenspotv2_image", items)
	pro := t.TempDir()
	writePro(t, pro)

	for _, c := range []struct {
		dir    string
		format Format
		n      int
	}{{v1, FormatScreenSpot, 13}, {v2, FormatV2, 13}, {pro, FormatPro, 4}} {
		f, err := DetectFormat(c.dir)
		if err != nil || f != c.format {
			t.Fatalf("%s: detected %q %v, want %q", c.dir, f, err, c.format)
		}
		for _, given := range []Format{FormatAuto, c.format} {
			ds, err := Load(c.dir, given, LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if ds.Format != c.format || len(ds.Records) != c.n {
				t.Fatalf("%s as %s: format %s, %d records", c.dir, given, ds.Format, len(ds.Records))
			}
			for i := range ds.Records {
				r := &ds.Records[i]
				if r.Err != nil {
					t.Fatalf("%s: %v", r.Where(), r.Err)
				}
				if _, err := ds.ImagePath(r); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	ds, _ := Load(v1, FormatAuto, LoadOptions{})
	r := ds.Records[0] // mobile text 0: bbox [20,40,40,30] -> 20,40,60,70
	if r.Cell() != "mobile/text" || r.Box != (som.Box{X1: 20, Y1: 40, X2: 60, Y2: 70}) || r.Instruction != "mobile text 0" {
		t.Errorf("screenspot record: %+v", r)
	}
	ds, _ = Load(pro, FormatAuto, LoadOptions{})
	r = ds.Records[2] // vscode (files sorted): photoshop first
	if r.Group != "Dev" || r.Cell() != "Dev/text" || r.Platform != "windows" || r.ImgSize != [2]int{200, 120} ||
		r.Box != (som.Box{X1: 30, Y1: 30, X2: 70, Y2: 60}) {
		t.Errorf("pro record: %+v", r)
	}
	ds, _ = Load(v2, FormatAuto, LoadOptions{Split: "web"})
	if len(ds.Records) != 4 || ds.Records[0].Platform != "web" || ds.Records[0].Index != 0 {
		t.Errorf("split web: %d records", len(ds.Records))
	}
	ds, _ = Load(pro, FormatAuto, LoadOptions{Split: "macos"})
	if len(ds.Records) != 2 {
		t.Errorf("pro split macos: %d records", len(ds.Records))
	}
	// a v1 directory read as v2 has no files
	if _, err := Load(v1, FormatV2, LoadOptions{}); err == nil {
		t.Error("v1 data loaded as v2")
	}
}

// sixCellAnswers: 1/2, 1/1, 1/4, 0/2, 1/1, 2/3 correct, one answer form each.
var sixCellAnswers = map[string]string{
	"mobile text 0":  "(0.2, 0.45)",                    // centre of 20..60 x 40..70: correct
	"mobile text 1":  "(0.95, 0.95)",                   // wrong
	"mobile icon 0":  "[51,117]",                       // 256 grid of (40,55): correct
	"desktop text 0": " Mark: 1",                       // mark 1 = target: correct
	"desktop text 1": "Mark 2",                         // the other widget: wrong
	"desktop text 2": "hello",                          // unparsable
	"desktop text 3": "Mark: 9",                        // not drawn: unparsable
	"desktop icon 0": "<box>900,900,950,950</box>",     // wrong
	"desktop icon 1": "[0.0,0.0]",                      // wrong
	"web text 0":     "<box>(100,333),(300,500)</box>", // 0-1000, centre (40,50): correct
	"web icon 0":     "Mark 1",                         // correct
	"web icon 1":     "[0.25,0.45]",                    // x = 50, the target's left edge: correct
	"web icon 2":     "(0.1,0.1)",                      // wrong
}

func fixtureProposals(items []item) Proposals {
	p := Proposals{}
	for i, it := range items {
		name := it.platform + "_" + pad2(i) + ".png"
		b := it.target
		p[name] = []som.Box{{X1: float64(b.X1), Y1: float64(b.Y1), X2: float64(b.X2), Y2: float64(b.Y2)}, {X1: 5, Y1: 5, X2: 60, Y2: 25}}
	}
	return p
}

func pad2(i int) string { return string(rune('0'+i/10)) + string(rune('0'+i%10)) }

func TestSixCellTable(t *testing.T) {
	items := fixtureItems()
	dir := t.TempDir()
	writeScreenSpot(t, dir, "", "screenspot_imgs", items)
	ds, err := Load(dir, FormatAuto, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	gen := &scripted{answers: sixCellAnswers}
	out := filepath.Join(t.TempDir(), "report")
	var progress strings.Builder
	res, err := RunScreenSpot(context.Background(), ds, Options{Model: gen, Proposals: fixtureProposals(items),
		OutDir: out, Progress: &progress, ProgressEvery: 5})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"mobile/text": 0.5, "mobile/icon": 1, "desktop/text": 0.25, "desktop/icon": 0, "web/text": 1, "web/icon": 2.0 / 3}
	for k, v := range want {
		if got, ok := res.Cells[k]; !ok || math.Abs(got-v) > 1e-12 {
			t.Errorf("cell %s = %v, want %v", k, got, v)
		}
	}
	if len(res.Cells) != 6 {
		t.Errorf("cells %v", res.Cells)
	}
	// (0.5 + 1 + 0.25 + 0 + 1 + 2/3) / 6, by hand
	if math.Abs(res.Average-(0.5+1+0.25+0+1+2.0/3)/6) > 1e-12 || math.Abs(res.Average-0.5694444444444444) > 1e-12 {
		t.Errorf("average %v", res.Average)
	}
	if res.Total != 13 || res.Correct != 6 || res.Errors != 0 || res.Unparsed != 2 || math.Abs(res.Overall-6.0/13) > 1e-12 {
		t.Errorf("counts: total %d correct %d errors %d unparsed %d overall %v", res.Total, res.Correct, res.Errors, res.Unparsed, res.Overall)
	}
	if c := res.Counts["desktop/text"]; c != (CellCount{Total: 4, Correct: 1, Unparsed: 2}) {
		t.Errorf("desktop/text counts %+v", c)
	}
	if len(gen.prompts) != 13 || gen.prompts[0] != promptFor("mobile text 0") {
		t.Errorf("prompts: %d, first %q", len(gen.prompts), gen.prompts[0])
	}
	if n := strings.Count(progress.String(), "\n"); n != 3 { // 5, 10, 13
		t.Errorf("progress lines %d:\n%s", n, progress.String())
	}
	// results.json holds the same numbers as fractions
	var rj struct {
		Cells   map[string]float64   `json:"cells"`
		Average float64              `json:"average"`
		Counts  map[string]CellCount `json:"counts"`
	}
	data, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &rj); err != nil {
		t.Fatal(err)
	}
	if rj.Average != res.Average || rj.Cells["web/icon"] != 2.0/3 || rj.Counts["web/icon"].Total != 3 {
		t.Errorf("results.json: %s", data)
	}
	preds := readLines(t, filepath.Join(out, "predictions.jsonl"))
	if len(preds) != 13 {
		t.Fatalf("%d prediction lines", len(preds))
	}
	if p := preds[3]; p.PointSource != "mark" || p.Mark == nil || *p.Mark != 1 || !p.Correct || p.Answer != " Mark: 1" {
		t.Errorf("prediction 3: %+v", p)
	}
	pngs, _ := filepath.Glob(filepath.Join(out, "failures", "*.png"))
	if len(pngs) != 7 {
		t.Errorf("%d failure PNGs, want 7", len(pngs))
	}
}

func readLines(t *testing.T, path string) []Prediction {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []Prediction
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var p Prediction
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// A predictions file written by a model run scores identically, and raw
// answers (with a marks map) are parsed as the model's would be.
func TestPredictionsScoredIdentically(t *testing.T) {
	items := fixtureItems()
	dir := t.TempDir()
	writeScreenSpot(t, dir, "_v2", "screenspotv2_image", items)
	// one bad record so errors go through the round trip too
	os.Remove(filepath.Join(dir, "screenspotv2_image", "web_12.png"))
	ds, err := Load(dir, FormatAuto, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out1 := filepath.Join(t.TempDir(), "model")
	r1, err := RunScreenSpot(context.Background(), ds, Options{Model: &scripted{answers: sixCellAnswers},
		Proposals: fixtureProposals(items), OutDir: out1, Failures: -1})
	if err != nil {
		t.Fatal(err)
	}
	out2 := filepath.Join(t.TempDir(), "scored")
	r2, err := RunScreenSpot(context.Background(), ds, Options{Predictions: filepath.Join(out1, "predictions.jsonl"), OutDir: out2, Failures: -1})
	if err != nil {
		t.Fatal(err)
	}
	if r1.Errors != 1 || r1.Total != 13 {
		t.Fatalf("model run: %d errors of %d", r1.Errors, r1.Total)
	}
	same := func(a, b *Results) bool {
		ja, _ := json.Marshal(map[string]any{"c": a.Cells, "n": a.Counts, "a": a.Average, "o": a.Overall, "e": a.Errors, "t": a.Total})
		jb, _ := json.Marshal(map[string]any{"c": b.Cells, "n": b.Counts, "a": b.Average, "o": b.Overall, "e": b.Errors, "t": b.Total})
		return string(ja) == string(jb)
	}
	if !same(r1, r2) {
		t.Fatalf("model run %+v\nscored %+v", r1, r2)
	}
	p1 := readLines(t, filepath.Join(out1, "predictions.jsonl"))
	p2 := readLines(t, filepath.Join(out2, "predictions.jsonl"))
	for i := range p1 {
		if p1[i].Correct != p2[i].Correct || (p1[i].Error == "") != (p2[i].Error == "") {
			t.Errorf("line %d: %+v vs %+v", i, p1[i], p2[i])
		}
	}

	// answers instead of points: the raw model text with its marks
	var lines []string
	for i, it := range items {
		m := map[string]any{"img_filename": it.platform + "_" + pad2(i) + ".png", "instruction": it.instruction,
			"answer": sixCellAnswers[it.instruction],
			"marks":  map[string][]int{"1": {it.target.X1, it.target.Y1, it.target.X2, it.target.Y2}, "2": {5, 5, 60, 25}}}
		b, _ := json.Marshal(m)
		lines = append(lines, string(b))
	}
	ans := filepath.Join(t.TempDir(), "answers.jsonl")
	os.WriteFile(ans, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	r3, err := RunScreenSpot(context.Background(), ds, Options{Predictions: ans, Failures: -1})
	if err != nil {
		t.Fatal(err)
	}
	if !same(r1, r3) {
		t.Fatalf("model run %+v\nanswers %+v", r1, r3)
	}
}

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "screenspot_imgs")
	writeScreenshot(t, filepath.Join(img, "ok.png"), fixW, fixH, []widget{{20, 40, 60, 70, red}})
	writeScreenshot(t, filepath.Join(img, "ok2.png"), fixW, fixH, []widget{{20, 40, 60, 70, red}})
	rec := func(name string, bbox []int, typ string) map[string]any {
		return map[string]any{"img_filename": name, "instruction": "press " + name, "bbox": bbox, "data_type": typ, "data_source": "x"}
	}
	writeJSON(t, filepath.Join(dir, "screenspot_mobile.json"), []any{
		rec("ok.png", []int{20, 40, 40, 30}, "text"),      // 0 fine
		rec("missing.png", []int{20, 40, 40, 30}, "text"), // 1 missing image
		rec("ok.png", []int{500, 40, 40, 30}, "icon"),     // 2 box outside the image
		rec("ok.png", []int{20, 40, 40, 30}, "button"),    // 3 unknown element type
		rec("ok.png", []int{20, 40}, "icon"),              // 4 bbox with 2 numbers
	})
	// a JSON-lines file with a malformed line in the middle
	good, _ := json.Marshal(rec("ok2.png", []int{20, 40, 40, 30}, "icon"))
	os.WriteFile(filepath.Join(dir, "screenspot_web.json"), []byte(string(good)+"\n{\"img_filename\": \"ok2.png\", \"bbox\": [1,2\n"+string(good)+"\n"), 0o644)

	ds, err := Load(dir, FormatAuto, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Records) != 8 {
		t.Fatalf("%d records", len(ds.Records))
	}
	ans := map[string]string{"press ok.png": "(0.2,0.45)", "press ok2.png": "(0.2,0.45)"}
	out := t.TempDir()
	res, err := RunScreenSpot(context.Background(), ds, Options{Model: &scripted{answers: ans}, OutDir: out})
	if err != nil {
		t.Fatal(err)
	}
	wantErr := map[int]string{1: "missing.png not found", 2: "outside the 200x120 image", 3: `element type "button"`,
		4: "bbox has 2 numbers", 6: "malformed JSON line"}
	if res.Errors != len(wantErr) || len(res.ErrorRecords) != len(wantErr) {
		t.Fatalf("errors %d: %+v", res.Errors, res.ErrorRecords)
	}
	for _, e := range res.ErrorRecords {
		w, ok := wantErr[e.Index]
		if !ok || !strings.Contains(e.Error, w) || !strings.Contains(e.Where, "record "+string(rune('0'+e.Index))) {
			t.Errorf("error record %+v, want %q", e, w)
		}
	}
	// the good records were evaluated (0, 5 and 7 correct); cells count
	// errors with a known cell as wrong
	if res.Correct != 3 || res.Total != 8 || res.Counts["mobile/text"] != (CellCount{Total: 2, Correct: 1, Errors: 1}) ||
		res.Counts["web/icon"] != (CellCount{Total: 2, Correct: 2}) {
		t.Errorf("correct %d total %d counts %+v", res.Correct, res.Total, res.Counts)
	}
	// the failure PNG of the box-outside record is drawn (the image exists)
	if _, err := os.Stat(filepath.Join(out, "failures", "00002_mobile_icon.png")); err != nil {
		t.Error(err)
	}

	// malformed prediction lines are reported with their line number
	preds := filepath.Join(t.TempDir(), "p.jsonl")
	os.WriteFile(preds, []byte(`{"img_filename":"ok.png","instruction":"press ok.png","point":[30,50]}
not json
{"img_filename":"ok2.png","instruction":"press ok2.png","point":[1]}
`), 0o644)
	res, err = RunScreenSpot(context.Background(), ds, Options{Predictions: preds})
	if err != nil {
		t.Fatal(err)
	}
	var sawLine, sawPoint, sawMissing bool
	for _, e := range res.ErrorRecords {
		sawLine = sawLine || (e.Index == -1 && strings.Contains(e.Where, "p.jsonl line 2"))
		sawPoint = sawPoint || (e.Index == 5 && strings.Contains(e.Error, "point has 1 numbers"))
		sawMissing = sawMissing || (e.Index == 7 && strings.Contains(e.Error, "no prediction"))
	}
	if !sawLine || !sawPoint || !sawMissing || res.Correct != 1 {
		t.Errorf("predictions errors: %+v correct %d", res.ErrorRecords, res.Correct)
	}

	// unknown formats fail clearly
	if _, err := ParseFormat("screenspot-v9"); err == nil || !strings.Contains(err.Error(), "unknown format") {
		t.Errorf("ParseFormat: %v", err)
	}
	if _, err := Load(t.TempDir(), FormatAuto, LoadOptions{}); err == nil || !strings.Contains(err.Error(), "unknown format") {
		t.Errorf("empty dir: %v", err)
	}
	if _, err := Load(dir, Format("xml"), LoadOptions{}); err == nil {
		t.Error("format xml accepted")
	}
}

func pt(x, y float64) som.Point { return som.Point{X: x, Y: y} }
