// Kernels reading 16-bit weights (bfloat16, IEEE half) in place with float32
// activations and float32 accumulation (see half.go).
//
// Unlike vec.c, the vector paths are separate functions compiled for one
// target each (AVX-512, AVX2+FMA+F16C, and a portable scalar one) and chosen
// at run time by mg_half_path, so that the tests can run every path the CPU
// supports, not only the one the loader would pick.

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "fp16.h"

enum { PATH_SCALAR = 0, PATH_AVX2 = 1, PATH_AVX512 = 2 };
enum { KIND_BF16 = 0, KIND_F16 = 1 };

// mg_half_best_path returns the best path the CPU supports.
int mg_half_best_path(void) {
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
	    __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
		return PATH_AVX512;
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
		return PATH_AVX2;
	return PATH_SCALAR;
}

// ---- scalar conversions (exact) ----

static inline float bf16_f32(uint16_t h) {
	uint32_t b = (uint32_t)h << 16;
	float f;
	memcpy(&f, &b, 4);
	return f;
}

static inline float f16_f32(uint16_t h) { return mg_f16_f32(h); }

static inline float half_f32(int kind, uint16_t h) { return kind == KIND_BF16 ? bf16_f32(h) : f16_f32(h); }

// ---- widening ----

static void widen_scalar(int kind, const uint16_t *s, float *d, long n) {
	for (long i = 0; i < n; i++) d[i] = half_f32(kind, s[i]);
}

__attribute__((target("avx2,fma,f16c"))) static void widen_avx2(int kind, const uint16_t *s, float *d, long n) {
	long i = 0;
	if (kind == KIND_BF16) {
		for (; i + 8 <= n; i += 8) {
			__m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(s + i)));
			_mm256_storeu_ps(d + i, _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)));
		}
	} else {
		for (; i + 8 <= n; i += 8) _mm256_storeu_ps(d + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + i))));
	}
	widen_scalar(kind, s + i, d + i, n - i);
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq"))) static void widen_avx512(int kind, const uint16_t *s, float *d, long n) {
	long i = 0;
	if (kind == KIND_BF16) {
		for (; i + 16 <= n; i += 16) {
			__m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(s + i)));
			_mm512_storeu_ps(d + i, _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)));
		}
	} else {
		for (; i + 16 <= n; i += 16) _mm512_storeu_ps(d + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(s + i))));
	}
	widen_scalar(kind, s + i, d + i, n - i);
}

// mg_widen writes the float32 values of rows×cols halves (row stride lds) to
// d (row stride ldd).
void mg_widen(int path, int kind, const uint16_t *s, long lds, float *d, long ldd, long rows, long cols) {
	for (long r = 0; r < rows; r++) {
		const uint16_t *sr = s + r * lds;
		float *dr = d + r * ldd;
		switch (path) {
		case PATH_AVX512: widen_avx512(kind, sr, dr, cols); break;
		case PATH_AVX2: widen_avx2(kind, sr, dr, cols); break;
		default: widen_scalar(kind, sr, dr, cols);
		}
	}
}

// ---- GEMV: y[r, o] = Σ_i x[r, i]·w[o, i] for o in [o0, o1), r < rows ----
// (f16 weights and the scalar path; bf16 on the vector paths: PAIR_BODY)
//
// Weight rows are read in blocks of four, each block once for all rows of x
// (a decode step has one row), with two accumulators per weight row.
// Memory-bound: every weight byte is read once from DRAM.

static void gemv_scalar(int kind, const float *x, long rows, const uint16_t *w, long k, float *y, long ldy, long o0, long o1) {
	for (long o = o0; o < o1; o++) {
		const uint16_t *wr = w + o * k;
		for (long r = 0; r < rows; r++) {
			const float *xr = x + r * k;
			float a[4] = {0, 0, 0, 0};
			long i = 0;
			for (; i + 4 <= k; i += 4)
				for (int j = 0; j < 4; j++) a[j] += xr[i + j] * half_f32(kind, wr[i + j]);
			for (; i < k; i++) a[0] += xr[i] * half_f32(kind, wr[i]);
			y[r * ldy + o] = (a[0] + a[1]) + (a[2] + a[3]);
		}
	}
}

