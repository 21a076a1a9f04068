package eval

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// AITW (Android in the Wild) action matching, as google-research's
// android_in_the_wild/action_matching.py decides it and SeeClick's AITW
// test (the protocol Magma reports) applies it:
//
//   - Actions carry an AITW type id (AITWType), and for dual-point actions
//     (type 4) a touch and a lift point as (y, x) screen fractions.
//   - If either action is not dual-point, they match when the type ids are
//     equal (press back/home/enter, type, task complete/impossible).
//   - A dual-point action is a tap when touch and lift are within 0.04 of
//     each other, else a swipe; a tap never matches a swipe.
//   - Two taps match when both lie inside the same UI element box enlarged
//     by 140% of its height and width (centred, clamped to the screen), or
//     are within 0.14 of each other (Euclidean, screen fractions, edge
//     inclusive).
//   - Two swipes match when their main axis (the larger of |dy|, |dx|, y on
//     a tie) is the same - the official code compares the axis only, so a
//     scroll up matches a scroll down; AITWResults reports the direction
//     separately (scroll_dir_acc).
//
// The arithmetic is float32, as the reference's JAX computes it, so taps on
// the 0.14 boundary are decided the same way ((0.5,0.5) vs (0.5,0.64) is
// 0.13999999 in float32 and matches; in float64 it would be 0.14000000000000001).
//
// SeeClick's step accuracy ("action_acc") is exactly this match. The typed
// text is scored beside it: text_acc over TYPE steps with SeeClick's rule
// (lower-cased, equal or either contained in the other - so, as in
// SeeClick, a prediction with no text, e.g. a click, counts as text-right
// because "" is contained in every string), and action_text_acc, the step
// accuracy when a TYPE step must also be a TYPE answer with a non-empty
// text that matches.

// AITW action type ids.
const (
	AITWType         = 3
	AITWDualPoint    = 4
	AITWPressBack    = 5
	AITWPressHome    = 6
	AITWPressEnter   = 7
	AITWTaskComplete = 10
	AITWImpossible   = 11
)

// AITWAction is an action in matching form.
type AITWAction struct {
	Type  int
	Touch [2]float64 // (y, x) screen fractions; dual-point only
	Lift  [2]float64
	Text  string // TYPE only
}

const (
	aitwTapThreshold   = float32(0.14)
	aitwSwipeThreshold = float32(0.04)
	aitwBoxAugment     = float32(1.4)
)

func dist32(a, b [2]float64) float32 {
	dy := float32(a[0]) - float32(b[0])
	dx := float32(a[1]) - float32(b[1])
	return float32(math.Sqrt(float64(float32(float32(dy*dy) + float32(dx*dx)))))
}

// IsTap reports a dual-point action whose touch and lift are within 0.04.
func (a AITWAction) IsTap() bool { return dist32(a.Touch, a.Lift) <= aitwSwipeThreshold }

// inAugmentedBox reports whether the (y, x) point lies in box (y, x, h, w)
// enlarged as the reference does.
func inAugmentedBox(p [2]float64, box [4]float64) bool {
	y, x, h, w := float32(box[0]), float32(box[1]), float32(box[2]), float32(box[3])
	dh, dw := float32(aitwBoxAugment*h), float32(aitwBoxAugment*w)
	top := max(0, float32(y-dh/2))
	left := max(0, float32(x-dw/2))
	hh := min(1, float32(h+dh))
	ww := min(1, float32(w+dw))
	py, px := float32(p[0]), float32(p[1])
	return py >= top && py <= float32(top+hh) && px >= left && px <= float32(left+ww)
}

func mainAxis(a AITWAction) int {
	dy := math.Abs(float64(float32(a.Lift[0]) - float32(a.Touch[0])))
	dx := math.Abs(float64(float32(a.Lift[1]) - float32(a.Touch[1])))
	if dx > dy {
		return 1
	}
	return 0
}

// AITWMatch decides whether pred matches ref given the screen's UI element
// boxes (y, x, h, w) in screen fractions.
func AITWMatch(pred, ref AITWAction, boxes [][4]float64) bool {
	if pred.Type != AITWDualPoint || ref.Type != AITWDualPoint {
		return pred.Type == ref.Type
	}
	pt, rt := pred.IsTap(), ref.IsTap()
	if pt != rt {
		return false
	}
	if pt {
		for _, b := range boxes {
			if inAugmentedBox(pred.Touch, b) && inAugmentedBox(ref.Touch, b) {
				return true
			}
		}
		return dist32(pred.Touch, ref.Touch) <= aitwTapThreshold
	}
	return mainAxis(pred) == mainAxis(ref)
}

// scrollDir is "up", "down", "left" or "right" for a swipe: the direction the
// finger moves along the main axis.
func scrollDir(a AITWAction) string {
	d := [2]float64{a.Lift[0] - a.Touch[0], a.Lift[1] - a.Touch[1]}
	if mainAxis(a) == 1 {
		if d[1] > 0 {
			return "right"
		}
		return "left"
	}
	if d[0] > 0 {
		return "down"
	}
	return "up"
}

