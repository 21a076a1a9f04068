package model

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/llm"
	"github.com/magma-go/magma/model/ckpt"
)

// The decoder's LoRA adapters in a Magma checkpoint: the PEFT files are
// read and written by package ckpt; this file says which tensors they hold.

// LoRAPrefix is the language model's name prefix in a Magma checkpoint; the
// PEFT tensor names are base_model.model.language_model.model.layers.{i}.….
const LoRAPrefix = "language_model."

// SaveLoRA writes PEFT's adapter_model.safetensors and adapter_config.json
// for the adapters attached to m's language model.
func SaveLoRA(dir string, m *Magma, base string) error {
	ts := m.LM.LoRATensors(LoRAPrefix)
	if len(ts) == 0 {
		return errors.New("lora: no adapters attached")
	}
	cj, err := m.LM.LoRAAdapterConfigJSON(base)
	if err != nil {
		return err
	}
	return ckpt.WriteAdapter(dir, ts, cj)
}

// LoadLoRA attaches the adapter saved in dir (PEFT layout) to m with
// dropout off; it reports false when dir has no adapter_config.json.
func LoadLoRA(dir string, m *Magma) (bool, error) {
	cj, ok, err := ckpt.ReadAdapterConfig(dir)
	if !ok || err != nil {
		return false, err
	}
	cfg, err := llm.ParseLoRAAdapterConfig(cj)
	if err != nil {
		return false, fmt.Errorf("%s: %w", dir, err)
	}
	cfg.Dropout = 0
	if _, err := m.LM.AttachLoRA(cfg, LoRAPrefix, 0); err != nil {
		return false, fmt.Errorf("%s: %w", filepath.Join(dir, ckpt.AdapterConfigFile), err)
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
// a NaN or infinite value is reported as a corrupt checkpoint (ckpt.ErrCorrupt).
func ReadLoRATensors(dir string, m *Magma) error {
	return ckpt.ReadAdapterTensors(dir, m.LM.LoRATensors(LoRAPrefix))
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
