package kernels

import (
	"math/rand"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func TestGather(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	cases := []struct {
		s, d int
		idx  []float64
	}{
		{5, 3, []float64{0, 4, 2, 2, 0}},
		{1, 1, []float64{0}},
		{7, 4, []float64{6}},
		{3, 2, []float64{1, 1, 1, 1, 0, 2, 2}},
	}
	for _, c := range cases {
		src := randF64(rng, c.s, c.d)
		idx := denseF64(append([]float64(nil), c.idx...), len(c.idx))
		ss := src.Data().([]float64)
		var ref []float64
		for _, i := range c.idx {
			ref = append(ref, ss[int(i)*c.d:(int(i)+1)*c.d]...)
		}
		build := func(in []*G.Node) (*G.Node, error) { return Gather(in[0], in[1]) }
		checkForward(t, build, ref, src, idx)
		gradCheck(t, build, []int{0}, src, idx)
	}
}

func TestGatherErrors(t *testing.T) {
	for _, bad := range []float64{-1, 5, 1e9} {
		g := G.NewGraph()
		src := G.NodeFromAny(g, randF64(rand.New(rand.NewSource(1)), 5, 2), G.WithName("src"))
		idx := G.NodeFromAny(g, denseF64([]float64{0, bad}, 2), G.WithName("idx"))
		out, err := Gather(src, idx)
		if err != nil {
			t.Fatal(err)
		}
		_, err = runGraph(g, out)
		if err == nil || !strings.Contains(err.Error(), "out of range") {
			t.Errorf("index %v: want out-of-range error, got %v", bad, err)
		}
	}
	g := G.NewGraph()
	src := G.NewMatrix(g, tensor.Float64, G.WithShape(4, 2), G.WithName("src"))
	idx := G.NewMatrix(g, tensor.Float64, G.WithShape(2, 2), G.WithName("idx"))
	if _, err := Gather(src, idx); err == nil {
		t.Error("2-D idx: want error")
	}
}
