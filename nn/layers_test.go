package nn

import (
	"math"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/magma-go/magma/kernels"
)

func dense64(shape []int, v ...float64) *tensor.Dense {
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(v))
}

func run(t *testing.T, b *kernels.Builder, out *G.Node) []float64 {
	t.Helper()
	if err := b.Err(); err != nil {
		t.Fatal(err)
	}
	v, err := kernels.RunGraphWith(kernels.TestOptions(), b.G, "layer", out)
	if err != nil {
		t.Fatal(err)
	}
	return v[0].Data().([]float64)
}

func near(t *testing.T, what string, got, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if math.Abs(got[i]-want[i]) > 1e-12 {
			t.Fatalf("%s[%d] = %v, want %v", what, i, got[i], want[i])
		}
	}
}

// TestLayers checks each layer against its formula on a tiny input.
func TestLayers(t *testing.T) {
	x := dense64([]int{2, 2}, 1, 2, 3, -1)
	lin := Linear{Weight: dense64([]int{3, 2}, 1, 0, 0, 1, 1, 1), Bias: dense64([]int{3}, 0.5, 0, -1)}
	lora := &Linear{Weight: dense64([]int{1, 2}, 1, 1), LoRA: &LoRA{
		A: dense64([]int{1, 2}, 1, -1), B: dense64([]int{1, 1}, 2), Rank: 1, Alpha: 3}}
	ln := LayerNorm{Weight: dense64([]int{2}, 1, 2), Bias: dense64([]int{2}, 0, 1), Eps: 0}
	rms := RMSNorm{Weight: dense64([]int{2}, 1, 2)}
	emb := Embedding{Weight: dense64([]int{3, 2}, 0, 1, 10, 11, 20, 21)}
	cases := []struct {
		name  string
		build func(b *kernels.Builder, x *G.Node) *G.Node
		want  []float64
	}{
		{"linear", func(b *kernels.Builder, x *G.Node) *G.Node { return lin.Forward(b, x) },
			[]float64{1.5, 2, 2, 3.5, -1, 1}},
		// x·Wᵀ + 3·(x·Aᵀ)·Bᵀ: rows 3 + 3·2·(−1) = −3 and 2 + 3·2·4 = 26.
		{"linear+lora", func(b *kernels.Builder, x *G.Node) *G.Node { return lora.Forward(b, x) },
			[]float64{-3, 26}},
		{"layernorm", func(b *kernels.Builder, x *G.Node) *G.Node { return ln.Forward(b, x) },
			[]float64{-1, 3, 1, -1}},
		{"rmsnorm", func(b *kernels.Builder, x *G.Node) *G.Node { return rms.Forward(b, x, 0) },
			[]float64{1 / math.Sqrt(2.5), 4 / math.Sqrt(2.5), 3 / math.Sqrt(5), -2 / math.Sqrt(5)}},
		{"embedding", func(b *kernels.Builder, _ *G.Node) *G.Node {
			return emb.Forward(b, b.Input("ids", dense64([]int{2}, 2, 0)))
		}, []float64{20, 21, 0, 1}},
	}
	for _, c := range cases {
		b := kernels.NewBuilder(nil)
		out := c.build(b, b.Input("x", x))
		near(t, c.name, run(t, b, out), c.want)
	}
}

// TestMissingWeight: every layer reports a nil weight through the Builder,
// under its scope, and later ops do nothing.
func TestMissingWeight(t *testing.T) {
	layers := map[string]func(b *kernels.Builder, x *G.Node) *G.Node{
		"linear":    func(b *kernels.Builder, x *G.Node) *G.Node { return (&Linear{}).Forward(b, x) },
		"layernorm": func(b *kernels.Builder, x *G.Node) *G.Node { return (&LayerNorm{}).Forward(b, x) },
		"rmsnorm":   func(b *kernels.Builder, x *G.Node) *G.Node { return (&RMSNorm{}).Forward(b, x, 1e-5) },
		"embedding": func(b *kernels.Builder, x *G.Node) *G.Node { return (&Embedding{}).Forward(b, x) },
	}
	for name, f := range layers {
		b := kernels.NewBuilder(nil)
		out := f(b.In("layers.3", name), b.Input("x", dense64([]int{2, 2}, 1, 2, 3, 4)))
		if out != nil {
			t.Errorf("%s: a node despite the missing weight", name)
		}
		err := b.Err()
		if !kernels.IsMissingParam(err) || !strings.HasPrefix(err.Error(), "layers.3."+name+": ") {
			t.Errorf("%s: error %v", name, err)
		}
		if b.GELU(b.Input("y", dense64([]int{1, 1}, 1))) != nil || b.Err() != err {
			t.Errorf("%s: an op after the error was not a no-op", name)
		}
	}
}
