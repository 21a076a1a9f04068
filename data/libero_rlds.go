package data

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/magma-go/magma/data/rlds"
	"github.com/magma-go/magma/vision/imaging"
)

// LIBERO in OpenVLA's modified RLDS release (openvla/modified_libero_rlds:
// libero_{spatial,object,goal,10}_no_noops/1.0.0/, builder libero_<suite>),
// read by OpenLibero next to the HDF5 suite folders. One record is one demo:
//
//	steps/action                  (T,7) float32, the file's action: Δpos(3), Δaxis-angle(3), gripper (-1 open, +1 close)
//	steps/observation/image       agent-view JPEG, already rotated 180° (upright) by the converter
//	steps/observation/wrist_image eye-in-hand JPEG, upright
//	steps/observation/state       (T,8) ee_states(6) ‖ gripper_states(2)
//	steps/language_instruction    the task's instruction (from the HDF5 file name)
//	episode_metadata/file_path    the source <task>_demo.hdf5 → the task name
//
// The actions and states are those of the HDF5 demos (after OpenVLA's no-op
// filter, which OpenLibero's is idempotent with), so both layouts give the
// same tasks, actions, policy-space statistics and upright frames.

// The LIBERO formats OpenLibero reads (Libero.Format).
const (
	LiberoFormatHDF5 = "hdf5"
	LiberoFormatRLDS = "rlds"
)

const (
	liberoRLDSAction = "steps/action"
	liberoRLDSState  = "steps/observation/state"
	liberoRLDSLang   = "steps/language_instruction"
	liberoRLDSFile   = "episode_metadata/file_path"
)

// LiberoRLDSCamera maps a --camera name to the RLDS observation key: the
// HDF5 names agentview_rgb and eye_in_hand_rgb become the release's image
// and wrist_image; other names are taken as observation keys.
func LiberoRLDSCamera(camera string) string {
	switch camera {
	case "", "agentview_rgb":
		return "steps/observation/image"
	case "eye_in_hand_rgb":
		return "steps/observation/wrist_image"
	}
	return "steps/observation/" + camera
}

// liberoRLDS is the open RLDS dataset behind a Libero.
type liberoRLDS struct {
	ds       *rlds.Dataset
	imageKey string
	files    *fileCache
}

// rldsLoc locates a demo's record.
type rldsLoc struct {
	shard  string
	record int
	offset int64
}

// IsLiberoRLDS reports whether dir is an RLDS dataset (dataset_info.json in
// it or in a version folder below).
func IsLiberoRLDS(dir string) bool {
	_, err := rlds.Open(dir)
	return err == nil
}

