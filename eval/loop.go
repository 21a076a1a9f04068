package eval

import (
	"context"
	"fmt"
	"io"
	"time"
)

// eachItem is the per-item loop every benchmark shares (ScreenSpot,
// Mind2Web, LIBERO): for each of n items in order it evaluates the item,
// stops when ctx was cancelled meanwhile (a cancelled model call is not an
// outcome), records the outcome, and prints a progress line after every
// `every` items and after the last (line returns the text; "" prints
// nothing). eval returns the function that records its item; an error from
// eval or record stops the loop.
func eachItem(ctx context.Context, n, every int, progress io.Writer, eval func(i int) (record func() error, err error), line func(done int, seconds float64) string) error {
	start := time.Now()
	if every <= 0 {
		every = 1
	}
	for i := 0; i < n; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		record, err := eval(i)
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := record(); err != nil {
			return err
		}
		if progress != nil && line != nil && ((i+1)%every == 0 || i+1 == n) {
			if s := line(i+1, time.Since(start).Seconds()); s != "" {
				fmt.Fprint(progress, s)
			}
		}
	}
	return nil
}
