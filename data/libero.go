package data

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"image"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"gocv.io/x/gocv"

	"github.com/magma-go/magma/data/hdf5"
	"github.com/magma-go/magma/data/rlds"
	"github.com/magma-go/magma/llm/tokenizer"
	"github.com/magma-go/magma/model/action"
	"github.com/magma-go/magma/vision/imaging"
)

// LIBERO demo files (robomimic layout, written by h5py), one per task:
//
//	<suite>/<task_name>_demo.hdf5
//	  /data                      attrs problem_info (JSON with language_instruction), env_args, bddl_file_name, ...
//	  /data/demo_<i>/actions     (N,7) float64: Δposition(3), Δaxis-angle(3), gripper (-1 open, +1 close)
//	  /data/demo_<i>/obs/agentview_rgb, eye_in_hand_rgb  (N,H,W,3) uint8, stored upside down
//	  /data/demo_<i>/obs/ee_states (N,6), gripper_states (N,2), joint_states (N,7)
//	  /data/demo_<i>/rewards, dones (N)

// LiberoSuites are the published suite folders.
var LiberoSuites = []string{"libero_spatial", "libero_object", "libero_goal", "libero_10", "libero_90"}

// IsLiberoSuite reports whether name is a published suite or its RLDS
// release's name (suite + "_no_noops").
func IsLiberoSuite(name string) bool {
	for _, k := range LiberoSuites {
		if k == name || k+"_no_noops" == name {
			return true
		}
	}
	return false
}

// LiberoActionDim is the size of a LIBERO action.
const LiberoActionDim = 7

// LiberoNoopThreshold is OpenVLA's no-op threshold on the arm action norm.
const LiberoNoopThreshold = 1e-4

// LiberoOptions configure OpenLibero.
type LiberoOptions struct {
	// Suite names the data (the dataset_statistics.json key, the unnorm_key
	// of /act requests); "" = the folder's base name.
	Suite string
	// Shots is the number of training demos per task (ShotsPer "task") or
	// in the whole suite (ShotsPer "suite"); the rest are held out. 0 or
	// more than there are means all of them.
	Shots int
	// ShotsPer is "task" ("" too) or "suite". The paper says "10
	// trajectories per task" (Fig. 10) and "for each task suite ... only 10
	// trajectories" (Sec. 5.2); the maintainers answered "select 1 traj per
	// sub-task" (microsoft/Magma issue #51), i.e. 10 per suite of 10 tasks.
	// Suite shots are spread over the tasks as evenly as possible (the
	// tasks that get one more are drawn by Seed).
	ShotsPer string
	// Seed chooses the shots.
	Seed uint64
	// RemoveNoops drops steps whose arm action norm is below 1e-4 and whose
	// gripper command equals the previous kept step's (OpenVLA's
	// regenerated "no_noops" sets).
	RemoveNoops bool
	// Camera is the image dataset under obs/ ("" = agentview_rgb).
	Camera string
}

// LiberoDemo is one demonstration: its kept steps (after no-op removal).
type LiberoDemo struct {
	Key    string // "demo_3"
	Frames []int  // index in the file of each kept step
	// Actions are the raw actions of the kept steps, as in the file.
	Actions [][LiberoActionDim]float64
	// Proprio is ee_states(6)+gripper_states(2) of the kept steps (OpenVLA's
	// LIBERO state), nil when the file has no such datasets.
	Proprio [][]float64
	// Steps is the length of the demo in the file.
	Steps int

	rec *rldsLoc // the RLDS record (nil for HDF5)
}

// LiberoTask is one *_demo.hdf5 file, or the RLDS episodes of one task.
type LiberoTask struct {
	Name        string // file name without _demo.hdf5
	File        string // the HDF5 file; for RLDS the dataset's version folder
	Instruction string
	// FromFileName is set when the instruction was derived from the file
	// name (no problem_info attribute).
	FromFileName bool
	Demos        []*LiberoDemo // in demo number order
	// Train and Heldout index Demos; Train is sorted.
	Train, Heldout []int
	H, W           int // image size
}

