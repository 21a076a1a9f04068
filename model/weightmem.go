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
func planWeights(root any, ck weightFile, want tensor.Dtype, writable bool) (ckpt.WeightStats, error) {
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
		w.Add(dt, ti.NumElements()/int64(kernels.BlockWeights(dt))*int64(kernels.ElemSize(dt)), inPlace && !writable)
	}
	return w, nil
}

// CheckpointWeights is what `magma info --model DIR` reports about a
// checkpoint's tensors, from the headers alone.
type CheckpointWeights struct {
	// Stored bytes by dtype as written in the shards or the GGUF (every
	// tensor, including unused ones such as the ConvNeXt head).
	Stored map[string]int64 `json:"stored_bytes_by_dtype"`
	Shards int              `json:"shards"`
	// InMemory is what loading with Dtype would hold: bytes by dtype, how
	// much is used in place (mapped) and how much copied.
	InMemory ckpt.WeightStats `json:"in_memory"`
	Dtype    string           `json:"load_dtype"` // "stored" or the --dtype asked
	// Quantization is set for a quantized folder (magma quantize).
	Quantization *QuantizationInfo `json:"quantization,omitempty"`
}

// QuantizationInfo describes a quantized folder's choices: the mix, how
// many tensors and bytes each type holds, and the rule (QuantTypeFor) that
// chose each group of tensors.
type QuantizationInfo struct {
	File    string                    `json:"file"`
	Type    string                    `json:"type"`
	ByType  map[string]QuantTypeCount `json:"by_type"`
	Choices []QuantChoice             `json:"choices"`
}

// QuantTypeCount is one type's share of a quantized folder.
type QuantTypeCount struct {
	Tensors int   `json:"tensors"`
	Bytes   int64 `json:"bytes"`
}

// QuantChoice is one rule of the mix and the tensors it applied to.
type QuantChoice struct {
	Type    string `json:"type"`
	Reason  string `json:"reason"`
	Tensors int    `json:"tensors"`
	Example string `json:"example"`
}

// DescribeWeights reads the headers of the checkpoint in dir and predicts
// the model's weight memory when loaded with dtype (zero: stored dtypes).
func DescribeWeights(dir string, cfg *Config, dtype tensor.Dtype) (*CheckpointWeights, error) {
	wf, err := openWeights(dir)
	if err != nil {
		return nil, err
	}
	defer wf.Close()
	m, err := newForLoad(cfg)
	if err != nil {
		return nil, err
	}
	plan, err := planWeights(m, wf, dtype, false)
	if err != nil {
		return nil, err
	}
	name := "stored"
	if dtype != (tensor.Dtype{}) {
		name = kernels.DtypeName(dtype)
	}
	cw := &CheckpointWeights{InMemory: plan, Dtype: name}
	switch f := wf.(type) {
	case *ckpt.Checkpoint:
		cw.Stored, cw.Shards = f.StoredBytes(), f.Shards()
	case *ggufWeights:
		cw.Shards = 1
		cw.Stored = map[string]int64{}
		cw.Quantization = describeQuantization(f, cfg)
		for _, ti := range f.Tensors {
			cw.Stored[ti.Type.String()] += ti.Size
		}
	}
	return cw, nil
}

// describeQuantization groups a GGUF's tensors by type and the rule of
// the folder's mix that explains it.
func describeQuantization(f *ggufWeights, cfg *Config) *QuantizationInfo {
	qi := &QuantizationInfo{File: f.Path, ByType: map[string]QuantTypeCount{}}
	qi.Type, _ = f.String(ggufKeyQuantType)
	idx := map[[2]string]int{}
	for _, ti := range f.Tensors {
		typ := ti.Type.String()
		c := qi.ByType[typ]
		c.Tensors++
		c.Bytes += ti.Size
		qi.ByType[typ] = c
		_, why := QuantTypeFor(ti.Name, ti.Shape(), cfg.Text.NumHiddenLayers, qi.Type)
		if qi.Type == "" {
			why = "(no magma.quantize.type in the file)"
		}
		k := [2]string{typ, why}
		i, ok := idx[k]
		if !ok {
			i = len(qi.Choices)
			idx[k] = i
			qi.Choices = append(qi.Choices, QuantChoice{Type: typ, Reason: why, Example: ti.Name})
		}
		qi.Choices[i].Tensors++
	}
	return qi
}
