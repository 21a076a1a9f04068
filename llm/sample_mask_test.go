package llm

import (
	"math"
	"testing"
)

// TestSampleAllowedMask (issue 20, point 2): ids outside the mask are never
// produced, greedy or sampled, even when they carry the largest logits.
func TestSampleAllowedMask(t *testing.T) {
	logits := []float32{0.5, 9, 1, float32(math.NaN()), 8, 0.7}
	allowed := []bool{true, false, true, false, false} // id 5 is past the mask
	for _, o := range []SampleOptions{{}, {Temperature: 1}, {Temperature: 2, TopK: 2}, {Temperature: 1, TopP: 0.9}} {
		o.Allowed = allowed
		s, err := NewSampler(o, 3)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 200; i++ {
			id, err := s.Sample(logits)
			if err != nil {
				t.Fatalf("%+v: %v", o, err)
			}
			if id != 0 && id != 2 {
				t.Fatalf("%+v: sampled id %d outside the mask", o, id)
			}
		}
	}
	if _, err := NewSampler(SampleOptions{Allowed: []bool{false, false}}, 0); err == nil {
		t.Fatal("a mask allowing nothing was accepted")
	}
}
