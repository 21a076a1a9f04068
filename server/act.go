package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/magma-go/magma/llm/tokenizer"
	"github.com/magma-go/magma/model/action"
	"github.com/magma-go/magma/vision/imaging"
)

// loadDatasetStats reads the model directory's action statistics
// (action.DatasetStatisticsFile, OpenVLA's file, never from a request); a
// missing file is reported as an error value (the server still starts;
// /act then refuses).
func loadDatasetStats(dir string) (map[string]*action.DatasetStats, error) {
	path := filepath.Join(dir, action.DatasetStatisticsFile)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no %s in the model directory", action.DatasetStatisticsFile)
	}
	return action.ReadDatasetStatistics(path)
}

// actRequest is OpenVLA's deploy.py request: image HxWx3 uint8 (nested
// lists, or json_numpy's {"__numpy__": base64, "dtype", "shape"}),
// instruction, unnorm_key; or {"encoded": "<that JSON as a string>"}.
type actRequest struct {
	Image       json.RawMessage `json:"image"`
	Instruction *string         `json:"instruction"`
	UnnormKey   *string         `json:"unnorm_key"`
	Encoded     *string         `json:"encoded"`
}

// maxActionDim bounds the action dimension read from the statistics.
const maxActionDim = 64

func (s *Server) handleAct(w http.ResponseWriter, r *http.Request) error {
	if _, _, err := s.ready(); err != nil {
		return err
	}
	var req actRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	encoded := req.Encoded != nil
	if encoded {
		inner := actRequest{}
		dec := json.NewDecoder(strings.NewReader(*req.Encoded))
		if err := dec.Decode(&inner); err != nil {
			e := jsonError(err).(*apiError)
			e.Param, e.Message = strPtr("encoded"), "encoded: "+e.Message
			return e
		}
		if inner.Encoded != nil {
			return badRequest("encoded", "invalid_value", "encoded payloads do not nest")
		}
		req = inner
	}
	if req.Instruction == nil || strings.TrimSpace(*req.Instruction) == "" {
		return badRequest("instruction", "invalid_value", "instruction (a non-empty string) is required")
	}
	if len(bytes.TrimSpace(req.Image)) == 0 || bytes.Equal(bytes.TrimSpace(req.Image), []byte("null")) {
		return badRequest("image", "invalid_value", "image (HxWx3 uint8 array) is required")
	}
	s.mu.RLock()
	stats, statsErr := s.stats, s.statsErr
	s.mu.RUnlock()
	if statsErr != nil {
		return newAPIError(http.StatusNotFound, "invalid_request_error", "dataset_statistics_missing",
			"/act needs action statistics to un-normalise actions: %v", statsErr)
	}
	key := ""
	if req.UnnormKey != nil {
		key = *req.UnnormKey
	}
	if key == "" && len(stats) == 1 {
		for k := range stats {
			key = k
		}
	}
	st, ok := stats[key]
	if !ok {
		names := slices.Sorted(func(yield func(string) bool) {
			for k := range stats {
				if !yield(k) {
					return
				}
			}
		})
		return &apiError{Status: http.StatusBadRequest, Type: "invalid_request_error", Param: strPtr("unnorm_key"),
			Code: strPtr("unknown_unnorm_key"), Message: fmt.Sprintf("unnorm_key %q is not in %s; available: %s",
				key, action.DatasetStatisticsFile, strings.Join(names, ", "))}
	}
	dim := len(st.Action.Q01)
	if dim > maxActionDim {
		return newAPIError(http.StatusBadRequest, "invalid_request_error", "invalid_statistics", "action dimension %d is over %d", dim, maxActionDim)
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Timeout)
	defer cancel()
	img, err := s.parseActImage(ctx, req.Image)
	if err != nil {
		return err
	}
	// OpenVLA's prompt (it lower-cases the instruction), in Magma's chat format.
	q := action.Prompt(*req.Instruction)
	for _, tok := range []string{tokenizer.ImageToken, tokenizer.ImageStartToken, tokenizer.ImageEndToken} {
		if strings.Contains(q, tok) {
			return badRequest("instruction", "invalid_value", "instruction must not contain %q", tok)
		}
	}
	started, err := s.start(ctx, genRequest{
		messages:  []tokenizer.Message{{Role: "user", Content: tokenizer.ImageToken + "\n" + q}},
		images:    []imaging.Image{img},
		maxTokens: dim, noStop: true,
	})
	if err != nil {
		return fieldParams(err, "instruction", "image")
	}
	ids, err := started.collect(ctx)
	if err != nil {
		return err
	}
	if len(ids) != dim {
		return fmt.Errorf("generated %d action tokens, want %d", len(ids), dim)
	}
	at, err := action.NewTokenizer(action.LlamaBaseVocab)
	if err != nil {
		return err
	}
	vec := make([]float64, dim)
	for i, id := range ids {
		a := at.Value(id) // clipped to the action bins as OpenVLA decodes
		if st.Action.Mask == nil || st.Action.Mask[i] {
			a = action.UnnormalizeQ99(a, st.Action.Q01[i], st.Action.Q99[i])
		}
		vec[i] = a
	}
	idStr := make([]string, len(ids))
	for i, id := range ids {
		idStr[i] = strconv.Itoa(id)
	}
	w.Header().Set("X-Magma-Action-Tokens", strings.Join(idStr, ","))
	w.Header().Set("X-Magma-Unnorm-Key", key)
	if encoded {
		// deploy.py answers an encoded request with json_numpy.dumps(action): a JSON string.
		b, _ := json.Marshal(vec)
		writeJSON(w, http.StatusOK, string(b))
		return nil
	}
	writeJSON(w, http.StatusOK, vec)
	return nil
}

