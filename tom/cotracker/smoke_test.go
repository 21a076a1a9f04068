package cotracker

import (
	"math/rand"
	"testing"
	"time"

	"gorgonia.org/tensor"
)

func TestSmokeOffline(t *testing.T) {
	cfg := Config{Variant: Offline, WindowLen: 60, Resolution: [2]int{64, 96}, Iters: 2}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(1))
	ps, _ := m.Params()
	for _, p := range ps {
		d := p.T.Data().([]float32)
		sh := p.T.Shape()
		fan := 1
		for _, s := range sh[1:] {
			fan *= s
		}
		for i := range d {
			d[i] = float32((rng.Float64()*2 - 1) / float64(fan))
		}
	}
	if err := m.SetDtype(tensor.Float64); err != nil {
		t.Fatal(err)
	}
	c := Clip{T: 5, H: 64, W: 96, Data: make([]float64, 5*64*96*3)}
	for i := range c.Data {
		c.Data[i] = float64(rng.Intn(256))
	}
	st := time.Now()
	r, err := m.ForwardOffline(c, []Query{{0, 10, 20}, {0, 50.5, 30}, {1, 80, 60}})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(time.Since(st), r.Coords[:6], r.VisLogits[:3])
}
