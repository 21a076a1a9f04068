package ckpt

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"gorgonia.org/tensor"
)

// Adapter files, in PEFT's save_pretrained layout, so that adapters trained
// here load in PEFT and the other way round. Which layers have adapters and
// what the config says is the caller's (package llm writes and parses
// adapter_config.json); this file only reads and writes the files.

// Adapter file names in a checkpoint (PEFT's save_pretrained layout).
const (
	AdapterWeightsFile = "adapter_model.safetensors"
	AdapterConfigFile  = "adapter_config.json"
)

// WriteAdapter writes adapter_model.safetensors (the float32 tensors, by
// their PEFT names, sorted) and adapter_config.json (configJSON) into dir.
func WriteAdapter(dir string, tensors map[string]*tensor.Dense, configJSON []byte) error {
	var ts []WriteItem
	for name, t := range tensors {
		d, ok := t.Data().([]float32)
		if !ok {
			return fmt.Errorf("lora: %s is %v, want float32", name, t.Dtype())
		}
		ts = append(ts, WriteItem{Name: name, Shape: []int(t.Shape().Clone()), Data: d})
	}
	if len(ts) == 0 {
		return errors.New("lora: no adapters attached")
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].Name < ts[j].Name })
	if err := WriteSafetensors(filepath.Join(dir, AdapterWeightsFile), ts, WriteOptions{DType: "F32"}); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, AdapterConfigFile), append(configJSON, '\n'), 0o644)
}

// ReadAdapterConfig returns dir's adapter_config.json; ok is false when
// there is none.
func ReadAdapterConfig(dir string) (data []byte, ok bool, err error) {
	data, err = os.ReadFile(filepath.Join(dir, AdapterConfigFile))
	if os.IsNotExist(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return data, true, nil
}

// ReadAdapterTensors fills dst (float32 tensors by their PEFT names) from
// dir's adapter_model.safetensors; a missing tensor or another shape is an
// error, a NaN or infinite value a corrupt checkpoint (ErrCorrupt).
func ReadAdapterTensors(dir string, dst map[string]*tensor.Dense) error {
	path := filepath.Join(dir, AdapterWeightsFile)
	st, err := OpenSafetensors(path)
	if err != nil {
		return err
	}
	defer st.Close()
	for name, t := range dst {
		vals, shape, err := st.Tensor(name)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if !slices.Equal(shape, []int(t.Shape())) {
			return fmt.Errorf("%s: %s has shape %v, the model needs %v", path, name, shape, t.Shape())
		}
		if err := CheckFiniteValues(name, vals); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		d, ok := t.Data().([]float32)
		if !ok {
			return fmt.Errorf("lora: %s is %v, want float32", name, t.Dtype())
		}
		copy(d, vals)
	}
	return nil
}
