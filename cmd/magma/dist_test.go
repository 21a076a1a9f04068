package main

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/magma-go/magma/train"
)

// The distributed tests launch this test binary as `magma` (TestMain runs
// main() when MAGMA_TEST_MAIN=1), under mpirun for several ranks. make
// setup installs Open MPI, so a missing mpirun is a failure, not a skip.

func TestMain(m *testing.M) {
	if os.Getenv("MAGMA_TEST_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// distEnv pins the threads so every process reduces in the same order.
var distEnv = []string{"MAGMA_TEST_MAIN=1", "GOMAXPROCS=1", "OPENBLAS_NUM_THREADS=1"}

// mpirunArgs starts an mpirun command line (root-safe, oversubscribed: the
// test machine may have fewer cores than ranks).
func mpirunArgs(t *testing.T) []string {
	t.Helper()
	path, err := exec.LookPath("mpirun")
	if err != nil {
		t.Fatalf("mpirun not found (make setup installs Open MPI: libopenmpi-dev openmpi-bin): %v", err)
	}
	args := []string{path, "--allow-run-as-root", "--oversubscribe"}
	for _, e := range distEnv {
		args = append(args, "-x", e)
	}
	return args
}

// rankCmd is `-np n BINARY args...` (one MPMD part of an mpirun line).
func rankCmd(n int, bin string, args ...string) []string {
	return append([]string{"-np", strconv.Itoa(n), bin}, args...)
}

// runCmd runs argv with the test environment, returning combined output.
func runCmd(t *testing.T, timeout time.Duration, argv ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), distEnv...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%s: still running after %v (hang)\n%s", strings.Join(argv, " "), timeout, out)
	}
	return string(out), err
}

// distRecipe writes the tiny recipe for steps updates, logging every update
// and checkpointing every ckEvery, with its synthetic data generated once
// in the test's shared folder.
var (
	synthOnce sync.Once
	synthDir  string
)

