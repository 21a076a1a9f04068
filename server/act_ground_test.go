package server

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

const testStats = `{"libero_spatial_no_noops": {"action": {
  "mean": [0,0,0,0,0,0,0.5], "std": [1,1,1,1,1,1,0.5],
  "q01": [-0.9,-0.8,-0.9,-0.1,-0.2,-0.3,0], "q99": [0.9,0.8,0.9,0.1,0.2,0.3,1],
  "mask": [true,true,true,true,true,true,false]}, "num_transitions": 10, "num_trajectories": 1},
 "other": {"action": {"q01": [0,0,0,0,0,0,0], "q99": [1,1,1,1,1,1,1]}}}`

func TestAct(t *testing.T) {
	ts := startServer(t, Config{}, nil, testStats)
	const H, W = 12, 10
	nested := make([][][]int, H)
	raw := make([]byte, 0, H*W*3)
	for y := range nested {
		nested[y] = make([][]int, W)
		for x := range nested[y] {
			nested[y][x] = []int{x * 20, y * 20, 100}
			raw = append(raw, byte(x*20), byte(y*20), 100)
		}
	}
	body := map[string]any{"image": nested, "instruction": "Pick up the black bowl", "unnorm_key": "libero_spatial_no_noops"}
	resp, out := ts.post(t, "/act", body)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, out)
	}
	var action []float64
	if err := json.Unmarshal(out, &action); err != nil || len(action) != 7 {
		t.Fatalf("action %s: %v", out, err)
	}
	q01 := []float64{-0.9, -0.8, -0.9, -0.1, -0.2, -0.3}
	q99 := []float64{0.9, 0.8, 0.9, 0.1, 0.2, 0.3}
	for i := 0; i < 6; i++ {
		if action[i] < q01[i]-1e-9 || action[i] > q99[i]+1e-9 {
			t.Fatalf("dim %d = %v outside [q01, q99]", i, action[i])
		}
	}
	if action[6] < -1 || action[6] > 1 {
		t.Fatalf("gripper (mask false, left normalised) = %v", action[6])
	}
	if toks := strings.Split(resp.Header.Get("X-Magma-Action-Tokens"), ","); len(toks) != 7 {
		t.Fatalf("action tokens header %q", resp.Header.Get("X-Magma-Action-Tokens"))
	}
	// json_numpy image, same pixels: same (greedy) action.
	np := map[string]any{"__numpy__": base64.StdEncoding.EncodeToString(raw), "dtype": "|u1", "shape": []int{H, W, 3}}
	body["image"] = np
	_, out2 := ts.post(t, "/act", body)
	if string(out2) != string(out) {
		t.Fatalf("json_numpy image gives %s, nested lists %s", out2, out)
	}
	// {"encoded": "<json>"}: the answer is a JSON string of the array.
	inner, _ := json.Marshal(body)
	resp, out3 := ts.post(t, "/act", map[string]any{"encoded": string(inner)})
	var enc string
	if resp.StatusCode != 200 || json.Unmarshal(out3, &enc) != nil {
		t.Fatalf("encoded: %d %s", resp.StatusCode, out3)
	}
	var action3 []float64
	if err := json.Unmarshal([]byte(enc), &action3); err != nil || len(action3) != 7 || action3[0] != action[0] {
		t.Fatalf("encoded action %s vs %v", enc, action)
	}
	bad := []struct {
		name   string
		body   any
		status int
		param  string
	}{
		{"unknown key", map[string]any{"image": nested, "instruction": "x", "unnorm_key": "bridge"}, 400, "unnorm_key"},
		{"ambiguous key", map[string]any{"image": nested, "instruction": "x"}, 400, "unnorm_key"},
		{"no instruction", map[string]any{"image": nested, "unnorm_key": "other"}, 400, "instruction"},
		{"no image", map[string]any{"instruction": "x", "unnorm_key": "other"}, 400, "image"},
		{"ragged", map[string]any{"image": [][][]int{{{1, 2, 3}}, {{1, 2, 3}, {4, 5, 6}}}, "instruction": "x", "unnorm_key": "other"}, 400, "image"},
		{"two channels", map[string]any{"image": [][][]int{{{1, 2}}}, "instruction": "x", "unnorm_key": "other"}, 400, "image"},
		{"out of range", map[string]any{"image": [][][]int{{{1, 2, 300}}}, "instruction": "x", "unnorm_key": "other"}, 400, "image"},
		{"float pixel", `{"image": [[[1, 2, 3.5]]], "instruction": "x", "unnorm_key": "other"}`, 400, "image"},
		{"bad numpy shape", map[string]any{"image": map[string]any{"__numpy__": "AAAA", "dtype": "|u1", "shape": []int{2, 2, 3}}, "instruction": "x", "unnorm_key": "other"}, 400, "image"},
		{"numpy dtype", map[string]any{"image": map[string]any{"__numpy__": "AAAA", "dtype": "<f4", "shape": []int{1, 1, 1}}, "instruction": "x", "unnorm_key": "other"}, 400, "image"},
		{"bad encoded", map[string]any{"encoded": "{nope"}, 400, "encoded"},
		{"image string", map[string]any{"image": "not base64 !!", "instruction": "x", "unnorm_key": "other"}, 400, "image"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			resp, out := ts.post(t, "/act", c.body)
			checkError(t, resp, out, c.status, c.param)
		})
	}
}

