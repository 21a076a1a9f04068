package model

import (
	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/nn"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Projector is Magma's `mlp2x_gelu` multi-modal projector plus the learned
// row separator:
//
//	proj(x) = W₂·GELU(W₁·x + b₁) + b₂, applied per feature-map position,
//
// and one `row_seperator` vector (checkpoint spelling) appended after every
// row of the stitched feature map.
type Projector struct {
	FC1          nn.Linear     `weights:"proj.0"`
	FC2          nn.Linear     `weights:"proj.2"`
	RowSeparator *tensor.Dense `weights:"row_seperator,nodecay"` // [1, 1, D]
}

// NewProjector allocates a projector from visionDim to hidden.
func NewProjector(visionDim, hidden int) *Projector { return newProjector(nn.Zeros, visionDim, hidden) }

func newProjector(alloc nn.Alloc, visionDim, hidden int) *Projector {
	return &Projector{
		FC1:          alloc.Linear(true, hidden, visionDim),
		FC2:          alloc.Linear(true, hidden, hidden),
		RowSeparator: alloc(tensor.Float32, 1, 1, hidden),
	}
}

// Forward projects vision features x [R, visionDim] to [R, hidden].
func (p *Projector) Forward(b *kernels.Builder, x *G.Node) *G.Node {
	return p.FC2.Forward(b.In("proj.2"), b.GELU(p.FC1.Forward(b.In("proj.0"), x)))
}

// StitchIndex returns, for an image cut into rows×cols crops of h×w feature
// positions each, the row indices that turn per-crop features (crop-major,
// then y, then x) into the stitched (rows·h)×(cols·w) map read row by row with
// a separator after every row. Index `sep` stands for the separator vector.
//
// This is the order of Magma's merge: view(rows, cols, h, w, D) →
// permute(0, 2, 1, 3, 4) → (rows·h, cols·w, D) → cat separator on dim 1.
func StitchIndex(rows, cols, h, w, sep int) []int {
	idx := make([]int, 0, rows*h*(cols*w+1))
	for r := 0; r < rows; r++ {
		for y := 0; y < h; y++ {
			for c := 0; c < cols; c++ {
				crop := r*cols + c
				for x := 0; x < w; x++ {
					idx = append(idx, (crop*h+y)*w+x)
				}
			}
			idx = append(idx, sep)
		}
	}
	return idx
}

// ImageTokens is the number of sequence positions one image takes:
// rows·cols·h·w features plus rows·h separators.
func ImageTokens(rows, cols, h, w int) int { return rows*cols*h*w + rows*h }
