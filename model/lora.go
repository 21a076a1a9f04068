package model

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/llm"
	"github.com/magma-go/magma/model/ckpt"
)

// LoRA adapters on disk, in PEFT's save_pretrained layout, so adapters
// trained here load in PEFT and the other way round.

// Adapter file names in a checkpoint (PEFT's save_pretrained layout).
const (
	AdapterWeightsFile = "adapter_model.safetensors"
	AdapterConfigFile  = "adapter_config.json"
)

// LoRAPrefix is the language model's name prefix in a Magma checkpoint; the
// PEFT tensor names are base_model.model.language_model.model.layers.{i}.….
const LoRAPrefix = "language_model."

// SaveLoRA writes PEFT's adapter_model.safetensors and adapter_config.json
// for the adapters attached to m's language model.
func SaveLoRA(dir string, m *Magma, base string) error {
	var ts []ckpt.NamedTensor
	for name, t := range m.LM.LoRATensors(LoRAPrefix) {
		d, ok := t.Data().([]float32)
		if !ok {
			return fmt.Errorf("lora: %s is %v, want float32", name, t.Dtype())
		}
		ts = append(ts, ckpt.NamedTensor{Name: name, Shape: []int(t.Shape().Clone()), Data: d})
	}
	if len(ts) == 0 {
		return errors.New("lora: no adapters attached")
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].Name < ts[j].Name })
	if err := ckpt.WriteSafetensors(filepath.Join(dir, AdapterWeightsFile), ts, ckpt.WriteOptions{DType: "F32"}); err != nil {
		return err
	}
	cj, err := m.LM.LoRAAdapterConfigJSON(base)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, AdapterConfigFile), append(cj, '\n'), 0o644)
}

// LoadLoRA attaches the adapter saved in dir (PEFT layout) to m with
// dropout off; it reports false when dir has no adapter_config.json.
func LoadLoRA(dir string, m *Magma) (bool, error) {
	cj, err := os.ReadFile(filepath.Join(dir, AdapterConfigFile))
	if os.IsNotExist(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	cfg, err := llm.ParseLoRAAdapterConfig(cj)
	if err != nil {
		return false, fmt.Errorf("%s: %w", dir, err)
	}
	cfg.Dropout = 0
	if _, err := m.LM.AttachLoRA(cfg, LoRAPrefix, 0); err != nil {
		return false, fmt.Errorf("%s: %w", filepath.Join(dir, AdapterConfigFile), err)
	}
	if err := ReadLoRATensors(dir, m); err != nil {
		return false, err
	}
	return true, nil
}

// adaptsMappedBase reports whether an adapter of m sits on a weight used in
// place (a read-only view of a mapped checkpoint).
func adaptsMappedBase(m *Magma) bool {
	for _, mod := range m.LM.LoRAModules("") {
		if kernels.IsReadOnly(mod.Linear.Weight) {
			return true
		}
	}
	return false
}

// ReadLoRATensors fills the attached adapters from adapter_model.safetensors;
// a NaN or infinite value is reported as a corrupt checkpoint (ErrCorrupt).
func ReadLoRATensors(dir string, m *Magma) error {
	path := filepath.Join(dir, AdapterWeightsFile)
	st, err := ckpt.OpenSafetensors(path)
	if err != nil {
		return err
	}
	defer st.Close()
	for name, dst := range m.LM.LoRATensors(LoRAPrefix) {
		vals, shape, err := st.Tensor(name)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if !slices.Equal(shape, []int(dst.Shape())) {
			return fmt.Errorf("%s: %s has shape %v, the model needs %v", path, name, shape, dst.Shape())
		}
		if err := ckpt.CheckFiniteValues(name, vals); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		d, ok := dst.Data().([]float32)
		if !ok {
			return fmt.Errorf("lora: %s is %v, want float32", name, dst.Dtype())
		}
		copy(d, vals)
	}
	return nil
}

// SaveMerged folds the adapters attached to m into its weights (see
// llm.Model.MergeLoRA) and writes a plain checkpoint (no adapter files) with
// the tokenizer (tokDir, "" = none) into dir, atomically; extra, when set,
// adds files to the checkpoint before it is published. manifest.json records
// the checksums of every file.
func SaveMerged(dir string, m *Magma, pp *PreprocessorConfig, tokDir string, extra func(dir string) error) error {
	n, err := m.LM.MergeLoRA()
	if err != nil {
		return err
	}
	if n == 0 {
		return errors.New("the model has no LoRA adapter to merge")
	}
	tmp := dir + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	sums := ckpt.NewSums()
	if err := m.Save(tmp, pp, ckpt.SaveOptions{DType: "F32", Sums: sums}); err != nil {
		return err
	}
	if tokDir != "" {
		if err := ckpt.CopyTokenizer(tokDir, tmp); err != nil {
			return err
		}
	}
	if extra != nil {
		if err := extra(tmp); err != nil {
			return err
		}
	}
	if _, err := ckpt.WriteManifest(tmp, sums); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return os.Rename(tmp, dir)
}
