package ckpt

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"gorgonia.org/tensor"
)

// Adapter files, in PEFT's save_pretrained layout, so that adapters trained
// here load in PEFT and the other way round: the file names, the PEFT
// tensor names (LoRANameA, LoRANameB), adapter_config.json (AdapterConfig)
// and reading and writing the files. Which layers have adapters is the
// caller's (package llm places them on the decoder and fills the config).

// Adapter file names in a checkpoint (PEFT's save_pretrained layout).
const (
	AdapterWeightsFile = "adapter_model.safetensors"
	AdapterConfigFile  = "adapter_config.json"
)

// PEFT tensor names of a module's adapter: base_model.model.<module>.lora_A.weight
// and …lora_B.weight, module being the adapted layer's checkpoint name
// (e.g. language_model.model.layers.0.self_attn.q_proj).
func LoRANameA(module string) string { return "base_model.model." + module + ".lora_A.weight" }
func LoRANameB(module string) string { return "base_model.model." + module + ".lora_B.weight" }

// AdapterConfig is PEFT's adapter_config.json (the keys PEFT needs to load
// the adapter).
type AdapterConfig struct {
	PeftType            string   `json:"peft_type"`
	TaskType            string   `json:"task_type"`
	R                   int      `json:"r"`
	LoraAlpha           float64  `json:"lora_alpha"`
	LoraDropout         float64  `json:"lora_dropout"`
	TargetModules       []string `json:"target_modules"`
	Bias                string   `json:"bias"`
	FanInFanOut         bool     `json:"fan_in_fan_out"`
	InitLoraWeights     bool     `json:"init_lora_weights"`
	InferenceMode       bool     `json:"inference_mode"`
	UseRSLoRA           bool     `json:"use_rslora"`
	BaseModelNameOrPath string   `json:"base_model_name_or_path"`
	ModulesToSave       []string `json:"modules_to_save"`
	RankPattern         struct{} `json:"rank_pattern"`
	AlphaPattern        struct{} `json:"alpha_pattern"`
	LayersToTransform   []int    `json:"layers_to_transform"`
	LayersPattern       []string `json:"layers_pattern"`
	Revision            *string  `json:"revision"`
	AutoMapping         *string  `json:"auto_mapping"`
}

// NewAdapterConfig is the adapter_config.json of causal-LM LoRA adapters
// of rank r (scale alpha/r, no bias) on the target modules (short names,
// e.g. q_proj), trained from base (base_model_name_or_path).
func NewAdapterConfig(r int, alpha, dropout float64, targets []string, base string) AdapterConfig {
	return AdapterConfig{PeftType: "LORA", TaskType: "CAUSAL_LM", R: r, LoraAlpha: alpha, LoraDropout: dropout,
		TargetModules: targets, Bias: "none", InitLoraWeights: true, InferenceMode: true, BaseModelNameOrPath: base}
}

// JSON renders c as adapter_config.json (indented; WriteAdapter adds the
// final newline).
func (c AdapterConfig) JSON() ([]byte, error) { return json.MarshalIndent(c, "", "  ") }

// ParseAdapterConfig reads adapter_config.json; another peft_type than
// LORA and rsLoRA scaling are refused.
func ParseAdapterConfig(b []byte) (AdapterConfig, error) {
	var c AdapterConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return AdapterConfig{}, fmt.Errorf("adapter_config.json: %w", err)
	}
	if c.PeftType != "" && c.PeftType != "LORA" {
		return AdapterConfig{}, fmt.Errorf("adapter_config.json: peft_type %q, want LORA", c.PeftType)
	}
	if c.UseRSLoRA {
		return AdapterConfig{}, fmt.Errorf("adapter_config.json: use_rslora is not supported")
	}
	return c, nil
}

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