func TestGround(t *testing.T) {
	ts := startServer(t, Config{}, nil, "")
	img := pngDataURI(t, 64, 48)
	resp, out := ts.post(t, "/v1/ground", map[string]any{"image": img, "instruction": "open settings",
		"boxes": [][]float64{{2, 2, 20, 12}, {30, 20, 60, 44}}, "max_tokens": 8})
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, out)
	}
	var g map[string]json.RawMessage
	if err := json.Unmarshal(out, &g); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"mark", "point", "box", "answer", "marks", "usage"} {
		if _, ok := g[k]; !ok {
			t.Fatalf("response lacks %q: %s", k, out)
		}
	}
	var marks []map[string]any
	_ = json.Unmarshal(g["marks"], &marks)
	if len(marks) != 2 {
		t.Fatalf("marks %s", g["marks"])
	}
	// Bare base64 and proposed boxes.
	raw := strings.TrimPrefix(img, "data:image/png;base64,")
	resp, out = ts.post(t, "/v1/ground", map[string]any{"image": raw, "instruction": "click", "max_tokens": 4})
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(out), `"proposed":true`) {
		t.Fatalf("%d %s", resp.StatusCode, out)
	}
}

func TestParseGrounding(t *testing.T) {
	ts := startServer(t, Config{}, nil, "")
	_ = ts
	res := parseGroundingTest(t, "[128,64] Mark: 2")
	if res["mark"] != 2 {
		t.Fatalf("mark %v", res["mark"])
	}
	p := res["point"].([]float64)
	if p[0] != (128.5)*100/256 || p[1] != (64.5)*50/256 {
		t.Fatalf("point %v", p)
	}
	res = parseGroundingTest(t, "Mark: 1")
	if p := res["point"].([]float64); p[0] != 10 || p[1] != 10 {
		t.Fatalf("mark-only point %v", p)
	}
	res = parseGroundingTest(t, "no idea")
	if res["mark"] != nil || res["point"] != nil || res["box"] != nil {
		t.Fatalf("%v", res)
	}
	// Off-grid values are rejected (action.ParseAnswer), not clamped.
	res = parseGroundingTest(t, "[999,999] Mark: 9")
	if res["mark"] != nil || res["point"] != nil {
		t.Fatalf("unknown mark or off-grid point accepted: %v", res)
	}
	// The released model's form: SeeClick fractions plus " Mark: N"
	// (agents/ui_agent/util/process_utils.py pred_2_point / extract_mark_id).
	res = parseGroundingTest(t, "(0.50,0.30) Mark: 2")
	if p := res["point"].([]float64); res["mark"] != 2 || p[0] != 50 || p[1] != 15 {
		t.Fatalf("fraction answer: %v", res)
	}
	if p := parseGroundingTest(t, "(1.00,1.00)")["point"].([]float64); p[0] != 99 || p[1] != 49 {
		t.Fatalf("point not clamped into the image: %v", p)
	}
}

func parseGroundingTest(t *testing.T, answer string) map[string]any {
	t.Helper()
	marked, err := drawTestMarks(100, 50)
	if err != nil {
		t.Fatal(err)
	}
	return parseGrounding(answer, marked, 100, 50)
}