#define GEMV_BODY(VT, W, LOADW, FMA, ZERO, LOADX, HSUM)                                            \
	long o = o0;                                                                               \
	for (; o + 4 <= o1; o += 4) {                                                              \
		const uint16_t *w0 = w + o * k, *w1 = w0 + k, *w2 = w1 + k, *w3 = w2 + k;          \
		for (long r = 0; r < rows; r++) {                                                  \
			const float *xr = x + r * k;                                               \
			VT a0 = ZERO, a1 = ZERO, a2 = ZERO, a3 = ZERO, b0 = ZERO, b1 = ZERO, b2 = ZERO, \
			   b3 = ZERO;                                                              \
			long i = 0;                                                                \
			for (; i + 2 * W <= k; i += 2 * W) {                                       \
				VT xa = LOADX(xr + i), xb = LOADX(xr + i + W);                     \
				a0 = FMA(LOADW(w0 + i), xa, a0);                                   \
				a1 = FMA(LOADW(w1 + i), xa, a1);                                   \
				a2 = FMA(LOADW(w2 + i), xa, a2);                                   \
				a3 = FMA(LOADW(w3 + i), xa, a3);                                   \
				b0 = FMA(LOADW(w0 + i + W), xb, b0);                               \
				b1 = FMA(LOADW(w1 + i + W), xb, b1);                               \
				b2 = FMA(LOADW(w2 + i + W), xb, b2);                               \
				b3 = FMA(LOADW(w3 + i + W), xb, b3);                               \
			}                                                                          \
			float s0 = HSUM(a0 + b0), s1 = HSUM(a1 + b1), s2 = HSUM(a2 + b2), s3 = HSUM(a3 + b3); \
			for (; i < k; i++) {                                                       \
				s0 += xr[i] * half_f32(kind, w0[i]);                               \
				s1 += xr[i] * half_f32(kind, w1[i]);                               \
				s2 += xr[i] * half_f32(kind, w2[i]);                               \
				s3 += xr[i] * half_f32(kind, w3[i]);                               \
			}                                                                          \
			float *yr = y + r * ldy + o;                                               \
			yr[0] = s0, yr[1] = s1, yr[2] = s2, yr[3] = s3;                            \
		}                                                                                  \
	}                                                                                          \
	for (; o < o1; o++) {                                                                      \
		const uint16_t *w0 = w + o * k;                                                    \
		for (long r = 0; r < rows; r++) {                                                  \
			const float *xr = x + r * k;                                               \
			VT a0 = ZERO;                                                              \
			long i = 0;                                                                \
			for (; i + W <= k; i += W) a0 = FMA(LOADW(w0 + i), LOADX(xr + i), a0);     \
			float s0 = HSUM(a0);                                                       \
			for (; i < k; i++) s0 += xr[i] * half_f32(kind, w0[i]);                    \
			y[r * ldy + o] = s0;                                                       \
		}                                                                                  \
	}

__attribute__((target("avx2,fma,f16c"))) static inline __m256 ld_f16_8(const uint16_t *p) {
	return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}
