package data

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/magma-go/magma/data/hdf5"
	"github.com/magma-go/magma/data/liberotest"
	"github.com/magma-go/magma/llm/tokenizer"
	"github.com/magma-go/magma/model/action"
	"github.com/magma-go/magma/vision/imaging"
)

func liberoFixture(t *testing.T, noops bool) (string, []liberotest.Task) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "libero_spatial")
	tasks := []liberotest.Task{
		{Name: "pick_up_the_black_bowl_and_place_it_on_the_plate", Instruction: "Pick up the black bowl and place it on the plate", Demos: 5, Steps: 9, Size: 16, Noops: noops},
		{Name: "KITCHEN_SCENE3_turn_on_the_stove", Instruction: "", Demos: 4, Steps: 7, Size: 16, Noops: noops},
	}
	if _, err := liberotest.WriteSuite(dir, tasks); err != nil {
		t.Fatal(err)
	}
	return dir, tasks
}

// naiveQuantile is numpy's linear quantile written independently: sort,
// position p*(n-1), linear interpolation.
func naiveQuantile(v []float64, p float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	pos := p * float64(len(s)-1)
	i := int(pos)
	if i+1 >= len(s) {
		return s[len(s)-1]
	}
	f := pos - float64(i)
	return s[i]*(1-f) + s[i+1]*f
}

