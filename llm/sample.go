package llm

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// SampleOptions selects how the next token is drawn from logits, in Hugging
// Face's order: temperature, then top-k, then top-p. The allowed-token mask
// and the penalties come first: they change the logits themselves.
type SampleOptions struct {
	// Temperature T: 0 is greedy decoding (argmax, lowest index wins ties);
	// otherwise tokens are drawn from softmax(logits/T). Must be >= 0.
	Temperature float64
	// TopK keeps the K highest-scoring tokens (ties with the K-th score are
	// kept too, as Hugging Face does). 0 disables it.
	TopK int
	// TopP (nucleus) keeps the smallest set of most probable tokens whose
	// cumulative probability is >= TopP, renormalised. 0 or 1 disables it.
	TopP float64
	// Allowed, when not nil, marks the ids that may be produced: logits of
	// ids i with !Allowed[i] (and of ids past its end) count as -Inf, in
	// greedy decoding too. A model's vocab_size is usually padded beyond the
	// tokenizer's ids (Magma-8B: 128320 rows, 128261 tokens); generating
	// such an id would give text nobody can decode. See
	// tokenizer.Tokenizer.IDMask.
	Allowed []bool
	// PresencePenalty and FrequencyPenalty are OpenAI's penalties on
	// repetition: before every draw, the logit of each token j this Sampler
	// has already returned c[j] > 0 times is lowered by
	// c[j]*FrequencyPenalty + PresencePenalty (negative values favour
	// repetition). They count only the tokens this Sampler produced (one
	// completion), never the prompt; 0 disables each. Greedy decoding takes
	// the argmax of the penalised logits. Must be finite.
	PresencePenalty, FrequencyPenalty float64
}

// Validate reports an option outside its domain.
func (o SampleOptions) Validate() error {
	switch {
	case math.IsNaN(o.Temperature) || o.Temperature < 0 || math.IsInf(o.Temperature, 0):
		return fmt.Errorf("llm: temperature %v must be finite and >= 0 (0 = greedy)", o.Temperature)
	case o.TopK < 0:
		return fmt.Errorf("llm: top_k %d must be >= 0 (0 = disabled)", o.TopK)
	case math.IsNaN(o.TopP) || o.TopP < 0 || o.TopP > 1:
		return fmt.Errorf("llm: top_p %v must be in [0, 1] (0 or 1 = disabled)", o.TopP)
	case math.IsNaN(o.PresencePenalty) || math.IsInf(o.PresencePenalty, 0):
		return fmt.Errorf("llm: presence penalty %v must be finite", o.PresencePenalty)
	case math.IsNaN(o.FrequencyPenalty) || math.IsInf(o.FrequencyPenalty, 0):
		return fmt.Errorf("llm: frequency penalty %v must be finite", o.FrequencyPenalty)
	case o.Allowed != nil && !slices.Contains(o.Allowed, true):
		return fmt.Errorf("llm: the allowed-token mask allows no token")
	}
	return nil
}

// Sampler draws tokens with a seeded PCG source: for one seed and one
// sequence of logits it always returns the same tokens.
type Sampler struct {
	opt    SampleOptions
	rng    *rand.Rand
	idx    []int
	prob   []float64
	masked []float32
	counts map[int]int // tokens returned so far (kept only with a penalty)
}

// NewSampler validates opt and seeds the random source.
func NewSampler(opt SampleOptions, seed uint64) (*Sampler, error) {
	if err := opt.Validate(); err != nil {
		return nil, err
	}
	return &Sampler{opt: opt, rng: rand.New(rand.NewPCG(seed, seed^0x5851f42d4c957f2d))}, nil
}

// Greedy returns argmax(logits), the lowest index among equal maxima.
// NaN logits are an error; +Inf wins.
func Greedy(logits []float32) (int, error) {
	if len(logits) == 0 {
		return 0, fmt.Errorf("llm: no logits to sample from")
	}
	best := -1
	for i, v := range logits {
		if v != v {
			return 0, fmt.Errorf("llm: logit %d is NaN", i)
		}
		if best < 0 || v > logits[best] {
			best = i
		}
	}
	return best, nil
}

