package model

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"gorgonia.org/tensor"

	"github.com/magma-go/magma/kernels"
)

// WeightStats tells how a model's parameters are held in memory.
type WeightStats struct {
	// Bytes by dtype name ("BF16", "F16", "F32", "F64").
	Bytes map[string]int64 `json:"bytes_by_dtype"`
	// InPlace bytes are views of the read-only mapped shards; Copied bytes
	// were converted (or copied for alignment) into process memory.
	InPlace int64 `json:"in_place_bytes"`
	Copied  int64 `json:"copied_bytes"`
	Tensors int   `json:"tensors"`
}

func (w *WeightStats) add(dt tensor.Dtype, n int64, inPlace bool) {
	if w.Bytes == nil {
		w.Bytes = map[string]int64{}
	}
	w.Bytes[kernels.DtypeName(dt)] += n
	if inPlace {
		w.InPlace += n
	} else {
		w.Copied += n
	}
	w.Tensors++
}

// Total is the weights' bytes in memory.
func (w WeightStats) Total() int64 { return w.InPlace + w.Copied }

// String is e.g. "16.58 GiB: BF16 16.58 GiB; 16.58 GiB of it mapped in place".
func (w WeightStats) String() string {
	names := make([]string, 0, len(w.Bytes))
	for k := range w.Bytes {
		names = append(names, k)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, k := range names {
		parts[i] = fmt.Sprintf("%s %s", k, kernels.FormatBytes(w.Bytes[k]))
	}
	return fmt.Sprintf("%s: %s; %s of it mapped in place", kernels.FormatBytes(w.Total()), strings.Join(parts, ", "), kernels.FormatBytes(w.InPlace))
}

// resolveDtype is the in-memory dtype of a tensor stored as have when the
// caller wants want (zero: keep; F64 is not a storage dtype and becomes F32).
func resolveDtype(have, want tensor.Dtype) tensor.Dtype {
	if want != (tensor.Dtype{}) {
		return want
	}
	if have == tensor.Float64 {
		return tensor.Float32
	}
	return have
}

// plan returns the in-memory dtype of a tensor and whether it will be used
// in place (stored in that dtype and aligned in the file).
func (s *SafetensorsFile) plan(name string, want tensor.Dtype) (TensorInfo, tensor.Dtype, bool, error) {
	ti, ok := s.tensors[name]
	if !ok {
		return ti, tensor.Dtype{}, false, fmt.Errorf("safetensors %s: tensor %q not found", s.Path, name)
	}
	have, err := storageDtype(s.Path, name, ti.DType)
	if err != nil {
		return ti, tensor.Dtype{}, false, err
	}
	dt := resolveDtype(have, want)
	return ti, dt, dt == have && (s.dataStart+ti.Begin)%int64(kernels.ElemSize(dt)) == 0, nil
}

// Dense returns a checkpoint tensor in dtype want (zero: its stored dtype),
// in place when possible (see SafetensorsFile.Dense).
func (c *Checkpoint) Dense(name string, want tensor.Dtype) (*tensor.Dense, bool, error) {
	return c.dense(name, want, true)
}

func (c *Checkpoint) dense(name string, want tensor.Dtype, inPlace bool) (*tensor.Dense, bool, error) {
	shard, ok := c.owner[name]
	if !ok {
		return nil, false, fmt.Errorf("checkpoint %s: tensor %q not found", c.Dir, name)
	}
	f := c.files[shard]
	_, dt, _, err := f.plan(name, want)
	if err != nil {
		return nil, false, err
	}
	return f.dense(name, dt, inPlace)
}

// StoredBytes sums the checkpoint's tensor bytes by stored dtype.
func (c *Checkpoint) StoredBytes() map[string]int64 {
	out := map[string]int64{}
	for _, n := range c.names {
		ti := c.files[c.owner[n]].tensors[n]
		out[ti.DType] += ti.End - ti.Begin
	}
	return out
}

// planWeights predicts, from the headers alone, the bytes the model's
// parameters will take once attached to ck in dtype want. Problems are left
// to Attach, which reports them all.
func planWeights(root any, ck *Checkpoint, want tensor.Dtype, writable bool) (WeightStats, error) {
	var w WeightStats
	ps, err := Parameters(root, "")
	if err != nil {
		return w, err
	}
	for _, p := range ps {
		shard, ok := ck.owner[p.Name]
		if !ok {
			continue
		}
		ti, dt, inPlace, err := ck.files[shard].plan(p.Name, want)
		if err != nil {
			continue
		}
		w.add(dt, ti.NumElements()*int64(kernels.ElemSize(dt)), inPlace && !writable)
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
func Attach(root any, prefix string, ck *Checkpoint, want tensor.Dtype) (WeightStats, error) {
	return attach(root, prefix, ck, want, false)
}

// attach is Attach; writable copies every tensor (none in place).
func attach(root any, prefix string, ck *Checkpoint, want tensor.Dtype, writable bool) (WeightStats, error) {
	var stats WeightStats
	ps, err := Parameters(root, prefix)
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
		t, inPlace, err := ck.dense(p.Name, want, !writable)
		if err != nil {
			report(err)
			continue
		}
		if err := p.Set(t); err != nil {
			report(err)
			continue
		}
		stats.add(t.Dtype(), int64(t.MemSize()), inPlace)
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
	InMemory WeightStats `json:"in_memory"`
	Dtype    string      `json:"load_dtype"` // "stored" or the --dtype asked
}

// DescribeWeights reads the headers of the checkpoint in dir and predicts
// the model's weight memory when loaded with dtype (zero: stored dtypes).
func DescribeWeights(dir string, cfg *Config, dtype tensor.Dtype) (*CheckpointWeights, error) {
	ck, err := Open(dir)
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
	return &CheckpointWeights{Stored: ck.StoredBytes(), Shards: len(ck.files), InMemory: plan, Dtype: name}, nil
}
