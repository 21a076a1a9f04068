package model

import (
	"fmt"

	"github.com/magma-go/magma/vision"
	"github.com/magma-go/magma/vision/imaging"
)

// Info is what `magma info` prints.
type Info struct {
	Config       *Config             `json:"config"`
	Preprocessor *PreprocessorConfig `json:"preprocessor"`
	Parameters   map[string]int64    `json:"parameters"`
	Image        ImageInfo           `json:"image"`
	// Weights is set for a checkpoint directory (not a preset).
	Weights *CheckpointWeights `json:"weights,omitempty"`
	// Plan is set when asked for (--plan): the activation memory of one
	// batch shape (PlanMemory).
	Plan *PlanInfo `json:"plan,omitempty"`
}

// ImageInfo tells how an image of a given size enters the sequence.
type ImageInfo struct {
	Width      int `json:"width"`
	Height     int `json:"height"`
	Rows       int `json:"rows"`
	Cols       int `json:"cols"`
	FeatureMap int `json:"feature_map_per_crop"`
	Tokens     int `json:"tokens"`
}

// Describe summarises a configuration: parameter counts per component and the
// number of decoder positions an image of w×h pixels takes (w, h = 0: one
// base crop).
func Describe(cfg *Config, pp *PreprocessorConfig, w, h int) (*Info, error) {
	base := pp.BaseImgSize
	if w == 0 && h == 0 {
		w, h = base, base
	}
	if w <= 0 || h <= 0 {
		return nil, fmt.Errorf("image size %dx%d must be positive", w, h)
	}
	rows, cols := imaging.SelectGrid(w, h, base, pp.NumCrops)
	f := cfg.Vision.ImageSize / vision.FeatureStride
	return &Info{
		Config:       cfg,
		Preprocessor: pp,
		Parameters:   ParamEstimate(cfg),
		Image: ImageInfo{Width: w, Height: h, Rows: rows, Cols: cols, FeatureMap: f,
			Tokens: ImageTokens(rows, cols, f, f)},
	}, nil
}
