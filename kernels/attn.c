// Decode attention (see attention.go, attnDecode): one query per sequence
// against the cached keys and values of one kv head, for the G query heads
// that share it. Memory-bound: every cached key and value is read once per
// step, straight from the cache (float32, or bfloat16 widened as it is
// read), with no packing or scratch copy of the cache.
//
//	s[r, j] = scale · q[r]·k[j]            r < G, j < n
//	p[r]    = softmax(s[r])                (mg_softmax, vec.c)
//	out[r]  = Σ_j p[r, j] · v[j]
//
// Rows of k and v are ld elements apart (the cache interleaves kv heads).
// As in half.c, the vector paths are compiled per target and chosen by the
// caller's path (mg_half_best_path), so tests run every path the CPU has.

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

enum { APATH_SCALAR = 0, APATH_AVX2 = 1, APATH_AVX512 = 2 };

void mg_softmax(float *row, long n);

static inline float a_bf16(uint16_t h) {
	uint32_t b = (uint32_t)h << 16;
	float f;
	memcpy(&f, &b, 4);
	return f;
}

// element i of key/value row j
static inline float a_elem(const void *m, int bf16, long ld, long j, long i) {
	return bf16 ? a_bf16(((const uint16_t *)m)[j * ld + i]) : ((const float *)m)[j * ld + i];
}

// ---- scalar path (any d, any CPU) ----

static void attn_scores_scalar(const float *q, long G, long d, const void *k, int bf16, long ld, long n, float scale, float *s) {
	for (long j = 0; j < n; j++)
		for (long r = 0; r < G; r++) {
			float acc = 0;
			for (long i = 0; i < d; i++) acc += q[r * d + i] * a_elem(k, bf16, ld, j, i);
			s[r * n + j] = acc * scale;
		}
}

static void attn_out_scalar(const float *p, long G, long d, const void *v, int bf16, long ld, long n, float *out) {
	memset(out, 0, sizeof(float) * G * d);
	for (long j = 0; j < n; j++)
		for (long i = 0; i < d; i++) {
			float x = a_elem(v, bf16, ld, j, i);
			for (long r = 0; r < G; r++) out[r * d + i] += p[r * n + j] * x;
		}
}

// ---- vector paths: W floats per vector; scores for blocks of up to 4
// query rows per pass over the keys, one pass over the values ----

