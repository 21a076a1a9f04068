package train

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"github.com/magma-go/magma/llm"
	"github.com/magma-go/magma/model"
	"github.com/magma-go/magma/model/ckpt"
	"github.com/magma-go/magma/nn"
)

// Adapters are trainable tensors that live beside the model's checkpoint
// tensors rather than in them (LoRA adapters). With trainable: lora the
// engine trains exactly these: they get graph nodes under their Names,
// AdamW moments under the same names in optimizer.safetensors, and every
// checkpoint calls Save; --resume calls Load after the base weights are
// read back. Adapters must already be attached to the model, so that its
// forward pass uses them.
type Adapters interface {
	// Tensors lists the adapter tensors and their stable names, in a fixed
	// order (float32, updated in place by the optimizer).
	Tensors() []nn.Param
	// Save writes the adapter files into a checkpoint directory.
	Save(dir string) error
	// Load restores the tensors bit for bit from a checkpoint directory
	// written by Save, checking that the adapter's shape matches.
	Load(dir string) error
}

// LoRAAdapters is the Adapters of the LoRA layers (nn.LoRA) attached to a
// Magma model's language model (PEFT layout on disk).
type LoRAAdapters struct {
	Model *model.Magma
	// Base is adapter_config.json's base_model_name_or_path.
	Base string
}

// AttachLoRA puts fresh adapters (A Kaiming-uniform from seed, B zero) on
// the targeted decoder layers of m and returns them as Adapters.
func AttachLoRA(m *model.Magma, c llm.LoRAConfig, seed uint64, base string) (*LoRAAdapters, error) {
	if _, err := m.LM.AttachLoRA(c, model.LoRAPrefix, seed); err != nil {
		return nil, err
	}
	return &LoRAAdapters{Model: m, Base: base}, nil
}

// Tensors lists lora_A and lora_B of every adapted layer by PEFT name, sorted.
func (l *LoRAAdapters) Tensors() []nn.Param {
	var out []nn.Param
	for name, t := range model.LoRATensors(l.Model.LM, model.LoRAPrefix) {
		out = append(out, nn.Param{Name: name, T: t})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Save writes adapter_model.safetensors (float32) and adapter_config.json.
func (l *LoRAAdapters) Save(dir string) error { return model.SaveLoRA(dir, l.Model, l.Base) }

// Load reads the adapter saved in dir into the attached adapters; the
// saved adapter_config.json must describe the same adapters.
func (l *LoRAAdapters) Load(dir string) error {
	cj, err := os.ReadFile(filepath.Join(dir, ckpt.AdapterConfigFile))
	if err != nil {
		return fmt.Errorf("lora: %w", err)
	}
	saved, err := model.ParseLoRAAdapterConfig(cj)
	if err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	mods := l.Model.LM.LoRAModules(model.LoRAPrefix)
	if len(mods) == 0 {
		return errors.New("lora: no adapter attached to the model")
	}
	cur := mods[0].Linear.LoRA
	ours, err := model.LoRAAdapterConfigJSON(l.Model.LM, "")
	if err != nil {
		return err
	}
	want, _ := model.ParseLoRAAdapterConfig(ours)
	st, sv := slices.Clone(saved.Targets), slices.Clone(want.Targets)
	sort.Strings(st)
	sort.Strings(sv)
	if saved.Rank != cur.Rank || saved.Alpha != cur.Alpha || !slices.Equal(st, sv) {
		return fmt.Errorf("%s: adapter r=%d alpha=%v targets=%v, this run attaches r=%d alpha=%v targets=%v",
			filepath.Join(dir, ckpt.AdapterConfigFile), saved.Rank, saved.Alpha, st, cur.Rank, cur.Alpha, sv)
	}
	return model.ReadLoRATensors(dir, l.Model)
}
