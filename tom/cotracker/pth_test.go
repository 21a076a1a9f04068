package cotracker

import (
	"os"
	"path/filepath"
	"testing"

	"gorgonia.org/tensor"
)

// TestPthCheckpoints (make test-cotracker-pth): the formula weights saved
// with torch.save by `scripts/cotracker/goldens.py --save-pth DIR`
// (float32, the official checkpoints' layout: offline.pth and online.pth
// hold the bare state dict with the time_emb buffer, offline_wrapped.pth
// holds {"model": state_dict}) load through model/pth into exactly the
// formula's float32 values, and the loaded offline and online models
// reproduce their float32 goldens. COTRACKER_PTH_DIR names DIR.
func TestPthCheckpoints(t *testing.T) {
	dir := os.Getenv("COTRACKER_PTH_DIR")
	if dir == "" {
		t.Skip("COTRACKER_PTH_DIR is not set (make test-cotracker-pth)")
	}
	specs := map[string]goldenSpec{}
	for _, g := range goldenSpecs(t) {
		if g.Dtype == "f32" && !g.Full {
			specs[g.Variant] = g
		}
	}
	for _, tc := range []struct{ file, variant string }{
		{"offline.pth", "offline"}, {"offline_wrapped.pth", "offline"}, {"online.pth", "online"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join(dir, tc.file)
			g, ok := specs[tc.variant]
			opts := Options{Resolution: [2]int{96, 128}}
			if ok {
				opts = Options{Resolution: g.Res, Iters: g.Iters}
			}
			if v, err := DetectVariant(path); err != nil || string(v) != tc.variant {
				t.Errorf("DetectVariant(%s) = %q, %v; want %q", path, v, err, tc.variant)
			}
			p, err := LoadPredictor(path, "", opts) // the variant told by time_emb
			if err != nil {
				t.Fatal(err)
			}
			ps, err := p.Model.Params()
			if err != nil {
				t.Fatal(err)
			}
			w := newGWeights(t, p.Model)
			for _, par := range ps {
				want, _ := w.Values(par.Name)
				got := par.T.Data().([]float32)
				for i := range got {
					if got[i] != float32(want[i]) {
						t.Fatalf("%s: %s[%d] = %v, formula %v", path, par.Name, i, got[i], float32(want[i]))
					}
				}
			}
			if !ok || tc.file == "offline_wrapped.pth" {
				return
			}
			gold := readGolden(t, filepath.Join(goldenDir(), g.File))
			pr, err := p.Grid(gClip(t, g.Params.T, g.Params.H, g.Params.W, g.Params.PanX, g.Params.PanY, g.Params.VX, g.Params.VY), g.Grid, 0)
			if err != nil {
				t.Fatal(err)
			}
			et, ev := maxAbs(pr.Tracks, gold["tracks"].F), maxAbs(pr.Model.VisLogits, gold["vis_logits"].F)
			t.Logf("%s on %s: tracks %.3g px, vis logits %.3g", path, g.Name, et, ev)
			if et > 1e-2 || ev > 1e-3 { // float32 bounds, as TestGoldens for a float32 golden
				t.Errorf("loaded %s differs from %s: tracks %g px, logits %g", path, g.Name, et, ev)
			}
		})
	}
	_ = tensor.Float32
}