// parseActImage decodes the OpenVLA image: nested lists [H][W][3] of
// integers 0..255, json_numpy's {"__numpy__"|"__ndarray__": base64,
// "dtype": "|u1"/"uint8", "shape": [H, W, 3]}, or a base64/data: URI PNG,
// JPEG or WebP string. The image is used as sent: LIBERO clients rotate
// their frames 180 degrees themselves, as OpenVLA's evaluation does.
func (s *Server) parseActImage(ctx context.Context, raw json.RawMessage) (imaging.Image, error) {
	raw = bytes.TrimSpace(raw)
	switch raw[0] {
	case '"':
		var str string
		if err := json.Unmarshal(raw, &str); err != nil {
			return imaging.Image{}, badRequest("image", "invalid_image", "image: %v", err)
		}
		return s.decodeImageString(ctx, str, "image")
	case '{':
		var np map[string]json.RawMessage
		if err := json.Unmarshal(raw, &np); err != nil {
			return imaging.Image{}, badRequest("image", "invalid_image", "image: %v", err)
		}
		return s.numpyImage(np)
	case '[':
		return s.nestedImage(raw)
	}
	return imaging.Image{}, badRequest("image", "invalid_type", "image must be an HxWx3 uint8 array (nested lists or json_numpy)")
}

