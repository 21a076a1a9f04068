// fp16.h: the scalar IEEE half -> float32 conversion shared by the C
// kernels (half.c's F16 weights, quant.c's block scales). Exact for every
// half value, subnormals, infinities and NaNs included.
#ifndef MG_FP16_H
#define MG_FP16_H

#include <stdint.h>
#include <string.h>

static inline float mg_f16_f32(uint16_t h) {
	uint32_t sign = (uint32_t)(h >> 15) << 31;
	uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff, b;
	if (exp == 0 && mant == 0) {
		b = sign;
	} else if (exp == 0) {
		int e = -14;
		while (!(mant & 0x400)) {
			mant <<= 1;
			e--;
		}
		mant &= 0x3ff;
		b = sign | (uint32_t)(e + 127) << 23 | mant << 13;
	} else if (exp == 0x1f) {
		b = sign | 0x7f800000u | mant << 13;
	} else {
		b = sign | (exp - 15 + 127) << 23 | mant << 13;
	}
	float f;
	memcpy(&f, &b, 4);
	return f;
}

#endif
