package action

import (
	"math"
	"testing"

	"github.com/magma-go/magma/som"
)

func TestParseAnswer(t *testing.T) {
	const w, h = 200, 100
	type want struct {
		mark     int // -1 none
		x, y     float64
		form     string // "" no point
		noParsed bool
	}
	cases := []struct {
		text string
		want want
	}{
		{" Mark: 7", want{mark: 7}},
		{"Mark 7", want{mark: 7}},
		{"mark #12", want{mark: 12}},
		{"Mark:3", want{mark: 3}},
		{"(0.23, 0.51)", want{-1, 46, 51, FormFraction, false}},
		{"[0.25,0.5]", want{-1, 50, 50, FormFraction, false}},
		{"click at (.5, 1.0)", want{-1, 100, 100, FormFraction, false}},
		{"[59,131]", want{-1, (59.5) * 200 / 256, 131.5 * 100 / 256, FormGrid, false}},
		{"[0,1]", want{-1, 0.5 * 200 / 256, 1.5 * 100 / 256, FormGrid, false}},
		{"[128,64] Mark: 4", want{4, 128.5 * 200 / 256, 64.5 * 100 / 256, FormGrid, false}},
		{"Mark 3 at [10,20]. Mark 7 at [1,2]", want{3, 10.5 * 200 / 256, 20.5 * 100 / 256, FormGrid, false}},
		{"<box>100,200,300,400</box>", want{-1, 40, 30, FormBox, false}},
		{"<box>(100,200),(300,400)</box>", want{-1, 40, 30, FormBox, false}},
		{"<|box_start|>(100,200),(300,400)<|box_end|>", want{-1, 40, 30, FormBox, false}},
		{"<box>0.1,0.2,0.3,0.4</box>", want{-1, 40, 30, FormBox, false}},
		{"<box>500,500</box>", want{-1, 100, 50, FormBox, false}},
		{"[0.1,0.2,0.3,0.4]", want{-1, 40, 30, FormBox, false}},
		{"[10,20,30,40]", want{-1, 20.5 * 200 / 256, 30.5 * 100 / 256, FormBox, false}}, // cells 10..30: centre 20.5
		{"first (0.1,0.1) then [0.9,0.9]", want{-1, 20, 10, FormFraction, false}},
		{"(1.5, 0.2)", want{mark: -1, noParsed: true}},               // decimal outside [0,1]
		{"[300,20]", want{mark: -1, noParsed: true}},                 // integer outside the grid
		{"<box>1200,0,1300,5</box>", want{mark: -1, noParsed: true}}, // above the 0-1000 scale
		{"I cannot find it", want{mark: -1, noParsed: true}},
		{"", want{mark: -1, noParsed: true}},
		{"Provide the mark index of the box", want{mark: -1, noParsed: true}},
	}
	for _, c := range cases {
		a := ParseAnswer(c.text, w, h, ParseOptions{})
		if c.want.noParsed {
			if a.Parsed() {
				t.Errorf("%q parsed as %+v", c.text, a)
			}
			continue
		}
		if c.want.mark >= 0 && c.want.form == "" && c.want.x == 0 {
			if !a.HasMark || a.Mark != c.want.mark || a.HasPoint {
				t.Errorf("%q: %+v, want mark %d only", c.text, a, c.want.mark)
			}
			continue
		}
		if c.want.mark >= 0 && (!a.HasMark || a.Mark != c.want.mark) {
			t.Errorf("%q: mark %v %d, want %d", c.text, a.HasMark, a.Mark, c.want.mark)
		}
		if c.want.mark < 0 && a.HasMark {
			t.Errorf("%q: unexpected mark %d", c.text, a.Mark)
		}
		if !a.HasPoint || a.PointForm != c.want.form || math.Abs(a.Point.X-c.want.x) > 1e-9 || math.Abs(a.Point.Y-c.want.y) > 1e-9 {
			t.Errorf("%q: point %v %+v form %q, want (%g,%g) %q", c.text, a.HasPoint, a.Point, a.PointForm, c.want.x, c.want.y, c.want.form)
		}
	}
	// --box-scale 256: integers in <box> tags on the 256 grid
	a := ParseAnswer("<box>64,64,192,192</box>", 256, 512, ParseOptions{BoxScale: 256})
	if !a.HasPoint || a.Point.X != 128 || a.Point.Y != 256 {
		t.Errorf("box scale 256: %+v", a)
	}
}

func TestClick(t *testing.T) {
	marks := &som.Result{Marks: []som.Region{{ID: 2, Box: som.Box{X1: 10, Y1: 10, X2: 30, Y2: 50}}}}
	// a drawn mark wins over the point unless PreferPoint
	a := ParseAnswer("[0.9,0.9] Mark: 2", 100, 100, ParseOptions{})
	if p, src, mb, ok := Click(a, marks, false); !ok || src != "mark" || p != (som.Point{X: 20, Y: 30}) || mb == nil {
		t.Errorf("mark: %v %s %v", p, src, ok)
	}
	if p, src, _, ok := Click(a, marks, true); !ok || src != FormFraction || p != (som.Point{X: 90, Y: 90}) {
		t.Errorf("prefer point: %v %s %v", p, src, ok)
	}
	// a mark that was not drawn falls back to the point, or is unparsable alone
	a = ParseAnswer("[0.5,0.5] Mark: 9", 100, 100, ParseOptions{})
	if p, src, _, ok := Click(a, marks, false); !ok || src != FormFraction || p != (som.Point{X: 50, Y: 50}) {
		t.Errorf("undrawn mark with point: %v %s %v", p, src, ok)
	}
	if _, _, _, ok := Click(ParseAnswer("Mark: 9", 100, 100, ParseOptions{}), marks, false); ok {
		t.Error("undrawn mark alone resolved")
	}
}
