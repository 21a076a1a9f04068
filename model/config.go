package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/magma-go/magma/configs"
	"github.com/magma-go/magma/llm"
	"github.com/magma-go/magma/vision"
)

// File names of a Hugging Face model directory.
const (
	ConfigFileName       = "config.json"
	PreprocessorFileName = "preprocessor_config.json"
)

// DefaultImageTokenIndex is Magma-8B's <image> token id.
const DefaultImageTokenIndex = 128257

// CLIP normalisation constants (OPENAI_CLIP_MEAN/STD), Magma's defaults.
var (
	CLIPMean = []float64{0.48145466, 0.4578275, 0.40821073}
	CLIPStd  = []float64{0.26862954, 0.26130258, 0.27577711}
)

// Config is Magma's config.json.
type Config struct {
	Architectures   []string      `json:"architectures,omitempty"`
	ModelType       string        `json:"model_type"`
	Vision          vision.Config `json:"vision_config"`
	Text            llm.Config    `json:"text_config"`
	ImageTokenIndex int           `json:"image_token_index"`
	TorchDType      string        `json:"torch_dtype,omitempty"`
	// MMUseImageStartEnd is the checkpoint's mm_use_image_start_end: the
	// prompt wraps each image as <image_start><image><image_end> (Magma's
	// agents read model.config.mm_use_image_start_end to decide). Absent
	// means true, as Magma-8B's model card prompts with the wrapping.
	MMUseImageStartEnd *bool `json:"mm_use_image_start_end,omitempty"`
}

// ImageStartEnd reports whether prompts wrap images in
// <image_start>/<image_end> (MMUseImageStartEnd, true when absent).
func (c *Config) ImageStartEnd() bool {
	return c.MMUseImageStartEnd == nil || *c.MMUseImageStartEnd
}

// PreprocessorConfig is Magma's preprocessor_config.json (MagmaImageProcessor).
type PreprocessorConfig struct {
	AnyresStrategy     string    `json:"anyres_strategy" yaml:"anyres_strategy"`
	BaseImgSize        int       `json:"base_img_size" yaml:"base_img_size"`
	NumCrops           int       `json:"num_crops" yaml:"num_crops"`
	ImageMean          []float64 `json:"image_mean" yaml:"image_mean"`
	ImageStd           []float64 `json:"image_std" yaml:"image_std"`
	DoConvertRGB       *bool     `json:"do_convert_rgb,omitempty" yaml:"do_convert_rgb,omitempty"`
	ImageProcessorType string    `json:"image_processor_type,omitempty" yaml:"image_processor_type,omitempty"`
	ProcessorClass     string    `json:"processor_class,omitempty" yaml:"processor_class,omitempty"`
}

// DefaultPreprocessor derives the preprocessor settings from the model
// config (used when preprocessor_config.json is absent).
func DefaultPreprocessor(cfg *Config) *PreprocessorConfig {
	p := &PreprocessorConfig{
		AnyresStrategy:     "crop",
		BaseImgSize:        512,
		NumCrops:           1,
		ImageMean:          append([]float64(nil), CLIPMean...),
		ImageStd:           append([]float64(nil), CLIPStd...),
		ImageProcessorType: "MagmaImageProcessor",
		ProcessorClass:     "MagmaProcessor",
	}
	if cfg != nil {
		if cfg.Vision.AnyresStrategy != "" {
			p.AnyresStrategy = cfg.Vision.AnyresStrategy
		}
		if cfg.Vision.ImageSize > 0 {
			p.BaseImgSize = cfg.Vision.ImageSize
		}
		if cfg.Vision.MaxNumCrops > 0 {
			p.NumCrops = cfg.Vision.MaxNumCrops
		}
	}
	return p
}

// Normalization is image_mean and image_std as the float32 values the
// pixel loop uses.
func (p *PreprocessorConfig) Normalization() (mean, std [3]float32) {
	for i := range 3 {
		mean[i], std[i] = float32(p.ImageMean[i]), float32(p.ImageStd[i])
	}
	return mean, std
}

