package nn

import (
	"fmt"
	"math"
	"math/rand/v2"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/magma-go/magma/kernels"
)

// LoRA's math lives here (the adapter layer, its initialisation, its merge
// into the base weight); which layers of a model get adapters and the PEFT
// files are the model packages' (llm, model, model/ckpt) and train's.

// LoRA is a low-rank adapter on a Linear layer (Hu et al. 2021, PEFT's
// Linear):
//
//	y = x·Wᵀ + (alpha/r)·(dropout(x)·Aᵀ)·Bᵀ,  A [r, in], B [out, r]
//
// A starts Kaiming-uniform (a = √5, PEFT's default init_lora_weights=True)
// and B at zero, so an attached adapter leaves the layer's output unchanged
// until B is trained (NewLoRA). The base weight is not touched: training
// only A and B keeps it frozen, and merging folds the product into it
// (Linear.MergeLoRA).
type LoRA struct {
	A, B    *tensor.Dense
	Rank    int
	Alpha   float64
	Dropout float64
	// Train enables dropout (off for inference and gradient checks).
	Train bool
}

// Scale is alpha / r.
func (l *LoRA) Scale() float64 { return l.Alpha / float64(l.Rank) }

// Forward is the adapter's contribution (alpha/r)·(dropout(x)·Aᵀ)·Bᵀ.
func (l *LoRA) Forward(b *kernels.Builder, x *G.Node) *G.Node {
	if l.Train && l.Dropout > 0 {
		x = b.Dropout(x, l.Dropout)
	}
	h := b.In("lora_A").Linear(x, b.Param(l.A), nil)
	d := b.In("lora_B").Linear(h, b.Param(l.B), nil)
	return b.Scale(d, l.Scale())
}

// NewLoRA makes the adapter of a Linear with weight [out, in] in dtype dt:
// A [rank, in] Kaiming-uniform drawn from r (kaiming_uniform_(a=√5):
// bound = gain·√(3/fan_in) with gain = √(2/(1+a²)) = √(1/3), i.e.
// bound = 1/√fan_in), B [out, rank] zero. Only float32 and float64 A are
// drawn (a half adapter stays zero).
func NewLoRA(dt tensor.Dtype, out, in, rank int, alpha, dropout float64, r *rand.Rand) *LoRA {
	a := tensor.New(tensor.WithShape(rank, in), tensor.Of(dt))
	bound := 1 / math.Sqrt(float64(in))
	switch d := a.Data().(type) {
	case []float32:
		for i := range d {
			d[i] = float32((2*r.Float64() - 1) * bound)
		}
	case []float64:
		for i := range d {
			d[i] = (2*r.Float64() - 1) * bound
		}
	}
	b := tensor.New(tensor.WithShape(out, rank), tensor.Of(dt))
	return &LoRA{A: a, B: b, Rank: rank, Alpha: alpha, Dropout: dropout}
}

// MergeLoRA folds l's adapter into its weight, W += (alpha/r)·B·A
// (computed in float64), and detaches it: the layer then computes the same
// function as a plain Linear. A read-only weight (a view of a mapped
// checkpoint) is not written: the merged weight is a new tensor (float32
// for a block-quantized weight). It reports false when l has no adapter.
func (l *Linear) MergeLoRA() (bool, error) {
	lo := l.LoRA
	if lo == nil {
		return false, nil
	}
	w := l.Weight
	ls := kernels.LogicalShape(w)
	out, in := ls[0], ls[1]
	a, err := Float64s(lo.A)
	if err != nil {
		return false, err
	}
	b, err := Float64s(lo.B)
	if err != nil {
		return false, err
	}
	s := lo.Scale()
	delta := make([]float64, out*in)
	for o := 0; o < out; o++ {
		for k := 0; k < lo.Rank; k++ {
			bv := b[o*lo.Rank+k] * s
			if bv == 0 {
				continue
			}
			row := a[k*in : (k+1)*in]
			d := delta[o*in : (o+1)*in]
			for i, av := range row {
				d[i] += bv * av
			}
		}
	}
	if kernels.IsQuant(w.Dtype()) {
		// A quantized base (QLoRA) cannot take the update in its blocks
		// without a second rounding: the merged weight is a new float32
		// tensor, dequantize(W) + ΔW.
		wf := make([]float32, out*in)
		if err := kernels.DequantizeRows(w, 0, out, wf); err != nil {
			return false, err
		}
		for i := range wf {
			wf[i] = float32(float64(wf[i]) + delta[i])
		}
		l.Weight = tensor.New(tensor.WithShape(out, in), tensor.WithBacking(wf))
		l.LoRA = nil
		return true, nil
	}
	if kernels.IsReadOnly(w) && !kernels.IsHalf(w.Dtype()) {
		// A base used in place (a mapped checkpoint) is read-only: the
		// merge goes into a copy.
		w = w.Clone().(*tensor.Dense)
		l.Weight = w
	}
	switch wd := w.Data().(type) {
	case []float32:
		for i := range wd {
			wd[i] = float32(float64(wd[i]) + delta[i])
		}
	case []float64:
		for i := range wd {
			wd[i] += delta[i]
		}
	case []kernels.BF16, []kernels.F16:
		// A 16-bit base may be read-only mapped: the merged weight is a
		// new tensor of the same dtype, round(W + ΔW) to nearest even.
		wf := make([]float32, len(delta))
		kernels.Widen32(wf, w, 0)
		merged := make([]float32, len(wf))
		for i := range wf {
			merged[i] = float32(float64(wf[i]) + delta[i])
		}
		nw, err := kernels.Convert(tensor.New(tensor.WithShape(w.Shape().Clone()...), tensor.WithBacking(merged)), w.Dtype())
		if err != nil {
			return false, err
		}
		l.Weight = nw
	default:
		return false, fmt.Errorf("weight has dtype %v", w.Dtype())
	}
	l.LoRA = nil
	return true, nil
}

// Float64s copies a float32, float64, BF16 or F16 tensor's data into float64.
func Float64s(t *tensor.Dense) ([]float64, error) {
	if kernels.IsHalf(t.Dtype()) {
		w := make([]float32, t.Shape().TotalSize())
		kernels.Widen32(w, t, 0)
		out := make([]float64, len(w))
		for i, v := range w {
			out[i] = float64(v)
		}
		return out, nil
	}
	switch d := t.Data().(type) {
	case []float32:
		out := make([]float64, len(d))
		for i, v := range d {
			out[i] = float64(v)
		}
		return out, nil
	case []float64:
		return append([]float64(nil), d...), nil
	}
	return nil, fmt.Errorf("nn: unsupported tensor data %T", t.Data())
}
