package cotracker

import (
	"math"
	"strings"
	"testing"

	"gorgonia.org/tensor"

	"github.com/magma-go/magma/som"
	"github.com/magma-go/magma/vision/imaging"
)

// TestOnlineChunks: the online demo's windows (window 16, step 8): a
// window of the last 16 frames every 8 frames from frame 16 on, then the
// rest.
func TestOnlineChunks(t *testing.T) {
	for _, tc := range []struct {
		t    int
		want []onlineChunk
	}{
		{5, []onlineChunk{{0, 5}}},
		{8, []onlineChunk{{0, 8}}},
		{9, []onlineChunk{{0, 9}}},
		{16, []onlineChunk{{0, 16}}},
		{17, []onlineChunk{{0, 16}, {8, 17}}},
		{20, []onlineChunk{{0, 16}, {8, 20}}},
		{24, []onlineChunk{{0, 16}, {8, 24}}},
		{25, []onlineChunk{{0, 16}, {8, 24}, {16, 25}}},
		{33, []onlineChunk{{0, 16}, {8, 24}, {16, 32}, {24, 33}}},
	} {
		got := onlineChunks(tc.t, 16)
		if len(got) != len(tc.want) {
			t.Errorf("T=%d: %v, want %v", tc.t, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("T=%d: %v, want %v", tc.t, got, tc.want)
				break
			}
		}
	}
}

// TestGridPoints: get_points_on_a_grid at 384x512: margin 8 px, corners
// (8, 8) and (504, 376), the centre for size 1.
func TestGridPoints(t *testing.T) {
	for _, tc := range []struct {
		size       int
		first, end [2]float64
	}{
		{1, [2]float64{256, 192}, [2]float64{256, 192}},
		{2, [2]float64{8, 8}, [2]float64{504, 376}},
		{10, [2]float64{8, 8}, [2]float64{504, 376}},
	} {
		for _, f32 := range []bool{false, true} {
			g := GridPoints(tc.size, 384, 512, f32)
			if len(g) != tc.size*tc.size || g[0] != tc.first || g[len(g)-1] != tc.end {
				t.Errorf("size %d f32 %v: %d points, first %v last %v", tc.size, f32, len(g), g[0], g[len(g)-1])
			}
		}
	}
	g := GridPoints(10, 384, 512, false)
	if d := g[1][0] - g[0][0]; math.Abs(d-496.0/9) > 1e-12 || g[10][1] != g[0][1]+368.0/9 {
		t.Errorf("grid is not row-major with even steps: %v %v %v", g[0], g[1], g[10])
	}
}

// TestTimeEmbed: at window_len the table itself (sin then cos halves);
// otherwise the linear interpolation between table rows.
func TestTimeEmbed(t *testing.T) {
	tab := timeEmbed(16, 16, true)
	if tab[0] != 0 || tab[InputDim/2] != 1 || math.Abs(tab[InputDim+1]-float64(float32(math.Sin(math.Pow(10000, -1.0/555))))) > 0 {
		t.Errorf("table: %v %v %v", tab[0], tab[InputDim/2], tab[InputDim+1])
	}
	long := timeEmbed(60, 60, true)
	short := timeEmbed(60, 30, true)
	// 60 → 30: output o reads source 2o+0.5, halfway between rows 2o and 2o+1.
	for _, d := range []int{0, 7, 600} {
		want := (long[4*InputDim+d] + long[5*InputDim+d]) / 2
		if math.Abs(short[2*InputDim+d]-want) > 1e-15 {
			t.Errorf("interpolated[2][%d] = %v, want %v", d, short[2*InputDim+d], want)
		}
	}
}

// tinyModel is a formula-weight model small enough for unit tests.
func tinyModel(t *testing.T, v Variant) *Model {
	cfg, err := DefaultConfig(v)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Resolution, cfg.Iters = [2]int{32, 32}, 1
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Bind(newGWeights(t, m), "formula weights", tensor.Float32); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestTracker: the tom.Tracker layout (T rows of N points, row 0 the
// queries, all visible), for both variants, and clear errors.
func TestTracker(t *testing.T) {
	frames, err := SyntheticClip(ClipParams{T: 3, H: 24, W: 40, PanX: 1, VX: 1, VY: 1})
	if err != nil {
		t.Fatal(err)
	}
	qs := []som.Point{{X: 5, Y: 6}, {X: 30.5, Y: 20}}
	for _, v := range []Variant{Offline, Online} {
		tr := &Tracker{P: NewPredictor(tinyModel(t, v))}
		out, err := tr.Track(frames, qs)
		if err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		if len(out.Points) != 3 || len(out.Visible) != 3 {
			t.Fatalf("%s: %d rows", v, len(out.Points))
		}
		for r := range out.Points {
			if len(out.Points[r]) != 2 || len(out.Visible[r]) != 2 {
				t.Fatalf("%s: row %d has %d points", v, r, len(out.Points[r]))
			}
			for _, p := range out.Points[r] {
				if math.IsNaN(p.X) || math.IsNaN(p.Y) {
					t.Fatalf("%s: NaN track", v)
				}
			}
		}
		if out.Points[0][1] != qs[1] || !out.Visible[0][0] || !out.Visible[0][1] {
			t.Errorf("%s: row 0 %v %v, want the queries, visible", v, out.Points[0], out.Visible[0])
		}
		empty, err := tr.Track(frames, nil)
		if err != nil || len(empty.Points) != 3 || len(empty.Points[2]) != 0 {
			t.Errorf("%s: no queries: %v %v", v, empty, err)
		}
	}
	tr := &Tracker{P: NewPredictor(tinyModel(t, Offline))}
	bad := append([]imaging.Image(nil), frames...)
	bad[1] = imaging.Image{W: 8, H: 8, Pix: make([]uint8, 8*8*3)}
	for _, tc := range []struct {
		frames []imaging.Image
		want   string
	}{
		{nil, "no frames"},
		{bad, "frame 1 is 8x8"},
	} {
		if _, err := tr.Track(tc.frames, qs); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want %q", err, tc.want)
		}
	}
	if _, err := (&Tracker{}).Track(frames, qs); err == nil {
		t.Error("a tracker without a model tracked")
	}
}
