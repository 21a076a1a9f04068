// Kernels reading ggml block-quantized weights (Q8_0, Q4_K, Q6_K) in place
// (see quant.go): dequantization to float32 (prefill tiles, gathers, dx
// strips, and the exact GEMV) and the decode GEMV with activations
// quantized to 8 bits per block (integer dot products, as llama.cpp).
//
// As in half.c, every vector path is a separate function compiled for one
// target (scalar; AVX2+FMA+F16C; AVX-512 F/BW/VL/DQ; AVX-512 + VNNI) and
// chosen at run time, so the tests run every path the CPU has.
//
// Block layouts (ggml-common.h):
//   Q8_0 (34 bytes):  fp16 d, int8 qs[32]; w = d·qs
//   Q4_K (144 bytes): fp16 d, fp16 dmin, scales[12] (8 six-bit scales and
//                     mins), qs[128]; sub-block j (32 weights) reads the low
//                     nibbles of qs[32(j/2)..] for even j, the high ones for
//                     odd j; w = d·sc_j·q − dmin·m_j
//   Q6_K (210 bytes): ql[128], qh[64], int8 scales[16], fp16 d;
//                     w = d·scales[g]·(q − 32), g = 16-weight group

#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "fp16.h"

enum { QP_SCALAR = 0, QP_AVX2 = 1, QP_AVX512 = 2, QP_VNNI = 3 };
enum { QT_Q8_0 = 0, QT_Q4K = 1, QT_Q6K = 2 };

#define T_AVX2 __attribute__((target("avx2,fma,f16c")))
#define T_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c")))
#define T_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma,f16c")))

// Bytes ahead of the current block that the GEMVs prefetch (the weight
// rows of a piece are one sequential stream; the hardware prefetcher stops
// at 4 KiB pages).
#define QPF 2048

int mg_quant_best_path(void) {
	__builtin_cpu_init();
	int avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
		     __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
		     __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
	if (avx512 && __builtin_cpu_supports("avx512vnni")) return QP_VNNI;
	if (avx512) return QP_AVX512;
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
		return QP_AVX2;
	return QP_SCALAR;
}

static const int qt_bytes[3] = {34, 144, 210};
static const int qt_weights[3] = {32, 256, 256};

static inline float fp16(const uint8_t *p) { return mg_f16_f32((uint16_t)(p[0] | p[1] << 8)); }

// q4k_scales unpacks the eight 6-bit scales and mins of a Q4_K block.
static inline void q4k_scales(const uint8_t *s, uint8_t sc[8], uint8_t m[8]) {
	uint32_t u[3];
	memcpy(u, s, 12);
	uint32_t s0 = u[0] & 0x3f3f3f3fu, m0 = u[1] & 0x3f3f3f3fu;
	uint32_t s1 = (u[2] & 0x0f0f0f0fu) | ((u[0] >> 6) & 0x03030303u) << 4;
	uint32_t m1 = ((u[2] >> 4) & 0x0f0f0f0fu) | ((u[1] >> 6) & 0x03030303u) << 4;
	memcpy(sc, &s0, 4), memcpy(sc + 4, &s1, 4);
	memcpy(m, &m0, 4), memcpy(m + 4, &m1, 4);
}

T_AVX2 static inline __m128i q4k_scales_vec(const uint8_t *s);
T_AVX2 static inline float hsum256(__m256 v);

// ---- dequantization of one block (exact: every product is exact in
// float32, so any evaluation order gives ggml's values) ----

static void deq_q8_0_scalar(const uint8_t *b, float *y) {
	float d = fp16(b);
	for (int j = 0; j < 32; j++) y[j] = (float)(int8_t)b[2 + j] * d;
}

static void deq_q4k_scalar(const uint8_t *b, float *y) {
	float d = fp16(b), dmin = fp16(b + 2);
	uint8_t sc[8], m[8];
	q4k_scales(b + 4, sc, m);
	const uint8_t *q = b + 16;
	for (int j = 0; j < 8; j += 2) {
		float d0 = d * sc[j], m0 = dmin * m[j], d1 = d * sc[j + 1], m1 = dmin * m[j + 1];
		for (int l = 0; l < 32; l++) {
			y[32 * j + l] = d0 * (float)(q[16 * j + l] & 0xf) - m0;
			y[32 * j + 32 + l] = d1 * (float)(q[16 * j + l] >> 4) - m1;
		}
	}
}

static void deq_q6k_scalar(const uint8_t *b, float *y) {
	float d = fp16(b + 208);
	const int8_t *sc = (const int8_t *)(b + 192);
	for (int h = 0; h < 2; h++) {
		const uint8_t *ql = b + 64 * h, *qh = b + 128 + 32 * h;
		for (int l = 0; l < 32; l++) {
			int g = 8 * h + l / 16;
			int q0 = (ql[l] & 0xf) | (qh[l] & 3) << 4, q1 = (ql[l + 32] & 0xf) | (qh[l] >> 2 & 3) << 4;
			int q2 = (ql[l] >> 4) | (qh[l] >> 4 & 3) << 4, q3 = (ql[l + 32] >> 4) | (qh[l] >> 6 & 3) << 4;
			y[128 * h + l] = d * sc[g] * (float)(q0 - 32);
			y[128 * h + l + 32] = d * sc[g + 2] * (float)(q1 - 32);
			y[128 * h + l + 64] = d * sc[g + 4] * (float)(q2 - 32);
			y[128 * h + l + 96] = d * sc[g + 6] * (float)(q3 - 32);
		}
	}
}

T_AVX2 static void deq_q8_0_avx2(const uint8_t *b, float *y) {
	__m256 d = _mm256_set1_ps(_cvtsh_ss((uint16_t)(b[0] | b[1] << 8)));
	for (int j = 0; j < 32; j += 8) {
		__m256i q = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(b + 2 + j)));
		_mm256_storeu_ps(y + j, _mm256_mul_ps(_mm256_cvtepi32_ps(q), d));
	}
}

T_AVX2 static void deq_q4k_avx2(const uint8_t *b, float *y) {
	float d = _cvtsh_ss((uint16_t)(b[0] | b[1] << 8)), dmin = _cvtsh_ss((uint16_t)(b[2] | b[3] << 8));
	uint8_t sc[8], m[8];
	q4k_scales(b + 4, sc, m);
	const uint8_t *q = b + 16;
	const __m128i lo = _mm_set1_epi8(0xf);
	for (int j = 0; j < 8; j += 2) {
		__m256 d0 = _mm256_set1_ps(d * sc[j]), m0 = _mm256_set1_ps(dmin * m[j]);
		__m256 d1 = _mm256_set1_ps(d * sc[j + 1]), m1 = _mm256_set1_ps(dmin * m[j + 1]);
		for (int l = 0; l < 32; l += 8) {
			__m128i v = _mm_loadl_epi64((const __m128i *)(q + 16 * j + l));
			__m256 a = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_and_si128(v, lo)));
			__m256 c = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(v, 4), lo)));
			_mm256_storeu_ps(y + 32 * j + l, _mm256_fmsub_ps(d0, a, m0));
			_mm256_storeu_ps(y + 32 * j + 32 + l, _mm256_fmsub_ps(d1, c, m1));
		}
	}
}

