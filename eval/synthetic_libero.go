package eval

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/magma-go/magma/data"
	"github.com/magma-go/magma/data/liberotest"
)

// LiberoSyntheticOptions size a synthetic LIBERO suite
// (`magma eval synthetic --benchmark libero`).
type LiberoSyntheticOptions struct {
	// Format is data.LiberoFormatHDF5 (default: one <task>_demo.hdf5 per
	// task, LIBERO's layout) or data.LiberoFormatRLDS (OpenVLA's modified
	// release: DIR/1.0.0/ with dataset_info.json, features.json and
	// TFRecord shards).
	Format string
	// Tasks, Demos per task, Steps per demo (before the no-op filter) and
	// the square image side; defaults 4, 12, 20, 128 (LIBERO's frames).
	Tasks, Demos, Steps, Size int
	// Noops inserts two no-op steps per demo (the HDF5 layout keeps them,
	// as LIBERO's raw files; the RLDS layout drops them, as the "no_noops"
	// release).
	Noops bool
	// Shards of the RLDS layout (default 2, at most one per demo).
	Shards int
}

// liberoSynthInstructions name the synthetic tasks (LIBERO-style).
var liberoSynthInstructions = []string{
	"pick up the black bowl and place it on the plate", "open the top drawer of the cabinet",
	"put the bowl on the stove", "push the plate to the front of the stove",
	"put the cream cheese in the bowl", "turn on the stove", "put the wine bottle on top of the cabinet",
	"pick up the alphabet soup and place it in the basket",
}

// SyntheticLiberoTasks are the tasks WriteSyntheticLibero writes.
func SyntheticLiberoTasks(opt LiberoSyntheticOptions) []liberotest.Task {
	var tasks []liberotest.Task
	for i := 0; i < opt.Tasks; i++ {
		ins := liberoSynthInstructions[i%len(liberoSynthInstructions)]
		if i >= len(liberoSynthInstructions) {
			ins = fmt.Sprintf("%s %d", ins, i/len(liberoSynthInstructions)+1)
		}
		tasks = append(tasks, liberotest.Task{Name: strings.ReplaceAll(ins, " ", "_"), Instruction: ins,
			Demos: opt.Demos, Steps: opt.Steps, Size: opt.Size, Noops: opt.Noops})
	}
	return tasks
}

// WriteSyntheticLibero writes a synthetic LIBERO suite into dir (created),
// the folder `magma finetune libero --data` and `magma eval libero --data`
// take: each step a frame whose colour and bright square follow the step,
// smooth 7-D actions with the gripper closing halfway (package
// liberotest). It returns the tasks written.
func WriteSyntheticLibero(dir string, opt LiberoSyntheticOptions) ([]liberotest.Task, error) {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&opt.Tasks, 4)
	def(&opt.Demos, 12)
	def(&opt.Steps, 20)
	def(&opt.Size, 128)
	def(&opt.Shards, 2)
	for name, v := range map[string]int{"tasks": opt.Tasks, "demos": opt.Demos, "steps": opt.Steps, "size": opt.Size, "shards": opt.Shards} {
		if v < 0 {
			return nil, fmt.Errorf("synthetic libero: %s %d must be positive", name, v)
		}
	}
	if opt.Noops && opt.Steps < 4 {
		return nil, fmt.Errorf("synthetic libero: steps %d: with no-ops a demo needs at least 4 steps", opt.Steps)
	}
	if opt.Size < 4 {
		return nil, fmt.Errorf("synthetic libero: size %d: images need at least 4x4 pixels", opt.Size)
	}
	tasks := SyntheticLiberoTasks(opt)
	switch opt.Format {
	case "", data.LiberoFormatHDF5:
		if m, _ := filepath.Glob(filepath.Join(dir, "*_demo.hdf5")); len(m) > 0 {
			return nil, fmt.Errorf("synthetic libero: %s already holds *_demo.hdf5 files; pick an empty --out", dir)
		}
		_, err := liberotest.WriteSuite(dir, tasks)
		return tasks, err
	case data.LiberoFormatRLDS:
		if _, err := os.Stat(filepath.Join(dir, liberotest.RLDSVersion)); err == nil {
			return nil, fmt.Errorf("synthetic libero: %s already exists; pick an empty --out", filepath.Join(dir, liberotest.RLDSVersion))
		}
		return tasks, liberotest.WriteRLDS(dir, tasks, opt.Shards)
	}
	return nil, fmt.Errorf("synthetic libero: format %q (want %s or %s)", opt.Format, data.LiberoFormatHDF5, data.LiberoFormatRLDS)
}
