package data

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/magma-go/magma/data/liberotest"
	"github.com/magma-go/magma/data/rlds"
	"github.com/magma-go/magma/model/action"
)

// OpenLibero on OpenVLA's modified LIBERO RLDS layout, written independently
// by scripts/data/make_rlds_fixtures.py (Python struct/CRC32C framing,
// hand-encoded protobuf, PIL JPEGs): the tasks are grouped by source file,
// the policy-space actions equal the numpy re-implementation of OpenVLA's
// libero_dataset_transform (golden.json), the statistics over every step
// equal numpy's get_dataset_statistics, and frames come out upright as
// stored (no second rotation).
func TestLiberoRLDSFixture(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(rldsTestdata, "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var golden map[string]struct {
		Trajectories []struct {
			Action      [][]float64 `json:"action"`
			Instruction []string    `json:"instruction"`
		} `json:"trajectories"`
		Statistics struct {
			Action action.Stats `json:"action"`
		} `json:"statistics"`
	}
	if err := json.Unmarshal(b, &golden); err != nil {
		t.Fatal(err)
	}
	g := golden["libero_spatial_no_noops"]
	for _, dir := range []string{"libero_spatial_no_noops", "libero_spatial_no_noops/1.0.0"} {
		l, err := OpenLibero(filepath.Join(rldsTestdata, dir), LiberoOptions{RemoveNoops: true})
		if err != nil {
			t.Fatal(err)
		}
		if l.Format != LiberoFormatRLDS || l.Opt.Suite != "libero_spatial_no_noops" || len(l.Tasks) != 3 {
			t.Fatalf("%s: format %s, suite %q, %d tasks", dir, l.Format, l.Opt.Suite, len(l.Tasks))
		}
		if !sort.SliceIsSorted(l.Tasks, func(i, j int) bool { return l.Tasks[i].Name < l.Tasks[j].Name }) {
			t.Fatal("tasks are not sorted by name")
		}
		byInstr := map[string]*LiberoTask{}
		for _, task := range l.Tasks {
			byInstr[task.Instruction] = task
			if want := strings.ReplaceAll(task.Instruction, " ", "_"); task.Name != want || len(task.Demos) != 1 || task.H != 64 || task.W != 64 {
				t.Fatalf("task %q (want name %q): %d demos, %dx%d", task.Name, want, len(task.Demos), task.W, task.H)
			}
		}
		for i, tr := range g.Trajectories {
			task := byInstr[tr.Instruction[0]]
			if task == nil {
				t.Fatalf("trajectory %d: no task for %q", i, tr.Instruction[0])
			}
			d := task.Demos[0]
			if len(d.Actions) != len(tr.Action) || len(d.Proprio) != len(tr.Action) || len(d.Proprio[0]) != 8 {
				t.Fatalf("trajectory %d: %d steps, %d states, want %d", i, len(d.Actions), len(d.Proprio), len(tr.Action))
			}
			for k, want := range tr.Action {
				got := LiberoPolicyAction(d.Actions[k])
				for j := range want {
					if math.Abs(got[j]-want[j]) > 1e-6 {
						t.Fatalf("trajectory %d step %d dim %d: %v, want %v", i, k, j, got[j], want[j])
					}
				}
			}
		}
		st, want := l.Stats, g.Statistics.Action
		if st.NumTransitions != 15 || st.NumTrajectories != 3 || st.Proprio == nil || len(st.Proprio.Q99) != 8 {
			t.Fatalf("statistics: %+v", st)
		}
		for name, pair := range map[string][2][]float64{"mean": {st.Action.Mean, want.Mean}, "std": {st.Action.Std, want.Std},
			"max": {st.Action.Max, want.Max}, "min": {st.Action.Min, want.Min}, "q01": {st.Action.Q01, want.Q01}, "q99": {st.Action.Q99, want.Q99}} {
			for j := range pair[1] {
				if math.Abs(pair[0][j]-pair[1][j]) > 1e-5 {
					t.Fatalf("%s[%d] = %v, numpy %v", name, j, pair[0][j], pair[1][j])
				}
			}
		}
		// Frame k of the first episode (seed 0) is the pattern
		// R = 4x+17s, G = 4y+5s, B = 2(x+y)+29s with s = 10*0 + k, saved
		// upright: the top-left corner is dark, the bottom-right bright.
		task := byInstr[g.Trajectories[0].Instruction[0]]
		img, err := l.Frame(task, task.Demos[0], 0)
		if err != nil {
			t.Fatal(err)
		}
		at := func(x, y int) []uint8 { o := (y*img.W + x) * 3; return img.Pix[o : o+3] }
		tl, br := at(4, 4), at(59, 59)
		for c, want := range [][2]int{{16, 236}, {16, 236}, {16, 236}} {
			if math.Abs(float64(tl[c])-float64(want[0])) > 24 || math.Abs(float64(br[c])-float64(want[1])) > 24 {
				t.Fatalf("channel %d: top-left %d (want ~%d), bottom-right %d (want ~%d): not upright", c, tl[c], want[0], br[c], want[1])
			}
		}
		if w := l.Where(task, task.Demos[0], 2); !strings.Contains(w, "libero_spatial-train.tfrecord-00000-of-00002 record 0 step 2") {
			t.Fatalf("Where: %s", w)
		}
		l.Close()
	}
}