__attribute__((target("avx2,fma,f16c"))) static inline float hsum8(__m256 v) {
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma,f16c"))) static void gemv_avx2_f16(int kind, const float *x, long rows, const uint16_t *w, long k, float *y, long ldy, long o0, long o1) {
	GEMV_BODY(__m256, 8, ld_f16_8, _mm256_fmadd_ps, _mm256_setzero_ps(), _mm256_loadu_ps, hsum8)
}

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))
AVX512 static inline __m512 ld_f16_16(const uint16_t *p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)); }
AVX512 static inline float hsum16(__m512 v) {
	__m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

AVX512 static void gemv_avx512_f16(int kind, const float *x, long rows, const uint16_t *w, long k, float *y, long ldy, long o0, long o1) {
	GEMV_BODY(__m512, 16, ld_f16_16, _mm512_fmadd_ps, _mm512_setzero_ps(), _mm512_loadu_ps, hsum16)
}

// mg_gemv_half computes y[r, o] (row stride ldy) for weight rows [o0, o1)
// of w [*, k] and rows rows of x [rows, k].
// (bf16 on the vector paths goes through mg_gemv_bf16_pairs below.)
void mg_gemv_half(int path, int kind, const float *x, long rows, const uint16_t *w, long k, float *y, long ldy, long o0, long o1) {
	if (kind == KIND_F16 && path == PATH_AVX512) {
		gemv_avx512_f16(kind, x, rows, w, k, y, ldy, o0, o1);
		return;
	}
	if (kind == KIND_F16 && path == PATH_AVX2) {
		gemv_avx2_f16(kind, x, rows, w, k, y, ldy, o0, o1);
		return;
	}
	gemv_scalar(kind, x, rows, w, k, y, ldy, o0, o1);
}

// ---- memory read bandwidth probe (benchmarks) ----

// mg_read_sum reads n bytes (n a multiple of 64) as fast as the CPU allows
// and returns a checksum, so the reads cannot be optimised away.
AVX512 static uint64_t read_sum_avx512(const uint8_t *p, long n) {
	__m512i a = _mm512_setzero_si512(), b = a, c = a, d = a;
	long i = 0;
	for (; i + 256 <= n; i += 256) {
		a = _mm512_xor_si512(a, _mm512_loadu_si512(p + i));
		b = _mm512_xor_si512(b, _mm512_loadu_si512(p + i + 64));
		c = _mm512_xor_si512(c, _mm512_loadu_si512(p + i + 128));
		d = _mm512_xor_si512(d, _mm512_loadu_si512(p + i + 192));
	}
	a = _mm512_xor_si512(_mm512_xor_si512(a, b), _mm512_xor_si512(c, d));
	uint64_t s[8];
	_mm512_storeu_si512(s, a);
	uint64_t r = 0;
	for (int j = 0; j < 8; j++) r ^= s[j];
	for (; i < n; i++) r += p[i];
	return r;
}

__attribute__((target("avx2"))) static uint64_t read_sum_avx2(const uint8_t *p, long n) {
	__m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
	long i = 0;
	for (; i + 128 <= n; i += 128) {
		a = _mm256_xor_si256(a, _mm256_loadu_si256((const __m256i *)(p + i)));
		b = _mm256_xor_si256(b, _mm256_loadu_si256((const __m256i *)(p + i + 32)));
		c = _mm256_xor_si256(c, _mm256_loadu_si256((const __m256i *)(p + i + 64)));
		d = _mm256_xor_si256(d, _mm256_loadu_si256((const __m256i *)(p + i + 96)));
	}
	a = _mm256_xor_si256(_mm256_xor_si256(a, b), _mm256_xor_si256(c, d));
	uint64_t s[4];
	memcpy(s, &a, sizeof s);
	uint64_t r = s[0] ^ s[1] ^ s[2] ^ s[3];
	for (; i < n; i++) r += p[i];
	return r;
}

uint64_t mg_read_sum(int path, const uint8_t *p, long n) {
	if (path == PATH_AVX512) return read_sum_avx512(p, n);
	if (path == PATH_AVX2) return read_sum_avx2(p, n);
	uint64_t r = 0;
	for (long i = 0; i < n; i += 8) {
		uint64_t v;
		memcpy(&v, p + i, 8);
		r ^= v;
	}
	return r;
}

// ---- --compute bf16: bf16 activations, vdpbf16ps (AVX512_BF16) ----
//
// mg_has_bf16dot: the CPU has the bf16 dot-product instructions.
int mg_has_bf16dot(void) {
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
}

// mg_round_bf16 rounds n floats to bfloat16, nearest even (NaN kept quiet).
void mg_round_bf16(const float *x, uint16_t *d, long n) {
	for (long i = 0; i < n; i++) {
		uint32_t b;
		memcpy(&b, &x[i], 4);
		if ((b & 0x7fffffffu) > 0x7f800000u) {
			d[i] = (uint16_t)(b >> 16) | 0x40;
			continue;
		}
		b += 0x7fffu + ((b >> 16) & 1);
		d[i] = (uint16_t)(b >> 16);
	}
}

#define BF16DOT __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))
BF16DOT static inline __m512 dp(__m512 acc, const uint16_t *w, const uint16_t *x) {
	return _mm512_dpbf16_ps(acc, (__m512bh)_mm512_loadu_si512(w), (__m512bh)_mm512_loadu_si512(x));
}

// mg_gemv_bf16dot: y[r, o] = Σ_i xb[r, i]·w[o, i] with xb the bf16-rounded
// activations, products of bf16 pairs accumulated in float32 by vdpbf16ps
// (32 pairs per instruction), weight rows [o0, o1) in blocks of four.
BF16DOT void mg_gemv_bf16dot(const uint16_t *xb, long rows, const uint16_t *w, long k, float *y, long ldy, long o0, long o1) {
	long o = o0;
	for (; o < o1; o += 4) {
		int nr = o1 - o < 4 ? (int)(o1 - o) : 4;
		const uint16_t *wr[4];
		for (int j = 0; j < 4; j++) wr[j] = w + (o + (j < nr ? j : 0)) * k;
		for (long r = 0; r < rows; r++) {
			const uint16_t *xr = xb + r * k;
			__m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
			long i = 0;
			for (; i + 32 <= k; i += 32) {
				a0 = dp(a0, wr[0] + i, xr + i);
				a1 = dp(a1, wr[1] + i, xr + i);
				a2 = dp(a2, wr[2] + i, xr + i);
				a3 = dp(a3, wr[3] + i, xr + i);
			}
			float s[4] = {_mm512_reduce_add_ps(a0), _mm512_reduce_add_ps(a1), _mm512_reduce_add_ps(a2), _mm512_reduce_add_ps(a3)};
			for (; i < k; i++) {
				float xv = bf16_f32(xr[i]);
				for (int j = 0; j < 4; j++) s[j] += xv * bf16_f32(wr[j][i]);
			}
			for (int j = 0; j < nr; j++) y[r * ldy + o + j] = s[j];
		}
	}
}

// ---- bf16 GEMV on pair-split activations ----
//
// A bf16 pair read as one 32-bit lane widens exactly with one instruction
// per half: the even element is lane << 16, the odd one lane & 0xffff0000.
// With x permuted so that each block of B elements holds its B/2 even
// elements, then its B/2 odd ones (mg_split_pairs), a block of 2·W weights
// costs one load, one shift, one and and two FMAs per weight row, against
// two loads, two widenings, two shifts and two FMAs before: the decode
// GEMV needs fewer instructions per byte and keeps up with the memory.

// mg_split_pairs writes x [rows, k] to xp with every whole block of B
// elements reordered evens first, then odds; the tail (k % B) is copied as is.
void mg_split_pairs(const float *x, float *xp, long rows, long k, long B) {
	for (long r = 0; r < rows; r++) {
		const float *xr = x + r * k;
		float *d = xp + r * k;
		long i = 0;
		for (; i + B <= k; i += B)
			for (long t = 0; t < B / 2; t++) {
				d[i + t] = xr[i + 2 * t];
				d[i + B / 2 + t] = xr[i + 2 * t + 1];
			}
		for (; i < k; i++) d[i] = xr[i];
	}
}

// PAIR_PREFETCH: each of the four row streams prefetches (into L2) the
// line 2.5 KiB ahead of the one it reads. The hardware prefetcher does not
// cross a 4 KiB page, and with four streams a new page starts every 1 KiB
// of progress; prefetching across it keeps the misses in flight. Measured
// on the 8B decode (scripts/bench/decodebw, alternated): 566–665 ms per
// step against 684–733 without (1.5 KiB and 4 KiB were no better; 1 KiB
// into L1 was slower).
#define PAIR_PREFETCH 2560

#define PAIR_BODY(VT, W, LDI, SHL, AND, MASK, CAST, FMA, ZERO, LOADX, HSUM)                       \
	long o = o0;                                                                               \
	for (; o + 4 <= o1; o += 4) {                                                              \
		const uint16_t *w0 = w + o * k, *w1 = w0 + k, *w2 = w1 + k, *w3 = w2 + k;          \
		for (long r = 0; r < rows; r++) {                                                  \
			const float *xr = xp + r * k;                                              \
			VT a0 = ZERO, a1 = ZERO, a2 = ZERO, a3 = ZERO, b0 = ZERO, b1 = ZERO, b2 = ZERO, \
			   b3 = ZERO;                                                              \
			long i = 0;                                                                \
			for (; i + 2 * W <= k; i += 2 * W) {                                       \
				VT xe = LOADX(xr + i), xo = LOADX(xr + i + W);                     \
				_mm_prefetch((const char *)(w0 + i) + PAIR_PREFETCH, _MM_HINT_T1); \
				_mm_prefetch((const char *)(w1 + i) + PAIR_PREFETCH, _MM_HINT_T1); \
				_mm_prefetch((const char *)(w2 + i) + PAIR_PREFETCH, _MM_HINT_T1); \
				_mm_prefetch((const char *)(w3 + i) + PAIR_PREFETCH, _MM_HINT_T1); \
				__typeof__(LDI(w0)) v0 = LDI(w0 + i), v1 = LDI(w1 + i), v2 = LDI(w2 + i), v3 = LDI(w3 + i); \
				a0 = FMA(CAST(SHL(v0, 16)), xe, a0);                               \
				b0 = FMA(CAST(AND(v0, MASK)), xo, b0);                             \
				a1 = FMA(CAST(SHL(v1, 16)), xe, a1);                               \
				b1 = FMA(CAST(AND(v1, MASK)), xo, b1);                             \
				a2 = FMA(CAST(SHL(v2, 16)), xe, a2);                               \
				b2 = FMA(CAST(AND(v2, MASK)), xo, b2);                             \
				a3 = FMA(CAST(SHL(v3, 16)), xe, a3);                               \
				b3 = FMA(CAST(AND(v3, MASK)), xo, b3);                             \
			}                                                                          \
			float s0 = HSUM(a0 + b0), s1 = HSUM(a1 + b1), s2 = HSUM(a2 + b2), s3 = HSUM(a3 + b3); \
			for (; i < k; i++) {                                                       \
				s0 += xr[i] * bf16_f32(w0[i]);                                     \
				s1 += xr[i] * bf16_f32(w1[i]);                                     \
				s2 += xr[i] * bf16_f32(w2[i]);                                     \
				s3 += xr[i] * bf16_f32(w3[i]);                                     \
			}                                                                          \
			float *yr = y + r * ldy + o;                                               \
			yr[0] = s0, yr[1] = s1, yr[2] = s2, yr[3] = s3;                            \
		}                                                                                  \
	}                                                                                          \
	for (; o < o1; o++) {                                                                      \
		const uint16_t *w0 = w + o * k;                                                    \
		for (long r = 0; r < rows; r++) {                                                  \
			const float *xr = xp + r * k;                                              \
			VT a0 = ZERO, b0 = ZERO;                                                   \
			long i = 0;                                                                \
			for (; i + 2 * W <= k; i += 2 * W) {                                       \
				__typeof__(LDI(w0)) v0 = LDI(w0 + i);                              \
				a0 = FMA(CAST(SHL(v0, 16)), LOADX(xr + i), a0);                    \
				b0 = FMA(CAST(AND(v0, MASK)), LOADX(xr + i + W), b0);              \
			}                                                                          \
			float s0 = HSUM(a0 + b0);                                                  \
			for (; i < k; i++) s0 += xr[i] * bf16_f32(w0[i]);                          \
			y[r * ldy + o] = s0;                                                       \
		}                                                                                  \
	}

AVX512 static inline __m512i ldi512(const uint16_t *p) { return _mm512_loadu_si512(p); }
__attribute__((target("avx2,fma,f16c"))) static inline __m256i ldi256(const uint16_t *p) { return _mm256_loadu_si256((const __m256i *)p); }

// mg_gemv_bf16_pairs: y[r, o] = Σ_i x[r, i]·w[o, i] for bf16 w, with xp the
// pair-split x (block 32 for AVX-512, 16 for AVX2).
AVX512 static void gemv_pairs_avx512(const float *xp, long rows, const uint16_t *w, long k, float *y, long ldy, long o0, long o1) {
	const __m512i mask = _mm512_set1_epi32((int)0xffff0000u);
	PAIR_BODY(__m512, 16, ldi512, _mm512_slli_epi32, _mm512_and_si512, mask, _mm512_castsi512_ps, _mm512_fmadd_ps,
		  _mm512_setzero_ps(), _mm512_loadu_ps, hsum16)
}
__attribute__((target("avx2,fma,f16c"))) static void gemv_pairs_avx2(const float *xp, long rows, const uint16_t *w, long k, float *y, long ldy, long o0, long o1) {
	const __m256i mask = _mm256_set1_epi32((int)0xffff0000u);
	PAIR_BODY(__m256, 8, ldi256, _mm256_slli_epi32, _mm256_and_si256, mask, _mm256_castsi256_ps, _mm256_fmadd_ps,
		  _mm256_setzero_ps(), _mm256_loadu_ps, hsum8)
}

void mg_gemv_bf16_pairs(int path, const float *xp, long rows, const uint16_t *w, long k, float *y, long ldy, long o0, long o1) {
	if (path == PATH_AVX512)
		gemv_pairs_avx512(xp, rows, w, k, y, ldy, o0, o1);
	else
		gemv_pairs_avx2(xp, rows, w, k, y, ldy, o0, o1);
}
