package model

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/magma-go/magma/configs"
)

// magmaConfigJSON mirrors the released Magma-8B config.json layout:
// top-level Llama keys, nested vision_config/text_config, extra keys.
const magmaConfigJSON = `{
  "_name_or_path": "microsoft/Magma-8B",
  "architectures": ["MagmaForCausalLM"],
  "auto_map": {"AutoConfig": "microsoft/Magma-8B--configuration_magma.MagmaConfig"},
  "hidden_size": 4096,
  "image_token_index": 128257,
  "img_size": 512,
  "model_type": "magma",
  "torch_dtype": "bfloat16",
  "vision_config": {
    "img_anyres_strategy": "crop", "img_size": 512, "max_num_crops": 4,
    "mm_hidden_size": 3072, "mm_projector_type": "mlp2x_gelu",
    "mm_use_im_patch_token": false, "mm_use_im_start_end": false, "mm_use_row_seperator": true,
    "vision_backbone": "convnextxxlarge", "vision_feature_layer": "clip_vis_dense", "hidden_size": 3072
  },
  "text_config": {
    "model_type": "llama", "vocab_size": 128320, "hidden_size": 4096, "intermediate_size": 14336,
    "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
    "rms_norm_eps": 1e-05, "rope_theta": 500000.0, "max_position_embeddings": 8192,
    "tie_word_embeddings": false, "bos_token_id": 128000, "eos_token_id": [128001, 128009]
  }
}`

func TestLoadConfigMagma8BLayout(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, ConfigFileName), []byte(magmaConfigJSON), 0o644)
	cfg, pp, err := LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg.Vision.Depths, []int{3, 4, 30, 3}) || cfg.Vision.NormEps != 1e-5 || cfg.Vision.Dims[3] != 3072 {
		t.Errorf("vision %+v", cfg.Vision)
	}
	if cfg.Text.HeadDim != 128 || cfg.Text.NumKeyValueHeads != 8 || cfg.ImageTokenIndex != 128257 {
		t.Errorf("text %+v", cfg.Text)
	}
	if got := cfg.Text.EOSTokenIDs(); !reflect.DeepEqual(got, []int{128001, 128009}) {
		t.Errorf("eos %v", got)
	}
	// No preprocessor_config.json: defaults from config.
	if pp.BaseImgSize != 512 || pp.NumCrops != 4 || pp.AnyresStrategy != "crop" || pp.ImageMean[0] != CLIPMean[0] {
		t.Errorf("pp %+v", pp)
	}
	est := ParamEstimate(cfg)
	if est["total"] < 8.5e9 || est["total"] > 9.2e9 {
		t.Errorf("Magma-8B estimate %v", est)
	}
}

