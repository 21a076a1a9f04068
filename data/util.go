package data

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
)

func sortStrings(s []string) { sort.Strings(s) }

// Sample kinds of the sources that mix them by weight.
const (
	TaskToM     = "tom"
	TaskSoM     = "som"
	TaskCaption = "caption"
)

// cumulative checks a source's kind weights (known kinds, finite,
// non-negative, positive sum) and returns their running sums in order.
func cumulative(name string, w map[string]float64, order []string) ([]float64, error) {
	for k, v := range w {
		known := false
		for _, n := range order {
			known = known || n == k
		}
		if !known {
			return nil, fmt.Errorf("data: source %q: unknown task %q (want %s)", name, k, strings.Join(order, ", "))
		}
		if !(v >= 0) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("data: source %q: task %s weight %v", name, k, v)
		}
	}
	var cum []float64
	total := 0.0
	for _, n := range order {
		total += w[n]
		cum = append(cum, total)
	}
	if !(total > 0) {
		return nil, fmt.Errorf("data: source %q: task weights sum to 0", name)
	}
	return cum, nil
}

// pick draws a kind by the cumulative weights.
func pick(cum []float64, order []string, rng *rand.Rand) string {
	u := rng.Float64() * cum[len(cum)-1]
	for i, c := range cum {
		if u < c {
			return order[i]
		}
	}
	return order[len(order)-1]
}
