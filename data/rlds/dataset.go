package rlds

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Info is the part of dataset_info.json the reader uses.
type Info struct {
	Name       string      `json:"name"`
	Version    string      `json:"version"`
	FileFormat string      `json:"fileFormat"`
	Splits     []SplitInfo `json:"splits"`
}

// SplitInfo is one split of dataset_info.json (numbers are JSON strings).
type SplitInfo struct {
	Name             string   `json:"name"`
	NumBytes         string   `json:"numBytes"`
	ShardLengths     []string `json:"shardLengths"`
	FilepathTemplate string   `json:"filepathTemplate"`
}

// Episodes is the sum of shardLengths (-1 when absent or unparsable).
func (s SplitInfo) Episodes() int {
	if len(s.ShardLengths) == 0 {
		return -1
	}
	n := 0
	for _, l := range s.ShardLengths {
		v, err := strconv.Atoi(l)
		if err != nil {
			return -1
		}
		n += v
	}
	return n
}

// FeatureSpec is one leaf of features.json, under its flattened key.
type FeatureSpec struct {
	Key string `json:"key"`
	// Class is the TFDS feature class: Tensor, Scalar, Image, Text, ...
	Class    string `json:"class"`
	DType    string `json:"dtype,omitempty"`
	Shape    []int  `json:"shape"`
	Encoding string `json:"encoding,omitempty"`
	// Step is set for fields under the steps sequence (one value block per step).
	Step bool `json:"step"`
}

// Dataset is an RLDS dataset directory (one version).
type Dataset struct {
	// Dir is the version directory holding dataset_info.json.
	Dir string
	// Name is the dataset's directory name (OpenVLA's dataset name, used
	// to find its Config), e.g. "libero_spatial_no_noops".
	Name     string
	Info     Info
	Features []FeatureSpec
}

// Open reads a dataset from its version directory (holding
// dataset_info.json) or from the dataset directory above it (the highest
// version present is used).
func Open(dir string) (*Dataset, error) {
	vdir := dir
	if _, err := os.Stat(filepath.Join(dir, "dataset_info.json")); err != nil {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("rlds: %w", err)
		}
		var vs []string
		for _, e := range ents {
			if _, err := os.Stat(filepath.Join(dir, e.Name(), "dataset_info.json")); e.IsDir() && err == nil {
				vs = append(vs, e.Name())
			}
		}
		if len(vs) == 0 {
			return nil, fmt.Errorf("rlds: %s: no dataset_info.json here or in a version folder below", dir)
		}
		sort.Slice(vs, func(a, b int) bool { return versionLess(vs[a], vs[b]) })
		vdir = filepath.Join(dir, vs[len(vs)-1])
	}
	d := &Dataset{Dir: vdir, Name: filepath.Base(filepath.Dir(vdir))}
	b, err := os.ReadFile(filepath.Join(vdir, "dataset_info.json"))
	if err != nil {
		return nil, fmt.Errorf("rlds: %w", err)
	}
	if err := json.Unmarshal(b, &d.Info); err != nil {
		return nil, fmt.Errorf("rlds: %s: %w", filepath.Join(vdir, "dataset_info.json"), err)
	}
	if d.Info.Name == "" {
		return nil, fmt.Errorf("rlds: %s: no \"name\"", filepath.Join(vdir, "dataset_info.json"))
	}
	if d.Info.FileFormat != "" && d.Info.FileFormat != "tfrecord" {
		return nil, fmt.Errorf("rlds: %s: fileFormat %q (only tfrecord is supported)", vdir, d.Info.FileFormat)
	}
	if b, err := os.ReadFile(filepath.Join(vdir, "features.json")); err == nil {
		if d.Features, err = ParseFeatures(b); err != nil {
			return nil, fmt.Errorf("rlds: %s: %w", filepath.Join(vdir, "features.json"), err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("rlds: %w", err)
	}
	return d, nil
}

func versionLess(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) && i < len(pb); i++ {
		x, e1 := strconv.Atoi(pa[i])
		y, e2 := strconv.Atoi(pb[i])
		if e1 != nil || e2 != nil {
			return a < b
		}
		if x != y {
			return x < y
		}
	}
	return len(pa) < len(pb)
}

// Feature returns the spec of a flattened key.
func (d *Dataset) Feature(key string) (FeatureSpec, bool) {
	for _, f := range d.Features {
		if f.Key == key {
			return f, true
		}
	}
	return FeatureSpec{}, false
}

