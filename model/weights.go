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

// Bind fills every tagged tensor under root from src, by name. A required
// tensor missing from src, a shape mismatch or a read error is an error
// naming the tensor (all problems are collected, the first few listed).
// Optional tensors missing from src are left as constructed.
func Bind(root any, prefix string, src TensorSource) error {
	return bind(root, prefix, src, false)
}

// BindWritable is Bind for resuming training on a model whose frozen part
// is a read-only view of a mapped checkpoint (trainable: lora on a bf16
// base used in place): the writable tensors are filled, the read-only ones
// are only checked (present in src, same shape) and left as they are:
// training never changes them, so a checkpoint's copy holds their values.
func BindWritable(root any, prefix string, src TensorSource) error {
	return bind(root, prefix, src, true)
}

func bind(root any, prefix string, src TensorSource, keepReadOnly bool) error {
	ps, err := nn.Parameters(root, prefix)
	if err != nil {
		return err
	}
	var errs []error
	more := 0
	report := func(e error) {
		if len(errs) < maxReportedErrors {
			errs = append(errs, e)
		} else {
			more++
		}
	}
	for _, p := range ps {
		if !src.Has(p.Name) {
			if !p.Optional {
				report(fmt.Errorf("weights: tensor %q missing from checkpoint (expected shape %v)", p.Name, []int(p.T.Shape())))
			}
			continue
		}
		readOnly := kernels.IsReadOnly(p.T)
		if readOnly && !keepReadOnly {
			report(fmt.Errorf("weights: tensor %q is read-only (a view of a mapped checkpoint): load the model with LoadOptions.Writable to overwrite it", p.Name))
			continue
		}
		if readOnly {
			if ck, ok := src.(*ckpt.Checkpoint); ok {
				if ti, _, err := ck.Info(p.Name); err == nil && !sameShape(ti.Shape, p.T.Shape()) {
					report(fmt.Errorf("weights: tensor %q shape mismatch: expected %v, got %v", p.Name, []int(p.T.Shape()), ti.Shape))
				}
			}
			continue
		}
		half := kernels.IsHalf(p.T.Dtype())
		var dst []float32
		if !half {
			if dst, err = denseFloat32(p.Name, p.T); err != nil {
				report(err)
				continue
			}
		}
		data, shape, err := src.Tensor(p.Name)
		if err != nil {
			report(err)
			continue
		}
		if !sameShape(shape, p.T.Shape()) {
			report(fmt.Errorf("weights: tensor %q shape mismatch: expected %v, got %v", p.Name, []int(p.T.Shape()), shape))
			continue
		}
		if n := p.T.Shape().TotalSize(); len(data) != n {
			report(fmt.Errorf("weights: tensor %q: got %d values for shape %v", p.Name, len(data), shape))
			continue
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
	}
	if more > 0 {
		errs = append(errs, fmt.Errorf("... and %d more problems", more))
	}
	return errors.Join(errs...)
}

// Collect returns every tagged tensor under root with its name, for Save.
// Float32 tensors are returned as Data slices that alias them (no copy);
// tensors of the other storage dtypes (BF16, F16, F64) as Src, widened
// chunk by chunk when written.
func Collect(root any, prefix string) ([]ckpt.NamedTensor, error) {
	ps, err := nn.Parameters(root, prefix)
	if err != nil {
		return nil, err
	}
	out := make([]ckpt.NamedTensor, 0, len(ps))
	for _, p := range ps {
		nt := ckpt.NamedTensor{Name: p.Name, Shape: append([]int(nil), p.T.Shape()...)}
		if p.T.Dtype() == tensor.Float32 {
			if nt.Data, err = denseFloat32(p.Name, p.T); err != nil {
				return nil, err
			}
		} else if p.T.IsScalar() || p.T.DataSize() != p.T.Shape().TotalSize() {
			return nil, fmt.Errorf("weights: tensor %q: scalar, view or non-contiguous tensor (shape %v)", p.Name, p.T.Shape())
		} else {
			nt.Src = p.T
		}
		out = append(out, nt)
	}
	return out, nil
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
