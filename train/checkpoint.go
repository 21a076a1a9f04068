package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/model"
	"github.com/magma-go/magma/model/ckpt"
)

// Checkpoint layout inside a run folder:
//
//	RUN/checkpoints/step-000050/   config.json, preprocessor_config.json,
//	                               model.safetensors (Hugging Face layout),
//	                               tokenizer files (when known),
//	                               optimizer.safetensors (AdamW moments),
//	                               trainer_state.json,
//	                               adapter_model.safetensors and
//	                               adapter_config.json (trainable: lora;
//	                               model.safetensors then holds the frozen
//	                               base, so the checkpoint stands alone),
//	                               manifest.json (size and CRC-32C of
//	                               every other file, written last)
//	RUN/checkpoints/latest         "step-000050\n"
//
// --resume verifies the newest checkpoint against its manifest and checks
// the loaded weights and moments for NaN and infinite values; a damaged or
// non-finite checkpoint is reported (file or tensor named) and the previous
// one is used, as for a truncated file. A checkpoint without manifest.json
// (written before checksums) resumes with a one-line note.
//
// A checkpoint is written into RUN/checkpoints/.tmp-step-000050, every file
// and the directory are fsynced, then the directory is renamed into place
// and the parent fsynced; `latest` is replaced the same way. A crash at any
// moment leaves either a .tmp-* directory (ignored and removed by the next
// run) or a complete checkpoint.
const (
	checkpointsDir = "checkpoints"
	latestFile     = "latest"
	stateFile      = "trainer_state.json"
	optimizerFile  = "optimizer.safetensors"
	stepPrefix     = "step-"
	tmpPrefix      = ".tmp-"
	stateFormat    = 1
)

// TrainerState is trainer_state.json.
type TrainerState struct {
	Format     int      `json:"format"`
	Step       int      `json:"step"` // optimizer updates done
	TotalSteps int      `json:"total_steps"`
	Seed       uint64   `json:"seed"`
	ConfigHash string   `json:"config_hash"`
	Schedule   Schedule `json:"schedule"`
	Optimizer  struct {
		Name         string  `json:"name"`
		Beta1        float64 `json:"beta1"`
		Beta2        float64 `json:"beta2"`
		Eps          float64 `json:"eps"`
		WeightDecay  float64 `json:"weight_decay"`
		Step         int     `json:"step"`
		MomentsDType string  `json:"moments_dtype"`
		File         string  `json:"file"`
		Params       int     `json:"params"`
	} `json:"optimizer"`
	Trainable string `json:"trainable"`
	// DataState is data.Stream.State() after the last batch of Step.
	DataState []byte `json:"data_state"`
	// RNG is the trainer's PCG state (math/rand/v2 MarshalBinary).
	RNG         []byte  `json:"rng"`
	TokensSeen  int64   `json:"tokens_seen"`
	SamplesSeen int64   `json:"samples_seen"`
	ElapsedS    float64 `json:"elapsed_s"`
	LastLoss    float64 `json:"last_loss"`
	Threads     int     `json:"gomaxprocs"`
	BLASThreads string  `json:"openblas_num_threads"`
}

func stepName(step int) string { return fmt.Sprintf("%s%06d", stepPrefix, step) }

// syncDir fsyncs a directory (so renames and creations in it are durable).
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return err
	}
	return nil
}

// syncFile flushes path to disk. It opens the file read-only: fsync needs no
// write access, and a linked base shard may be read-only.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// writeFileAtomic replaces path with data (temp file, fsync, rename, fsync dir).
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// checkpointWriter holds what a checkpoint needs besides the trainer state.
type checkpointWriter struct {
	root      string // RUN/checkpoints
	model     *model.Magma
	adapters  Adapters // nil unless trainable: lora
	pp        *model.PreprocessorConfig
	tokenizer string // directory to copy tokenizer files from ("" = none)
	keep      int
	// onCheckpoint is Hooks.OnCheckpoint (nil: none).
	onCheckpoint func(dir string) error
	// beforeRename, when set, is called with the finished temp directory
	// before it is renamed (tests simulate a crash there).
	beforeRename func(tmp string) error
	// removeOld deletes a checkpoint pruned by retention (os.RemoveAll;
	// tests make it fail).
	removeOld func(path string) error
	// warn reports a retention failure; training goes on.
	warn func(format string, a ...any)
}

