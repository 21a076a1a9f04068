package kernels

import (
	"math/rand"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func TestKVCacheAppend(t *testing.T) {
	c := NewKVCache(2, 1, 2, 3)
	k := []float32{1, 2, 3, 4, 5, 6, 7, 8} // batch 2 × 2 positions × width 2
	kb, _, start, err := appendKV(c, k, k, 2)
	if err != nil || start != 0 || c.Len() != 2 {
		t.Fatalf("append: %v start %d len %d", err, start, c.Len())
	}
	// sequence 1 starts at maxLen*width = 6
	if kb[0] != 1 || kb[3] != 4 || kb[6] != 5 || kb[9] != 8 {
		t.Errorf("layout: %v", kb)
	}
	if _, _, _, err := appendKV(c, k, k, 2); err == nil {
		t.Error("append past maxLen: want error")
	}
	if c.Len() != 2 {
		t.Errorf("failed append changed Len to %d", c.Len())
	}
	if err := c.Truncate(1); err != nil || c.Len() != 1 {
		t.Errorf("Truncate: %v len %d", err, c.Len())
	}
	if err := c.Truncate(-1); err == nil {
		t.Error("Truncate(-1): want error")
	}
	c.Reset()
	if c.Len() != 0 || c.MaxLen() != 3 {
		t.Errorf("Reset: len %d max %d", c.Len(), c.MaxLen())
	}
}

func TestKVCacheDtypeMismatch(t *testing.T) {
	cache := NewKVCache(1, 1, 2, 4)
	cfg := AttentionConfig{Batch: 1, Seq: 1, Heads: 1, KVHeads: 1, HeadDim: 2, Causal: true, Cache: cache}
	build := func(in []*G.Node) (*G.Node, error) { return Attention(in[0], in[1], in[2], cfg) }
	x := randF64(rand.New(rand.NewSource(1)), 1, 2)
	forward(t, build, toF32(x), toF32(x), toF32(x))
	g := G.NewGraph()
	in := inputNodes(g, []*tensor.Dense{x, x.Clone().(*tensor.Dense), x.Clone().(*tensor.Dense)})
	out, err := build(in)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := runGraph(g, out); err == nil {
		t.Error("float64 into a float32 cache: want error")
	}
}