// Split returns the split's entry of dataset_info.json.
func (d *Dataset) Split(name string) (SplitInfo, bool) {
	for _, s := range d.Info.Splits {
		if s.Name == name {
			return s, true
		}
	}
	return SplitInfo{}, false
}

// Shards lists the split's TFRecord files (sorted), following the
// filepathTemplate of dataset_info.json (TFDS's default
// "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}" when absent).
func (d *Dataset) Shards(split string) ([]string, error) {
	tmpl := "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}"
	if s, ok := d.Split(split); ok && s.FilepathTemplate != "" {
		tmpl = s.FilepathTemplate
	}
	r := strings.NewReplacer("{DATASET}", d.Info.Name, "{SPLIT}", split, "{FILEFORMAT}", "tfrecord", "{SHARD_X_OF_Y}", "*", "{SHARD_INDEX}", "*", "{NUM_SHARDS}", "*")
	pat := r.Replace(tmpl)
	m, err := filepath.Glob(filepath.Join(d.Dir, pat))
	if err != nil {
		return nil, fmt.Errorf("rlds: %w", err)
	}
	if len(m) == 0 {
		// unsharded single file
		if _, err := os.Stat(filepath.Join(d.Dir, strings.TrimSuffix(pat, "-*"))); err == nil {
			m = []string{filepath.Join(d.Dir, strings.TrimSuffix(pat, "-*"))}
		}
	}
	if len(m) == 0 {
		var have []string
		for _, s := range d.Info.Splits {
			have = append(have, s.Name)
		}
		return nil, fmt.Errorf("rlds: %s: no shards matching %s (splits in dataset_info.json: %s)", d.Dir, pat, strings.Join(have, ", "))
	}
	sort.Strings(m)
	return m, nil
}

// ParseFeatures flattens a TFDS features.json into its leaves, keys joined
// with "/" as TFDS's example serializer does.
func ParseFeatures(b []byte) ([]FeatureSpec, error) {
	var root map[string]any
	if err := json.Unmarshal(b, &root); err != nil {
		return nil, err
	}
	var out []FeatureSpec
	if err := walkFeature("", root, false, &out); err != nil {
		return nil, err
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Key < out[b].Key })
	return out, nil
}

func walkFeature(key string, node map[string]any, step bool, out *[]FeatureSpec) error {
	class, _ := node["pythonClassName"].(string)
	short := class[strings.LastIndex(class, ".")+1:]
	if fd, ok := node["featuresDict"].(map[string]any); ok {
		feats, _ := fd["features"].(map[string]any)
		for k, v := range feats {
			child, ok := v.(map[string]any)
			if !ok {
				return fmt.Errorf("feature %q: not an object", join(key, k))
			}
			if err := walkFeature(join(key, k), child, step, out); err != nil {
				return err
			}
		}
		return nil
	}
	if seq, ok := node["sequence"].(map[string]any); ok {
		f, ok := seq["feature"].(map[string]any)
		if !ok {
			return fmt.Errorf("feature %q: sequence without feature", key)
		}
		if step {
			return fmt.Errorf("feature %q: nested sequences (ragged features) are not supported", key)
		}
		return walkFeature(key, f, true, out)
	}
	spec := FeatureSpec{Key: key, Class: short, Step: step}
	for _, leaf := range []string{"tensor", "image", "text"} {
		v, ok := node[leaf].(map[string]any)
		if !ok {
			continue
		}
		if dt, ok := v["dtype"].(string); ok {
			spec.DType = dt
		}
		if e, ok := v["encoding"].(string); ok {
			spec.Encoding = e
		}
		if e, ok := v["encodingFormat"].(string); ok {
			spec.Encoding = e
		}
		if sh, ok := v["shape"].(map[string]any); ok {
			if dims, ok := sh["dimensions"].([]any); ok {
				for _, d := range dims {
					s, _ := d.(string)
					n, err := strconv.Atoi(s)
					if err != nil {
						return fmt.Errorf("feature %q: bad dimension %v", key, d)
					}
					spec.Shape = append(spec.Shape, n)
				}
			}
		}
		if leaf == "text" {
			spec.DType = "string"
		}
	}
	if spec.Shape == nil {
		spec.Shape = []int{}
	}
	*out = append(*out, spec)
	return nil
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "/" + b
}
