package server

import (
	"encoding/base64"
	"encoding/json"
	"image"
	"image/color"
	"os"
	"path/filepath"
	"testing"

	"gocv.io/x/gocv"
)

// videoDataURI writes a short MJPG clip with OpenCV and returns it as a
// data: URI.
func videoDataURI(t *testing.T, frames int) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "clip.avi")
	vw, err := gocv.VideoWriterFile(p, "MJPG", 10, 48, 32, true)
	if err != nil {
		t.Skipf("no MJPG writer: %v", err)
	}
	for i := 0; i < frames; i++ {
		m := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(40, float64(20*i), 200, 0), 32, 48, gocv.MatTypeCV8UC3)
		gocv.Rectangle(&m, image.Rect(i*3, 10, i*3+8, 18), color.RGBA{255, 255, 255, 255}, -1)
		if err := vw.Write(m); err != nil {
			t.Fatal(err)
		}
		m.Close()
	}
	vw.Close()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return "data:video/x-msvideo;base64," + base64.StdEncoding.EncodeToString(data)
}

// A video_url part is sampled to `frames` frames passed as that many images
// (the prompt grows by one image per frame); bad clips and too many frames
// are 400s with the parameter named.
func TestChatVideo(t *testing.T) {
	ts := startServer(t, Config{MaxImages: 6}, nil, "")
	clip := videoDataURI(t, 10)
	usage := func(frames int) (int, int, string) {
		content := []map[string]any{
			{"type": "video_url", "video_url": map[string]any{"url": clip, "frames": frames}},
			{"type": "text", "text": "What happens in the video?"},
		}
		resp, body := ts.post(t, "/v1/chat/completions", chatBody(content, map[string]any{"max_tokens": 3}))
		var cr chatResp
		_ = json.Unmarshal(body, &cr)
		return resp.StatusCode, cr.Usage.PromptTokens, string(body)
	}
	c2, p2, b2 := usage(2)
	c4, p4, b4 := usage(4)
	if c2 != 200 || c4 != 200 {
		t.Fatalf("video requests: %d %s / %d %s", c2, b2, c4, b4)
	}
	if p4 <= p2 {
		t.Errorf("4 frames give %d prompt positions, 2 frames %d", p4, p2)
	}
	for name, part := range map[string]map[string]any{
		"too many frames": {"type": "video_url", "video_url": map[string]any{"url": clip, "frames": 7}},
		"not a video":     {"type": "video_url", "video_url": map[string]any{"url": "data:video/mp4;base64,aGVsbG8gd29ybGQ="}},
		"image mime":      {"type": "video_url", "video_url": map[string]any{"url": "data:image/png;base64,aGVsbG8="}},
		"missing url":     {"type": "video_url", "video_url": map[string]any{}},
	} {
		resp, body := ts.post(t, "/v1/chat/completions", chatBody([]map[string]any{part, {"type": "text", "text": "hi"}}, map[string]any{"max_tokens": 2}))
		if resp.StatusCode != 400 {
			t.Errorf("%s: %d %s", name, resp.StatusCode, body)
		}
	}
}
