package llm

import (
	"math"
	"slices"
	"testing"
)

// TestSamplePenalties (issue 31, point 9): OpenAI's presence and frequency
// penalties lower logit[j] by count[j]*frequency + (count[j]>0)*presence,
// counting the tokens this sampler produced; greedy decoding follows the
// penalised logits and the caller's logits are left untouched.
func TestSamplePenalties(t *testing.T) {
	logits := []float32{1, 0.9, 0}
	for _, c := range []struct {
		name string
		opt  SampleOptions
		want []int
	}{
		{"none", SampleOptions{}, []int{0, 0, 0, 0}},
		{"presence 0.5", SampleOptions{PresencePenalty: 0.5}, []int{0, 1, 0, 0}},
		{"frequency 0.3", SampleOptions{FrequencyPenalty: 0.3}, []int{0, 1, 0, 1}},
		{"both", SampleOptions{FrequencyPenalty: 0.6, PresencePenalty: 0.5}, []int{0, 1, 2, 0}},
		{"negative presence", SampleOptions{PresencePenalty: -1}, []int{0, 0, 0, 0}},
		{"masked id stays masked", SampleOptions{PresencePenalty: 2, Allowed: []bool{true, false, true}}, []int{0, 2, 0, 0}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := NewSampler(c.opt, 1)
			if err != nil {
				t.Fatal(err)
			}
			in := slices.Clone(logits)
			var got []int
			for range c.want {
				id, err := s.Sample(in)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, id)
			}
			if !slices.Equal(got, c.want) {
				t.Fatalf("tokens %v, want %v", got, c.want)
			}
			if !slices.Equal(in, logits) {
				t.Fatalf("the caller's logits were changed: %v", in)
			}
		})
	}
	// Sampled (T=1): a large presence penalty makes a repeat all but impossible.
	s, err := NewSampler(SampleOptions{Temperature: 1, PresencePenalty: 2, FrequencyPenalty: 2}, 5)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]int{}
	for range 3 {
		id, err := s.Sample([]float32{0, 0, 0, -30, -30, -30})
		if err != nil {
			t.Fatal(err)
		}
		seen[id]++
	}
	if len(seen) != 3 {
		t.Fatalf("with penalties 2/2 three draws from three equal tokens repeated one: %v", seen)
	}
	for _, o := range []SampleOptions{{PresencePenalty: math.NaN()}, {FrequencyPenalty: math.Inf(1)}} {
		if _, err := NewSampler(o, 1); err == nil {
			t.Fatalf("%+v accepted", o)
		}
	}
}

// TestSampleLogProbs (issue 31, point 9): log-softmax of the masked,
// penalised logits (before temperature), the chosen token's value and the
// top alternatives sorted by probability, ties by lower id.
func TestSampleLogProbs(t *testing.T) {
	ninf := float32(math.Inf(-1))
	logits := []float32{1, 2, 0, 2, 9, ninf}
	allowed := []bool{true, true, true, true, false, true} // 9 is masked
	logZ := math.Log(math.Exp(1) + 2*math.Exp(2) + 1)
	for _, temp := range []float64{0, 0.5, 1} {
		s, err := NewSampler(SampleOptions{Temperature: temp, Allowed: allowed}, 2)
		if err != nil {
			t.Fatal(err)
		}
		id, lp, err := s.SampleLogProbs(logits, 10)
		if err != nil {
			t.Fatal(err)
		}
		if lp.ID != id || math.Abs(lp.LogProb-(float64(logits[id])-logZ)) > 1e-9 {
			t.Fatalf("T=%v: chosen %d, logprob %+v, want %v", temp, id, lp.TokenLogProb, float64(logits[id])-logZ)
		}
		if temp == 0 && (id != 1 || lp.LogProb != lp.Top[0].LogProb) {
			t.Fatalf("greedy picked %d (%v), top %+v", id, lp.LogProb, lp.Top)
		}
		wantIDs := []int{1, 3, 0, 2} // masked 4 and -Inf 5 left out
		var ids []int
		var sum float64
		for _, e := range lp.Top {
			ids = append(ids, e.ID)
			sum += math.Exp(e.LogProb)
			if math.Abs(e.LogProb-(float64(logits[e.ID])-logZ)) > 1e-9 {
				t.Fatalf("top %+v, want %v", e, float64(logits[e.ID])-logZ)
			}
		}
		if !slices.Equal(ids, wantIDs) || math.Abs(sum-1) > 1e-9 {
			t.Fatalf("T=%v: top ids %v (probabilities sum %v), want %v summing to 1", temp, ids, sum, wantIDs)
		}
	}
	// top is clamped; 0 gives no alternatives; penalties show in the values.
	big := make([]float32, 100)
	for i := range big {
		big[i] = float32(i % 7)
	}
	s, _ := NewSampler(SampleOptions{PresencePenalty: 1}, 1)
	id, lp, err := s.SampleLogProbs(big, 99)
	if err != nil || len(lp.Top) != MaxTopLogProbs || id != 6 {
		t.Fatalf("top 99: id %d, %d alternatives, %v", id, len(lp.Top), err)
	}
	for k := 1; k < len(lp.Top); k++ {
		a, b := lp.Top[k-1], lp.Top[k]
		if a.LogProb < b.LogProb || (a.LogProb == b.LogProb && a.ID > b.ID) {
			t.Fatalf("top not sorted at %d: %+v", k, lp.Top)
		}
	}
	_, lp2, err := s.SampleLogProbs(big, 0)
	if err != nil || lp2.Top != nil {
		t.Fatalf("top 0: %+v, %v", lp2, err)
	}
	// Id 6 was produced once: its logit is now 6-1 = 5, so greedy takes
	// the next 6 (id 13) and id 6 ties with the 5s, after id 5.
	if lp2.ID != 13 {
		t.Fatalf("after a presence penalty of 1 on id 6 greedy chose %d, want 13", lp2.ID)
	}
	_, lp3, _ := s.SampleLogProbs(big, 20)
	i5, i6 := slices.IndexFunc(lp3.Top, func(e TokenLogProb) bool { return e.ID == 5 }), slices.IndexFunc(lp3.Top, func(e TokenLogProb) bool { return e.ID == 6 })
	if i5 < 0 || i6 < 0 || i5 > i6 || lp3.Top[i5].LogProb != lp3.Top[i6].LogProb {
		t.Fatalf("penalised id 6 should tie with id 5 (listed after it): %+v", lp3.Top)
	}
}
