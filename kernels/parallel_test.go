package kernels

import (
	"sync"
	"testing"
)

// TestSplitters checks that every splitter covers [0, n) exactly once, in
// pieces that start on their alignment, for sizes around the boundaries.
func TestSplitters(t *testing.T) {
	splitters := []struct {
		name  string
		align int
		run   func(n int, fn func(lo, hi int))
	}{
		{"splitRange/32", 32, func(n int, fn func(lo, hi int)) { splitRange(n, 32, fn) }},
		{"splitRows", 64, splitRows},
		{"parallelFor", 1, func(n int, fn func(lo, hi int)) { parallelFor(n, 7, fn) }},
	}
	for _, s := range splitters {
		for _, n := range []int{0, 1, 63, 64, 65, 4096, 4097, 14336, 128256} {
			seen := make([]int32, n)
			var mu sync.Mutex
			var bad []string
			s.run(n, func(lo, hi int) {
				mu.Lock()
				defer mu.Unlock()
				if lo%s.align != 0 || lo >= hi || hi > n {
					bad = append(bad, "piece")
					return
				}
				for i := lo; i < hi; i++ {
					seen[i]++
				}
			})
			if len(bad) > 0 {
				t.Errorf("%s n=%d: %d pieces unaligned or out of [0, n)", s.name, n, len(bad))
			}
			for i, c := range seen {
				if c != 1 {
					t.Errorf("%s n=%d: row %d covered %d times", s.name, n, i, c)
					break
				}
			}
		}
	}
}
