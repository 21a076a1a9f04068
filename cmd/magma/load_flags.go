package main

import (
	"fmt"
	"os"

	"github.com/spf13/pflag"
	"gorgonia.org/tensor"

	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/model"
)

// loadFlags are the weight-loading flags of the inference commands
// (generate, serve, eval). By default the weights keep the checkpoint's
// dtype (bf16 for Magma-8B: the shards are mapped and used in place, 2
// bytes a parameter); --dtype converts on load.
type loadFlags struct {
	dtype      string
	compute    string
	maxContext int
	kvCache    string
	verify     bool
}

const dtypeUsage = "weights in memory: stored (the checkpoint's dtypes, mapped in place), f32, bf16 or f16 (converted on load)"

// add registers --dtype, --compute, --kv-cache, --verify and, when
// withContext, --max-context.
func (l *loadFlags) add(f *pflag.FlagSet, withContext bool) {
	f.StringVar(&l.dtype, "dtype", "stored", dtypeUsage)
	f.StringVar(&l.compute, "compute", "f32", "activations of decode products with bf16 weights: f32 (exact), or bf16 (vdpbf16ps; needs avx512_bf16 in /proc/cpuinfo, about 1e-3 relative error)")
	f.StringVar(&l.kvCache, "kv-cache", "f32", "KV cache storage: f32, or bf16 (half the memory; keys and values rounded to bfloat16 as they are cached, about 1e-3 relative error in the logits)")
	f.BoolVar(&l.verify, "verify", false, "check the checkpoint before use: every file against the CRC-32C checksums of its manifest.json (a damaged file is named), every weight for NaN and infinite values")
	if withContext {
		f.IntVar(&l.maxContext, "max-context", 0, "positions at most per request (prompt with images expanded + new tokens; the KV cache holds exactly those); 0 = max_position_embeddings")
	}
}

// loadDtype parses a --dtype value; "" and "stored" keep the stored dtypes
// (the zero Dtype).
func loadDtype(s string) (tensor.Dtype, error) {
	switch s {
	case "", "stored", "auto":
		return tensor.Dtype{}, nil
	}
	dt, err := kernels.ParseDtype(s)
	if err != nil || dt == tensor.Float64 {
		return tensor.Dtype{}, fmt.Errorf("--dtype %q: want stored, f32, bf16 or f16", s)
	}
	return dt, nil
}

// pipeline loads dir for slots concurrent sequences; the up-front memory
// check counts the weights in their dtype plus, with --max-context, the KV
// caches.
func (l *loadFlags) pipeline(dir, tokPath string, slots int) (*model.Pipeline, error) {
	dt, err := loadDtype(l.dtype)
	if err != nil {
		return nil, err
	}
	var ko kernels.Options
	switch l.compute {
	case "f32", "fp32", "float32", "":
	case "bf16":
		ko.ComputeBF16 = true
		if err := ko.Check(); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("--compute %q: want f32 or bf16", l.compute)
	}
	kv, err := kernels.ParseKVDtype(l.kvCache)
	if err != nil {
		return nil, fmt.Errorf("--kv-cache: %w", err)
	}
	kvSize, _ := kernels.KVElemSize(kv)
	opts := model.LoadOptions{Dtype: dt, Verify: l.verify}
	if l.maxContext > 0 {
		cfg, _, err := model.LoadConfig(dir)
		if err != nil {
			return nil, err
		}
		opts.Extra = int64(model.KVCacheBytes(cfg, slots, l.maxContext, kvSize))
		opts.ExtraWhat = fmt.Sprintf("%s KV cache of %d x %d positions", kernels.DtypeName(kv), slots, l.maxContext)
	}
	p, err := model.LoadPipelineWith(dir, tokPath, opts)
	if err != nil {
		return nil, err
	}
	p.MaxContext, p.KVCacheDtype = l.maxContext, kv
	p.Model.SetKernels(ko)
	if p.Verified != nil {
		fmt.Fprintln(os.Stderr, p.Verified)
	}
	return p, nil
}

// finetuneDtypeUsage documents finetune's --dtype (train.ModelConfig.Dtype)
// for the command whose checkpoint flag is initFlag (--model, --init).
func finetuneDtypeUsage(initFlag string) string {
	return "weights of " + initFlag + " in memory: default float32 copies to train the weights, the stored dtype (bf16 for Magma-8B, mapped in place and frozen) with LoRA; f32, or bf16/f16 with LoRA only"
}