func distRecipe(t *testing.T, steps, ckEvery int, more ...string) string {
	t.Helper()
	synthOnce.Do(func() {
		var err error
		if synthDir, err = os.MkdirTemp("", "magma-dist-synth"); err != nil {
			t.Fatal(err)
		}
	})
	base, err := os.ReadFile(filepath.Join("..", "..", "configs", "pretrain", "tiny.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(base)
	for old, new := range map[string]string{
		"steps: 300":         fmt.Sprintf("steps: %d", steps),
		"log_every: 5":       "log_every: 1",
		"every: 100":         fmt.Sprintf("every: %d", ckEvery),
		"keep: 2":            "keep: 3",
		"  synthetic:\n":     fmt.Sprintf("  synthetic:\n    dir: %s\n", synthDir),
		"  workers: 2\n":     "  workers: 1\n",
		"warmup_ratio: 0.05": "warmup_ratio: 0.1",
	} {
		if !strings.Contains(s, old) {
			t.Fatalf("tiny.yaml lacks %q", old)
		}
		s = strings.Replace(s, old, new, 1)
	}
	for i := 0; i+1 < len(more); i += 2 {
		if !strings.Contains(s, more[i]) {
			t.Fatalf("tiny.yaml lacks %q", more[i])
		}
		s = strings.Replace(s, more[i], more[i+1], 1)
	}
	path := filepath.Join(t.TempDir(), "tiny-dist.yaml")
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func losses(t *testing.T, run string) map[int]train.Metric {
	t.Helper()
	ms, err := train.ReadMetrics(filepath.Join(run, train.MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]train.Metric{}
	for _, m := range ms {
		out[m.Step] = m
	}
	return out
}

// sameCurve checks got's steps [from, to] against want within 1e-5 relative.
func sameCurve(t *testing.T, what string, want, got map[int]train.Metric, from, to int) {
	t.Helper()
	for s := from; s <= to; s++ {
		w, ok1 := want[s]
		g, ok2 := got[s]
		if !ok1 || !ok2 {
			t.Errorf("%s: step %d missing (one process %v, distributed %v)", what, s, ok1, ok2)
			continue
		}
		if d := math.Abs(g.Loss-w.Loss) / math.Abs(w.Loss); d > 1e-5 || math.IsNaN(d) {
			t.Errorf("%s: step %d loss %.9g, one process %.9g (relative %.2g > 1e-5)", what, s, g.Loss, w.Loss, d)
		}
		if d := math.Abs(g.GradNorm-w.GradNorm) / math.Abs(w.GradNorm); d > 1e-4 {
			t.Errorf("%s: step %d grad norm %.9g, one process %.9g", what, s, g.GradNorm, w.GradNorm)
		}
		if g.Tokens != w.Tokens {
			t.Errorf("%s: step %d tokens seen %d, one process %d", what, s, g.Tokens, w.Tokens)
		}
	}
}

// Issue 15: `mpirun -np 2` equals one process's loss curve within 1e-5 over
// 15 updates, with half the optimizer state per rank; its step-8
// checkpoint resumed by one process continues the one-process curve.
func TestDistSameCurveAndResume(t *testing.T) {
	if testing.Short() {
		t.Skip("trains under mpirun")
	}
	bin := os.Args[0]
	recipe := distRecipe(t, 15, 8)
	root := t.TempDir()
	one, two := filepath.Join(root, "one"), filepath.Join(root, "two")
	if out, err := runCmd(t, 5*time.Minute, bin, "pretrain", "--config", recipe, "--out", one); err != nil {
		t.Fatalf("one process: %v\n%s", err, out)
	}
	out, err := runCmd(t, 5*time.Minute, append(mpirunArgs(t), rankCmd(2, bin, "pretrain", "--config", recipe, "--out", two)...)...)
	if err != nil {
		t.Fatalf("mpirun -np 2: %v\n%s", err, out)
	}
	want, got := losses(t, one), losses(t, two)
	sameCurve(t, "N=2", want, got, 1, 15)
	// Only rank 0 prints: one summary line.
	if n := strings.Count(out, "done: 15 updates"); n != 1 {
		t.Errorf("%d summaries printed, want 1 (rank 0 only):\n%s", n, out)
	}
	// ZeRO-1: each rank holds half of the one-process optimizer state.
	m := regexp.MustCompile(`rank 0 (\d+) bytes; rank 1 (\d+) bytes; one process: (\d+) bytes`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no optimizer state line:\n%s", out)
	}
	r0, _ := strconv.ParseInt(m[1], 10, 64)
	r1, _ := strconv.ParseInt(m[2], 10, 64)
	all, _ := strconv.ParseInt(m[3], 10, 64)
	if r0+r1 != all || math.Abs(float64(r0)-float64(all)/2) > 64 || math.Abs(float64(r1)-float64(all)/2) > 64 {
		t.Errorf("optimizer bytes per rank %d, %d of %d: want half each", r0, r1, all)
	}
	// The one-process optimizer file holds exactly the state of both ranks.
	st, err := os.Stat(filepath.Join(one, "checkpoints", "step-000015", "optimizer.safetensors"))
	if err != nil || st.Size() < all {
		t.Errorf("one-process optimizer.safetensors: %v (size %v < %d moment bytes?)", err, st, all)
	}

	// Resume the N=2 run's step-8 checkpoint with one process.
	res := filepath.Join(root, "resumed")
	if err := os.MkdirAll(filepath.Join(res, "checkpoints"), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := runCmd(t, time.Minute, "cp", "-r", filepath.Join(two, "checkpoints", "step-000008"), filepath.Join(res, "checkpoints")); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if out, err := runCmd(t, 5*time.Minute, bin, "pretrain", "--config", recipe, "--out", res, "--resume"); err != nil || !strings.Contains(out, "step 8 of 15") {
		t.Fatalf("resume at N=1: %v\n%s", err, out)
	}
	sameCurve(t, "N=2 step 8 resumed at N=1", want, losses(t, res), 9, 15)
}

// Gradient accumulation (each micro-batch weighted by its global token
// count) and small buckets (parameters split across buckets) give the
// one-process curve too; a one-process checkpoint resumes at N=2.
func TestDistGradAccumBuckets(t *testing.T) {
	if testing.Short() {
		t.Skip("trains under mpirun")
	}
	bin := os.Args[0]
	recipe := distRecipe(t, 6, 3, "batch_size: 4", "batch_size: 2", "grad_accum: 1", "grad_accum: 2")
	root := t.TempDir()
	one, two, res := filepath.Join(root, "one"), filepath.Join(root, "two"), filepath.Join(root, "res")
	if out, err := runCmd(t, 5*time.Minute, bin, "pretrain", "--config", recipe, "--out", one); err != nil {
		t.Fatalf("one process: %v\n%s", err, out)
	}
	out, err := runCmd(t, 5*time.Minute, append(mpirunArgs(t), rankCmd(2, bin, "pretrain", "--config", recipe, "--out", two, "--bucket-mb", "0.5")...)...)
	if err != nil {
		t.Fatalf("mpirun -np 2: %v\n%s", err, out)
	}
	if !regexp.MustCompile(`global batch 2 \(1 per rank\), (\d{3}) gradient bucket`).MatchString(out) {
		t.Errorf("want hundreds of 0.5 MiB buckets:\n%s", out)
	}
	want := losses(t, one)
	sameCurve(t, "N=2, grad_accum 2, 0.5 MiB buckets", want, losses(t, two), 1, 6)
	if err := os.MkdirAll(filepath.Join(res, "checkpoints"), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := runCmd(t, time.Minute, "cp", "-r", filepath.Join(one, "checkpoints", "step-000003"), filepath.Join(res, "checkpoints")); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	out, err = runCmd(t, 5*time.Minute, append(mpirunArgs(t), rankCmd(2, bin, "pretrain", "--config", recipe, "--out", res, "--resume")...)...)
	if err != nil || !strings.Contains(out, "step 3 of 6") {
		t.Fatalf("resume at N=2: %v\n%s", err, out)
	}
	sameCurve(t, "N=1 step 3 resumed at N=2", want, losses(t, res), 4, 6)
}

// Issue 15: killing one rank (kill -9) ends the job within 60 s with an
// error naming the rank and a non-zero exit; the last complete checkpoint
// stays intact and --resume continues from it.
func TestDistKillRank(t *testing.T) {
	if testing.Short() {
		t.Skip("trains under mpirun")
	}
	bin := os.Args[0]
	recipe := distRecipe(t, 30, 2)
	run := filepath.Join(t.TempDir(), "run")
	job := startDistJob(t, nil, "pretrain", "--config", recipe, "--out", run)
	// Wait for a checkpoint (step 4: the step-2 one is complete by then),
	// then kill rank 1.
	job.waitUntil(t, "a checkpoint", func() bool {
		_, err := os.Stat(filepath.Join(run, "checkpoints", "step-000004"))
		return err == nil
	})
	pid := rankPID(t, job.cmd.Process.Pid, 1)
	killed := time.Now()
	if err := exec.Command("kill", "-9", strconv.Itoa(pid)).Run(); err != nil {
		t.Fatal(err)
	}
	err := job.waitExit(t, "kill -9 of rank 1")
	t.Logf("job ended %.1f s after kill -9", time.Since(killed).Seconds())
	if err == nil {
		t.Fatalf("job exited 0 after a rank was killed:\n%s", job.out.String())
	}
	if s := job.out.String(); !regexp.MustCompile(`rank 1\b`).MatchString(s) || !strings.Contains(s, "signal 9") {
		t.Errorf("the error does not name rank 1 and the signal:\n%s", s)
	}
	// The newest complete checkpoint loads and the run finishes (one process).
	out2, err := runCmd(t, 5*time.Minute, bin, "pretrain", "--config", recipe, "--out", run, "--resume")
	if err != nil || !strings.Contains(out2, "resuming from") || !strings.Contains(out2, "done: 30 updates") {
		t.Fatalf("--resume after the kill: %v\n%s", err, out2)
	}
}

// SIGUSR1 to mpirun (which forwards it to every rank) stops all ranks at
// the same step with a checkpoint, reported once.
func TestDistStopWithCheckpoint(t *testing.T) {
	if testing.Short() {
		t.Skip("trains under mpirun")
	}
	recipe := distRecipe(t, 30, 50)
	run := filepath.Join(t.TempDir(), "run")
	job := startDistJob(t, nil, "pretrain", "--config", recipe, "--out", run)
	job.waitUntil(t, "progress", func() bool { return strings.Contains(job.out.String(), "step 3/30") })
	if err := job.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	job.waitExit(t, "SIGUSR1")
	s := job.out.String()
	m := regexp.MustCompile(`interrupted: checkpoint (\S+) written`).FindAllStringSubmatch(s, -1)
	if len(m) != 1 || strings.Count(s, "interrupted; continue with --resume") != 1 {
		t.Fatalf("want one checkpoint and one message:\n%s", s)
	}
	if _, err := os.Stat(filepath.Join(m[0][1], "optimizer.safetensors")); err != nil {
		t.Fatal(err)
	}
}

// A rank that hangs without dying (SIGSTOP) is caught by the collectives'
// watchdog: the job ends with a message saying so, not a hang.
func TestDistHungRankWatchdog(t *testing.T) {
	if testing.Short() {
		t.Skip("trains under mpirun")
	}
	recipe := distRecipe(t, 30, 50)
	run := filepath.Join(t.TempDir(), "run")
	job := startDistJob(t, []string{"MAGMA_DIST_TIMEOUT=20"}, "pretrain", "--config", recipe, "--out", run)
	job.waitUntil(t, "progress", func() bool { return strings.Contains(job.out.String(), "step 3/30") })
	pid := rankPID(t, job.cmd.Process.Pid, 1)
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(pid, syscall.SIGKILL) // never leave it stopped
	if err := job.waitExit(t, "rank 1 stopped"); err == nil {
		t.Fatalf("exit 0:\n%s", job.out.String())
	}
	if s := job.out.String(); !strings.Contains(s, "rank 0 of 2") || !strings.Contains(s, "MAGMA_DIST_TIMEOUT") {
		t.Errorf("no watchdog message:\n%s", s)
	}
}

// distJob is a 2-rank job under mpirun running in the background, its
// output collected.
type distJob struct {
	cmd    *exec.Cmd
	out    syncBuffer
	exited chan error
}

// startDistJob starts the test binary as magma args on 2 ranks; env (KEY=V)
// is set for mpirun and exported to every rank.
func startDistJob(t *testing.T, env []string, args ...string) *distJob {
	t.Helper()
	argv := mpirunArgs(t)
	for _, kv := range env {
		argv = append(argv, "-x", kv)
	}
	argv = append(argv, rankCmd(2, os.Args[0], args...)...)
	j := &distJob{cmd: exec.Command(argv[0], argv[1:]...), exited: make(chan error, 1)}
	j.cmd.Env = append(append(os.Environ(), distEnv...), env...)
	j.cmd.Stdout, j.cmd.Stderr = &j.out, &j.out
	if err := j.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { j.exited <- j.cmd.Wait() }()
	return j
}

// waitUntil polls cond for up to 3 minutes; the job ending first, or the
// time running out, fails the test.
func (j *distJob) waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			j.cmd.Process.Kill()
			t.Fatalf("no %s after 3 minutes:\n%s", what, j.out.String())
		}
		select {
		case err := <-j.exited:
			t.Fatalf("job ended before %s: %v\n%s", what, err, j.out.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitExit waits up to 60 s for the job to end after the event named by
// after, and returns its exit error.
func (j *distJob) waitExit(t *testing.T, after string) error {
	t.Helper()
	select {
	case err := <-j.exited:
		return err
	case <-time.After(60 * time.Second):
		j.cmd.Process.Kill()
		t.Fatalf("job still running 60 s after %s:\n%s", after, j.out.String())
		return nil
	}
}

// syncBuffer is a bytes.Buffer safe for the process's writers and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// rankPID finds the process of rank under mpirun's process tree.
func rankPID(t *testing.T, mpirun, rank int) int {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/environ")
	for _, p := range procs {
		env, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if !bytes.Contains(env, []byte("MAGMA_TEST_MAIN=1")) || !bytes.Contains(env, []byte("\x00OMPI_COMM_WORLD_RANK="+strconv.Itoa(rank)+"\x00")) {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if isDescendant(pid, mpirun) {
			return pid
		}
	}
	t.Fatalf("rank %d of mpirun %d not found", rank, mpirun)
	return 0
}

func isDescendant(pid, ancestor int) bool {
	for i := 0; i < 10 && pid > 1; i++ {
		if pid == ancestor {
			return true
		}
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return false
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
		f := strings.Fields(string(st[bytes.LastIndexByte(st, ')')+1:]))
		if len(f) < 2 {
			return false
		}
		pid, _ = strconv.Atoi(f[1])
	}
	return false
}

// Issue 15, bad input: each case is one clear error (printed once, naming
// the rank where it is a rank's) and a non-zero exit, never a hang.
func TestDistBadInput(t *testing.T) {
	if testing.Short() {
		t.Skip("runs mpirun")
	}
	bin := os.Args[0]
	recipe := distRecipe(t, 15, 8)
	root := t.TempDir()
	// A second binary: the same program with one more byte.
	other := filepath.Join(root, "magma-other")
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, append(b, 0), 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(root, "a-file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	pre := func(out string) []string { return []string{"pretrain", "--config", recipe, "--out", out} }
	for _, c := range []struct {
		name string
		argv []string
		want []string
	}{
		{"batch 4 over 3 ranks", rankCmd(3, bin, pre(filepath.Join(root, "b3"))...), []string{"batch_size 4 does not divide over 3 ranks"}},
		{"different recipe", append(rankCmd(1, bin, pre(filepath.Join(root, "r"))...), append([]string{":"}, rankCmd(1, bin, append(pre(filepath.Join(root, "r")), "--max-steps", "7")...)...)...),
			[]string{"rank 1 runs a different recipe"}},
		{"different binary", append(rankCmd(1, bin, pre(filepath.Join(root, "x"))...), append([]string{":"}, rankCmd(1, other, pre(filepath.Join(root, "x"))...)...)...),
			[]string{"rank 1 runs a different binary"}},
		{"unwritable run folder", rankCmd(2, bin, pre(filepath.Join(file, "run"))...), []string{"rank 0:", "a-file"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := runCmd(t, 3*time.Minute, append(mpirunArgs(t), c.argv...)...)
			if err == nil {
				t.Fatalf("exit 0:\n%s", out)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if n := strings.Count(out, "magma: "); n != 1 {
				t.Errorf("%d error lines, want the agreed error once:\n%s", n, out)
			}
		})
	}
}
