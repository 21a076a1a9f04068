package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/magma-go/magma/llm/tokenizer"
)

// Issue 20, points 11-14: what a new user meets.

// Point 11: running the README's main command twice does not fail: the
// second run goes to the next free folder and says so in one line; an
// explicit --out holding checkpoints is refused with what to do.
func TestPretrainTwice(t *testing.T) {
	if testing.Short() {
		t.Skip("trains for a few steps")
	}
	tok, err := tokenizer.Locate("magma")
	if err != nil {
		t.Skip(err)
	}
	t.Setenv(tokenizer.EnvTokenizer, filepath.Dir(tok))
	t.Chdir(t.TempDir())
	if log, err := runMagma(t, "pretrain", "--max-steps", "2"); err != nil {
		t.Fatalf("first run: %v\n%s", err, log)
	}
	log, err := runMagma(t, "pretrain", "--max-steps", "2")
	if err != nil {
		t.Fatalf("second run of the same command: %v\n%s", err, log)
	}
	if !strings.Contains(log, "runs/pretrain already holds a run; this one goes to runs/pretrain-2") {
		t.Fatalf("no one-line notice:\n%s", log)
	}
	if _, err := os.Stat(filepath.Join("runs", "pretrain-2", "checkpoints", "latest")); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log, "training ") || !strings.Contains(log, " of ") {
		t.Fatalf("no start line:\n%s", log)
	}
	_, err = runMagma(t, "pretrain", "--max-steps", "2", "--out", "runs/pretrain")
	if err == nil || !strings.Contains(err.Error(), "--resume") {
		t.Fatalf("explicit --out holding a run: %v", err)
	}
	ignored, _ := os.ReadFile(filepath.Join(repoDir(t), ".gitignore"))
	if !strings.Contains(string(ignored), "/runs/") {
		t.Fatal(".gitignore does not ignore runs/")
	}
}

func repoDir(t *testing.T) string {
	t.Helper()
	tok, err := tokenizer.Locate("magma")
	if err != nil {
		t.Skip(err)
	}
	return filepath.Dir(filepath.Dir(filepath.Dir(tok)))
}

// Point 12: every runnable command has examples; the root help names every
// command group's real scope.
func TestHelpHasExamples(t *testing.T) {
	rootCmd := newRootCmd()
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Name() == "completion" { // cobra's own, documented by cobra
			return
		}
		if c.Runnable() && c != rootCmd && c.Name() != "help" && c.Name() != "completion" && c.Example == "" {
			t.Errorf("%s --help has no examples", c.CommandPath())
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(rootCmd)
	help, _ := runMagma(t, "--help")
	for _, want := range []string{"eval libero", "finetune libero", "eval screenspot", "eval mind2web", "finetune sft", "som", "tom", "tokenize", "serve", "data inspect"} {
		if !strings.Contains(help, want) {
			t.Errorf("root help does not mention %q:\n%s", want, help)
		}
	}
	for _, c := range rootCmd.Commands() {
		if c.Name() == "eval" && !strings.Contains(c.Short, "libero") {
			t.Errorf("eval's summary %q omits libero", c.Short)
		}
		if c.Name() == "finetune" && !strings.Contains(c.Short, "libero") {
			t.Errorf("finetune's summary %q omits libero", c.Short)
		}
	}
}

// Point 12: som and tom say what they wrote; som names a missing folder;
// init refuses to overwrite a checkpoint without --force.
func TestSomTomInitNewcomer(t *testing.T) {
	img, err := filepath.Abs(filepath.Join(parityDir, "square.png"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "marked.png")
	log, err := runMagma(t, "som", "--image", img, "--propose", "--out", out)
	if err != nil || !strings.Contains(log, "wrote "+out+": ") || !strings.Contains(log, "marks") {
		t.Fatalf("som: %v\n%s", err, log)
	}
	missing := filepath.Join(dir, "missing", "dir", "x.png")
	_, err = runMagma(t, "som", "--image", img, "--propose", "--out", missing)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "missing", "dir")) || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("som --out in a missing folder: %v", err)
	}
	frames := filepath.Join(dir, "frames")
	os.Mkdir(frames, 0o755)
	src, _ := os.ReadFile(img)
	for i := 0; i < 5; i++ {
		os.WriteFile(filepath.Join(frames, "f"+string(rune('0'+i))+".png"), src, 0o644)
	}
	log, err = runMagma(t, "tom", "--video", frames, "--out", filepath.Join(dir, "t.json"), "--future", "4", "--grid", "4")
	if err != nil || !strings.Contains(log, "wrote "+filepath.Join(dir, "t.json")+": ") || !strings.Contains(log, "traces") {
		t.Fatalf("tom: %v\n%s", err, log)
	}
	ck := filepath.Join(dir, "ck")
	if log, err := runMagma(t, "init", "--preset", "tiny", "--out", ck); err != nil {
		t.Fatalf("init: %v\n%s", err, log)
	}
	if _, err := runMagma(t, "init", "--preset", "tiny", "--out", ck); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("init over a checkpoint: %v", err)
	}
	if log, err := runMagma(t, "init", "--preset", "tiny", "--out", ck, "--force"); err != nil {
		t.Fatalf("init --force: %v\n%s", err, log)
	}
}

