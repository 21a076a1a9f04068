package data

import (
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/magma-go/magma/data/rlds"
	"github.com/magma-go/magma/llm/tokenizer"
	"github.com/magma-go/magma/model/action"
	"github.com/magma-go/magma/vision/imaging"
)

// RLDSOptions are the rlds source's per-type options.
type RLDSOptions struct {
	// Dataset names the feature mapping (rlds.Configs; default: the
	// dataset's directory name, e.g. fractal20220817_data, bridge_orig,
	// libero_spatial_no_noops).
	Dataset string `yaml:"dataset"`
	// Split is the TFDS split (default train).
	Split string `yaml:"split"`
	// Image overrides the primary camera's observation key.
	Image string `yaml:"image"`
	// Statistics is an OpenVLA dataset_statistics.json to normalise with
	// (default: computed in the indexing pass); Key is its entry (default
	// the dataset name, or the only one).
	Statistics string `yaml:"statistics"`
	Key        string `yaml:"key"`
	// KeepUnlabeled keeps episodes with an empty instruction (OpenVLA's
	// skip_unlabeled drops them; so does this reader by default).
	KeepUnlabeled bool `yaml:"keep_unlabeled"`
	// Proprio computes the proprio statistics as OpenVLA does with
	// load_proprio (the dataset's state_obs_keys, rlds.Config.Proprio)
	// instead of the zeros of its VLA runs; datasets without a proprio
	// mapping keep the zeros.
	Proprio bool `yaml:"-"`
}

// RLDSSource reads an Open X-Embodiment dataset in RLDS form (package
// rlds: TFRecord shards of tf.train.Example episodes, OpenVLA's
// per-dataset standardisation). One record = one transition of a
// standardised trajectory. Opening makes one streaming pass over the
// rank's shards (RLDS episodes have no index): every record's CRCs are
// checked, only the action/instruction/state features are decoded (no
// images), the standardised actions are kept (7 float32 per transition)
// and OpenVLA's statistics are computed from them (action.DatasetStats: action
// mean/std/min/max/q01/q99 with the EEF_POS mask, proprio zeros as in
// OpenVLA's VLA runs that do not load proprio, transition and trajectory
// counts). A sample re-reads its episode record by offset, decodes only
// the primary camera and asks action.Prompt(instruction) → the 7 action
// tokens (BOUNDS_Q99). A corrupt record (CRC, truncation, protobuf) or an
// episode the transform rejects (missing key, wrong shape, non-finite
// value) is a *RecordError{shard, record index, reason} handled by on_error.
type RLDSSource struct {
	name string
	env  *SampleBuilder
	ds   *rlds.Dataset
	cfg  rlds.Config
	opt  RLDSOptions
	// shards of this rank
	shards []string
	eps    []rldsEpisode
	steps  []stepRef
	stats  action.DatasetStats
	files  *fileCache
	// unlabeled counts episodes dropped for an empty instruction
	unlabeled int
}

type rldsEpisode struct {
	shard  int
	record int
	offset int64
	steps  []int32
	action [][7]float32
	instr  []string // one entry when the instruction is constant
}

func (e *rldsEpisode) instruction(k int) string {
	if len(e.instr) == 1 {
		return e.instr[0]
	}
	return e.instr[k]
}