// Libero is a suite folder read for finetuning or evaluation.
type Libero struct {
	Dir string
	// Format is LiberoFormatHDF5 or LiberoFormatRLDS.
	Format string
	Opt    LiberoOptions
	Tasks  []*LiberoTask
	// Stats are the statistics of the training demos' actions (gripper
	// already mapped to OpenVLA's {0 closed, 1 open}).
	Stats *action.DatasetStats

	mu    sync.Mutex
	files map[string]*hdf5.File
	rlds  *liberoRLDS
}

var demoRE = regexp.MustCompile(`^demo_([0-9]+)$`)

// OpenLibero reads every *_demo.hdf5 file of a suite folder, or every
// episode of an RLDS dataset folder (OpenVLA's modified LIBERO release,
// detected by its dataset_info.json): instructions, demo lists, actions (and
// proprioception), chooses the training shots and computes the action
// statistics. Images are read lazily by Frame. The suite defaults to the
// folder's name (HDF5) or the dataset's name (RLDS, e.g.
// libero_spatial_no_noops).
func OpenLibero(dir string, opt LiberoOptions) (*Libero, error) {
	if opt.Camera == "" {
		opt.Camera = "agentview_rgb"
	}
	if opt.Shots < 0 {
		return nil, fmt.Errorf("libero: shots %d must be >= 0", opt.Shots)
	}
	switch opt.ShotsPer {
	case "", ShotsPerTask, ShotsPerSuite:
	default:
		return nil, fmt.Errorf("libero: shots per %q (want %s or %s)", opt.ShotsPer, ShotsPerTask, ShotsPerSuite)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("libero: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("libero: %s is not a folder (pass the suite folder of *_demo.hdf5 files)", dir)
	}
	paths, err := filepath.Glob(filepath.Join(dir, "*_demo.hdf5"))
	if err != nil {
		return nil, fmt.Errorf("libero: %w", err)
	}
	sort.Strings(paths)
	l := &Libero{Dir: dir, Format: LiberoFormatHDF5, files: map[string]*hdf5.File{}}
	if len(paths) == 0 {
		if _, err := rlds.Open(dir); err != nil {
			return nil, fmt.Errorf("libero: %s: no *_demo.hdf5 files (expected a LIBERO suite folder such as libero_spatial/) "+
				"and not an RLDS dataset (OpenVLA's modified LIBERO, such as libero_spatial_no_noops/): %v", dir, err)
		}
		l.Format = LiberoFormatRLDS
		if l.Tasks, l.rlds, err = readLiberoRLDS(dir, &opt); err != nil {
			return nil, fmt.Errorf("libero: %w", err)
		}
	}
	if opt.Suite == "" {
		opt.Suite = filepath.Base(filepath.Clean(dir))
	}
	l.Opt = opt
	for _, p := range paths {
		t, err := readLiberoTask(p, opt)
		if err != nil {
			return nil, fmt.Errorf("libero: %w", err)
		}
		l.Tasks = append(l.Tasks, t)
	}
	for i, n := range shotsPerTask(len(l.Tasks), opt) {
		selectShots(l.Tasks[i], n, opt.Seed)
	}
	var acts, props [][]float64
	nTraj := 0
	for _, t := range l.Tasks {
		for _, di := range t.Train {
			d := t.Demos[di]
			nTraj++
			for i := range d.Actions {
				acts = append(acts, LiberoPolicyAction(d.Actions[i]))
			}
			if d.Proprio != nil {
				props = append(props, d.Proprio...)
			}
		}
	}
	if len(acts) == 0 {
		return nil, fmt.Errorf("libero: %s: no training steps left (all steps removed as no-ops?)", dir)
	}
	l.Stats = &action.DatasetStats{
		Action:          action.ComputeStats(acts, LiberoActionMask()),
		NumTransitions:  len(acts),
		NumTrajectories: nTraj,
	}
	if len(props) == len(acts) {
		ps := action.ComputeStats(props, nil)
		l.Stats.Proprio = &ps
	}
	return l, nil
}

// readLiberoTask indexes one file. Errors name the file and the HDF5 path.
func readLiberoTask(path string, opt LiberoOptions) (*LiberoTask, error) {
	f, err := hdf5.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	name := strings.TrimSuffix(filepath.Base(path), "_demo.hdf5")
	t := &LiberoTask{Name: name, File: path}
	if k, err := f.Kind("/data"); err != nil {
		return nil, err
	} else if k != hdf5.KindGroup {
		return nil, fmt.Errorf("%s:/data: is a %s, want a group", path, k)
	}
	has, err := f.HasAttr("/data", "problem_info")
	if err != nil {
		return nil, err
	}
	if has {
		raw, err := f.AttrString("/data", "problem_info")
		if err != nil {
			return nil, err
		}
		var pi struct {
			LanguageInstruction *string `json:"language_instruction"`
		}
		if err := json.Unmarshal([]byte(raw), &pi); err != nil {
			return nil, fmt.Errorf("%s:/data: attribute problem_info is not valid JSON: %v", path, err)
		}
		if pi.LanguageInstruction != nil {
			t.Instruction = strings.TrimSpace(*pi.LanguageInstruction)
		}
	}
	if t.Instruction == "" {
		t.Instruction = InstructionFromFileName(name)
		t.FromFileName = true
	}
	kids, err := f.Children("/data")
	if err != nil {
		return nil, err
	}
	type numbered struct {
		n   int
		key string
	}
	var demos []numbered
	for _, k := range kids {
		if m := demoRE.FindStringSubmatch(k); m != nil {
			n, _ := strconv.Atoi(m[1])
			demos = append(demos, numbered{n, k})
		}
	}
	if len(demos) == 0 {
		return nil, fmt.Errorf("%s:/data: no demo_<i> groups", path)
	}
	sort.Slice(demos, func(i, j int) bool { return demos[i].n < demos[j].n })
	for _, dn := range demos {
		d, h, w, err := readLiberoDemo(f, path, dn.key, opt)
		if err != nil {
			return nil, err
		}
		if t.H == 0 {
			t.H, t.W = h, w
		} else if t.H != h || t.W != w {
			return nil, fmt.Errorf("%s:/data/%s/obs/%s: images are %dx%d, earlier demos %dx%d", path, dn.key, opt.Camera, w, h, t.W, t.H)
		}
		t.Demos = append(t.Demos, d)
	}
	return t, nil
}

func readLiberoDemo(f *hdf5.File, path, key string, opt LiberoOptions) (*LiberoDemo, int, int, error) {
	base := "/data/" + key
	apath := base + "/actions"
	ai, err := f.Dataset(apath)
	if err != nil {
		return nil, 0, 0, err
	}
	if ai.Class != hdf5.ClassFloat && ai.Class != hdf5.ClassInteger {
		return nil, 0, 0, fmt.Errorf("%s:%s: dtype %s, want float", path, apath, ai.Type)
	}
	if len(ai.Shape) != 2 || ai.Shape[1] != LiberoActionDim {
		return nil, 0, 0, fmt.Errorf("%s:%s: shape %v, want (N,%d)", path, apath, ai.Shape, LiberoActionDim)
	}
	n := ai.Shape[0]
	if n == 0 {
		return nil, 0, 0, fmt.Errorf("%s:%s: empty demo (0 steps)", path, apath)
	}
	ipath := base + "/obs/" + opt.Camera
	ii, err := f.Dataset(ipath)
	if err != nil {
		return nil, 0, 0, err
	}
	if ii.Class != hdf5.ClassInteger || ii.Size != 1 || ii.Signed {
		return nil, 0, 0, fmt.Errorf("%s:%s: dtype %s, want uint8", path, ipath, ii.Type)
	}
	if len(ii.Shape) != 4 || ii.Shape[3] != 3 || ii.Shape[1] == 0 || ii.Shape[2] == 0 {
		return nil, 0, 0, fmt.Errorf("%s:%s: shape %v, want (N,H,W,3)", path, ipath, ii.Shape)
	}
	if ii.Shape[0] != n {
		return nil, 0, 0, fmt.Errorf("%s:%s: %d frames for %d actions", path, ipath, ii.Shape[0], n)
	}
	// The other per-step datasets are optional, but must line up when present.
	for _, o := range []struct {
		p   string
		dim int // 0: one value per step
	}{{"/obs/ee_states", 6}, {"/obs/gripper_states", 2}, {"/obs/joint_states", 7}, {"/rewards", 0}, {"/dones", 0}} {
		p := base + o.p
		ok, err := f.Exists(p)
		if err != nil {
			return nil, 0, 0, err
		}
		if !ok {
			continue
		}
		in, err := f.Dataset(p)
		if err != nil {
			return nil, 0, 0, err
		}
		want := []int{n}
		if o.dim > 0 {
			want = append(want, o.dim)
		}
		if !equalInts(in.Shape, want) {
			return nil, 0, 0, fmt.Errorf("%s:%s: shape %v, want %v", path, p, in.Shape, want)
		}
	}
	raw, _, err := f.ReadFloat64(apath)
	if err != nil {
		return nil, 0, 0, err
	}
	for i, v := range raw {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, 0, 0, fmt.Errorf("%s:%s: non-finite value at step %d, dimension %d", path, apath, i/LiberoActionDim, i%LiberoActionDim)
		}
	}
	var ee, gr []float64
	if ok1, _ := f.Exists(base + "/obs/ee_states"); ok1 {
		if ok2, _ := f.Exists(base + "/obs/gripper_states"); ok2 {
			if ee, _, err = f.ReadFloat64(base + "/obs/ee_states"); err != nil {
				return nil, 0, 0, err
			}
			if gr, _, err = f.ReadFloat64(base + "/obs/gripper_states"); err != nil {
				return nil, 0, 0, err
			}
		}
	}
	d := &LiberoDemo{Key: key, Steps: n}
	var prev *[LiberoActionDim]float64
	for i := 0; i < n; i++ {
		var a [LiberoActionDim]float64
		copy(a[:], raw[i*LiberoActionDim:(i+1)*LiberoActionDim])
		if opt.RemoveNoops && IsNoop(a, prev) {
			continue
		}
		d.Actions = append(d.Actions, a)
		d.Frames = append(d.Frames, i)
		if ee != nil {
			p := append(append([]float64(nil), ee[i*6:(i+1)*6]...), gr[i*2:(i+1)*2]...)
			d.Proprio = append(d.Proprio, p)
		}
		prev = &d.Actions[len(d.Actions)-1]
	}
	return d, ii.Shape[1], ii.Shape[2], nil
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// IsNoop is OpenVLA's no-op test (regenerate_libero_dataset.py): the arm
// part of the action has norm below 1e-4 and, when there is a previous
// kept action, the gripper command is unchanged.
func IsNoop(a [LiberoActionDim]float64, prev *[LiberoActionDim]float64) bool {
	var s float64
	for _, v := range a[:LiberoActionDim-1] {
		s += v * v
	}
	if math.Sqrt(s) >= LiberoNoopThreshold {
		return false
	}
	if prev == nil {
		return true
	}
	return a[LiberoActionDim-1] == prev[LiberoActionDim-1]
}

var sceneRE = regexp.MustCompile(`^[A-Z_]*SCENE[0-9]+_`)

// InstructionFromFileName derives an instruction from a task file name the
// way LIBERO names its files: words joined by "_", libero_10/90 names
// prefixed with the scene ("KITCHEN_SCENE3_turn_on_the_stove" → "turn on
// the stove").
func InstructionFromFileName(name string) string {
	name = strings.TrimSuffix(strings.TrimSuffix(name, ".hdf5"), "_demo")
	name = sceneRE.ReplaceAllString(name, "")
	return strings.Join(strings.FieldsFunc(name, func(r rune) bool { return r == '_' }), " ")
}

// The ShotsPer values.
const (
	ShotsPerTask  = "task"
	ShotsPerSuite = "suite"
)

// shotsPerTask is how many demos each of n tasks trains on (-1: all).
func shotsPerTask(n int, opt LiberoOptions) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = -1
	}
	if opt.Shots <= 0 || n == 0 {
		return out
	}
	if opt.ShotsPer != ShotsPerSuite {
		for i := range out {
			out[i] = opt.Shots
		}
		return out
	}
	r := rand.New(rand.NewPCG(opt.Seed, 0x5ee7))
	order := r.Perm(n)
	for j, i := range order {
		out[i] = opt.Shots / n
		if j < opt.Shots%n {
			out[i]++
		}
	}
	return out
}

