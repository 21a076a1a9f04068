package model

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gorgonia.org/tensor"

	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/llm"
	"github.com/magma-go/magma/model/ckpt"
)

// The decoder's LoRA adapters in a Magma checkpoint: the PEFT files are
// read and written by package ckpt; this file says which tensors they hold.

// LoRAPrefix is the language model's name prefix in a Magma checkpoint; the
// PEFT tensor names are base_model.model.language_model.model.layers.{i}.….
const LoRAPrefix = "language_model."

// LoRATensors lists the adapters attached to lm (modules under prefix, as
// llm.Model.LoRAModules) under their PEFT names
// (base_model.model.<module>.lora_{A,B}.weight), for adapter_model.safetensors.
func LoRATensors(lm *llm.Model, prefix string) map[string]*tensor.Dense {
	out := map[string]*tensor.Dense{}
	for _, mod := range lm.LoRAModules(prefix) {
		out[ckpt.LoRANameA(mod.Name)] = mod.Linear.LoRA.A
		out[ckpt.LoRANameB(mod.Name)] = mod.Linear.LoRA.B
	}
	return out
}

// LoRAAdapterConfigJSON renders adapter_config.json for the adapters
// attached to lm.
func LoRAAdapterConfigJSON(lm *llm.Model, baseModel string) ([]byte, error) {
	mods := lm.LoRAModules("")
	if len(mods) == 0 {
		return nil, fmt.Errorf("lora: no adapter attached")
	}
	l := mods[0].Linear.LoRA
	seen := map[string]bool{}
	var targets []string
	for _, mod := range mods {
		s := mod.Name[strings.LastIndexByte(mod.Name, '.')+1:]
		if !seen[s] {
			seen[s] = true
			targets = append(targets, s)
		}
	}
	sort.Strings(targets)
	return ckpt.NewAdapterConfig(l.Rank, l.Alpha, l.Dropout, targets, baseModel).JSON()
}

// ParseLoRAAdapterConfig reads adapter_config.json (ckpt.ParseAdapterConfig)
// as the llm.LoRAConfig that attaches the same adapters.
func ParseLoRAAdapterConfig(b []byte) (llm.LoRAConfig, error) {
	c, err := ckpt.ParseAdapterConfig(b)
	if err != nil {
		return llm.LoRAConfig{}, err
	}
	return llm.LoRAConfig{Rank: c.R, Alpha: c.LoraAlpha, Dropout: c.LoraDropout, Targets: c.TargetModules}, nil
}

// SaveLoRA writes PEFT's adapter_model.safetensors and adapter_config.json
// for the adapters attached to m's language model.
func SaveLoRA(dir string, m *Magma, base string) error {
	ts := LoRATensors(m.LM, LoRAPrefix)
	if len(ts) == 0 {
		return errors.New("lora: no adapters attached")
	}
	cj, err := LoRAAdapterConfigJSON(m.LM, base)
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
	cfg, err := ParseLoRAAdapterConfig(cj)
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
	return ckpt.ReadAdapterTensors(dir, LoRATensors(m.LM, LoRAPrefix))
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
