package eval

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/magma-go/magma/data"
	"github.com/magma-go/magma/data/liberotest"
	"github.com/magma-go/magma/model/action"
	"github.com/magma-go/magma/vision/imaging"
)

// liberoTestSuite writes a two-task suite of 2 demos of 4 steps each.
func liberoTestSuite(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "libero_spatial")
	if _, err := liberotest.WriteSuite(dir, []liberotest.Task{
		{Name: "pick_up_the_black_bowl", Instruction: "pick up the black bowl", Demos: 2, Steps: 4, Size: 32},
		{Name: "open_the_top_drawer", Instruction: "open the top drawer", Demos: 2, Steps: 4, Size: 32},
	}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// RunLibero with an oracle and with a broken predictor.
func TestEvalLiberoMetrics(t *testing.T) {
	suite := liberoTestSuite(t)
	l, err := data.OpenLibero(suite, data.LiberoOptions{Shots: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	at, _ := action.NewTokenizer(action.LlamaBaseVocab)
	// The oracle looks the frame up among the demos (frames are distinct).
	answers := map[string][]int{}
	for _, task := range l.Tasks {
		for _, d := range task.Demos {
			for k := range d.Actions {
				img, _ := l.Frame(task, d, k)
				ids, _ := l.Stats.Action.EncodeAction(at, data.LiberoPolicyAction(d.Actions[k]))
				answers[task.Instruction+string(img.Pix)] = append(ids, 128009)
			}
		}
	}
	oracle := func(_ context.Context, img imaging.Image, instr string) ([]int, error) {
		return answers[instr+string(img.Pix)], nil
	}
	rep, err := RunLibero(context.Background(), l, l.Stats, "heldout", 0, oracle, nil)
	if err != nil {
		t.Fatal(err)
	}
	o := rep.Overall
	if o.TokenAcc != 1 || o.GripperAcc != 1 || o.Invalid != 0 || o.L1Arm == nil || *o.L1Arm > 0.01 || o.Steps != 8 {
		t.Fatalf("oracle: %+v", o)
	}
	r := rand.New(rand.NewPCG(1, 2))
	junk := func(context.Context, imaging.Image, string) ([]int, error) {
		if r.IntN(2) == 0 {
			return []int{128009}, nil
		}
		return []int{127744, 127744, 127744, 127744, 127744, 127744, 127744, 128009}, nil
	}
	rep, err = RunLibero(context.Background(), l, l.Stats, "train", 3, junk, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Overall.Steps != 6 || rep.Overall.Invalid == 0 || rep.Overall.TokenAcc > 0.5 {
		t.Fatalf("junk: %+v", rep.Overall)
	}
	if _, err := RunLibero(context.Background(), l, l.Stats, "nope", 0, junk, nil); err == nil {
		t.Fatal("bad split accepted")
	}
}

// Issue 20, point 9: all-invalid LIBERO predictions give no L1 score (null,
// with the reason), not a perfect 0.
func TestEvalLiberoAllInvalidHasNoScore(t *testing.T) {
	suite := liberoTestSuite(t)
	l, err := data.OpenLibero(suite, data.LiberoOptions{Shots: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	invalid := func(context.Context, imaging.Image, string) ([]int, error) { return []int{128009}, nil }
	rep, err := RunLibero(context.Background(), l, l.Stats, "heldout", 0, invalid, nil)
	if err != nil {
		t.Fatal(err)
	}
	o := rep.Overall
	if o.L1 != nil || o.L1Arm != nil || o.Invalid != o.Steps || !strings.Contains(o.NoScore, "invalid") {
		t.Fatalf("all invalid: %+v", o)
	}
	b, _ := json.Marshal(o)
	if !strings.Contains(string(b), `"l1":null`) || !strings.Contains(string(b), `"l1_arm":null`) {
		t.Fatalf("JSON %s", b)
	}
	var tab bytes.Buffer
	rep.WriteTable(&tab)
	if !strings.Contains(tab.String(), "n/a") || !strings.Contains(tab.String(), "no L1 score") {
		t.Fatalf("table:\n%s", tab.String())
	}
}