// Preprocess turns a decoded image into the model's input: anyres crops of
// base_img_size (at most num_crops), normalised with image_mean/image_std.
func (p *PreprocessorConfig) Preprocess(img vision.Image) (*vision.Pixels, error) {
	mean, std := p.Normalization()
	return vision.Preprocess(img, p.BaseImgSize, p.NumCrops, mean, std)
}

// Resolve fills unset fields from cfg's defaults and validates.
func (p *PreprocessorConfig) Resolve(cfg *Config) error {
	d := DefaultPreprocessor(cfg)
	if p.AnyresStrategy == "" {
		p.AnyresStrategy = d.AnyresStrategy
	}
	if p.BaseImgSize == 0 {
		p.BaseImgSize = d.BaseImgSize
	}
	if p.NumCrops == 0 {
		p.NumCrops = d.NumCrops
	}
	if p.ImageMean == nil {
		p.ImageMean = d.ImageMean
	}
	if p.ImageStd == nil {
		p.ImageStd = d.ImageStd
	}
	switch {
	case p.AnyresStrategy != "crop" && p.AnyresStrategy != "global":
		return fmt.Errorf("key \"anyres_strategy\": %q not supported (crop or global)", p.AnyresStrategy)
	case p.BaseImgSize <= 0 || p.BaseImgSize%vision.FeatureStride != 0:
		return fmt.Errorf("key \"base_img_size\": %d must be a positive multiple of %d", p.BaseImgSize, vision.FeatureStride)
	case cfg != nil && cfg.Vision.ImageSize > 0 && p.BaseImgSize != cfg.Vision.ImageSize:
		// Checked once here: every crop is then the trunk's input size.
		return fmt.Errorf("key \"base_img_size\": %d differs from vision_config.img_size %d (the crops must be the vision tower's input size)", p.BaseImgSize, cfg.Vision.ImageSize)
	case p.NumCrops < 1 || p.NumCrops > vision.MaxCrops:
		return fmt.Errorf("key \"num_crops\": %d must be in [1, %d]", p.NumCrops, vision.MaxCrops)
	case int64(p.NumCrops)*int64(p.BaseImgSize)*int64(p.BaseImgSize) > vision.MaxOutputPixels:
		return fmt.Errorf("key \"num_crops\": %d crops of %d px make more than %d pixels per image", p.NumCrops, p.BaseImgSize, int64(vision.MaxOutputPixels))
	case len(p.ImageMean) != 3:
		return fmt.Errorf("key \"image_mean\": want 3 values, got %d", len(p.ImageMean))
	case len(p.ImageStd) != 3:
		return fmt.Errorf("key \"image_std\": want 3 values, got %d", len(p.ImageStd))
	}
	for i, s := range p.ImageStd {
		if s <= 0 {
			return fmt.Errorf("key \"image_std\": value %d is %g, must be positive", i, s)
		}
	}
	return nil
}

// Resolve fills defaults of both sub-configs and validates them, including
// image_token_index < text_config.vocab_size. Errors name the key.
func (c *Config) Resolve() error {
	if c.ModelType == "" {
		c.ModelType = "magma"
	}
	if len(c.Architectures) == 0 {
		c.Architectures = []string{"MagmaForCausalLM"}
	}
	if err := c.Vision.Resolve(); err != nil {
		return fmt.Errorf("key \"vision_config\": %w", err)
	}
	if err := c.Text.Resolve(); err != nil {
		return fmt.Errorf("key \"text_config\": %w", err)
	}
	if c.ImageTokenIndex == 0 {
		c.ImageTokenIndex = DefaultImageTokenIndex
	}
	if c.ImageTokenIndex < 0 || c.ImageTokenIndex >= c.Text.VocabSize {
		return fmt.Errorf("key \"image_token_index\": %d outside text_config.vocab_size %d", c.ImageTokenIndex, c.Text.VocabSize)
	}
	for _, id := range c.Text.EOSTokenIDs() {
		if id == c.ImageTokenIndex {
			return fmt.Errorf("key \"image_token_index\": %d is also text_config.eos_token_id: generation would stop at every image", id)
		}
	}
	if c.Text.BosTokenID == c.ImageTokenIndex {
		return fmt.Errorf("key \"image_token_index\": %d is also text_config.bos_token_id", c.ImageTokenIndex)
	}
	return nil
}

