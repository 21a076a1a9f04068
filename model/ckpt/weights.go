package ckpt

import (
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

// Add counts a tensor of n bytes in dtype dt, used in place or copied.
func (w *WeightStats) Add(dt tensor.Dtype, n int64, inPlace bool) {
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

// Plan returns a checkpoint tensor's header, the dtype it would have in
// memory when asked in dtype want (zero: its stored dtype; F64 becomes F32)
// and whether Dense would use it in place (stored in that dtype and
// aligned in the file), from the header alone.
func (c *Checkpoint) Plan(name string, want tensor.Dtype) (TensorInfo, tensor.Dtype, bool, error) {
	shard, ok := c.owner[name]
	if !ok {
		return TensorInfo{}, tensor.Dtype{}, false, fmt.Errorf("checkpoint %s: tensor %q not found", c.Dir, name)
	}
	return c.files[shard].plan(name, want)
}

// Dense returns a checkpoint tensor in dtype want (zero: its stored dtype),
// in place when possible (see SafetensorsFile.Dense).
func (c *Checkpoint) Dense(name string, want tensor.Dtype) (*tensor.Dense, bool, error) {
	return c.dense(name, want, true)
}

// DenseCopy is Dense always copying into process memory (never a view of
// the mapped file): a tensor that training will write.
func (c *Checkpoint) DenseCopy(name string, want tensor.Dtype) (*tensor.Dense, error) {
	t, _, err := c.dense(name, want, false)
	return t, err
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

// Shards is the number of safetensors files the checkpoint has.
func (c *Checkpoint) Shards() int { return len(c.files) }

// StoredBytes sums the checkpoint's tensor bytes by stored dtype.
func (c *Checkpoint) StoredBytes() map[string]int64 {
	out := map[string]int64{}
	for _, n := range c.names {
		ti := c.files[c.owner[n]].tensors[n]
		out[ti.DType] += ti.End - ti.Begin
	}
	return out
}
