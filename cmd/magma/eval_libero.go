package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/magma-go/magma/data"
	"github.com/magma-go/magma/model"
	"github.com/magma-go/magma/vision"
	"github.com/spf13/cobra"
)

// LiberoMetrics are offline action metrics over a set of demo steps.
type LiberoMetrics struct {
	Task        string  `json:"task,omitempty"`
	Instruction string  `json:"instruction,omitempty"`
	Demos       int     `json:"demos"`
	Steps       int     `json:"steps"`
	TokenAcc    float64 `json:"action_token_accuracy"`
	// L1 is the mean absolute error of the un-normalised action in the
	// simulator's convention over all 7 dimensions (gripper ±1); L1Arm over
	// the 6 arm dimensions only. Both are null when no answer was a valid
	// action (NoScore says why): 0 would read as a perfect score.
	L1         *float64 `json:"l1"`
	L1Arm      *float64 `json:"l1_arm"`
	NoScore    string   `json:"no_score_reason,omitempty"`
	GripperAcc float64  `json:"gripper_accuracy"`
	// Invalid counts answers that were not 7 action tokens (they count as
	// wrong tokens and wrong gripper, and are left out of the L1 means).
	Invalid int `json:"invalid"`

	tokOK, tokAll, grOK int
	l1Sum, l1ArmSum     float64
	l1N                 int
}

func (m *LiberoMetrics) add(pred []int, target []int, predEnv []float64, trueEnv [data.LiberoActionDim]float64) {
	m.Steps++
	m.tokAll += len(target)
	for i, id := range target {
		if i < len(pred) && pred[i] == id {
			m.tokOK++
		}
	}
	if predEnv == nil {
		m.Invalid++
		return
	}
	var s, sa float64
	for j := 0; j < data.LiberoActionDim; j++ {
		d := math.Abs(predEnv[j] - trueEnv[j])
		s += d
		if j < data.LiberoActionDim-1 {
			sa += d
		}
	}
	m.l1Sum += s / data.LiberoActionDim
	m.l1ArmSum += sa / (data.LiberoActionDim - 1)
	m.l1N++
	if (predEnv[6] > 0) == (trueEnv[6] > 0) {
		m.grOK++
	}
}

func (m *LiberoMetrics) merge(o *LiberoMetrics) {
	m.Demos += o.Demos
	m.Steps += o.Steps
	m.Invalid += o.Invalid
	m.tokOK += o.tokOK
	m.tokAll += o.tokAll
	m.grOK += o.grOK
	m.l1Sum += o.l1Sum
	m.l1ArmSum += o.l1ArmSum
	m.l1N += o.l1N
}

func (m *LiberoMetrics) finish() {
	if m.tokAll > 0 {
		m.TokenAcc = float64(m.tokOK) / float64(m.tokAll)
	}
	if m.Steps > 0 {
		m.GripperAcc = float64(m.grOK) / float64(m.Steps)
	}
	m.L1, m.L1Arm, m.NoScore = nil, nil, ""
	if m.l1N > 0 {
		l1, arm := m.l1Sum/float64(m.l1N), m.l1ArmSum/float64(m.l1N)
		m.L1, m.L1Arm = &l1, &arm
	} else if m.Steps > 0 {
		m.NoScore = fmt.Sprintf("all %d predictions were invalid (not %d action tokens): no L1 error can be computed", m.Invalid, data.LiberoActionDim)
	}
}

// l1Text formats an optional L1 value for the table.
func l1Text(v *float64) string {
	if v == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.4f", *v)
}

// LiberoReport is what `magma eval libero` prints and writes.
type LiberoReport struct {
	Model    string           `json:"model"`
	Suite    string           `json:"suite"`
	Split    string           `json:"split"`
	Tasks    []*LiberoMetrics `json:"tasks"`
	Overall  *LiberoMetrics   `json:"overall"`
	Seconds  float64          `json:"seconds"`
	StepsPer float64          `json:"steps_per_second"`
}

