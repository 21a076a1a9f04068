package train

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/magma-go/magma/data"
)

// Issue 20, point 8: resume, checkpoint folder and retention faults.

func faultRun(t *testing.T, out string, resume bool, log *bytes.Buffer, mod func(*Options)) (*Result, error) {
	t.Helper()
	c := resumeConfig()
	m, pp := testModel(t, c)
	o := Options{Config: c, Model: m, Preprocessor: pp, Data: openCycle(testSamples(t, m, pp, 5), 2), OutDir: out,
		Resume: resume, Log: log, NoPlot: true}
	if mod != nil {
		mod(&o)
	}
	return Run(context.Background(), o)
}

func TestResumeFallsBackFromTruncatedCheckpoint(t *testing.T) {
	out := t.TempDir()
	stop := errors.New("stop")
	var log bytes.Buffer
	_, err := faultRun(t, out, false, &log, func(o *Options) {
		o.Hooks.OnStep = func(si StepInfo) error {
			if si.Step >= 13 {
				return stop
			}
			return nil
		}
	})
	if !errors.Is(err, stop) {
		t.Fatalf("first run: %v", err)
	}
	root := filepath.Join(out, checkpointsDir)
	steps, _ := listSteps(root)
	if len(steps) != 2 {
		t.Fatalf("checkpoints %v", steps)
	}
	newest := filepath.Join(root, stepName(steps[1]), "model.safetensors")
	st, _ := os.Stat(newest)
	if err := os.Truncate(newest, st.Size()/2); err != nil {
		t.Fatal(err)
	}
	log.Reset()
	res, err := faultRun(t, out, true, &log, nil)
	if err != nil {
		t.Fatalf("resume with a truncated newest checkpoint: %v\n%s", err, log.String())
	}
	if res.Resumed != steps[0] {
		t.Fatalf("resumed from %d, want the intact step %d", res.Resumed, steps[0])
	}
	if !strings.Contains(log.String(), "falling back to") || !strings.Contains(log.String(), stepName(steps[1])) {
		t.Fatalf("no fallback warning naming %s:\n%s", stepName(steps[1]), log.String())
	}
}

func TestUnwritableCheckpointsFoundAtStart(t *testing.T) {
	out := t.TempDir()
	// A file where the folder should be: unwritable even for root.
	if err := os.WriteFile(filepath.Join(out, checkpointsDir), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	steps := 0
	_, err := faultRun(t, out, false, &bytes.Buffer{}, func(o *Options) {
		o.Hooks.OnStep = func(StepInfo) error { steps++; return nil }
	})
	if err == nil || !strings.Contains(err.Error(), "checkpoints folder") || steps != 0 {
		t.Fatalf("after %d steps: %v", steps, err)
	}
}

func TestRetentionFailureWarnsAndContinues(t *testing.T) {
	out := t.TempDir()
	var log bytes.Buffer
	res, err := faultRun(t, out, false, &log, func(o *Options) {
		o.removeOld = func(string) error { return errors.New("operation not permitted") }
	})
	if err != nil {
		t.Fatalf("retention failure aborted training: %v", err)
	}
	if res.Steps != resumeSteps || !strings.Contains(log.String(), "checkpoint retention could not remove") {
		t.Fatalf("steps %d, log:\n%s", res.Steps, log.String())
	}
}

// Issue 20, point 11: on a terminal the bar shows percentage, updates/s,
// elapsed<ETA and the last loss, redrawn in place; otherwise plain lines.
func TestProgressDisplay(t *testing.T) {
	for _, tty := range []bool{true, false} {
		var log bytes.Buffer
		tty := tty
		_, err := faultRun(t, t.TempDir(), false, &log, func(o *Options) {
			o.Progress = &tty
			o.NoCheckpoint = true
			o.Config.Steps, o.Config.LogEvery = 6, 3
		})
		if err != nil {
			t.Fatal(err)
		}
		s := log.String()
		if tty {
			for _, want := range []string{"\r\033[K", "100%", "6/6", " it/s", "tok/s", "loss ", "<0s", "█"} {
				if !strings.Contains(s, want) {
					t.Errorf("terminal bar lacks %q: %q", want, s)
				}
			}
		} else {
			if strings.Contains(s, "\r") || strings.Count(s, "\n") != 2 || !strings.Contains(s, "step 6/6 loss ") || !strings.Contains(s, " eta ") {
				t.Errorf("plain log: %q", s)
			}
		}
	}
}

// stopStream is a cycleStream whose call number stopAt (1-based) of Next
// plays a stop signal arriving while the trainer waits for that batch: it
// cancels the run's context and returns its error.
type stopStream struct {
	*cycleStream
	calls, stopAt int
	cancel        context.CancelFunc
}

func (s *stopStream) Next(ctx context.Context) (data.Batch, error) {
	if s.calls++; s.calls == s.stopAt {
		s.cancel()
		return data.Batch{}, ctx.Err()
	}
	return s.cycleStream.Next(ctx)
}

// A stop signal that arrives while a step waits for data (here its second
// micro-batch, the first already read) ends the run with the checkpoint of
// the updates completed before that step, data position included, and the
// resumed run ends where an uninterrupted one does.
func TestStopWhileWaitingForData(t *testing.T) {
	const steps = 5
	conf := func() *Config {
		c := testConfig(steps)
		c.GradAccum = 2
		c.Checkpoint = CheckpointConfig{Every: 0, Keep: 2}
		return c
	}
	run := func(out string, resume bool, stopAt int) (*Result, error) {
		c := conf()
		m, pp := testModel(t, c)
		samples := testSamples(t, m, pp, 5)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		open := openCycle(samples, 2)
		if stopAt > 0 {
			inner := open
			open = func(state []byte) (data.Stream, error) {
				s, err := inner(state)
				if err != nil {
					return nil, err
				}
				return &stopStream{cycleStream: s.(*cycleStream), stopAt: stopAt, cancel: cancel}, nil
			}
		}
		o := Options{Config: c, Model: m, Preprocessor: pp, Data: open, OutDir: out, Resume: resume, Log: quiet(), NoPlot: true, SaveOnCancel: true}
		return Run(ctx, o)
	}
	full, err := run(t.TempDir(), false, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	// calls 1-4 are steps 1 and 2; call 6 is step 3's second micro-batch
	if _, err := run(out, false, 6); !errors.Is(err, context.Canceled) {
		t.Fatalf("stopped run: %v, want context.Canceled", err)
	}
	dir, st, err := LatestCheckpoint(out)
	if err != nil {
		t.Fatal(err)
	}
	var pos struct{ Pos int }
	if err := json.Unmarshal(st.DataState, &pos); err != nil {
		t.Fatal(err)
	}
	if st.Step != 2 || pos.Pos != 2*2*2 || st.SamplesSeen != 8 {
		t.Fatalf("checkpoint %s: step %d, data position %d, samples seen %d: want 2, 8, 8 (the state before step 3)", dir, st.Step, pos.Pos, st.SamplesSeen)
	}
	resumed, err := run(out, true, 0)
	if err != nil {
		t.Fatal(err)
	}
	if resumed.Resumed != 2 || !slices.Equal(resumed.Losses, full.Losses[2:]) {
		t.Errorf("resumed from %d with losses %v, uninterrupted %v", resumed.Resumed, resumed.Losses, full.Losses)
	}
}
