package model

import (
	"math/rand/v2"
	"os"
	"strings"

	"github.com/magma-go/magma/model/ckpt"
	"github.com/magma-go/magma/nn"
)

// InitRandom fills every parameter with the usual from-scratch initialisation
// (deterministic for a seed): norm weights 1, biases 0, ConvNeXt layer scale
// 1e-6 (timm's ls_init_value), row separator 0 (as Magma's projector), and
// everything else N(0, std²) with std = 0.02 (HF's initializer_range).
// The random draws follow the parameters' order, one per element.
func (m *Magma) InitRandom(seed uint64) error {
	ps, err := nn.Parameters(m, "")
	if err != nil {
		return err
	}
	fills := initFills(ps, seed)
	for i, p := range ps {
		data, err := denseFloat32(p.Name, p.T)
		if err != nil {
			return err
		}
		fills[i](data, 0)
	}
	return nil
}

// initStd is HF's initializer_range.
const initStd = 0.02

// initFills returns, per parameter, a function writing its initial values
// [off, off+len(dst)) (see InitRandom). The functions share one random
// stream: call them in parameter order and, within one, in element order.
func initFills(ps []nn.Param, seed uint64) []func(dst []float32, off int) {
	rng := rand.New(rand.NewPCG(seed, 0x6d61676d61))
	constant := func(v float32) func([]float32, int) {
		return func(d []float32, _ int) {
			for i := range d {
				d[i] = v
			}
		}
	}
	out := make([]func([]float32, int), len(ps))
	for i, p := range ps {
		switch {
		case strings.HasSuffix(p.Name, ".bias"):
			out[i] = constant(0)
		case strings.HasSuffix(p.Name, ".gamma"):
			out[i] = constant(1e-6)
		case strings.HasSuffix(p.Name, "row_seperator"):
			out[i] = constant(0)
		case p.Norm: // declared by the norm layers (nn.LayerNorm, nn.RMSNorm)
			out[i] = constant(1)
		default:
			out[i] = func(d []float32, _ int) {
				for j := range d {
					d[j] = float32(rng.NormFloat64() * initStd)
				}
			}
		}
	}
	return out
}

// WriteRandom writes the checkpoint that New + InitRandom(seed) + Save
// would write (same tensor values, same names, same shards), streaming:
// each tensor's values are drawn and written chunk by chunk and no
// parameter is ever held in memory, so a full-size Magma-8B (17.8 GB in
// bf16) is written in a few MB. Shards are filled in parameter order up to
// opts.MaxShardSize (Hugging Face's 5 GB by default: 4 shards plus
// model.safetensors.index.json for Magma-8B in bf16, the published layout);
// config.json and preprocessor_config.json are written too. It returns the
// number of parameters.
func WriteRandom(dir string, cfg *Config, pp *PreprocessorConfig, seed uint64, opts ckpt.SaveOptions) (int64, error) {
	m, err := newForLoad(cfg) // shapes only
	if err != nil {
		return 0, err
	}
	ps, err := nn.Parameters(m, "")
	if err != nil {
		return 0, err
	}
	fills := initFills(ps, seed)
	ts := make([]ckpt.WriteItem, len(ps))
	var n int64
	for i, p := range ps {
		ts[i] = ckpt.WriteItem{Name: p.Name, Shape: append([]int(nil), p.T.Shape()...), Fill: fills[i]}
		n += int64(p.T.Shape().TotalSize())
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	if pp == nil {
		pp = DefaultPreprocessor(cfg)
	}
	if err := SaveConfig(dir, cfg, pp); err != nil {
		return 0, err
	}
	return n, ckpt.SaveOrdered(dir, ts, opts)
}
