package eval

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/magma-go/magma/model"
	"github.com/magma-go/magma/model/action"
	"github.com/magma-go/magma/som"
	"github.com/magma-go/magma/vision/imaging"
)

// The official prompt, as quoted from MagmaAI/Magma-Mind2Web-SoM rows by
// users who loaded them (see REFERENCE-DATA.md 1.5): it "begins 'Imagine
// that you are imitating humans doing web navigation for a task step by
// step. …'", states {"ACTION": "CLICK" or "TYPE" or "SELECT", "MARK": a
// numeric id, e.g., 5, "VALUE": a string value for the action if
// applicable, otherwise None}, then "You are asked to complete the
// following task: <task>. The previous actions you have taken: " with one
// action_reprs line each, then "For your convinience [sic], I have labeled
// the candidates with numeric marks and bounding boxes on the screenshot.
// What is the next action you would take?".
func TestMind2WebSoMPrompt(t *testing.T) {
	got := Mind2WebSoMPrompt("Find a store near zip 10001", []string{"[link] Store Locator -> CLICK", "[searchbox] SEARCH BY KEYWORD -> TYPE: Chicago"})
	for _, want := range []string{
		"Imagine that you are imitating humans doing web navigation for a task step by step. ",
		`{"ACTION": "CLICK" or "TYPE" or "SELECT", "MARK": a numeric id, e.g., 5, "VALUE": a string value for the action if applicable, otherwise None}`,
		"You are asked to complete the following task: Find a store near zip 10001. The previous actions you have taken: \n[link] Store Locator -> CLICK\n[searchbox] SEARCH BY KEYWORD -> TYPE: Chicago\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("prompt lacks %q:\n%s", want, got)
		}
	}
	if !strings.HasSuffix(got, "For your convinience, I have labeled the candidates with numeric marks and bounding boxes on the screenshot. What is the next action you would take?") {
		t.Errorf("prompt end:\n%s", got)
	}
}

func TestParseSoMDict(t *testing.T) {
	for _, c := range []struct{ in, op, value, mark string }{
		{`{"ACTION": "CLICK", "MARK": 13, "VALUE": "None"}`, "CLICK", "", "13"},
		{`{"ACTION": "TYPE", "MARK": 5, "VALUE": "new york"}`, "TYPE", "new york", "5"},
		{`{"ACTION": "SELECT", "MARK": "7", "VALUE": "2 adults"}`, "SELECT", "2 adults", "7"},
		{`{"ACTION": "HOVER", "MARK": None, "VALUE": None}`, "CLICK", "", "none"},
	} {
		a := ParseWebAction(c.in, 100, 100, action.ParseOptions{})
		mark := "none"
		if a.HasMark {
			mark = fmt.Sprint(a.Mark)
		}
		if a.Op != c.op || a.Value != c.value || mark != c.mark {
			t.Errorf("%s: op %q value %q mark %s", c.in, a.Op, a.Value, mark)
		}
	}
}

// A 3000 px tall page: the window is 1344 px around the target, the
// top-30 ranked candidates are kept (those outside the window dropped),
// and the answer's mark selects the target.
func TestMind2WebOfficialProtocol(t *testing.T) {
	dir := t.TempDir()
	gt := som.Box{X1: 40, Y1: 2500, X2: 120, Y2: 2540}
	writeJSON(t, filepath.Join(dir, "mind2web_data_test_task.json"), []any{map[string]any{
		"annotation_id": "ep0", "confirmed_task": "open the menu",
		"action_reprs": []string{"[button] Menu -> CLICK"},
		"actions": []any{map[string]any{"action_uid": "a", "operation": map[string]any{"original_op": "CLICK", "value": ""},
			"bbox": map[string]any{"x": gt.X1, "y": gt.Y1, "width": gt.X2 - gt.X1, "height": gt.Y2 - gt.Y1}}},
	}})
	writeScreenshot(t, filepath.Join(dir, "mind2web_images", "ep0-a.jpg"), 200, 3000, []widget{{40, 2500, 120, 2540, red}})
	var items []map[string]any
	items = append(items, map[string]any{"bbox": []float64{10, 2400, 60, 2420}, "rank": 0})
	items = append(items, map[string]any{"bbox": []float64{10, 100, 60, 120}, "rank": 1}) // above the window
	items = append(items, map[string]any{"bbox": []float64{gt.X1, gt.Y1, gt.X2, gt.Y2}, "rank": 2})
	for r := 3; r < 45; r++ {
		items = append(items, map[string]any{"bbox": []float64{150, float64(2000 + 10*r), 190, float64(2005 + 10*r)}, "rank": r})
	}
	writeJSON(t, filepath.Join(dir, "ranks.json"), map[string]any{"ep0-a.jpg": items})
	d, err := LoadMind2Web(dir, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if d.Candidates, err = LoadRankedCandidates(filepath.Join(dir, "ranks.json")); err != nil {
		t.Fatal(err)
	}
	p := OfficialMind2Web
	d.Protocol = &p
	var nMarks int
	gen := funcGen(func(req model.Request) string {
		img := req.Images[0]
		if img.H != 1344 || img.W != 200 {
			t.Errorf("window %dx%d, want 200x1344", img.W, img.H)
		}
		if !strings.HasPrefix(req.Prompt, "Imagine that you are imitating humans") || !strings.Contains(req.Prompt, "task: open the menu. The previous actions you have taken: \nFor your") {
			t.Errorf("prompt %q", req.Prompt)
		}
		return `{"ACTION": "CLICK", "MARK": 2, "VALUE": "None"}`
	})
	res, err := RunMind2Web(context.Background(), d, Options{Model: gen, Marker: countingMarker{&nMarks}})
	if err != nil {
		t.Fatal(err)
	}
	// 30 top-ranked, minus rank 1 above the window.
	if nMarks != 29 {
		t.Errorf("%d candidates marked, want 29", nMarks)
	}
	if m := res.Splits["task"]; m.EleAcc != 1 || m.StepSR != 1 {
		t.Errorf("metrics %+v", m)
	}
	top, h := cropWindow(gt, 3000, 1344)
	if top != 3000-1344 || h != 1344 {
		t.Errorf("window %d+%d", top, h)
	}
	if top, _ := cropWindow(som.Box{Y1: 700, Y2: 740}, 3000, 1344); top != 720-672 {
		t.Errorf("centred window top %d", top)
	}
}

type countingMarker struct{ n *int }

func (c countingMarker) Mark(img imaging.Image, boxes []som.Box) (*som.Result, error) {
	*c.n = len(boxes)
	return DefaultMarker.Mark(img, boxes)
}