// selectShots puts shots demos of t (chosen by seed and the task name, so
// the choice does not depend on the other files) in Train and the rest in
// Heldout; shots < 0 trains on all of them.
func selectShots(t *LiberoTask, shots int, seed uint64) {
	n := len(t.Demos)
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	if shots >= 0 && shots < n {
		h := fnv.New64a()
		h.Write([]byte(t.Name))
		r := rand.New(rand.NewPCG(seed, h.Sum64()))
		r.Shuffle(n, func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
		t.Train = append([]int(nil), idx[:shots]...)
		t.Heldout = append([]int(nil), idx[shots:]...)
		sort.Ints(t.Train)
		sort.Ints(t.Heldout)
		return
	}
	t.Train, t.Heldout = idx, nil
}

// Split returns the demo indices of split "train" or "heldout" ("all": every demo).
func (t *LiberoTask) Split(split string) ([]int, error) {
	switch split {
	case "train":
		return t.Train, nil
	case "heldout":
		return t.Heldout, nil
	case "all":
		all := make([]int, len(t.Demos))
		for i := range all {
			all[i] = i
		}
		return all, nil
	}
	return nil, fmt.Errorf("libero: split %q: want train, heldout or all", split)
}

// DemoCounts returns the number of training and held-out demos over the
// tasks.
func (l *Libero) DemoCounts() (train, heldout int) {
	for _, t := range l.Tasks {
		train += len(t.Train)
		heldout += len(t.Heldout)
	}
	return train, heldout
}

// Close closes the files opened by Frame.
func (l *Libero) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var first error
	for k, f := range l.files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
		delete(l.files, k)
	}
	if l.rlds != nil {
		l.rlds.files.close()
	}
	return first
}

