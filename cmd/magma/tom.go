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

func newTomCmd() *cobra.Command {
	var video, out, viz string
	var grid, future, start int
	var seed int64
	cmd := &cobra.Command{
		Use:   "tom --video PATH --out TRACES.json [--viz OUT.png] [--grid 15] [--future 16] [--start 0] [--seed 1]",
		Short: "Extract Trace-of-Mark traces, marks and training text from a video or image folder",
		Example: `  magma tom --video clip.mp4 --out traces.json --viz traces.png
  magma tom --video frames/ --out traces.json --grid 10 --future 8 --start 30`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if video == "" || out == "" {
				return errors.New("tom: --video and --out are required")
			}
			// Zero means "default" inside tom; typed on the command line it
			// is a mistake, as are negative values.
			for _, fl := range []struct {
				name string
				v    int
				min  int
			}{{"grid", grid, 1}, {"future", future, 1}, {"start", start, 0}} {
				if fl.v < fl.min {
					return fmt.Errorf("tom: --%s %d must be an integer >= %d", fl.name, fl.v, fl.min)
				}
			}
			cfg := tom.DefaultConfig()
			cfg.Grid, cfg.Future, cfg.Seed = grid, future, seed
			res, err := tom.RunFile(video, start, cfg)
			if err != nil {
				return err
			}
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
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: %d traces (%d foreground) over %d frames%s\n", out, len(res.Marks), fg, cfg.Future+1, extra)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&video, "video", "", "video file (mp4/avi/webm) or folder of frames")
	f.StringVar(&out, "out", "", "TRACES.json to write")
	f.StringVar(&viz, "viz", "", "optional PNG with the traces drawn over the first frame")
	f.IntVar(&grid, "grid", 15, "query grid size s (s x s points)")
	f.IntVar(&future, "future", 16, "future steps (uses future+1 frames)")
	f.IntVar(&start, "start", 0, "first frame")
	f.Int64Var(&seed, "seed", 1, "seed for k, k-means and mark ids")
	return cmd
}
