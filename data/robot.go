package data

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/magma-go/magma/llm/tokenizer"
	"github.com/magma-go/magma/model/action"
	"github.com/magma-go/magma/tom"
	"github.com/magma-go/magma/vision/imaging"
)

var pyNonFinite = regexp.MustCompile(`([\[,:]\s*)(-?(?:NaN|Infinity))\b`)

// ActionDim is the 7-DoF action size: xyz, roll-pitch-yaw deltas, gripper.
const ActionDim = 7

// EpisodeFile is the annotation file of one robot episode folder.
const EpisodeFile = "episode.json"

// RobotOptions are the robot source's per-type options.
type RobotOptions struct {
	// Steps is the ToM horizon: the traces run from the step's frame to
	// frame t+Steps (default 16, Magma's frame_index + 16).
	Steps int `yaml:"steps"`
	// Grid is the tracking grid size (tom default 15).
	Grid int `yaml:"grid"`
	// TomRatio is the share of samples that get the ToM turn after the
	// action turn (default 1: Magma's Open-X class always adds it when the
	// episode has traces; 0 gives action-only samples).
	TomRatio *float64 `yaml:"tom_ratio"`
	// Statistics is an OpenVLA dataset_statistics.json to normalise with
	// (default: computed from the episodes; see Statistics).
	Statistics string `yaml:"statistics"`
	// Key is the dataset name inside the statistics file (default: the
	// source name, or the only key).
	Key string `yaml:"key"`
	// Tracker and TrackerWeights choose the point tracker, as for video
	// sources (VideoOptions.Tracker).
	Tracker        string `yaml:"tracker"`
	TrackerWeights string `yaml:"tracker_weights"`
}

// RobotSource reads robot episodes in this layout (the LIBERO HDF5 reader
// is elsewhere):
//
//	<path>/
//	  <episode>/                 one folder per episode (sorted by name)
//	    episode.json             {"instruction": "put the bowl on the plate",
//	                              "actions": [[dx,dy,dz,droll,dpitch,dyaw,gripper], ...],
//	                              "frames": ["000000.png", ...]}   (optional)
//	    000000.png 000001.png …  frame t is observed before action t
//
// Without "frames" the folder's PNG/JPEG files sorted by name are used;
// there must be one frame per action. Each step is one record (index =
// global step; errors name the episode folder and its episode number).
// Action samples ask "What action should the robot take to {instruction}?"
// on frame t and supervise the 7 action tokens (action.Tokenizer, OpenVLA
// BOUNDS_Q99 normalisation with the q01/q99 of this dataset; the gripper
// dimension, mask false, is left as is and clipped by the tokenizer; it
// should be in [-1,1]) and <|eot_id|>. Statistics are action.ComputeStats's, the
// same as LiberoSource's.
// As Magma's Open-X class builds it (data/openx_magma/data_utils.py), a
// sample is one multi-turn item: the action turn, then (for a TomRatio
// share, when frames t..t+Steps exist) the ToM turn on frame t with the
// marks drawn, "The robot is doing: {instruction}" (tom.SourceRobot), or
// the SoM turn when nothing moves. Frames use num_crops = 1.
type RobotSource struct {
	name, path string
	env        *SampleBuilder
	opt        RobotOptions
	eps        []episode
	steps      []stepRef
	stats      action.DatasetStats
	tracker    tom.Tracker
}

type episode struct {
	index       int
	dir         string
	instruction string
	actions     [][]float64
	frames      []string
}

type stepRef struct{ ep, t int }

type episodeJSON struct {
	Instruction string              `json:"instruction"`
	Actions     [][]json.RawMessage `json:"actions"`
	Frames      []string            `json:"frames"`
}