func (l *Libero) file(path string) (*hdf5.File, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if f, ok := l.files[path]; ok {
		return f, nil
	}
	f, err := hdf5.Open(path)
	if err != nil {
		return nil, err
	}
	l.files[path] = f
	return f, nil
}

// Frame reads the camera image of kept step k of demo d of task t, upright:
// HDF5 frames rotated 180 degrees, RLDS frames (rotated by OpenVLA's
// converter already) as decoded.
func (l *Libero) Frame(t *LiberoTask, d *LiberoDemo, k int) (imaging.Image, error) {
	if k < 0 || k >= len(d.Frames) {
		return imaging.Image{}, fmt.Errorf("libero: %s: %s step %d out of range (%d steps)", t.File, d.Key, k, len(d.Frames))
	}
	if d.rec != nil {
		return l.rlds.frame(d, d.Frames[k])
	}
	f, err := l.file(t.File)
	if err != nil {
		return imaging.Image{}, err
	}
	p := "/data/" + d.Key + "/obs/" + l.Opt.Camera
	pix, _, err := f.ReadUint8Slab(p, []int{d.Frames[k], 0, 0, 0}, []int{1, t.H, t.W, 3})
	if err != nil {
		return imaging.Image{}, err
	}
	img := imaging.Image{W: t.W, H: t.H, Pix: pix}
	Rotate180(img)
	return img, nil
}

