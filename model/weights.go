package model

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"gorgonia.org/tensor"

	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/model/ckpt"
	"github.com/magma-go/magma/nn"
)

// Weight binding by struct tags: the tag rules and the walker are in
// package nn; this file binds checkpoints to them.

// TensorSource provides tensors by name; *ckpt.Checkpoint and
// *ckpt.SafetensorsFile satisfy it.
type TensorSource interface {
	Tensor(name string) ([]float32, []int, error)
	Has(name string) bool
}

func denseFloat32(name string, t *tensor.Dense) ([]float32, error) {
	if t.Dtype() != tensor.Float32 {
		return nil, fmt.Errorf("weights: tensor %q has dtype %v, want float32", name, t.Dtype())
	}
	if t.IsScalar() {
		return nil, fmt.Errorf("weights: tensor %q is a scalar; allocate it with shape [1]", name)
	}
	data, ok := t.Data().([]float32)
	if !ok {
		return nil, fmt.Errorf("weights: tensor %q: backing data is not []float32", name)
	}
	if len(data) != t.Shape().TotalSize() {
		return nil, fmt.Errorf("weights: tensor %q: view or non-contiguous tensor (data %d, shape %v)", name, len(data), t.Shape())
	}
	return data, nil
}

func sameShape(a []int, b tensor.Shape) bool {
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

// maxReportedErrors bounds how many problems Bind lists before summarising.
const maxReportedErrors = 10

// BindOptions says how Bind binds a model's tensors to a checkpoint.
type BindOptions struct {
	// Replace replaces every tensor (nn.Param.Set) with the checkpoint's in
	// dtype Dtype (zero: each tensor's stored dtype): a read-only view of
	// the mapped shard when the stored dtype is the wanted one and the data
	// is aligned (unless Writable: every tensor is then a copy), a
	// converted copy otherwise. It never allocates what it replaces: build
	// root with kernels.Placeholder, and keep the checkpoint open while the
	// model is used. The source must be a *ckpt.Checkpoint. Loading binds
	// this way; optional tensors missing from the checkpoint become owned
	// float32 zeros. The source may also be a quantized folder's GGUF
	// (openWeights): its quantized tensors are bound as block views.
	Replace  bool
	Dtype    tensor.Dtype
	Writable bool
	// Without Replace, the source's values are copied into the model's
	// existing float32 or half tensors (the ones an optimizer holds:
	// resuming binds this way); optional tensors missing from the source
	// are left as they are. A read-only tensor (a view of a mapped
	// checkpoint) cannot be overwritten: it is an error, unless
	// KeepReadOnly, for resuming a model whose frozen part is used in
	// place (trainable: lora on a bf16 base): it is then only checked
	// (present, same shape) and left as it is, since training never
	// changes it and the checkpoint's copy holds its values.
	KeepReadOnly bool
}

// Bind binds every tagged tensor under root to src, by name, as opts says;
// it is the one way a model's weights are bound, on load and on resume.
// A required tensor missing from src, a shape mismatch, a non-float stored
// dtype or a read error is an error naming the tensor (all problems are
// collected, the first few listed). The stats say how the bound tensors
// are held in memory (Replace only).
func Bind(root any, prefix string, src TensorSource, opts BindOptions) (ckpt.WeightStats, error) {
	var stats ckpt.WeightStats
	ck, _ := src.(weightFile)
	if opts.Replace && ck == nil {
		return stats, fmt.Errorf("weights: binding by replacing tensors needs a checkpoint, got %T", src)
	}
	ps, err := nn.Parameters(root, prefix)
	if err != nil {
		return stats, err
	}
	var errs []error
	more := 0
	for i := range ps {
		p := &ps[i]
		var err error
		switch {
		case !src.Has(p.Name):
			if !p.Optional {
				err = fmt.Errorf("weights: tensor %q missing from checkpoint (expected shape %v)", p.Name, []int(p.T.Shape()))
			} else if opts.Replace && kernels.IsReadOnly(p.T) {
				err = p.Set(tensor.New(tensor.WithShape(p.T.Shape().Clone()...), tensor.Of(tensor.Float32)))
			}
		case opts.Replace:
			err = replaceParam(p, ck, opts, &stats)
		default:
			err = copyParam(p, src, ck, opts.KeepReadOnly)
		}
		if err == nil {
			continue
		}
		if len(errs) < maxReportedErrors {
			errs = append(errs, err)
		} else {
			more++
		}
	}
	if more > 0 {
		errs = append(errs, fmt.Errorf("... and %d more problems", more))
	}
	return stats, errors.Join(errs...)
}

// replaceParam replaces p's tensor with ck's (BindOptions.Replace).
func replaceParam(p *nn.Param, ck weightFile, opts BindOptions, stats *ckpt.WeightStats) error {
	ti, _, _ := ck.Info(p.Name)
	if !sameShape(ti.Shape, p.T.Shape()) && !(len(ti.Shape) == 0 && sameShape([]int{1}, p.T.Shape())) {
		return fmt.Errorf("weights: tensor %q shape mismatch: expected %v, got %v", p.Name, []int(p.T.Shape()), ti.Shape)
	}
	var t *tensor.Dense
	var err error
	inPlace := false
	if opts.Writable {
		t, err = ck.DenseCopy(p.Name, opts.Dtype)
	} else {
		t, inPlace, err = ck.Dense(p.Name, opts.Dtype)
	}
	if err != nil {
		return err
	}
	if err := checkQuantizable(p.Name, t.Dtype()); err != nil {
		return err
	}
	if err := p.Set(t); err != nil {
		return err
	}
	stats.Add(t.Dtype(), int64(t.MemSize()), inPlace)
	return nil
}

// copyParam copies src's values of p into p's tensor (Bind without
// Replace); ck is src when it is a checkpoint (nil otherwise).
func copyParam(p *nn.Param, src TensorSource, ck weightFile, keepReadOnly bool) error {
	if kernels.IsReadOnly(p.T) {
		if !keepReadOnly {
			return fmt.Errorf("weights: tensor %q is read-only (a view of a mapped checkpoint): load the model with LoadOptions.Writable to overwrite it", p.Name)
		}
		if ck != nil {
			// (a quantized tensor is compared by its logical shape)
			if ti, _, err := ck.Info(p.Name); err == nil && !sameShape(ti.Shape, tensor.Shape(kernels.LogicalShape(p.T))) {
				return fmt.Errorf("weights: tensor %q shape mismatch: expected %v, got %v", p.Name, kernels.LogicalShape(p.T), ti.Shape)
			}
		}
		return nil
	}
	var dst []float32
	if !kernels.IsHalf(p.T.Dtype()) {
		var err error
		if dst, err = denseFloat32(p.Name, p.T); err != nil {
			return err
		}
	}
	data, shape, err := src.Tensor(p.Name)
	if err != nil {
		return err
	}
	if !sameShape(shape, p.T.Shape()) {
		return fmt.Errorf("weights: tensor %q shape mismatch: expected %v, got %v", p.Name, []int(p.T.Shape()), shape)
	}
	if n := p.T.Shape().TotalSize(); len(data) != n {
		return fmt.Errorf("weights: tensor %q: got %d values for shape %v", p.Name, len(data), shape)
	}
	switch d := p.T.Data().(type) {
	case []kernels.BF16: // rounded to nearest even: exact for bf16 sources
		for i, v := range data {
			d[i] = kernels.BF16(kernels.Float32ToBF16(v))
		}
	case []kernels.F16:
		for i, v := range data {
			d[i] = kernels.F16(kernels.Float32ToF16(v))
		}
	default:
		copy(dst, data)
	}
	return nil
}

// Binding is one (root, prefix) pair of a model, e.g. the vision tower
// under "vision_tower.clip_vision_model.trunk".
type Binding struct {
	Root   any
	Prefix string
}

// Unused returns the names in available (e.g. Checkpoint.Names()) that no
// binding uses, sorted: tensors present in the checkpoint but ignored by the
// model, such as the ConvNeXt classification head. Callers log them.
func Unused(available []string, bindings ...Binding) ([]string, error) {
	used := map[string]bool{}
	for _, b := range bindings {
		ps, err := nn.Parameters(b.Root, b.Prefix)
		if err != nil {
			return nil, err
		}
		for _, p := range ps {
			used[p.Name] = true
		}
	}
	var out []string
	for _, n := range available {
		if !used[n] {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out, nil
}

// ParamCountByPrefix groups the parameter count of root (named under
// prefix) by the first depth dot-separated segments of each name, e.g.
// depth 1 on a full model gives {"language_model": ..., "vision_tower": ...}.
func ParamCountByPrefix(root any, prefix string, depth int) (map[string]int64, error) {
	ps, err := nn.Parameters(root, prefix)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, p := range ps {
		out[truncName(p.Name, depth)] += int64(p.T.Shape().TotalSize())
	}
	return out, nil
}

func truncName(name string, depth int) string {
	if depth <= 0 {
		return name
	}
	parts := strings.Split(name, ".")
	if len(parts) > depth {
		parts = parts[:depth]
	}
	return strings.Join(parts, ".")
}