// NewRobotSource indexes the episodes, validates them and computes the
// action statistics.
func NewRobotSource(env *SampleBuilder, name, path string, o RobotOptions) (*RobotSource, error) {
	if o.Steps <= 0 {
		o.Steps = 16
	}
	if o.TomRatio == nil {
		r := 1.0
		o.TomRatio = &r
	}
	if !(*o.TomRatio >= 0 && *o.TomRatio <= 1) {
		return nil, fmt.Errorf("data: robot source %q: tom_ratio %v outside [0,1]", name, *o.TomRatio)
	}
	ents, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("data: robot source %q: %w", name, err)
	}
	var dirs []string
	for _, e := range ents {
		if e.IsDir() {
			dirs = append(dirs, e.Name())
		}
	}
	sort.Strings(dirs)
	tr, err := env.tracker(name, o.Tracker, o.TrackerWeights)
	if err != nil {
		return nil, err
	}
	s := &RobotSource{name: name, path: path, env: env, opt: o, tracker: tr}
	var bad []*RecordError
	for i, d := range dirs {
		ep, err := loadEpisode(filepath.Join(path, d))
		if err != nil {
			bad = append(bad, recordErr(filepath.Join(path, d, EpisodeFile), i, "%v", err))
			continue
		}
		ep.index = i
		for t := range ep.actions {
			s.steps = append(s.steps, stepRef{ep: len(s.eps), t: t})
		}
		s.eps = append(s.eps, ep)
	}
	if err := env.handleLoadErrors(bad); err != nil {
		return nil, err
	}
	if len(s.steps) == 0 {
		return nil, fmt.Errorf("data: robot source %q: no usable episodes in %s (%s)", name, path, rejectedSummary(bad))
	}
	if o.Statistics != "" {
		st, err := readRobotStatistics(o.Statistics, o.Key, name)
		if err != nil {
			return nil, err
		}
		s.stats = st
	} else {
		s.stats = s.compute()
	}
	return s, nil
}

func loadEpisode(dir string) (episode, error) {
	ep := episode{dir: dir}
	b, err := os.ReadFile(filepath.Join(dir, EpisodeFile))
	if err != nil {
		return ep, err
	}
	var j episodeJSON
	// Python's json writes NaN/Infinity bare; quote them so that they are
	// reported as non-finite actions rather than as a syntax error.
	b = pyNonFinite.ReplaceAll(b, []byte(`$1"$2"`))
	if err := strictDecode(b, &j); err != nil {
		return ep, fmt.Errorf("bad JSON: %v", err)
	}
	ep.instruction = strings.TrimSpace(j.Instruction)
	if ep.instruction == "" {
		return ep, errors.New(`no "instruction"`)
	}
	if len(j.Actions) == 0 {
		return ep, errors.New(`no "actions"`)
	}
	for t, a := range j.Actions {
		if len(a) != ActionDim {
			return ep, fmt.Errorf("action %d has %d values, want %d", t, len(a), ActionDim)
		}
		v := make([]float64, ActionDim)
		for d, n := range a {
			var f float64
			if err := json.Unmarshal(n, &f); err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				return ep, fmt.Errorf("action %d value %d (%s) is not a finite number", t, d, n)
			}
			v[d] = f
		}
		ep.actions = append(ep.actions, v)
	}
	ep.frames = j.Frames
	if ep.frames == nil {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return ep, err
		}
		for _, e := range ents {
			switch strings.ToLower(filepath.Ext(e.Name())) {
			case ".png", ".jpg", ".jpeg":
				ep.frames = append(ep.frames, e.Name())
			}
		}
		sort.Strings(ep.frames)
	}
	if len(ep.frames) != len(ep.actions) {
		return ep, fmt.Errorf("%d frames for %d actions", len(ep.frames), len(ep.actions))
	}
	return ep, nil
}

func (s *RobotSource) compute() action.DatasetStats {
	var rows [][]float64
	for _, ep := range s.eps {
		rows = append(rows, ep.actions...)
	}
	mask := []bool{true, true, true, true, true, true, false}
	return action.DatasetStats{Action: action.ComputeStats(rows, mask), NumTransitions: len(rows), NumTrajectories: len(s.eps)}
}

// Statistics returns the statistics actions are normalised with (OpenVLA's
// layout, shared with LiberoSource); save them with
// action.WriteDatasetStatistics({"<source name>": &st}) next to a checkpoint so
// that inference can un-normalise.
func (s *RobotSource) Statistics() action.DatasetStats { return s.stats }

