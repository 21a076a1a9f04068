package model

import (
	"gorgonia.org/tensor"

	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/model/ckpt"
	"github.com/magma-go/magma/nn"
)

// planWeights predicts, from the headers alone, the bytes the model's
// parameters will take once attached to ck in dtype want. Problems are left
// to Bind, which reports them all.
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
