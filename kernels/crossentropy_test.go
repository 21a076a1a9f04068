package kernels

import (
	"math"
	"math/rand"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func TestCrossEntropy(t *testing.T) {
	rng := rand.New(rand.NewSource(14))
	cases := []struct {
		v      int
		labels []float64
	}{
		{5, []float64{0, 4, 2}},
		{3, []float64{1, -100, 2, -100}},
		{1, []float64{0}},
		{7, []float64{-100, -100}}, // all ignored: loss 0, zero gradient
	}
	for _, c := range cases {
		r := len(c.labels)
		logits := randF64(rng, r, c.v)
		ls := logits.Data().([]float64)
		for i := range ls {
			ls[i] *= 3
		}
		var ref float64
		n := 0
		for i, l := range c.labels {
			if l == -100 {
				continue
			}
			var z float64
			for j := 0; j < c.v; j++ {
				z += math.Exp(ls[i*c.v+j])
			}
			ref += math.Log(z) - ls[i*c.v+int(l)]
			n++
		}
		if n > 0 {
			ref /= float64(n)
		}
		labels := denseF64(append([]float64(nil), c.labels...), r)
		build := func(in []*G.Node) (*G.Node, error) { return CrossEntropy(in[0], in[1], -100) }
		checkForward(t, build, []float64{ref}, logits, labels)
		gradCheck(t, build, []int{0}, logits, labels)
	}
}

// TestCrossEntropyFloat32Cost runs Grad on a float32 loss (the production dtype).
func TestCrossEntropyFloat32Cost(t *testing.T) {
	rng := rand.New(rand.NewSource(15))
	g := G.NewGraph()
	w := G.NodeFromAny(g, toF32(randF64(rng, 6, 4)), G.WithName("w"))
	x := G.NodeFromAny(g, toF32(randF64(rng, 3, 4)), G.WithName("x"))
	lab := G.NodeFromAny(g, toF32(denseF64([]float64{5, 0, -100}, 3)), G.WithName("labels"))
	logits, err := Linear(x, w, nil)
	if err != nil {
		t.Fatal(err)
	}
	loss, err := CrossEntropy(logits, lab, -100)
	if err != nil {
		t.Fatal(err)
	}
	if !loss.IsScalar() || loss.Dtype() != tensor.Float32 {
		t.Fatalf("loss is %v %v", loss.Shape(), loss.Dtype())
	}
	grads, err := G.Grad(loss, w)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := runGraph(g, loss, grads[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := vs[0].(*G.F32); !ok {
		t.Errorf("loss value is %T", vs[0])
	}
	if gs := grads[0].Shape(); !gs.Eq(tensor.Shape{6, 4}) {
		t.Errorf("grad shape %v", gs)
	}
}

func TestCrossEntropyErrors(t *testing.T) {
	for _, bad := range []float64{5, -1, 1.5} {
		g := G.NewGraph()
		logits := G.NodeFromAny(g, randF64(rand.New(rand.NewSource(1)), 2, 5), G.WithName("logits"))
		labels := G.NodeFromAny(g, denseF64([]float64{0, bad}, 2), G.WithName("labels"))
		loss, err := CrossEntropy(logits, labels, -100)
		if err != nil {
			t.Fatal(err)
		}
		_, err = runGraph(g, loss)
		if err == nil || !strings.Contains(err.Error(), "out of range") {
			t.Errorf("label %v: want out-of-range error, got %v", bad, err)
		}
	}
	g := G.NewGraph()
	logits := G.NewMatrix(g, tensor.Float64, G.WithShape(3, 5), G.WithName("logits"))
	labels := G.NewVector(g, tensor.Float64, G.WithShape(2), G.WithName("labels"))
	if _, err := CrossEntropy(logits, labels, -100); err == nil {
		t.Error("row mismatch: want error")
	}
}