// AITWTextMatch is SeeClick's typed-text rule: lower-cased, equal or one
// contained in the other.
func AITWTextMatch(pred, ref string) bool {
	p, r := strings.ToLower(pred), strings.ToLower(ref)
	return p == r || strings.Contains(r, p) || strings.Contains(p, r)
}

// SeeClick's scroll encoding (action ids 0, 1, 8, 9 stand for dual-point
// swipes, as (x, y) touch and lift) and the ground truth's action_type_text.
var aitwScrolls = map[string][2][2]float64{
	"scroll down":  {{0.5, 0.8}, {0.5, 0.2}},
	"scroll up":    {{0.5, 0.2}, {0.5, 0.8}},
	"scroll left":  {{0.2, 0.5}, {0.8, 0.5}},
	"scroll right": {{0.8, 0.5}, {0.2, 0.5}},
}

var aitwScrollIDs = map[int]string{0: "scroll down", 1: "scroll up", 8: "scroll left", 9: "scroll right"}

func yx(xy [2]float64) [2]float64 { return [2]float64{xy[1], xy[0]} }

// AITWScroll is the dual-point action of a named scroll ("scroll down"...).
func AITWScroll(name string) (AITWAction, bool) {
	s, ok := aitwScrolls[name]
	if !ok {
		return AITWAction{}, false
	}
	return AITWAction{Type: AITWDualPoint, Touch: yx(s[0]), Lift: yx(s[1])}, true
}

var (
	reActType  = regexp.MustCompile(`["']action_type["']\s*:\s*(-?\d+)`)
	reClickPt  = regexp.MustCompile(`["']click_point["']\s*:\s*[\(\[]\s*(-?[\d.]+)\s*,\s*(-?[\d.]+)\s*[\)\]]`)
	reTypedTxt = regexp.MustCompile(`["']typed_text["']\s*:\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')`)
)

