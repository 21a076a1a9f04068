package train

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
