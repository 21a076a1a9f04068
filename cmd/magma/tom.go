package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/magma-go/magma/som"
	"github.com/magma-go/magma/tom"
)

// tomLong is tom's --help.
const tomLong = `Extract Trace-of-Mark traces with microsoft/Magma's rules for a source:

  demo   tools/som_tom/demo.py: frames resized to height 512, camera motion when
         more than 80% of traces move over 0.5 px per step, foreground over 2 px,
         foreground clusters k in [2,5], background [6,14]; Future+1 frames.
  video  data/conversations.py: camera over 1 px, foreground over 3 px, same k;
         the whole clip from --start is tracked, the traces start at a random
         frame and run to the clip's end, close points removed.
  robot  data/openx_magma/data_utils.py: camera over 1 px, foreground over 1 px,
         k in [2,4] and [4,9]; Future+1 frames.

Lengths are mean per-step displacements in pixels of the frames as tracked
(after --height). When no trace qualifies for the ToM answer, tom_text is
empty and the reason is printed as a warning and written to "warnings".

Tracker: --tracker cotracker|lk, --tracker-weights FILE. Magma uses
CoTracker3 (--tracker-weights scaled_offline.pth or scaled_online.pth);
it is the default when weights are given. Without weights the robust
Lucas-Kanade fallback runs, with a warning that traces are approximate: it
drops a point for good once it is occluded or dragged (forward-backward
and appearance checks) instead of tracking it through.`

func newTomCmd() *cobra.Command {
	var video, out, viz, source, task, tracker, weights string
	var grid, future, start, height int
	var seed int64
	var shotThreshold float64
	cmd := &cobra.Command{
		Use:   "tom --video PATH --out TRACES.json [--viz OUT.png] [--source demo|video|robot] [--tracker cotracker|lk] [--tracker-weights FILE] [--height 512] [--grid 15] [--future 16] [--start 0] [--seed 1]",
		Long:  tomLong,
		Short: "Extract Trace-of-Mark traces, marks and training text from a video or image folder",
		Example: `  magma tom --video clip.mp4 --out traces.json --viz traces.png --tracker-weights scaled_offline.pth
  magma tom --video clip.mp4 --out traces.json --tracker lk
  magma tom --video frames/ --out traces.json --grid 10 --future 8 --start 30`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if video == "" || out == "" {
				return errors.New("tom: --video and --out are required")
			}
			if err := checkTomCounts(grid, future, start, height); err != nil {
				return err
			}
			src, err := tom.ParseSource(source)
			if err != nil {
				return err
			}
			tr, warn, err := tom.NewTracker(tracker, weights)
			if err != nil {
				return err
			}
			cfg := tom.SourceConfig(src)
			cfg.Grid, cfg.Future, cfg.Seed, cfg.Height, cfg.Task, cfg.Tracker = grid, future, seed, height, task, tr
			cfg.ShotThreshold = shotThreshold
			res, err := tom.RunFile(video, start, cfg)
			if errors.Is(err, tom.ErrTooShort) && src != tom.SourceVideo {
				return fmt.Errorf("%w (--future %d tracks %d frames from --start %d; pass a smaller --future or an earlier --start)", err, future, future+1, start)
			}
			if err != nil {
				return err
			}
			// the LK warning comes with the result: a run that fails
			// prints its error only.
			if warn != "" {
				cmd.PrintErrln("tom: warning:", warn)
			}
			for _, w := range res.Warnings {
				cmd.PrintErrln("tom: warning:", w)
			}
			return writeTom(cmd, res, out, viz)
		},
	}
	f := cmd.Flags()
	f.StringVar(&video, "video", "", "video file (mp4/avi/webm) or folder of frames")
	f.StringVar(&out, "out", "", "TRACES.json to write")
	f.StringVar(&viz, "viz", "", "optional PNG with the traces drawn over the first frame")
	f.StringVar(&source, "source", "demo", "official rules to follow: demo, video or robot")
	f.StringVar(&tracker, "tracker", "", "point tracker: cotracker or lk (default: cotracker when --tracker-weights is given, else lk with a warning)")
	f.StringVar(&weights, "tracker-weights", "", "CoTracker3 checkpoint (scaled_offline.pth or scaled_online.pth)")
	f.IntVar(&height, "height", 512, "resize frames to this height before tracking, as the official demo does (0 keeps the size)")
	f.StringVar(&task, "task", "", "task text for the ToM question")
	f.IntVar(&grid, "grid", 15, "query grid size s (s x s points)")
	f.IntVar(&future, "future", 16, "future steps (uses future+1 frames)")
	f.IntVar(&start, "start", 0, "first frame")
	f.Int64Var(&seed, "seed", 1, "seed for k, k-means and mark ids")
	f.Float64Var(&shotThreshold, "shot-threshold", tom.DefaultShotThreshold, "content change that counts as a new shot (PySceneDetect's ContentDetector scale); a clip with a shot boundary inside the horizon is refused. Raise it for synthetic clips")
	return cmd
}

// checkTomCounts refuses counts below their minimum.
func checkTomCounts(grid, future, start, height int) error {
	// Zero means "default" inside tom; typed on the command line it
	// is a mistake, as are negative values.
	for _, fl := range []struct {
		name string
		v    int
		min  int
	}{{"grid", grid, 1}, {"future", future, 1}, {"start", start, 0}, {"height", height, 0}} {
		if fl.v < fl.min {
			return fmt.Errorf("tom: --%s %d must be an integer >= %d", fl.name, fl.v, fl.min)
		}
	}
	return nil
}

// writeTom writes the traces to out, draws them into viz when given, and
// prints a summary.
func writeTom(cmd *cobra.Command, res *tom.Result, out, viz string) error {
	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(out, append(data, '\n'), 0o644); err != nil {
		return err
	}
	if viz != "" {
		img, err := tom.DrawTraces(res.First, res.Marks)
		if err != nil {
			return err
		}
		if err := som.WriteImage(viz, img); err != nil {
			return err
		}
	}
	fg := 0
	for _, m := range res.Marks {
		if m.Foreground {
			fg++
		}
	}
	extra := ""
	if viz != "" {
		extra = ", drawing " + viz
	}
	fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: %d traces (%d foreground) over %d frames%s\n", out, len(res.Marks), fg, res.FramesUsed, extra)
	return nil
}
