package train

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// Issue 31, point 14: the progress bar stays the project's own, not
// github.com/schollz/progressbar/v3, because that library counts the steps
// a --resume run starts from as done in this process (a run resumed at
// update 500 of 1000 at 5 updates/s showed "831 updates/s" and an ETA of
// 0s) and shows an ETA of 0s before the first update. These are the cases
// it got wrong: rate and ETA count only this process's updates, and an
// unknown ETA is "?".
func TestProgressRateAndETA(t *testing.T) {
	on := true
	cases := []struct {
		name              string
		total, start, now int
		elapsed           time.Duration
		want              []string
	}{
		{"fresh run", 1000, 0, 50, 10 * time.Second, []string{"  5% ", " 50/1000 ", "[10s<3m10s, 5.00 it/s,"}},
		{"resumed at 500", 1000, 500, 505, time.Second, []string{" 50% ", " 505/1000 ", "[1s<1m39s, 5.00 it/s,"}},
		{"before the first update", 1000, 500, 500, time.Second, []string{" 50% ", " 500/1000 ", "<?, 0.00 it/s,"}},
		{"slow 8B-like steps", 10, 0, 1, 50 * time.Second, []string{" 1/10 ", "[50s<7m30s, 0.02 it/s,"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			p := newProgress(&buf, &on, tc.total, tc.start)
			p.t0 = time.Now().Add(-tc.elapsed)
			p.tick(tc.now)
			s := buf.String()
			for _, w := range append(tc.want, "\r\033[K", "loss -") {
				if !strings.Contains(s, w) {
					t.Errorf("bar lacks %q: %q", w, s)
				}
			}
		})
	}
}