// save writes a complete checkpoint for st.Step and applies retention.
func (w *checkpointWriter) save(st *TrainerState, opt *AdamW) (string, error) {
	if err := os.MkdirAll(w.root, 0o755); err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	name := stepName(st.Step)
	final := filepath.Join(w.root, name)
	tmp := filepath.Join(w.root, tmpPrefix+name)
	if err := os.RemoveAll(tmp); err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	fail := func(err error) (string, error) {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("checkpoint %s: %w", final, err)
	}
	// A NaN or infinite weight or moment (the update checks the loss and
	// gradient norm, so this is damage in memory) is never saved: the
	// checkpoints on disk stay the last good ones.
	if err := checkLoadedFinite("", w.model, w.adapters, opt); err != nil {
		var nf *ckpt.NonFiniteError
		if errors.As(err, &nf) {
			err = nf
		}
		return "", fmt.Errorf("checkpoint %s not written: %w in memory; the checkpoints already written are unaffected (resume from the newest)", final, err)
	}
	// A 16-bit base (trainable: lora on a bf16 checkpoint) is saved in its
	// own dtype: exact for its values, half the bytes.
	dtype := "F32"
	if w := w.model.LM.Decoder.EmbedTokens.Weight; w != nil && kernels.IsHalf(w.Dtype()) {
		dtype = kernels.DtypeName(w.Dtype())
	}
	// A frozen base used in place (LoRA on a mapped checkpoint) is linked
	// from its checkpoint rather than written again (model.SaveLinking).
	// The weights and moments are summed while written (linked base shards
	// take their recorded sums) for the manifest written last.
	sums := ckpt.NewSums()
	if _, err := w.model.SaveLinking(tmp, w.pp, ckpt.SaveOptions{DType: dtype, Sums: sums}); err != nil {
		return fail(err)
	}
	if w.adapters != nil {
		if err := w.adapters.Save(tmp); err != nil {
			return fail(err)
		}
	}
	if w.tokenizer != "" {
		if err := ckpt.CopyTokenizer(w.tokenizer, tmp); err != nil {
			return fail(err)
		}
	}
	if w.onCheckpoint != nil {
		if err := w.onCheckpoint(tmp); err != nil {
			return fail(err)
		}
	}
	var moments []ckpt.WriteItem
	for _, p := range opt.slots {
		if p.M == nil {
			p.M, p.V = make([]float32, len(p.Data)), make([]float32, len(p.Data))
		}
		moments = append(moments,
			ckpt.WriteItem{Name: "exp_avg." + p.Name, Shape: []int{len(p.M)}, Data: p.M},
			ckpt.WriteItem{Name: "exp_avg_sq." + p.Name, Shape: []int{len(p.V)}, Data: p.V})
	}
	if err := ckpt.WriteSafetensors(filepath.Join(tmp, optimizerFile), moments, ckpt.WriteOptions{DType: "F32", Sums: sums}); err != nil {
		return fail(err)
	}
	js, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fail(err)
	}
	if err := os.WriteFile(filepath.Join(tmp, stateFile), append(js, '\n'), 0o644); err != nil {
		return fail(err)
	}
	if _, err := ckpt.WriteManifest(tmp, sums); err != nil {
		return fail(err)
	}
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return fail(err)
	}
	for _, e := range entries {
		if err := syncFile(filepath.Join(tmp, e.Name())); err != nil {
			return fail(err)
		}
	}
	if err := syncDir(tmp); err != nil {
		return fail(err)
	}
	if w.beforeRename != nil {
		if err := w.beforeRename(tmp); err != nil {
			return "", err
		}
	}
	if err := os.RemoveAll(final); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return fail(err)
	}
	if err := syncDir(w.root); err != nil {
		return fail(err)
	}
	if err := writeFileAtomic(filepath.Join(w.root, latestFile), []byte(name+"\n")); err != nil {
		return fail(err)
	}
	if err := w.prune(st.Step); err != nil {
		// Losing disk space is better than losing the run: say so, go on.
		if w.warn != nil {
			w.warn("warning: %v (training continues; remove old checkpoints by hand)\n", err)
		}
	}
	return final, nil
}

