package cotracker

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"gorgonia.org/tensor"

	"github.com/magma-go/magma/model/pth"
	"github.com/magma-go/magma/nn"
	"github.com/magma-go/magma/tom"
)

// Source provides checkpoint tensors by their official names: a .pth
// state dict (PthSource) or the deterministic test weights.
type Source interface {
	// Names lists the tensors (order as stored).
	Names() []string
	// Shape is a tensor's shape (false when absent).
	Shape(name string) ([]int, bool)
	// Values reads a tensor widened to float64.
	Values(name string) ([]float64, error)
}

// PthSource adapts a pth.File (the safe torch.save reader) to Source.
type PthSource struct{ F *pth.File }

// Names implements Source.
func (s PthSource) Names() []string { return s.F.Names() }

// Shape implements Source.
func (s PthSource) Shape(name string) ([]int, bool) {
	in, ok := s.F.Info(name)
	return in.Shape, ok
}

// Values implements Source.
func (s PthSource) Values(name string) ([]float64, error) {
	t, err := s.F.Tensor(name)
	if err != nil {
		return nil, err
	}
	switch t.Dtype() {
	case tensor.Float32, tensor.Float64:
	default:
		if _, err := nn.Float64s(t); err != nil {
			return nil, fmt.Errorf("tensor %q has dtype %v, want a float type", name, t.Dtype())
		}
	}
	return nn.Float64s(t)
}

