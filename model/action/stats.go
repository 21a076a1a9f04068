package action

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"sort"
)

// Stats are per-dimension statistics of a set of vectors (OpenVLA's
// dataset_statistics.json entries).
type Stats struct {
	Mean []float64 `json:"mean"`
	Std  []float64 `json:"std"`
	Max  []float64 `json:"max"`
	Min  []float64 `json:"min"`
	Q01  []float64 `json:"q01"`
	Q99  []float64 `json:"q99"`
	Mask []bool    `json:"mask,omitempty"`
}

// DatasetStats is one dataset's entry in dataset_statistics.json.
type DatasetStats struct {
	Action          Stats  `json:"action"`
	Proprio         *Stats `json:"proprio,omitempty"`
	NumTransitions  int    `json:"num_transitions"`
	NumTrajectories int    `json:"num_trajectories"`
}

// DatasetStatisticsFile is the statistics file in a checkpoint (OpenVLA's name).
const DatasetStatisticsFile = "dataset_statistics.json"

// ComputeStats computes mean, population std, min, max and the 1st/99th
// percentiles with numpy's default linear interpolation, per dimension of
// rows (all of one length), in float64. mask is stored as given.
func ComputeStats(rows [][]float64, mask []bool) Stats {
	d := len(rows[0])
	s := Stats{Mean: make([]float64, d), Std: make([]float64, d), Max: make([]float64, d), Min: make([]float64, d),
		Q01: make([]float64, d), Q99: make([]float64, d)}
	if mask != nil {
		s.Mask = append([]bool(nil), mask...)
	}
	col := make([]float64, len(rows))
	for j := 0; j < d; j++ {
		var sum float64
		for i, r := range rows {
			col[i] = r[j]
			sum += r[j]
		}
		mean := sum / float64(len(col))
		var ss float64
		for _, v := range col {
			ss += (v - mean) * (v - mean)
		}
		sort.Float64s(col)
		s.Mean[j], s.Std[j] = mean, math.Sqrt(ss/float64(len(col)))
		s.Min[j], s.Max[j] = col[0], col[len(col)-1]
		s.Q01[j], s.Q99[j] = Quantile(col, 0.01), Quantile(col, 0.99)
	}
	return s
}

// Quantile is numpy.quantile(sorted, q) with method="linear": virtual index
// h = (n-1)q, lerp between sorted[floor h] and the next, with numpy's
// two-sided lerp (b - (b-a)(1-t) for t >= 0.5).
func Quantile(sorted []float64, q float64) float64 {
	n := len(sorted)
	h := float64(n-1) * q
	lo := math.Floor(h)
	i := int(lo)
	if i >= n-1 {
		return sorted[n-1]
	}
	if i < 0 {
		return sorted[0]
	}
	t := h - lo
	a, b := sorted[i], sorted[i+1]
	diff := b - a
	if t >= 0.5 {
		return b - diff*(1-t)
	}
	return a + diff*t
}

// Normalize maps a policy-space action to [-1, 1] per OpenVLA's BOUNDS_Q99:
// masked dimensions clip(2(a-q01)/(q99-q01+1e-8)-1, -1, 1), unmasked ones
// unchanged, and any dimension with max == min set to 0.
func (s *Stats) Normalize(a []float64) ([]float64, error) {
	if len(a) != len(s.Q01) {
		return nil, fmt.Errorf("action has %d dimensions, statistics %d", len(a), len(s.Q01))
	}
	out := make([]float64, len(a))
	for i, v := range a {
		switch {
		case s.Max[i] == s.Min[i]:
			out[i] = 0
		case s.Mask == nil || s.Mask[i]:
			out[i] = NormalizeQ99(v, s.Q01[i], s.Q99[i])
		default:
			out[i] = v
		}
	}
	return out, nil
}

// Unnormalize inverts Normalize on masked dimensions (0.5(a+1)(q99-q01)+q01);
// unmasked ones pass through, as OpenVLA's predict_action does.
func (s *Stats) Unnormalize(a []float64) ([]float64, error) {
	if len(a) != len(s.Q01) {
		return nil, fmt.Errorf("action has %d dimensions, statistics %d", len(a), len(s.Q01))
	}
	out := make([]float64, len(a))
	for i, v := range a {
		if s.Mask == nil || s.Mask[i] {
			out[i] = UnnormalizeQ99(v, s.Q01[i], s.Q99[i])
		} else {
			out[i] = v
		}
	}
	return out, nil
}

// Validate checks the dimensions agree. q01 and q99 (and the mask, when
// given) are what un-normalising an action needs and must be present;
// mean, std, max and min are informative and may be absent (a hand-written
// file for /act), but must agree when given.
func (s *Stats) Validate() error {
	d := len(s.Q01)
	if d == 0 {
		return errors.New("no dimensions")
	}
	if len(s.Q99) != d {
		return fmt.Errorf("q99 has %d dimensions, q01 %d", len(s.Q99), d)
	}
	for name, v := range map[string][]float64{"mean": s.Mean, "std": s.Std, "max": s.Max, "min": s.Min} {
		if v != nil && len(v) != d {
			return fmt.Errorf("%s has %d dimensions, q01 %d", name, len(v), d)
		}
	}
	if s.Mask != nil && len(s.Mask) != d {
		return fmt.Errorf("mask has %d dimensions, q01 %d", len(s.Mask), d)
	}
	return nil
}

// WriteDatasetStatistics writes OpenVLA's dataset_statistics.json:
// {"<key>": {"action": {...}, "proprio": {...}, "num_transitions", "num_trajectories"}}.
func WriteDatasetStatistics(path string, all map[string]*DatasetStats) error {
	b, err := json.MarshalIndent(all, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// ReadDatasetStatistics reads a dataset_statistics.json file.
func ReadDatasetStatistics(path string) (map[string]*DatasetStats, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var all map[string]*DatasetStats
	if err := json.Unmarshal(b, &all); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("%s: no datasets", path)
	}
	for k, v := range all {
		if v == nil {
			return nil, fmt.Errorf("%s: %q is null", path, k)
		}
		if err := v.Action.Validate(); err != nil {
			return nil, fmt.Errorf("%s: %q action statistics: %w", path, k, err)
		}
	}
	return all, nil
}

// EncodeAction turns a policy-space action into its action token ids:
// BOUNDS_Q99 normalisation, then 256-bin tokenisation.
func (s *Stats) EncodeAction(at *Tokenizer, a []float64) ([]int, error) {
	n, err := s.Normalize(a)
	if err != nil {
		return nil, err
	}
	return at.Encode(n)
}

// DecodeAction turns generated action token ids into a policy-space action
// (bin centres, un-normalised). An id outside the action ids is an error.
func (s *Stats) DecodeAction(at *Tokenizer, ids []int) ([]float64, error) {
	if len(ids) != len(s.Q01) {
		return nil, fmt.Errorf("%d action tokens, want %d", len(ids), len(s.Q01))
	}
	v, err := at.Decode(ids)
	if err != nil {
		return nil, err
	}
	return s.Unnormalize(v)
}
