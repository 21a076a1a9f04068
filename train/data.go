package train

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/magma-go/magma/data"
	"github.com/magma-go/magma/llm/tokenizer"
	"github.com/magma-go/magma/model"
	"github.com/magma-go/magma/train/dist"
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
	return openMixture(c, mc, tok, pp, runDir, 0, 1)
}

// OpenMixtureComm is OpenMixture for a data-parallel job (comm with more
// than one rank; otherwise it is OpenMixture): each rank's stream draws the
// global stream and builds its slice of every global batch. Rank 0
// prepares the data first (generated synthetic data is written once), then
// the others; an error on any rank is every rank's error.
func OpenMixtureComm(c *Config, mc *data.MixtureConfig, tok *tokenizer.Tokenizer, pp *model.PreprocessorConfig, runDir string, comm *dist.Comm) (StreamOpener, error) {
	if !multi(comm) {
		return OpenMixture(c, mc, tok, pp, runDir)
	}
	var open StreamOpener
	var err error
	if comm.Rank() == 0 {
		open, err = openMixture(c, mc, tok, pp, runDir, 0, comm.Size())
	}
	if err = agree(comm, err); err != nil {
		return nil, err
	}
	if comm.Rank() != 0 {
		open, err = openMixture(c, mc, tok, pp, runDir, comm.Rank(), comm.Size())
	}
	if err = agree(comm, err); err != nil {
		return nil, err
	}
	return open, nil
}

func openMixture(c *Config, mc *data.MixtureConfig, tok *tokenizer.Tokenizer, pp *model.PreprocessorConfig, runDir string, rank, world int) (StreamOpener, error) {
	env := &data.SampleBuilder{Tokenizer: tok, Image: ImageOptions(pp)}
	mix, err := mc.Build(env, runDir, c.Seed)
	if err != nil {
		return nil, err
	}
	return func(state []byte) (data.Stream, error) {
		return mix.Stream(context.Background(), data.StreamOptions{Seed: c.Seed, BatchSize: c.BatchSize, Workers: mc.Workers, Prefetch: mc.Prefetch, State: state, Rank: rank, World: world})
	}, nil
}

// SliceStreams adapts an opener of global batches to a data-parallel job:
// each rank reads every global batch and keeps its BatchSize/N slice (exact,
// but every rank builds every sample; OpenMixtureComm builds only its own).
func SliceStreams(open StreamOpener, comm *dist.Comm) StreamOpener {
	if !multi(comm) {
		return open
	}
	return func(state []byte) (data.Stream, error) {
		s, err := open(state)
		if err != nil {
			return nil, err
		}
		return &sliceStream{Stream: s, rank: comm.Rank(), world: comm.Size()}, nil
	}
}

type sliceStream struct {
	data.Stream
	rank, world int
}

func (s *sliceStream) Next(ctx context.Context) (data.Batch, error) {
	b, err := s.Stream.Next(ctx)
	if err != nil {
		return b, err
	}
	if len(b.Samples)%s.world != 0 {
		return data.Batch{}, fmt.Errorf("the data stream's batch of %d samples does not divide over %d ranks", len(b.Samples), s.world)
	}
	n := len(b.Samples) / s.world
	b.Samples = b.Samples[s.rank*n : (s.rank+1)*n]
	return b, nil
}
