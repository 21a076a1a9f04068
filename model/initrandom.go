package model

import (
	"math/rand/v2"
	"strings"
)

// InitRandom fills every parameter with the usual from-scratch initialisation
// (deterministic for a seed): norm weights 1, biases 0, ConvNeXt layer scale
// 1e-6 (timm's ls_init_value), row separator 0 (as Magma's projector), and
// everything else N(0, std²) with std = 0.02 (HF's initializer_range).
func (m *Magma) InitRandom(seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, 0x6d61676d61))
	ps, err := Parameters(m, "")
	if err != nil {
		return err
	}
	for _, p := range ps {
		data, err := denseFloat32(p.Name, p.T)
		if err != nil {
			return err
		}
		switch {
		case strings.HasSuffix(p.Name, ".bias"):
			fill(data, 0)
		case strings.HasSuffix(p.Name, ".gamma"):
			fill(data, 1e-6)
		case strings.HasSuffix(p.Name, "row_seperator"):
			fill(data, 0)
		case p.Norm: // declared by the norm layers (nn.LayerNorm, nn.RMSNorm)
			fill(data, 1)
		default:
			for i := range data {
				data[i] = float32(rng.NormFloat64() * 0.02)
			}
		}
	}
	return nil
}

func fill(d []float32, v float32) {
	for i := range d {
		d[i] = v
	}
}
