package kernels

// Matrix products on top of OpenBLAS (blas.go): split over goroutines for
// large products, GEMV for single rows.

import (
	"runtime"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/blas/blas64"
)

// parGemmMin is the number of multiply-adds from which gemm splits a product
// across goroutines (each running single-threaded OpenBLAS).
const parGemmMin = 1 << 21

// gemm computes C = alpha·op(A)·op(B) + beta·C for row-major matrices with
// leading dimensions lda, ldb, ldc, through OpenBLAS (see blas.go).
// op(A) is m×k, op(B) is k×n. Large products are split into column blocks
// (or row blocks when m > n) computed on GOMAXPROCS goroutines; every element
// of C is still one OpenBLAS dot product, so the split does not change results
// beyond OpenBLAS's own blocking.
func gemm[T float](transA, transB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if m == 1 && !transA && beta == 0 && k > 0 {
		// One row (a decode step): a matrix-vector product. Gemm would pack
		// the whole of b for a single row, several times slower than Gemv.
		if n*k >= parGemmMin && runtime.GOMAXPROCS(0) > 1 {
			splitRange(n, 64, func(lo, hi int) {
				boff := lo
				if transB {
					boff = lo * ldb
				}
				gemv(transB, 1, hi-lo, k, alpha, a, b[boff:], ldb, c[lo:hi])
			})
			return
		}
		gemv(transB, m, n, k, alpha, a, b, ldb, c)
		return
	}
	if m*n*k < parGemmMin || runtime.GOMAXPROCS(0) == 1 || k == 0 {
		gemmSeq(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	if m > n {
		splitRange(m, 32, func(lo, hi int) {
			aoff := lo * lda
			if transA {
				aoff = lo
			}
			gemmSeq(transA, transB, hi-lo, n, k, alpha, a[aoff:], lda, b, ldb, beta, c[lo*ldc:], ldc)
		})
		return
	}
	splitRange(n, 32, func(lo, hi int) {
		boff := lo
		if transB {
			boff = lo * ldb
		}
		gemmSeq(transA, transB, m, hi-lo, k, alpha, a, lda, b[boff:], ldb, beta, c[lo:], ldc)
	})
}

// gemmSeq is gemm on the calling goroutine only (for callers that already
// run in parallel).
func gemmSeq[T float](transA, transB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		for i := 0; i < m; i++ {
			row := c[i*ldc : i*ldc+n]
			for j := range row {
				row[j] *= beta
			}
		}
		return
	}
	if m == 1 && !transA && beta == 0 {
		gemv(transB, m, n, k, alpha, a, b, ldb, c)
		return
	}
	tA, tB := blas.NoTrans, blas.NoTrans
	if transA {
		tA = blas.Trans
	}
	if transB {
		tB = blas.Trans
	}
	switch av := any(a).(type) {
	case []float32:
		blas32.Implementation().Sgemm(tA, tB, m, n, k, float32(alpha), av, lda, any(b).([]float32), ldb, float32(beta), any(c).([]float32), ldc)
	case []float64:
		blas64.Implementation().Dgemm(tA, tB, m, n, k, float64(alpha), av, lda, any(b).([]float64), ldb, float64(beta), any(c).([]float64), ldc)
	}
}

// gemv computes the row c[0:n] = alpha · a[0:k] · op(b) for gemm's m == 1
// case: with transB, b is [n, k] (c = alpha·b·a); otherwise b is [k, n]
// (c = alpha·bᵀ·a).
func gemv[T float](transB bool, _ int, n, k int, alpha T, a, b []T, ldb int, c []T) {
	t, rows, cols := blas.Trans, k, n
	if transB {
		t, rows, cols = blas.NoTrans, n, k
	}
	switch av := any(a).(type) {
	case []float32:
		blas32.Implementation().Sgemv(t, rows, cols, float32(alpha), any(b).([]float32), ldb, av, 1, 0, any(c).([]float32), 1)
	case []float64:
		blas64.Implementation().Dgemv(t, rows, cols, float64(alpha), any(b).([]float64), ldb, av, 1, 0, any(c).([]float64), 1)
	}
}
