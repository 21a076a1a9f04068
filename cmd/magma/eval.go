package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"

	"github.com/magma-go/magma/data"
	"github.com/magma-go/magma/eval"
	"github.com/magma-go/magma/model/action"
	"github.com/magma-go/magma/som"
	"github.com/magma-go/magma/vision/imaging"
	"github.com/spf13/cobra"
)

// evalFlags are the flags shared by the eval subcommands.
type evalFlags struct {
	modelDir, tokPath, data, proposals, out, predictions, split, imageDir string
	load                                                                  loadFlags
	limit, maxNew, failures, every, markBase                              int
	boxScale                                                              float64
	preferPoint                                                           bool
}

func (f *evalFlags) register(cmd *cobra.Command, splitHelp string) {
	fl := cmd.Flags()
	fl.StringVar(&f.modelDir, "model", "", "checkpoint directory (not needed with --predictions)")
	fl.StringVar(&f.tokPath, "tokenizer", "", "tokenizer directory (default: the checkpoint's)")
	f.load.add(fl, true)
	fl.StringVar(&f.data, "data", "", "benchmark directory (annotation JSON files and image folder)")
	fl.StringVar(&f.imageDir, "images", "", "image folder (default: searched under --data)")
	fl.StringVar(&f.proposals, "proposals", "", "candidate boxes {img_filename: [[x1,y1,x2,y2],...]} (default: som's classical proposer)")
	fl.StringVar(&f.out, "out", "", "report directory: results.json, predictions.jsonl, failures/*.png")
	fl.StringVar(&f.predictions, "predictions", "", "score this predictions JSONL instead of running a model")
	fl.StringVar(&f.split, "split", "", splitHelp)
	fl.IntVar(&f.limit, "limit", 0, "evaluate only the first N records (0 = all)")
	fl.IntVar(&f.maxNew, "max-new-tokens", 32, "generated tokens per answer")
	fl.IntVar(&f.failures, "failures", 20, "failure PNGs to draw (0 = none)")
	fl.IntVar(&f.every, "progress-every", 50, "print a progress line every N records")
	fl.Float64Var(&f.boxScale, "box-scale", 1000, "range of integer coordinates inside <box> tags (1000 or 256)")
	fl.BoolVar(&f.preferPoint, "prefer-point", false, "click the answer's point even when it also names a mark")
	fl.IntVar(&f.markBase, "mark-base", 1, "first mark id: 1 (paper's Algorithm 1) or 0 (Magma's UI agent draws str(idx) over OmniParser's 0-based boxes, agents/ui_agent/util/som.py)")
}

func (f *evalFlags) options(cmd *cobra.Command) (eval.Options, error) {
	opt := eval.Options{
		Predictions: f.predictions, Limit: f.limit, OutDir: f.out, Failures: f.failures,
		MaxNewTokens: f.maxNew, Parse: action.ParseOptions{BoxScale: f.boxScale}, PreferPoint: f.preferPoint,
		Progress: cmd.ErrOrStderr(), ProgressEvery: f.every,
	}
	if f.failures == 0 {
		opt.Failures = -1 // eval.Options treats 0 as the default
	}
	switch f.markBase {
	case 1:
	case 0:
		opt.Marker = eval.MarkerFunc(func(img imaging.Image, boxes []som.Box) (*som.Result, error) {
			return som.DrawBoxes(img, boxes, som.Options{ZeroBased: true})
		})
	default:
		return opt, fmt.Errorf("--mark-base %d: want 0 or 1", f.markBase)
	}
	if f.predictions != "" {
		return opt, nil
	}
	if f.modelDir == "" {
		return opt, fmt.Errorf("give --model (or --predictions to score a predictions file)")
	}
	p, err := f.load.pipeline(f.modelDir, f.tokPath, 1)
	if err != nil {
		return opt, err
	}
	opt.Model = p
	if f.proposals != "" {
		if opt.Proposals, err = eval.LoadProposals(f.proposals); err != nil {
			return opt, err
		}
	} else {
		opt.Proposer = som.NewClassicalProposer()
	}
	return opt, nil
}

// screenspotLayout is the error of `eval screenspot` without --data.
const screenspotLayout = `eval screenspot needs --data DIR, a benchmark folder in one of these layouts:
  ScreenSpot:     DIR/screenspot_{mobile,desktop,web}.json + DIR/screenspot_imgs/*.png
  ScreenSpot-v2:  DIR/screenspot_{mobile,desktop,web}_v2.json + DIR/screenspotv2_image/*.png
  ScreenSpot-Pro: DIR/annotations/*.json + DIR/images/...
No data at hand? Write a synthetic one and run on it:
  magma eval synthetic --out /tmp/ss-demo && magma eval screenspot --model CKPT --data /tmp/ss-demo`

