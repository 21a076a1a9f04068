package model

import (
	"errors"
	"fmt"

	"gorgonia.org/tensor"

	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/model/ckpt"
	"github.com/magma-go/magma/nn"
)

// planWeights predicts, from the headers alone, the bytes the model's
// parameters will take once attached to ck in dtype want. Problems are left
// to Attach, which reports them all.
func planWeights(root any, ck *ckpt.Checkpoint, want tensor.Dtype, writable bool) (ckpt.WeightStats, error) {
	var w ckpt.WeightStats
	ps, err := nn.Parameters(root, "")
	if err != nil {
		return w, err
	}
	for _, p := range ps {
		ti, dt, inPlace, err := ck.Plan(p.Name, want)
		if err != nil {
			continue
		}
		w.Add(dt, ti.NumElements()*int64(kernels.ElemSize(dt)), inPlace && !writable)
	}
	return w, nil
}

// Attach binds every tagged tensor under root to the checkpoint by
// replacing it (nn.Param.Set) with the checkpoint's tensor in dtype want
// (zero: each tensor's stored dtype): a read-only view of the mapped shard
// when the stored dtype is the wanted one and the data is aligned, a
// converted copy otherwise. Unlike Bind, which copies into the model's
// existing float32 tensors (and so suits a model an optimizer already
// holds), Attach never allocates what it replaces: build root with
// kernels.Placeholder. ck must stay open while the model is used.
//
// A required tensor missing from ck, a shape mismatch, a non-float stored
// dtype or a read error is an error naming the tensor (all problems are
// collected, the first few listed). Optional tensors missing from ck become
// owned float32 zeros.
func Attach(root any, prefix string, ck *ckpt.Checkpoint, want tensor.Dtype) (ckpt.WeightStats, error) {
	return attach(root, prefix, ck, want, false)
}

// attach is Attach; writable copies every tensor (none in place).
func attach(root any, prefix string, ck *ckpt.Checkpoint, want tensor.Dtype, writable bool) (ckpt.WeightStats, error) {
	var stats ckpt.WeightStats
	ps, err := nn.Parameters(root, prefix)
	if err != nil {
		return stats, err
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
	for i := range ps {
		p := &ps[i]
		if !ck.Has(p.Name) {
			if !p.Optional {
				report(fmt.Errorf("weights: tensor %q missing from checkpoint (expected shape %v)", p.Name, []int(p.T.Shape())))
			} else if kernels.IsReadOnly(p.T) {
				z := tensor.New(tensor.WithShape(p.T.Shape().Clone()...), tensor.Of(tensor.Float32))
				if err := p.Set(z); err != nil {
					report(err)
				}
			}
			continue
		}
		ti, _, _ := ck.Info(p.Name)
		if !sameShape(ti.Shape, p.T.Shape()) && !(len(ti.Shape) == 0 && sameShape([]int{1}, p.T.Shape())) {
			report(fmt.Errorf("weights: tensor %q shape mismatch: expected %v, got %v", p.Name, []int(p.T.Shape()), ti.Shape))
			continue
		}
		var t *tensor.Dense
		inPlace := false
		if writable {
			t, err = ck.DenseCopy(p.Name, want)
		} else {
			t, inPlace, err = ck.Dense(p.Name, want)
		}
		if err != nil {
			report(err)
			continue
		}
		if err := p.Set(t); err != nil {
			report(err)
			continue
		}
		stats.Add(t.Dtype(), int64(t.MemSize()), inPlace)
	}
	if more > 0 {
		errs = append(errs, fmt.Errorf("... and %d more problems", more))
	}
	return stats, errors.Join(errs...)
}

// CheckpointWeights is what `magma info --model DIR` reports about a
// checkpoint's tensors, from the headers alone.
type CheckpointWeights struct {
	// Stored bytes by dtype as written in the shards (every tensor,
	// including unused ones such as the ConvNeXt head).
	Stored map[string]int64 `json:"stored_bytes_by_dtype"`
	Shards int              `json:"shards"`
	// InMemory is what loading with Dtype would hold: bytes by dtype, how
	// much is used in place (mapped) and how much copied.
	InMemory ckpt.WeightStats `json:"in_memory"`
	Dtype    string           `json:"load_dtype"` // "stored" or the --dtype asked
}

// DescribeWeights reads the headers of the checkpoint in dir and predicts
// the model's weight memory when loaded with dtype (zero: stored dtypes).
func DescribeWeights(dir string, cfg *Config, dtype tensor.Dtype) (*CheckpointWeights, error) {
	ck, err := ckpt.Open(dir)
	if err != nil {
		return nil, err
	}
	defer ck.Close()
	m, err := newForLoad(cfg)
	if err != nil {
		return nil, err
	}
	plan, err := planWeights(m, ck, dtype, false)
	if err != nil {
		return nil, err
	}
	name := "stored"
	if dtype != (tensor.Dtype{}) {
		name = kernels.DtypeName(dtype)
	}
	return &CheckpointWeights{Stored: ck.StoredBytes(), Shards: ck.Shards(), InMemory: plan, Dtype: name}, nil
}