// A corrupt record of the RLDS layout stops OpenLibero with the shard,
// record and reason; a folder that is neither layout names both.
func TestLiberoRLDSBadInput(t *testing.T) {
	_, err := OpenLibero(filepath.Join(rldsTestdata, "corrupt", "libero_spatial_no_noops"), LiberoOptions{})
	if err == nil || !strings.Contains(err.Error(), "libero_spatial-train.tfrecord-00000-of-00002: record 1") || !strings.Contains(err.Error(), "CRC") {
		t.Fatalf("corrupt record: %v", err)
	}
	_, err = OpenLibero(t.TempDir(), LiberoOptions{})
	if err == nil || !strings.Contains(err.Error(), "no *_demo.hdf5 files") || !strings.Contains(err.Error(), "not an RLDS dataset") {
		t.Fatalf("empty folder: %v", err)
	}
	_, err = OpenLibero(filepath.Join(rldsTestdata, "libero_spatial_no_noops"), LiberoOptions{Camera: "nope"})
	if err == nil || !strings.Contains(err.Error(), "steps/observation/nope") {
		t.Fatalf("--camera nope: %v", err)
	}
	// The fractal dataset is RLDS but not LIBERO.
	_, err = OpenLibero(filepath.Join(rldsTestdata, "fractal20220817_data"), LiberoOptions{})
	if err == nil || !strings.Contains(err.Error(), "steps/action") {
		t.Fatalf("fractal: %v", err)
	}
}

