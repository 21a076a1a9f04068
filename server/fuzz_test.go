package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/magma-go/magma/som"
	"github.com/magma-go/magma/vision"
)

func drawTestMarks(w, h int) (*som.Result, error) {
	img := vision.Image{W: w, H: h, Pix: make([]uint8, w*h*3)}
	return som.DrawBoxes(img, []som.Box{{X1: 0, Y1: 0, X2: 20, Y2: 20}, {X1: 50, Y1: 10, X2: 90, Y2: 40}}, som.Options{})
}

var fuzzSeeds = []string{
	`{"model":"magma","messages":[{"role":"user","content":"hi"}],"max_tokens":3,"stop":["a"],"stream":true}`,
	`{"messages":[{"role":"user","content":[{"type":"text","text":"x"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}]}]}`,
	`{"messages":[{"role":"system","content":null}],"temperature":"hot"}`,
	`{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:;base64,"}}]}]}`,
	`{"messages":[{"role":"user","content":[{"type":"image_url","image_url":null}]}],"n":1,"seed":-5}`,
	`{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/webp;base64,UklGRiQAAABXRUJQVlA4IBgAAAAwAQCdASoBAAEAAwA0JaQAA3AA/vuUAAA="}}]}]}`,
	`{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/jpeg;base64,/9j/4AAQSkZJRgABAQ"}}]}]}`,
	`{"stop": 5}`, `{"stop": [1]}`, `[]`, `null`, `{"messages": [[]]}`, "\x00", `{"max_tokens": 1e999}`,
	`{"image": [[[1,2,3]]], "instruction": "x"}`, `{"image": {"__numpy__": "AAA=", "dtype": "|u1", "shape": [1,1,3]}}`,
	`{"encoded": "{\"image\": [[[0,0,0]]]}"}`, `{"image": [[[1,2,3],[1,2]]]}`, `{"image": "data:image/png;base64,AAAA"}`,
}

// FuzzRequestDecoding feeds arbitrary bodies to the request decoders of
// every endpoint (no model needed: everything before generation). Nothing
// may panic; every failure must be a 4xx apiError.
func FuzzRequestDecoding(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	s := New(Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), MaxImagePixels: 1 << 16})
	f.Fuzz(func(t *testing.T, body []byte) {
		ctx := context.Background()
		newReq := func() *http.Request {
			r := httptest.NewRequest("POST", "/v1/chat/completions", bytes.NewReader(body))
			r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, 1<<20)
			return r
		}
		check := func(err error) {
			if err == nil {
				return
			}
			ae := asAPIError(err)
			if ae.Status < 400 || ae.Status >= 500 {
				t.Fatalf("input error answered %d: %v", ae.Status, err)
			}
		}
		var cr chatRequest
		if err := decodeJSON(newReq(), &cr); err != nil {
			check(err)
		} else {
			_, err := s.parseChat(ctx, &cr)
			check(err)
		}
		var ar actRequest
		if err := decodeJSON(newReq(), &ar); err != nil {
			check(err)
		} else if len(bytes.TrimSpace(ar.Image)) > 0 {
			_, err := s.parseActImage(ctx, ar.Image)
			check(err)
		}
		var gr groundRequest
		check(decodeJSON(newReq(), &gr))
	})
}

// FuzzImageDecoding feeds arbitrary bytes to the image paths: raw bytes,
// base64, data: URIs and json_numpy/nested-list arrays.
func FuzzImageDecoding(f *testing.F) {
	png := "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
	for _, s := range []string{png, "data:image/png;base64," + png, "/9j/4AAQ", "UklGR", "[[[0,0,0]]]", `{"__numpy__":"AAAA","dtype":"|u1","shape":[1,1,3]}`, ""} {
		f.Add([]byte(s))
	}
	raw, _ := base64.StdEncoding.DecodeString(png)
	f.Add(raw)
	s := New(Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), MaxImagePixels: 1 << 16})
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx := context.Background()
		check := func(_ vision.Image, err error) {
			if err != nil {
				if ae := asAPIError(err); ae.Status != 400 {
					t.Fatalf("answered %d: %v", ae.Status, err)
				}
			}
		}
		check(s.decodeImageBytes(data, "image"))
		check(s.decodeImageString(ctx, string(data), "image"))
		check(s.decodeImageURL(ctx, "data:image/png;base64,"+string(data), "image"))
		if len(bytes.TrimSpace(data)) > 0 {
			check(s.parseActImage(ctx, data))
		}
		_, _ = decodeDataURI(string(data))
	})
}

// FuzzActPayload (issue 20) builds json_numpy /act payloads from arbitrary
// shapes and data, plain and {"encoded": ...}, and runs them through the
// request decoding, the image decoding and Magma's preprocessing (the path
// where an overflowing shape used to panic in a worker goroutine). Every
// failure must be a 4xx.
func FuzzActPayload(f *testing.F) {
	f.Add(int64(4611686018427387904), int64(4), int64(3), []byte{}, false, "__numpy__")
	f.Add(int64(4), int64(4611686018427387904), int64(3), []byte{}, true, "__ndarray__")
	f.Add(int64(2), int64(2), int64(3), make([]byte, 12), false, "__numpy__")
	f.Add(int64(3074457345618258603), int64(2), int64(3), []byte{0, 0, 0}, true, "__numpy__")
	f.Add(int64(-1), int64(2), int64(3), []byte{1}, false, "__numpy__")
	f.Add(int64(70), int64(1), int64(3), make([]byte, 210), false, "__ndarray__")
	s := New(Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), MaxImagePixels: 1 << 16})
	f.Fuzz(func(t *testing.T, h, w, c int64, pix []byte, encoded bool, key string) {
		img := map[string]any{key: base64.StdEncoding.EncodeToString(pix), "dtype": "|u1", "shape": []int64{h, w, c}}
		body, _ := json.Marshal(map[string]any{"image": img, "instruction": "x"})
		if encoded {
			body, _ = json.Marshal(map[string]string{"encoded": string(body)})
		}
		check := func(err error) {
			if err != nil {
				if ae := asAPIError(err); ae.Status < 400 || ae.Status >= 500 {
					t.Fatalf("answered %d: %v", ae.Status, err)
				}
			}
		}
		r := httptest.NewRequest("POST", "/act", bytes.NewReader(body))
		var req actRequest
		if err := decodeJSON(r, &req); err != nil {
			check(err)
			return
		}
		if req.Encoded != nil {
			req = actRequest{}
			if err := json.Unmarshal([]byte(*body2(body)), &req); err != nil {
				return
			}
		}
		im, err := s.parseActImage(context.Background(), req.Image)
		if err != nil {
			check(err)
			return
		}
		if _, err := vision.Preprocess(im, 64, 4, vision.CLIPMean, vision.CLIPStd); err != nil {
			t.Fatalf("a decoded image failed preprocessing: %v", err)
		}
	})
}

// body2 returns the inner JSON of an {"encoded": ...} body.
func body2(b []byte) *string {
	var e struct{ Encoded *string }
	_ = json.Unmarshal(b, &e)
	if e.Encoded == nil {
		s := ""
		return &s
	}
	return e.Encoded
}