// Point 14: eval screenspot without --data explains the layout and points
// to the synthetic demo data.
func TestEvalScreenSpotWithoutData(t *testing.T) {
	_, err := runMagma(t, "eval", "screenspot", "--model", "x")
	if err == nil {
		t.Fatal("ran without --data")
	}
	for _, want := range []string{"screenspot_{mobile,desktop,web}.json", "annotations/*.json", "magma eval synthetic --out"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
	help, _ := runMagma(t, "eval", "--help")
	if !strings.Contains(help, "synthetic") {
		t.Errorf("eval --help hides the synthetic demo data:\n%s", help)
	}
}

// Point 13: a corrupt video prints the real error only; --verbose shows the
// library logging. The command runs as a child process (the libraries
// write to file descriptor 2 directly).
func TestCorruptVideoIsQuiet(t *testing.T) {
	if os.Getenv("MAGMA_MAIN_CHILD") == "1" {
		os.Args = append([]string{"magma"}, strings.Fields(os.Getenv("MAGMA_MAIN_ARGS"))...)
		main()
		os.Exit(0)
	}
	dir := t.TempDir()
	video := filepath.Join(dir, "corrupt.mp4")
	junk := make([]byte, 4096)
	for i := range junk {
		junk[i] = byte(i*7 + i/13)
	}
	os.WriteFile(video, junk, 0o644)
	run := func(extra string) string {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCorruptVideoIsQuiet$")
		cmd.Env = append(os.Environ(), "MAGMA_MAIN_CHILD=1", "OPENCV_LOG_LEVEL=", "MAGMA_MAIN_ARGS=tom --video "+video+" --out "+filepath.Join(dir, "t.json")+extra)
		cmd.Env = slicesWithout(cmd.Env, "OPENCV_LOG_LEVEL=")
		out, _ := cmd.CombinedOutput()
		return string(out)
	}
	quiet := run("")
	lines := strings.Split(strings.TrimSpace(quiet), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "magma: tom: ") {
		t.Fatalf("quiet run printed %d lines:\n%s", len(lines), quiet)
	}
	loud := run(" --verbose")
	if !strings.Contains(loud, "magma: tom: ") {
		t.Fatalf("verbose run:\n%s", loud)
	}
	t.Logf("--verbose printed %d lines", len(strings.Split(strings.TrimSpace(loud), "\n")))
}

func slicesWithout(env []string, drop string) []string {
	var out []string
	for _, e := range env {
		if e != drop && !strings.HasPrefix(e, "OPENCV_LOG_LEVEL=") {
			out = append(out, e)
		}
	}
	return out
}