// q6k_quants32 returns the four 32-byte vectors of 6-bit quants (0..63) of
// half h of a Q6_K block: weights [0,32), [32,64), [64,96), [96,128).
T_AVX2 static inline void q6k_quants32(const uint8_t *b, int h, __m256i q[4]) {
	const __m256i m4 = _mm256_set1_epi8(0xf), m2 = _mm256_set1_epi8(0x30);
	__m256i l0 = _mm256_loadu_si256((const __m256i *)(b + 64 * h));
	__m256i l1 = _mm256_loadu_si256((const __m256i *)(b + 64 * h + 32));
	__m256i hh = _mm256_loadu_si256((const __m256i *)(b + 128 + 32 * h));
	q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_and_si256(_mm256_slli_epi16(hh, 4), m2));
	q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_and_si256(_mm256_slli_epi16(hh, 2), m2));
	q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(hh, m2));
	q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4), _mm256_and_si256(_mm256_srli_epi16(hh, 2), m2));
}

T_AVX2 static void deq_q6k_avx2(const uint8_t *b, float *y) {
	float d = _cvtsh_ss((uint16_t)(b[208] | b[209] << 8));
	const int8_t *sc = (const int8_t *)(b + 192);
	const __m256i off = _mm256_set1_epi8(32);
	for (int h = 0; h < 2; h++) {
		__m256i q[4];
		q6k_quants32(b, h, q);
		for (int r = 0; r < 4; r++) {
			__m256i s = _mm256_sub_epi8(q[r], off);
			int g = 8 * h + 2 * r;
			__m256 d0 = _mm256_set1_ps(d * sc[g]), d1 = _mm256_set1_ps(d * sc[g + 1]);
			__m128i s0 = _mm256_castsi256_si128(s), s1 = _mm256_extracti128_si256(s, 1);
			float *yr = y + 128 * h + 32 * r;
			_mm256_storeu_ps(yr, _mm256_mul_ps(d0, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(s0))));
			_mm256_storeu_ps(yr + 8, _mm256_mul_ps(d0, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(s0, 8)))));
			_mm256_storeu_ps(yr + 16, _mm256_mul_ps(d1, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(s1))));
			_mm256_storeu_ps(yr + 24, _mm256_mul_ps(d1, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(s1, 8)))));
		}
	}
}

T_AVX512 static void deq_q8_0_avx512(const uint8_t *b, float *y) {
	__m512 d = _mm512_set1_ps(_cvtsh_ss((uint16_t)(b[0] | b[1] << 8)));
	for (int j = 0; j < 32; j += 16) {
		__m512i q = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b + 2 + j)));
		_mm512_storeu_ps(y + j, _mm512_mul_ps(_mm512_cvtepi32_ps(q), d));
	}
}

T_AVX512 static void deq_q4k_avx512(const uint8_t *b, float *y) {
	float d = _cvtsh_ss((uint16_t)(b[0] | b[1] << 8)), dmin = _cvtsh_ss((uint16_t)(b[2] | b[3] << 8));
	uint8_t sc[8], m[8];
	q4k_scales(b + 4, sc, m);
	const uint8_t *q = b + 16;
	const __m128i lo = _mm_set1_epi8(0xf);
	for (int j = 0; j < 8; j += 2) {
		__m512 d0 = _mm512_set1_ps(d * sc[j]), m0 = _mm512_set1_ps(dmin * m[j]);
		__m512 d1 = _mm512_set1_ps(d * sc[j + 1]), m1 = _mm512_set1_ps(dmin * m[j + 1]);
		for (int l = 0; l < 32; l += 16) {
			__m128i v = _mm_loadu_si128((const __m128i *)(q + 16 * j + l));
			__m512 a = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(v, lo)));
			__m512 c = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(v, 4), lo)));
			_mm512_storeu_ps(y + 32 * j + l, _mm512_fmsub_ps(d0, a, m0));
			_mm512_storeu_ps(y + 32 * j + 32 + l, _mm512_fmsub_ps(d1, c, m1));
		}
	}
}

T_AVX512 static void deq_q6k_avx512(const uint8_t *b, float *y) {
	float d = _cvtsh_ss((uint16_t)(b[208] | b[209] << 8));
	const int8_t *sc = (const int8_t *)(b + 192);
	const __m256i off = _mm256_set1_epi8(32);
	for (int h = 0; h < 2; h++) {
		__m256i q[4];
		q6k_quants32(b, h, q);
		for (int r = 0; r < 4; r++) {
			__m256i s = _mm256_sub_epi8(q[r], off);
			int g = 8 * h + 2 * r;
			float *yr = y + 128 * h + 32 * r;
			_mm512_storeu_ps(yr, _mm512_mul_ps(_mm512_set1_ps(d * sc[g]), _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(s)))));
			_mm512_storeu_ps(yr + 16, _mm512_mul_ps(_mm512_set1_ps(d * sc[g + 1]), _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_extracti128_si256(s, 1)))));
		}
	}
}

typedef void (*deq_fn)(const uint8_t *, float *);

static deq_fn deq_for(int path, int type) {
	static const deq_fn t[3][3] = {
	    {deq_q8_0_scalar, deq_q4k_scalar, deq_q6k_scalar},
	    {deq_q8_0_avx2, deq_q4k_avx2, deq_q6k_avx2},
	    {deq_q8_0_avx512, deq_q4k_avx512, deq_q6k_avx512},
	};
	if (path > QP_AVX512) path = QP_AVX512;
	return t[path][type];
}

// mg_dequant writes rows×nb blocks (row stride ldw bytes) as float32 to d
// (row stride ldd floats).
void mg_dequant(int path, int type, const uint8_t *w, long ldw, long rows, long nb, float *d, long ldd) {
	deq_fn f = deq_for(path, type);
	int bs = qt_bytes[type], bw = qt_weights[type];
	for (long r = 0; r < rows; r++)
		for (long b = 0; b < nb; b++) f(w + r * ldw + b * bs, d + r * ldd + b * bw);
}

// ---- exact GEMV (float32 activations): the weights are dequantized in
// registers (AVX2, AVX-512) or a block at a time into an L1 buffer
// (scalar) and multiplied with the rows of x ----

static void dot_f32_scalar(const float *buf, const float *x, long n, float *acc) {
	for (long i = 0; i < n; i++) acc[i & 3] += buf[i] * x[i];
}

// The AVX2 exact GEMV: as the AVX-512 one below (rowf_avx512), 8 weights
// per vector.
#define EAT8(wv, i, c)                                                                             \
	do {                                                                                       \
		__m256 w_ = (wv);                                                                  \
		_Pragma("GCC unroll 4") for (int r = 0; r < R; r++) a[r][c] = _mm256_fmadd_ps(w_, _mm256_loadu_ps(xb + r * k + (i)), a[r][c]); \
	} while (0)
#define CVT8(v) _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v))
#define CVTU8(v) _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v))

