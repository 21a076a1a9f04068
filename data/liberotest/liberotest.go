// Package liberotest writes small LIBERO demo data for tests and demos
// (`magma eval synthetic --benchmark libero`): the real layouts with
// synthetic, deterministic content, either LIBERO's HDF5 demo files
// (robomimic groups, h5py dtypes and attributes, upside-down camera frames;
// WriteSuite) or OpenVLA's modified LIBERO RLDS release (TFRecord episodes,
// upright JPEG frames; WriteRLDS).
package liberotest

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/magma-go/magma/data/hdf5"
)

// Task describes one *_demo.hdf5 file.
type Task struct {
	Name        string // file name stem; the file is Name + "_demo.hdf5"
	Instruction string // written in problem_info; "" writes no problem_info
	Demos       int
	Steps       int // per demo
	Size        int // image side (128 in the original sets)
	// Noops inserts zero arm actions with an unchanged gripper at steps 0
	// and Steps/2 (what OpenVLA's no-op filter removes).
	Noops bool
}

// ActionAt is the file action of step k of demo d of task ti: arm
// components that vary smoothly with the step (and a little per demo), the
// gripper open (-1) for the first half and closed (+1) after.
func ActionAt(ti, d, k, steps int, noops bool) [7]float64 {
	var a [7]float64
	g := -1.0
	if k >= steps/2 {
		g = 1
	}
	if noops && (k == 0 || k == steps/2+1) {
		a[6] = g
		return a
	}
	for j := 0; j < 6; j++ {
		a[j] = 0.5*math.Sin(0.9*float64(k)+1.3*float64(ti)+0.7*float64(j)) + 0.01*float64(d)
	}
	a[6] = g
	return a
}

// palette gives every step a distinct background colour, so that a tiny
// randomly initialised vision tower can tell the steps apart quickly.
var palette = [][3]uint8{{200, 40, 40}, {40, 200, 40}, {40, 40, 200}, {200, 200, 40}, {200, 40, 200}, {40, 200, 200}, {120, 120, 120}, {230, 140, 20}, {20, 140, 230}, {140, 20, 230}}

// FrameAt is the upright RGB frame of step k: a background colour that
// follows the step (shifted by the task and demo), a bright square whose
// position follows the step, and a pure red marker pixel in the top-left
// corner (so a test can tell upright from rotated).
func FrameAt(ti, d, k, steps, size int) []uint8 {
	p := make([]uint8, size*size*3)
	c := palette[(k+3*ti)%len(palette)]
	for i := 0; i < size*size; i++ {
		p[i*3] = c[0]
		p[i*3+1] = c[1] + uint8(3*d)
		p[i*3+2] = c[2]
	}
	sq := size / 4
	if sq < 1 {
		sq = 1
	}
	span := size - sq
	x0 := 0
	if steps > 1 {
		x0 = span * k / (steps - 1)
	}
	y0 := span / 2
	if k >= steps/2 {
		y0 = span
	}
	for y := y0; y < y0+sq && y < size; y++ {
		for x := x0; x < x0+sq && x < size; x++ {
			o := (y*size + x) * 3
			p[o], p[o+1], p[o+2] = 250, 250, 250
		}
	}
	p[0], p[1], p[2] = 255, 0, 0
	return p
}

// rotate180 returns p rotated by 180 degrees (how LIBERO stores frames).
func rotate180(p []uint8) []uint8 {
	n := len(p) / 3
	out := make([]uint8, len(p))
	for i := 0; i < n; i++ {
		copy(out[(n-1-i)*3:(n-i)*3], p[i*3:i*3+3])
	}
	return out
}

// Hook may alter a file after it is written (bad-input tests).
type Hook func(f *hdf5.File) error

