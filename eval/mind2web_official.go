package eval

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/magma-go/magma/som"
	"github.com/magma-go/magma/vision"
)

// Mind2WebProtocol is how Magma evaluates Mind2Web (paper, Sec. B.3
// "Mind2Web"): "we directly exploit the candidate ranks provided in
// Mind2Web, and use the top 30 candidates for evaluation", on "a local
// screenshot as wide as original webpage but with maximal height 1344"
// cropped "centering around the ground truth boxes", with the candidates
// marked (SoM) and the Magma-Mind2Web-SoM prompt.
type Mind2WebProtocol struct {
	// TopK keeps the K best-ranked candidates (30); 0 keeps all.
	TopK int
	// MaxHeight crops taller screenshots to this height around the ground
	// truth box (1344); 0 keeps the full page.
	MaxHeight int
	// Project switches back to this project's own prompt (Mind2WebPrompt)
	// instead of the official one (Mind2WebSoMPrompt).
	Project bool
}

// OfficialMind2Web is the paper's protocol.
var OfficialMind2Web = Mind2WebProtocol{TopK: 30, MaxHeight: 1344}

// Mind2WebSoMPrompt is the question of Magma's Mind2Web SoM data
// (MagmaAI/Magma-Mind2Web-SoM, as quoted by users who loaded it): the
// web-navigation preamble, the answer dictionary, the task, the previous
// actions one per line in Mind2Web's action_reprs form ("[link] Store
// Locator -> CLICK") and the marked-candidates sentence. The published
// quote elides part of the preamble; the known sentences are used as given.
func Mind2WebSoMPrompt(task string, previous []string) string {
	var b strings.Builder
	b.WriteString("Imagine that you are imitating humans doing web navigation for a task step by step. ")
	b.WriteString(`Your answer is a dictionary {"ACTION": "CLICK" or "TYPE" or "SELECT", "MARK": a numeric id, e.g., 5, "VALUE": a string value for the action if applicable, otherwise None}. `)
	b.WriteString("You are asked to complete the following task: " + task + ". The previous actions you have taken: ")
	for _, p := range previous {
		b.WriteString("\n" + p)
	}
	b.WriteString("\nFor your convinience, I have labeled the candidates with numeric marks and bounding boxes on the screenshot. What is the next action you would take?")
	return b.String()
}

// RankedCandidates are candidate boxes per img_filename, best first.
type RankedCandidates map[string][]som.Box

// LoadRankedCandidates reads Mind2Web candidate ranks converted to JSON:
// {"img_filename": [{"bbox": [x1,y1,x2,y2], "rank": 0, "score": 0.93}, ...]}
// in pixels of the full screenshot; candidates are ordered by rank
// (ascending), else by score (descending), else kept in file order.
func LoadRankedCandidates(path string) (RankedCandidates, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("candidates: %w", err)
	}
	var raw map[string][]struct {
		BBox  []float64 `json:"bbox"`
		Rank  *float64  `json:"rank"`
		Score *float64  `json:"score"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("candidates %s (want {\"img_filename\": [{\"bbox\":[x1,y1,x2,y2],\"rank\":0}, ...]}): %w", path, err)
	}
	out := make(RankedCandidates, len(raw))
	for name, items := range raw {
		type cand struct {
			b    som.Box
			key  float64
			file int
		}
		cs := make([]cand, 0, len(items))
		for i, it := range items {
			if len(it.BBox) != 4 {
				return nil, fmt.Errorf("candidates %s: %s entry %d: bbox has %d numbers, want 4", path, name, i, len(it.BBox))
			}
			c := cand{b: som.Box{X1: it.BBox[0], Y1: it.BBox[1], X2: it.BBox[2], Y2: it.BBox[3]}, file: i, key: float64(i)}
			switch {
			case it.Rank != nil:
				c.key = *it.Rank
			case it.Score != nil:
				c.key = -*it.Score
			}
			cs = append(cs, c)
		}
		sort.SliceStable(cs, func(a, b int) bool { return cs[a].key < cs[b].key })
		boxes := make([]som.Box, len(cs))
		for i, c := range cs {
			boxes[i] = c.b
		}
		out[name] = boxes
	}
	return out, nil
}

// cropWindow is the vertical window [top, top+h) of a W x H page that is
// at most maxH tall and centred on the ground-truth box (shifted to stay
// inside the page).
func cropWindow(gt som.Box, H, maxH int) (top, h int) {
	if maxH <= 0 || H <= maxH {
		return 0, H
	}
	c := (gt.Y1 + gt.Y2) / 2
	top = int(math.Round(c - float64(maxH)/2))
	top = max(0, min(top, H-maxH))
	return top, maxH
}

// apply crops img around gt as p says and returns the cropped image, the
// ground-truth box and the top-K ranked candidates in its coordinates
// (those outside the window are dropped, those across it clipped).
func (p Mind2WebProtocol) apply(img vision.Image, gt som.Box, cands []som.Box) (vision.Image, som.Box, []som.Box) {
	top, h := cropWindow(gt, img.H, p.MaxHeight)
	if h != img.H {
		row := img.W * 3
		img = vision.Image{W: img.W, H: h, Pix: append([]uint8(nil), img.Pix[top*row:(top+h)*row]...)}
	}
	dy := float64(top)
	shift := func(b som.Box) som.Box { return som.Box{X1: b.X1, Y1: b.Y1 - dy, X2: b.X2, Y2: b.Y2 - dy} }
	gt = shift(gt)
	if p.TopK > 0 && len(cands) > p.TopK {
		cands = cands[:p.TopK]
	}
	var out []som.Box
	for _, c := range cands {
		c = shift(c)
		c = som.Box{X1: math.Max(c.X1, 0), Y1: math.Max(c.Y1, 0), X2: math.Min(c.X2, float64(img.W)), Y2: math.Min(c.Y2, float64(img.H))}
		if c.X2 <= c.X1 || c.Y2 <= c.Y1 {
			continue
		}
		out = append(out, c)
	}
	return img, gt, out
}

var (
	dictActionRE = regexp.MustCompile(`"ACTION"\s*:\s*"?([A-Za-z]+)`)
	dictMarkRE   = regexp.MustCompile(`"MARK"\s*:\s*"?(\d+)`)
	dictValueRE  = regexp.MustCompile(`"VALUE"\s*:\s*(?:"((?:[^"\\]|\\.)*)"|(None|null))`)
)

// parseSoMDict reads the official answer {"ACTION": "TYPE", "MARK": 13,
// "VALUE": "new york"} ("None" values are empty); ok is false when the text
// has no "ACTION" key.
func parseSoMDict(text string, a *WebAction) bool {
	m := dictActionRE.FindStringSubmatch(text)
	if m == nil {
		return false
	}
	a.Op = strings.ToUpper(m[1])
	if a.Op == "HOVER" || a.Op == "ENTER" {
		a.Op = "CLICK"
	}
	if mk := dictMarkRE.FindStringSubmatch(text); mk != nil {
		var id int
		if _, err := fmt.Sscan(mk[1], &id); err == nil {
			a.Mark, a.HasMark = id, true
		}
	}
	a.Value = ""
	if v := dictValueRE.FindStringSubmatch(text); v != nil && v[2] == "" && v[1] != "None" {
		a.Value = unescape(v[1])
	}
	return true
}
