package kernels

import (
	"fmt"
	"math/rand"
	"testing"

	"gorgonia.org/tensor"
)

// Decode-step GEMV with bf16 weights against the machine's read bandwidth
// (scripts/bench/bf16.sh runs these): every weight byte is read once per
// product, so GB/s = weight bytes / time. The weight matrices together are
// larger than the L3 cache (32 MiB here), as a model's are: each product
// reads a different matrix, round robin, so the weights come from DRAM.

// gemvShapes are an 8B-size decoder's projections (out×in): q/o, k/v, and
// the MLP's gate/up and down.
var gemvShapes = []struct {
	name    string
	out, in int
}{{"4096x4096", 4096, 4096}, {"14336x4096", 14336, 4096}, {"4096x14336", 4096, 14336}}

// benchMatrices allocates enough matrices of one shape to exceed 256 MiB.
func benchMatrices(b *testing.B, dt tensor.Dtype, out, in int) []*tensor.Dense {
	rng := rand.New(rand.NewSource(1))
	bytes := out * in * ElemSize(dt)
	n := max(2, (256<<20)/bytes+1)
	ms := make([]*tensor.Dense, n)
	buf := make([]float32, out*in)
	for i := range buf {
		buf[i] = float32(rng.NormFloat64()) * 0.02
	}
	src := tensor.New(tensor.WithShape(out, in), tensor.WithBacking(buf))
	for i := range ms {
		c, err := Convert(src, dt)
		if err != nil {
			b.Fatal(err)
		}
		if dt == tensor.Float32 {
			c = c.Clone().(*tensor.Dense)
		}
		ms[i] = c
	}
	return ms
}

// BenchmarkGEMVDecode: y = x·Wᵀ for one row x, bf16 (half.c, every path
// the CPU has) and float32 (OpenBLAS sgemv, the float32 model's path).
func BenchmarkGEMVDecode(b *testing.B) {
	for _, s := range gemvShapes {
		x := make([]float32, s.in)
		for i := range x {
			x[i] = float32(i%7) - 3
		}
		y := make([]float32, s.out)
		for _, dt := range []tensor.Dtype{BFloat16, tensor.Float32} {
			ms := benchMatrices(b, dt, s.out, s.in)
			type variant struct {
				path HalfPath
				dot  bool // --compute bf16
			}
			vs := []variant{{BestHalfPath, false}}
			if dt == BFloat16 {
				vs = nil
				for _, p := range halfPathsBench() {
					vs = append(vs, variant{p, false})
				}
				if HasBF16Dot {
					vs = append(vs, variant{BestHalfPath, true})
				}
			}
			for _, v := range vs {
				p, dot := v.path, v.dot
				name := fmt.Sprintf("%s/%s", DtypeName(dt), s.name)
				switch {
				case dot:
					name += "/compute-bf16"
				case dt == BFloat16:
					name += "/" + p.String()
				}
				b.Run(name, func(b *testing.B) {
					old, _ := SetHalfPath(p)
					defer SetHalfPath(old)
					b.SetBytes(int64(s.out * s.in * ElemSize(dt)))
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						w := ms[i%len(ms)]
						if dt == BFloat16 {
							linearHalf(x, 1, s.in, w, s.out, y, dot)
						} else {
							gemm(false, true, 1, s.out, s.in, 1, x, s.in, w.Data().([]float32), s.in, 0, y, s.out)
						}
					}
				})
			}
		}
	}
}

func halfPathsBench() []HalfPath {
	var ps []HalfPath
	for p := HalfAVX2; p <= BestHalfPath; p++ {
		ps = append(ps, p)
	}
	return ps
}

// BenchmarkReadBandwidth: the machine's read bandwidth, 1 GiB read on
// GOMAXPROCS goroutines with the widest loads the CPU has (the bound of a
// memory-bound decode step).
func BenchmarkReadBandwidth(b *testing.B) {
	buf := make([]byte, 1<<30)
	for i := range buf {
		buf[i] = byte(i)
	}
	for _, n := range []int{1, 2} {
		b.Run(fmt.Sprintf("goroutines=%d", n), func(b *testing.B) {
			b.SetBytes(int64(len(buf)))
			for i := 0; i < b.N; i++ {
				ReadBandwidth(buf, n)
			}
		})
	}
}

// BenchmarkLinearPrefill: a prefill product (335 rows, the small preset's
// prompt) with bf16 weights (widened tiles + sgemm) against float32 weights.
func BenchmarkLinearPrefill(b *testing.B) {
	rng := rand.New(rand.NewSource(2))
	for _, s := range []struct{ rows, out, in int }{{335, 1024, 256}, {335, 4096, 4096}} {
		x := toF32(randF64(rng, s.rows, s.in))
		w := toF32(randF64(rng, s.out, s.in))
		wb, err := Convert(w, BFloat16)
		if err != nil {
			b.Fatal(err)
		}
		for _, wt := range []*tensor.Dense{w, wb} {
			b.Run(fmt.Sprintf("%s/%dx%dx%d", DtypeName(wt.Dtype()), s.rows, s.out, s.in), func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					linearFwd[float32]([]*tensor.Dense{x, wt}, nil, false)
				}
			})
		}
	}
}
