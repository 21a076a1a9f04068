package train

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"
)

const resumeSteps = 24

func resumeConfig() *Config {
	c := testConfig(resumeSteps)
	c.Checkpoint = CheckpointConfig{Every: 4, Keep: 2}
	c.GradAccum = 2 // exercise accumulation across the resume too
	c.Optimizer.MaxGradNorm = 0.5
	return c
}

func runResume(t *testing.T, out string, resume bool, hook func(step int) error, beforeRename func(string) error) (*Result, error) {
	t.Helper()
	c := resumeConfig()
	m, pp := testModel(t, c)
	samples := testSamples(t, m, pp, 5) // 5 samples, batch 2: the stream position matters
	o := Options{Config: c, Model: m, Preprocessor: pp, Data: openCycle(samples, 2), OutDir: out, Resume: resume, Log: quiet(), NoPlot: true, beforeRename: beforeRename}
	if hook != nil {
		o.Hooks.OnStep = func(si StepInfo) error { return hook(si.Step) }
	}
	return Run(context.Background(), o)
}

// TestResumeHelperProcess is the child of TestKillAndResume: it trains
// slowly until killed.
func TestResumeHelperProcess(t *testing.T) {
	out := os.Getenv("MAGMA_TRAIN_CHILD_OUT")
	if out == "" {
		t.Skip("helper process")
	}
	_, err := runResume(t, out, false, func(int) error { time.Sleep(60 * time.Millisecond); return nil }, nil)
	t.Fatalf("child was not killed: %v", err)
}

func losses(t *testing.T, out string) []float64 {
	t.Helper()
	ms, err := ReadMetrics(filepath.Join(out, MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	var l []float64
	for i, m := range ms {
		if m.Step != i+1 {
			t.Fatalf("%s: line %d has step %d", out, i+1, m.Step)
		}
		l = append(l, m.Loss)
	}
	return l
}

func compareLosses(t *testing.T, what string, got, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d losses, want %d", what, len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%s: step %d loss %.9g, uninterrupted %.9g", what, i+1, got[i], want[i])
		}
	}
}

// A run killed with SIGKILL at a random step and resumed from its last
// checkpoint logs exactly (bit for bit) the losses of an uninterrupted
// run: weights, AdamW moments and step, schedule position and the data
// stream position all come back. The child gets this process's
// GOMAXPROCS so both runs use the same thread count.
func TestKillAndResume(t *testing.T) {
	if testing.Short() {
		t.Skip("subprocess test")
	}
	ref := t.TempDir()
	if _, err := runResume(t, ref, false, nil, nil); err != nil {
		t.Fatal(err)
	}
	want := losses(t, ref)

	out := t.TempDir()
	k := 5 + rand.IntN(resumeSteps-10)
	cmd := exec.Command(os.Args[0], "-test.run=^TestResumeHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "MAGMA_TRAIN_CHILD_OUT="+out, "GOMAXPROCS="+strconv.Itoa(runtime.GOMAXPROCS(0)))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ms, _ := ReadMetrics(filepath.Join(out, MetricsFile))
		if len(ms) >= k {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("child exited before step %d: %v", k, err)
		default:
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("child too slow")
		}
		time.Sleep(2 * time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-done
	logged := len(losses(t, out))
	dir, st, _ := LatestCheckpoint(out)
	if st == nil {
		t.Fatalf("no checkpoint after killing at step %d", logged)
	}
	t.Logf("killed after %d logged steps; resuming from %s", logged, filepath.Base(dir))
	res, err := runResume(t, out, true, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Resumed != st.Step || res.Steps != resumeSteps {
		t.Errorf("resumed at %d (want %d), ended at %d", res.Resumed, st.Step, res.Steps)
	}
	compareLosses(t, "killed+resumed", losses(t, out), want)
}

// A crash while a checkpoint is being written (after the files are
// complete, before the rename) leaves a temp directory: resume ignores and
// removes it, loads the previous checkpoint, and the losses still match.
func TestCrashDuringCheckpointWrite(t *testing.T) {
	ref := t.TempDir()
	if _, err := runResume(t, ref, false, nil, nil); err != nil {
		t.Fatal(err)
	}
	want := losses(t, ref)
	out := t.TempDir()
	crash := errors.New("simulated crash before rename")
	_, err := runResume(t, out, false, nil, func(tmp string) error {
		if filepath.Base(tmp) == tmpPrefix+stepName(12) {
			return crash
		}
		return nil
	})
	if !errors.Is(err, crash) {
		t.Fatalf("got %v", err)
	}
	root := filepath.Join(out, checkpointsDir)
	if _, err := os.Stat(filepath.Join(root, tmpPrefix+stepName(12), "model.safetensors")); err != nil {
		t.Fatalf("expected the half-written checkpoint to be left behind: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, latestFile)); string(b) != stepName(8)+"\n" {
		t.Errorf("latest = %q", b)
	}
	dir, st, _ := LatestCheckpoint(out)
	if st == nil || st.Step != 8 {
		t.Fatalf("latest complete checkpoint %s %+v, want step 8", dir, st)
	}
	res, err := runResume(t, out, true, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Resumed != 8 {
		t.Errorf("resumed from %d", res.Resumed)
	}
	if _, err := os.Stat(filepath.Join(root, tmpPrefix+stepName(12))); !os.IsNotExist(err) {
		t.Errorf("temp checkpoint not cleaned up: %v", err)
	}
	compareLosses(t, "crash+resume", losses(t, out), want)
	steps, _ := listSteps(root)
	if fmt.Sprint(steps) != "[20 24]" {
		t.Errorf("retained %v, want [20 24]", steps)
	}
	// Without --resume the run refuses to overwrite.
	if _, err := runResume(t, out, false, nil, nil); err == nil {
		t.Error("second fresh run into the same folder accepted")
	}
}
