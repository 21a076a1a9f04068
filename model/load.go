package model

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"gorgonia.org/tensor"
)

// decoderLayerName matches a decoder layer's tensor name and its index.
var decoderLayerName = regexp.MustCompile(`^language_model\.model\.layers\.(\d+)\.`)

// checkLoaded refuses checkpoints that load but cannot work: decoder layer
// tensors beyond num_hidden_layers (the config would silently drop trained
// layers) and non-finite values in lm_head, embed_tokens or the final norm
// (every answer would be NaN or token 0). Errors name the key or tensor.
func checkLoaded(m *Magma, unused []string) error {
	n := m.Config.Text.NumHiddenLayers
	for _, name := range unused {
		if sm := decoderLayerName.FindStringSubmatch(name); sm != nil {
			if i, _ := strconv.Atoi(sm[1]); i >= n {
				return fmt.Errorf("key \"text_config.num_hidden_layers\": %d, but the checkpoint has tensors of layer %d (%s): the config would silently drop layers", n, i, name)
			}
		}
	}
	return Walk(m, "", func(name string, t *tensor.Dense) error {
		if !strings.HasSuffix(name, "lm_head.weight") && !strings.HasSuffix(name, "embed_tokens.weight") && name != "language_model.model.norm.weight" {
			return nil
		}
		bad, first := 0, -1
		switch d := t.Data().(type) {
		case []float32:
			for i, v := range d {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					bad++
					if first < 0 {
						first = i
					}
				}
			}
		case []float64:
			for i, v := range d {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					bad++
					if first < 0 {
						first = i
					}
				}
			}
		}
		if bad > 0 {
			return fmt.Errorf("tensor %q has %d NaN or infinite values of %d (first at flat index %d): the model cannot produce answers", name, bad, t.Shape().TotalSize(), first)
		}
		return nil
	})
}

// Loaded is a model read from a Hugging Face directory.
type Loaded struct {
	Model        *Magma
	Preprocessor *PreprocessorConfig
	Dir          string
	// Unused lists checkpoint tensors the model does not use (e.g. the
	// ConvNeXt classification head); callers may log them.
	Unused []string
}

// Load reads config.json, preprocessor_config.json and the safetensors
// weights (single file or shards) of a Magma checkpoint directory.
func Load(dir string) (*Loaded, error) {
	cfg, pp, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	m, err := New(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, ConfigFileName), err)
	}
	ck, err := Open(dir)
	if err != nil {
		return nil, err
	}
	defer ck.Close()
	if err := Bind(m, "", ck); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	unused, err := Unused(ck.Names(), Binding{Root: m})
	if err != nil {
		return nil, err
	}
	if err := checkLoaded(m, unused); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	return &Loaded{Model: m, Preprocessor: pp, Dir: dir, Unused: unused}, nil
}

// Save writes the model in the layout Load reads (config.json,
// preprocessor_config.json, model.safetensors or shards).
func (m *Magma) Save(dir string, pp *PreprocessorConfig, opts SaveOptions) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if pp == nil {
		pp = DefaultPreprocessor(m.Config)
	}
	if err := SaveConfig(dir, m.Config, pp); err != nil {
		return err
	}
	ts, err := Collect(m, "")
	if err != nil {
		return err
	}
	return Save(dir, ts, opts)
}
