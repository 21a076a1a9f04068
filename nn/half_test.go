package nn

import (
	"math/rand"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/magma-go/magma/kernels"
)

// halfModel is a small stack of every layer type of the package.
type halfModel struct {
	Embed Embedding `weights:"embed"`
	Norm  LayerNorm `weights:"norm"`
	Proj  Linear    `weights:"proj"`
	RMS   RMSNorm   `weights:"rms"`
	Head  Linear    `weights:"head"`
}

func (m *halfModel) forward(b *kernels.Builder, ids *G.Node) *G.Node {
	h := m.Embed.Forward(b.In("embed"), ids)
	h = m.Norm.Forward(b.In("norm"), h)
	h = m.Proj.Forward(b.In("proj"), h)
	h = m.RMS.Forward(b.In("rms"), h, 1e-5)
	return m.Head.Forward(b.In("head"), h)
}

func newHalfModel(rng *rand.Rand) *halfModel {
	m := &halfModel{Embed: Embedding{Weight: Zeros(tensor.Float32, 50, 16)}, Norm: NewLayerNorm(16, 1e-6),
		Proj: NewLinear(true, 24, 16), RMS: RMSNorm{Weight: Zeros(tensor.Float32, 24)}, Head: NewLinear(false, 40, 24)}
	ps, _ := Parameters(m, "")
	for _, p := range ps {
		for i, d := 0, p.T.Data().([]float32); i < len(d); i++ {
			d[i] = float32(rng.NormFloat64())
		}
	}
	return m
}

func runIDs(t *testing.T, m *halfModel, ids []float32) []float32 {
	t.Helper()
	b := kernels.NewBuilder(ParamNames(m, ""))
	out := m.forward(b, b.Input("ids", tensor.New(tensor.WithShape(len(ids)), tensor.WithBacking(ids))))
	if err := b.Err(); err != nil {
		t.Fatal(err)
	}
	v, err := kernels.RunGraphWith(kernels.TestOptions(), b.G, "half", out)
	if err != nil {
		t.Fatal(err)
	}
	return v[0].Data().([]float32)
}

// TestConvertParamsHalfForward: every layer runs with BF16/F16 parameters
// (ConvertParams) and gives the float32 layers' result on the upcast
// parameters (the Linear GEMV and tiled paths up to float32 summation order,
// see kernels.TestHalfLinearMatchesUpcast); the float32 originals are left
// untouched.
func TestConvertParamsHalfForward(t *testing.T) {
	for _, dt := range []tensor.Dtype{kernels.BFloat16, kernels.Float16} {
		t.Run(kernels.DtypeName(dt), func(t *testing.T) {
			m := newHalfModel(rand.New(rand.NewSource(3)))
			orig := *m
			half := *m
			if err := ConvertParams(&half, dt); err != nil {
				t.Fatal(err)
			}
			up := half
			if err := ConvertParams(&up, tensor.Float32); err != nil {
				t.Fatal(err)
			}
			ps, _ := Parameters(&half, "")
			for _, p := range ps {
				if p.T.Dtype() != dt {
					t.Fatalf("%s is %v after ConvertParams", p.Name, p.T.Dtype())
				}
			}
			if orig.Proj.Weight.Dtype() != tensor.Float32 {
				t.Fatal("ConvertParams modified the original tensors")
			}
			for _, ids := range [][]float32{{7}, {3, 49, 0, 3, 12, 8, 1}} {
				got, want := runIDs(t, &half, ids), runIDs(t, &up, ids)
				for i := range got {
					if d := got[i] - want[i]; d > 1e-4 || d < -1e-4 {
						t.Fatalf("%d ids: output %d is %v, float32 on the upcast weights %v", len(ids), i, got[i], want[i])
					}
				}
			}
		})
	}
	var lin Linear
	if err := ConvertParams(lin, kernels.BFloat16); err == nil || !strings.Contains(err.Error(), "pointer") {
		t.Errorf("ConvertParams of a value: %v", err)
	}
}