// prune keeps the newest w.keep checkpoints (never the one just written).
func (w *checkpointWriter) prune(current int) error {
	if w.keep <= 0 {
		return nil
	}
	steps, err := listSteps(w.root)
	if err != nil {
		return err
	}
	for i := 0; i < len(steps)-w.keep; i++ {
		if steps[i] == current {
			continue
		}
		rm := w.removeOld
		if rm == nil {
			rm = os.RemoveAll
		}
		if err := rm(filepath.Join(w.root, stepName(steps[i]))); err != nil {
			return fmt.Errorf("checkpoint retention could not remove %s: %w", filepath.Join(w.root, stepName(steps[i])), err)
		}
	}
	return nil
}

// listSteps returns the steps of the step-* directories, ascending.
func listSteps(root string) ([]int, error) {
	entries, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var steps []int
	for _, e := range entries {
		s, ok := strings.CutPrefix(e.Name(), stepPrefix)
		if !ok || !e.IsDir() {
			continue
		}
		if n, err := strconv.Atoi(s); err == nil && n >= 0 {
			steps = append(steps, n)
		}
	}
	sort.Ints(steps)
	return steps, nil
}

// removeTemps deletes half-written checkpoints left by a crash.
func removeTemps(root string) error {
	tmps, _ := filepath.Glob(filepath.Join(root, tmpPrefix+"*"))
	tmps2, _ := filepath.Glob(filepath.Join(root, latestFile+".tmp"))
	for _, t := range append(tmps, tmps2...) {
		if err := os.RemoveAll(t); err != nil {
			return err
		}
	}
	return nil
}

// readState reads and checks a checkpoint directory's trainer state.
func readState(dir string) (*TrainerState, error) {
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return nil, err
	}
	var st TrainerState
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, stateFile), err)
	}
	if st.Format != stateFormat {
		return nil, fmt.Errorf("%s: unsupported format %d", filepath.Join(dir, stateFile), st.Format)
	}
	for _, f := range []string{optimizerFile, model.ConfigFileName} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return nil, err
		}
	}
	return &st, nil
}