T_AVX2 static inline __attribute__((always_inline)) void rowf_avx2(int type, const int R, const float *x, const uint8_t *wr,
								 long nb, long k, float *out) {
	__m256 a[4][4];
	for (int r = 0; r < R; r++)
		for (int c = 0; c < 4; c++) a[r][c] = _mm256_setzero_ps();
	if (type == QT_Q8_0) {
		for (long b = 0; b < nb; b++) {
			const uint8_t *p = wr + 34 * b;
			const float *xb = x + 32 * b;
			_mm_prefetch((const char *)p + QPF, _MM_HINT_T0);
			__m256 d = _mm256_set1_ps(_cvtsh_ss((uint16_t)(p[0] | p[1] << 8)));
			__m128i v0 = _mm_loadu_si128((const __m128i *)(p + 2)), v1 = _mm_loadu_si128((const __m128i *)(p + 18));
			EAT8(_mm256_mul_ps(CVT8(v0), d), 0, 0);
			EAT8(_mm256_mul_ps(CVT8(_mm_srli_si128(v0, 8)), d), 8, 1);
			EAT8(_mm256_mul_ps(CVT8(v1), d), 16, 2);
			EAT8(_mm256_mul_ps(CVT8(_mm_srli_si128(v1, 8)), d), 24, 3);
		}
	} else if (type == QT_Q4K) {
		const __m128i m4 = _mm_set1_epi8(0xf);
		for (long b = 0; b < nb; b++) {
			const uint8_t *blk = wr + 144 * b, *q = blk + 16;
			const float *xb = x + 256 * b;
			_mm_prefetch((const char *)blk + QPF, _MM_HINT_T0);
			_mm_prefetch((const char *)blk + QPF + 64, _MM_HINT_T0);
			_mm_prefetch((const char *)blk + QPF + 128, _MM_HINT_T0);
			float ds[16] __attribute__((aligned(32)));
			uint32_t dd;
			memcpy(&dd, blk, 4);
			__m128 dm = _mm_cvtph_ps(_mm_cvtsi32_si128((int)dd));
			__m128i sm = q4k_scales_vec(blk + 4);
			_mm256_store_ps(ds, _mm256_mul_ps(_mm256_broadcastss_ps(dm), CVTU8(sm)));
			_mm256_store_ps(ds + 8, _mm256_mul_ps(_mm256_broadcastss_ps(_mm_movehdup_ps(dm)), CVTU8(_mm_srli_si128(sm, 8))));
			_Pragma("GCC unroll 4") for (int j = 0; j < 8; j += 2) {
				__m256 d0 = _mm256_set1_ps(ds[j]), m0 = _mm256_set1_ps(ds[8 + j]);
				__m256 d1 = _mm256_set1_ps(ds[j + 1]), m1 = _mm256_set1_ps(ds[9 + j]);
				_Pragma("GCC unroll 4") for (int l = 0; l < 32; l += 8) {
					__m128i v = _mm_loadl_epi64((const __m128i *)(q + 16 * j + l));
					EAT8(_mm256_fmsub_ps(d0, CVTU8(_mm_and_si128(v, m4)), m0), 32 * j + l, l / 8);
					EAT8(_mm256_fmsub_ps(d1, CVTU8(_mm_and_si128(_mm_srli_epi16(v, 4), m4)), m1), 32 * j + 32 + l, l / 8);
				}
			}
		}
	} else {
		const __m256i off = _mm256_set1_epi8(32);
		for (long b = 0; b < nb; b++) {
			const uint8_t *blk = wr + 210 * b;
			const float *xb = x + 256 * b;
			_mm_prefetch((const char *)blk + QPF, _MM_HINT_T0);
			_mm_prefetch((const char *)blk + QPF + 64, _MM_HINT_T0);
			_mm_prefetch((const char *)blk + QPF + 128, _MM_HINT_T0);
			_mm_prefetch((const char *)blk + QPF + 192, _MM_HINT_T0);
			float dsc[16] __attribute__((aligned(32)));
			__m256 d = _mm256_set1_ps(_cvtsh_ss((uint16_t)(blk[208] | blk[209] << 8)));
			__m128i sc8 = _mm_loadu_si128((const __m128i *)(blk + 192));
			_mm256_store_ps(dsc, _mm256_mul_ps(d, CVT8(sc8)));
			_mm256_store_ps(dsc + 8, _mm256_mul_ps(d, CVT8(_mm_srli_si128(sc8, 8))));
			_Pragma("GCC unroll 2") for (int h = 0; h < 2; h++) {
				__m256i q[4];
				q6k_quants32(blk, h, q);
				_Pragma("GCC unroll 4") for (int r4 = 0; r4 < 4; r4++) {
					__m256i sq = _mm256_sub_epi8(q[r4], off);
					__m128i lo = _mm256_castsi256_si128(sq), hi = _mm256_extracti128_si256(sq, 1);
					__m256 d0 = _mm256_set1_ps(dsc[8 * h + 2 * r4]), d1 = _mm256_set1_ps(dsc[8 * h + 2 * r4 + 1]);
					const int i0 = 128 * h + 32 * r4;
					EAT8(_mm256_mul_ps(CVT8(lo), d0), i0, 0);
					EAT8(_mm256_mul_ps(CVT8(_mm_srli_si128(lo, 8)), d0), i0 + 8, 1);
					EAT8(_mm256_mul_ps(CVT8(hi), d1), i0 + 16, 2);
					EAT8(_mm256_mul_ps(CVT8(_mm_srli_si128(hi, 8)), d1), i0 + 24, 3);
				}
			}
		}
	}
	for (int r = 0; r < R; r++) out[r] = hsum256(_mm256_add_ps(_mm256_add_ps(a[r][0], a[r][1]), _mm256_add_ps(a[r][2], a[r][3])));
}
#undef EAT8
#undef CVT8
#undef CVTU8

T_AVX2 static void gemvf_avx2(int type, const float *x, long rows, const uint8_t *w, long k, float *y, long ldy, long o0, long o1) {
	int bs = qt_bytes[type], bw = qt_weights[type];
	long nb = k / bw;
	for (long o = o0; o < o1; o++) {
		const uint8_t *wr = w + o * nb * bs;
		float out[4];
		switch (rows) {
		case 1: rowf_avx2(type, 1, x, wr, nb, k, out); break;
		case 2: rowf_avx2(type, 2, x, wr, nb, k, out); break;
		case 3: rowf_avx2(type, 3, x, wr, nb, k, out); break;
		default: rowf_avx2(type, 4, x, wr, nb, k, out);
		}
		for (long r = 0; r < rows; r++) y[r * ldy + o] = out[r];
	}
}

// The AVX-512 exact GEMV dequantizes each 16 weights in registers (the
// same float32 values as ggml's dequantize_row_*) and multiplies them with
// the R rows of x; four accumulators per row hide the FMA latency. R is a
// constant in each instantiation (rowf_avx512 is always inlined).
#define EAT(wv, i, c)                                                                              \
	do {                                                                                       \
		__m512 w_ = (wv);                                                                  \
		_Pragma("GCC unroll 4") for (int r = 0; r < R; r++) a[r][c] = _mm512_fmadd_ps(w_, _mm512_loadu_ps(xb + r * k + (i)), a[r][c]); \
	} while (0)

T_AVX512 static inline __attribute__((always_inline)) void rowf_avx512(int type, const int R, const float *x, const uint8_t *wr,
								     long nb, long k, float *out) {
	__m512 a[4][4];
	for (int r = 0; r < R; r++)
		for (int c = 0; c < 4; c++) a[r][c] = _mm512_setzero_ps();
	if (type == QT_Q8_0) {
#define Q8F(p, xoff, c)                                                                                                         \
	do {                                                                                                                    \
		__m512 d = _mm512_set1_ps(_cvtsh_ss((uint16_t)((p)[0] | (p)[1] << 8)));                                         \
		EAT(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)((p) + 2)))), d), xoff, c); \
		EAT(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)((p) + 18)))), d), xoff + 16, c + 1); \
	} while (0)
		long b = 0;
		for (; b + 2 <= nb; b += 2) {
			const uint8_t *p = wr + 34 * b;
			const float *xb = x + 32 * b;
			_mm_prefetch((const char *)p + QPF, _MM_HINT_T0);
			Q8F(p, 0, 0);
			Q8F(p + 34, 32, 2);
		}
		if (b < nb) {
			const float *xb = x + 32 * b;
			Q8F(wr + 34 * b, 0, 0);
		}