func newEvalCmd() *cobra.Command {
	evalCmd := &cobra.Command{
		Use:   "eval",
		Short: "Evaluate a checkpoint on a benchmark (screenspot, mind2web, libero, " + qaNames(", ") + "; synthetic and synthetic-qa write demo data)",
	}
	evalCmd.AddCommand(newEvalScreenSpotCmd(), newEvalMind2WebCmd(), newEvalSyntheticCmd())
	evalCmd.AddCommand(qaCommands()...)
	evalCmd.AddCommand(syntheticQACmd())
	return evalCmd
}

func newEvalScreenSpotCmd() *cobra.Command {
	var ss evalFlags
	var format string
	ssCmd := &cobra.Command{
		Use:   "screenspot",
		Short: "UI grounding on ScreenSpot, ScreenSpot-v2 or ScreenSpot-Pro (SoM prompting, click-in-box accuracy)",
		Example: `  magma eval screenspot --model out/magma --data ScreenSpot --out out/ss
  magma eval screenspot --data ScreenSpot-v2 --format v2 --predictions other.jsonl --out out/other
  magma eval screenspot --model out/tiny --data ScreenSpot --split mobile --limit 20`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if ss.data == "" {
				return errors.New(screenspotLayout)
			}
			f, err := eval.ParseFormat(format)
			if err != nil {
				return err
			}
			ds, err := eval.Load(ss.data, f, eval.LoadOptions{Split: ss.split, ImageDir: ss.imageDir})
			if err != nil {
				return err
			}
			opt, err := ss.options(cmd)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "screenspot: %s format, %d records from %d files\n", ds.Format, len(ds.Records), len(ds.Files))
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
			defer stop()
			res, err := eval.RunScreenSpot(ctx, ds, opt)
			if err != nil {
				return err
			}
			res.WriteTable(cmd.OutOrStdout())
			if ss.out != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "report: %s\n", ss.out)
			}
			return nil
		},
	}
	ss.register(ssCmd, "only this platform: mobile, desktop or web (Pro: platform, group or application)")
	ssCmd.Flags().StringVar(&format, "format", "auto", "data layout: auto, screenspot, v2 or pro")

	return ssCmd
}

// evalMind2WebLong is eval mind2web's --help.
const evalMind2WebLong = `mind2web scores web-navigation steps with SeeClick's metrics.

With --candidates (Mind2Web's candidate ranks as JSON: {"img_filename":
[{"bbox":[x1,y1,x2,y2],"rank":0}, ...]}) it runs Magma's protocol (paper,
Sec. B.3): the screenshot is cropped to --max-height (1344) around the
ground-truth box, the --top-k (30) best-ranked candidates in the window are
marked, the model gets the Magma-Mind2Web-SoM prompt (--prompt official) and
answers {"ACTION": ..., "MARK": ..., "VALUE": ...}. Points in
predictions.jsonl are then in the window (crop_top gives its offset).
Without it, --proposals/--proposer candidates and this project's prompt.`

func newEvalMind2WebCmd() *cobra.Command {
	var mw evalFlags
	var m2wCands, m2wPrompt string
	m2wProto := eval.OfficialMind2Web
	mwCmd := &cobra.Command{
		Use:   "mind2web",
		Short: "Mind2Web web navigation (Ele.Acc, Op.F1, Step SR per cross-task/website/domain split)",
		Long:  evalMind2WebLong,
		Example: `  magma eval mind2web --model out/magma --data mind2web --candidates ranks.json --out out/m2w
  magma eval mind2web --data mind2web --split website --predictions preds.jsonl`,
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := eval.LoadMind2Web(mw.data, mw.split, mw.imageDir)
			if err != nil {
				return err
			}
			if m2wCands != "" {
				if d.Candidates, err = eval.LoadRankedCandidates(m2wCands); err != nil {
					return err
				}
				switch m2wPrompt {
				case "official", "project":
				default:
					return fmt.Errorf("mind2web: --prompt %q (want official or project)", m2wPrompt)
				}
				if m2wProto.TopK < 0 || m2wProto.MaxHeight < 0 {
					return fmt.Errorf("mind2web: --top-k and --max-height must be >= 0")
				}
				m2wProto.Project = m2wPrompt == "project"
				d.Protocol = &m2wProto
			}
			opt, err := mw.options(cmd)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "mind2web: %d steps\n", len(d.Steps))
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
			defer stop()
			res, err := eval.RunMind2Web(ctx, d, opt)
			if err != nil {
				return err
			}
			res.WriteTable(cmd.OutOrStdout())
			if mw.out != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "report: %s\n", mw.out)
			}
			return nil
		},
	}
	mw.register(mwCmd, "only this split: task, website or domain (default: all present)")
	mwCmd.Flags().StringVar(&m2wCands, "candidates", "", "Mind2Web candidate ranks (JSON, see --help): run Magma's candidate protocol")
	mwCmd.Flags().IntVar(&m2wProto.TopK, "top-k", eval.OfficialMind2Web.TopK, "with --candidates: keep the K best-ranked candidates (paper: top 30)")
	mwCmd.Flags().IntVar(&m2wProto.MaxHeight, "max-height", eval.OfficialMind2Web.MaxHeight, "with --candidates: crop taller screenshots to this height around the target (paper: 1344)")
	mwCmd.Flags().StringVar(&m2wPrompt, "prompt", "official", "with --candidates: official (Magma-Mind2Web-SoM prompt) or project")
	_ = mwCmd.MarkFlagRequired("data")

	return mwCmd
}