func TestConfigRoundTrip(t *testing.T) {
	for _, name := range configs.Names() {
		t.Run(name, func(t *testing.T) {
			cfg, pp, err := PresetConfigs(name)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			if err := SaveConfig(dir, cfg, pp); err != nil {
				t.Fatal(err)
			}
			cfg2, pp2, err := LoadConfig(dir)
			if err != nil {
				t.Fatal(err)
			}
			// EosTokenID decodes from JSON as float64; compare the ids.
			if !reflect.DeepEqual(cfg.Text.EOSTokenIDs(), cfg2.Text.EOSTokenIDs()) {
				t.Errorf("eos differs")
			}
			cfg.Text.EosTokenID, cfg2.Text.EosTokenID = nil, nil
			if !reflect.DeepEqual(cfg, cfg2) {
				t.Errorf("config differs\n%+v\n%+v", cfg, cfg2)
			}
			if !reflect.DeepEqual(pp, pp2) {
				t.Errorf("preprocessor differs\n%+v\n%+v", pp, pp2)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		name, file, content string
		wants               []string
	}{
		{"bad json", ConfigFileName, `{"vision_config": `, []string{ConfigFileName, "invalid JSON"}},
		{"wrong type", ConfigFileName, `{"image_token_index": "x", "vision_config": {}, "text_config": {}}`, []string{ConfigFileName, "image_token_index"}},
		{"nested wrong type", ConfigFileName, `{"vision_config": {"img_size": "big"}, "text_config": {}}`, []string{ConfigFileName, "img_size"}},
		{"token outside vocab", ConfigFileName, strings.Replace(magmaConfigJSON, `"vocab_size": 128320`, `"vocab_size": 128000`, 1), []string{ConfigFileName, "image_token_index", "128000"}},
		{"bad text", ConfigFileName, strings.Replace(magmaConfigJSON, `"num_key_value_heads": 8`, `"num_key_value_heads": 7`, 1), []string{ConfigFileName, "text_config"}},
		{"bad vision", ConfigFileName, strings.Replace(magmaConfigJSON, `"img_size": 512, "max`, `"img_size": 500, "max`, 1), []string{ConfigFileName, "vision_config", "img_size"}},
		{"bad preprocessor", PreprocessorFileName, `{"anyres_strategy": "crop", "base_img_size": 512, "num_crops": 4, "image_mean": [0.5, 0.5]}`, []string{PreprocessorFileName, "image_mean"}},
		{"preprocessor type", PreprocessorFileName, `{"num_crops": "four"}`, []string{PreprocessorFileName, "num_crops"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if c.file != ConfigFileName {
				os.WriteFile(filepath.Join(dir, ConfigFileName), []byte(magmaConfigJSON), 0o644)
			}
			os.WriteFile(filepath.Join(dir, c.file), []byte(c.content), 0o644)
			_, _, err := LoadConfig(dir)
			if err == nil {
				t.Fatal("expected error")
			}
			for _, w := range c.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	if _, _, err := LoadConfig(t.TempDir()); err == nil || !strings.Contains(err.Error(), ConfigFileName) {
		t.Errorf("missing file: %v", err)
	}
}

func TestPresets(t *testing.T) {
	want := map[string]struct {
		vocab, hidden, layers int
		img, crops            int
	}{
		"magma-8b": {128320, 4096, 32, 512, 4},
		"tiny":     {128320, 64, 2, 64, 4},
		"small":    {128320, 256, 16, 512, 1},
	}
	if got := configs.Names(); !reflect.DeepEqual(got, []string{"magma-8b", "small", "tiny"}) {
		t.Errorf("Names() = %v", got)
	}
	for name, w := range want {
		p, err := LoadPreset(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		c := p.Config
		if c.Text.VocabSize != w.vocab || c.Text.HiddenSize != w.hidden || c.Text.NumHiddenLayers != w.layers ||
			c.Vision.ImageSize != w.img || c.Vision.MaxNumCrops != w.crops || p.Preprocessor.NumCrops != w.crops {
			t.Errorf("%s: %+v %+v", name, c.Text, c.Vision)
		}
		if c.Vision.NormEps != 1e-5 || c.Text.RMSNormEps != 1e-5 || c.Text.RopeTheta != 500000 || c.ImageTokenIndex != 128257 {
			t.Errorf("%s: eps/rope/image token %+v", name, c)
		}
		if p.Tokenizer != "assets/tokenizer/magma" {
			t.Errorf("%s: tokenizer %q", name, p.Tokenizer)
		}
		est := ParamEstimate(c)
		t.Logf("%s: params %v", name, est)
		if name == "small" && (est["total"] < 95e6 || est["total"] > 105e6) {
			t.Errorf("small has %d params, want ~100M", est["total"])
		}
	}
	m8 := ParamEstimate(mustPreset(t, "magma-8b").Config)
	if m8["vision"] != 843391872 {
		t.Errorf("ConvNeXt-XXL trunk %d", m8["vision"])
	}
}

func mustPreset(t *testing.T, n string) *Preset {
	p, err := LoadPreset(n)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPresetFromFile(t *testing.T) {
	dir := t.TempDir()
	raw, _ := configs.Raw("tiny")
	p := filepath.Join(dir, "mine.yaml")
	os.WriteFile(p, []byte(strings.Replace(string(raw), "num_hidden_layers: 2", "num_hidden_layers: 3", 1)), 0o644)
	pre, err := LoadPreset(p)
	if err != nil {
		t.Fatal(err)
	}
	if pre.Name != "mine" || pre.Config.Text.NumHiddenLayers != 3 || pre.Tokenizer != filepath.Join(dir, "assets/tokenizer/magma") {
		t.Errorf("%+v", pre)
	}
	os.WriteFile(p, []byte("model:\n  text_config:\n    vocab_size: 10\n    hidden_size: 8\n    intermediate_size: 8\n    num_hidden_layers: 1\n    num_attention_heads: 2\n  vision_config: {vision_backbone: convnext_tiny, img_size: 64}\n"), 0o644)
	if _, err := LoadPreset(p); err == nil || !strings.Contains(err.Error(), "mine.yaml") || !strings.Contains(err.Error(), "image_token_index") {
		t.Errorf("vocab check: %v", err)
	}
	os.WriteFile(p, []byte("modle: {}\n"), 0o644)
	if _, err := LoadPreset(p); err == nil || !strings.Contains(err.Error(), "modle") {
		t.Errorf("typo: %v", err)
	}
	if _, err := LoadPreset("nope"); err == nil || !strings.Contains(err.Error(), "tiny") {
		t.Errorf("unknown: %v", err)
	}
}

// mm_use_image_start_end from config.json decides the image wrapping of
// prompts (Magma's agents: "if model.config.mm_use_image_start_end:
// prompt = prompt.replace('<image>', '<image_start><image><image_end>')").
func TestImageStartEndFromConfig(t *testing.T) {
	for _, c := range []struct {
		extra string
		want  bool
	}{{"", true}, {`"mm_use_image_start_end": false,`, false}, {`"mm_use_image_start_end": true,`, true}} {
		dir := t.TempDir()
		js := strings.Replace(magmaConfigJSON, `"image_token_index"`, c.extra+`"image_token_index"`, 1)
		os.WriteFile(filepath.Join(dir, ConfigFileName), []byte(js), 0o644)
		cfg, _, err := LoadConfig(dir)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.ImageStartEnd() != c.want {
			t.Errorf("%q: ImageStartEnd %v", c.extra, cfg.ImageStartEnd())
		}
		p := &Pipeline{Loaded: &Loaded{Model: &Magma{Config: cfg}}}
		if o := p.ChatOptions(""); o.ImageStartEnd != c.want || o.SingleBOS || !o.AddGenerationPrompt {
			t.Errorf("%q: chat options %+v", c.extra, o)
		}
	}
}