// Sample picks the next token from logits (see SampleOptions).
func (s *Sampler) Sample(logits []float32) (int, error) {
	logits = s.adjust(logits)
	id, err := s.draw(logits)
	if err != nil {
		return 0, err
	}
	s.record(id)
	return id, nil
}

// adjust applies the allowed-token mask and the penalties to a copy of
// logits (logits itself when neither changes anything).
func (s *Sampler) adjust(logits []float32) []float32 {
	a := s.opt.Allowed
	pen := len(s.counts) > 0
	if a == nil && !pen {
		return logits
	}
	s.masked = append(s.masked[:0], logits...)
	if a != nil {
		for i := range s.masked {
			if i >= len(a) || !a[i] {
				s.masked[i] = float32(math.Inf(-1))
			}
		}
	}
	for j, c := range s.counts {
		if j >= 0 && j < len(s.masked) {
			s.masked[j] -= float32(float64(c)*s.opt.FrequencyPenalty + s.opt.PresencePenalty)
		}
	}
	return s.masked
}

// MaxTopLogProbs bounds the alternatives SampleLogProbs reports (OpenAI's
// top_logprobs limit).
const MaxTopLogProbs = 20

// TokenLogProb is a token id with its log-probability (natural log).
type TokenLogProb struct {
	ID      int
	LogProb float64
}

// TokenLogProbs describes one draw of SampleLogProbs: the chosen token and
// the most probable tokens, highest first (ties: lower id first).
type TokenLogProbs struct {
	TokenLogProb
	Top []TokenLogProb
}

// SampleLogProbs is Sample that also reports log-probabilities: those of
// log-softmax over the logits after the allowed-token mask and the
// penalties, before temperature, top-k and top-p. That is the distribution
// the model (with the penalties) gives the next token; it does not depend
// on the sampling knobs, and at temperature 1 without top-k/top-p it is the
// one the token is drawn from (at temperature 0 the chosen token is its
// most probable one). Masked ids are never among the top tokens; top is
// clamped to [0, MaxTopLogProbs].
func (s *Sampler) SampleLogProbs(logits []float32, top int) (int, TokenLogProbs, error) {
	logits = s.adjust(logits)
	id, err := s.draw(logits)
	if err != nil {
		return 0, TokenLogProbs{}, err
	}
	s.record(id)
	return id, logProbs(logits, id, min(max(top, 0), MaxTopLogProbs)), nil
}

// logProbs computes the log-softmax of logits at id and the top most
// probable ids. logits has no NaN (draw checked).
func logProbs(logits []float32, id, top int) TokenLogProbs {
	maxL := math.Inf(-1)
	nInf := 0 // +Inf logits share all the mass
	for _, v := range logits {
		if math.IsInf(float64(v), 1) {
			nInf++
		}
		maxL = max(maxL, float64(v))
	}
	var logZ float64
	switch {
	case nInf > 0 || math.IsInf(maxL, -1):
		logZ = math.NaN() // handled by lp
	default:
		var sum float64
		for _, v := range logits {
			sum += math.Exp(float64(v) - maxL)
		}
		logZ = maxL + math.Log(sum)
	}
	lp := func(v float32) float64 {
		switch {
		case nInf > 0 && math.IsInf(float64(v), 1):
			return -math.Log(float64(nInf))
		case nInf > 0 || math.IsInf(float64(v), -1) || math.IsNaN(logZ):
			return math.Inf(-1)
		}
		return float64(v) - logZ
	}
	out := TokenLogProbs{TokenLogProb: TokenLogProb{ID: id, LogProb: lp(logits[id])}}
	if top == 0 {
		return out
	}
	// The top ids by logit (ties: lower id first), kept sorted.
	best := make([]int, 0, top)
	for i, v := range logits {
		if math.IsInf(float64(v), -1) {
			continue
		}
		if len(best) == top && v <= logits[best[top-1]] {
			continue
		}
		k := len(best)
		if k < top {
			best = append(best, i)
		} else {
			k--
		}
		for k > 0 && logits[best[k-1]] < v {
			best[k] = best[k-1]
			k--
		}
		best[k] = i
	}
	out.Top = make([]TokenLogProb, len(best))
	for k, i := range best {
		out.Top[k] = TokenLogProb{ID: i, LogProb: lp(logits[i])}
	}
	return out
}