// evalSyntheticLong is eval synthetic's --help.
const evalSyntheticLong = `synthetic writes demo data for the tests, the benchmarks and a first run.

--benchmark screenspot (default): screenshots with coloured widgets in the
ScreenSpot, ScreenSpot-v2 or ScreenSpot-Pro layout (--format), plus
proposals.json.

--benchmark libero: a LIBERO suite of --tasks tasks, --demos demos of
--steps steps, --size x --size frames, in LIBERO's HDF5 layout (--format
hdf5: OUT/<task>_demo.hdf5, frames upside down as LIBERO stores them, two
no-op steps per demo with --noops) or in OpenVLA's modified RLDS release
(--format rlds: OUT/1.0.0/dataset_info.json, features.json and
<name>-train.tfrecord-* shards, upright JPEG frames, no-ops removed; name
the folder like the release, e.g. libero_spatial_no_noops). Both read back
with the same tasks, actions and statistics in finetune/eval libero --data.`

func newEvalSyntheticCmd() *cobra.Command {
	var syn eval.SyntheticOptions
	var lib eval.LiberoSyntheticOptions
	var synOut, synFormat, synBench string
	synCmd := &cobra.Command{
		Use:   "synthetic",
		Short: "Write demo data: a synthetic ScreenSpot-layout benchmark (coloured widgets, proposals.json) or a LIBERO suite (HDF5 or RLDS)",
		Long:  evalSyntheticLong,
		Example: `  magma eval synthetic --out /tmp/ss-demo
  magma init --preset tiny --out out/tiny
  magma eval screenspot --model out/tiny --data /tmp/ss-demo --proposals /tmp/ss-demo/proposals.json
  magma eval synthetic --benchmark libero --format rlds --out /tmp/libero_spatial_no_noops
  magma finetune libero --data /tmp/libero_spatial_no_noops --init out/tiny --out runs/demo --steps 20`,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch synBench {
			case "libero":
				lib.Format = synFormat
				tasks, err := eval.WriteSyntheticLibero(synOut, lib)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "wrote a synthetic LIBERO suite (%s, %d tasks x %d demos) to %s\n", cmp.Or(synFormat, data.LiberoFormatHDF5), len(tasks), tasks[0].Demos, synOut)
				return nil
			case "screenspot":
			default:
				return fmt.Errorf("eval synthetic: --benchmark %q (want screenspot or libero)", synBench)
			}
			f, err := eval.ParseFormat(synFormat)
			if err != nil {
				return err
			}
			syn.Format = f
			if err := eval.WriteSynthetic(synOut, syn); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %d synthetic records to %s\n", syn.Records, synOut)
			return nil
		},
	}
	synCmd.Flags().StringVar(&synOut, "out", "", "output directory")
	synCmd.Flags().StringVar(&synBench, "benchmark", "screenspot", "what to write: screenspot or libero")
	synCmd.Flags().StringVar(&synFormat, "format", "", "layout: screenspot (default), v2 or pro; libero: hdf5 (default) or rlds")
	synCmd.Flags().IntVar(&syn.Records, "records", 12, "screenspot: records")
	synCmd.Flags().IntVar(&syn.Widgets, "widgets", 8, "screenspot: widgets per screenshot")
	synCmd.Flags().Int64Var(&syn.Seed, "seed", 1, "screenspot: random seed")
	synCmd.Flags().IntVar(&lib.Tasks, "tasks", 4, "libero: tasks")
	synCmd.Flags().IntVar(&lib.Demos, "demos", 12, "libero: demos per task")
	synCmd.Flags().IntVar(&lib.Steps, "steps", 20, "libero: steps per demo (before no-op removal)")
	synCmd.Flags().IntVar(&lib.Size, "size", 128, "libero: image side in pixels (LIBERO's files: 128)")
	synCmd.Flags().BoolVar(&lib.Noops, "noops", true, "libero: two no-op steps per demo (kept in HDF5 as in LIBERO's files, removed in RLDS as in the no_noops release)")
	synCmd.Flags().IntVar(&lib.Shards, "shards", 2, "libero rlds: TFRecord shards")
	_ = synCmd.MarkFlagRequired("out")

	return synCmd
}