// Rotate180 turns an RGB image upside down in place (numpy img[::-1, ::-1]):
// LIBERO stores its camera frames rotated, and the policy must see the same
// orientation at training and serving time.
func Rotate180(img imaging.Image) {
	p := img.Pix
	n := len(p) / 3
	for i, j := 0, n-1; i < j; i, j = i+1, j-1 {
		a, b := p[i*3:i*3+3], p[j*3:j*3+3]
		a[0], a[1], a[2], b[0], b[1], b[2] = b[0], b[1], b[2], a[0], a[1], a[2]
	}
}

// LiberoPolicyAction maps a file action to the policy's action space:
// OpenVLA's libero_dataset_transform turns the gripper command (-1 open,
// +1 close) into 1 - clip(g, 0, 1), i.e. 1 open, 0 closed.
func LiberoPolicyAction(a [LiberoActionDim]float64) []float64 {
	out := append([]float64(nil), a[:]...)
	g := math.Max(0, math.Min(1, a[LiberoActionDim-1]))
	out[LiberoActionDim-1] = 1 - g
	return out
}

// LiberoEnvAction maps a policy action back to the simulator's convention,
// as OpenVLA's LIBERO evaluation does: the gripper value in [0, 1] becomes
// 2g-1, is binarised to ±1 by its sign and inverted (+1 close, -1 open).
func LiberoEnvAction(p []float64) []float64 {
	out := append([]float64(nil), p...)
	g := 2*p[len(p)-1] - 1
	s := 1.0
	if g < 0 {
		s = -1
	}
	out[len(p)-1] = -s
	return out
}