#undef Q8F
	} else if (type == QT_Q4K) {
		const __m128i m4 = _mm_set1_epi8(0xf);
		for (long b = 0; b < nb; b++) {
			const uint8_t *blk = wr + 144 * b, *q = blk + 16;
			const float *xb = x + 256 * b;
			_mm_prefetch((const char *)blk + QPF, _MM_HINT_T0);
			_mm_prefetch((const char *)blk + QPF + 64, _MM_HINT_T0);
			_mm_prefetch((const char *)blk + QPF + 128, _MM_HINT_T0);
			// ds[0..7] = d·sc_j, ds[8..15] = dmin·m_j (exact products)
			float ds[16] __attribute__((aligned(64)));
			uint32_t dd;
			memcpy(&dd, blk, 4);
			__m128 dm = _mm_cvtph_ps(_mm_cvtsi32_si128((int)dd));
			__m512 dmv = _mm512_insertf32x8(_mm512_broadcastss_ps(dm), _mm256_broadcastss_ps(_mm_movehdup_ps(dm)), 1);
			_mm512_store_ps(ds, _mm512_mul_ps(dmv, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(q4k_scales_vec(blk + 4)))));
			_Pragma("GCC unroll 4") for (int j = 0; j < 8; j += 2) {
				__m512 d0 = _mm512_set1_ps(ds[j]), m0 = _mm512_set1_ps(ds[8 + j]);
				__m512 d1 = _mm512_set1_ps(ds[j + 1]), m1 = _mm512_set1_ps(ds[9 + j]);
				_Pragma("GCC unroll 2") for (int l = 0; l < 32; l += 16) {
					__m128i v = _mm_loadu_si128((const __m128i *)(q + 16 * j + l));
					__m512 lo = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(v, m4)));
					__m512 hi = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(v, 4), m4)));
					EAT(_mm512_fmsub_ps(d0, lo, m0), 32 * j + l, l / 8);
					EAT(_mm512_fmsub_ps(d1, hi, m1), 32 * j + 32 + l, l / 8 + 1);
				}
			}
		}
	} else {
		const __m256i off = _mm256_set1_epi8(32);
		for (long b = 0; b < nb; b++) {
			const uint8_t *blk = wr + 210 * b;
			const float *xb = x + 256 * b;
			_mm_prefetch((const char *)blk + QPF, _MM_HINT_T0);
			_mm_prefetch((const char *)blk + QPF + 64, _MM_HINT_T0);
			_mm_prefetch((const char *)blk + QPF + 128, _MM_HINT_T0);
			_mm_prefetch((const char *)blk + QPF + 192, _MM_HINT_T0);
			float dsc[16] __attribute__((aligned(64)));
			__m512 d = _mm512_set1_ps(_cvtsh_ss((uint16_t)(blk[208] | blk[209] << 8)));
			_mm512_store_ps(dsc, _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 192))))));
			_Pragma("GCC unroll 2") for (int h = 0; h < 2; h++) {
				__m256i q[4];
				q6k_quants32(blk, h, q);
				_Pragma("GCC unroll 4") for (int r4 = 0; r4 < 4; r4++) {
					__m256i sq = _mm256_sub_epi8(q[r4], off);
					int g = 8 * h + 2 * r4;
					EAT(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(sq))), _mm512_set1_ps(dsc[g])), 128 * h + 32 * r4, (r4 & 1) * 2);
					EAT(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_extracti128_si256(sq, 1))), _mm512_set1_ps(dsc[g + 1])), 128 * h + 32 * r4 + 16, (r4 & 1) * 2 + 1);
				}
			}
		}
	}
	for (int r = 0; r < R; r++) out[r] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a[r][0], a[r][1]), _mm512_add_ps(a[r][2], a[r][3])));
}
#undef EAT

T_AVX512 static void gemvf_avx512(int type, const float *x, long rows, const uint8_t *w, long k, float *y, long ldy, long o0, long o1) {
	int bs = qt_bytes[type], bw = qt_weights[type];
	long nb = k / bw;
	for (long o = o0; o < o1; o++) {
		const uint8_t *wr = w + o * nb * bs;
		float out[4];
		switch (rows) {
		case 1: rowf_avx512(type, 1, x, wr, nb, k, out); break;
		case 2: rowf_avx512(type, 2, x, wr, nb, k, out); break;
		case 3: rowf_avx512(type, 3, x, wr, nb, k, out); break;
		default: rowf_avx512(type, 4, x, wr, nb, k, out);
		}
		for (long r = 0; r < rows; r++) y[r * ldy + o] = out[r];
	}
}

// mg_gemv_qf32: y[r, o] = Σ_i x[r, i]·w[o, i] (rows ≤ 4) for weight rows
// [o0, o1) of the quantized w [*, k], float32 activations.
static void gemvf(int path, int type, const float *x, long rows, const uint8_t *w, long k, float *y, long ldy, long o0, long o1);

void mg_gemv_qf32(int path, int type, const float *x, long rows, const uint8_t *w, long k, float *y, long ldy, long o0, long o1) {
	for (long r = 0; r < rows; r += 4) gemvf(path, type, x + r * k, rows - r < 4 ? rows - r : 4, w, k, y + r * ldy, ldy, o0, o1);
}

// gemvf is mg_gemv_qf32 for at most 4 rows.
static void gemvf(int path, int type, const float *x, long rows, const uint8_t *w, long k, float *y, long ldy, long o0, long o1) {
	if (path >= QP_AVX512) {
		gemvf_avx512(type, x, rows, w, k, y, ldy, o0, o1);
		return;
	}
	if (path == QP_AVX2) {
		gemvf_avx2(type, x, rows, w, k, y, ldy, o0, o1);
		return;
	}
	deq_fn f = deq_for(QP_SCALAR, type);
	int bs = qt_bytes[type], bw = qt_weights[type];
	long nb = k / bw;
	float buf[256];
	for (long o = o0; o < o1; o++) {
		const uint8_t *wr = w + o * nb * bs;
		float a[4][4] = {{0}};
		for (long b = 0; b < nb; b++) {
			f(wr + b * bs, buf);
			for (long r = 0; r < rows; r++) dot_f32_scalar(buf, x + r * k + b * bw, bw, a[r]);
		}
		for (long r = 0; r < rows; r++) y[r * ldy + o] = (a[r][0] + a[r][1]) + (a[r][2] + a[r][3]);
	}
}

// ---- 8-bit activations ----
//
// mg_quant_act quantizes x [rows, k] per block of bs (32 for Q8_0 weights,
// 256 for the K-quants) to int8 q = round(x/d) (nearest, ties to even),
// d = max|x|/127 (d = 0 for an all-zero block), and stores the sums of q per 16 (s16). The error of
// each activation is at most d/2.
//
// With perm (the K-quants' AVX-512 Q4_K kernel), the 32-byte pieces of
// every 128 activations are stored in the order 0, 2, 1, 3; s16 stays in
// the natural order.
static void quant_block_scalar(const float *xb, long bs, int8_t *qb, float *dout) {
	float amax = 0;
	for (long i = 0; i < bs; i++) amax = fmaxf(amax, fabsf(xb[i]));
	float db = amax / 127, id = db != 0 ? 1 / db : 0;
	*dout = db;
	for (long i = 0; i < bs; i++) {
		float v = rintf(xb[i] * id); // ties to even, as vroundps
		qb[i] = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
	}
}

// quant_block_avx2 is quant_block_scalar with AVX2 (the same values: the
// same float32 operations, round to nearest even); bs a multiple of 32.
T_AVX2 static void quant_block_avx2(const float *xb, long bs, int8_t *qb, float *dout) {
	const __m256 sign = _mm256_set1_ps(-0.0f);
	__m256 mx = _mm256_setzero_ps();
	for (long i = 0; i < bs; i += 8) mx = _mm256_max_ps(mx, _mm256_andnot_ps(sign, _mm256_loadu_ps(xb + i)));
	__m128 m = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
	m = _mm_max_ps(m, _mm_movehl_ps(m, m));
	m = _mm_max_ss(m, _mm_movehdup_ps(m));
	float amax = _mm_cvtss_f32(m), db = amax / 127, id = db != 0 ? 1 / db : 0;
	*dout = db;
	const __m256 idv = _mm256_set1_ps(id);
	const __m256i fix = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
#define QR(o) _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(xb + i + (o)), idv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC))
	for (long i = 0; i < bs; i += 32) {
		__m256i a = _mm256_packs_epi32(QR(0), QR(8)), b = _mm256_packs_epi32(QR(16), QR(24));
		_mm256_storeu_si256((__m256i *)(qb + i), _mm256_permutevar8x32_epi32(_mm256_packs_epi16(a, b), fix));
	}
#undef QR
}

