package cotracker

import (
	"os"
	"testing"

	"gorgonia.org/tensor"
)

// TestGoldensFloat32: the float32 model against the float64 goldens (the
// float32 error report); COTRACKER_GOLDENS=all runs it.
func TestGoldensFloat32(t *testing.T) {
	if os.Getenv("COTRACKER_GOLDENS") != "all" {
		t.Skip("COTRACKER_GOLDENS=all runs the float32 error report")
	}
	for _, g := range goldenSpecs(t) {
		if g.Full || g.Dtype != "f64" {
			continue
		}
		t.Run(g.Name, func(t *testing.T) {
			r := runGolden(t, g, tensor.Float32)
			t.Logf("%s computed in float32: tracks %.3g px (model res %.3g px), vis logits %.3g, conf logits %.3g, visibility flips %d (%d at the threshold)",
				g.Name, r.track, r.modelTrack, r.vis, r.conf, r.visFlips, r.visBorder)
		})
	}
}