func TestLiberoRead(t *testing.T) {
	dir, _ := liberoFixture(t, false)
	l, err := OpenLibero(dir, LiberoOptions{Shots: 3, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Opt.Suite != "libero_spatial" || len(l.Tasks) != 2 {
		t.Fatalf("suite %q, %d tasks", l.Opt.Suite, len(l.Tasks))
	}
	// Files are sorted by name: the KITCHEN one first.
	k, p := l.Tasks[0], l.Tasks[1]
	if k.Instruction != "turn on the stove" || !k.FromFileName {
		t.Fatalf("file-name fallback: %q", k.Instruction)
	}
	if p.Instruction != "Pick up the black bowl and place it on the plate" || p.FromFileName {
		t.Fatalf("problem_info: %q", p.Instruction)
	}
	if len(p.Train) != 3 || len(p.Heldout) != 2 || len(k.Train) != 3 || len(k.Heldout) != 1 {
		t.Fatalf("shots: %v/%v %v/%v", p.Train, p.Heldout, k.Train, k.Heldout)
	}
	// Same seed, same choice; another seed eventually differs.
	l2, err := OpenLibero(dir, LiberoOptions{Shots: 3, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	l2.Close()
	if !equalInts(l2.Tasks[1].Train, p.Train) {
		t.Fatal("shot selection is not deterministic")
	}
	differs := false
	for seed := uint64(8); seed < 20 && !differs; seed++ {
		l3, err := OpenLibero(dir, LiberoOptions{Shots: 3, Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		l3.Close()
		differs = !equalInts(l3.Tasks[1].Train, p.Train)
	}
	if !differs {
		t.Fatal("the seed does not change the shots")
	}

	// Actions and frames against the generator. Task index in the
	// generator: pick_up = 0, KITCHEN = 1.
	d := p.Demos[p.Train[1]]
	di := p.Train[1]
	for s := range d.Actions {
		if d.Actions[s] != liberotest.ActionAt(0, di, s, 9, false) {
			t.Fatalf("action %d differs", s)
		}
	}
	img, err := l.Frame(p, d, 4)
	if err != nil {
		t.Fatal(err)
	}
	want := liberotest.FrameAt(0, di, 4, 9, 16)
	if img.W != 16 || img.H != 16 || string(img.Pix) != string(want) {
		t.Fatal("frame is not the upright image")
	}
	if img.Pix[0] != 255 || img.Pix[1] != 0 {
		t.Fatal("red marker not top-left: frame not rotated")
	}
	if _, err := l.Frame(p, d, 9); err == nil {
		t.Fatal("frame out of range accepted")
	}

	// Statistics over the training demos only, computed independently.
	var rows [][]float64
	for _, tk := range []struct {
		ti int
		t  *LiberoTask
		n  int
	}{{1, k, 7}, {0, p, 9}} {
		for _, di := range tk.t.Train {
			for s := 0; s < tk.n; s++ {
				a := liberotest.ActionAt(tk.ti, di, s, tk.n, false)
				row := append([]float64(nil), a[:6]...)
				g := 0.0 // +1 close -> 0
				if a[6] < 0 {
					g = 1
				}
				rows = append(rows, append(row, g))
			}
		}
	}
	st := l.Stats
	if st.NumTransitions != len(rows) || st.NumTrajectories != 6 {
		t.Fatalf("transitions %d (want %d), trajectories %d", st.NumTransitions, len(rows), st.NumTrajectories)
	}
	for j := 0; j < 7; j++ {
		col := make([]float64, len(rows))
		var sum float64
		for i, r := range rows {
			col[i] = r[j]
			sum += r[j]
		}
		mean := sum / float64(len(col))
		var v float64
		mn, mx := math.Inf(1), math.Inf(-1)
		for _, x := range col {
			v += (x - mean) * (x - mean)
			mn, mx = math.Min(mn, x), math.Max(mx, x)
		}
		std := math.Sqrt(v / float64(len(col)))
		for name, pair := range map[string][2]float64{"mean": {st.Action.Mean[j], mean}, "std": {st.Action.Std[j], std},
			"min": {st.Action.Min[j], mn}, "max": {st.Action.Max[j], mx},
			"q01": {st.Action.Q01[j], naiveQuantile(col, 0.01)}, "q99": {st.Action.Q99[j], naiveQuantile(col, 0.99)}} {
			if math.Abs(pair[0]-pair[1]) > 1e-12 {
				t.Errorf("dim %d %s = %v, want %v", j, name, pair[0], pair[1])
			}
		}
	}
	if st.Proprio == nil || len(st.Proprio.Mean) != 8 {
		t.Fatal("proprio statistics missing")
	}
	if st.Action.Mask[6] || !st.Action.Mask[0] {
		t.Fatal("mask")
	}

	// dataset_statistics.json in OpenVLA's shape.
	path := filepath.Join(t.TempDir(), action.DatasetStatisticsFile)
	if err := action.WriteDatasetStatistics(path, map[string]*action.DatasetStats{"libero_spatial": st}); err != nil {
		t.Fatal(err)
	}
	var raw map[string]map[string]json.RawMessage
	b, _ := os.ReadFile(path)
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"action", "proprio", "num_transitions", "num_trajectories"} {
		if _, ok := raw["libero_spatial"][key]; !ok {
			t.Fatalf("dataset_statistics.json lacks %s: %s", key, b)
		}
	}
	var act map[string]json.RawMessage
	json.Unmarshal(raw["libero_spatial"]["action"], &act)
	for _, key := range []string{"mean", "std", "max", "min", "q01", "q99", "mask"} {
		if _, ok := act[key]; !ok {
			t.Fatalf("action statistics lack %s", key)
		}
	}
	back, err := action.ReadDatasetStatistics(path)
	if err != nil || back["libero_spatial"].Action.Q99[3] != st.Action.Q99[3] {
		t.Fatalf("read back: %v", err)
	}
}

func TestLiberoTokenRoundTrip(t *testing.T) {
	dir, _ := liberoFixture(t, false)
	l, err := OpenLibero(dir, LiberoOptions{Shots: 0})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	at, _ := action.NewTokenizer(action.LlamaBaseVocab)
	st := &l.Stats.Action
	halfBin := 1.0 / 255 // bins are 2/255 wide in normalised units
	for _, task := range l.Tasks {
		for _, d := range task.Demos {
			for _, a := range d.Actions {
				ids, err := st.EncodeAction(at, LiberoPolicyAction(a))
				if err != nil {
					t.Fatal(err)
				}
				for _, id := range ids {
					if id < 127744 || id > 127999 {
						t.Fatalf("id %d outside the action range", id)
					}
				}
				dec, err := st.DecodeAction(at, ids)
				if err != nil {
					t.Fatal(err)
				}
				pol := LiberoPolicyAction(a)
				for j := 0; j < 6; j++ {
					if pol[j] < st.Q01[j] || pol[j] > st.Q99[j] {
						continue // clipped by BOUNDS_Q99
					}
					tol := halfBin*(st.Q99[j]-st.Q01[j])/2*2 + 1e-9
					if math.Abs(dec[j]-pol[j]) > tol {
						t.Fatalf("dim %d: %v decoded as %v (tol %v)", j, pol[j], dec[j], tol)
					}
				}
				if math.Abs(dec[6]-pol[6]) > halfBin+1e-9 {
					t.Fatalf("gripper %v decoded as %v", pol[6], dec[6])
				}
				env := LiberoEnvAction(dec)
				if env[6] != a[6] {
					t.Fatalf("gripper back in the simulator convention: %v, want %v", env[6], a[6])
				}
			}
		}
	}
	// A dimension with max == min normalises to 0.
	s := action.Stats{Q01: []float64{1, 0}, Q99: []float64{1, 1}, Min: []float64{1, 0}, Max: []float64{1, 1}, Mask: []bool{true, true}}
	n, _ := s.Normalize([]float64{1, 0.5})
	if n[0] != 0 || math.Abs(n[1]) > 1e-7 {
		t.Fatalf("normalise: %v", n)
	}
}

func TestLiberoNoops(t *testing.T) {
	dir, _ := liberoFixture(t, true)
	keep, err := OpenLibero(dir, LiberoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	keep.Close()
	rm, err := OpenLibero(dir, LiberoOptions{RemoveNoops: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rm.Close()
	for i, task := range rm.Tasks {
		for j, d := range task.Demos {
			full := keep.Tasks[i].Demos[j]
			if len(full.Actions) != d.Steps || len(d.Actions) != d.Steps-2 {
				t.Fatalf("%s %s: kept %d of %d steps, want %d", task.Name, d.Key, len(d.Actions), d.Steps, d.Steps-2)
			}
			for k, f := range d.Frames {
				if d.Actions[k] != full.Actions[f] {
					t.Fatal("frames and actions out of step")
				}
			}
		}
	}
	// A zero arm action that changes the gripper is not a no-op.
	prev := [7]float64{0.1, 0, 0, 0, 0, 0, -1}
	if IsNoop([7]float64{0, 0, 0, 0, 0, 0, 1}, &prev) || !IsNoop([7]float64{0, 0, 0, 0, 0, 0, -1}, &prev) || !IsNoop([7]float64{}, nil) {
		t.Fatal("IsNoop")
	}
}

func TestLiberoSamples(t *testing.T) {
	dir, _ := liberoFixture(t, false)
	l, err := OpenLibero(dir, LiberoOptions{Shots: 2, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	env := testEnv(t)
	env.Chat = tokenizer.ChatOptions{ImageStartEnd: true}
	src, err := NewLiberoSource(env, l, "train")
	if err != nil {
		t.Fatal(err)
	}
	if src.Len() != 2*7+2*9 {
		t.Fatalf("len %d", src.Len())
	}
	s, err := src.Sample(3, nil)
	if err != nil {
		t.Fatal(err)
	}
	task, d, k := src.Step(3)
	sup := 0
	for i, lab := range s.Labels {
		if lab != tokenizer.IgnoreIndex {
			sup++
			if lab != s.IDs[i] {
				t.Fatal("label differs from id")
			}
		}
	}
	if sup != 8 || len(s.Images) != 1 {
		t.Fatalf("%d supervised, %d images", sup, len(s.Images))
	}
	want, _ := l.Stats.Action.EncodeAction(env.Actions, LiberoPolicyAction(d.Actions[k]))
	n := len(s.IDs)
	if !equalInts(s.IDs[n-8:n-1], want) || s.IDs[n-1] != env.Tokenizer.EOS() {
		t.Fatalf("answer %v, want %v + eot", s.IDs[n-8:], want)
	}
	text, _ := env.Tokenizer.Decode(s.IDs[:n-8], false)
	if !strings.Contains(text, "What action should the robot take to "+strings.ToLower(task.Instruction)+"?") {
		t.Fatalf("prompt: %q", text)
	}
	// Through the mixture stream (what the trainer consumes).
	m, err := NewMixture(env, []Source{src}, []float64{1})
	if err != nil {
		t.Fatal(err)
	}
	st, err := m.Stream(context.Background(), StreamOptions{Seed: 3, BatchSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	b, err := st.Next(context.Background())
	if err != nil || len(b.Samples) != 4 {
		t.Fatalf("batch: %v", err)
	}
}

func TestLiberoBadInput(t *testing.T) {
	root := t.TempDir()
	write := func(name string, hook liberotest.Hook) string {
		dir := filepath.Join(root, name)
		os.MkdirAll(dir, 0o755)
		p := filepath.Join(dir, "put_the_bowl_on_the_plate_demo.hdf5")
		if err := liberotest.WriteTask(p, 0, liberotest.Task{Name: "put_the_bowl_on_the_plate", Instruction: "put the bowl on the plate", Demos: 2, Steps: 4, Size: 8}, hook); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	expect := func(dir string, want ...string) {
		t.Helper()
		_, err := OpenLibero(dir, LiberoOptions{})
		if err == nil {
			t.Fatalf("%s: no error", dir)
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Fatalf("%q does not mention %q", err, w)
			}
		}
		t.Log(err)
	}
	file := "put_the_bowl_on_the_plate_demo.hdf5"

	empty := filepath.Join(root, "empty_suite")
	os.MkdirAll(empty, 0o755)
	expect(empty, "empty_suite", "no *_demo.hdf5 files")

	// Missing dataset: a demo without actions (rewritten from scratch).
	dir := filepath.Join(root, "no_actions")
	os.MkdirAll(dir, 0o755)
	f, _ := hdf5.Create(filepath.Join(dir, file))
	f.Write("/data/demo_0/obs/agentview_rgb", []int{1, 8, 8, 3}, make([]uint8, 192))
	f.Close()
	expect(dir, file, "/data/demo_0/actions", "not found")

	expect(write("no_images", func(f *hdf5.File) error {
		return f.Write("/data/demo_5/actions", []int{2, 7}, make([]float64, 14))
	}), file, "/data/demo_5/obs/agentview_rgb", "not found")

	expect(write("wrong_shape", func(f *hdf5.File) error {
		f.Write("/data/demo_7/actions", []int{3, 6}, make([]float64, 18))
		return nil
	}), file, "/data/demo_7/actions", "want (N,7)")

	expect(write("empty_demo", func(f *hdf5.File) error {
		f.Write("/data/demo_3/actions", []int{0, 7}, []float64{})
		return f.Write("/data/demo_3/obs/agentview_rgb", []int{0, 8, 8, 3}, []uint8{})
	}), file, "/data/demo_3/actions", "empty demo")

	expect(write("frames_mismatch", func(f *hdf5.File) error {
		f.Write("/data/demo_4/actions", []int{3, 7}, make([]float64, 21))
		return f.Write("/data/demo_4/obs/agentview_rgb", []int{2, 8, 8, 3}, make([]uint8, 2*192))
	}), file, "/data/demo_4/obs/agentview_rgb", "2 frames for 3 actions")

	expect(write("image_dtype", func(f *hdf5.File) error {
		f.Write("/data/demo_4/actions", []int{2, 7}, make([]float64, 14))
		return f.Write("/data/demo_4/obs/agentview_rgb", []int{2, 8, 8, 3}, make([]float32, 2*192))
	}), file, "/data/demo_4/obs/agentview_rgb", "want uint8")

	expect(write("bad_gripper_states", func(f *hdf5.File) error {
		f.Write("/data/demo_4/actions", []int{2, 7}, make([]float64, 14))
		f.Write("/data/demo_4/obs/agentview_rgb", []int{2, 8, 8, 3}, make([]uint8, 2*192))
		return f.Write("/data/demo_4/obs/gripper_states", []int{2, 3}, make([]float64, 6))
	}), file, "/data/demo_4/obs/gripper_states", "want [2 2]")

	// Attributes: problem_info that is not JSON, or not a string.
	dir = filepath.Join(root, "bad_problem_info")
	os.MkdirAll(dir, 0o755)
	liberotest.WriteTask(filepath.Join(dir, file), 0, liberotest.Task{Name: "x", Demos: 1, Steps: 2, Size: 8}, func(f *hdf5.File) error {
		return f.SetAttrString("/data", "problem_info", "{language_instruction: oops")
	})
	expect(dir, file, "/data", "problem_info", "not valid JSON")
	dir = filepath.Join(root, "int_problem_info")
	os.MkdirAll(dir, 0o755)
	liberotest.WriteTask(filepath.Join(dir, file), 0, liberotest.Task{Name: "x", Demos: 1, Steps: 2, Size: 8}, func(f *hdf5.File) error {
		return f.SetAttrInt64("/data", "problem_info", 3)
	})
	expect(dir, file, "/data", "problem_info", "not a string")

	// No /data group, no demos, not HDF5.
	dir = filepath.Join(root, "no_data")
	os.MkdirAll(dir, 0o755)
	f, _ = hdf5.Create(filepath.Join(dir, file))
	f.CreateGroup("/mask")
	f.Close()
	expect(dir, file, "/data", "not found")
	dir = filepath.Join(root, "no_demos")
	os.MkdirAll(dir, 0o755)
	f, _ = hdf5.Create(filepath.Join(dir, file))
	f.CreateGroup("/data/mask")
	f.Close()
	expect(dir, file, "/data", "no demo_<i> groups")
	dir = filepath.Join(root, "junk")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, file), []byte("<html>"), 0o644)
	expect(dir, file, "not an HDF5 file")
}

// Suite shots spread over the tasks (1 per task for 10 in 10 tasks: the
// maintainers' "select 1 traj per sub-task"); task shots count per task.
func TestShotsPer(t *testing.T) {
	for _, c := range []struct {
		opt  LiberoOptions
		n    int
		want []int
	}{
		{LiberoOptions{Shots: 10, ShotsPer: ShotsPerSuite}, 10, []int{1, 1, 1, 1, 1, 1, 1, 1, 1, 1}},
		{LiberoOptions{Shots: 10, ShotsPer: ShotsPerTask}, 3, []int{10, 10, 10}},
		{LiberoOptions{Shots: 10}, 2, []int{10, 10}},
		{LiberoOptions{Shots: 0, ShotsPer: ShotsPerSuite}, 2, []int{-1, -1}},
	} {
		if got := shotsPerTask(c.n, c.opt); fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%+v over %d tasks: %v, want %v", c.opt, c.n, got, c.want)
		}
	}
	got := shotsPerTask(4, LiberoOptions{Shots: 6, ShotsPer: ShotsPerSuite, Seed: 3})
	sum, ones := 0, 0
	for _, n := range got {
		sum += n
		if n == 1 {
			ones++
		}
	}
	if sum != 6 || ones != 2 {
		t.Errorf("6 shots over 4 tasks: %v", got)
	}
	tk := &LiberoTask{Demos: make([]*LiberoDemo, 5)}
	selectShots(tk, 0, 1)
	if len(tk.Train) != 0 || len(tk.Heldout) != 5 {
		t.Errorf("0 shots: train %v heldout %v", tk.Train, tk.Heldout)
	}
}

// The official decoding takes output_ids[-8:-1] (agents/libero/
// libero_magma_utils.py: "action_ids = output_ids[0, -8:-1]"), greedy the
// first 7 of 8.
func TestLiberoDecodings(t *testing.T) {
	out := []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 128009}
	off := LiberoDecodings["official"]
	if got := off.ActionIDs(out); fmt.Sprint(got) != "[4 5 6 7 8 9 10]" {
		t.Errorf("official %v", got)
	}
	if off.Temperature != 0.7 || off.MaxNewTokens != 1000 || off.Resize != 256 {
		t.Errorf("official %+v", off)
	}
	g := LiberoDecodings["greedy"]
	if got := g.ActionIDs(out[:8]); fmt.Sprint(got) != "[1 2 3 4 5 6 7]" || g.Temperature != 0 {
		t.Errorf("greedy %v", got)
	}
	if off.ActionIDs(out[:5]) != nil {
		t.Error("too short accepted")
	}
	img := imaging.Image{W: 128, H: 128, Pix: make([]uint8, 128*128*3)}
	r, err := off.Frame(img)
	if err != nil || r.W != 256 || r.H != 256 {
		t.Errorf("resize %dx%d %v", r.W, r.H, err)
	}
}
