package eval

import (
	"math"
	"testing"
)

func rep(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func cat(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-12 }

func TestVQANormalize(t *testing.T) {
	cases := []struct{ in, want string }{
		{"two", "2"},
		{"Two dogs.", "2 dogs"},
		{"a dog", "dog"},
		{"The Dog", "dog"},
		{"yes.", "yes"},
		{"Yes", "yes"},
		{"none", "0"},
		{"dont know", "don't know"},
		{"don't know", "don't know"}, // "'" is not in the punctuation list
		{"man's hat", "man 's hat"},
		{"1,000", "1000"},            // commas deleted first
		{"3.5", "3.5"},               // a period before a digit stays
		{"red-white", "red white"},   // "-" touching no space: a space
		{"red - white", "red white"}, // touching a space: deleted, then words re-joined
		{"what?", "what"},
		{"  tab\there\n", "tab here"},
		{"(left)", "left"},
		{"", ""},
	}
	for _, c := range cases {
		if got := VQANormalize(c.in); got != c.want {
			t.Errorf("VQANormalize(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	// the punctuation rule alone, on text that keeps its commas
	if got := vqaPunctuation("1,000 dogs!"); got != "1000 dogs" {
		t.Errorf("vqaPunctuation digit,digit: %q", got)
	}
	if got := vqaPunctuation("hi!there"); got != "hi there" {
		t.Errorf("vqaPunctuation: %q", got)
	}
}

func TestVQAScore(t *testing.T) {
	// m of n answers equal the prediction: each leave-one-out subset drops
	// one answer; dropping a matching one leaves m-1 matches, another m.
	hand := func(m, n int) float64 {
		return (float64(m)*math.Min(1, float64(m-1)/3) + float64(n-m)*math.Min(1, float64(m)/3)) / float64(n)
	}
	cases := []struct {
		name    string
		pred    string
		answers []string
		kind    VQAKind
		want    float64
	}{
		{"two vs 2", "two", rep("2", 10), VQAv2Scoring, 1},
		{"a dog vs dog", "a dog", rep("dog", 10), VQAv2Scoring, 1},
		{"yes. vs yes", "yes.", rep("yes", 10), VQAv2Scoring, 1},
		{"3 of 10 agree", "cat", cat(rep("cat", 3), rep("dog", 7)), VQAv2Scoring, (3*(2.0/3) + 7*1) / 10}, // 0.9
		{"7 of 10 agree", "dog", cat(rep("cat", 3), rep("dog", 7)), VQAv2Scoring, 1},
		{"2 of 10 agree", "cat", cat(rep("cat", 2), rep("dog", 8)), VQAv2Scoring, (2*(1.0/3) + 8*(2.0/3)) / 10}, // 0.6
		{"1 of 10 agree", "cat", cat(rep("cat", 1), rep("dog", 9)), VQAv2Scoring, (1*0 + 9*(1.0/3)) / 10},       // 0.3
		{"no match", "bird", cat(rep("cat", 3), rep("dog", 7)), VQAv2Scoring, 0},
		{"answers differ: normalised", "2", cat(rep("two", 5), rep("2", 5)), VQAv2Scoring, 1},
		// VQAv2: answers that all agree are compared as given, so an
		// un-normalised ground truth never matches (the official quirk) ...
		{"unanimous raw answers", "yes", rep("Yes", 10), VQAv2Scoring, 0},
		// ... while TextVQA normalises every answer.
		{"textvqa normalises answers", "yes", rep("Yes", 10), TextVQAScoring, 1},
		{"textvqa 3 of 10", "STOP.", cat(rep("stop", 3), rep("go", 7)), TextVQAScoring, 0.9},
		{"empty prediction", "", rep("yes", 10), VQAv2Scoring, 0},
		{"no answers", "yes", nil, VQAv2Scoring, 0},
	}
	for _, c := range cases {
		if got := VQAScore(c.pred, c.answers, c.kind); !near(got, c.want) {
			t.Errorf("%s: VQAScore = %v, want %v", c.name, got, c.want)
		}
	}
	for m := 0; m <= 10; m++ {
		got := VQAScore("cat", cat(rep("cat", m), rep("dog", 10-m)), VQAv2Scoring)
		if !near(got, hand(m, 10)) {
			t.Errorf("%d of 10: %v want %v", m, got, hand(m, 10))
		}
	}
	if !near(hand(3, 10), 0.9) || !near(hand(2, 10), 0.6) || !near(hand(4, 10), 1) {
		t.Fatal("hand formula")
	}
}

func TestVQATally(t *testing.T) {
	var v VQATally
	v.Add("yes/no", 1)
	v.Add("yes/no", 0)
	v.Add("number", 0.9)
	v.Add("other", 0.3)
	if !near(v.Overall(), (1+0+0.9+0.3)/4) {
		t.Errorf("overall %v", v.Overall())
	}
	if got := v.ByType["yes/no"].Mean(); got != 0.5 {
		t.Errorf("yes/no %v", got)
	}
	if ts := v.Types(); len(ts) != 3 || ts[0] != "number" || ts[2] != "yes/no" {
		t.Errorf("types %v", ts)
	}
}

func TestPOPEAnswer(t *testing.T) {
	cases := []struct{ in, want string }{
		{"Yes", "yes"},
		{"yes.", "yes"},
		{"No", "no"},
		{"No.", "no"},
		{"no, there is none", "no"},
		{"There is not a dog in the image.", "no"},
		{"Yes, there is a dog. No other animals.", "yes"}, // only the first sentence counts
		{"NO", "yes"},                 // the reference matches "No", "no", "not" exactly
		{"Nope", "yes"},               // not a "no" word
		{"", "yes"},                   // empty answers are also reported as bad input
		{"The answer is no", "no"},    //
		{"yes,no", "yes"},             // commas removed: one word "yesno"
		{"I do not know.", "no"},      // "not"
		{"Yes there is\nno", "yes"},   // split on single spaces only: "is\nno" is one word
		{"0.5 probability no", "yes"}, // cut at the first "."
	}
	for _, c := range cases {
		if got := POPEAnswer(c.in); got != c.want {
			t.Errorf("POPEAnswer(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestPOPEMetrics(t *testing.T) {
	// labels:  yes yes yes yes no no no no no no
	// answers: yes yes yes no  yes no no no no no
	// TP=3 FN=1 FP=1 TN=5
	labels := []string{"yes", "yes", "yes", "yes", "no", "no", "no", "no", "no", "no"}
	preds := []string{"yes", "yes", "yes", "no", "yes", "no", "no", "no", "no", "no"}
	var c POPECounts
	for i := range labels {
		c.Add(preds[i], labels[i])
	}
	if c != (POPECounts{TP: 3, FP: 1, TN: 5, FN: 1}) {
		t.Fatalf("counts %+v", c)
	}
	m := c.Metrics()
	p, r := 3.0/4, 3.0/4
	want := POPEMetrics{N: 10, Accuracy: 8.0 / 10, Precision: p, Recall: r, F1: 2 * p * r / (p + r), YesRatio: 4.0 / 10}
	if m.N != want.N || !near(m.Accuracy, want.Accuracy) || !near(m.Precision, want.Precision) ||
		!near(m.Recall, want.Recall) || !near(m.F1, want.F1) || !near(m.YesRatio, want.YesRatio) {
		t.Errorf("metrics %+v, want %+v", m, want)
	}
	// always "no": precision undefined -> 0, F1 0, yes-ratio 0
	var z POPECounts
	z.Add("no", "yes")
	z.Add("no", "no")
	if m := z.Metrics(); m.Precision != 0 || m.F1 != 0 || m.YesRatio != 0 || m.Accuracy != 0.5 {
		t.Errorf("all-no metrics %+v", m)
	}
}

func TestExtractChoice(t *testing.T) {
	cases := []struct {
		in   string
		n    int
		want string
	}{
		{"A", 4, "A"},
		{"(B) a cat", 4, "B"},
		{"The best answer is C.", 4, "C"},
		{"The answer is D", 4, "D"},
		{"Best option: B", 4, "B"},
		{"E", 4, ""}, // VideoMME has A-D
		{"E", 5, "E"},
		{"the man is walking", 4, ""},
		{"", 4, ""},
		{"A man opens the door, so B", 4, "A"}, // the first capital option letter wins (official quirk)
		{"I think it is option b", 4, ""},      // lower case is not an option letter
	}
	for _, c := range cases {
		if got := ExtractChoice(c.in, c.n); got != c.want {
			t.Errorf("ExtractChoice(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}

func TestMCTally(t *testing.T) {
	var m MCTally
	m.Add("short", "A", "A")
	m.Add("short", "B", "A")
	m.Add("long", "", "C")
	m.Add("long", "C", "C")
	m.Add("medium", "D", "D")
	if m.Total != 5 || m.Correct != 3 || m.Unanswered != 1 || !near(m.Accuracy(), 0.6) {
		t.Errorf("overall %+v", m)
	}
	if c := m.ByCat["long"]; c.Total != 2 || c.Correct != 1 || c.Unanswered != 1 || c.Accuracy() != 0.5 {
		t.Errorf("long %+v", c)
	}
}

func tap(y, x float64) AITWAction {
	return AITWAction{Type: AITWDualPoint, Touch: [2]float64{y, x}, Lift: [2]float64{y, x}}
}

func TestAITWMatch(t *testing.T) {
	down, _ := AITWScroll("scroll down")
	up, _ := AITWScroll("scroll up")
	left, _ := AITWScroll("scroll left")
	right, _ := AITWScroll("scroll right")
	// a button at y 0.10..0.14, x 0.10..0.20 (y, x, h, w); enlarged by 140%:
	// y 0.072..0.168, x 0.03..0.27
	box := [][4]float64{{0.10, 0.10, 0.04, 0.10}}
	cases := []struct {
		name      string
		pred, ref AITWAction
		boxes     [][4]float64
		want      bool
	}{
		{"same tap", tap(0.5, 0.5), tap(0.5, 0.5), nil, true},
		// 14% boundary: 0.64-0.5 in float32 is 0.13999999 <= 0.14 (matches,
		// as the reference's JAX decides); 0.6401 is past it
		{"tap on the 14% boundary (x)", tap(0.5, 0.64), tap(0.5, 0.5), nil, true},
		{"tap on the 14% boundary (y)", tap(0.36, 0.5), tap(0.5, 0.5), nil, true},
		{"tap just past 14%", tap(0.5, 0.6401), tap(0.5, 0.5), nil, false},
		{"diagonal 0.1,0.1 (0.1414)", tap(0.6, 0.6), tap(0.5, 0.5), nil, false},
		{"diagonal 0.09,0.1 (0.1345)", tap(0.59, 0.6), tap(0.5, 0.5), nil, true},
		// far apart (0.16 in x) but both in the enlarged element box
		{"same element box", tap(0.12, 0.04), tap(0.12, 0.20), box, true},
		{"one outside the enlarged box", tap(0.12, 0.02), tap(0.12, 0.20), box, false},
		{"near the enlarged box corner", tap(0.165, 0.265), tap(0.12, 0.05), box, true},
		{"tap vs swipe", tap(0.5, 0.5), down, nil, false},
		{"scroll down vs down", down, down, nil, true},
		{"scroll up vs down: same axis (official)", up, down, nil, true},
		{"scroll left vs down", left, down, nil, false},
		{"scroll left vs right", left, right, nil, true},
		{"press back", AITWAction{Type: AITWPressBack}, AITWAction{Type: AITWPressBack}, nil, true},
		{"press home vs back", AITWAction{Type: AITWPressHome}, AITWAction{Type: AITWPressBack}, nil, false},
		{"press enter vs tap", AITWAction{Type: AITWPressEnter}, tap(0.5, 0.5), nil, false},
		{"type vs type (text not compared)", AITWAction{Type: AITWType, Text: "x"}, AITWAction{Type: AITWType, Text: "y"}, nil, true},
		{"complete", AITWAction{Type: AITWTaskComplete}, AITWAction{Type: AITWTaskComplete}, nil, true},
		// a short drag (0.03 < 0.04) is a tap
		{"near-tap drag is a tap", AITWAction{Type: AITWDualPoint, Touch: [2]float64{0.5, 0.5}, Lift: [2]float64{0.5, 0.53}}, tap(0.5, 0.6), nil, true},
	}
	for _, c := range cases {
		if got := AITWMatch(c.pred, c.ref, c.boxes); got != c.want {
			t.Errorf("%s: AITWMatch = %v, want %v", c.name, got, c.want)
		}
	}
	if scrollDir(down) != "up" || scrollDir(up) != "down" || scrollDir(left) != "right" || scrollDir(right) != "left" {
		t.Errorf("finger directions: %s %s %s %s", scrollDir(down), scrollDir(up), scrollDir(left), scrollDir(right))
	}
}

func TestParseAITWAction(t *testing.T) {
	down, _ := AITWScroll("scroll down")
	cases := []struct {
		in      string
		want    AITWAction
		wantErr bool
	}{
		{`{"action_type": 4, "click_point": (0.42,0.80)}`, tap(0.80, 0.42), false},
		{`{'action_type': 4, 'click_point': [0.1, 0.2]}`, tap(0.2, 0.1), false},
		{`{"action_type": 3, "typed_text": "hotels in \"paris\""}`, AITWAction{Type: AITWType, Text: `hotels in "paris"`}, false},
		{`{"action_type": 0}`, down, false},
		{`{"action_type": 5}`, AITWAction{Type: AITWPressBack}, false},
		{`{"action_type": 10}`, AITWAction{Type: AITWTaskComplete}, false},
		{`{"action_type": 4}`, AITWAction{}, true},
		{`{"action_type": 4, "click_point": (1.5, 0.2)}`, AITWAction{}, true},
		{`click the button`, AITWAction{}, true},
		{`{"action_type": 2}`, AITWAction{}, true},
	}
	for _, c := range cases {
		got, err := ParseAITWAction(c.in)
		if (err != nil) != c.wantErr || (err == nil && got != c.want) {
			t.Errorf("ParseAITWAction(%s) = %+v, %v; want %+v (err %v)", c.in, got, err, c.want, c.wantErr)
		}
	}
}

func TestAITWTally(t *testing.T) {
	down, _ := AITWScroll("scroll down")
	up, _ := AITWScroll("scroll up")
	typ := func(s string) AITWAction { return AITWAction{Type: AITWType, Text: s} }
	var tl AITWTally
	// general: 4 steps: tap right, tap wrong, type with the right text,
	// scroll on the right axis but the wrong direction
	tl.Add(ScoreAITWStep("general", tap(0.5, 0.5), nil, tap(0.5, 0.55), nil))
	tl.Add(ScoreAITWStep("general", tap(0.1, 0.1), nil, tap(0.5, 0.55), nil))
	tl.Add(ScoreAITWStep("general", typ("Paris hotels"), nil, typ("paris"), nil))
	tl.Add(ScoreAITWStep("general", up, nil, down, nil))
	// install: 2 steps: type with the wrong text (matches, text wrong),
	// unparsable answer
	_, perr := ParseAITWAction("no idea")
	tl.Add(ScoreAITWStep("install", typ("chrome"), nil, typ("maps"), nil))
	tl.Add(ScoreAITWStep("install", AITWAction{}, perr, AITWAction{Type: AITWPressHome}, nil))

	g := tl.ByCat["general"].Category()
	// matches: 3 of 4 (tap, type, scroll axis); with text: same 3; type ids
	// right: 3 of 4 (the wrong tap is still type 4 -> 4 of 4)
	if !near(g.ActionAcc, 3.0/4) || !near(g.ActionTextAcc, 3.0/4) || !near(g.TypeAcc, 1) ||
		!near(g.TextAcc, 1) || !near(g.ClickAcc, 0.5) || !near(g.ScrollAcc, 1) || g.ScrollDirAcc != 0 {
		t.Errorf("general %+v", g)
	}
	in := tl.ByCat["install"].Category()
	// type/type matches by id (1 of 2); with text 0 of 2; unparsed 1
	if !near(in.ActionAcc, 0.5) || in.ActionTextAcc != 0 || !near(in.TextAcc, 0) || in.Counts.Unparsed != 1 {
		t.Errorf("install %+v", in)
	}
	macro, macroText, micro := tl.Overall()
	if !near(macro, (0.75+0.5)/2) || !near(macroText, (0.75+0)/2) || !near(micro, 4.0/6) {
		t.Errorf("overall %v %v %v", macro, macroText, micro)
	}
	if cs := tl.Categories(); len(cs) != 2 || cs[0] != "general" || cs[1] != "install" {
		t.Errorf("categories %v", cs)
	}
}