void mg_quant_act(int path, const float *x, long rows, long k, long bs, int perm, int8_t *q, float *d, int16_t *s16) {
	for (long r = 0; r < rows; r++)
		for (long b = 0; b < k / bs; b++) {
			const float *xb = x + r * k + b * bs;
			int8_t *qb = q + r * k + b * bs;
			if (path >= QP_AVX2)
				quant_block_avx2(xb, bs, qb, d + r * (k / bs) + b);
			else
				quant_block_scalar(xb, bs, qb, d + r * (k / bs) + b);
			for (long g = 0; g < bs / 16; g++) {
				int s = 0;
				for (int i = 0; i < 16; i++) s += qb[16 * g + i];
				s16[r * (k / 16) + b * (bs / 16) + g] = (int16_t)s;
			}
			if (perm)
				for (long c = 0; c + 128 <= bs; c += 128) {
					int8_t t[32];
					memcpy(t, qb + c + 32, 32);
					memcpy(qb + c + 32, qb + c + 64, 32);
					memcpy(qb + c + 64, t, 32);
				}
		}
}

// Each dot_* computes Σ_i w[i]·x[i] over nb blocks of one weight row wr and
// one quantized activation row (xq, xd, xs).

static float dot_q8_0_scalar(const uint8_t *wr, long nb, const int8_t *xq, const float *xd, const int16_t *xs) {
	(void)xs;
	float acc = 0;
	for (long b = 0; b < nb; b++) {
		const uint8_t *blk = wr + 34 * b;
		int s = 0;
		for (int j = 0; j < 32; j++) s += (int8_t)blk[2 + j] * xq[32 * b + j];
		acc += fp16(blk) * xd[b] * (float)s;
	}
	return acc;
}

static float dot_q4k_scalar(const uint8_t *wr, long nb, const int8_t *xq, const float *xd, const int16_t *xs) {
	float acc = 0;
	for (long b = 0; b < nb; b++) {
		const uint8_t *blk = wr + 144 * b, *q = blk + 16;
		const int8_t *x = xq + 256 * b;
		uint8_t sc[8], m[8];
		q4k_scales(blk + 4, sc, m);
		int s = 0, ms = 0;
		for (int j = 0; j < 8; j += 2) {
			int s0 = 0, s1 = 0;
			for (int l = 0; l < 32; l++) {
				s0 += (q[16 * j + l] & 0xf) * x[32 * j + l];
				s1 += (q[16 * j + l] >> 4) * x[32 * j + 32 + l];
			}
			s += sc[j] * s0 + sc[j + 1] * s1;
		}
		for (int j = 0; j < 8; j++) ms += m[j] * (xs[16 * b + 2 * j] + xs[16 * b + 2 * j + 1]);
		acc += fp16(blk) * xd[b] * (float)s - fp16(blk + 2) * xd[b] * (float)ms;
	}
	return acc;
}

static float dot_q6k_scalar(const uint8_t *wr, long nb, const int8_t *xq, const float *xd, const int16_t *xs) {
	float acc = 0;
	for (long b = 0; b < nb; b++) {
		const uint8_t *blk = wr + 210 * b;
		const int8_t *sc = (const int8_t *)(blk + 192), *x = xq + 256 * b;
		int s = 0;
		for (int h = 0; h < 2; h++) {
			const uint8_t *ql = blk + 64 * h, *qh = blk + 128 + 32 * h;
			const int8_t *xh = x + 128 * h;
			for (int l0 = 0; l0 < 32; l0 += 16) {
				int g = 8 * h + l0 / 16, s0 = 0, s1 = 0, s2 = 0, s3 = 0;
				for (int l = l0; l < l0 + 16; l++) {
					s0 += ((ql[l] & 0xf) | (qh[l] & 3) << 4) * xh[l];
					s1 += ((ql[l + 32] & 0xf) | (qh[l] >> 2 & 3) << 4) * xh[l + 32];
					s2 += ((ql[l] >> 4) | (qh[l] >> 4 & 3) << 4) * xh[l + 64];
					s3 += ((ql[l + 32] >> 4) | (qh[l] >> 6 & 3) << 4) * xh[l + 96];
				}
				s += sc[g] * s0 + sc[g + 2] * s1 + sc[g + 4] * s2 + sc[g + 6] * s3;
			}
		}
		for (int g = 0; g < 16; g++) s -= 32 * sc[g] * xs[16 * b + g];
		acc += fp16(blk + 208) * xd[b] * (float)s;
	}
	return acc;
}

// -- AVX2 --

T_AVX2 static inline float hsum256(__m256 v) {
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

T_AVX2 static inline __m256i dot32_s8_avx2(__m256i w, __m256i x) {
	__m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
	return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

T_AVX2 static float dot_q8_0_avx2(const uint8_t *wr, long nb, const int8_t *xq, const float *xd, const int16_t *xs) {
	(void)xs;
	__m256 a0 = _mm256_setzero_ps(), a1 = a0;
	long b = 0;
	for (; b + 2 <= nb; b += 2) {
		const uint8_t *p = wr + 34 * b;
		_mm_prefetch((const char *)p + QPF, _MM_HINT_T0);
		__m256i s0 = dot32_s8_avx2(_mm256_loadu_si256((const __m256i *)(p + 2)), _mm256_loadu_si256((const __m256i *)(xq + 32 * b)));
		__m256i s1 = dot32_s8_avx2(_mm256_loadu_si256((const __m256i *)(p + 36)), _mm256_loadu_si256((const __m256i *)(xq + 32 * b + 32)));
		a0 = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss((uint16_t)(p[0] | p[1] << 8)) * xd[b]), _mm256_cvtepi32_ps(s0), a0);
		a1 = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss((uint16_t)(p[34] | p[35] << 8)) * xd[b + 1]), _mm256_cvtepi32_ps(s1), a1);
	}
	for (; b < nb; b++) {
		const uint8_t *p = wr + 34 * b;
		__m256i s0 = dot32_s8_avx2(_mm256_loadu_si256((const __m256i *)(p + 2)), _mm256_loadu_si256((const __m256i *)(xq + 32 * b)));
		a0 = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss((uint16_t)(p[0] | p[1] << 8)) * xd[b]), _mm256_cvtepi32_ps(s0), a0);
	}
	return hsum256(_mm256_add_ps(a0, a1));
}

// q4k_dup_mins returns the eight mins of a Q4_K block as 16 int16 lanes
// m0, m0, m1, m1, ... (for madd with the 16 sums per 16 activations).
T_AVX2 static inline __m256i q4k_dup_mins(const uint8_t m[8]) {
	__m128i v = _mm_loadl_epi64((const __m128i *)m);
	return _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(v, v));
}

// q4k_bcast[j]: vpshufb mask broadcasting int16 lane j of a 128-bit lane.
static const uint8_t q4k_bcast[8][32] __attribute__((aligned(32))) = {
#define B2(j) 2 * j, 2 * j + 1
#define ROW(j) {B2(j), B2(j), B2(j), B2(j), B2(j), B2(j), B2(j), B2(j), B2(j), B2(j), B2(j), B2(j), B2(j), B2(j), B2(j), B2(j)}
    ROW(0), ROW(1), ROW(2), ROW(3), ROW(4), ROW(5), ROW(6), ROW(7),
#undef ROW
#undef B2
};

