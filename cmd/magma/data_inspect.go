package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/magma-go/magma/data"
	"github.com/magma-go/magma/model/action"
)

// dataInspectLong is data inspect's --help.
const dataInspectLong = `Inspect opens PATH the way a recipe source would and prints its schema,
its number of records, the reader's rejected records, and record --index
rendered as a training sample: the conversation text and, with --out, a PNG
of its image with the SoM marks and ToM traces drawn.

PATH is any source a recipe accepts: an RLDS dataset directory (Open
X-Embodiment / OpenVLA layout: the dataset or version folder with
dataset_info.json), an Arrow IPC / Parquet file, folder or glob of
MagmaAI's Hugging Face sets (Magma-Video-ToM, Magma-OXE-ToM, Magma-AITW-SoM,
Magma-Mind2Web-SoM), a LLaVA-style JSON file (Magma-820K), a UI record file
(ui), a clip manifest (video), or a folder of robot episode folders (robot).
A folder holding one JSON annotation file is read through it, so the
sources a default pretrain writes (runs/pretrain/synthetic-data/ui, video,
robot, captions) open as they are. The type is detected from the files
(for JSON: the first record's keys) unless --type is given. For rlds
sources the episode and step counts and OpenVLA's statistics are printed
too (robot sources: the action statistics), computed exactly over every step in one streaming pass (action
mean/std/max/min/q01/q99 after OpenVLA's per-dataset transform; proprio as
OpenVLA computes it with load_proprio, e.g. LIBERO's EEF_state ‖ pad ‖
gripper_state, or zeros for datasets without a proprio mapping). OpenVLA's
modified LIBERO release (libero_spatial_no_noops/ ...) is read this way. When no
record is usable, the error lists the first rejected records and why.

Video and robot samples are traced with the tracker --tracker and
--tracker-weights choose, as in magma tom (CoTracker3 when weights are
given, else Lucas-Kanade with a warning); the output names it.`

func newDataCmd() *cobra.Command {
	dataCmd := &cobra.Command{
		Use:   "data",
		Short: "Look into training data sources (every recipe source type: released Magma sets, OXE RLDS, LLaVA, UI, video and robot data)",
	}
	dataCmd.AddCommand(newDataInspectCmd())
	return dataCmd
}

func newDataInspectCmd() *cobra.Command {
	var o data.InspectOptions
	var out, statsOut string
	var asJSON bool
	inspect := &cobra.Command{
		Use:   "inspect PATH [--type T] [--index N] [--out sample.png]",
		Short: "Print a source's schema, record count and one rendered sample (text + PNG with marks/traces)",
		Long:  dataInspectLong,
		Example: `  magma data inspect /data/open-x/bridge_orig
  magma data inspect /data/modified_libero_rlds/libero_spatial_no_noops --statistics-out stats.json
  magma data inspect /data/MagmaAI/Magma-Video-ToM/ego4d --video-folder /data/ego4d/clips --out s.png
  magma data inspect '/data/MagmaAI/Magma-OXE-ToM/bridge_orig/shard_*.arrow' --robot --trace-size 256,256 --index 10
  magma data inspect /data/MagmaAI/Magma-Mind2Web-SoM --json
  magma data inspect runs/pretrain/synthetic-data/robot --index 3 --out s.png`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.Steps < 0 || o.Steps > 1024 {
				return fmt.Errorf("--steps %d must be in [0, 1024]", o.Steps)
			}
			in, err := data.Inspect(args[0], o)
			if in == nil {
				return err
			}
			if asJSON {
				b, jerr := json.MarshalIndent(in, "", "  ")
				if jerr != nil {
					return jerr
				}
				fmt.Fprintln(cmd.OutOrStdout(), string(b))
			} else {
				var sb strings.Builder
				in.WriteText(&sb)
				fmt.Fprint(cmd.OutOrStdout(), sb.String())
			}
			if err != nil {
				return fmt.Errorf("sample %d: %w", o.Index, err)
			}
			return writeInspected(cmd, in, statsOut, out)
		},
	}
	f := inspect.Flags()
	f.StringVar(&o.Type, "type", "", "source type: "+strings.Join(data.InspectTypes, ", ")+" (default: detected)")
	f.IntVar(&o.Index, "index", 0, "record to render")
	f.Uint64Var(&o.Seed, "seed", 0, "seed of the ToM mark selection")
	f.StringVar(&out, "out", "", "PNG of the sample image with marks/traces drawn")
	f.BoolVar(&asJSON, "json", false, "print JSON instead of text")
	f.StringVar(&statsOut, "statistics-out", "", "rlds: write OpenVLA's dataset_statistics.json for the dataset")
	f.StringVar(&o.VideoFolder, "video-folder", "", "magma_tom: folder of the videos the rows name")
	f.StringVar(&o.ImageFolder, "image-folder", "", "image folder for rows/records that name image files")
	f.Float64SliceVar(&o.TraceSize, "trace-size", nil, "magma_tom: W,H pixel space of the traces (OXE-ToM: 256,256; default the frame size)")
	f.BoolVar(&o.Robot, "robot", false, "magma_tom: robot rows (\"The robot is doing\")")
	f.StringVar(&o.Dataset, "dataset", "", "rlds: feature mapping name (default the directory name)")
	f.StringVar(&o.Split, "split", "", "rlds: split (default train)")
	f.StringVar(&o.BBoxFormat, "bbox-format", "", "ui: box format auto, xyxy, xyxy_norm, xywh or xywh_norm (default auto)")
	f.IntVar(&o.Steps, "steps", 0, "video, robot: ToM horizon in steps (default 16)")
	f.StringVar(&o.Tracker, "tracker", "", "video, robot: point tracker cotracker or lk (default: cotracker when --tracker-weights is given, else lk with a warning)")
	f.StringVar(&o.TrackerWeights, "tracker-weights", "", "video, robot: CoTracker3 checkpoint (scaled_offline.pth or scaled_online.pth)")
	return inspect
}

// writeInspected writes what --statistics-out and --out ask for.
func writeInspected(cmd *cobra.Command, in *data.Inspection, statsOut, out string) error {
	if statsOut != "" {
		if in.Statistics == nil {
			return fmt.Errorf("--statistics-out: a %s source has no action statistics (rlds only)", in.Type)
		}
		name, _ := in.Item["dataset"].(string)
		if err := action.WriteDatasetStatistics(statsOut, map[string]*action.DatasetStats{name: in.Statistics}); err != nil {
			return err
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s\n", statsOut)
	}
	if out != "" {
		if err := in.WritePNG(out); err != nil {
			return err
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s (%dx%d)\n", out, in.Image.W, in.Image.H)
	}
	return nil
}
