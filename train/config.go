package train

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/magma-go/magma/llm"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/magma-go/magma/configs/pretrain"
	"github.com/magma-go/magma/model/ckpt"
	"go.yaml.in/yaml/v3"
)

// Config is a training recipe (configs/pretrain/*.yaml). The `data:`
// section belongs to the data pipeline (data.MixtureConfig) and is kept here
// as a raw YAML node; everything else configures the engine.
type Config struct {
	Model     ModelConfig     `yaml:"model"`
	Data      yaml.Node       `yaml:"data"`
	Optimizer OptimizerConfig `yaml:"optimizer"`
	Schedule  ScheduleConfig  `yaml:"schedule"`
	Steps     int             `yaml:"steps"`          // optimizer updates in the run (schedule length)
	BatchSize int             `yaml:"batch_size"`     // samples per micro-batch
	GradAccum int             `yaml:"grad_accum"`     // micro-batches per update
	Trainable string          `yaml:"trainable"`      // all | vision_frozen | projector_only | lora
	LoRA      llm.LoRAConfig  `yaml:"lora,omitempty"` // adapters of trainable: lora
	SeqBucket int             `yaml:"seq_bucket"`     // padded lengths are multiples of this
	MaxSeqLen int             `yaml:"max_seq_len"`    // 0: the model's max_position_embeddings
	// ActivationCheckpointing keeps only the residual stream (the input of
	// every ConvNeXt block and decoder layer) from the forward pass and
	// recomputes the rest inside backward: less memory, about one more
	// forward pass of time, bit-identical gradients.
	ActivationCheckpointing bool             `yaml:"activation_checkpointing,omitempty"`
	Checkpoint              CheckpointConfig `yaml:"checkpoint"`
	LogEvery                int              `yaml:"log_every"`
	Seed                    uint64           `yaml:"seed"`

	// Source names the file (or embedded recipe) for error messages.
	Source string `yaml:"-"`
}

// ModelConfig says where the initial weights come from: a Hugging Face
// checkpoint directory (init_from) or a random initialisation of a preset.
type ModelConfig struct {
	Preset   string `yaml:"preset"`    // preset name or YAML path (configs/*.yaml)
	InitFrom string `yaml:"init_from"` // checkpoint directory; wins over preset
	// VocabSize, when > 0, overrides the preset's text vocab_size (tests and
	// toy runs with small synthetic vocabularies).
	VocabSize int `yaml:"vocab_size"`
	// Dtype of init_from's weights in memory: "" chooses (float32 copies
	// to train all, vision_frozen or projector_only; the stored dtypes,
	// mapped in place and frozen, under trainable: lora); f32, bf16 or f16
	// convert on load (bf16/f16 only with trainable: lora).
	Dtype string `yaml:"dtype,omitempty"`
	// Verify checks init_from before training (magma --verify): its files
	// against manifest.json's checksums, its weights for NaN and infinite
	// values (model.LoadOptions.Verify). Not part of the recipe.
	Verify bool `yaml:"-"`
	// Verified is what Verify checked, set by InitModel.
	Verified *ckpt.Verification `yaml:"-"`
}

// OptimizerConfig configures AdamW (PyTorch/Hugging Face defaults).
type OptimizerConfig struct {
	Name        string  `yaml:"name"` // adamw
	LR          float64 `yaml:"lr"`
	Beta1       float64 `yaml:"beta1"`
	Beta2       float64 `yaml:"beta2"`
	Eps         float64 `yaml:"eps"`
	WeightDecay float64 `yaml:"weight_decay"`
	MaxGradNorm float64 `yaml:"max_grad_norm"` // 0 disables clipping
}

// ScheduleConfig is the learning-rate schedule (Hugging Face semantics).
type ScheduleConfig struct {
	Name        string  `yaml:"name"` // constant | cosine
	WarmupRatio float64 `yaml:"warmup_ratio"`
}

// CheckpointConfig sets the checkpoint cadence and retention.
type CheckpointConfig struct {
	Every int `yaml:"every"` // updates between checkpoints (0: only at the end)
	Keep  int `yaml:"keep"`  // newest checkpoints kept (0: all)
}

// DefaultConfig is the recipe every file is decoded over: unset keys keep
// these values (Hugging Face TrainingArguments defaults where they exist).
func DefaultConfig() Config {
	return Config{
		Model:      ModelConfig{Preset: "tiny"},
		Optimizer:  OptimizerConfig{Name: "adamw", LR: 5e-5, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0, MaxGradNorm: 1},
		Schedule:   ScheduleConfig{Name: "constant"},
		Steps:      100,
		BatchSize:  1,
		GradAccum:  1,
		Trainable:  TrainAll,
		SeqBucket:  32,
		Checkpoint: CheckpointConfig{Every: 0, Keep: 2},
		LogEvery:   1,
	}
}

