package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/magma-go/magma/data"
	"github.com/magma-go/magma/data/liberotest"
	"github.com/magma-go/magma/eval"
	"github.com/magma-go/magma/model"
	"github.com/magma-go/magma/model/action"
	"github.com/magma-go/magma/model/ckpt"
	"github.com/magma-go/magma/nn"
	"github.com/magma-go/magma/server"
	"gorgonia.org/tensor"
)

func liberoSuite(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "libero_spatial")
	_, err := liberotest.WriteSuite(dir, []liberotest.Task{
		{Name: "pick_up_the_black_bowl", Instruction: "pick up the black bowl", Demos: 2, Steps: 4, Size: 32},
		{Name: "open_the_top_drawer", Instruction: "open the top drawer", Demos: 2, Steps: 4, Size: 32},
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// A tiny model fine-tuned on a 2-task LIBERO fixture (one training demo per
// task, 4 steps each, through the real HDF5 reader and the training engine)
// reproduces the training demos' action tokens, and its checkpoint carries
// OpenVLA's dataset_statistics.json and the split.
func TestFinetuneLiberoTiny(t *testing.T) {
	if testing.Short() {
		t.Skip("trains for about a minute")
	}
	suite := liberoSuite(t)
	root := t.TempDir()
	initDir := filepath.Join(root, "init")
	if out, err := runMagma(t, "init", "--preset", "tiny", "--out", initDir, "--seed", "1"); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	run := filepath.Join(root, "run")
	out, err := runMagma(t, "finetune", "libero", "--data", suite, "--init", initDir, "--out", run,
		"--shots", "1", "--shots-per", "task", "--steps", "80", "--batch-size", "8", "--lr", "3e-3", "--save-every", "0", "--seed", "0", "--lora-rank", "0")
	if err != nil {
		t.Fatalf("finetune libero: %v\n%s", err, out)
	}
	ck := filepath.Join(run, "checkpoints", "step-000080")
	all, err := action.ReadDatasetStatistics(filepath.Join(ck, action.DatasetStatisticsFile))
	if err != nil {
		t.Fatal(err)
	}
	st, ok := all["libero_spatial"]
	if !ok || st.NumTrajectories != 2 || st.NumTransitions != 8 || len(st.Action.Q99) != 7 {
		t.Fatalf("statistics: %+v", all)
	}
	if _, err := os.Stat(filepath.Join(ck, data.LiberoSplitFile)); err != nil {
		t.Fatal(err)
	}
	out, err = runMagma(t, "eval", "libero", "--model", ck, "--data", suite, "--split", "train", "--json", "--limit", "0")
	if err != nil {
		t.Fatalf("eval libero: %v\n%s", err, out)
	}
	var rep eval.LiberoReport
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{\n"):]), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	t.Logf("training demos: token accuracy %.3f, L1 %s, gripper %.3f over %d steps", rep.Overall.TokenAcc, eval.L1Text(rep.Overall.L1), rep.Overall.GripperAcc, rep.Overall.Steps)
	if rep.Overall.Steps != 8 || rep.Overall.TokenAcc <= 0.9 {
		t.Fatalf("action-token accuracy on the training demos %.3f (want > 0.9)\n%s", rep.Overall.TokenAcc, out)
	}
	actOverLoopback(t, ck, suite)
	// The held-out demos are the other ones (readable table).
	out, err = runMagma(t, "eval", "libero", "--model", ck, "--data", suite, "--split", "heldout", "--json=false")
	if err != nil || !strings.Contains(out, "overall") || !strings.Contains(out, "split heldout") {
		t.Fatalf("heldout: %v\n%s", err, out)
	}
	t.Logf("\n%s", out)
}

// actOverLoopback serves the fine-tuned checkpoint and sends every training
// step to POST /act as the LIBERO client does (upright frame as nested
// lists, instruction, unnorm_key): the answer is the demo's action,
// un-normalised, within half a bin (the gripper in OpenVLA's policy
// convention, 1 = open, which the client maps back to ±1).
func actOverLoopback(t *testing.T, ck, suite string) {
	p, err := model.LoadPipeline(ck, "")
	if err != nil {
		t.Fatal(err)
	}
	s := server.New(server.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := s.Load(p); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	}()
	l, err := data.OpenLibero(suite, data.LiberoOptions{Shots: 1, RemoveNoops: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	all, _ := action.ReadDatasetStatistics(filepath.Join(ck, action.DatasetStatisticsFile))
	st := all["libero_spatial"].Action
	n, worst := 0, 0.0
	for _, task := range l.Tasks {
		d := task.Demos[task.Train[0]]
		for k := range d.Actions {
			img, err := l.Frame(task, d, k)
			if err != nil {
				t.Fatal(err)
			}
			// Nested [H][W][3] integer lists ([]uint8 would marshal as base64).
			rows := make([][][]int, img.H)
			for y := range rows {
				rows[y] = make([][]int, img.W)
				for x := range rows[y] {
					o := (y*img.W + x) * 3
					rows[y][x] = []int{int(img.Pix[o]), int(img.Pix[o+1]), int(img.Pix[o+2])}
				}
			}
			body, _ := json.Marshal(map[string]any{"image": rows, "instruction": task.Instruction, "unnorm_key": "libero_spatial"})
			resp, err := http.Post("http://"+ln.Addr().String()+"/act", "application/json", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("/act: %d %s", resp.StatusCode, b)
			}
			var got []float64
			if err := json.Unmarshal(b, &got); err != nil || len(got) != 7 {
				t.Fatalf("/act answer %s: %v", b, err)
			}
			want := data.LiberoPolicyAction(d.Actions[k])
			for j := 0; j < 6; j++ {
				tol := (st.Q99[j]-st.Q01[j])/255 + 1e-9 // half a bin of 2/255 in normalised units
				if e := math.Abs(got[j] - math.Max(st.Q01[j], math.Min(st.Q99[j], want[j]))); e > tol {
					t.Fatalf("%s %s step %d dim %d: /act %v, demo %v", task.Name, d.Key, k, j, got[j], want[j])
				} else {
					worst = math.Max(worst, e)
				}
			}
			if env := data.LiberoEnvAction(got); env[6] != d.Actions[k][6] {
				t.Fatalf("gripper: /act %v → %v, demo %v", got[6], env[6], d.Actions[k][6])
			}
			n++
		}
	}
	t.Logf("/act over loopback: %d steps match the demos (worst arm error %.4f)", n, worst)
}

// LoRA adapters saved in PEFT's layout load back bit for bit.
func TestLoRAAdapterRoundTrip(t *testing.T) {
	cfg, _, err := model.PresetConfigs("tiny")
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := loraConfig(4, 8, 0.05, "q_proj, v_proj")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.LM.AttachLoRA(cl, "language_model.", 3); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(5, 5))
	for _, mod := range m.LM.LoRAModules("language_model.") {
		for i, d := 0, mod.Linear.LoRA.B.Data().([]float32); i < len(d); i++ {
			d[i] = float32(r.NormFloat64())
		}
	}
	dir := t.TempDir()
	if err := model.SaveLoRA(dir, m, "init"); err != nil {
		t.Fatal(err)
	}
	st, err := ckpt.OpenSafetensors(filepath.Join(dir, "adapter_model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	names := st.Names()
	st.Close()
	want := "base_model.model.language_model.model.layers.0.self_attn.q_proj.lora_A.weight"
	if len(names) != 2*2*cfg.Text.NumHiddenLayers || !strings.Contains(strings.Join(names, " "), want) {
		t.Fatalf("adapter tensors: %v", names)
	}
	m2, _ := model.New(cfg)
	ok, err := model.LoadLoRA(dir, m2)
	if err != nil || !ok {
		t.Fatalf("load: %v %v", ok, err)
	}
	a, b := model.LoRATensors(m.LM, ""), model.LoRATensors(m2.LM, "")
	for k, v := range a {
		w := b[k].Data().([]float32)
		for i, x := range v.Data().([]float32) {
			if w[i] != x {
				t.Fatalf("%s[%d] differs", k, i)
			}
		}
	}
	if l := m2.LM.LoRAModules("")[0].Linear.LoRA; l.Rank != 4 || l.Alpha != 8 {
		t.Fatalf("config: %+v", l)
	}
	if ok, err := model.LoadLoRA(t.TempDir(), m2); ok || err != nil {
		t.Fatalf("empty dir: %v %v", ok, err)
	}
}

// Bad input reaches the user as an error naming the file and HDF5 path.
func TestFinetuneLiberoBadInput(t *testing.T) {
	empty := t.TempDir()
	out, err := runMagma(t, "finetune", "libero", "--data", empty, "--init", "x", "--out", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "no *_demo.hdf5 files") {
		t.Fatalf("empty suite: %v\n%s", err, out)
	}
	out, err = runMagma(t, "eval", "libero", "--data", empty, "--model", "x")
	if err == nil || !strings.Contains(err.Error(), empty) {
		t.Fatalf("eval empty suite: %v\n%s", err, out)
	}
}

// LoRA fine-tuning (the default, rank 32) of the tiny model on the 2-task
// fixture: only the adapters train and reach > 90% action-token accuracy
// on the training demos; the checkpoint carries PEFT's adapter files that
// eval libero applies; --merge writes a plain checkpoint that model.Load
// reads and that answers with the same greedy action tokens as base +
// adapter (unmerged) for every training step.
func TestFinetuneLiberoLoRA(t *testing.T) {
	if testing.Short() {
		t.Skip("trains for about a minute")
	}
	suite := liberoSuite(t)
	root := t.TempDir()
	initDir := filepath.Join(root, "init")
	if out, err := runMagma(t, "init", "--preset", "tiny", "--out", initDir, "--seed", "1"); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	steps, lr := "60", "3e-3"
	if s := os.Getenv("MAGMA_LORA_STEPS"); s != "" {
		steps = s
	}
	if s := os.Getenv("MAGMA_LORA_LR"); s != "" {
		lr = s
	}
	run := filepath.Join(root, "run")
	out, err := runLibero(t, "finetune", "libero", "--data", suite, "--init", initDir, "--out", run,
		"--shots", "1", "--shots-per", "task", "--steps", steps, "--batch-size", "8", "--lr", lr, "--save-every", "0", "--seed", "0", "--merge")
	if err != nil {
		t.Fatalf("finetune libero --merge: %v\n%s", err, out)
	}
	if !strings.Contains(out, "LoRA r=32") {
		t.Fatalf("no LoRA summary:\n%s", out)
	}
	ck := filepath.Join(run, "checkpoints", "step-"+fmt.Sprintf("%06s", steps))
	for _, f := range []string{"adapter_model.safetensors", "adapter_config.json", action.DatasetStatisticsFile, data.LiberoSplitFile} {
		if _, err := os.Stat(filepath.Join(ck, f)); err != nil {
			t.Fatal(err)
		}
	}
	// The frozen base in the checkpoint is the init's, bit for bit.
	base, err := model.Load(initDir)
	if err != nil {
		t.Fatal(err)
	}
	ld, err := model.Load(ck)
	if err != nil {
		t.Fatal(err)
	}
	cw := map[string]*tensor.Dense{}
	cps, err := nn.Parameters(ld.Model, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range cps {
		cw[p.Name] = p.T
	}
	bps, err := nn.Parameters(base.Model, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range bps {
		a, b := p.T.Data().([]float32), cw[p.Name].Data().([]float32)
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("%s[%d] changed: the base must stay frozen", p.Name, i)
			}
		}
	}

	out, err = runLibero(t, "eval", "libero", "--model", ck, "--data", suite, "--split", "train", "--json")
	if err != nil {
		t.Fatalf("eval libero: %v\n%s", err, out)
	}
	var rep eval.LiberoReport
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{\n"):]), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	t.Logf("LoRA, training demos: token accuracy %.3f, L1 %s, gripper %.3f over %d steps", rep.Overall.TokenAcc, eval.L1Text(rep.Overall.L1), rep.Overall.GripperAcc, rep.Overall.Steps)
	if rep.Overall.Steps != 8 || rep.Overall.TokenAcc < 0.9 {
		t.Fatalf("LoRA action-token accuracy on the training demos %.3f (want >= 0.9)\n%s", rep.Overall.TokenAcc, out)
	}

	// base + adapter (unmerged) against the merged plain checkpoint.
	merged := filepath.Join(run, "merged")
	if _, err := os.Stat(filepath.Join(merged, "adapter_config.json")); !os.IsNotExist(err) {
		t.Fatalf("merged checkpoint has adapter files: %v", err)
	}
	if _, err := model.Load(merged); err != nil {
		t.Fatalf("model.Load(merged): %v", err)
	}
	pa, err := model.LoadPipeline(ck, "")
	if err != nil {
		t.Fatal(err)
	}
	if !pa.LoRA {
		t.Fatalf("LoadPipeline(%s) did not apply the checkpoint's adapter", ck)
	}
	pm, err := model.LoadPipeline(merged, "")
	if err != nil {
		t.Fatal(err)
	}
	l, err := data.OpenLibero(suite, data.LiberoOptions{Shots: 1, RemoveNoops: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	withAdapter, plain := eval.PipelinePredictor(pa, data.LiberoDecodings["greedy"], 0), eval.PipelinePredictor(pm, data.LiberoDecodings["greedy"], 0)
	n := 0
	for _, task := range l.Tasks {
		d := task.Demos[task.Train[0]]
		for k := range d.Actions {
			img, err := l.Frame(task, d, k)
			if err != nil {
				t.Fatal(err)
			}
			a, err := withAdapter(context.Background(), img, task.Instruction)
			if err != nil {
				t.Fatal(err)
			}
			b, err := plain(context.Background(), img, task.Instruction)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(a) != fmt.Sprint(b) {
				t.Fatalf("%s step %d: base+adapter %v, merged %v", task.Name, k, a, b)
			}
			n++
		}
	}
	t.Logf("merged checkpoint: %d greedy answers equal base+adapter", n)
	actOverLoopback(t, merged, suite)

	// --resume re-attaches the adapters and restores them from the last
	// checkpoint: merging again gives the same weights byte for byte.
	first, err := os.ReadFile(filepath.Join(merged, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	out, err = runLibero(t, "finetune", "libero", "--data", suite, "--init", initDir, "--out", run,
		"--shots", "1", "--shots-per", "task", "--steps", steps, "--batch-size", "8", "--lr", lr, "--save-every", "0", "--seed", "0", "--merge", "--resume")
	if err != nil || !strings.Contains(out, "nothing to do") {
		t.Fatalf("--resume --merge: %v\n%s", err, out)
	}
	again, err := os.ReadFile(filepath.Join(merged, "model.safetensors"))
	if err != nil || !bytes.Equal(first, again) {
		t.Fatalf("merge after --resume differs (%v)", err)
	}
}

// runLibero runs magma (runMagma resets every flag to its default first).
func runLibero(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return runMagma(t, args...)
}

// Bad LoRA flags are refused before any work.
func TestFinetuneLiberoLoRAFlags(t *testing.T) {
	suite := liberoSuite(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--lora-rank", "0", "--merge"}, "--merge"},
		{[]string{"--lora-rank", "-1"}, "--lora-rank"},
		{[]string{"--lora-targets", "q_proj,nope"}, "unknown module"},
		{[]string{"--lora-dropout", "0.1"}, "not supported"},
		{[]string{"--lora-dropout", "1.5"}, "[0, 1)"},
		{[]string{"--lora-alpha", "-2"}, "--lora-alpha"},
		{[]string{"--trainable", "vision_frozen"}, "full fine-tuning"},
	} {
		args := append([]string{"finetune", "libero", "--data", suite, "--init", "nowhere", "--out", t.TempDir()}, tc.args...)
		out, err := runLibero(t, args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: want an error containing %q, got %v\n%s", tc.args, tc.want, err, out)
		}
	}
}
