package train

import (
	"context"
	"fmt"

	"github.com/magma-go/magma/data"
	"github.com/magma-go/magma/llm"
	"github.com/magma-go/magma/llm/tokenizer"
	"github.com/magma-go/magma/model"
	"go.yaml.in/yaml/v3"
)

// LIBERO fine-tuning (`magma finetune libero`): the recipe of a run on one
// LIBERO suite and its data, on the pretraining engine. The checkpoint
// metadata the run writes (statistics, split) is data.Libero's
// (data/libero_meta.go).

// LiberoRun is what a LIBERO fine-tuning run trains on and how.
type LiberoRun struct {
	// Data is the suite folder and Libero the selection of demos, both as
	// asked (data.OpenLibero's arguments).
	Data   string
	Libero data.LiberoOptions
	// Init is the checkpoint to start from, Dtype its weights' type.
	Init, Dtype string
	// BatchSize, GradAccum, Steps and Every (updates between checkpoints)
	// replace the recipe's.
	BatchSize, GradAccum, Steps, Every int
	// LR is the constant learning rate; 0 keeps the recipe's.
	LR float64
	// LoRA with Rank > 0 trains adapters only (the embedded recipe
	// "libero"); Rank 0 fine-tunes the weights Trainable selects
	// ("libero-full").
	LoRA      llm.LoRAConfig
	Trainable string
}

// Config is the run's recipe: the embedded libero or libero-full recipe
// with r's settings. suite is the suite as data.OpenLibero resolved it. The
// data section only records what was read, so that --resume refuses
// another suite or split (the recipe hash covers it).
func (r *LiberoRun) Config(suite string) (*Config, error) {
	rec := "libero"
	if r.LoRA.Rank == 0 {
		rec = "libero-full"
	}
	c, err := LoadConfig(rec)
	if err != nil {
		return nil, err
	}
	c.Source = "finetune libero"
	c.Model = ModelConfig{InitFrom: r.Init, Dtype: r.Dtype}
	c.BatchSize, c.GradAccum, c.Steps, c.Checkpoint.Every = r.BatchSize, r.GradAccum, r.Steps, r.Every
	if r.LR != 0 {
		c.Optimizer.LR = r.LR
	}
	if r.LoRA.Rank > 0 {
		c.LoRA = r.LoRA
	} else {
		c.Trainable = r.Trainable
	}
	o := r.Libero
	var node yaml.Node
	if err := node.Encode(map[string]any{"libero": map[string]any{"data": r.Data, "suite": suite, "shots": o.Shots, "shots_per": o.ShotsPer,
		"data_seed": o.Seed, "remove_noops": o.RemoveNoops, "camera": o.Camera}}); err != nil {
		return nil, err
	}
	c.Data = node
	return c, nil
}

// LiberoData is the training data of a LIBERO run: the training demos of a
// suite as the only source of a mixture.
type LiberoData struct {
	Source  *data.LiberoSource
	Mixture *data.Mixture
}

// NewLiberoData builds l's training samples for a model of config cfg.
// The chat options match model.Pipeline.ChatOptions (what /act and eval
// prompt with): images wrapped per the checkpoint's mm_use_image_start_end.
func NewLiberoData(l *data.Libero, tok *tokenizer.Tokenizer, pp *model.PreprocessorConfig, cfg *model.Config) (*LiberoData, error) {
	env, err := data.NewSampleBuilder(tok, ImageOptions(pp))
	if err != nil {
		return nil, err
	}
	env.Chat = tokenizer.ChatOptions{ImageStartEnd: cfg.ImageStartEnd()}
	src, err := data.NewLiberoSource(env, l, "train")
	if err != nil {
		return nil, err
	}
	mix, err := data.NewMixture(env, []data.Source{src}, []float64{1})
	if err != nil {
		return nil, err
	}
	return &LiberoData{Source: src, Mixture: mix}, nil
}

// Opener opens the stream of global batches of batch samples drawn with
// seed (from a saved state on resume).
func (d *LiberoData) Opener(ctx context.Context, seed uint64, batch int) StreamOpener {
	return func(state []byte) (data.Stream, error) {
		return d.Mixture.Stream(ctx, data.StreamOptions{Seed: seed, BatchSize: batch, State: state})
	}
}

// LoRASummary describes the adapters attached to m: rank, alpha, layers
// and the parameters that train.
func LoRASummary(m *model.Magma, ad *LoRAAdapters) string {
	mods, n := m.LM.LoRAModules(model.LoRAPrefix), 0
	for _, a := range ad.Tensors() {
		n += a.T.Shape().TotalSize()
	}
	l0 := mods[0].Linear.LoRA
	return fmt.Sprintf("LoRA r=%d alpha=%g on %d layers: %d adapter parameters train, the base weights are frozen", l0.Rank, l0.Alpha, len(mods), n)
}