// record counts a returned token for the penalties.
func (s *Sampler) record(id int) {
	if s.opt.PresencePenalty == 0 && s.opt.FrequencyPenalty == 0 {
		return
	}
	if s.counts == nil {
		s.counts = map[int]int{}
	}
	s.counts[id]++
}

// draw picks a token from already adjusted logits.
//
// With temperature T > 0, p_i = exp((l_i - max l)/T) / Σ_j exp((l_j - max l)/T)
// over the tokens kept by top-k; top-p then keeps the shortest prefix of the
// tokens sorted by decreasing p (ties: lower index first) whose cumulative sum
// reaches TopP, and the token is drawn from the renormalised remainder.
func (s *Sampler) draw(logits []float32) (int, error) {
	if s.opt.Temperature == 0 {
		return Greedy(logits)
	}
	n := len(logits)
	if n == 0 {
		return 0, fmt.Errorf("llm: no logits to sample from")
	}
	maxL := math.Inf(-1)
	for i, v := range logits {
		if v != v {
			return 0, fmt.Errorf("llm: logit %d is NaN", i)
		}
		maxL = max(maxL, float64(v))
	}
	if math.IsInf(maxL, -1) {
		return 0, fmt.Errorf("llm: every logit is -Inf")
	}
	if math.IsInf(maxL, 1) {
		return Greedy(logits) // an infinite logit takes all the mass
	}
	// Candidates sorted by decreasing logit, ties by index (deterministic).
	s.idx = s.idx[:0]
	for i, v := range logits {
		if !math.IsInf(float64(v), -1) {
			s.idx = append(s.idx, i)
		}
	}
	k := len(s.idx)
	needSort := true
	if s.opt.TopK > 0 && s.opt.TopK < k {
		// Keep every token scoring >= the K-th highest score.
		kth := kthLargest(logits, s.idx, s.opt.TopK)
		kept := s.idx[:0]
		for _, i := range s.idx {
			if logits[i] >= kth {
				kept = append(kept, i)
			}
		}
		s.idx = kept
	} else if s.opt.TopP == 0 || s.opt.TopP == 1 {
		needSort = false // plain softmax sampling: any fixed order works
	}
	if needSort {
		slices.SortFunc(s.idx, func(a, b int) int {
			if c := cmp.Compare(logits[b], logits[a]); c != 0 {
				return c
			}
			return cmp.Compare(a, b)
		})
	}
	s.prob = s.prob[:0]
	var sum float64
	for _, i := range s.idx {
		p := math.Exp((float64(logits[i]) - maxL) / s.opt.Temperature)
		s.prob = append(s.prob, p)
		sum += p
	}
	if p := s.opt.TopP; p > 0 && p < 1 {
		var cum float64
		cut := len(s.prob)
		for j, q := range s.prob {
			if cum >= p*sum {
				cut = j
				break
			}
			cum += q
		}
		s.idx, s.prob, sum = s.idx[:cut], s.prob[:cut], cum
	}
	u := s.rng.Float64() * sum
	var cum float64
	for j, q := range s.prob {
		cum += q
		if u < cum {
			return s.idx[j], nil
		}
	}
	return s.idx[len(s.idx)-1], nil
}

// kthLargest returns the k-th largest of logits[idx] (1-based k <= len(idx)).
func kthLargest(logits []float32, idx []int, k int) float32 {
	vals := make([]float32, len(idx))
	for j, i := range idx {
		vals[j] = logits[i]
	}
	// Quickselect for the (k-1)-th element in decreasing order.
	lo, hi, target := 0, len(vals)-1, k-1
	for lo < hi {
		pivot := vals[(lo+hi)/2]
		i, j := lo, hi
		for i <= j {
			for vals[i] > pivot {
				i++
			}
			for vals[j] < pivot {
				j--
			}
			if i <= j {
				vals[i], vals[j] = vals[j], vals[i]
				i++
				j--
			}
		}
		switch {
		case target <= j:
			hi = j
		case target >= i:
			lo = i
		default:
			return vals[target]
		}
	}
	return vals[target]
}
