package liberotest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/jpeg"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/magma-go/magma/data/rlds"
)

// RLDSVersion is the version folder of OpenVLA's modified LIBERO release.
const RLDSVersion = "1.0.0"

// WriteRLDS writes the tasks in the layout of OpenVLA's modified LIBERO
// release (openvla/modified_libero_rlds, converter
// moojink/rlds_dataset_builder LIBERO_*): dir is the dataset folder (its
// name, e.g. libero_spatial_no_noops, is the dataset name) and gets
// RLDSVersion/ with dataset_info.json, features.json and
// <builder>-train.tfrecord-0000i-of-0000n, builder = the folder name
// without _no_noops. Every demo of WriteSuite is one episode with the same
// content as its HDF5 demo after OpenVLA's no-op filter: the actions,
// state = ee_states ‖ gripper_states, joint_state, the upright frames as
// JPEG (the converter rotates the HDF5 frames by 180°), instruction and
// source file path. Episodes are in task then demo order, split over
// shards as evenly as possible.
func WriteRLDS(dir string, tasks []Task, shards int) error {
	if shards <= 0 {
		shards = 1
	}
	type episode struct {
		ex   rlds.Example
		keys []string
	}
	builder := strings.TrimSuffix(filepath.Base(filepath.Clean(dir)), "_no_noops")
	var eps []episode
	size := 0
	for ti, t := range tasks {
		if size == 0 {
			size = t.Size
		} else if t.Size != size {
			return fmt.Errorf("liberotest: task %s: image size %d, earlier tasks %d (features.json has one shape)", t.Name, t.Size, size)
		}
		for d := 0; d < t.Demos; d++ {
			ex, err := rldsEpisode(ti, d, t, builder)
			if err != nil {
				return err
			}
			if ex == nil {
				continue
			}
			keys := make([]string, 0, len(ex))
			for k := range ex {
				keys = append(keys, k)
			}
			sort.Strings(keys) // TFDS's example serializer order
			eps = append(eps, episode{ex, keys})
		}
	}
	if len(eps) == 0 {
		return fmt.Errorf("liberotest: no episodes to write")
	}
	if shards > len(eps) {
		shards = len(eps)
	}
	vdir := filepath.Join(dir, RLDSVersion)
	if err := os.MkdirAll(vdir, 0o755); err != nil {
		return err
	}
	var lengths []string
	var total int
	for s := 0; s < shards; s++ {
		lo, hi := s*len(eps)/shards, (s+1)*len(eps)/shards
		var buf bytes.Buffer
		w := rlds.NewWriter(&buf)
		for _, e := range eps[lo:hi] {
			if err := w.Write(rlds.EncodeExample(e.keys, e.ex)); err != nil {
				return err
			}
		}
		name := fmt.Sprintf("%s-train.tfrecord-%05d-of-%05d", builder, s, shards)
		if err := os.WriteFile(filepath.Join(vdir, name), buf.Bytes(), 0o644); err != nil {
			return err
		}
		lengths = append(lengths, fmt.Sprint(hi-lo))
		total += buf.Len()
	}
	info := map[string]any{
		"citation": "", "description": "synthetic LIBERO demos in the layout of OpenVLA's modified LIBERO RLDS release",
		"fileFormat": "tfrecord", "moduleName": builder + "." + builder + "_dataset_builder", "name": builder,
		"releaseNotes": map[string]string{RLDSVersion: "synthetic"},
		"splits": []map[string]any{{"filepathTemplate": "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}", "name": "train",
			"numBytes": fmt.Sprint(total), "shardLengths": lengths}},
		"version": RLDSVersion,
	}
	if err := writeJSON(filepath.Join(vdir, "dataset_info.json"), info); err != nil {
		return err
	}
	return writeJSON(filepath.Join(vdir, "features.json"), liberoFeatures(size))
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "    ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// isNoop is OpenVLA's no-op test (regenerate_libero_dataset.py is_noop),
// against the previous kept action.
func isNoop(a [7]float64, prev *[7]float64) bool {
	var s float64
	for _, v := range a[:6] {
		s += v * v
	}
	if math.Sqrt(s) >= 1e-4 {
		return false
	}
	return prev == nil || a[6] == prev[6]
}

// builderInstruction is how the converter names the task: the words after
// the last one containing "SCENE", joined by spaces.
func builderInstruction(name string) string {
	words := strings.Split(name, "_")
	start := 0
	for i, w := range words {
		if strings.Contains(w, "SCENE") {
			start = i + 1
		}
	}
	return strings.Join(words[start:], " ")
}

// rldsEpisode builds demo d of task ti as one episode (nil when every step
// is a no-op).
func rldsEpisode(ti, d int, t Task, suite string) (rlds.Example, error) {
	n, s := t.Steps, t.Size
	var act, state, joints, disc, rew []float32
	var first, last []int64
	var imgs, wrist [][]byte
	black, err := encodeJPEG(make([]uint8, s*s*3), s)
	if err != nil {
		return nil, err
	}
	var prev *[7]float64
	for k := 0; k < n; k++ {
		a := ActionAt(ti, d, k, n, t.Noops)
		if isNoop(a, prev) {
			continue
		}
		prev = &a
		for _, v := range a {
			act = append(act, float32(v))
		}
		for j := 0; j < 6; j++ {
			state = append(state, float32(0.1*float64(j)+0.01*float64(k)))
		}
		state = append(state, float32(0.04-0.001*float64(k)), float32(-0.04+0.001*float64(k)))
		for j := 0; j < 7; j++ {
			joints = append(joints, float32(0.2*float64(j-3)))
		}
		img, err := encodeJPEG(FrameAt(ti, d, k, n, s), s)
		if err != nil {
			return nil, err
		}
		imgs = append(imgs, img)
		wrist = append(wrist, black)
		disc = append(disc, 1)
		rew = append(rew, 0)
		first = append(first, 0)
		last = append(last, 0)
	}
	T := len(imgs)
	if T == 0 {
		return nil, nil
	}
	rew[T-1], first[0], last[T-1] = 1, 1, 1
	instr := t.Instruction
	if instr == "" {
		instr = builderInstruction(t.Name)
	}
	lang := make([][]byte, T)
	for i := range lang {
		lang[i] = []byte(instr)
	}
	f := func(v []float32) *rlds.Feature { return &rlds.Feature{Kind: rlds.KindFloat, Floats: v} }
	i := func(v []int64) *rlds.Feature { return &rlds.Feature{Kind: rlds.KindInt64, Ints: v} }
	b := func(v [][]byte) *rlds.Feature { return &rlds.Feature{Kind: rlds.KindBytes, Bytes: v} }
	return rlds.Example{
		"steps/observation/image":       b(imgs),
		"steps/observation/wrist_image": b(wrist),
		"steps/observation/state":       f(state),
		"steps/observation/joint_state": f(joints),
		"steps/action":                  f(act),
		"steps/discount":                f(disc),
		"steps/reward":                  f(rew),
		"steps/is_first":                i(first),
		"steps/is_last":                 i(last),
		"steps/is_terminal":             i(append([]int64(nil), last...)),
		"steps/language_instruction":    b(lang),
		"episode_metadata/file_path":    b([][]byte{[]byte(fmt.Sprintf("./LIBERO/libero/datasets/%s_no_noops/%s_demo.hdf5", suite, t.Name))}),
	}, nil
}

func encodeJPEG(pix []uint8, size int) ([]byte, error) {
	img := image.NewRGBA(image.Rect(0, 0, size, size))
	for p := 0; p < size*size; p++ {
		copy(img.Pix[p*4:p*4+3], pix[p*3:p*3+3])
		img.Pix[p*4+3] = 255
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 95}); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// liberoFeatures is the converter's features.json (LIBEROSpatial._info) with
// size x size images.
func liberoFeatures(size int) map[string]any {
	dims := func(d ...int) map[string]any {
		var s []string
		for _, v := range d {
			s = append(s, fmt.Sprint(v))
		}
		if len(s) == 0 {
			return map[string]any{}
		}
		return map[string]any{"dimensions": s}
	}
	tensor := func(dtype string, d ...int) map[string]any {
		return map[string]any{"pythonClassName": "tensorflow_datasets.core.features.tensor_feature.Tensor",
			"tensor": map[string]any{"shape": dims(d...), "dtype": dtype, "encoding": "none"}}
	}
	scalar := func(dtype string) map[string]any {
		return map[string]any{"pythonClassName": "tensorflow_datasets.core.features.scalar.Scalar",
			"tensor": map[string]any{"shape": dims(), "dtype": dtype, "encoding": "none"}}
	}
	img := func() map[string]any {
		return map[string]any{"pythonClassName": "tensorflow_datasets.core.features.image_feature.Image",
			"image": map[string]any{"shape": dims(size, size, 3), "dtype": "uint8", "encodingFormat": "jpeg"}}
	}
	text := func() map[string]any {
		return map[string]any{"pythonClassName": "tensorflow_datasets.core.features.text_feature.Text", "text": map[string]any{}}
	}
	dict := func(f map[string]any) map[string]any {
		return map[string]any{"pythonClassName": "tensorflow_datasets.core.features.features_dict.FeaturesDict",
			"featuresDict": map[string]any{"features": f}}
	}
	return dict(map[string]any{
		"steps": map[string]any{"pythonClassName": "tensorflow_datasets.core.features.dataset_feature.Dataset",
			"sequence": map[string]any{"length": "-1", "feature": dict(map[string]any{
				"observation": dict(map[string]any{"image": img(), "wrist_image": img(),
					"state": tensor("float32", 8), "joint_state": tensor("float32", 7)}),
				"action": tensor("float32", 7), "discount": scalar("float32"), "reward": scalar("float32"),
				"is_first": scalar("bool"), "is_last": scalar("bool"), "is_terminal": scalar("bool"),
				"language_instruction": text(),
			})}},
		"episode_metadata": dict(map[string]any{"file_path": text()}),
	})
}
