package eval

import (
	"context"
	"fmt"
	"io"
	"math"
	"text/tabwriter"
	"time"

	"github.com/magma-go/magma/data"
	"github.com/magma-go/magma/model"
	"github.com/magma-go/magma/model/action"
	"github.com/magma-go/magma/vision/imaging"
)

// LIBERO offline evaluation: the demo steps of a suite replayed through a
// checkpoint fine-tuned by magma finetune libero, its 7 greedy action
// tokens compared with the demos'.

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

// L1Text formats an optional L1 value for a table ("n/a" when there is none).
func L1Text(v *float64) string {
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

// LiberoPredictor answers one step: the 7 action ids for the upright frame
// and instruction (the raw generation when it has fewer).
type LiberoPredictor func(ctx context.Context, img imaging.Image, instruction string) ([]int, error)

// PipelinePredictor asks p for the action of a step, with the prompt
// finetune libero trained on, decoding as dec says (data.LiberoDecodings:
// greedy, or Magma's official sampling); sampling draws from seed,
// advanced per step.
func PipelinePredictor(p *model.Pipeline, dec data.LiberoDecoding, seed uint64) LiberoPredictor {
	step := uint64(0)
	return func(ctx context.Context, img imaging.Image, instruction string) ([]int, error) {
		img, err := dec.Frame(img)
		if err != nil {
			return nil, err
		}
		step++
		res, err := p.Generate(ctx, model.Request{Images: []imaging.Image{img}, Prompt: action.Prompt(instruction),
			MaxNewTokens: dec.MaxNewTokens, Temperature: dec.Temperature, Seed: seed + step})
		if err != nil {
			return nil, err
		}
		if ids := dec.ActionIDs(res.OutputIDs); ids != nil {
			return ids, nil
		}
		return res.OutputIDs, nil
	}
}

// RunLibero scores predict on the demo steps of split of l, actions
// encoded and decoded with stats: per task (at most limit steps each, 0 =
// all) and overall, with a progress line per task.
func RunLibero(ctx context.Context, l *data.Libero, stats *action.DatasetStats, split string, limit int, predict LiberoPredictor, progress io.Writer) (*LiberoReport, error) {
	at, err := action.NewTokenizer(action.LlamaBaseVocab)
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
		type step struct {
			d *data.LiberoDemo
			k int
		}
		var steps []step
	demoLoop:
		for _, di := range demos {
			d := t.Demos[di]
			for k := range d.Actions {
				if limit > 0 && len(steps) >= limit {
					break demoLoop
				}
				steps = append(steps, step{d, k})
			}
		}
		err = eachItem(ctx, len(steps), 1, nil, func(i int) (func() error, error) {
			d, k := steps[i].d, steps[i].k
			where := l.Where(t, d, k)
			img, err := l.Frame(t, d, k)
			if err != nil {
				return nil, err
			}
			target, err := stats.Action.EncodeAction(at, data.LiberoPolicyAction(d.Actions[k]))
			if err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			out, err := predict(ctx, img, t.Instruction)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			var env []float64
			if len(out) >= data.LiberoActionDim {
				if pol, err := stats.Action.DecodeAction(at, out[:data.LiberoActionDim]); err == nil {
					env = data.LiberoEnvAction(pol)
				}
			}
			return func() error { tm.add(out, target, env, d.Actions[k]); return nil }, nil
		}, nil)
		if err != nil {
			return nil, err
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

// WriteTable prints the report as a table, one row per task and overall.
func (rep *LiberoReport) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "LIBERO %s, split %s: %d steps in %.1fs (%.2f steps/s)\n", rep.Suite, rep.Split, rep.Overall.Steps, rep.Seconds, rep.StepsPer)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "task\tdemos\tsteps\ttoken acc\tL1\tL1 arm\tgripper acc\tinvalid\t")
	row := func(m *LiberoMetrics) {
		name := m.Task
		if len(name) > 48 {
			name = name[:45] + "..."
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.3f\t%s\t%s\t%.3f\t%d\t\n", name, m.Demos, m.Steps, m.TokenAcc, L1Text(m.L1), L1Text(m.L1Arm), m.GripperAcc, m.Invalid)
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
