package vision

import "fmt"

// Config describes a ConvNeXt trunk and Magma's anyres image processing.
// Depths/Dims/NormEps may be given explicitly; otherwise Backbone names a preset.
type Config struct {
	// Backbone is the timm-style preset name, e.g. "convnextxxlarge" (Magma-8B).
	Backbone string `json:"vision_backbone" yaml:"vision_backbone"`
	// Depths is the number of blocks per stage (4 stages).
	Depths []int `json:"depths,omitempty" yaml:"depths,omitempty"`
	// Dims is the channel width per stage (4 stages).
	Dims []int `json:"dims,omitempty" yaml:"dims,omitempty"`
	// NormEps is the LayerNorm epsilon (timm default 1e-6; open_clip xxlarge 1e-5).
	NormEps float64 `json:"norm_eps,omitempty" yaml:"norm_eps,omitempty"`
	// ImageSize is the base crop size (512 for Magma-8B).
	ImageSize int `json:"img_size" yaml:"img_size"`
	// MaxNumCrops bounds rows*cols of the anyres grid.
	MaxNumCrops int `json:"max_num_crops" yaml:"max_num_crops"`
	// AnyresStrategy is "crop" (the only one implemented).
	AnyresStrategy string `json:"img_anyres_strategy,omitempty" yaml:"img_anyres_strategy,omitempty"`
	// ProjectorType is "mlp2x_gelu".
	ProjectorType string `json:"mm_projector_type" yaml:"mm_projector_type"`
	// MMHiddenSize is the vision feature width fed to the projector (= Dims[3]).
	MMHiddenSize int `json:"mm_hidden_size" yaml:"mm_hidden_size"`
	// UseImStartEnd adds learned start/end separators (false for Magma-8B; not supported).
	UseImStartEnd bool `json:"mm_use_im_start_end" yaml:"mm_use_im_start_end"`
}

// Preset sizes of timm's ConvNeXt family.
var presets = map[string]struct {
	depths, dims []int
	eps          float64
}{
	"convnext_tiny":    {[]int{3, 3, 9, 3}, []int{96, 192, 384, 768}, 1e-6},
	"convnext_small":   {[]int{3, 3, 27, 3}, []int{96, 192, 384, 768}, 1e-6},
	"convnext_base":    {[]int{3, 3, 27, 3}, []int{128, 256, 512, 1024}, 1e-6},
	"convnext_large":   {[]int{3, 3, 27, 3}, []int{192, 384, 768, 1536}, 1e-6},
	"convnext_xlarge":  {[]int{3, 3, 27, 3}, []int{256, 512, 1024, 2048}, 1e-6},
	"convnext_xxlarge": {[]int{3, 4, 30, 3}, []int{384, 768, 1536, 3072}, 1e-5},
}

// canonical maps Magma's spelling ("convnextxxlarge") to timm's ("convnext_xxlarge").
func canonical(name string) string {
	for k := range presets {
		if name == k || name == stripUnderscore(k) {
			return k
		}
	}
	return name
}

func stripUnderscore(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '_' {
			out = append(out, s[i])
		}
	}
	return string(out)
}

// Resolve fills Depths, Dims and NormEps from the Backbone preset when they are
// not given, and validates the result.
func (c *Config) Resolve() error {
	if len(c.Depths) == 0 || len(c.Dims) == 0 {
		p, ok := presets[canonical(c.Backbone)]
		if !ok {
			return fmt.Errorf("vision config: unknown vision_backbone %q and no explicit depths/dims", c.Backbone)
		}
		if len(c.Depths) == 0 {
			c.Depths = append([]int(nil), p.depths...)
		}
		if len(c.Dims) == 0 {
			c.Dims = append([]int(nil), p.dims...)
		}
		if c.NormEps == 0 {
			c.NormEps = p.eps
		}
	}
	if c.NormEps == 0 {
		c.NormEps = 1e-6
	}
	if len(c.Depths) != 4 || len(c.Dims) != 4 {
		return fmt.Errorf("vision config: depths and dims need 4 stages, got %d and %d", len(c.Depths), len(c.Dims))
	}
	for i := range c.Depths {
		if c.Depths[i] <= 0 || c.Dims[i] <= 0 {
			return fmt.Errorf("vision config: stage %d has depth %d dim %d; both must be positive", i, c.Depths[i], c.Dims[i])
		}
	}
	if c.ImageSize <= 0 || c.ImageSize%FeatureStride != 0 {
		return fmt.Errorf("vision config: img_size %d must be a positive multiple of %d", c.ImageSize, FeatureStride)
	}
	if c.MaxNumCrops <= 0 {
		c.MaxNumCrops = 1
	}
	if c.MMHiddenSize == 0 {
		c.MMHiddenSize = c.Dims[3]
	}
	if c.MMHiddenSize != c.Dims[3] {
		return fmt.Errorf("vision config: mm_hidden_size %d disagrees with last stage width %d", c.MMHiddenSize, c.Dims[3])
	}
	if c.ProjectorType == "" {
		c.ProjectorType = "mlp2x_gelu"
	}
	if c.ProjectorType != "mlp2x_gelu" {
		return fmt.Errorf("vision config: mm_projector_type %q not supported (only mlp2x_gelu)", c.ProjectorType)
	}
	if c.UseImStartEnd {
		return fmt.Errorf("vision config: mm_use_im_start_end=true is not supported")
	}
	return nil
}