// LiberoActionMask is the normalisation mask: the six arm dimensions are
// normalised, the gripper is not.
func LiberoActionMask() []bool {
	return []bool{true, true, true, true, true, true, false}
}

// --- samples ---

// liberoStep locates one training step.
type liberoStep struct{ task, demo, k int }

// LiberoSource is the training steps of a suite as a data.Source: one
// action sample per (task, training demo, kept step).
type LiberoSource struct {
	env   *SampleBuilder
	l     *Libero
	name  string
	steps []liberoStep
}

// NewLiberoSource makes the source over split ("train" normally) of l.
func NewLiberoSource(env *SampleBuilder, l *Libero, split string) (*LiberoSource, error) {
	if env == nil || env.Tokenizer == nil {
		return nil, errors.New("libero: source needs a SampleBuilder with a tokenizer")
	}
	s := &LiberoSource{env: env, l: l, name: l.Opt.Suite}
	for ti, t := range l.Tasks {
		demos, err := t.Split(split)
		if err != nil {
			return nil, err
		}
		for _, di := range demos {
			for k := range t.Demos[di].Actions {
				s.steps = append(s.steps, liberoStep{ti, di, k})
			}
		}
	}
	if len(s.steps) == 0 {
		return nil, fmt.Errorf("libero: %s: split %q has no steps", l.Dir, split)
	}
	return s, nil
}

func (s *LiberoSource) Name() string { return s.name }
func (s *LiberoSource) Len() int     { return len(s.steps) }

// Sample builds the sample of step i: the upright frame, the prompt
// "<image>\nWhat action should the robot take to {instruction}?" and the
// 7 action tokens + <|eot_id|> as the only supervised positions.
func (s *LiberoSource) Sample(i int, _ *rand.Rand) (Sample, error) {
	if i < 0 || i >= len(s.steps) {
		return Sample{}, fmt.Errorf("libero: sample %d out of range", i)
	}
	st := s.steps[i]
	t := s.l.Tasks[st.task]
	d := t.Demos[st.demo]
	smp, err := s.l.ActionSample(s.env, t, d, st.k)
	if err != nil {
		return Sample{}, recordErr(t.File, i, "%s: %v", s.l.Where(t, d, st.k), err)
	}
	smp.Source, smp.Index = t.File, i
	return smp, nil
}