// checkWritable makes sure checkpoints can be written under root before
// training starts (not at the first save, minutes or hours later).
func checkWritable(root string) error {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return fmt.Errorf("checkpoints folder %s cannot be created: %w", root, err)
	}
	f, err := os.CreateTemp(root, tmpPrefix+"probe-")
	if err != nil {
		return fmt.Errorf("checkpoints folder %s is not writable: %w", root, err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

// checkpointCandidates lists the step-* directories whose trainer state
// reads back, newest first; unreadable ones are reported in the error.
func checkpointCandidates(runDir string) ([]string, []*TrainerState, error) {
	root := filepath.Join(runDir, checkpointsDir)
	steps, err := listSteps(root)
	if err != nil {
		return nil, nil, err
	}
	var dirs []string
	var states []*TrainerState
	var errs []error
	for i := len(steps) - 1; i >= 0; i-- {
		dir := filepath.Join(root, stepName(steps[i]))
		st, err := readState(dir)
		if err != nil {
			errs = append(errs, fmt.Errorf("skipping unreadable checkpoint %s: %w", dir, err))
			continue
		}
		dirs, states = append(dirs, dir), append(states, st)
	}
	return dirs, states, errors.Join(errs...)
}

// LatestCheckpoint finds the newest complete checkpoint under a run folder:
// the highest step-* directory whose trainer state reads back (the `latest`
// pointer is written for people and tools; a crash between a rename and the
// pointer update must not lose the newer checkpoint). Temp directories are
// never considered. It returns "" when there is none.
func LatestCheckpoint(runDir string) (string, *TrainerState, error) {
	root := filepath.Join(runDir, checkpointsDir)
	steps, err := listSteps(root)
	if err != nil {
		return "", nil, err
	}
	var errs []error
	for i := len(steps) - 1; i >= 0; i-- {
		dir := filepath.Join(root, stepName(steps[i]))
		st, err := readState(dir)
		if err != nil {
			errs = append(errs, fmt.Errorf("skipping unreadable checkpoint %s: %w", dir, err))
			continue
		}
		return dir, st, errors.Join(errs...)
	}
	return "", nil, errors.Join(errs...)
}

// verifyCheckpoint checks dir's files against its manifest (errors wrap
// ckpt.ErrCorrupt and name the file); note receives a one-line note when
// the checkpoint has no manifest.
func verifyCheckpoint(dir string, note func(string)) error {
	v, err := ckpt.VerifyManifest(dir)
	if err != nil {
		return err
	}
	if v.Algorithm == "" && note != nil {
		note(v.String())
	}
	return nil
}

// checkLoadedFinite reports the first weight, adapter tensor or optimizer
// moment holding a NaN or infinite value, after loadCheckpoint filled them
// from dir or before save writes them (weights used in place from a mapped
// base are not the checkpoint's and are left out).
func checkLoadedFinite(dir string, m *model.Magma, ad Adapters, opt *AdamW) error {
	if err := ckpt.CheckFinite(m, "", true); err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	if ad != nil {
		for _, a := range ad.Tensors() {
			if d, ok := a.T.Data().([]float32); ok {
				if err := ckpt.CheckFiniteValues(a.Name, d); err != nil {
					return fmt.Errorf("%s: %w", filepath.Join(dir, ckpt.AdapterWeightsFile), err)
				}
			}
		}
	}
	if opt == nil {
		return nil
	}
	for _, p := range opt.slots {
		for _, part := range []struct {
			name string
			v    []float32
		}{{"exp_avg." + p.Name, p.M}, {"exp_avg_sq." + p.Name, p.V}} {
			if err := ckpt.CheckFiniteValues(part.name, part.v); err != nil {
				return fmt.Errorf("%s: %w", filepath.Join(dir, optimizerFile), err)
			}
		}
	}
	return nil
}

// loadCheckpoint reads weights into m (and the adapters, when set) and
// moments into opt's parameters.
func loadCheckpoint(dir string, m *model.Magma, ad Adapters, opt *AdamW) error {
	ck, err := model.OpenWeights(dir) // safetensors, or a QLoRA base's linked GGUF
	if err != nil {
		return err
	}
	defer ck.Close()
	// A frozen base used in place (read-only mapped) keeps its values.
	if _, err := model.Bind(m, "", ck, model.BindOptions{KeepReadOnly: true}); err != nil {
		return fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	if ad != nil {
		if err := ad.Load(dir); err != nil {
			return fmt.Errorf("checkpoint %s: %w", dir, err)
		}
	}
	f, err := ckpt.OpenSafetensors(filepath.Join(dir, optimizerFile))
	if err != nil {
		return err
	}
	defer f.Close()
	for _, p := range opt.slots {
		for _, part := range []struct {
			name string
			dst  *[]float32
		}{{"exp_avg." + p.Name, &p.M}, {"exp_avg_sq." + p.Name, &p.V}} {
			d, _, err := f.Tensor(part.name)
			if err != nil {
				return fmt.Errorf("%s: %s: %w (was the run started with another trainable setting?)", filepath.Join(dir, optimizerFile), part.name, err)
			}
			if len(d) != len(p.Data) {
				return fmt.Errorf("%s: %s has %d values, parameter has %d", filepath.Join(dir, optimizerFile), part.name, len(d), len(p.Data))
			}
			*part.dst = d
		}
	}
	return nil
}