// WriteTask writes one demo file at path for task index ti.
func WriteTask(path string, ti int, t Task, hook Hook) error {
	f, err := hdf5.Create(path)
	if err != nil {
		return err
	}
	if err := writeTask(f, ti, t); err != nil {
		f.Close()
		return err
	}
	if hook != nil {
		if err := hook(f); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

func writeTask(f *hdf5.File, ti int, t Task) error {
	if err := f.CreateGroup("/data"); err != nil {
		return err
	}
	if t.Instruction != "" {
		pi, _ := json.Marshal(map[string]any{"problem_name": "libero_tabletop_manipulation", "language_instruction": t.Instruction})
		if err := f.SetAttrString("/data", "problem_info", string(pi)); err != nil {
			return err
		}
	}
	envArgs, _ := json.Marshal(map[string]any{"type": 1, "env_name": "Libero_Tabletop_Manipulation", "env_kwargs": map[string]any{"camera_heights": t.Size, "camera_widths": t.Size}})
	for _, kv := range [][2]string{{"env_args", string(envArgs)}, {"bddl_file_name", "chiliocosm/bddl_files/libero_test/" + t.Name + ".bddl"}, {"macros_image_convention", "opengl"}} {
		if err := f.SetAttrString("/data", kv[0], kv[1]); err != nil {
			return err
		}
	}
	if err := f.SetAttrInt64("/data", "num_demos", int64(t.Demos)); err != nil {
		return err
	}
	if err := f.SetAttrInt64("/data", "total", int64(t.Demos*t.Steps)); err != nil {
		return err
	}
	n, s := t.Steps, t.Size
	for d := 0; d < t.Demos; d++ {
		g := fmt.Sprintf("/data/demo_%d", d)
		acts := make([]float64, 0, n*7)
		img := make([]uint8, 0, n*s*s*3)
		wrist := make([]uint8, n*s*s*3)
		ee := make([]float64, n*6)
		gr := make([]float64, n*2)
		joints := make([]float64, n*7)
		states := make([]float64, n*9)
		robot := make([]float64, n*9)
		rewards := make([]uint8, n)
		dones := make([]uint8, n)
		for k := 0; k < n; k++ {
			a := ActionAt(ti, d, k, n, t.Noops)
			acts = append(acts, a[:]...)
			img = append(img, rotate180(FrameAt(ti, d, k, n, s))...)
			for j := 0; j < 6; j++ {
				ee[k*6+j] = 0.1*float64(j) + 0.01*float64(k)
			}
			gr[k*2], gr[k*2+1] = 0.04-0.001*float64(k), -0.04+0.001*float64(k)
			for j := 0; j < 7; j++ {
				joints[k*7+j] = 0.2 * float64(j-3)
			}
		}
		rewards[n-1], dones[n-1] = 1, 1
		for _, w := range []struct {
			p     string
			shape []int
			v     any
		}{
			{"/actions", []int{n, 7}, acts},
			{"/obs/agentview_rgb", []int{n, s, s, 3}, img},
			{"/obs/eye_in_hand_rgb", []int{n, s, s, 3}, wrist},
			{"/obs/ee_states", []int{n, 6}, ee},
			{"/obs/ee_pos", []int{n, 3}, make([]float64, n*3)},
			{"/obs/ee_ori", []int{n, 3}, make([]float64, n*3)},
			{"/obs/gripper_states", []int{n, 2}, gr},
			{"/obs/joint_states", []int{n, 7}, joints},
			{"/states", []int{n, 9}, states},
			{"/robot_states", []int{n, 9}, robot},
			{"/rewards", []int{n}, rewards},
			{"/dones", []int{n}, dones},
		} {
			if err := f.Write(g+w.p, w.shape, w.v); err != nil {
				return err
			}
		}
		if err := f.SetAttrInt64(g, "num_samples", int64(n)); err != nil {
			return err
		}
	}
	return nil
}

// WriteSuite writes every task into dir (created) and returns the paths.
func WriteSuite(dir string, tasks []Task) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var paths []string
	for i, t := range tasks {
		p := filepath.Join(dir, t.Name+"_demo.hdf5")
		if err := WriteTask(p, i, t, nil); err != nil {
			return nil, err
		}
		paths = append(paths, p)
	}
	return paths, nil
}
