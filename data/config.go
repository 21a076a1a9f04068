package data

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/magma-go/magma/tom"
)

// MixtureConfig is the `data:` section of a pretraining config
// (configs/pretrain/*.yaml):
//
//	data:
//	  batch_size: 4          # samples per batch
//	  workers: 2             # sample-building goroutines (0: GOMAXPROCS, at most 4)
//	  prefetch: 0            # reorder window (0: 2*batch_size + 2*workers)
//	  on_error: skip         # skip | stop
//	  max_crops: 1           # caps the preprocessor's num_crops (0: keep)
//	  max_tokens: 0          # reject longer samples (0: no limit)
//	  synthetic:             # optional: generate the embedded default data
//	    dir: ""              # where (default: <run dir>/synthetic-data)
//	    ui: 48               # screenshots, video clips, robot episodes,
//	    videos: 12           # image-caption pairs (defaults as shown by
//	    robot_episodes: 8    # DefaultSyntheticConfig; 0: none of that
//	    captions: 48         # kind, its source is left out)
//	    size: 64             # frame side in pixels (UI screenshots 2x)
//	    frames: 17           # frames per clip / steps per robot episode
//	  sources:
//	    - name: llava        # unique; defaults to the type (plus a number)
//	      type: llava        # llava | ui | video | robot
//	      path: data/llava_v1_5_mix665k.json
//	      weight: 1.0        # relative sampling weight
//	      image_folder: data # per-type options follow, see below
//
// Data-section keys tracker: (cotracker | lk) and tracker_weights: (a
// CoTracker3 .pth) choose the point tracker of the video and robot sources
// (the synthetic ones included); a video or robot source's own tracker:
// and tracker_weights: override them. Default: CoTracker3 when weights are
// given, else LK with a one-line warning that traces are approximate.
//
// Per-type options (unknown keys are errors; given numbers must lie in
// their range: ui max_marks [1, 1000], max_turns [1, 64]; video and robot
// steps [1, 1024], grid [1, 128]; video fps [0.01, 1000]; weight (0, 1e6]):
//
//	llava: image_folder
//	ui:    image_folder, bbox_format (auto|xyxy|xyxy_norm|xywh|xywh_norm),
//	       subtasks {text_2_point: 0.4, text_2_bbox: 0.4, point_2_text: 0.1, bbox_2_text: 0.1},
//	       max_marks (20), max_turns (4)
//	video: video_folder, steps (frames tracked from the segment start - 1,
//	       16), grid (15), fps (of frame folders, 30), skip_tom (share of
//	       caption-only items, 0.2), egocentric (always remove camera motion),
//	       tracker, tracker_weights (as the data section's)
//	robot: steps (ToM horizon t..t+steps, 16), grid (15), tom_ratio (share
//	       of items with the ToM turn after the action turn, 1),
//	       statistics (a dataset_statistics.json instead of computing
//	       q01/q99), key (its entry; default the source name or the only one),
//	       tracker, tracker_weights
//	rlds:  (path: an RLDS dataset or version directory) dataset (feature
//	       mapping, default the directory name), split (train), image,
//	       statistics, key, keep_unlabeled (RLDSSource)
//	magma_tom: (path: .arrow/.parquet file, glob or folder) robot,
//	       video_folder, image_folder, trace_size [w, h], tasks {tom, som,
//	       caption, action}, columns {task, trace, visibility, video, frame,
//	       image, action} (MagmaToMSource)
//	magma_som: (path as magma_tom) image_folder, columns {image,
//	       conversations} (MagmaSoMSource)
//
// Limits (a value outside is an error naming the key, the value and the
// limit): batch_size <= 4096, workers <= 64, prefetch <= 65536, max_crops
// <= 64, max_tokens <= 1048576 (MixtureLimits); synthetic: ui and
// captions <= 10000, videos and robot_episodes <= 1000, size in [32, 512],
// frames in [2, 256], and at most MaxSyntheticPixels in all
// (SyntheticLimits). Keys absent from synthetic: take the defaults; given
// values are never replaced.
//
// With synthetic set and no sources, the four synthetic sources are used
// (ui 0.3, video 0.2, robot 0.2, captions 0.3). Relative paths are
// resolved against the directory of the YAML file (Base), synthetic
// source paths against the synthetic dir.
type MixtureConfig struct {
	BatchSize int              `yaml:"batch_size,omitempty"`
	Workers   int              `yaml:"workers,omitempty"`
	Prefetch  int              `yaml:"prefetch,omitempty"`
	OnError   ErrorPolicy      `yaml:"on_error,omitempty"`
	MaxCrops  int              `yaml:"max_crops,omitempty"`
	MaxTokens int              `yaml:"max_tokens,omitempty"`
	Synthetic *SyntheticConfig `yaml:"synthetic,omitempty"`
	Sources   []SourceConfig   `yaml:"sources,omitempty"`
	// Tracker and TrackerWeights are the point tracker of the video and
	// robot sources (the synthetic ones included) that choose none
	// themselves: tom.NewTracker's cotracker or lk, and a CoTracker3
	// checkpoint (default: CoTracker3 when weights are given, else LK with
	// a warning that traces are approximate).
	Tracker        string `yaml:"tracker,omitempty"`
	TrackerWeights string `yaml:"tracker_weights,omitempty"`

	// Base is the directory relative paths are resolved against (set by
	// ParseMixtureConfig; not part of the YAML).
	Base string `yaml:"-"`
	// Progress, when set, receives the progress of synthetic data
	// generation (SyntheticProgressPrinter; not part of the YAML).
	Progress io.Writer `yaml:"-"`
}

