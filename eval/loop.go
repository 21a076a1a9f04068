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

// timed is a results type with a stage timing (Results, Mind2WebResults).
type timed interface{ setTiming(*StageTiming) }

func (r *Results) setTiming(t *StageTiming)         { r.Timing = t }
func (r *Mind2WebResults) setTiming(t *StageTiming) { r.Timing = t }

// runReported is the run the SoM benchmarks share (ScreenSpot, Mind2Web):
// the report opened in opt.OutDir, each of n items evaluated by item (its
// outcome, the prediction written to predictions.jsonl, what its failure
// picture shows and whether it counts as a hit in the progress line; item
// gets the run's stage timers) and written to the report in order, with a
// progress line from line (eachItem; hits and errors so far, an error being
// an item whose fi.Err is set); then summarize makes the results of the
// outcomes, which get the run's stage timing and are written with the
// report.
func runReported[O any, R timed](ctx context.Context, opt *Options, n int,
	item func(i int, tm *timers) (o O, pred any, fi failInfo, hit bool),
	line func(done, hits, errs int, seconds float64) string,
	summarize func(outs []O) R) (res R, err error) {
	rep, err := newReporter(opt.OutDir, opt.Failures)
	if err != nil {
		return res, err
	}
	defer rep.close()
	var tm timers
	start := time.Now()
	outs := make([]O, 0, n)
	hits, errs := 0, 0
	err = eachItem(ctx, n, opt.ProgressEvery, opt.Progress, func(i int) (func() error, error) {
		o, pred, fi, hit := item(i, &tm)
		return func() error {
			outs = append(outs, o)
			if hit {
				hits++
			}
			if fi.Err != nil {
				errs++
			}
			t0 := time.Now()
			defer tm.add(&tm.report, t0)
			return rep.write(pred, fi)
		}, nil
	}, func(done int, seconds float64) string { return line(done, hits, errs, seconds) })
	if err != nil {
		return res, err
	}
	res = summarize(outs)
	res.setTiming(tm.timing(n, time.Since(start)))
	if err := rep.finish(res); err != nil {
		var none R
		return none, err
	}
	return res, nil
}
