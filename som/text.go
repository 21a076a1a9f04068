package som

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// GridCoord is the coordinate written in SoM/ToM training text: Magma's
// int(256*v/extent), clamped to 0..255 so that v = extent (the right or
// bottom edge) gives 255, not 256, and points pushed slightly outside the
// image (e.g. by camera-motion compensation) stay on the grid. A
// non-positive extent or non-finite v gives 0.
func GridCoord(v float64, extent int) int {
	if extent <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	q := math.Floor(CoordGrid * v / float64(extent))
	if q < 0 {
		return 0
	}
	if q > CoordGrid-1 {
		return CoordGrid - 1
	}
	return int(q)
}

// GridPoint applies GridCoord to x (width w) and y (height h).
func GridPoint(x, y float64, w, h int) (int, int) {
	return GridCoord(x, w), GridCoord(y, h)
}

// SoMQuestion is Magma's SoM pretraining question.
const SoMQuestion = "The image is split into 256x256 grids, and labeled with numeric marks.\nPlease locate all the numerical marks in the image."

// SoMAnswer is Magma's SoM answer "Mark 3 at [x,y]. Mark 7 at [x,y]" (marks
// sorted by id, grid coordinates). It is FormatMarks.
func SoMAnswer(marks []Mark) string { return FormatMarks(marks) }

// UIAgentPrompt is the UI-agent question: In this view I need to click a
// button to "{task}"? Provide the coordinates and the mark index of the
// containing bounding box if applicable.
func UIAgentPrompt(task string) string {
	return "In this view I need to click a button to \"" + task + "\"? Provide the coordinates and the mark index of the containing bounding box if applicable."
}

// MarkSuffix is the suffix Magma's UI grounding answers carry: " Mark: {id}".
func MarkSuffix(id int) string { return " Mark: " + strconv.Itoa(id) }

// FormatFrac is SeeClick's point string, the form Magma's UI answers use
// and its UI agent reads back (agents/ui_agent/util/process_utils.py:
// bbox_2_point writes f"{item:.2f}" as "({},{})", pred_2_point takes the
// two floats as fractions of the width and height): "(0.50,0.99)" for
// pixel (x, y) of a w x h image, clamped to [0,1].
func FormatFrac(x, y float64, w, h int) string {
	return "(" + frac(x, w) + "," + frac(y, h) + ")"
}

// FormatFracBox is SeeClick's box string (bbox_2_bbox):
// "(0.10,0.20,0.30,0.40)" for pixel box b of a w x h image.
func FormatFracBox(b Box, w, h int) string {
	return "(" + frac(b.X1, w) + "," + frac(b.Y1, h) + "," + frac(b.X2, w) + "," + frac(b.Y2, h) + ")"
}

func frac(v float64, extent int) string {
	f := 0.0
	if extent > 0 && !math.IsNaN(v) {
		f = math.Min(math.Max(v/float64(extent), 0), 1)
	}
	return strconv.FormatFloat(f, 'f', 2, 64)
}

// UIGroundingAnswer is the UI grounding target as the released model
// answers: the click point as 0-1 fractions followed by the mark of the
// containing box, "(0.50,0.99) Mark: 12" (SeeClick's point form plus
// Magma's " Mark: {id}", which its SeeClick loader strips with
// r' Mark: \d+' for unmarked images). (x, y) is the box centre (or click
// point) in pixels of a w x h image.
func UIGroundingAnswer(x, y float64, w, h, id int) string {
	return FormatFrac(x, y, w, h) + MarkSuffix(id)
}

var markSuffixRE = regexp.MustCompile(` [Mm]ark: \d+`)

// StripMarkIDs removes every " Mark: N" (or " mark: N") from s and trims
// it, as Magma does to train on the unmarked image.
func StripMarkIDs(s string) string {
	return strings.TrimSpace(markSuffixRE.ReplaceAllString(s, ""))
}

var answerMarkRE = regexp.MustCompile(`[Mm]ark:\s*(\d+)`)

// ParseMarkID returns the id in the first "Mark: N" of a model answer.
func ParseMarkID(s string) (int, bool) {
	m := answerMarkRE.FindStringSubmatch(s)
	if m == nil {
		return 0, false
	}
	id, err := strconv.Atoi(m[1])
	return id, err == nil
}

// ParseBoxesJSON reads the CLI boxes file: [{"bbox":[x1,y1,x2,y2]}, ...] in pixels.
func ParseBoxesJSON(data []byte) ([]Box, error) {
	var raw []struct {
		BBox []float64 `json:"bbox"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("som: boxes JSON (want [{\"bbox\":[x1,y1,x2,y2]},...]): %w", err)
	}
	out := make([]Box, len(raw))
	for i, r := range raw {
		if len(r.BBox) != 4 {
			return nil, fmt.Errorf("som: boxes JSON entry %d: bbox has %d numbers, want 4", i, len(r.BBox))
		}
		out[i] = Box{r.BBox[0], r.BBox[1], r.BBox[2], r.BBox[3]}
	}
	return out, nil
}

// ParsePointsJSON reads the CLI points file: [{"point":[x,y]}, ...] or
// [[x,y], ...] in pixels.
func ParsePointsJSON(data []byte) ([]Point, error) {
	var raw []json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("som: points JSON (want [{\"point\":[x,y]},...] or [[x,y],...]): %w", err)
	}
	out := make([]Point, len(raw))
	for i, r := range raw {
		var xy []float64
		if err := json.Unmarshal(r, &xy); err != nil {
			var obj struct {
				Point []float64 `json:"point"`
			}
			if err2 := json.Unmarshal(r, &obj); err2 != nil {
				return nil, fmt.Errorf("som: points JSON entry %d: %v", i, err2)
			}
			xy = obj.Point
		}
		if len(xy) != 2 {
			return nil, fmt.Errorf("som: points JSON entry %d has %d numbers, want 2", i, len(xy))
		}
		out[i] = Point{xy[0], xy[1]}
	}
	return out, nil
}