// ParseAITWAction reads SeeClick's answer form, a Python dict literal:
// {"action_type": 4, "click_point": (x, y)} with x, y screen fractions;
// {"action_type": 3, "typed_text": "..."}; scrolls as action_type 0 (down),
// 1 (up), 8 (left), 9 (right); 5/6/7 press back/home/enter; 10/11 task
// complete/impossible. An answer without an action type, or a click without
// a point in [0,1], is an error (a wrong step, reported as unparsed).
func ParseAITWAction(text string) (AITWAction, error) {
	m := reActType.FindStringSubmatch(text)
	if m == nil {
		return AITWAction{}, fmt.Errorf("no \"action_type\" in the answer")
	}
	id, err := strconv.Atoi(m[1])
	if err != nil {
		return AITWAction{}, fmt.Errorf("action_type %q: %v", m[1], err)
	}
	if name, ok := aitwScrollIDs[id]; ok {
		a, _ := AITWScroll(name)
		return a, nil
	}
	switch id {
	case AITWDualPoint:
		c := reClickPt.FindStringSubmatch(text)
		if c == nil {
			return AITWAction{}, fmt.Errorf("action_type 4 without a \"click_point\": (x, y)")
		}
		x, err1 := strconv.ParseFloat(c[1], 64)
		y, err2 := strconv.ParseFloat(c[2], 64)
		if err1 != nil || err2 != nil || x < 0 || x > 1 || y < 0 || y > 1 {
			return AITWAction{}, fmt.Errorf("click_point (%s, %s) is not a pair of fractions in [0,1]", c[1], c[2])
		}
		return AITWAction{Type: AITWDualPoint, Touch: [2]float64{y, x}, Lift: [2]float64{y, x}}, nil
	case AITWType:
		t := reTypedTxt.FindStringSubmatch(text)
		if t == nil {
			return AITWAction{Type: AITWType}, nil
		}
		s := t[1] + t[2]
		s = strings.NewReplacer(`\"`, `"`, `\'`, `'`, `\\`, `\`).Replace(s)
		return AITWAction{Type: AITWType, Text: s}, nil
	case AITWPressBack, AITWPressHome, AITWPressEnter, AITWTaskComplete, AITWImpossible:
		return AITWAction{Type: id}, nil
	}
	return AITWAction{}, fmt.Errorf("unknown action_type %d", id)
}

// AITWCategories are the five AITW test categories in SeeClick's order.
var AITWCategories = []string{"general", "install", "googleapps", "single", "webshopping"}

// AITWStep is one scored step.
type AITWStep struct {
	Category string
	Match    bool // action matching (SeeClick's step accuracy)
	TextOK   bool // for TYPE references: SeeClick's text rule
	Ref      AITWAction
	Pred     AITWAction
	Parsed   bool // the answer was read (false: wrong format, a wrong step)
	Err      bool // the step could not be evaluated (counted wrong)
}

// AITWCount holds one category's counts.
type AITWCount struct {
	Steps       int `json:"steps"`
	Match       int `json:"match"`
	MatchText   int `json:"match_with_text"`
	TypeOK      int `json:"type_correct"`
	TextSteps   int `json:"text_steps"`
	TextOK      int `json:"text_correct"`
	ClickSteps  int `json:"click_steps"`
	ClickOK     int `json:"click_correct"`
	ScrollSteps int `json:"scroll_steps"`
	ScrollOK    int `json:"scroll_correct"`
	ScrollDirOK int `json:"scroll_direction_correct"`
	Unparsed    int `json:"unparsed"`
	Errors      int `json:"errors"`
}

// AITWCategory is a category's accuracies in [0,1].
type AITWCategory struct {
	ActionAcc     float64   `json:"action_acc"`
	ActionTextAcc float64   `json:"action_text_acc"`
	TypeAcc       float64   `json:"type_acc"`
	TextAcc       float64   `json:"text_acc"`
	ClickAcc      float64   `json:"click_acc"`
	ScrollAcc     float64   `json:"scroll_acc"`
	ScrollDirAcc  float64   `json:"scroll_dir_acc"`
	Counts        AITWCount `json:"counts"`
}

// AITWTally accumulates steps per category.
type AITWTally struct{ ByCat map[string]*AITWCount }

// Add scores one step into its category.
func (t *AITWTally) Add(s AITWStep) {
	if t.ByCat == nil {
		t.ByCat = map[string]*AITWCount{}
	}
	c := t.ByCat[s.Category]
	if c == nil {
		c = &AITWCount{}
		t.ByCat[s.Category] = c
	}
	c.Steps++
	if s.Err {
		c.Errors++
	}
	if !s.Parsed {
		c.Unparsed++
	}
	ok := s.Parsed && !s.Err
	match := ok && s.Match
	if match {
		c.Match++
	}
	if ok && s.Pred.Type == s.Ref.Type {
		c.TypeOK++
	}
	if s.Ref.Type == AITWType {
		c.TextSteps++
		if ok && s.TextOK {
			c.TextOK++
		}
		if match && s.Pred.Type == AITWType && s.Pred.Text != "" && AITWTextMatch(s.Pred.Text, s.Ref.Text) {
			c.MatchText++
		}
	} else if match {
		c.MatchText++
	}
	if s.Ref.Type == AITWDualPoint {
		if s.Ref.IsTap() {
			c.ClickSteps++
			if match {
				c.ClickOK++
			}
		} else {
			c.ScrollSteps++
			if match {
				c.ScrollOK++
				if !s.Pred.IsTap() && scrollDir(s.Pred) == scrollDir(s.Ref) {
					c.ScrollDirOK++
				}
			}
		}
	}
}

// Category computes one category's accuracies.
func (c AITWCount) Category() AITWCategory {
	return AITWCategory{ActionAcc: ratio(c.Match, c.Steps), ActionTextAcc: ratio(c.MatchText, c.Steps),
		TypeAcc: ratio(c.TypeOK, c.Steps), TextAcc: ratio(c.TextOK, c.TextSteps),
		ClickAcc: ratio(c.ClickOK, c.ClickSteps), ScrollAcc: ratio(c.ScrollOK, c.ScrollSteps),
		ScrollDirAcc: ratio(c.ScrollDirOK, c.ScrollSteps), Counts: c}
}

// Categories are the tallied category names, the five AITW ones first in
// their usual order.
func (t *AITWTally) Categories() []string {
	var out []string
	seen := map[string]bool{}
	for _, c := range AITWCategories {
		if t.ByCat[c] != nil {
			out = append(out, c)
			seen[c] = true
		}
	}
	var rest []string
	for c := range t.ByCat {
		if !seen[c] {
			rest = append(rest, c)
		}
	}
	sort.Strings(rest)
	return append(out, rest...)
}

// Overall is SeeClick's "average score": the unweighted mean of the
// categories' step accuracies (macro), with the micro accuracy alongside.
func (t *AITWTally) Overall() (macro, macroText, micro float64) {
	var all AITWCount
	cats := t.Categories()
	for _, name := range cats {
		c := t.ByCat[name]
		k := c.Category()
		macro += k.ActionAcc
		macroText += k.ActionTextAcc
		all.Steps += c.Steps
		all.Match += c.Match
	}
	if len(cats) > 0 {
		macro /= float64(len(cats))
		macroText /= float64(len(cats))
	}
	return macro, macroText, ratio(all.Match, all.Steps)
}

// ScoreAITWStep scores a parsed prediction (parseErr from ParseAITWAction)
// against the reference step.
func ScoreAITWStep(category string, pred AITWAction, parseErr error, ref AITWAction, boxes [][4]float64) AITWStep {
	s := AITWStep{Category: category, Ref: ref, Pred: pred, Parsed: parseErr == nil}
	if !s.Parsed {
		return s
	}
	s.Match = AITWMatch(pred, ref, boxes)
	if ref.Type == AITWType {
		s.TextOK = AITWTextMatch(pred.Text, ref.Text)
	}
	return s
}