// jsonKeyError rewrites encoding/json errors so they name the key.
func jsonKeyError(source string, err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		key := te.Field
		if key == "" {
			key = "(top level)"
		}
		return fmt.Errorf("%s: key %q: cannot use JSON %s as %s", source, key, te.Value, te.Type)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("%s: invalid JSON at byte %d: %w", source, se.Offset, err)
	}
	return fmt.Errorf("%s: %w", source, err)
}

// ParseConfig decodes a Magma config.json document; source names it in
// errors. Unknown keys are ignored. When vision_config or text_config is
// absent the top-level object is decoded into it (the released Magma-8B
// config.json also repeats the Llama keys at top level). "image_token_id"
// is accepted as an alias of image_token_index. Resolve is not called.
func ParseConfig(data []byte, source string) (*Config, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, jsonKeyError(source, err)
	}
	cfg := &Config{}
	if err := json.Unmarshal(data, cfg); err != nil {
		return nil, jsonKeyError(source, err)
	}
	if _, ok := raw["vision_config"]; !ok {
		if err := json.Unmarshal(data, &cfg.Vision); err != nil {
			return nil, jsonKeyError(source, err)
		}
	}
	if _, ok := raw["text_config"]; !ok {
		if err := json.Unmarshal(data, &cfg.Text); err != nil {
			return nil, jsonKeyError(source, err)
		}
	}
	if _, ok := raw["image_token_index"]; !ok {
		if v, ok := raw["image_token_id"]; ok {
			if err := json.Unmarshal(v, &cfg.ImageTokenIndex); err != nil {
				return nil, fmt.Errorf("%s: key \"image_token_id\": %w", source, err)
			}
		}
	}
	return cfg, nil
}

// ParsePreprocessor decodes a preprocessor_config.json document.
func ParsePreprocessor(data []byte, source string) (*PreprocessorConfig, error) {
	p := &PreprocessorConfig{}
	if err := json.Unmarshal(data, p); err != nil {
		return nil, jsonKeyError(source, err)
	}
	return p, nil
}

// LoadConfig reads dir/config.json and dir/preprocessor_config.json
// (defaults derived from config.json when the latter is missing), resolves
// and validates both. Errors name the file and the key.
func LoadConfig(dir string) (*Config, *PreprocessorConfig, error) {
	cpath := filepath.Join(dir, ConfigFileName)
	data, err := os.ReadFile(cpath)
	if err != nil {
		return nil, nil, fmt.Errorf("config: %w", err)
	}
	cfg, err := ParseConfig(data, cpath)
	if err != nil {
		return nil, nil, err
	}
	if err := cfg.Resolve(); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", cpath, err)
	}
	ppath := filepath.Join(dir, PreprocessorFileName)
	var pp *PreprocessorConfig
	pdata, err := os.ReadFile(ppath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		pp = DefaultPreprocessor(cfg)
	case err != nil:
		return nil, nil, fmt.Errorf("config: %w", err)
	default:
		if pp, err = ParsePreprocessor(pdata, ppath); err != nil {
			return nil, nil, err
		}
	}
	if err := pp.Resolve(cfg); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", ppath, err)
	}
	return cfg, pp, nil
}

