package cotracker

import (
	"os"
	"testing"

	"gorgonia.org/tensor"
)

// TestGoldensCrossPrecision is the float32 error report (make
// test-cotracker-goldens, COTRACKER_GOLDENS=all): the float32 model
// against every float64 golden, and the float64 model against every
// float32 golden (which itself carries PyTorch's float32 rounding). It
// only logs the errors.
func TestGoldensCrossPrecision(t *testing.T) {
	if os.Getenv("COTRACKER_GOLDENS") != "all" {
		t.Skip("COTRACKER_GOLDENS=all runs the float32 error report")
	}
	for _, g := range goldenSpecs(t) {
		if g.Full {
			continue
		}
		dt := tensor.Float32
		if g.Dtype == "f32" {
			dt = tensor.Float64
		}
		t.Run(g.Name, func(t *testing.T) {
			r := runGolden(t, g, dt)
			t.Logf("%s computed in %v: tracks %.3g px (model res %.3g px), vis logits %.3g, conf logits %.3g, visibility flips %d (%d at the threshold)",
				g.Name, dt, r.track, r.modelTrack, r.vis, r.conf, r.visFlips, r.visBorder)
		})
	}
}
