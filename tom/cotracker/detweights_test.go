package cotracker

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDetWeightsSelfCheck pins the values `goldens.py --selfcheck` prints
// (one parameter of each branch of the formula), bit for bit.
func TestDetWeightsSelfCheck(t *testing.T) {
	for _, tc := range []struct {
		name  string
		shape []int
		want  []float64
	}{
		{"fnet.conv1.weight", []int{64, 3, 7, 7}, []float64{0.03063613452768446, 0.023583583963411942, -0.06432417922085237, -0.05432008575700015}},
		{"fnet.conv1.bias", []int{64}, []float64{-0.08561348915100098, 0.0024347305297851562, 0.04388101100921631, -0.05595852136611939}},
		{"updateformer.space_point2virtual_blocks.0.norm_context.weight", []int{384}, []float64{1.002615749835968, 1.0972736835479737, 1.0415385723114015, 1.0557899236679078}},
	} {
		got, err := DetWeights(tc.name, tc.shape)
		if err != nil {
			t.Fatal(err)
		}
		for i, w := range tc.want {
			if got[i] != w {
				t.Errorf("%s[%d] = %.17g, python %.17g", tc.name, i, got[i], w)
			}
		}
	}
}

// TestDetWeightsParams checks every parameter listed in testdata/params.json
// (names and shapes of the official CoTrackerThreeOnline, the same set as
// the offline model): its first values bit for bit and its sum (numpy sums
// pairwise, so within 1e-9).
func TestDetWeightsParams(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "params.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Params []struct {
			Name  string
			Shape []int
			First []float64
			Sum   float64
		}
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("testdata/params.json: %v", err)
	}
	if len(doc.Params) != 187 {
		t.Fatalf("testdata/params.json lists %d parameters, want 187", len(doc.Params))
	}
	for _, p := range doc.Params {
		got, err := DetWeights(p.Name, p.Shape)
		if err != nil {
			t.Fatal(err)
		}
		checkFirst(t, p.Name, got, p.First)
		s := 0.0
		for _, v := range got {
			s += v
		}
		if math.Abs(s-p.Sum) > 1e-9*math.Max(1, math.Abs(p.Sum)) {
			t.Errorf("%s: sum %.17g, python %.17g", p.Name, s, p.Sum)
		}
	}
}

func checkFirst(t *testing.T, name string, got, want []float64) {
	t.Helper()
	for i, w := range want {
		if got[i] != w {
			t.Errorf("%s[%d] = %.17g, python %.17g", name, i, got[i], w)
		}
	}
}

func TestDetWeightsErrors(t *testing.T) {
	for _, shape := range [][]int{{-1}, {3, -2}, {1 << 20, 1 << 20}} {
		if _, err := DetWeights("x.weight", shape); err == nil || !strings.Contains(err.Error(), "x.weight") {
			t.Errorf("shape %v: error %v, want one naming the parameter", shape, err)
		}
	}
	if w, err := DetWeights("s", nil); err != nil || len(w) != 1 {
		t.Errorf("scalar: %v, %v", w, err)
	}
}