// SaveConfig writes config.json and preprocessor_config.json to dir (pp nil
// writes the defaults derived from cfg).
func SaveConfig(dir string, cfg *Config, pp *PreprocessorConfig) error {
	if cfg == nil {
		return errors.New("config: SaveConfig with nil config")
	}
	if pp == nil {
		pp = DefaultPreprocessor(cfg)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	for _, f := range []struct {
		name string
		v    any
	}{{ConfigFileName, cfg}, {PreprocessorFileName, pp}} {
		data, err := json.MarshalIndent(f.v, "", "  ")
		if err != nil {
			return fmt.Errorf("config %s: %w", f.name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, f.name), append(data, '\n'), 0o644); err != nil {
			return fmt.Errorf("config: %w", err)
		}
	}
	return nil
}

// Preset is a resolved configuration preset (configs/*.yaml).
type Preset struct {
	Name         string
	Config       *Config
	Preprocessor *PreprocessorConfig
	// Tokenizer is the tokenizer directory, relative to the repository root
	// for embedded presets (or to the YAML file's directory for files).
	Tokenizer string
}

// LoadPreset loads an embedded preset by name ("magma-8b", "tiny",
// "small") or a YAML file path, and resolves it.
func LoadPreset(nameOrPath string) (*Preset, error) {
	raw, err := configs.Load(nameOrPath)
	if err != nil {
		return nil, err
	}
	src := "preset " + raw.Name
	if raw.Path != "" {
		src = raw.Path
	}
	mdata, err := json.Marshal(raw.Model)
	if err != nil {
		return nil, fmt.Errorf("%s: model: %w", src, err)
	}
	cfg, err := ParseConfig(mdata, src+": model")
	if err != nil {
		return nil, err
	}
	if err := cfg.Resolve(); err != nil {
		return nil, fmt.Errorf("%s: model: %w", src, err)
	}
	pp := DefaultPreprocessor(cfg)
	if raw.Preprocessor != nil {
		pdata, err := json.Marshal(raw.Preprocessor)
		if err != nil {
			return nil, fmt.Errorf("%s: preprocessor: %w", src, err)
		}
		if pp, err = ParsePreprocessor(pdata, src+": preprocessor"); err != nil {
			return nil, err
		}
	}
	if err := pp.Resolve(cfg); err != nil {
		return nil, fmt.Errorf("%s: preprocessor: %w", src, err)
	}
	return &Preset{Name: raw.Name, Config: cfg, Preprocessor: pp, Tokenizer: raw.Tokenizer}, nil
}

// PresetConfigs returns only the resolved model and preprocessor configs of
// a preset (LoadPreset also gives its name and tokenizer directory).
func PresetConfigs(nameOrPath string) (*Config, *PreprocessorConfig, error) {
	p, err := LoadPreset(nameOrPath)
	if err != nil {
		return nil, nil, err
	}
	return p.Config, p.Preprocessor, nil
}

// ParamEstimate returns the parameter counts implied by cfg (Magma's
// Hugging Face tensor layout: ConvNeXt trunk without its head, the
// mlp2x_gelu projector with row separator, the Llama decoder with untied
// lm_head), keyed "vision", "projector", "text" and "total".
func ParamEstimate(cfg *Config) map[string]int64 {
	v := cfg.Vision
	var vis int64
	if len(v.Dims) == 4 && len(v.Depths) == 4 {
		d0 := int64(v.Dims[0])
		vis += d0*3*16 + d0 + 2*d0 // stem conv 4x4 + LayerNorm
		for s := 0; s < 4; s++ {
			d := int64(v.Dims[s])
			if s > 0 {
				p := int64(v.Dims[s-1])
				vis += 2*p + d*p*4 + d // LayerNorm + conv 2x2
			}
			perBlock := d*49 + d + 2*d + 4*d*d + 4*d + 4*d*d + d + d
			vis += int64(v.Depths[s]) * perBlock
		}
	}
	t := cfg.Text
	h := int64(t.HiddenSize)
	mm := int64(v.MMHiddenSize)
	proj := mm*h + h + h*h + h + h
	hd := int64(t.HeadDim)
	if hd == 0 && t.NumAttentionHeads > 0 {
		hd = h / int64(t.NumAttentionHeads)
	}
	kv := int64(t.NumKeyValueHeads)
	if kv == 0 {
		kv = int64(t.NumAttentionHeads)
	}
	qd := int64(t.NumAttentionHeads) * hd
	layer := h*qd + 2*h*kv*hd + qd*h + 3*h*int64(t.IntermediateSize) + 2*h
	text := 2*int64(t.VocabSize)*h + int64(t.NumHiddenLayers)*layer + h
	return map[string]int64{"vision": vis, "projector": proj, "text": text, "total": vis + proj + text}
}
