package kernels

import (
	"fmt"
	"math/rand"
	"testing"

	"gorgonia.org/tensor"
)

// Op benchmarks at the shapes of the small preset (ConvNeXt stage 1 on a
// 512x512 crop: 128x128 positions, 96 channels; decoder prefill of 335
// tokens, hidden 256, MLP 1024, vocabulary 128320), float32.

func BenchmarkGELU(b *testing.B) {
	rng := rand.New(rand.NewSource(1))
	x := toF32(randF64(rng, 128*128, 384))
	b.Run("forward_16384x384", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			geluDo[float32]([]*tensor.Dense{x}, false, nil)
		}
	})
	b.Run("grad_16384x384", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			geluDo[float32]([]*tensor.Dense{x, x}, true, nil)
		}
	})
}

func BenchmarkNorms(b *testing.B) {
	rng := rand.New(rand.NewSource(1))
	for _, sz := range []struct{ r, c int }{{128 * 128, 96}, {335, 256}} {
		x, w, bias := toF32(randF64(rng, sz.r, sz.c)), toF32(randF64(rng, sz.c)), toF32(randF64(rng, sz.c))
		b.Run(fmt.Sprintf("LayerNorm_%dx%d", sz.r, sz.c), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				layerNormFwd[float32]([]*tensor.Dense{x, w, bias}, 1e-5, nil)
			}
		})
		b.Run(fmt.Sprintf("RMSNorm_%dx%d", sz.r, sz.c), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				rmsNormFwd[float32]([]*tensor.Dense{x, w}, 1e-5, nil)
			}
		})
		b.Run(fmt.Sprintf("ChannelScale_%dx%d", sz.r, sz.c), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				channelScaleDo[float32]([]*tensor.Dense{x, w}, nil)
			}
		})
	}
}

func BenchmarkSwiGLU(b *testing.B) {
	rng := rand.New(rand.NewSource(1))
	g, u := toF32(randF64(rng, 335, 1024)), toF32(randF64(rng, 335, 1024))
	b.Run("forward_335x1024", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			swigluDo[float32]([]*tensor.Dense{g, u}, 0, nil)
		}
	})
}

func BenchmarkCrossEntropy(b *testing.B) {
	rng := rand.New(rand.NewSource(1))
	const rows, vocab = 64, 128320
	logits := toF32(randF64(rng, rows, vocab))
	lab := make([]float32, rows)
	for i := range lab {
		lab[i] = float32(rng.Intn(vocab))
	}
	labels := tensor.New(tensor.WithShape(rows), tensor.WithBacking(lab))
	b.Run("forward_64x128320", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := ceForward[float32]([]*tensor.Dense{logits, labels}, -100); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("backward_64x128320", func(b *testing.B) {
		up := tensor.New(tensor.FromScalar(float32(1)))
		for i := 0; i < b.N; i++ {
			if _, err := ceBackward[float32]([]*tensor.Dense{logits, labels, up}, -100, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkLinearConvNeXt(b *testing.B) {
	// fc1/fc2 of ConvNeXt stages 1 and 3 and a decoder MLP projection, with bias.
	rng := rand.New(rand.NewSource(1))
	for _, sz := range []struct{ r, in, out int }{{16384, 96, 384}, {16384, 384, 96}, {1024, 384, 1536}, {335, 256, 1024}} {
		b.Run(fmt.Sprintf("%dx%dx%d", sz.r, sz.in, sz.out), func(b *testing.B) {
			x, w, bias := toF32(randF64(rng, sz.r, sz.in)), toF32(randF64(rng, sz.out, sz.in)), toF32(randF64(rng, sz.out))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				linearFwd[float32]([]*tensor.Dense{x, w, bias}, nil, false)
			}
			b.ReportMetric(float64(2*sz.r*sz.in*sz.out)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