// readRobotStatistics picks one dataset's entry of a
// dataset_statistics.json (key "" means fallback, or the only entry).
func readRobotStatistics(path, key, fallback string) (action.DatasetStats, error) {
	all, err := action.ReadDatasetStatistics(path)
	if err != nil {
		return action.DatasetStats{}, fmt.Errorf("data: %w", err)
	}
	st, ok := all[key]
	if key == "" {
		if st, ok = all[fallback]; !ok && len(all) == 1 {
			for _, v := range all {
				st, ok = v, true
			}
		}
	}
	if !ok {
		return action.DatasetStats{}, fmt.Errorf("data: %s: no statistics for %q", path, key)
	}
	if len(st.Action.Q01) != ActionDim {
		return action.DatasetStats{}, fmt.Errorf("data: %s: action statistics have %d dimensions, want %d", path, len(st.Action.Q01), ActionDim)
	}
	return *st, nil
}

// RobotActionQuestion is the action question of Magma's Open-X pretraining
// items, the instruction kept as the dataset writes it
// (data/openx_magma/data_utils.py: f"{image_placeholder}\nWhat action should
// the robot take to {gpt_response}?").
func RobotActionQuestion(instruction string) string {
	return "What action should the robot take to " + instruction + "?"
}

func (s *RobotSource) Name() string { return s.name }
func (s *RobotSource) Len() int     { return len(s.steps) }

// Sample builds the action (or ToM) sample of one step.
func (s *RobotSource) Sample(i int, rng *rand.Rand) (Sample, error) {
	msgs, images, err := s.conversation(i, rng)
	if err != nil {
		return Sample{}, err
	}
	ref := s.steps[i]
	ep := s.eps[ref.ep]
	smp, err := s.env.FrameSample(msgs, images)
	if err != nil {
		return Sample{}, recordErr(filepath.Join(ep.dir, EpisodeFile), ep.index, "step %d: %v", ref.t, err)
	}
	smp.Source, smp.Index = ep.dir, i
	return smp, nil
}

// conversation is Sample before tokenisation: the action turn (the answer
// as action token ids) and, when drawn, the ToM or SoM turn, with their
// images (frame t, then the marked frame t).
func (s *RobotSource) conversation(i int, rng *rand.Rand) ([]tokenizer.Message, []imaging.Image, error) {
	if i < 0 || i >= len(s.steps) {
		return nil, nil, fmt.Errorf("data: %s: index %d out of range", s.name, i)
	}
	if rng == nil {
		rng = rand.New(rand.NewPCG(uint64(i), 0))
	}
	ref := s.steps[i]
	ep := s.eps[ref.ep]
	epPath := filepath.Join(ep.dir, EpisodeFile)
	fail := func(err error) ([]tokenizer.Message, []imaging.Image, error) {
		return nil, nil, recordErr(epPath, ep.index, "step %d: %v", ref.t, err)
	}
	img, err := s.env.decode(filepath.Join(ep.dir, ep.frames[ref.t]))
	if err != nil {
		return fail(err)
	}
	norm, err := s.stats.Action.Normalize(ep.actions[ref.t])
	if err != nil {
		return fail(err)
	}
	ids, err := s.env.Actions.Encode(norm)
	if err != nil {
		return fail(err)
	}
	msgs := []tokenizer.Message{
		{Role: "user", Content: framePlaceholder + RobotActionQuestion(ep.instruction)},
		{Role: "assistant", IDs: ids}}
	images := []imaging.Image{img}
	if rng.Float64() < *s.opt.TomRatio && ref.t+s.opt.Steps < len(ep.frames) {
		frames := make([]imaging.Image, 0, s.opt.Steps+1)
		for t := ref.t; t <= ref.t+s.opt.Steps; t++ {
			f, err := s.env.decode(filepath.Join(ep.dir, ep.frames[t]))
			if err != nil {
				return fail(err)
			}
			frames = append(frames, f)
		}
		cfg := tom.SourceConfig(tom.SourceRobot)
		cfg.Seed, cfg.Task, cfg.Grid, cfg.Future, cfg.Tracker = rng.Int64(), ep.instruction, s.opt.Grid, s.opt.Steps, s.tracker
		q, a, marked, err := marksTurn(frames, cfg)
		switch {
		case err == nil:
			msgs = append(msgs, tokenizer.Message{Role: "user", Content: framePlaceholder + q},
				tokenizer.Message{Role: "assistant", Content: a})
			images = append(images, marked)
		case !errors.Is(err, tom.ErrNoTraces):
			return fail(err)
		}
	}
	return msgs, images, nil
}
