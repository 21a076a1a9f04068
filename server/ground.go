package server

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strings"

	"github.com/magma-go/magma/llm/tokenizer"
	"github.com/magma-go/magma/model/action"
	"github.com/magma-go/magma/som"
	"github.com/magma-go/magma/vision/imaging"
)

// groundRequest asks where to click: the screenshot, the task, and
// optionally the candidate boxes [[x1,y1,x2,y2],...] in pixels (proposed by
// som's classical proposer when absent).
type groundRequest struct {
	Model       string       `json:"model"`
	Image       *string      `json:"image"`
	Instruction *string      `json:"instruction"`
	Boxes       *[][]float64 `json:"boxes"`
	MaxTokens   *int         `json:"max_tokens"`
}

// maxGroundBoxes bounds the marks drawn on one image.
const maxGroundBoxes = 300

func (s *Server) handleGround(w http.ResponseWriter, r *http.Request) error {
	if _, _, err := s.ready(); err != nil {
		return err
	}
	var req groundRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if err := s.checkModel(req.Model); err != nil {
		return err
	}
	if req.Image == nil || *req.Image == "" {
		return badRequest("image", "invalid_value", "image (a data: URI or base64 PNG/JPEG/WebP) is required")
	}
	if req.Instruction == nil || strings.TrimSpace(*req.Instruction) == "" {
		return badRequest("instruction", "invalid_value", "instruction (a non-empty string) is required")
	}
	for _, tok := range []string{tokenizer.ImageToken, tokenizer.ImageStartToken, tokenizer.ImageEndToken} {
		if strings.Contains(*req.Instruction, tok) {
			return badRequest("instruction", "invalid_value", "instruction must not contain %q", tok)
		}
	}
	maxTok := 64
	if req.MaxTokens != nil {
		if *req.MaxTokens <= 0 {
			return badRequest("max_tokens", "invalid_value", "max_tokens must be a positive integer, got %d", *req.MaxTokens)
		}
		maxTok = *req.MaxTokens
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Timeout)
	defer cancel()
	img, err := s.decodeImageString(ctx, *req.Image, "image")
	if err != nil {
		return err
	}
	var boxes []som.Box
	proposed := false
	if req.Boxes != nil && len(*req.Boxes) > 0 {
		if len(*req.Boxes) > maxGroundBoxes {
			return badRequest("boxes", "invalid_value", "at most %d boxes, got %d", maxGroundBoxes, len(*req.Boxes))
		}
		for i, b := range *req.Boxes {
			if len(b) != 4 {
				return badRequest(fmt.Sprintf("boxes[%d]", i), "invalid_value", "box %d must be [x1,y1,x2,y2], got %d numbers", i, len(b))
			}
			boxes = append(boxes, som.Box{X1: b[0], Y1: b[1], X2: b[2], Y2: b[3]})
		}
		if boxes, err = som.ValidateBoxes(boxes, img.W, img.H); err != nil {
			return badRequest("boxes", "invalid_value", "%s", strings.TrimPrefix(err.Error(), "som: "))
		}
	} else {
		if boxes, err = s.proposer.Propose(img); err != nil {
			return badRequest("image", "invalid_image", "proposing boxes: %v", err)
		}
		if len(boxes) > maxGroundBoxes {
			boxes = boxes[:maxGroundBoxes]
		}
		proposed = true
	}
	marked := &som.Result{Image: img}
	if len(boxes) > 0 {
		if marked, err = som.DrawBoxes(img, boxes, som.Options{}); err != nil {
			return badRequest("boxes", "invalid_value", "drawing marks: %v", err)
		}
	}
	st, err := s.start(ctx, genRequest{
		messages:  []tokenizer.Message{{Role: "user", Content: tokenizer.ImageToken + "\n" + som.UIAgentPrompt(strings.TrimSpace(*req.Instruction))}},
		images:    []imaging.Image{marked.Image},
		maxTokens: maxTok,
	})
	if err != nil {
		return fieldParams(err, "instruction", "image")
	}
	ids, err := st.collect(ctx)
	if err != nil {
		return err
	}
	answer, err := st.tok.Decode(ids, true)
	if err != nil {
		return err
	}
	res := parseGrounding(answer, marked, img.W, img.H)
	res["answer"] = answer
	res["proposed"] = proposed
	res["marks"] = marked.Marks
	res["usage"] = usage{st.promptLen, len(ids), st.promptLen + len(ids)}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// parseGrounding reads a grounding answer with action.ParseAnswer: the
// released model's "(0.50,0.31) Mark: k" (0-1 fractions, SeeClick's form,
// which Magma's UI agent parses), a 256-grid "[x,y]", or boxes. The point
// is clamped into the image; the mark id is kept when such a mark was
// drawn. A mark without a point clicks the mark's box centre.
func parseGrounding(answer string, marked *som.Result, w, h int) map[string]any {
	out := map[string]any{"mark": nil, "point": nil, "box": nil}
	a := action.ParseAnswer(answer, w, h, action.ParseOptions{})
	var box *som.Box
	if a.HasMark {
		if reg, ok := marked.ByID(a.Mark); ok {
			out["mark"] = a.Mark
			b := reg.Box
			box = &b
			out["box"] = []float64{b.X1, b.Y1, b.X2, b.Y2}
		}
	}
	if a.HasPoint {
		out["point"] = []float64{clamp(a.Point.X, 0, float64(w-1)), clamp(a.Point.Y, 0, float64(h-1))}
	} else if box != nil {
		c := box.Center()
		out["point"] = []float64{c.X, c.Y}
	}
	return out
}

func clamp(v, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, v)) }