// Trainable parts.
const (
	TrainAll          = "all"
	TrainVisionFrozen = "vision_frozen"
	TrainProjector    = "projector_only"
	// TrainLoRA trains only LoRA adapters (the recipe's lora: section, or
	// Options.Adapters) on the language model's linear layers; every
	// checkpoint weight stays frozen. Adapter tensors are weight-decayed
	// like any matrix when optimizer.weight_decay > 0 (Hugging Face's
	// Trainer and OpenVLA's AdamW decay lora_A/lora_B too). Checkpoints keep
	// the frozen base weights (self-contained: eval, serve and --merge need
	// nothing else) plus PEFT's adapter_model.safetensors and
	// adapter_config.json.
	TrainLoRA = "lora"
)

// LoadConfig reads a recipe file, or the embedded recipe of that name when
// nameOrPath has no separator and no .yaml suffix ("" is the default recipe).
func LoadConfig(nameOrPath string) (*Config, error) {
	if nameOrPath == "" {
		nameOrPath = pretrain.Default
	}
	if strings.ContainsRune(nameOrPath, '/') || strings.HasSuffix(nameOrPath, ".yaml") || strings.HasSuffix(nameOrPath, ".yml") {
		data, err := os.ReadFile(nameOrPath)
		if err != nil {
			return nil, fmt.Errorf("train config: %w", err)
		}
		c, err := ParseConfig(data, nameOrPath)
		if err != nil {
			return nil, err
		}
		// Relative model paths in a file are relative to the file.
		dir := filepath.Dir(nameOrPath)
		if c.Model.InitFrom != "" && !filepath.IsAbs(c.Model.InitFrom) {
			if _, err := os.Stat(c.Model.InitFrom); err != nil {
				c.Model.InitFrom = filepath.Join(dir, c.Model.InitFrom)
			}
		}
		return c, nil
	}
	data, err := pretrain.Raw(nameOrPath)
	if err != nil {
		return nil, err
	}
	return ParseConfig(data, "configs/pretrain/"+nameOrPath+".yaml")
}

// ParseConfig decodes a recipe over DefaultConfig and validates it; source
// names the file in errors. Unknown keys are errors.
func ParseConfig(data []byte, source string) (*Config, error) {
	c := DefaultConfig()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("train config %s: empty file", source)
		}
		return nil, fmt.Errorf("train config %s: %w", source, err)
	}
	c.Source = source
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Limits of the numbers that drive work (Validate): a value above its
// limit is an error naming the key, the value and the limit.
const (
	MaxSteps     = 10_000_000 // steps (also --max-steps)
	MaxBatchSize = 4096       // batch_size
	MaxGradAccum = 4096       // grad_accum
	MaxSeqBucket = 8192       // seq_bucket
	MaxSeqLen    = 131072     // max_seq_len
	MaxLoRARank  = 4096       // lora.rank
	MaxVocabSize = 1 << 21    // model.vocab_size
	MaxKeep      = 1000       // checkpoint.keep
)