// Step returns the task, demo and kept-step index of sample i.
func (s *LiberoSource) Step(i int) (*LiberoTask, *LiberoDemo, int) {
	st := s.steps[i]
	t := s.l.Tasks[st.task]
	return t, t.Demos[st.demo], st.k
}

// ActionSample builds the training sample of step k of demo d.
func (l *Libero) ActionSample(env *SampleBuilder, t *LiberoTask, d *LiberoDemo, k int) (Sample, error) {
	img, err := l.Frame(t, d, k)
	if err != nil {
		return Sample{}, err
	}
	ids, err := l.Stats.Action.EncodeAction(env.Actions, LiberoPolicyAction(d.Actions[k]))
	if err != nil {
		return Sample{}, err
	}
	msgs := []tokenizer.Message{{Role: "user", Content: tokenizer.ImageToken + "\n" + action.Prompt(t.Instruction)}}
	return env.ActionSample(msgs, []imaging.Image{img}, ids)
}

// LiberoDecoding is how an action is read from the model for LIBERO.
type LiberoDecoding struct {
	// Name is "greedy" or "official".
	Name string
	// Temperature 0 is greedy; above 0 samples (plain temperature
	// sampling, no top-p/top-k).
	Temperature float64
	// MaxNewTokens bounds the generation.
	MaxNewTokens int
	// Resize, when > 0, resizes the frame to Resize x Resize first.
	Resize int
	// FromEnd takes the action ids from the end of the generation: the 7
	// tokens before the last one (Magma's output_ids[0, -8:-1]); otherwise
	// the first 7 generated tokens.
	FromEnd bool
}

// LiberoDecodings are the decodings `magma eval libero --decoding` offers.
//
// greedy: argmax, 8 new tokens (7 action tokens and <|eot_id|>), the first
// 7 are the action.
//
// official: microsoft/Magma agents/libero (libero_magma_utils.py
// get_magma_action, eval_magma_libero.py): generate(temperature=0.7,
// do_sample=True, num_beams=1, max_new_tokens=1000), action ids =
// output_ids[0, -8:-1], the agent-view frame resized to 256x256
// (resolution 256; LIBERO's files hold 128 or 256 px frames). The JPEG
// round trip and TF Lanczos-3 resize of libero_env_utils.py are
// approximated by OpenCV's Lanczos-4.
var LiberoDecodings = map[string]LiberoDecoding{
	"greedy":   {Name: "greedy", MaxNewTokens: LiberoActionDim + 1},
	"official": {Name: "official", Temperature: 0.7, MaxNewTokens: 1000, Resize: 256, FromEnd: true},
}

// ActionIDs picks the 7 action ids from the generated ids (nil when too
// few were generated).
func (d LiberoDecoding) ActionIDs(out []int) []int {
	if d.FromEnd {
		if len(out) < LiberoActionDim+1 {
			return nil
		}
		return out[len(out)-LiberoActionDim-1 : len(out)-1]
	}
	if len(out) < LiberoActionDim {
		return nil
	}
	return out[:LiberoActionDim]
}

// Frame applies the decoding's resize to a frame.
func (d LiberoDecoding) Frame(img imaging.Image) (imaging.Image, error) {
	if d.Resize <= 0 || (img.W == d.Resize && img.H == d.Resize) {
		return img, nil
	}
	if err := img.Validate(); err != nil {
		return imaging.Image{}, err
	}
	src, err := gocv.NewMatFromBytes(img.H, img.W, gocv.MatTypeCV8UC3, img.Pix)
	if err != nil {
		return imaging.Image{}, err
	}
	defer src.Close()
	dst := gocv.NewMat()
	defer dst.Close()
	gocv.Resize(src, &dst, image.Pt(d.Resize, d.Resize), 0, 0, gocv.InterpolationLanczos4)
	return imaging.Image{W: d.Resize, H: d.Resize, Pix: dst.ToBytes()}, nil
}