// findLiberoMeta looks for name in the checkpoint folder, then in the run
// folder two levels up (runs/x/checkpoints/step-N → runs/x).
func findLiberoMeta(dir, name string) string {
	for _, d := range []string{dir, filepath.Join(dir, "..", "..")} {
		p := filepath.Join(d, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// liberoPredictor answers one step: the generated ids (greedy, at most 8
// tokens) for the upright frame and instruction.
type liberoPredictor func(ctx context.Context, img vision.Image, instruction string) ([]int, error)

func pipelinePredictor(p *model.Pipeline) liberoPredictor {
	return func(ctx context.Context, img vision.Image, instruction string) ([]int, error) {
		res, err := p.Generate(ctx, model.Request{Images: []vision.Image{img}, Prompt: data.ActionPrompt(instruction), MaxNewTokens: data.LiberoActionDim + 1})
		if err != nil {
			return nil, err
		}
		return res.OutputIDs, nil
	}
}

// evalLibero scores predict on split of l with stats.
func evalLibero(ctx context.Context, l *data.Libero, stats *data.DatasetStats, split string, limit int, predict liberoPredictor, progress io.Writer) (*LiberoReport, error) {
	at, err := data.NewActionTokenizer(data.LlamaBaseVocab)
	if err != nil {
		return nil, err
	}
	rep := &LiberoReport{Suite: l.Opt.Suite, Split: split, Overall: &LiberoMetrics{}}
	t0 := time.Now()
	for _, t := range l.Tasks {
		demos, err := t.Split(split)
		if err != nil {
			return nil, err
		}
		tm := &LiberoMetrics{Task: t.Name, Instruction: t.Instruction, Demos: len(demos)}
	demoLoop:
		for _, di := range demos {
			d := t.Demos[di]
			for k := range d.Actions {
				if limit > 0 && tm.Steps >= limit {
					break demoLoop
				}
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				img, err := l.Frame(t, d, k)
				if err != nil {
					return nil, err
				}
				target, err := stats.Action.EncodeAction(at, d.Actions[k])
				if err != nil {
					return nil, fmt.Errorf("%s:/data/%s step %d: %w", t.File, d.Key, d.Frames[k], err)
				}
				out, err := predict(ctx, img, t.Instruction)
				if err != nil {
					return nil, fmt.Errorf("%s:/data/%s step %d: %w", t.File, d.Key, d.Frames[k], err)
				}
				var env []float64
				if len(out) >= data.LiberoActionDim {
					if pol, err := stats.Action.DecodeAction(at, out[:data.LiberoActionDim]); err == nil {
						env = data.LiberoEnvAction(pol)
					}
				}
				tm.add(out, target, env, d.Actions[k])
			}
		}
		tm.finish()
		rep.Overall.merge(tm)
		rep.Tasks = append(rep.Tasks, tm)
		if progress != nil {
			fmt.Fprintf(progress, "%s: %d steps, token accuracy %.3f\n", t.Name, tm.Steps, tm.TokenAcc)
		}
	}
	rep.Overall.finish()
	rep.Overall.Task = "overall"
	rep.Seconds = time.Since(t0).Seconds()
	if rep.Seconds > 0 {
		rep.StepsPer = float64(rep.Overall.Steps) / rep.Seconds
	}
	if rep.Overall.Steps == 0 {
		return nil, fmt.Errorf("split %q of %s has no steps to evaluate", split, l.Dir)
	}
	return rep, nil
}

func writeLiberoTable(w io.Writer, rep *LiberoReport) {
	fmt.Fprintf(w, "LIBERO %s, split %s: %d steps in %.1fs (%.2f steps/s)\n", rep.Suite, rep.Split, rep.Overall.Steps, rep.Seconds, rep.StepsPer)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "task\tdemos\tsteps\ttoken acc\tL1\tL1 arm\tgripper acc\tinvalid\t")
	row := func(m *LiberoMetrics) {
		name := m.Task
		if len(name) > 48 {
			name = name[:45] + "..."
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.3f\t%s\t%s\t%.3f\t%d\t\n", name, m.Demos, m.Steps, m.TokenAcc, l1Text(m.L1), l1Text(m.L1Arm), m.GripperAcc, m.Invalid)
	}
	for _, m := range rep.Tasks {
		row(m)
	}
	row(rep.Overall)
	tw.Flush()
	if rep.Overall.NoScore != "" {
		fmt.Fprintf(w, "no L1 score: %s\n", rep.Overall.NoScore)
	}
}

func init() {
	var (
		lf                       liberoFlags
		modelDir, tokPath, split string
		statsPath, out           string
		limit                    int
		asJSON                   bool
	)
	cmd := &cobra.Command{
		Use:   "libero --model CKPT --data SUITE_DIR [--split heldout]",
		Short: "Offline LIBERO evaluation: action-token accuracy, L1 and gripper accuracy per task",
		Long: `libero replays the demo steps of a suite folder through a checkpoint
fine-tuned by ` + "`magma finetune libero`" + ` and compares its 7 greedy action tokens
with the demos': action-token accuracy, L1 error of the un-normalised action
(simulator convention, all 7 dimensions and the 6 arm dimensions) and
gripper open/close accuracy, per task and overall.

The statistics come from the checkpoint's dataset_statistics.json (key
--suite) and the held-out demos from its libero_split.json, so --split
heldout scores exactly the demos training did not see (without the split
file, --shots and --data-seed select them as finetune did). This is an
offline check; success rates need the LIBERO simulator driving
` + "`magma serve`" + `'s /act.`,
		Example: `  magma eval libero --model runs/libero_spatial/checkpoints/step-002000 --data ~/LIBERO/libero_spatial --split heldout`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if modelDir == "" {
				return fmt.Errorf("eval libero: --model is required")
			}
			l, err := lf.open()
			if err != nil {
				return err
			}
			defer l.Close()
			if sp := findLiberoMeta(modelDir, data.LiberoSplitFile); sp != "" && !cmd.Flags().Changed("shots") {
				b, err := os.ReadFile(sp)
				if err != nil {
					return err
				}
				var s data.LiberoSplit
				if err := json.Unmarshal(b, &s); err != nil {
					return fmt.Errorf("%s: %w", sp, err)
				}
				if err := l.ApplySplit(&s); err != nil {
					return fmt.Errorf("%s: %w", sp, err)
				}
			}
			if statsPath == "" {
				statsPath = findLiberoMeta(modelDir, data.DatasetStatisticsFile)
			}
			stats := l.Stats
			if statsPath != "" {
				all, err := data.ReadDatasetStatistics(statsPath)
				if err != nil {
					return err
				}
				st, ok := all[l.Opt.Suite]
				if !ok {
					if len(all) != 1 {
						return fmt.Errorf("%s has no statistics for %q (pass --suite)", statsPath, l.Opt.Suite)
					}
					for _, v := range all {
						st = v
					}
				}
				stats = st
			} else {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s has no %s; using statistics recomputed from the training demos\n", modelDir, data.DatasetStatisticsFile)
			}
			p, err := model.LoadPipeline(modelDir, tokPath)
			if err != nil {
				return err
			}
			if p.Tokenizer == nil {
				_, tok, err := resolveTokenizer("", "")
				if err != nil {
					return err
				}
				p.Tokenizer = tok
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
			defer stop()
			rep, err := evalLibero(ctx, l, stats, split, limit, pipelinePredictor(p), cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			rep.Model = modelDir
			b, err := json.MarshalIndent(rep, "", "  ")
			if err != nil {
				return err
			}
			if out != "" {
				if err := os.MkdirAll(out, 0o755); err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(out, "results.json"), append(b, '\n'), 0o644); err != nil {
					return err
				}
			}
			if asJSON {
				_, err = fmt.Fprintln(cmd.OutOrStdout(), string(b))
				return err
			}
			writeLiberoTable(cmd.OutOrStdout(), rep)
			return nil
		},
	}
	fl := cmd.Flags()
	lf.register(cmd)
	fl.StringVar(&modelDir, "model", "", "fine-tuned checkpoint directory")
	fl.StringVar(&tokPath, "tokenizer", "", "tokenizer directory (default: the checkpoint's)")
	fl.StringVar(&split, "split", "heldout", "train | heldout | all")
	fl.StringVar(&statsPath, "statistics", "", "dataset_statistics.json (default: the checkpoint's)")
	fl.StringVar(&out, "out", "", "write results.json into this folder")
	fl.IntVar(&limit, "limit", 0, "evaluate at most N steps per task (0 = all)")
	fl.BoolVar(&asJSON, "json", false, "print the JSON report instead of the table")
	subcommand("eval", "Evaluate a checkpoint").AddCommand(cmd)
}