__attribute__((target("avx512f"))) static inline float hsum_avx512(__m512 a) { return _mm512_reduce_add_ps(a); }
__attribute__((target("avx2,fma"))) static inline float hsum_avx2(__m256 a) {
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

#define ATTN_VEC(NAME, TARGET, W, HSUM, VT)                                                          \
	typedef float NAME##_vf __attribute__((vector_size(4 * W), aligned(4)));                          \
	typedef uint16_t NAME##_vh __attribute__((vector_size(2 * W), aligned(2)));                       \
	typedef uint32_t NAME##_vu __attribute__((vector_size(4 * W)));                                   \
	TARGET static inline NAME##_vf NAME##_load(const void *m, int bf16, long off) {                   \
		if (bf16) {                                                                               \
			NAME##_vh h = *(const NAME##_vh *)((const uint16_t *)m + off);                     \
			NAME##_vu u = __builtin_convertvector(h, NAME##_vu) << 16;                           \
			return (NAME##_vf)u;                                                              \
		}                                                                                         \
		return *(const NAME##_vf *)((const float *)m + off);                                      \
	}                                                                                                 \
	TARGET static inline float NAME##_hsum(NAME##_vf a) { return HSUM((VT)a); }                     \
	/* scores of query rows [r0, r0+R) (R <= 4) against every key */                                 \
	TARGET static void NAME##_scores(const float *q, long R, long d, const void *k, int bf16, long ld, \
					 long n, float scale, float *s, long sn) {                          \
		long dv = d / W * W;                                                                      \
		for (long j = 0; j < n; j++) {                                                            \
			NAME##_vf a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};                                    \
			for (long i = 0; i < dv; i += W) {                                                \
				NAME##_vf kv = NAME##_load(k, bf16, j * ld + i);                             \
				a0 += kv * *(const NAME##_vf *)(q + i);                                     \
				if (R > 1) a1 += kv * *(const NAME##_vf *)(q + d + i);                       \
				if (R > 2) a2 += kv * *(const NAME##_vf *)(q + 2 * d + i);                   \
				if (R > 3) a3 += kv * *(const NAME##_vf *)(q + 3 * d + i);                   \
			}                                                                                 \
			float t[4] = {NAME##_hsum(a0), NAME##_hsum(a1), NAME##_hsum(a2), NAME##_hsum(a3)}; \
			for (long i = dv; i < d; i++) {                                                   \
				float kx = a_elem(k, bf16, ld, j, i);                                        \
				for (long r = 0; r < R; r++) t[r] += q[r * d + i] * kx;                      \
			}                                                                                 \
			for (long r = 0; r < R; r++) s[r * sn + j] = t[r] * scale;                           \
		}                                                                                         \
	}                                                                                                 \
	/* out = p·V in one sequential pass over the rows of v; the G×d sums   \
	   stay in out (L1) */                                                                            \
	TARGET static void NAME##_out(const float *p, long G, long d, const void *v, int bf16, long ld,   \
				      long n, float *out) {                                                \
		long dv = d / W * W;                                                                      \
		memset(out, 0, sizeof(float) * G * d);                                                    \
		for (long j = 0; j < n; j++) {                                                            \
			for (long i = 0; i < dv; i += W) {                                                \
				NAME##_vf x = NAME##_load(v, bf16, j * ld + i);                              \
				for (long r = 0; r < G; r++) *(NAME##_vf *)(out + r * d + i) += x * p[r * n + j]; \
			}                                                                                 \
			for (long i = dv; i < d; i++) {                                                   \
				float x = a_elem(v, bf16, ld, j, i);                                         \
				for (long r = 0; r < G; r++) out[r * d + i] += x * p[r * n + j];             \
			}                                                                                 \
		}                                                                                         \
	}                                                                                                 \
	TARGET static void NAME##_decode(const float *q, long G, long d, const void *k, const void *v,   \
					 int bf16, long ld, long n, float scale, float *s, float *out) {    \
		for (long r0 = 0; r0 < G; r0 += 4) {                                                      \
			long R = G - r0 < 4 ? G - r0 : 4;                                                 \
			NAME##_scores(q + r0 * d, R, d, k, bf16, ld, n, scale, s + r0 * n, n);             \
		}                                                                                         \
		for (long r = 0; r < G; r++) mg_softmax(s + r * n, n);                                    \
		NAME##_out(s, G, d, v, bf16, ld, n, out);                                                 \
	}

ATTN_VEC(avx512, __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq"))), 16, hsum_avx512, __m512)
ATTN_VEC(avx2, __attribute__((target("avx2,fma"))), 8, hsum_avx2, __m256)

// mg_attn_decode: see the top of this file. s is scratch of G*n floats.
void mg_attn_decode(int path, const float *q, long G, long d, const void *k, const void *v, int bf16, long ld,
		    long n, float scale, float *s, float *out) {
	if (n <= 0) {
		memset(out, 0, sizeof(float) * G * d);
		return;
	}
	switch (path) {
	case APATH_AVX512:
		avx512_decode(q, G, d, k, v, bf16, ld, n, scale, s, out);
		return;
	case APATH_AVX2:
		avx2_decode(q, G, d, k, v, bf16, ld, n, scale, s, out);
		return;
	}
	attn_scores_scalar(q, G, d, k, bf16, ld, n, scale, s);
	for (long r = 0; r < G; r++) mg_softmax(s + r * n, n);
	attn_out_scalar(s, G, d, v, bf16, ld, n, out);
}
