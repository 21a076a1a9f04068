package kernels

import (
	"fmt"
	"math/rand"
	"testing"

	"gorgonia.org/tensor"
)

// BenchmarkGEMVQuant: the decode GEMV y = x·Wᵀ (one row) with quantized
// weights (Q8_0, Q4_K, Q6_K; every path the CPU has; 8-bit activations
// "q8" and float32 activations "exact") against bf16 (half.c's best path),
// on an 8B decoder's projection shapes. GB/s counts the weight bytes read
// (blocks, scales included): each product reads another matrix, round
// robin over more than 256 MiB, so the weights come from DRAM as a model's
// do. make bench-quant-kernels runs it.
func BenchmarkGEMVQuant(b *testing.B) {
	for _, s := range gemvShapes[:2] {
		rng := rand.New(rand.NewSource(1))
		x := make([]float32, s.in)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		y := make([]float32, s.out)
		for _, dt := range []tensor.Dtype{BFloat16, Q8_0, Q4K, Q6K} {
			ms := quantBenchMatrices(b, rng, dt, s.out, s.in)
			bytes := int64(s.out * s.in / BlockWeights(dt) * ElemSize(dt))
			if dt == BFloat16 {
				b.Run(fmt.Sprintf("BF16/%s/%v", s.name, BestHalfPath), func(b *testing.B) {
					b.SetBytes(bytes)
					for i := 0; i < b.N; i++ {
						linearHalf(x, 1, s.in, ms[i%len(ms)], s.out, y, false)
					}
				})
				continue
			}
			for p := QuantScalar; p <= BestQuantPath; p++ {
				for _, exact := range []bool{false, true} {
					mode := "q8"
					if exact {
						mode = "exact"
					}
					b.Run(fmt.Sprintf("%s/%s/%v/%s", DtypeName(dt), s.name, p, mode), func(b *testing.B) {
						old, _ := SetQuantPath(p)
						defer SetQuantPath(old)
						b.SetBytes(bytes)
						for i := 0; i < b.N; i++ {
							gemvQuant(x, 1, s.in, ms[i%len(ms)], s.out, y, exact)
						}
					})
				}
			}
		}
	}
}

// quantBenchMatrices returns enough random matrices of dtype dt (random
// blocks, or bf16 values) to exceed 256 MiB.
func quantBenchMatrices(b *testing.B, rng *rand.Rand, dt tensor.Dtype, out, in int) []*tensor.Dense {
	if dt == BFloat16 {
		return benchMatrices(b, dt, out, in)
	}
	shape, err := QuantShape(dt, []int{out, in})
	if err != nil {
		b.Fatal(err)
	}
	nb := shape[0] * shape[1]
	ms := make([]*tensor.Dense, max(2, (256<<20)/(nb*ElemSize(dt))+1))
	for i := range ms {
		if ms[i], err = View(dt, shape, randQuantBytes(rng, dt, nb)); err != nil {
			b.Fatal(err)
		}
	}
	return ms
}