T_AVX2 static float dot_q4k_avx2(const uint8_t *wr, long nb, const int8_t *xq, const float *xd, const int16_t *xs) {
	__m256 acc = _mm256_setzero_ps(), accm = acc;
	const __m256i m4 = _mm256_set1_epi8(0xf);
	for (long b = 0; b < nb; b++) {
		const uint8_t *blk = wr + 144 * b, *q = blk + 16;
		const int8_t *x = xq + 256 * b;
		_mm_prefetch((const char *)blk + QPF, _MM_HINT_T0);
		_mm_prefetch((const char *)blk + QPF + 64, _MM_HINT_T0);
		_mm_prefetch((const char *)blk + QPF + 128, _MM_HINT_T0);
		__m128i sm = q4k_scales_vec(blk + 4);
		__m256i mins = _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_unpackhi_epi8(sm, sm)), _mm256_loadu_si256((const __m256i *)(xs + 16 * b)));
		__m256i sc = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(sm));
		__m256i s0 = _mm256_setzero_si256(), s1 = s0;
		for (int j = 0; j < 4; j++) {
			__m256i v = _mm256_loadu_si256((const __m256i *)(q + 32 * j));
			__m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
			__m256i plo = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(x + 64 * j)));
			__m256i phi = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(x + 64 * j + 32)));
			s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(plo, _mm256_shuffle_epi8(sc, _mm256_load_si256((const __m256i *)q4k_bcast[2 * j]))));
			s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(phi, _mm256_shuffle_epi8(sc, _mm256_load_si256((const __m256i *)q4k_bcast[2 * j + 1]))));
		}
		uint32_t dd;
		memcpy(&dd, blk, 4);
		__m128 dm = _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128((int)dd)), _mm_set1_ps(xd[b]));
		acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(dm), _mm256_cvtepi32_ps(_mm256_add_epi32(s0, s1)), acc);
		accm = _mm256_fmadd_ps(_mm256_broadcastss_ps(_mm_movehdup_ps(dm)), _mm256_cvtepi32_ps(mins), accm);
	}
	return hsum256(_mm256_sub_ps(acc, accm));
}

// q6k_scale_shuf[p]: shuffle of the 16 int8 scales giving scale 2p eight
// times, then scale 2p+1 eight times.
static const uint8_t q6k_scale_shuf[8][16] __attribute__((aligned(16))) = {
    {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1},
    {2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3},
    {4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5},
    {6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7},
    {8, 8, 8, 8, 8, 8, 8, 8, 9, 9, 9, 9, 9, 9, 9, 9},
    {10, 10, 10, 10, 10, 10, 10, 10, 11, 11, 11, 11, 11, 11, 11, 11},
    {12, 12, 12, 12, 12, 12, 12, 12, 13, 13, 13, 13, 13, 13, 13, 13},
    {14, 14, 14, 14, 14, 14, 14, 14, 15, 15, 15, 15, 15, 15, 15, 15},
};

T_AVX2 static float dot_q6k_avx2(const uint8_t *wr, long nb, const int8_t *xq, const float *xd, const int16_t *xs) {
	__m256 acc = _mm256_setzero_ps();
	for (long b = 0; b < nb; b++) {
		const uint8_t *blk = wr + 210 * b;
		const int8_t *x = xq + 256 * b;
		_mm_prefetch((const char *)blk + QPF, _MM_HINT_T0);
		_mm_prefetch((const char *)blk + QPF + 64, _MM_HINT_T0);
		_mm_prefetch((const char *)blk + QPF + 128, _MM_HINT_T0);
		_mm_prefetch((const char *)blk + QPF + 192, _MM_HINT_T0);
		__m128i sc8 = _mm_loadu_si128((const __m128i *)(blk + 192));
		// −32·Σ_g sc_g·(Σ of the 16 activations of group g)
		__m256i s = _mm256_slli_epi32(_mm256_madd_epi16(_mm256_cvtepi8_epi16(sc8), _mm256_loadu_si256((const __m256i *)(xs + 16 * b))), 5);
		s = _mm256_sub_epi32(_mm256_setzero_si256(), s);
		for (int h = 0; h < 2; h++) {
			__m256i q[4];
			q6k_quants32(blk, h, q);
			for (int r = 0; r < 4; r++) {
				__m256i p = _mm256_maddubs_epi16(q[r], _mm256_loadu_si256((const __m256i *)(x + 128 * h + 32 * r)));
				__m256i sv = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc8, _mm_load_si128((const __m128i *)q6k_scale_shuf[4 * h + r])));
				s = _mm256_add_epi32(s, _mm256_madd_epi16(p, sv));
			}
		}
		acc = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss((uint16_t)(blk[208] | blk[209] << 8)) * xd[b]), _mm256_cvtepi32_ps(s), acc);
	}
	return hsum256(acc);
}

// -- AVX-512 (BW) and AVX-512 VNNI: one body, the VNNI variant fuses the
// int16 multiply-add into vpdpwssd / vpdpbusd --

// dot32_s8_tail: Σ of 32 int8·int8 products for the Q8_0 kernels' tail
// blocks, kept out of the AVX-512 VNNI function: inlined there, GCC 12
// vectorizes this signed·signed loop into vpdpbusd (unsigned·signed) and
// gets it wrong (nb % 4 != 0 rows, e.g. k = 64, 96, 192; found by
// TestQuantQ8_0Tail).
__attribute__((noinline, optimize("no-tree-vectorize"))) static int dot32_s8_tail(const int8_t *w, const int8_t *x) {
	int s = 0;
	for (int j = 0; j < 32; j++) s += w[j] * x[j];
	return s;
}

#define Q8_0_512(NAME, TGT, DOT4)                                                                                  \
	TGT static float NAME(const uint8_t *wr, long nb, const int8_t *xq, const float *xd, const int16_t *xs) { \
		(void)xs;                                                                                          \
		__m512 a0 = _mm512_setzero_ps(), a1 = a0;                                                          \
		long b = 0;                                                                                        \
		for (; b + 4 <= nb; b += 4) {                                                                      \
			const uint8_t *p = wr + 34 * b;                                                            \
			_mm_prefetch((const char *)p + QPF, _MM_HINT_T0);                                          \
			_mm_prefetch((const char *)p + QPF + 64, _MM_HINT_T0);                                     \
			__m512i w0 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(p + 2))), \
							_mm256_loadu_si256((const __m256i *)(p + 36)), 1);        \
			__m512i w1 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(p + 70))), \
							_mm256_loadu_si256((const __m256i *)(p + 104)), 1);       \
			__m512i s0 = DOT4(w0, _mm512_loadu_si512(xq + 32 * b));                                    \
			__m512i s1 = DOT4(w1, _mm512_loadu_si512(xq + 32 * b + 64));                               \
			__m512 d0 = _mm512_insertf32x8(_mm512_set1_ps(_cvtsh_ss((uint16_t)(p[0] | p[1] << 8)) * xd[b]), \
						       _mm256_set1_ps(_cvtsh_ss((uint16_t)(p[34] | p[35] << 8)) * xd[b + 1]), 1); \
			__m512 d1 = _mm512_insertf32x8(_mm512_set1_ps(_cvtsh_ss((uint16_t)(p[68] | p[69] << 8)) * xd[b + 2]), \
						       _mm256_set1_ps(_cvtsh_ss((uint16_t)(p[102] | p[103] << 8)) * xd[b + 3]), 1); \
			a0 = _mm512_fmadd_ps(d0, _mm512_cvtepi32_ps(s0), a0);                                      \
			a1 = _mm512_fmadd_ps(d1, _mm512_cvtepi32_ps(s1), a1);                                      \
		}                                                                                                  \
		float r = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));                                             \
		for (; b < nb; b++) {                                                                              \
			const uint8_t *p = wr + 34 * b;                                                            \
			int s = dot32_s8_tail((const int8_t *)p + 2, xq + 32 * b);                                 \
			r += _cvtsh_ss((uint16_t)(p[0] | p[1] << 8)) * xd[b] * (float)s;                           \
		}                                                                                                  \
		return r;                                                                                          \
	}

