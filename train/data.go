package train

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/magma-go/magma/data"
	"github.com/magma-go/magma/llm/tokenizer"
	"github.com/magma-go/magma/model"
	"go.yaml.in/yaml/v3"
)

// MixtureConfig decodes the recipe's `data:` section with the data
// package's parser; relative paths resolve against the recipe file's
// directory (the working directory for embedded recipes).
func (c *Config) MixtureConfig() (*data.MixtureConfig, error) {
	if !c.HasData() {
		return nil, fmt.Errorf("train config %s: no data: section (give one, or use `magma finetune sft --data`)", c.Source)
	}
	sec, err := yaml.Marshal(&c.Data)
	if err != nil {
		return nil, fmt.Errorf("train config %s: data: %w", c.Source, err)
	}
	base := "."
	if _, err := os.Stat(c.Source); err == nil {
		base = filepath.Dir(c.Source)
	}
	mc, err := data.ParseMixtureConfig(sec, base)
	if err != nil {
		return nil, fmt.Errorf("train config %s: %w", c.Source, err)
	}
	if mc.BatchSize != 0 && mc.BatchSize != c.BatchSize {
		return nil, fmt.Errorf("train config %s: data.batch_size %d disagrees with batch_size %d (the trainer's batch_size is used; drop data.batch_size)", c.Source, mc.BatchSize, c.BatchSize)
	}
	return mc, nil
}

// ImageOptions are the data pipeline's image settings for a model's
// preprocessor.
func ImageOptions(pp *model.PreprocessorConfig) data.ImageOptions {
	o := data.ImageOptions{Base: pp.BaseImgSize, MaxCrops: pp.NumCrops}
	o.Mean, o.Std = pp.Normalization()
	return o
}

// OpenMixture builds the recipe's data mixture (generating synthetic data
// into runDir when configured) and returns its opener: a seeded
// data.MixtureStream with the trainer's batch size, restored from a
// checkpoint's state when given one.
func OpenMixture(c *Config, mc *data.MixtureConfig, tok *tokenizer.Tokenizer, pp *model.PreprocessorConfig, runDir string) (StreamOpener, error) {
	env := &data.SampleBuilder{Tokenizer: tok, Image: ImageOptions(pp)}
	mix, err := mc.Build(env, runDir, c.Seed)
	if err != nil {
		return nil, err
	}
	return func(state []byte) (data.Stream, error) {
		return mix.Stream(context.Background(), data.StreamOptions{Seed: c.Seed, BatchSize: c.BatchSize, Workers: mc.Workers, Prefetch: mc.Prefetch, State: state})
	}, nil
}
