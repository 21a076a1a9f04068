package vision

import (
	"github.com/magma-go/magma/nn"
	"github.com/magma-go/magma/vision/imaging"
	"math/rand"
	"testing"

	G "gorgonia.org/gorgonia"

	"github.com/magma-go/magma/kernels"
)

// smallConfig is the `small` preset's vision tower (configs/small.yaml).
func smallConfig() Config {
	return Config{Backbone: "convnext_custom", Depths: []int{2, 2, 6, 2}, Dims: []int{64, 128, 256, 512}, NormEps: 1e-5, ImageSize: 512, MaxNumCrops: 1}
}

func randomTrunk(tb testing.TB, cfg Config) *ConvNeXt {
	m, err := NewConvNeXt(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	r := rand.New(rand.NewSource(1))
	for _, nt := range params(m, "") {
		d := nt.T.Data().([]float32)
		for i := range d {
			d[i] = float32(r.NormFloat64() * 0.02)
		}
	}
	return m
}

// BenchmarkConvNeXtSmallForward times one forward pass of the small trunk on
// one 512x512 crop with the graph and machine built once (steady state).
func BenchmarkConvNeXtSmallForward(b *testing.B) {
	m := randomTrunk(b, smallConfig())
	px := &imaging.Pixels{Rows: 1, Cols: 1, Base: 512, Data: make([]float32, 512*512*3)}
	r := rand.New(rand.NewSource(2))
	for i := range px.Data {
		px.Data[i] = float32(r.NormFloat64())
	}
	bld := kernels.NewBuilder(nn.ParamNames(m, ""))
	x := bld.Input("pixel_values", PixelTensor(px))
	out, _ := m.Forward(bld, x, CropGrid(px))
	if err := bld.Err(); err != nil {
		b.Fatal(err)
	}
	prog, err := kernels.Compile(bld.G, kernels.CompileOptions{Name: "vision forward", Outputs: G.Nodes{out}})
	if err != nil {
		b.Fatal(err)
	}
	exec := kernels.NewExecutor()
	if err := exec.Run(prog, nil); err != nil { // warm-up
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := exec.Run(prog, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConvNeXtSmallEncode includes graph construction (Encode).
func BenchmarkConvNeXtSmallEncode(b *testing.B) {
	m := randomTrunk(b, smallConfig())
	px := &imaging.Pixels{Rows: 1, Cols: 1, Base: 512, Data: make([]float32, 512*512*3)}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, _, err := m.Encode(px); err != nil {
			b.Fatal(err)
		}
	}
}
