package model

// Linking a quantized frozen base (QLoRA): a model whose every weight is a
// read-only view of one open quantized folder's model.gguf (stored dtype,
// same name, the tensor's own bytes) holds exactly that file's bytes, so a
// training checkpoint links the file (ckpt.LinkFiles: a hard link, or a
// copy on another filesystem) instead of writing the weights, as
// ckpt.LinkWeights does for safetensors shards.

import (
	"path/filepath"
	"sync"
	"unsafe"

	"gorgonia.org/tensor"

	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/model/ckpt"
	"github.com/magma-go/magma/nn"
)

// openGGUFs are the quantized folders' GGUFs open now (registered by
// openGGUFWeights, removed by Close).
var openGGUFs struct {
	mu sync.Mutex
	m  map[*ggufWeights]bool
}

func registerGGUF(g *ggufWeights) {
	openGGUFs.mu.Lock()
	defer openGGUFs.mu.Unlock()
	if openGGUFs.m == nil {
		openGGUFs.m = map[*ggufWeights]bool{}
	}
	openGGUFs.m[g] = true
}

// Close unregisters g and unmaps its file.
func (g *ggufWeights) Close() error {
	openGGUFs.mu.Lock()
	delete(openGGUFs.m, g)
	openGGUFs.mu.Unlock()
	return g.File.Close()
}

// viewOf reports whether t is exactly tensor name of g in place: the same
// bytes of the mapping, in the stored dtype.
func (g *ggufWeights) viewOf(name string, t *tensor.Dense) bool {
	if t == nil || !kernels.IsReadOnly(t) {
		return false
	}
	raw, ti, err := g.TensorBytes(name)
	if err != nil || len(raw) == 0 {
		return false
	}
	dt, err := g.dtypeOf(ti)
	return err == nil && dt == t.Dtype() && uintptr(unsafe.Pointer(&raw[0])) == t.Uintptr() && uintptr(len(raw)) == t.MemSize()
}

// Weights is a checkpoint folder's weights opened for reading (Bind's
// source): its safetensors shards, or a quantized folder's model.gguf.
type Weights interface {
	TensorSource
	Close() error
}

// OpenWeights opens the weights of checkpoint folder dir, safetensors or
// quantized (a training checkpoint of a QLoRA run links its base's GGUF).
func OpenWeights(dir string) (Weights, error) { return openWeights(dir) }

// linkGGUF links the model.gguf that every weight of root is a view of
// into dir, or returns nil (and writes nothing) when some weight is not.
func linkGGUF(dir string, root any, sums *ckpt.Sums) (*ckpt.LinkResult, error) {
	ps, err := nn.Parameters(root, "")
	if err != nil || len(ps) == 0 {
		return nil, err
	}
	openGGUFs.mu.Lock()
	var src *ggufWeights
	for g := range openGGUFs.m {
		if g.viewOf(ps[0].Name, ps[0].T) {
			src = g
			break
		}
	}
	openGGUFs.mu.Unlock()
	if src == nil {
		return nil, nil
	}
	for _, p := range ps {
		if !src.Has(p.Name) || !src.viewOf(p.Name, p.T) {
			return nil, nil
		}
	}
	return ckpt.LinkFiles(filepath.Dir(src.Path), dir, []string{GGUFFileName}, sums)
}
