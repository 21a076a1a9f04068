package cotracker

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testClip is one entry of testdata/clips.json, written by goldens.py.
type testClip struct {
	T, H, W int
	PanX    int                 `json:"pan_x"`
	PanY    int                 `json:"pan_y"`
	VX      int                 `json:"vx"`
	VY      int                 `json:"vy"`
	SHA256  string              `json:"sha256"`
	Pixels  [][]json.RawMessage `json:"pixels"`
}

func (c testClip) params() ClipParams {
	return ClipParams{T: c.T, H: c.H, W: c.W, PanX: c.PanX, PanY: c.PanY, VX: c.VX, VY: c.VY}
}

func loadTestClips(t *testing.T) map[string]testClip {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "clips.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]testClip
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("testdata/clips.json: %v", err)
	}
	if len(m) == 0 {
		t.Fatal("testdata/clips.json lists no clip")
	}
	return m
}

// TestSyntheticClipMatchesPython checks every byte of each golden clip
// (sha256 over T,H,W,3) and a few pixels against goldens.py's make_clip.
func TestSyntheticClipMatchesPython(t *testing.T) {
	for name, c := range loadTestClips(t) {
		frames, err := SyntheticClip(c.params())
		if err != nil {
			t.Fatalf("clip %s: %v", name, err)
		}
		h := sha256.New()
		for _, f := range frames {
			h.Write(f.Pix)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != c.SHA256 {
			t.Errorf("clip %s: sha256 %s, python %s", name, got, c.SHA256)
		}
		for _, p := range c.Pixels {
			var tt, y, x int
			var rgb [3]int
			if len(p) != 4 || json.Unmarshal(p[0], &tt) != nil || json.Unmarshal(p[1], &y) != nil ||
				json.Unmarshal(p[2], &x) != nil || json.Unmarshal(p[3], &rgb) != nil {
				t.Fatalf("clip %s: bad pixel entry %s", name, p)
			}
			o := (y*c.W + x) * 3
			got := [3]int{int(frames[tt].Pix[o]), int(frames[tt].Pix[o+1]), int(frames[tt].Pix[o+2])}
			if got != rgb {
				t.Errorf("clip %s: pixel t=%d y=%d x=%d = %v, python %v", name, tt, y, x, got, rgb)
			}
		}
	}
}

// TestSyntheticClipFixedPixels pins a few values (written by goldens.py
// into clips.json) in the code, so a regenerated clips.json cannot drift.
func TestSyntheticClipFixedPixels(t *testing.T) {
	frames, err := SyntheticClip(ClipParams{T: 24, H: 72, W: 96, PanX: 1, VX: 1, VY: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		t, y, x int
		rgb     [3]uint8
	}{
		{0, 0, 0, [3]uint8{58, 171, 122}},
		{23, 71, 95, [3]uint8{129, 50, 115}},
	} {
		o := (tc.y*96 + tc.x) * 3
		got := [3]uint8{frames[tc.t].Pix[o], frames[tc.t].Pix[o+1], frames[tc.t].Pix[o+2]}
		if got != tc.rgb {
			t.Errorf("t=%d y=%d x=%d: %v, want %v", tc.t, tc.y, tc.x, got, tc.rgb)
		}
	}
}

func TestSyntheticClipErrors(t *testing.T) {
	for _, tc := range []struct {
		p    ClipParams
		want string
	}{
		{ClipParams{T: 0, H: 8, W: 8}, "positive"},
		{ClipParams{T: 2, H: -1, W: 8}, "positive"},
		{ClipParams{T: 1 << 20, H: 1 << 10, W: 1 << 10}, "more than"},
		{ClipParams{T: 2000, H: 8, W: 8, PanX: -1}, "pan"},
		{ClipParams{T: 2, H: 8, W: 8, PanY: 1 << 40}, "pan"},
		{ClipParams{T: 2, H: 8, W: 8, VX: 1 << 40}, "velocity"},
	} {
		_, err := SyntheticClip(tc.p)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one containing %q", tc.p, err, tc.want)
		}
	}
}