// NewRLDSSource opens the dataset at path (the dataset or version
// directory), indexes the shards of env's rank and computes statistics.
func NewRLDSSource(env *SampleBuilder, name, path string, o RLDSOptions) (*RLDSSource, error) {
	ds, err := rlds.Open(path)
	if err != nil {
		return nil, fmt.Errorf("data: rlds source %q: %w", name, err)
	}
	if o.Dataset == "" {
		o.Dataset = ds.Name
	}
	if o.Split == "" {
		o.Split = "train"
	}
	cfg, err := rlds.Lookup(o.Dataset)
	if err != nil {
		return nil, fmt.Errorf("data: rlds source %q: %w", name, err)
	}
	if o.Image != "" {
		cfg.Image = o.Image
	}
	all, err := ds.Shards(o.Split)
	if err != nil {
		return nil, fmt.Errorf("data: rlds source %q: %w", name, err)
	}
	shards, err := AssignShards(all, env.Rank, env.World)
	if err != nil {
		return nil, fmt.Errorf("data: rlds source %q: %w", name, err)
	}
	s := &RLDSSource{name: name, env: env, ds: ds, cfg: cfg, opt: o, shards: shards, files: newFileCache(64)}
	if _, ok := ds.Feature(cfg.ImageKey()); len(ds.Features) > 0 && !ok {
		return nil, fmt.Errorf("data: rlds source %q: %s/features.json has no %s (set image:)", name, ds.Dir, cfg.ImageKey())
	}
	var bad []*RecordError
	var rows, props [][]float64
	keys := cfg.Keys
	proprio := o.Proprio && cfg.Proprio != nil
	if proprio {
		keys = append(append([]string(nil), keys...), cfg.ProprioKeys...)
	}
	for si, sh := range shards {
		err := rlds.ScanShard(sh, rlds.Keys(keys...), func(ep *rlds.Episode, err error) error {
			if err != nil {
				bad = append(bad, rldsRecordErr(sh, err))
				return nil
			}
			tr, err := cfg.Transform(ep)
			if err != nil {
				bad = append(bad, recordErr(sh, ep.Index, "%s: %v", o.Dataset, err))
				return nil
			}
			if proprio {
				p, err := cfg.Proprio(ep)
				if err != nil {
					bad = append(bad, recordErr(sh, ep.Index, "%s: proprio: %v", o.Dataset, err))
					return nil
				}
				for _, t := range tr.Steps {
					props = append(props, p[t])
				}
			}
			for _, a := range tr.Action {
				rows = append(rows, a)
			}
			s.addEpisode(si, ep, tr)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if err := env.handleLoadErrors(bad); err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("data: rlds source %q: no usable episodes in %s (%s)", name, ds.Dir, rejectedSummary(bad))
	}
	if o.Statistics != "" {
		if s.stats, err = readRobotStatistics(o.Statistics, o.Key, o.Dataset); err != nil {
			return nil, err
		}
	} else {
		s.stats = rldsStats(rows, len(s.eps)+s.unlabeled)
		if proprio {
			p := action.ComputeStats(props, nil)
			s.stats.Proprio = &p
		}
	}
	if len(s.steps) == 0 {
		return nil, fmt.Errorf("data: rlds source %q: every episode has an empty instruction", name)
	}
	return s, nil
}

func rldsRecordErr(path string, err error) *RecordError {
	if ce, ok := rlds.IsCorrupt(err); ok {
		return recordErr(ce.Path, ce.Index, "offset %d: %s", ce.Offset, ce.Reason)
	}
	return recordErr(path, -1, "%v", err)
}

// rldsStats is get_dataset_statistics over the standardised actions.
func rldsStats(rows [][]float64, trajectories int) action.DatasetStats {
	mask := []bool{true, true, true, true, true, true, false}
	zeros := make([][]float64, len(rows))
	z := make([]float64, len(rows[0]))
	for i := range zeros {
		zeros[i] = z
	}
	p := action.ComputeStats(zeros, nil)
	return action.DatasetStats{Action: action.ComputeStats(rows, mask), Proprio: &p, NumTransitions: len(rows), NumTrajectories: trajectories}
}

func (s *RLDSSource) addEpisode(shard int, ep *rlds.Episode, tr *rlds.Trajectory) {
	e := rldsEpisode{shard: shard, record: ep.Index, offset: ep.Offset}
	same := true
	for _, in := range tr.Instruction {
		same = same && in == tr.Instruction[0]
	}
	if same && len(tr.Instruction) > 0 {
		e.instr = []string{tr.Instruction[0]}
	} else {
		e.instr = tr.Instruction
	}
	for k, a := range tr.Action {
		var v [7]float32
		for d := range v {
			v[d] = float32(a[d])
		}
		e.action = append(e.action, v)
		e.steps = append(e.steps, int32(tr.Steps[k]))
	}
	if !s.opt.KeepUnlabeled && strings.TrimSpace(e.instruction(0)) == "" {
		s.unlabeled++
		return
	}
	for k := range e.action {
		s.steps = append(s.steps, stepRef{ep: len(s.eps), t: k})
	}
	s.eps = append(s.eps, e)
}

func (s *RLDSSource) Name() string { return s.name }
func (s *RLDSSource) Len() int     { return len(s.steps) }

// Statistics returns the statistics actions are normalised with.
func (s *RLDSSource) Statistics() action.DatasetStats { return s.stats }

// Dataset is the opened RLDS dataset.
func (s *RLDSSource) Dataset() *rlds.Dataset { return s.ds }

// Close closes the shard files opened so far.
func (s *RLDSSource) Close() error { s.files.close(); return nil }

// Step returns the standardised action, instruction and decoded primary
// image of record i (what Sample tokenises).
func (s *RLDSSource) Step(i int) ([]float64, string, imaging.Image, error) {
	if i < 0 || i >= len(s.steps) {
		return nil, "", imaging.Image{}, fmt.Errorf("data: %s: index %d out of range", s.name, i)
	}
	ref := s.steps[i]
	ep := &s.eps[ref.ep]
	path := s.shards[ep.shard]
	f, release, err := s.files.get(path)
	if err != nil {
		return nil, "", imaging.Image{}, recordErr(path, ep.record, "%v", err)
	}
	data, err := rlds.ReadRecordAt(f, path, ep.record, ep.offset)
	release()
	if err != nil {
		return nil, "", imaging.Image{}, rldsRecordErr(path, err)
	}
	rec, err := rlds.DecodeEpisode(path, ep.record, ep.offset, data, rlds.Keys(s.cfg.ImageKey()))
	if err != nil {
		return nil, "", imaging.Image{}, rldsRecordErr(path, err)
	}
	t := int(ep.steps[ref.t])
	b, err := rec.Image(s.cfg.ImageKey(), t)
	if err != nil {
		return nil, "", imaging.Image{}, recordErr(path, ep.record, "step %d: %v", t, err)
	}
	img, err := imaging.DecodeImageBytes(b, imaging.WithMaxPixels(s.env.Image.MaxPixels))
	if err != nil {
		return nil, "", imaging.Image{}, recordErr(path, ep.record, "step %d: image: %v", t, err)
	}
	a := make([]float64, 7)
	for d, v := range ep.action[ref.t] {
		a[d] = float64(v)
	}
	return a, ep.instruction(ref.t), img, nil
}

// Sample builds the action sample of record i.
func (s *RLDSSource) Sample(i int, _ *rand.Rand) (Sample, error) {
	a, instr, img, err := s.Step(i)
	if err != nil {
		return Sample{}, err
	}
	ep := &s.eps[s.steps[i].ep]
	path := s.shards[ep.shard]
	fail := func(err error) (Sample, error) {
		return Sample{}, recordErr(path, ep.record, "step %d: %v", ep.steps[s.steps[i].t], err)
	}
	norm, err := s.stats.Action.Normalize(a)
	if err != nil {
		return fail(err)
	}
	ids, err := s.env.Actions.Encode(norm)
	if err != nil {
		return fail(err)
	}
	smp, err := s.env.ActionSample([]tokenizer.Message{{Role: "user", Content: tokenizer.ImageToken + "\n" + action.Prompt(instr)}},
		[]imaging.Image{img}, ids)
	if err != nil {
		return fail(err)
	}
	smp.Source, smp.Index = path, ep.record
	return smp, nil
}