// Σ of 4 int8·int8 products per int32 lane (sign moved onto x: |w|·±x).
T_AVX512 static inline __m512i dot4_s8_bw(__m512i w, __m512i x) {
	__m512i sx = _mm512_mask_sub_epi8(x, _mm512_movepi8_mask(w), _mm512_setzero_si512(), x);
	return _mm512_madd_epi16(_mm512_maddubs_epi16(_mm512_abs_epi8(w), sx), _mm512_set1_epi16(1));
}
T_VNNI static inline __m512i dot4_s8_vnni(__m512i w, __m512i x) {
	__m512i sx = _mm512_mask_sub_epi8(x, _mm512_movepi8_mask(w), _mm512_setzero_si512(), x);
	return _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(w), sx);
}
Q8_0_512(dot_q8_0_avx512, T_AVX512, dot4_s8_bw)
Q8_0_512(dot_q8_0_vnni, T_VNNI, dot4_s8_vnni)

// Scaled sums of u8·s8 products: acc + Σ pairs (maddubs) × int16 scales.
T_AVX512 static inline __m512i madd_sc_bw(__m512i acc, __m512i q, __m512i x, __m512i sc) {
	return _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(q, x), sc));
}
T_VNNI static inline __m512i madd_sc_vnni(__m512i acc, __m512i q, __m512i x, __m512i sc) {
	return _mm512_dpwssd_epi32(acc, _mm512_maddubs_epi16(q, x), sc);
}

// q6k_idx[p] (vpermw): int16 lanes 4p..4p+3 eight times each.
static const int16_t q6k_idx[4][32] __attribute__((aligned(64))) = {
    {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3},
    {4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7},
    {8, 8, 8, 8, 8, 8, 8, 8, 9, 9, 9, 9, 9, 9, 9, 9, 10, 10, 10, 10, 10, 10, 10, 10, 11, 11, 11, 11, 11, 11, 11, 11},
    {12, 12, 12, 12, 12, 12, 12, 12, 13, 13, 13, 13, 13, 13, 13, 13, 14, 14, 14, 14, 14, 14, 14, 14, 15, 15, 15, 15, 15, 15, 15, 15},
};

// q4k_scales_vec unpacks a Q4_K block's 12 scale bytes (at s; 16 bytes
// are read, the last 4 from the quants) into bytes 0..7 = the eight 6-bit
// scales and bytes 8..15 = the eight 6-bit mins.
T_AVX2 static inline __m128i q4k_scales_vec(const uint8_t *s) {
	__m128i v = _mm_loadu_si128((const __m128i *)s);                 // u0 u1 u2 .
	__m128i lo = _mm_and_si128(v, _mm_set1_epi32(0x3f3f3f3f));       // sc0-3, m0-3
	__m128i u2 = _mm_shuffle_epi32(v, 0xaa);                         // u2 u2 u2 u2
	u2 = _mm_and_si128(_mm_srlv_epi32(u2, _mm_setr_epi32(0, 4, 0, 4)), _mm_set1_epi32(0x0f0f0f0f));
	__m128i top = _mm_slli_epi32(_mm_and_si128(_mm_srli_epi32(v, 6), _mm_set1_epi32(0x03030303)), 4);
	__m128i hi = _mm_or_si128(u2, top);                              // sc4-7, m4-7
	return _mm_unpacklo_epi32(lo, hi);                               // sc0-3 sc4-7 m0-3 m4-7
}

// Q4_K: 64 bytes of nibbles (128 weights, sub-blocks 4t..4t+3) per step:
// the low nibbles hold sub-blocks 4t and 4t+2, the high ones 4t+1 and
// 4t+3. The activations of the AVX-512 paths are stored in that order
// (mg_quant_act, perm), so each nibble vector meets 64 consecutive bytes
// of x. Two integer accumulators (the VNNI variant chains vpdpwssd).
static const int16_t q4k_idx[4][32] __attribute__((aligned(64))) = {
    {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2},
    {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3},
    {4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6},
    {5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7},
};

// NAME_rows computes R (constant, 1..4) rows of x against one weight row:
// each block's nibbles, scales and mins are unpacked once for all rows
// (batched decode steps). NAME is the one-row dot of the table below.
#define Q4K_512(NAME, TGT, MADD)                                                                                   \
	TGT static inline __attribute__((always_inline)) void NAME##_rows(const int R, const uint8_t *wr, long nb, long k, \
									     const int8_t *xq, const float *xd, const int16_t *xs, float *out) { \
		__m512 acc[4];                                                                                     \
		__m256 accm[4];                                                                                    \
		for (int r = 0; r < R; r++) acc[r] = _mm512_setzero_ps(), accm[r] = _mm256_setzero_ps();          \
		const __m512i m4 = _mm512_set1_epi8(0xf);                                                          \
		const __m512i i0 = _mm512_load_si512(q4k_idx[0]), i1 = _mm512_load_si512(q4k_idx[1]);              \
		const __m512i i2 = _mm512_load_si512(q4k_idx[2]), i3 = _mm512_load_si512(q4k_idx[3]);              \
		for (long b = 0; b < nb; b++) {                                                                    \
			const uint8_t *blk = wr + 144 * b, *q = blk + 16;                                          \
			_mm_prefetch((const char *)blk + QPF, _MM_HINT_T0);                                        \
			_mm_prefetch((const char *)blk + QPF + 64, _MM_HINT_T0);                                   \
			_mm_prefetch((const char *)blk + QPF + 128, _MM_HINT_T0);                                  \
			__m128i sm = q4k_scales_vec(blk + 4);                                                      \
			__m256i mdup = _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(sm, sm));                            \
			__m512i sc16 = _mm512_castsi256_si512(_mm256_cvtepu8_epi16(sm));                           \
			__m512i p0 = _mm512_permutexvar_epi16(i0, sc16), p1 = _mm512_permutexvar_epi16(i1, sc16);  \
			__m512i p2 = _mm512_permutexvar_epi16(i2, sc16), p3 = _mm512_permutexvar_epi16(i3, sc16);  \
			__m512i L0 = _mm512_loadu_si512(q), L1 = _mm512_loadu_si512(q + 64);                       \
			__m512i n0 = _mm512_and_si512(L0, m4), n1 = _mm512_and_si512(_mm512_srli_epi16(L0, 4), m4); \
			__m512i n2 = _mm512_and_si512(L1, m4), n3 = _mm512_and_si512(_mm512_srli_epi16(L1, 4), m4); \
			uint32_t dd;                                                                               \
			memcpy(&dd, blk, 4);                                                                       \
			__m128 dm0 = _mm_cvtph_ps(_mm_cvtsi32_si128((int)dd));                                     \
			_Pragma("GCC unroll 4") for (int r = 0; r < R; r++) {                                      \
				const int8_t *x = xq + r * k + 256 * b;                                            \
				__m512i s0 = MADD(_mm512_setzero_si512(), n0, _mm512_loadu_si512(x), p0);          \
				__m512i s1 = MADD(_mm512_setzero_si512(), n1, _mm512_loadu_si512(x + 64), p1);     \
				s0 = MADD(s0, n2, _mm512_loadu_si512(x + 128), p2);                                \
				s1 = MADD(s1, n3, _mm512_loadu_si512(x + 192), p3);                                \
				__m256i mins = _mm256_madd_epi16(mdup, _mm256_loadu_si256((const __m256i *)(xs + r * (k / 16) + 16 * b))); \
				__m128 dm = _mm_mul_ps(dm0, _mm_set1_ps(xd[r * nb + b]));                          \
				acc[r] = _mm512_fmadd_ps(_mm512_broadcastss_ps(dm), _mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1)), acc[r]); \
				accm[r] = _mm256_fmadd_ps(_mm256_broadcastss_ps(_mm_movehdup_ps(dm)), _mm256_cvtepi32_ps(mins), accm[r]); \
			}                                                                                          \
		}                                                                                                  \
		for (int r = 0; r < R; r++) out[r] = _mm512_reduce_add_ps(acc[r]) - hsum256(accm[r]);              \
	}                                                                                                          \
	TGT static float NAME(const uint8_t *wr, long nb, const int8_t *xq, const float *xd, const int16_t *xs) { \
		float out;                                                                                         \
		NAME##_rows(1, wr, nb, 0, xq, xd, xs, &out);                                                       \
		return out;                                                                                        \
	}                                                                                                          \
	TGT static void NAME##_multi(const uint8_t *wr, long nb, long k, long rows, const int8_t *xq, const float *xd, \
				     const int16_t *xs, float *out) {                                                  \
		switch (rows) {                                                                                    \
		case 1: NAME##_rows(1, wr, nb, k, xq, xd, xs, out); break;                                         \
		case 2: NAME##_rows(2, wr, nb, k, xq, xd, xs, out); break;                                         \
		case 3: NAME##_rows(3, wr, nb, k, xq, xd, xs, out); break;                                         \
		default: NAME##_rows(4, wr, nb, k, xq, xd, xs, out);                                               \
		}                                                                                                  \
	}

