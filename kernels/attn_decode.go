package kernels

// Go side of attn.c: the float32 decode attention.

/*
#include <stdint.h>
void mg_attn_decode(int path, const float *q, long G, long d, const void *k, const void *v, int bf16, long ld,
		    long n, float scale, float *s, float *out);
*/
import "C"

import "unsafe"

// attnDecode32 is attnDecode for float32 queries: one attn.c call per
// (sequence, kv head), in parallel, reading the keys and values in place
// (float32, or a bfloat16 cache widened as they are read).
func attnDecode32(a attnArgs[float32], group, n int) {
	ldq := a.h * a.d
	bf16 := C.int(0)
	if a.k16 != nil {
		bf16 = 1
	}
	parallelFor(a.b*a.kv, 1, func(lo, hi int) {
		sp := getScratch(group * n)
		defer scratch32.Put(sp)
		for bg := lo; bg < hi; bg++ {
			b, g := bg/a.kv, bg%a.kv
			off := b*a.kvBatch + g*a.hs
			var k, v unsafe.Pointer
			if a.k16 != nil {
				k, v = unsafe.Pointer(&a.k16[off]), unsafe.Pointer(&a.v16[off])
			} else {
				k, v = unsafe.Pointer(&a.k[off]), unsafe.Pointer(&a.v[off])
			}
			qo := b*ldq + g*group*a.d
			C.mg_attn_decode(C.int(halfPath), fp(a.q[qo:qo+group*a.d]), C.long(group), C.long(a.d), k, v, bf16,
				C.long(a.ldk), C.long(n), C.float(a.scale), fp(*sp), fp(a.out[qo:qo+group*a.d]))
		}
	})
}