// Validate checks every key; errors name the file and the key.
func (c *Config) Validate() error {
	bad := func(key, format string, a ...any) error {
		return fmt.Errorf("train config %s: %s: %s", c.Source, key, fmt.Sprintf(format, a...))
	}
	finite := func(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
	o := c.Optimizer
	switch {
	case c.Model.Preset == "" && c.Model.InitFrom == "":
		return bad("model", "needs preset or init_from")
	case c.Model.VocabSize < 0:
		return bad("model.vocab_size", "must be >= 0, got %d", c.Model.VocabSize)
	case o.Name != "adamw":
		return bad("optimizer.name", "only adamw is supported, got %q", o.Name)
	case !finite(o.LR) || o.LR < 0:
		return bad("optimizer.lr", "must be a finite number >= 0, got %v", o.LR)
	case !finite(o.Beta1) || o.Beta1 < 0 || o.Beta1 >= 1:
		return bad("optimizer.beta1", "must be in [0, 1), got %v", o.Beta1)
	case !finite(o.Beta2) || o.Beta2 < 0 || o.Beta2 >= 1:
		return bad("optimizer.beta2", "must be in [0, 1), got %v", o.Beta2)
	case !finite(o.Eps) || o.Eps <= 0:
		return bad("optimizer.eps", "must be > 0, got %v", o.Eps)
	case !finite(o.WeightDecay) || o.WeightDecay < 0:
		return bad("optimizer.weight_decay", "must be >= 0, got %v", o.WeightDecay)
	case !finite(o.MaxGradNorm) || o.MaxGradNorm < 0:
		return bad("optimizer.max_grad_norm", "must be >= 0 (0 disables clipping), got %v", o.MaxGradNorm)
	case c.Schedule.Name != "constant" && c.Schedule.Name != "cosine":
		return bad("schedule.name", "must be constant or cosine, got %q", c.Schedule.Name)
	case !finite(c.Schedule.WarmupRatio) || c.Schedule.WarmupRatio < 0 || c.Schedule.WarmupRatio > 1:
		return bad("schedule.warmup_ratio", "must be in [0, 1], got %v", c.Schedule.WarmupRatio)
	case c.Model.VocabSize > MaxVocabSize:
		return bad("model.vocab_size", "%d is above the limit %d", c.Model.VocabSize, MaxVocabSize)
	case c.Steps <= 0:
		return bad("steps", "must be positive, got %d", c.Steps)
	case c.Steps > MaxSteps:
		return bad("steps", "%d is above the limit %d", c.Steps, MaxSteps)
	case c.BatchSize <= 0:
		return bad("batch_size", "must be positive, got %d", c.BatchSize)
	case c.BatchSize > MaxBatchSize:
		return bad("batch_size", "%d is above the limit %d", c.BatchSize, MaxBatchSize)
	case c.GradAccum <= 0:
		return bad("grad_accum", "must be positive, got %d", c.GradAccum)
	case c.GradAccum > MaxGradAccum:
		return bad("grad_accum", "%d is above the limit %d", c.GradAccum, MaxGradAccum)
	case c.LoRA.Rank > MaxLoRARank:
		return bad("lora.rank", "%d is above the limit %d", c.LoRA.Rank, MaxLoRARank)
	case c.Trainable != TrainAll && c.Trainable != TrainVisionFrozen && c.Trainable != TrainProjector && c.Trainable != TrainLoRA:
		return bad("trainable", "must be all, vision_frozen, projector_only or lora, got %q", c.Trainable)
	case c.LoRA.Rank < 0:
		return bad("lora.rank", "must be >= 0, got %d", c.LoRA.Rank)
	case c.Trainable == TrainLoRA && c.LoRA.Rank == 0:
		return bad("lora.rank", "trainable: lora needs a positive rank (OpenVLA's LIBERO recipe uses 32)")
	case c.Trainable != TrainLoRA && (c.LoRA.Rank != 0 || len(c.LoRA.Targets) > 0):
		return bad("lora", "adapters are only trained with trainable: lora (got trainable: %s)", c.Trainable)
	case !finite(c.LoRA.Alpha) || c.LoRA.Alpha < 0:
		return bad("lora.alpha", "must be >= 0 (0: equal to the rank), got %v", c.LoRA.Alpha)
	case !finite(c.LoRA.Dropout) || c.LoRA.Dropout < 0 || c.LoRA.Dropout >= 1:
		return bad("lora.dropout", "must be in [0, 1), got %v", c.LoRA.Dropout)
	case c.LoRA.Dropout != 0:
		return bad("lora.dropout", "%v: dropout > 0 is not supported in training: Gorgonia's Dropout seeds itself from the clock, so the run could neither be reproduced nor resumed exactly (OpenVLA's LIBERO recipe uses 0)", c.LoRA.Dropout)
	case c.SeqBucket <= 0:
		return bad("seq_bucket", "must be positive, got %d", c.SeqBucket)
	case c.SeqBucket > MaxSeqBucket:
		return bad("seq_bucket", "%d is above the limit %d", c.SeqBucket, MaxSeqBucket)
	case c.MaxSeqLen < 0:
		return bad("max_seq_len", "must be >= 0, got %d", c.MaxSeqLen)
	case c.MaxSeqLen > MaxSeqLen:
		return bad("max_seq_len", "%d is above the limit %d", c.MaxSeqLen, MaxSeqLen)
	case c.Checkpoint.Every < 0:
		return bad("checkpoint.every", "must be >= 0, got %d", c.Checkpoint.Every)
	case c.Checkpoint.Every > MaxSteps:
		return bad("checkpoint.every", "%d is above the limit %d", c.Checkpoint.Every, MaxSteps)
	case c.Checkpoint.Keep < 0:
		return bad("checkpoint.keep", "must be >= 0, got %d", c.Checkpoint.Keep)
	case c.Checkpoint.Keep > MaxKeep:
		return bad("checkpoint.keep", "%d is above the limit %d", c.Checkpoint.Keep, MaxKeep)
	case c.LogEvery <= 0:
		return bad("log_every", "must be positive, got %d", c.LogEvery)
	case c.LogEvery > MaxSteps:
		return bad("log_every", "%d is above the limit %d", c.LogEvery, MaxSteps)
	}
	return nil
}

// HasData reports whether the recipe has a data section.
func (c *Config) HasData() bool { return c.Data.Kind != 0 }

// Hash identifies everything that changes the numbers of a run (model,
// data, optimizer, schedule, batch, seed); steps, checkpoint cadence and
// logging are left out so a run can be extended or checkpointed differently.
func (c *Config) Hash() string {
	cc := *c
	// Activation checkpointing changes memory and time, not the numbers: a
	// run may resume with it switched.
	cc.Steps, cc.Checkpoint, cc.LogEvery, cc.Source, cc.ActivationCheckpointing = 0, CheckpointConfig{}, 0, "", false
	data, err := yaml.Marshal(&cc)
	if err != nil {
		data = []byte(fmt.Sprintf("%+v", cc))
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// Marshal renders the resolved recipe as YAML (written into the run folder).
func (c *Config) Marshal() ([]byte, error) { return yaml.Marshal(c) }