// Bind fills every parameter of m from src in dtype dt (float32 or
// float64), strictly as PyTorch's load_state_dict: the names may carry a
// "model." prefix (a checkpoint saved as {"model": state_dict}); a missing
// tensor, a shape mismatch or a tensor the model does not have (other than
// the time_emb buffer, whose window length must match the configuration)
// is an error naming the file (what), the tensor and the shapes.
func (m *Model) Bind(src Source, what string, dt tensor.Dtype) error {
	if dt != tensor.Float32 && dt != tensor.Float64 {
		return fmt.Errorf("cotracker: %s: dtype %v, want float32 or float64", what, dt)
	}
	names := src.Names()
	prefix := ""
	have := map[string]bool{}
	for _, n := range names {
		have[n] = true
	}
	if !have["fnet.conv1.weight"] && have["model.fnet.conv1.weight"] {
		prefix = "model."
	}
	ps, err := m.Params()
	if err != nil {
		return err
	}
	var errs []error
	used := map[string]bool{}
	for i := range ps {
		p := &ps[i]
		key := prefix + p.Name
		used[key] = true
		shape, ok := src.Shape(key)
		if !ok {
			errs = append(errs, fmt.Errorf("tensor %q missing (expected shape %v)", key, []int(p.T.Shape())))
			continue
		}
		if !sameInts(shape, p.T.Shape()) {
			errs = append(errs, fmt.Errorf("tensor %q has shape %v, the model needs %v", key, shape, []int(p.T.Shape())))
			continue
		}
		vals, err := src.Values(key)
		if err != nil {
			errs = append(errs, fmt.Errorf("tensor %q: %w", key, err))
			continue
		}
		if len(vals) != p.T.Shape().TotalSize() {
			errs = append(errs, fmt.Errorf("tensor %q: %d values for shape %v", key, len(vals), shape))
			continue
		}
		if err := p.Set(denseOf(dt, vals, p.T.Shape()...)); err != nil {
			errs = append(errs, err)
		}
	}
	if shape, ok := src.Shape(prefix + "time_emb"); ok {
		used[prefix+"time_emb"] = true
		if len(shape) != 3 || shape[0] != 1 || shape[2] != InputDim || shape[1] != m.cfg.WindowLen {
			errs = append(errs, fmt.Errorf("buffer %q has shape %v, the %s model needs [1 %d %d] (wrong variant?)", prefix+"time_emb", shape, m.cfg.Variant, m.cfg.WindowLen, InputDim))
		}
	}
	var extra []string
	for _, n := range names {
		if !used[n] {
			extra = append(extra, n)
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		more := ""
		if len(extra) > 5 {
			more = fmt.Sprintf(" and %d more", len(extra)-5)
			extra = extra[:5]
		}
		errs = append(errs, fmt.Errorf("unexpected tensors %s%s (not a CoTracker3 state dict?)", strings.Join(extra, ", "), more))
	}
	if len(errs) > 0 {
		if len(errs) > 8 {
			errs = append(errs[:8], fmt.Errorf("... and %d more problems", len(errs)-8))
		}
		return fmt.Errorf("cotracker: %s: %w", what, errors.Join(errs...))
	}
	return nil
}

func sameInts(a []int, b tensor.Shape) bool {
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

// LoadModel reads an official CoTracker3 checkpoint (scaled_offline.pth or
// scaled_online.pth) for cfg into a float32 (or, with dt Float64, float64)
// model.
func LoadModel(path string, cfg Config, dt tensor.Dtype) (*Model, error) {
	m, err := New(cfg)
	if err != nil {
		return nil, err
	}
	f, err := pth.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cotracker: %w", err)
	}
	defer f.Close()
	if err := m.Bind(PthSource{F: f}, path, dt); err != nil {
		return nil, err
	}
	return m, nil
}

// Options configure Load; the zero value is the official predictor.
type Options struct {
	// Resolution overrides the model resolution (H, W) (default 384x512).
	Resolution [2]int
	// Iters overrides the refinement iterations (default 6, the predictors').
	Iters int
	// Float64 runs the model in float64 (parity checks; float32 otherwise).
	Float64 bool
}

// Load reads an official CoTracker3 checkpoint — variant "offline"
// (scaled_offline.pth), "online" (scaled_online.pth) or "" (told apart by
// the checkpoint's time_emb buffer, see DetectVariant) — and returns it as
// a tom.Tracker with the official predictor's pre- and post-processing.
// A missing or unreadable file, a missing tensor, a wrong shape or the
// other variant's checkpoint is an error naming the file and the tensor.
func Load(weightsPath, variant string, opts Options) (tom.Tracker, error) {
	p, err := LoadPredictor(weightsPath, variant, opts)
	if err != nil {
		return nil, err
	}
	return &Tracker{P: p}, nil
}

// LoadPredictor is Load returning the Predictor (grid and point queries,
// the model's logits).
func LoadPredictor(weightsPath, variant string, opts Options) (*Predictor, error) {
	if variant == "" {
		v, err := DetectVariant(weightsPath)
		if err != nil {
			return nil, err
		}
		variant = string(v)
	}
	cfg, err := DefaultConfig(Variant(variant))
	if err != nil {
		return nil, err
	}
	if opts.Resolution != [2]int{} {
		cfg.Resolution = opts.Resolution
	}
	if opts.Iters != 0 {
		cfg.Iters = opts.Iters
	}
	dt := tensor.Float32
	if opts.Float64 {
		dt = tensor.Float64
	}
	m, err := LoadModel(weightsPath, cfg, dt)
	if err != nil {
		return nil, err
	}
	return NewPredictor(m), nil
}

// DetectVariant tells the published checkpoints apart by their time_emb
// buffer: window 60 is the offline model, 16 the online one.
func DetectVariant(path string) (Variant, error) {
	f, err := pth.Open(path)
	if err != nil {
		return "", fmt.Errorf("cotracker: %w", err)
	}
	defer f.Close()
	for _, name := range []string{"time_emb", "model.time_emb"} {
		in, ok := f.Info(name)
		if !ok {
			continue
		}
		if len(in.Shape) == 3 && in.Shape[2] == InputDim {
			for _, v := range []Variant{Offline, Online} {
				if cfg, _ := DefaultConfig(v); cfg.WindowLen == in.Shape[1] {
					return v, nil
				}
			}
		}
		return "", fmt.Errorf("cotracker: %s: time_emb has shape %v, neither the offline [1 60 %d] nor the online [1 16 %d] model's", path, in.Shape, InputDim, InputDim)
	}
	return "", fmt.Errorf("cotracker: %s: no time_emb buffer, so the variant cannot be told (give it: offline or online)", path)
}
