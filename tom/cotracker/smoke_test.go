package cotracker

import (
	"encoding/binary"
	"math"
	"os"
	"testing"
	"time"

	"gorgonia.org/tensor"
)

func readF64(t *testing.T, p string) []float64 {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Skip(err)
	}
	v := make([]float64, len(b)/8)
	for i := range v {
		v[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
	}
	return v
}

func TestDevOffline(t *testing.T) {
	cfg := Config{Variant: Offline, WindowLen: 60, Resolution: [2]int{64, 96}, Iters: 2}
	m, err := LoadModel("/tmp/cotdev/offline.pth", cfg, tensor.Float64)
	if err != nil {
		t.Fatal(err)
	}
	T, H, W := 5, 64, 96
	v := readF64(t, "/tmp/cotdev/video.f64") // [T,3,H,W]
	c := Clip{T: T, H: H, W: W, Data: make([]float64, T*H*W*3)}
	for f := 0; f < T; f++ {
		for ch := 0; ch < 3; ch++ {
			for p := 0; p < H*W; p++ {
				c.Data[(f*H*W+p)*3+ch] = v[(f*3+ch)*H*W+p]
			}
		}
	}
	st := time.Now()
	r, err := m.ForwardOffline(c, []Query{{0, 10, 20}, {0, 50.5, 30}, {1, 80, 60}})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(time.Since(st))
	tr := readF64(t, "/tmp/cotdev/tracks.f64")
	vl := readF64(t, "/tmp/cotdev/vis.f64")
	var e1, e2 float64
	for i := range tr {
		e1 = math.Max(e1, math.Abs(tr[i]-r.Coords[i]))
	}
	for i := range vl {
		e2 = math.Max(e2, math.Abs(vl[i]-r.VisLogits[i]))
	}
	t.Logf("track err %g logit err %g; %v vs %v", e1, e2, r.Coords[:4], tr[:4])
}

func TestDevOnline(t *testing.T) {
	cfg := Config{Variant: Online, WindowLen: 16, Resolution: [2]int{64, 96}, Iters: 2}
	m, err := LoadModel("/tmp/cotdev/online.pth", cfg, tensor.Float64)
	if err != nil {
		t.Fatal(err)
	}
	T, H, W := 21, 64, 96
	v := readF64(t, "/tmp/cotdev/video_on.f64")
	c := Clip{T: T, H: H, W: W, Data: make([]float64, T*H*W*3)}
	for f := 0; f < T; f++ {
		for ch := 0; ch < 3; ch++ {
			for p := 0; p < H*W; p++ {
				c.Data[(f*H*W+p)*3+ch] = v[(f*3+ch)*H*W+p]
			}
		}
	}
	st := time.Now()
	r, err := m.ForwardOnline(c, []Query{{0, 10, 20}, {3, 50.5, 30}, {10, 80, 60}, {17, 30, 40}})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(time.Since(st))
	tr := readF64(t, "/tmp/cotdev/tracks_on.f64")
	vl := readF64(t, "/tmp/cotdev/vis_on.f64")
	cl := readF64(t, "/tmp/cotdev/conf_on.f64")
	var e1, e2 float64
	for i := range tr {
		e1 = math.Max(e1, math.Abs(tr[i]-r.Coords[i]))
	}
	for i := range vl {
		e2 = math.Max(e2, math.Abs(vl[i]-r.VisLogits[i]))
		e2 = math.Max(e2, math.Abs(cl[i]-r.ConfLogits[i]))
	}
	t.Logf("track err %g logit err %g; %v vs %v", e1, e2, r.Coords[len(tr)-8:], tr[len(tr)-8:])
}
