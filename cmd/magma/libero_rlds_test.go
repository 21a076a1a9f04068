package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/magma-go/magma/data"
	"github.com/magma-go/magma/eval"
	"github.com/magma-go/magma/model/action"
)

// `magma eval synthetic --benchmark libero` writes the HDF5 and the RLDS
// layouts from the CLI; both read back with the same tasks and statistics
// (data.OpenLibero), data inspect reads the RLDS one, and bad flags are
// refused with the accepted values.
func TestEvalSyntheticLibero(t *testing.T) {
	root := t.TempDir()
	h5, rd := filepath.Join(root, "libero_spatial"), filepath.Join(root, "libero_spatial_no_noops")
	common := []string{"--tasks", "2", "--demos", "3", "--steps", "6", "--size", "16"}
	for _, c := range []struct{ out, format, want string }{{h5, "", "(hdf5, 2 tasks x 3 demos)"}, {rd, "rlds", "(rlds, 2 tasks x 3 demos)"}} {
		args := append([]string{"eval", "synthetic", "--benchmark", "libero", "--out", c.out}, common...)
		if c.format != "" {
			args = append(args, "--format", c.format)
		}
		out, err := runMagma(t, args...)
		if err != nil || !strings.Contains(out, c.want) {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	if m, _ := filepath.Glob(filepath.Join(h5, "*_demo.hdf5")); len(m) != 2 {
		t.Fatalf("hdf5 files: %v", m)
	}
	for _, f := range []string{"dataset_info.json", "features.json", "libero_spatial-train.tfrecord-00000-of-00002", "libero_spatial-train.tfrecord-00001-of-00002"} {
		if _, err := os.Stat(filepath.Join(rd, "1.0.0", f)); err != nil {
			t.Fatal(err)
		}
	}
	opt := data.LiberoOptions{Shots: 1, RemoveNoops: true}
	a, err := data.OpenLibero(h5, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := data.OpenLibero(rd, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if len(a.Tasks) != 2 || len(b.Tasks) != 2 || a.Stats.NumTransitions != b.Stats.NumTransitions || a.Stats.NumTransitions != 2*4 {
		t.Fatalf("tasks %d/%d, transitions %d/%d", len(a.Tasks), len(b.Tasks), a.Stats.NumTransitions, b.Stats.NumTransitions)
	}
	out, err := runMagma(t, "data", "inspect", rd)
	if err != nil || !strings.Contains(out, "records: 24 (steps)\nepisodes: 6\n") || !strings.Contains(out, "steps/observation/state: Tensor float32 [8] (step)") {
		t.Fatalf("inspect: %v\n%s", err, out)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--benchmark", "libero", "--format", "pro"}, "want hdf5 or rlds"},
		{[]string{"--benchmark", "nope"}, "want screenspot or libero"},
		{[]string{"--benchmark", "screenspot", "--format", "rlds"}, "unknown format"},
		{[]string{"--benchmark", "libero", "--format", "rlds", "--out", rd}, "already exists"},
		{[]string{"--benchmark", "libero", "--out", h5}, "already holds"},
	} {
		args := append([]string{"eval", "synthetic", "--out", filepath.Join(root, "x")}, c.args...)
		if out, err := runMagma(t, args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: want an error containing %q, got %v\n%s", c.args, c.want, err, out)
		}
	}
}

// finetune libero and eval libero take OpenVLA's RLDS layout as --data: the
// statistics are keyed by the dataset name, the split names its episodes,
// and eval scores the training steps of that split.
func TestFinetuneLiberoRLDS(t *testing.T) {
	root := t.TempDir()
	rd := filepath.Join(root, "libero_spatial_no_noops")
	if out, err := runMagma(t, "eval", "synthetic", "--benchmark", "libero", "--format", "rlds", "--out", rd,
		"--tasks", "2", "--demos", "2", "--steps", "5", "--size", "32"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	initDir := filepath.Join(root, "init")
	if out, err := runMagma(t, "init", "--preset", "tiny", "--out", initDir, "--seed", "1"); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	run := filepath.Join(root, "run")
	out, err := runMagma(t, "finetune", "libero", "--data", rd, "--init", initDir, "--out", run,
		"--shots", "1", "--shots-per", "task", "--steps", "2", "--batch-size", "2", "--save-every", "0", "--lora-rank", "0")
	if err != nil || !strings.Contains(out, "libero_spatial_no_noops: 2 tasks, 2 training demos (6 steps), 2 held out") {
		t.Fatalf("finetune libero (rlds): %v\n%s", err, out)
	}
	ck := filepath.Join(run, "checkpoints", "step-000002")
	all, err := action.ReadDatasetStatistics(filepath.Join(ck, action.DatasetStatisticsFile))
	if err != nil {
		t.Fatal(err)
	}
	if st := all["libero_spatial_no_noops"]; st == nil || st.NumTrajectories != 2 || st.NumTransitions != 6 {
		t.Fatalf("statistics: %+v", all)
	}
	b, err := os.ReadFile(filepath.Join(ck, data.LiberoSplitFile))
	if err != nil || !strings.Contains(string(b), "libero_spatial-train.tfrecord-0000") {
		t.Fatalf("split: %v %s", err, b)
	}
	out, err = runMagma(t, "eval", "libero", "--model", ck, "--data", rd, "--split", "heldout", "--limit", "1", "--json")
	if err != nil {
		t.Fatalf("eval libero (rlds): %v\n%s", err, out)
	}
	var rep eval.LiberoReport
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{\n"):]), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if rep.Suite != "libero_spatial_no_noops" || rep.Overall.Steps != 2 || len(rep.Tasks) != 2 {
		t.Fatalf("report: %+v", rep)
	}
}

// finetune libero's --dtype help names its checkpoint flag, --init;
// finetune sft's names --model.
func TestFinetuneDtypeHelpNamesFlag(t *testing.T) {
	for _, c := range []struct {
		cmd        []string
		want, flag string
	}{
		{[]string{"finetune", "libero"}, "weights of --init in memory", "init"},
		{[]string{"finetune", "sft"}, "weights of --model in memory", "model"},
	} {
		cmd, _, err := newRootCmd().Find(c.cmd)
		if err != nil {
			t.Fatal(err)
		}
		if u := cmd.Flags().Lookup("dtype").Usage; !strings.Contains(u, c.want) || cmd.Flags().Lookup(c.flag) == nil {
			t.Errorf("%v --dtype: %q (want %q, and a --%s flag)", c.cmd, u, c.want, c.flag)
		}
	}
}