// MixtureLimits are the upper limits of the `data:` section's numbers
// (all must be >= 0); a larger value is an error naming the key.
var MixtureLimits = []struct {
	Key   string
	Max   int
	value func(*MixtureConfig) int
}{
	{"batch_size", 4096, func(c *MixtureConfig) int { return c.BatchSize }},
	{"workers", 64, func(c *MixtureConfig) int { return c.Workers }},
	{"prefetch", 65536, func(c *MixtureConfig) int { return c.Prefetch }},
	{"max_crops", 64, func(c *MixtureConfig) int { return c.MaxCrops }},
	{"max_tokens", 1 << 20, func(c *MixtureConfig) int { return c.MaxTokens }},
}

// SourceConfig is one entry of `sources:`. Options holds the per-type keys.
type SourceConfig struct {
	Name    string         `yaml:"name,omitempty"`
	Type    string         `yaml:"type"`
	Path    string         `yaml:"path"`
	Weight  float64        `yaml:"weight"`
	Options map[string]any `yaml:",inline"`
}

// ParseMixtureConfig decodes a `data:` section (the YAML of the section
// itself, not the whole file), rejecting unknown keys. base is the
// directory for relative paths.
func ParseMixtureConfig(y []byte, base string) (*MixtureConfig, error) {
	var c MixtureConfig
	dec := yaml.NewDecoder(bytes.NewReader(y))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("data: config: %w", err)
	}
	c.Base = base
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// LoadMixtureConfig reads the `data:` section of a YAML file.
func LoadMixtureConfig(path string) (*MixtureConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	var whole struct {
		Data yaml.Node `yaml:"data"`
	}
	if err := yaml.Unmarshal(b, &whole); err != nil {
		return nil, fmt.Errorf("data: %s: %w", path, err)
	}
	if whole.Data.Kind == 0 {
		return nil, fmt.Errorf("data: %s has no data: section", path)
	}
	sec, err := yaml.Marshal(&whole.Data)
	if err != nil {
		return nil, err
	}
	c, err := ParseMixtureConfig(sec, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Validate checks the settings that do not need the files.
func (c *MixtureConfig) Validate() error {
	if err := c.OnError.validate(); err != nil {
		return err
	}
	for _, l := range MixtureLimits {
		if v := l.value(c); v < 0 || v > l.Max {
			return fmt.Errorf("data: %s: %d is outside the limit [0, %d]", l.Key, v, l.Max)
		}
	}
	if c.Synthetic != nil {
		sc := c.Synthetic.withDefaults()
		if err := sc.Validate(); err != nil {
			return fmt.Errorf("data: %w", err)
		}
		if len(c.Sources) == 0 && len(SyntheticSources(sc)) == 0 {
			return errors.New("data: synthetic.ui, synthetic.videos, synthetic.robot_episodes and synthetic.captions are all 0 and there are no sources: nothing to train on")
		}
	}
	if len(c.Sources) == 0 && c.Synthetic == nil {
		return errors.New("data: no sources and no synthetic data")
	}
	if err := checkTracker("data: tracker", c.Tracker); err != nil {
		return err
	}
	for i, s := range c.Sources {
		if _, ok := sourceTypes[s.Type]; !ok {
			return fmt.Errorf("data: source %d: unknown type %q (want %s)", i, s.Type, strings.Join(sourceTypeNames(), ", "))
		}
		if s.Path == "" {
			return fmt.Errorf("data: source %d (%s): no path", i, s.Type)
		}
		if !(s.Weight > 0) || s.Weight > 1e6 {
			return fmt.Errorf("data: source %d (%s): weight %v must be in (0, 1e6]", i, s.Type, s.Weight)
		}
		for _, key := range trackerKeys[s.Type] {
			raw, ok := s.Options[key]
			if !ok {
				continue
			}
			v, isStr := raw.(string)
			if !isStr {
				return fmt.Errorf("data: source %d (%s): %s: %v is not a string", i, s.Type, key, raw)
			}
			if key == "tracker" {
				if err := checkTracker(fmt.Sprintf("data: source %d (%s): tracker", i, s.Type), v); err != nil {
					return err
				}
			}
		}
		for _, l := range optionLimits[s.Type] {
			raw, ok := s.Options[l.key]
			if !ok {
				continue // absent: the reader's default
			}
			var v float64
			switch x := raw.(type) {
			case int:
				v = float64(x)
			case float64:
				v = x
			default:
				return fmt.Errorf("data: source %d (%s): %s: %v is not a number", i, s.Type, l.key, raw)
			}
			if !(v >= l.min && v <= l.max) || (l.integer && v != math.Trunc(v)) {
				kind := "number"
				if l.integer {
					kind = "integer"
				}
				return fmt.Errorf("data: source %d (%s): %s: %v is outside the limit (an %s in [%g, %g])", i, s.Type, l.key, raw, kind, l.min, l.max)
			}
		}
	}
	return nil
}

// optionLimits are the ranges of the per-type numeric options; a given
// value outside is an error (a given 0 is not replaced by the default).
var optionLimits = map[string][]struct {
	key      string
	min, max float64
	integer  bool
}{
	"ui":    {{"max_marks", 1, 1000, true}, {"max_turns", 1, 64, true}},
	"video": {{"steps", 1, tom.MaxFuture, true}, {"grid", 1, tom.MaxGrid, true}, {"fps", 0.01, 1000, false}},
	"robot": {{"steps", 1, tom.MaxFuture, true}, {"grid", 1, tom.MaxGrid, true}},
}

// trackerKeys are the per-type string options that choose the point
// tracker (tom.NewTracker); tracker must name one.
var trackerKeys = map[string][]string{
	"video": {"tracker", "tracker_weights"},
	"robot": {"tracker", "tracker_weights"},
}

// checkTracker refuses a tracker name tom.NewTracker does not know.
func checkTracker(what, name string) error {
	switch name {
	case "", tom.TrackerCoTracker, tom.TrackerLK:
		return nil
	}
	return fmt.Errorf("%s: %q is not %s or %s", what, name, tom.TrackerCoTracker, tom.TrackerLK)
}

// options decodes the per-type keys into v, rejecting unknown ones.
func (s SourceConfig) options(v any) error {
	if len(s.Options) == 0 {
		return nil
	}
	b, err := yaml.Marshal(s.Options)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("data: source %q (%s) options: %w", s.Name, s.Type, err)
	}
	return nil
}

func (c *MixtureConfig) abs(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.Base, p)
}