// The same synthetic demos written as HDF5 files and as the RLDS release
// read back alike: tasks, instructions, training shots, actions and
// statistics (up to the release's float32), and upright frames (up to JPEG).
func TestLiberoHDF5AndRLDSAgree(t *testing.T) {
	root := t.TempDir()
	tasks := []liberotest.Task{
		{Name: "pick_up_the_black_bowl_and_place_it_on_the_plate", Instruction: "pick up the black bowl and place it on the plate", Demos: 4, Steps: 8, Size: 32, Noops: true},
		{Name: "KITCHEN_SCENE3_turn_on_the_stove", Demos: 3, Steps: 6, Size: 32, Noops: true},
	}
	h5 := filepath.Join(root, "libero_spatial")
	if _, err := liberotest.WriteSuite(h5, tasks); err != nil {
		t.Fatal(err)
	}
	rd := filepath.Join(root, "libero_spatial_no_noops")
	if err := liberotest.WriteRLDS(rd, tasks, 2); err != nil {
		t.Fatal(err)
	}
	opt := LiberoOptions{Shots: 2, ShotsPer: ShotsPerTask, Seed: 3, RemoveNoops: true}
	a, err := OpenLibero(h5, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := OpenLibero(rd, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if a.Format != LiberoFormatHDF5 || b.Format != LiberoFormatRLDS || b.Opt.Suite != "libero_spatial_no_noops" || len(a.Tasks) != len(b.Tasks) {
		t.Fatalf("formats %s/%s, suite %s, tasks %d/%d", a.Format, b.Format, b.Opt.Suite, len(a.Tasks), len(b.Tasks))
	}
	close := func(x, y []float64, tol float64) bool {
		for i := range x {
			if math.Abs(x[i]-y[i]) > tol {
				return false
			}
		}
		return len(x) == len(y)
	}
	for i, ta := range a.Tasks {
		tb := b.Tasks[i]
		if ta.Name != tb.Name || ta.Instruction != tb.Instruction || len(ta.Demos) != len(tb.Demos) ||
			!equalInts(ta.Train, tb.Train) || !equalInts(ta.Heldout, tb.Heldout) {
			t.Fatalf("task %d: %q/%q %q/%q demos %d/%d train %v/%v", i, ta.Name, tb.Name, ta.Instruction, tb.Instruction, len(ta.Demos), len(tb.Demos), ta.Train, tb.Train)
		}
		for di, da := range ta.Demos {
			db := tb.Demos[di]
			if len(da.Actions) != len(db.Actions) || len(da.Actions) == 0 || db.Steps != len(db.Actions) {
				t.Fatalf("%s demo %d: %d/%d kept steps", ta.Name, di, len(da.Actions), len(db.Actions))
			}
			for k := range da.Actions {
				if !close(da.Actions[k][:], db.Actions[k][:], 1e-6) || !close(da.Proprio[k], db.Proprio[k], 1e-6) {
					t.Fatalf("%s demo %d step %d: %v / %v", ta.Name, di, k, da.Actions[k], db.Actions[k])
				}
				fa, err := a.Frame(ta, da, k)
				if err != nil {
					t.Fatal(err)
				}
				fb, err := b.Frame(tb, db, k)
				if err != nil {
					t.Fatal(err)
				}
				var diff float64
				for p := range fa.Pix {
					diff += math.Abs(float64(fa.Pix[p]) - float64(fb.Pix[p]))
				}
				if fa.W != fb.W || fa.H != fb.H || diff/float64(len(fa.Pix)) > 4 {
					t.Fatalf("%s demo %d step %d: frames differ by %.1f per channel", ta.Name, di, k, diff/float64(len(fa.Pix)))
				}
			}
		}
	}
	sa, sb := a.Stats, b.Stats
	if sa.NumTransitions != sb.NumTransitions || sa.NumTrajectories != sb.NumTrajectories ||
		!close(sa.Action.Q01, sb.Action.Q01, 1e-6) || !close(sa.Action.Q99, sb.Action.Q99, 1e-6) ||
		!close(sa.Action.Mean, sb.Action.Mean, 1e-6) || !close(sa.Action.Std, sb.Action.Std, 1e-6) ||
		!close(sa.Proprio.Mean, sb.Proprio.Mean, 1e-6) {
		t.Fatalf("statistics differ:\n%+v\n%+v", sa, sb)
	}
}

// The RLDS writer of the synthetic data (rlds.Writer framing + EncodeExample
// with TFDS's sorted keys) reproduces the independently written Python
// fixture byte for byte when fed its decoded episodes.
func TestLiberoRLDSWriterMatchesPythonFixture(t *testing.T) {
	ds, err := rlds.Open(filepath.Join(rldsTestdata, "libero_spatial_no_noops"))
	if err != nil {
		t.Fatal(err)
	}
	shards, err := ds.Shards("train")
	if err != nil {
		t.Fatal(err)
	}
	for _, sh := range shards {
		want, err := os.ReadFile(sh)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		w := rlds.NewWriter(&buf)
		if err := rlds.ScanShard(sh, nil, func(ep *rlds.Episode, err error) error {
			if err != nil {
				return err
			}
			keys := make([]string, 0, len(ep.Ex))
			for k := range ep.Ex {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			return w.Write(rlds.EncodeExample(keys, ep.Ex))
		}); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), want) {
			t.Fatalf("%s: re-encoded %d bytes differ from the Python-written %d", sh, buf.Len(), len(want))
		}
	}
}

// Inspect on the LIBERO RLDS fixture: episode and step counts, OpenVLA's
// action statistics over every step equal numpy's (golden.json), and the
// proprio statistics are OpenVLA's with load_proprio: EEF_state(6) ‖ one
// zero ‖ gripper_state(2), the same numbers as the states OpenLibero reads.
func TestInspectLiberoRLDSStatistics(t *testing.T) {
	dir := filepath.Join(rldsTestdata, "libero_spatial_no_noops")
	in, err := Inspect(dir, InspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if in.Type != "rlds" || in.Episodes != 3 || in.Records != 15 || in.Statistics == nil {
		t.Fatalf("type %s, %d episodes, %d records", in.Type, in.Episodes, in.Records)
	}
	b, _ := os.ReadFile(filepath.Join(rldsTestdata, "golden.json"))
	var golden map[string]struct {
		Statistics action.DatasetStats `json:"statistics"`
	}
	if err := json.Unmarshal(b, &golden); err != nil {
		t.Fatal(err)
	}
	want := golden["libero_spatial_no_noops"].Statistics.Action
	got := in.Statistics.Action
	for name, pair := range map[string][2][]float64{"mean": {got.Mean, want.Mean}, "std": {got.Std, want.Std},
		"max": {got.Max, want.Max}, "min": {got.Min, want.Min}, "q01": {got.Q01, want.Q01}, "q99": {got.Q99, want.Q99}} {
		for j := range pair[1] {
			if len(pair[0]) != 7 || math.Abs(pair[0][j]-pair[1][j]) > 1e-5 {
				t.Fatalf("action %s[%d] = %v, numpy %v", name, j, pair[0], pair[1])
			}
		}
	}
	if in.Statistics.NumTransitions != 15 || in.Statistics.NumTrajectories != 3 {
		t.Fatalf("counts %+v", in.Statistics)
	}
	l, err := OpenLibero(dir, LiberoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var rows [][]float64
	for _, task := range l.Tasks {
		for _, d := range task.Demos {
			for _, p := range d.Proprio {
				rows = append(rows, append(append(append([]float64(nil), p[:6]...), 0), p[6:]...))
			}
		}
	}
	ws, p := action.ComputeStats(rows, nil), in.Statistics.Proprio
	if p == nil || len(p.Mean) != 9 || p.Max[6] != 0 || p.Min[6] != 0 || p.Std[6] != 0 {
		t.Fatalf("proprio %+v", p)
	}
	for j := 0; j < 9; j++ {
		if math.Abs(p.Mean[j]-ws.Mean[j]) > 1e-9 || math.Abs(p.Std[j]-ws.Std[j]) > 1e-9 || p.Q01[j] != ws.Q01[j] || p.Q99[j] != ws.Q99[j] {
			t.Fatalf("proprio dim %d: %+v, want %+v", j, p, ws)
		}
	}
	var sb strings.Builder
	in.WriteText(&sb)
	if !strings.Contains(sb.String(), "records: 15 (steps)\nepisodes: 3\n") {
		t.Fatalf("text:\n%s", sb.String())
	}
}