// readLiberoRLDS indexes every episode of the train split: actions, states
// and instructions (no images), grouped into tasks by source file name.
// A record that cannot be read or lacks a field is an error naming the
// shard and record.
func readLiberoRLDS(dir string, opt *LiberoOptions) ([]*LiberoTask, *liberoRLDS, error) {
	ds, err := rlds.Open(dir)
	if err != nil {
		return nil, nil, err
	}
	if opt.Suite == "" {
		opt.Suite = ds.Name
	}
	imageKey := LiberoRLDSCamera(opt.Camera)
	if len(ds.Features) > 0 {
		if _, ok := ds.Feature(imageKey); !ok {
			return nil, nil, fmt.Errorf("%s/features.json has no %s (--camera %s)", ds.Dir, imageKey, opt.Camera)
		}
		if f, ok := ds.Feature(liberoRLDSAction); !ok || !f.Step {
			return nil, nil, fmt.Errorf("%s/features.json has no step feature %s: not a LIBERO RLDS dataset", ds.Dir, liberoRLDSAction)
		}
	}
	h, w := 0, 0
	if f, ok := ds.Feature(imageKey); ok && len(f.Shape) == 3 {
		h, w = f.Shape[0], f.Shape[1]
	}
	shards, err := ds.Shards("train")
	if err != nil {
		return nil, nil, err
	}
	byName := map[string]*LiberoTask{}
	keys := rlds.Keys(liberoRLDSAction, liberoRLDSState, liberoRLDSLang, liberoRLDSFile)
	for _, sh := range shards {
		err := rlds.ScanShard(sh, keys, func(ep *rlds.Episode, err error) error {
			if err != nil {
				return err
			}
			where := fmt.Sprintf("%s record %d", sh, ep.Index)
			acts, err := ep.Floats(liberoRLDSAction, LiberoActionDim)
			if err != nil {
				return fmt.Errorf("%s: %w", where, err)
			}
			lang, err := ep.Strings(liberoRLDSLang)
			if err != nil {
				return fmt.Errorf("%s: %w", where, err)
			}
			instr := strings.TrimSpace(lang[0])
			for t, s := range lang {
				if strings.TrimSpace(s) != instr {
					return fmt.Errorf("%s: step %d instruction %q differs from step 0's %q", where, t, s, lang[0])
				}
			}
			var state [][]float64
			if _, ok := ep.Ex[liberoRLDSState]; ok {
				if state, err = ep.Floats(liberoRLDSState, 8); err != nil {
					return fmt.Errorf("%s: %w", where, err)
				}
			}
			name := ""
			if _, ok := ep.Ex[liberoRLDSFile]; ok {
				fp, err := ep.Strings(liberoRLDSFile)
				if err != nil {
					return fmt.Errorf("%s: %w", where, err)
				}
				name = strings.TrimSuffix(strings.TrimSuffix(filepath.Base(fp[0]), ".hdf5"), "_demo")
			}
			if name == "" || name == "." {
				if instr == "" {
					return fmt.Errorf("%s: no language_instruction and no episode_metadata/file_path to name its task", where)
				}
				name = strings.ReplaceAll(instr, " ", "_")
			}
			if instr == "" {
				instr = InstructionFromFileName(name)
			}
			t := byName[name]
			if t == nil {
				t = &LiberoTask{Name: name, File: ds.Dir, Instruction: instr, H: h, W: w}
				byName[name] = t
			} else if t.Instruction != instr {
				return fmt.Errorf("%s: task %s: instruction %q, earlier episodes %q", where, name, instr, t.Instruction)
			}
			d := &LiberoDemo{Key: fmt.Sprintf("%s#%d", filepath.Base(sh), ep.Index), Steps: ep.T,
				rec: &rldsLoc{shard: sh, record: ep.Index, offset: ep.Offset}}
			var prev *[LiberoActionDim]float64
			for i, row := range acts {
				var a [LiberoActionDim]float64
				copy(a[:], row)
				if opt.RemoveNoops && IsNoop(a, prev) {
					continue
				}
				d.Actions = append(d.Actions, a)
				d.Frames = append(d.Frames, i)
				if state != nil {
					d.Proprio = append(d.Proprio, append([]float64(nil), state[i]...))
				}
				prev = &d.Actions[len(d.Actions)-1]
			}
			t.Demos = append(t.Demos, d)
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
	}
	if len(byName) == 0 {
		return nil, nil, fmt.Errorf("%s: no episodes in the train split", ds.Dir)
	}
	tasks := make([]*LiberoTask, 0, len(byName))
	for _, t := range byName {
		tasks = append(tasks, t)
	}
	sort.Slice(tasks, func(i, j int) bool { return tasks[i].Name < tasks[j].Name })
	return tasks, &liberoRLDS{ds: ds, imageKey: imageKey, files: newFileCache(64)}, nil
}

// frame decodes the (already upright) camera image of file step t.
func (r *liberoRLDS) frame(d *LiberoDemo, t int) (imaging.Image, error) {
	loc := d.rec
	f, release, err := r.files.get(loc.shard)
	if err != nil {
		return imaging.Image{}, err
	}
	b, err := rlds.ReadRecordAt(f, loc.shard, loc.record, loc.offset)
	release()
	if err != nil {
		return imaging.Image{}, err
	}
	ep, err := rlds.DecodeEpisode(loc.shard, loc.record, loc.offset, b, rlds.Keys(r.imageKey))
	if err != nil {
		return imaging.Image{}, err
	}
	enc, err := ep.Image(r.imageKey, t)
	if err != nil {
		return imaging.Image{}, fmt.Errorf("%s record %d: %w", loc.shard, loc.record, err)
	}
	img, err := imaging.DecodeImageBytes(enc)
	if err != nil {
		return imaging.Image{}, fmt.Errorf("%s record %d step %d: %s: %w", loc.shard, loc.record, t, r.imageKey, err)
	}
	return img, nil
}

// Where names step k of demo d of task t for messages: the HDF5 file and
// demo group, or the RLDS shard and record, with the step in the file.
func (l *Libero) Where(t *LiberoTask, d *LiberoDemo, k int) string {
	step := -1
	if k >= 0 && k < len(d.Frames) {
		step = d.Frames[k]
	}
	if d.rec != nil {
		return fmt.Sprintf("%s record %d step %d", d.rec.shard, d.rec.record, step)
	}
	return fmt.Sprintf("%s:/data/%s step %d", t.File, d.Key, step)
}