Q4K_512(dot_q4k_avx512, T_AVX512, madd_sc_bw)
Q4K_512(dot_q4k_vnni, T_VNNI, madd_sc_vnni)

// Q6_K: per half, 64 bytes of ql give weights [0,64) (low nibbles) and
// [64,128) (high nibbles); the 32 bytes of qh, in both 256-bit halves,
// shifted per 64-bit lane, give the 2 high bits of each.
#define Q6K_512(NAME, TGT, MADD)                                                                                   \
	TGT static float NAME(const uint8_t *wr, long nb, const int8_t *xq, const float *xd, const int16_t *xs) { \
		__m512 acc = _mm512_setzero_ps();                                                                  \
		const __m512i m4 = _mm512_set1_epi8(0xf), m2 = _mm512_set1_epi8(0x30);                             \
		const __m512i sa = _mm512_set_epi64(2, 2, 2, 2, 4, 4, 4, 4), sb = _mm512_set_epi64(2, 2, 2, 2, 0, 0, 0, 0); \
		for (long b = 0; b < nb; b++) {                                                                    \
			const uint8_t *blk = wr + 210 * b;                                                         \
			const int8_t *x = xq + 256 * b;                                                            \
			_mm_prefetch((const char *)blk + QPF, _MM_HINT_T0);                                        \
			_mm_prefetch((const char *)blk + QPF + 64, _MM_HINT_T0);                                   \
			_mm_prefetch((const char *)blk + QPF + 128, _MM_HINT_T0);                                  \
			_mm_prefetch((const char *)blk + QPF + 192, _MM_HINT_T0);                                  \
			__m128i sc8 = _mm_loadu_si128((const __m128i *)(blk + 192));                               \
			__m256i sc16_256 = _mm256_cvtepi8_epi16(sc8);                                              \
			__m512i sc16 = _mm512_castsi256_si512(sc16_256);                                           \
			__m256i off = _mm256_slli_epi32(_mm256_madd_epi16(sc16_256, _mm256_loadu_si256((const __m256i *)(xs + 16 * b))), 5); \
			__m512i s = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_zextsi256_si512(off));        \
			for (int h = 0; h < 2; h++) {                                                              \
				__m512i L = _mm512_loadu_si512(blk + 64 * h);                                      \
				__m512i H = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(blk + 128 + 32 * h))); \
				__m512i qa = _mm512_or_si512(_mm512_and_si512(L, m4), _mm512_and_si512(_mm512_sllv_epi64(H, sa), m2)); \
				__m512i qb = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(L, 4), m4),        \
							     _mm512_and_si512(_mm512_srlv_epi64(H, sb), m2));      \
				s = MADD(s, qa, _mm512_loadu_si512(x + 128 * h), _mm512_permutexvar_epi16(_mm512_load_si512(q6k_idx[2 * h]), sc16)); \
				s = MADD(s, qb, _mm512_loadu_si512(x + 128 * h + 64), _mm512_permutexvar_epi16(_mm512_load_si512(q6k_idx[2 * h + 1]), sc16)); \
			}                                                                                          \
			acc = _mm512_fmadd_ps(_mm512_set1_ps(_cvtsh_ss((uint16_t)(blk[208] | blk[209] << 8)) * xd[b]), _mm512_cvtepi32_ps(s), acc); \
		}                                                                                                  \
		return _mm512_reduce_add_ps(acc);                                                                  \
	}

Q6K_512(dot_q6k_avx512, T_AVX512, madd_sc_bw)
Q6K_512(dot_q6k_vnni, T_VNNI, madd_sc_vnni)

typedef float (*dot_fn)(const uint8_t *, long, const int8_t *, const float *, const int16_t *);

// mg_gemv_q8: y[r, o] = Σ_i x[r, i]·w[o, i] for weight rows [o0, o1) with
// x quantized by mg_quant_act (block 32 for Q8_0, 256 for the K-quants).
void mg_gemv_q8(int path, int type, const int8_t *xq, const float *xd, const int16_t *xs, long rows, const uint8_t *w, long k,
		float *y, long ldy, long o0, long o1) {
	static const dot_fn t[4][3] = {
	    {dot_q8_0_scalar, dot_q4k_scalar, dot_q6k_scalar},
	    {dot_q8_0_avx2, dot_q4k_avx2, dot_q6k_avx2},
	    {dot_q8_0_avx512, dot_q4k_avx512, dot_q6k_avx512},
	    {dot_q8_0_vnni, dot_q4k_vnni, dot_q6k_vnni},
	};
	dot_fn f = t[path][type];
	int bs = qt_bytes[type], bw = qt_weights[type];
	long nb = k / bw;
	if (type == QT_Q4K && path >= QP_AVX512 && rows > 1) {
		// all rows per weight block (groups of 4 rows)
		for (long o = o0; o < o1; o++) {
			const uint8_t *wr = w + o * nb * bs;
			for (long r = 0; r < rows; r += 4) {
				long n = rows - r < 4 ? rows - r : 4;
				float out[4];
				if (path == QP_VNNI)
					dot_q4k_vnni_multi(wr, nb, k, n, xq + r * k, xd + r * nb, xs + r * (k / 16), out);
				else
					dot_q4k_avx512_multi(wr, nb, k, n, xq + r * k, xd + r * nb, xs + r * (k / 16), out);
				for (long j = 0; j < n; j++) y[(r + j) * ldy + o] = out[j];
			}
		}
		return;
	}
	for (long o = o0; o < o1; o++) {
		const uint8_t *wr = w + o * nb * bs;
		for (long r = 0; r < rows; r++) y[r * ldy + o] = f(wr, nb, xq + r * k, xd + r * nb, xs + r * (k / 16));
	}
}