// Build opens every source (generating the synthetic data first when
// configured; runDir is its default location) and returns the mixture.
// env.OnError and env.MaxTokens are set from the config.
func (c *MixtureConfig) Build(env *SampleBuilder, runDir string, seed uint64) (*Mixture, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.OnError != "" {
		env.OnError = c.OnError
	}
	if c.MaxTokens > 0 {
		env.MaxTokens = c.MaxTokens
	}
	if c.MaxCrops > 0 && c.MaxCrops < env.Image.MaxCrops {
		env.Image.MaxCrops = c.MaxCrops
	}
	if err := env.init(); err != nil {
		return nil, err
	}
	if c.Tracker != "" || c.TrackerWeights != "" {
		env.Tracker, env.TrackerWeights = c.Tracker, c.abs(c.TrackerWeights)
	}
	sources := c.Sources
	abs := c.abs
	if c.Synthetic != nil {
		sc := *c.Synthetic
		if sc.Dir == "" {
			sc.Dir = filepath.Join(runDir, "synthetic-data")
		} else {
			sc.Dir = c.abs(sc.Dir)
		}
		var progress func(SyntheticProgress)
		finish := func() {}
		if c.Progress != nil {
			progress, finish = SyntheticProgressPrinter(c.Progress)
		}
		err := GenerateSyntheticProgress(sc, seed, progress)
		finish()
		if err != nil {
			return nil, err
		}
		if len(sources) == 0 {
			sources = SyntheticSources(sc)
			abs = func(p string) string {
				if p == "" || filepath.IsAbs(p) {
					return p
				}
				return filepath.Join(sc.Dir, p)
			}
		}
	}
	var srcs []Source
	var weights []float64
	count := map[string]int{}
	for _, s := range sources {
		if s.Name == "" {
			count[s.Type]++
			s.Name = s.Type
			if count[s.Type] > 1 {
				s.Name = fmt.Sprintf("%s%d", s.Type, count[s.Type])
			}
		}
		b, ok := sourceTypes[s.Type]
		if !ok {
			return nil, fmt.Errorf("data: source %q: unknown type %q", s.Name, s.Type)
		}
		src, err := b(env, s, abs)
		if err != nil {
			return nil, err
		}
		srcs = append(srcs, src)
		weights = append(weights, s.Weight)
	}
	return NewMixture(env, srcs, weights)
}
