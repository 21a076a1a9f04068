package action

import (
	"math"
	"testing"
)

func TestQuantileMatchesNumpy(t *testing.T) {
	// numpy.quantile(np.arange(10.0)**2, [0.01, 0.99, 0.5, 0.25]) =
	// [0.09, 79.47, 20.5, 5.25]
	v := []float64{0, 1, 4, 9, 16, 25, 36, 49, 64, 81}
	for _, c := range [][2]float64{{0.01, 0.09}, {0.99, 79.47}, {0.5, 20.5}, {0.25, 5.25}} {
		if got := Quantile(v, c[0]); math.Abs(got-c[1]) > 1e-12 {
			t.Errorf("q%v = %v, want %v", c[0], got, c[1])
		}
	}
	if Quantile([]float64{3}, 0.99) != 3 {
		t.Fatal("single value")
	}
}