func (s *Server) numpyImage(np map[string]json.RawMessage) (imaging.Image, error) {
	payload, ok := np["__numpy__"]
	if !ok {
		payload, ok = np["__ndarray__"]
	}
	if !ok {
		return imaging.Image{}, badRequest("image", "invalid_image", `image object must be json_numpy's {"__numpy__": base64, "dtype", "shape"}`)
	}
	var b64, dtype string
	var shape []int
	if json.Unmarshal(payload, &b64) != nil || json.Unmarshal(np["dtype"], &dtype) != nil || json.Unmarshal(np["shape"], &shape) != nil {
		return imaging.Image{}, badRequest("image", "invalid_image", "json_numpy image needs a base64 string, a dtype string and an integer shape")
	}
	switch dtype {
	case "|u1", "uint8", "<u1", ">u1", "u1", "=u1":
	default:
		return imaging.Image{}, badRequest("image", "invalid_image", "image dtype %q must be uint8", dtype)
	}
	if len(shape) != 3 || shape[2] != 3 || shape[0] <= 0 || shape[1] <= 0 {
		return imaging.Image{}, badRequest("image", "invalid_image", "image shape %v must be [H, W, 3]", shape)
	}
	// Compare before multiplying: H*W*3 of a hostile shape overflows.
	if n, ok := imaging.PixelCount(shape[1], shape[0]); !ok || n > int64(s.cfg.MaxImagePixels) {
		return imaging.Image{}, badRequest("image", "image_too_large", "image shape %v is over the limit of %d pixels", shape, s.cfg.MaxImagePixels)
	}
	need := shape[0] * shape[1] * 3
	if n := base64.StdEncoding.EncodedLen(need); len(b64) > n+4 {
		return imaging.Image{}, badRequest("image", "invalid_image", "image data is %d base64 characters; shape %v needs %d bytes, %d characters", len(b64), shape, need, n)
	}
	pix, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		// base64.CorruptInputError names the offset of the first bad character.
		return imaging.Image{}, badRequest("image", "invalid_image", "image data is not valid base64: %v", err)
	}
	if len(pix) != need {
		return imaging.Image{}, badRequest("image", "invalid_image", "image data has %d bytes, shape %v needs %d", len(pix), shape, need)
	}
	return imaging.Image{W: shape[1], H: shape[0], Pix: pix}, nil
}

// nestedImage reads [H][W][3] integers with a streaming decoder (no float
// boxing of every pixel).
func (s *Server) nestedImage(raw json.RawMessage) (imaging.Image, error) {
	bad := func(format string, a ...any) (imaging.Image, error) {
		return imaging.Image{}, badRequest("image", "invalid_image", "image: "+format, a...)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	expect := func(d json.Delim) bool {
		t, err := dec.Token()
		return err == nil && t == d
	}
	if !expect('[') {
		return bad("expected [")
	}
	var pix []uint8
	H, W := 0, -1
	for dec.More() {
		if !expect('[') {
			return bad("row %d is not an array", H)
		}
		w := 0
		for dec.More() {
			if !expect('[') {
				return bad("pixel (%d,%d) is not an array of 3 values", H, w)
			}
			c := 0
			for dec.More() {
				t, err := dec.Token()
				if err != nil {
					return bad("%v", err)
				}
				n, ok := t.(json.Number)
				if !ok {
					return bad("pixel (%d,%d) has a non-number", H, w)
				}
				v, err := strconv.ParseFloat(string(n), 64)
				if err != nil || v < 0 || v > 255 || v != math.Trunc(v) {
					return bad("pixel (%d,%d) value %s is not an integer in 0..255", H, w, n)
				}
				if c >= 3 {
					return bad("pixel (%d,%d) has more than 3 channels", H, w)
				}
				pix = append(pix, uint8(v))
				c++
			}
			if c != 3 || !expect(']') {
				return bad("pixel (%d,%d) has %d channels, want 3", H, w, c)
			}
			w++
			if int64(w)*int64(H+1) > int64(s.cfg.MaxImagePixels) {
				return imaging.Image{}, badRequest("image", "image_too_large", "image is over the limit of %d pixels", s.cfg.MaxImagePixels)
			}
		}
		if !expect(']') {
			return bad("row %d is not closed", H)
		}
		if W >= 0 && w != W {
			return bad("row %d has %d pixels, row 0 has %d", H, w, W)
		}
		W = w
		H++
	}
	if !expect(']') {
		return bad("array not closed")
	}
	if H == 0 || W <= 0 {
		return bad("empty image")
	}
	return imaging.Image{W: W, H: H, Pix: pix}, nil
}

// fieldParams renames the param of an error from start, which names the
// chat request's "messages", to the field of an /act or /v1/ground request
// that caused it: the image for image errors, else the instruction (the
// only text of the prompt).
func fieldParams(err error, text, image string) error {
	var ae *apiError
	if !errors.As(err, &ae) || ae.Param == nil || *ae.Param != "messages" {
		return err
	}
	c := *ae
	c.Param = strPtr(text)
	if c.Code != nil && *c.Code == "invalid_image" {
		c.Param = strPtr(image)
	}
	return &c
}
