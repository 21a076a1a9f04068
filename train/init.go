package train

import (
	"fmt"
	"os"
	"path/filepath"

	"gorgonia.org/tensor"

	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/model"
)

// InitModel builds the starting model of a recipe: the checkpoint in
// model.init_from, or model.preset randomly initialised with the run's seed
// (model.InitRandom). tokenizer is the tokenizer directory to copy into
// checkpoints ("" when unknown or when the vocabulary was overridden).
func InitModel(c *Config) (m *model.Magma, pp *model.PreprocessorConfig, tokenizer string, err error) {
	if c.Model.InitFrom != "" {
		cfg, _, err := model.LoadConfig(c.Model.InitFrom)
		if err != nil {
			return nil, nil, "", fmt.Errorf("train config %s: model.init_from: %w", c.Source, err)
		}
		// LoRA keeps the base in its stored dtype: LoadWith checks its real
		// bytes; the other settings train float32 copies (4 of them).
		if c.Trainable != TrainLoRA {
			if err := model.CheckMemory(cfg, c.memoryCopies(), "training "+c.Model.InitFrom); err != nil {
				return nil, nil, "", fmt.Errorf("train config %s: %w", c.Source, err)
			}
		}
		opts, err := c.loadOptions()
		if err != nil {
			return nil, nil, "", fmt.Errorf("train config %s: %w", c.Source, err)
		}
		opts.Verify = c.Model.Verify
		ld, err := model.LoadWith(c.Model.InitFrom, opts)
		if err != nil {
			return nil, nil, "", fmt.Errorf("train config %s: model.init_from: %w", c.Source, err)
		}
		c.Model.Verified = ld.Verified
		if c.Model.VocabSize != 0 && c.Model.VocabSize != ld.Model.Config.Text.VocabSize {
			return nil, nil, "", fmt.Errorf("train config %s: model.vocab_size %d differs from %s's %d", c.Source, c.Model.VocabSize, c.Model.InitFrom, ld.Model.Config.Text.VocabSize)
		}
		tok := ""
		if _, err := os.Stat(filepath.Join(c.Model.InitFrom, "tokenizer.json")); err == nil {
			tok = c.Model.InitFrom
		}
		return ld.Model, ld.Preprocessor, tok, nil
	}
	p, err := model.LoadPreset(c.Model.Preset)
	if err != nil {
		return nil, nil, "", fmt.Errorf("train config %s: model.preset: %w", c.Source, err)
	}
	cfg := p.Config
	tok := p.Tokenizer
	if v := c.Model.VocabSize; v > 0 && v != cfg.Text.VocabSize {
		cfg.Text.VocabSize = v
		if cfg.ImageTokenIndex >= v {
			cfg.ImageTokenIndex = v - 1
		}
		for _, id := range []**int{&cfg.Text.PadTokenID} {
			if *id != nil && **id >= v {
				*id = nil
			}
		}
		if err := cfg.Resolve(); err != nil {
			return nil, nil, "", fmt.Errorf("train config %s: model.vocab_size: %w", c.Source, err)
		}
		tok = ""
	}
	if err := model.CheckMemory(cfg, c.memoryCopies(), "training preset "+c.Model.Preset); err != nil {
		return nil, nil, "", fmt.Errorf("train config %s: %w", c.Source, err)
	}
	if m, err = model.New(cfg); err != nil {
		return nil, nil, "", fmt.Errorf("train config %s: model: %w", c.Source, err)
	}
	if err := m.InitRandom(c.Seed); err != nil {
		return nil, nil, "", err
	}
	return m, p.Preprocessor, tok, nil
}

// loadOptions says how init_from is loaded. Trained weights are updated in
// place: float32 copies in process memory, never the read-only mapped
// shards. Under trainable: lora the base is frozen (only the float32
// adapters train), so it keeps the checkpoint's dtype and is used in place
// (Magma-8B: 17.8 GB of bf16 instead of 35.6 GB of float32).
func (c *Config) loadOptions() (model.LoadOptions, error) {
	var dt tensor.Dtype
	if c.Model.Dtype != "" && c.Model.Dtype != "stored" {
		var err error
		if dt, err = kernels.ParseDtype(c.Model.Dtype); err != nil || dt == tensor.Float64 {
			return model.LoadOptions{}, fmt.Errorf("model.dtype %q: want f32, bf16 or f16", c.Model.Dtype)
		}
	}
	if c.Trainable == TrainLoRA {
		return model.LoadOptions{Dtype: dt}, nil
	}
	if dt != (tensor.Dtype{}) && dt != tensor.Float32 {
		return model.LoadOptions{}, fmt.Errorf("model.dtype %s: trainable: %s trains float32 weights (a %s base can only be trained through adapters: trainable: lora)", c.Model.Dtype, c.Trainable, c.Model.Dtype)
	}
	return model.LoadOptions{Dtype: tensor.Float32, Writable: true}, nil
}

// memoryCopies estimates how many parameter-sized float32 buffers training
// holds: weights plus, for the trained part, gradients and two AdamW
// moments. The decoder dominates every preset, so vision_frozen counts as
// all; projector_only and lora train a negligible share.
func (c *Config) memoryCopies() int {
	switch c.Trainable {
	case TrainProjector, TrainLoRA:
		return 1
	}
	return 4
}
