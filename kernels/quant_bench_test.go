package kernels

import (
	"fmt"
	"math/rand"
	"runtime"
	"syscall"
	"testing"
	"time"

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

// BenchmarkGEMVQuantCompute: the GEMV's compute ceiling per core, robust
// to a loaded machine: one goroutine locked to its thread, a 511x4096
// matrix that stays in the caches, and "cpuGB/s" = weight bytes / the
// thread's CPU time (getrusage RUSAGE_THREAD), so time the thread spends
// descheduled does not count. A path is memory-bound on a machine whose
// per-core read bandwidth is below its cpuGB/s.
func BenchmarkGEMVQuantCompute(b *testing.B) {
	const out, in = 511, 4096 // out·in < parGemmMin: runs on the calling goroutine
	rng := rand.New(rand.NewSource(1))
	x := make([]float32, in)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	y := make([]float32, out)
	for _, dt := range []tensor.Dtype{BFloat16, Q8_0, Q4K, Q6K} {
		ms := quantBenchMatrices(b, rng, dt, out, in)[:1]
		bytes := float64(out * in / BlockWeights(dt) * ElemSize(dt))
		measure := func(b *testing.B, f func()) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			f()
			b.ResetTimer()
			c0 := threadCPUTime()
			for i := 0; i < b.N; i++ {
				f()
			}
			b.ReportMetric(bytes*float64(b.N)/(threadCPUTime()-c0).Seconds()/1e9, "cpuGB/s")
		}
		if dt == BFloat16 {
			b.Run(fmt.Sprintf("BF16/%v", BestHalfPath), func(b *testing.B) {
				measure(b, func() { linearHalf(x, 1, in, ms[0], out, y, false) })
			})
			continue
		}
		for p := QuantScalar; p <= BestQuantPath; p++ {
			for _, exact := range []bool{false, true} {
				mode := "q8"
				if exact {
					mode = "exact"
				}
				b.Run(fmt.Sprintf("%s/%v/%s", DtypeName(dt), p, mode), func(b *testing.B) {
					old, _ := SetQuantPath(p)
					defer SetQuantPath(old)
					measure(b, func() { gemvQuant(x, 1, in, ms[0], out, y, exact) })
				})
			}
		}
	}
}

// threadCPUTime is the calling thread's CPU time (user + system).
func threadCPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1, &ru); err != nil { // RUSAGE_THREAD
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
