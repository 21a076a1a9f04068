package kernels

import (
	"math/rand"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestSymbolicGradWithoutADOp: the kernels implement only Op + SDOp; Grad
// (symbolic) followed by a run needs no ADOp. A composite graph
// exercises gradient accumulation across ops.
func TestSymbolicGradWithoutADOp(t *testing.T) {
	if _, ok := any(&kernelOp{}).(G.ADOp); ok {
		t.Fatal("kernelOp unexpectedly implements ADOp")
	}
	rng := rand.New(rand.NewSource(21))
	x, nw := randF64(rng, 4, 6), randF64(rng, 6)
	w1, w2 := randF64(rng, 8, 6), randF64(rng, 8, 6)
	wo, gm := randF64(rng, 5, 8), randF64(rng, 5)
	emb := randF64(rng, 10, 6)
	idx := denseF64([]float64{3, 9, 0, 3}, 4)
	labels := denseF64([]float64{1, 4, -100, 0}, 4)
	build := func(in []*G.Node) (*G.Node, error) {
		e, err := Gather(in[7], in[8])
		if err != nil {
			return nil, err
		}
		h, err := G.Add(in[0], e)
		if err != nil {
			return nil, err
		}
		n, err := RMSNorm(h, in[1], 1e-5)
		if err != nil {
			return nil, err
		}
		a, err := Linear(n, in[2], nil)
		if err != nil {
			return nil, err
		}
		b, err := Linear(n, in[3], nil)
		if err != nil {
			return nil, err
		}
		s, err := SwiGLU(a, b)
		if err != nil {
			return nil, err
		}
		l, err := Linear(s, in[4], nil)
		if err != nil {
			return nil, err
		}
		l, err = ChannelScale(l, in[5])
		if err != nil {
			return nil, err
		}
		return CrossEntropy(l, in[6], -100)
	}
	gradCheck(t, build, []int{0, 1, 2, 3, 4, 5, 7}, x, nw, w1, w2, wo, gm, labels, emb, idx)
}

// TestHashDistinct: ops differing only in a parameter must not be merged.
func TestHashDistinct(t *testing.T) {
	g := G.NewGraph()
	x := G.NewMatrix(g, tensor.Float32, G.WithShape(2, 4), G.WithName("x"))
	w := G.NewVector(g, tensor.Float32, G.WithShape(4), G.WithName("w"))
	p := G.NewVector(g, tensor.Float32, G.WithShape(2), G.WithName("p"))
	a, _ := RMSNorm(x, w, 1e-5)
	b, _ := RMSNorm(x, w, 1e-6)
	if a == b {
		t.Error("RMSNorm eps merged")
	}
	r1, _ := Rotary(x, p, 1, 4, 1e4)
	r2, _ := Rotary(x, p, 1, 4, 5e5)
	r3, _ := Rotary(x, p, 2, 2, 1e4)
	if r1 == r2 || r1 == r3 {
		t.Error("Rotary params merged")
	}
	cfg := AttentionConfig{Batch: 1, Seq: 2, Heads: 1, KVHeads: 1, HeadDim: 4, Causal: true}
	c1, c2 := cfg, cfg
	c1.Cache, c2.Cache = NewKVCache(1, 1, 4, 8), NewKVCache(1, 1, 4, 8)
	n0, _ := Attention(x, x, x, cfg)
	n1, _ := Attention(x, x, x, c1)
	n2, _ := Attention(x, x, x, c2)
	nc := cfg
	nc.Causal = false
	n3, _ := Attention(x, x, x, nc)
	if n0 == n1 || n1 == n2 || n0 == n3 {
		t.Error("Attention configs merged")
	}
	if again, _ := Attention(x, x, x, c1); again != n1 {
		t.Log("identical Attention nodes are not shared (allowed)")
	}
}
