package model

// Loading a quantized folder (magma quantize): model.gguf is mapped and its
// tensors bound in place, the quantized ones as kernels.Q8_0/Q4K/Q6K
// tensors over the mapping (storage shape [out, in/block]), the float ones
// as views like a safetensors shard's.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"gorgonia.org/tensor"

	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/model/ckpt"
	"github.com/magma-go/magma/model/gguf"
)

// weightFile is a checkpoint's weights as loading binds them: safetensors
// shards (*ckpt.Checkpoint) or a quantized folder's GGUF (*ggufWeights).
type weightFile interface {
	TensorSource
	Names() []string
	Info(name string) (ckpt.TensorInfo, string, error)
	Plan(name string, want tensor.Dtype) (ckpt.TensorInfo, tensor.Dtype, bool, error)
	Dense(name string, want tensor.Dtype) (*tensor.Dense, bool, error)
	DenseCopy(name string, want tensor.Dtype) (*tensor.Dense, error)
	Close() error
}

// IsQuantizedDir reports whether dir holds a quantized checkpoint (a
// model.gguf written by magma quantize).
func IsQuantizedDir(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, GGUFFileName))
	return err == nil
}

// openWeights opens the weights of the checkpoint folder dir.
func openWeights(dir string) (weightFile, error) {
	if !IsQuantizedDir(dir) {
		return ckpt.Open(dir)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "model*.safetensors")); len(m) > 0 { // not adapter_/optimizer.safetensors of a QLoRA checkpoint
		return nil, fmt.Errorf("checkpoint %s holds both %s and %s: one set of weights per folder", dir, GGUFFileName, filepath.Base(m[0]))
	}
	return openGGUFWeights(dir)
}

// ggufWeights is a quantized folder's model.gguf as a weightFile.
type ggufWeights struct {
	*gguf.File
}

func openGGUFWeights(dir string) (*ggufWeights, error) {
	f, err := gguf.Open(filepath.Join(dir, GGUFFileName))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
		}
		return nil, err
	}
	g := &ggufWeights{f}
	registerGGUF(g) // for linking a frozen base (gguf_link.go)
	return g, nil
}

// dtypeOf is the dtype a GGUF tensor is held in, as stored.
func (g *ggufWeights) dtypeOf(ti gguf.TensorInfo) (tensor.Dtype, error) {
	dt, err := kernels.DtypeOfGGML(int(ti.Type))
	if err != nil {
		return dt, fmt.Errorf("gguf %s: tensor %q: %w", g.Path, ti.Name, err)
	}
	return dt, nil
}

// Info returns name's header as a safetensors-like TensorInfo (logical
// shape, dtype name, byte size as End) and the file.
func (g *ggufWeights) Info(name string) (ckpt.TensorInfo, string, error) {
	ti, err := g.File.Info(name)
	if err != nil {
		return ckpt.TensorInfo{}, "", err
	}
	return ckpt.TensorInfo{Name: name, DType: ti.Type.String(), Shape: ti.Shape(), End: ti.Size}, g.Path, nil
}

// Plan is Checkpoint.Plan: the dtype name is held in with want (zero:
// stored) and whether it is used in place. A quantized tensor asked in a
// float dtype is dequantized (a copy).
func (g *ggufWeights) Plan(name string, want tensor.Dtype) (ckpt.TensorInfo, tensor.Dtype, bool, error) {
	cti, _, err := g.Info(name)
	if err != nil {
		return cti, tensor.Dtype{}, false, err
	}
	ti, _ := g.File.Info(name)
	have, err := g.dtypeOf(ti)
	if err != nil {
		return cti, have, false, err
	}
	if want == (tensor.Dtype{}) || want == have {
		return cti, have, true, nil
	}
	return cti, want, false, nil
}

// Dense returns name in dtype want (zero: stored): in place when stored in
// it (a quantized tensor is a view of its blocks, storage shape), else a
// converted (dequantized) copy.
func (g *ggufWeights) Dense(name string, want tensor.Dtype) (*tensor.Dense, bool, error) {
	return g.dense(name, want, true)
}

// DenseCopy is Dense into process memory.
func (g *ggufWeights) DenseCopy(name string, want tensor.Dtype) (*tensor.Dense, error) {
	t, _, err := g.dense(name, want, false)
	return t, err
}

func (g *ggufWeights) dense(name string, want tensor.Dtype, inPlace bool) (*tensor.Dense, bool, error) {
	raw, ti, err := g.TensorBytes(name)
	if err != nil {
		return nil, false, err
	}
	have, err := g.dtypeOf(ti)
	if err != nil {
		return nil, false, err
	}
	if want == (tensor.Dtype{}) {
		want = have
	}
	if !kernels.IsQuant(have) {
		if inPlace {
			return g.File.Dense(name, want)
		}
		t, _, err := g.File.Dense(name, want)
		if err != nil {
			return nil, false, err
		}
		c := t.Clone().(*tensor.Dense)
		return c, false, nil
	}
	if want == have {
		shape, err := kernels.QuantShape(have, ti.Shape())
		if err != nil {
			return nil, false, fmt.Errorf("gguf %s: tensor %q: %w", g.Path, name, err)
		}
		if !inPlace {
			raw = append([]byte(nil), raw...)
		}
		t, err := kernels.View(have, shape, raw)
		if err != nil {
			return nil, false, fmt.Errorf("gguf %s: tensor %q: %w", g.Path, name, err)
		}
		return t, inPlace, nil
	}
	if kernels.IsQuant(want) {
		return nil, false, fmt.Errorf("gguf %s: tensor %q is %s: it cannot be converted to %s", g.Path, name, kernels.DtypeName(have), kernels.DtypeName(want))
	}
	vals, shape, err := g.File.Tensor(name)
	if err != nil {
		return nil, false, err
	}
	f := tensor.New(tensor.WithShape(shape...), tensor.WithBacking(vals))
	c, err := kernels.Convert(f, want)
	if err != nil {
		return nil, false, fmt.Errorf("gguf %s: tensor %q: %w", g.Path, name, err)
	}
	return c, false, nil
}

// checkQuantizable refuses a quantized tensor bound to a parameter that is
// not read as a linear weight (a norm, bias, conv kernel or embedding read
// by kernels that take float tensors): an error naming the tensor.
func checkQuantizable(name string, stored tensor.Dtype) error {
	if !kernels.IsQuant(stored) {
		return nil
	}
	if decoderLinear.MatchString(name) || visionLinear.MatchString(name) || name == "language_model.lm_head.weight" {
		return nil
	}
	return fmt.Errorf("weights: tensor %q is %s in the GGUF, but the model reads it as a float tensor (only linear weights may be quantized; see magma quantize --help)", name, kernels.DtypeName(stored))
}
