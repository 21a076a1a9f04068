package train

import (
	"fmt"
	"math"
	"runtime"
	"sync"
)

// Schedule gives the learning rate of each optimizer update.
type Schedule struct {
	Name        string // constant | cosine
	Base        float64
	Total       int // updates in the run
	WarmupSteps int
}

// NewSchedule follows Hugging Face: warmup_steps = ceil(ratio·total).
func NewSchedule(name string, base float64, total int, warmupRatio float64) Schedule {
	return Schedule{Name: name, Base: base, Total: total, WarmupSteps: int(math.Ceil(warmupRatio * float64(total)))}
}

// LR is the learning rate used by update number step (0-based), with
// Hugging Face's lambdas (get_constant_schedule_with_warmup,
// get_cosine_schedule_with_warmup with 0.5 cycles):
//
//	step < warmup: base · step/warmup  (so the first update uses lr 0)
//	constant:      base
//	cosine:        base · 0.5·(1 + cos(π·(step−warmup)/(total−warmup)))
func (s Schedule) LR(step int) float64 {
	if step < s.WarmupSteps {
		return s.Base * float64(step) / float64(max(1, s.WarmupSteps))
	}
	if s.Name != "cosine" {
		return s.Base
	}
	progress := float64(step-s.WarmupSteps) / float64(max(1, s.Total-s.WarmupSteps))
	return s.Base * math.Max(0, 0.5*(1+math.Cos(math.Pi*progress)))
}

// optSlot is the optimizer's state for one trainable tensor: its name, its
// host values (updated in place), whether weight decay applies, and the
// AdamW moments. It is not a named-tensor type (the model's parameters are
// nn.Param; trainableParams and selectParams make one optSlot from each).
type optSlot struct {
	Name  string
	Data  []float32 // the host tensor's backing array (updated in place)
	Decay bool      // weight decay applies (not to what its layer declares exempt: nn.Param.NoDecay)
	M, V  []float32 // AdamW moments (float32, as PyTorch keeps them for fp32 params)
}

// AdamW is PyTorch's torch.optim.AdamW (amsgrad=False, maximize=False) on
// host float32 tensors: for each element, with t the 1-based update count,
//
//	p ← p·(1 − lr·wd)                     (decoupled decay, decayed params only)
//	m ← β1·m + (1−β1)·g,  v ← β2·v + (1−β2)·g²
//	p ← p − (lr/(1−β1ᵗ)) · m / (√v/√(1−β2ᵗ) + ε)
//
// Arithmetic is float64 per element, stored as float32. The update runs on
// GOMAXPROCS goroutines over fixed chunks, so results do not depend on
// scheduling.
type AdamW struct {
	Beta1, Beta2, Eps, WeightDecay float64
	slots                          []*optSlot
	Step                           int // updates done
}

const chunk = 1 << 15

// GradNorm is the global L2 norm of grads (aligned with o.slots), summed
// in float64 over fixed chunks in a fixed order (deterministic).
func GradNorm(grads [][]float32) float64 {
	type piece struct {
		g    []float32
		part *float64
	}
	var pieces []piece
	parts := make([]float64, 0, 64)
	for _, g := range grads {
		for off := 0; off < len(g); off += chunk {
			parts = append(parts, 0)
		}
	}
	k := 0
	for _, g := range grads {
		for off := 0; off < len(g); off += chunk {
			pieces = append(pieces, piece{g[off:min(off+chunk, len(g))], &parts[k]})
			k++
		}
	}
	parallel(len(pieces), func(i int) {
		var s float64
		for _, x := range pieces[i].g {
			s += float64(x) * float64(x)
		}
		*pieces[i].part = s
	})
	var total float64
	for _, p := range parts {
		total += p
	}
	return math.Sqrt(total)
}

// ClipCoef is torch.nn.utils.clip_grad_norm_'s factor: max/(norm+1e-6)
// when that is below 1, else 1 (maxNorm 0 disables clipping).
func ClipCoef(norm, maxNorm float64) float64 {
	if maxNorm <= 0 {
		return 1
	}
	c := maxNorm / (norm + 1e-6)
	if c < 1 {
		return c
	}
	return 1
}

// Update applies one AdamW step with learning rate lr to every parameter;
// grads[i] (aligned with Params, nil = zero gradient) is multiplied by
// scale first (clipping and accumulation averaging).
func (o *AdamW) Update(grads [][]float32, lr, scale float64) error {
	if len(grads) != len(o.slots) {
		return fmt.Errorf("adamw: %d gradients for %d parameters", len(grads), len(o.slots))
	}
	for i, p := range o.slots {
		if grads[i] != nil && len(grads[i]) != len(p.Data) {
			return fmt.Errorf("adamw: %s: gradient of %d elements for %d parameters", p.Name, len(grads[i]), len(p.Data))
		}
		if p.M == nil {
			p.M, p.V = make([]float32, len(p.Data)), make([]float32, len(p.Data))
		}
	}
	o.Step++
	t := float64(o.Step)
	bc1 := 1 - math.Pow(o.Beta1, t)
	bc2sqrt := math.Sqrt(1 - math.Pow(o.Beta2, t))
	stepSize := lr / bc1
	b1, b2, eps := o.Beta1, o.Beta2, o.Eps
	type piece struct {
		p      *optSlot
		g      []float32
		lo, hi int
	}
	var pieces []piece
	for i, p := range o.slots {
		for off := 0; off < len(p.Data); off += chunk {
			pieces = append(pieces, piece{p, grads[i], off, min(off+chunk, len(p.Data))})
		}
	}
	return recovered("adamw: update", func() {
		parallel(len(pieces), func(k int) {
			pc := pieces[k]
			p := pc.p
			decay := 1.0
			if p.Decay {
				decay = 1 - lr*o.WeightDecay
			}
			for j := pc.lo; j < pc.hi; j++ {
				var g float64
				if pc.g != nil {
					g = float64(pc.g[j]) * scale
				}
				w := float64(p.Data[j]) * decay
				m := b1*float64(p.M[j]) + (1-b1)*g
				v := b2*float64(p.V[j]) + (1-b2)*g*g
				p.M[j], p.V[j] = float32(m), float32(v)
				w -= stepSize * m / (math.Sqrt(v)/bc2sqrt + eps)
				p.Data[j] = float32(w)
			}
		})
	})
}

// recovered runs f and returns a panic inside it as an error naming what.
func recovered(what string, f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: %v", what, r)
		}
	}()
	f()
	return nil
}

// parallel runs fn(0..n-1) on GOMAXPROCS goroutines. A panic in fn on a
// worker goroutine is caught there and raised again on the calling
// goroutine once every worker has stopped: a panic on another goroutine
// would end the process, one on the caller can be recovered (Update turns
// it into an error).
func parallel(n int, fn func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		for i := 0; i < n; i++ {
			fn(i)
		}
		return
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var perr any
	next := 0
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if r := recover(); r != nil {
					mu.Lock()
					if perr == nil {
						perr = r
					}
					next = n // the other workers stop at their next item
					mu.Unlock()
				}
			}()
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= n {
					return
				}
				fn(i)
			}
		}()
	}
	wg.Wait()
	if perr != nil {
		panic(perr)
	}
}
