package kernels

// Splitting loops over goroutines.

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// parallelFor splits [0, n) into contiguous chunks and runs fn on them in
// parallel on at most GOMAXPROCS goroutines (the calling goroutine is one of
// them). minChunk avoids spawning goroutines for tiny amounts of work. There
// are up to four chunks per goroutine, handed out first come first served, so
// that a goroutine whose core is taken by another process (the machines are
// shared) does not hold the others up: a worker that finishes early takes the
// remaining chunks.
func parallelFor(n, minChunk int, fn func(lo, hi int)) {
	parallelChunks(n, minChunk, 4, fn)
}

// parallelChunks is parallelFor with at most perWorker chunks per goroutine.
func parallelChunks(n, minChunk, perWorker int, fn func(lo, hi int)) {
	if n <= 0 {
		return
	}
	if minChunk < 1 {
		minChunk = 1
	}
	workers := runtime.GOMAXPROCS(0)
	chunks := min((n+minChunk-1)/minChunk, perWorker*workers)
	workers = min(workers, chunks)
	if workers <= 1 {
		fn(0, n)
		return
	}
	size := (n + chunks - 1) / chunks
	var next atomic.Int64
	var wg sync.WaitGroup
	var perr any
	var mu sync.Mutex
	work := func() {
		defer func() {
			if r := recover(); r != nil {
				mu.Lock()
				perr = r
				mu.Unlock()
			}
		}()
		for {
			lo := int(next.Add(1)-1) * size
			if lo >= n {
				return
			}
			fn(lo, min(lo+size, n))
		}
	}
	for w := 1; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			work()
		}()
	}
	work()
	wg.Wait()
	if perr != nil {
		panic(perr) // re-raised on the calling goroutine, recovered by kernelOp.Do
	}
}

// splitRange runs fn over [0, n) in pieces (two per goroutine) whose
// boundaries are multiples of align, in parallel.
func splitRange(n, align int, fn func(lo, hi int)) { splitAligned(n, align, 2, fn) }

// splitAligned runs fn over [0, n) in pieces whose boundaries are multiples
// of align, at most perWorker pieces per goroutine, in parallel.
func splitAligned(n, align, perWorker int, fn func(lo, hi int)) {
	blocks := (n + align - 1) / align
	parallelChunks(blocks, 1, perWorker, func(lo, hi int) {
		fn(lo*align, min(hi*align, n))
	})
}

// splitRows runs fn over the output rows [0, n) of a memory-bound product
// (a decode GEMV: every weight read once, a few flops per byte) in pieces of
// 64 rows handed out one at a time, up to 32 pieces per goroutine. On a
// shared machine the cores' share of the memory bandwidth moves from one
// millisecond to the next: with two large pieces per goroutine one core
// idles while the other finishes a quarter of the matrix, where small
// pieces keep both reading to the end (the 8B decode measured 0.65 of the
// interleaved read bound with two pieces per goroutine and 0.70–0.75 with
// 64-row pieces, scripts/bench/decodebw). A piece is one cgo call per
// 64 rows (half a megabyte of bf16 weights at 4096 columns).
func splitRows(n int, fn func(lo, hi int)) { splitAligned(n, 64, 32, fn) }
