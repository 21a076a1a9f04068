package kernels

import (
	"fmt"
	"sync"

	"gorgonia.org/tensor"
)

// KVCache holds past keys and values of one attention layer for generation.
//
// Keys and values are stored head-major, [batch][kvHeads][maxLen][headDim]
// (as Hugging Face's caches), so that one kv head's positions are
// contiguous: a decode step reads each head's keys and values as one
// sequential stream. All sequences of the batch share one length. A cache made by
// NewKVCache stores the element type (float32 or float64) of the first
// Attention call that appends. A bfloat16 cache (NewKVCacheDtype with
// BFloat16) stores keys and values rounded to bfloat16 (nearest even), half
// the bytes of float32, for float32 graphs only: attention reads the cached
// positions widened back to float32 (see Attention). An Attention node built
// with Cache appends its keys/values every time it runs; appending past
// maxLen makes the run fail with an error.
type KVCache struct {
	mu                              sync.Mutex
	batch, kvHeads, headDim, maxLen int
	n                               int
	dtype                           tensor.Dtype // BFloat16, or the zero Dtype (the graph's float type)
	k32, v32                        []float32
	k64, v64                        []float64
	k16, v16                        []uint16 // bfloat16 bit patterns
}

// NewKVCache allocates a cache for batch sequences of up to maxLen positions.
// Storage is allocated lazily on the first append, in that call's dtype.
func NewKVCache(batch, kvHeads, headDim, maxLen int) *KVCache {
	return &KVCache{batch: batch, kvHeads: kvHeads, headDim: headDim, maxLen: maxLen}
}

// NewKVCacheDtype is NewKVCache storing keys and values as dt: float32 (as
// NewKVCache: the graph's float type) or BFloat16 (float32 graphs only).
func NewKVCacheDtype(batch, kvHeads, headDim, maxLen int, dt tensor.Dtype) (*KVCache, error) {
	if _, err := KVElemSize(dt); err != nil {
		return nil, err
	}
	c := NewKVCache(batch, kvHeads, headDim, maxLen)
	if dt == BFloat16 {
		c.dtype = BFloat16
	}
	return c, nil
}

// KVElemSize is the bytes a cache of dtype dt stores per key or value
// element: 4 for float32 (and the zero Dtype, the default), 2 for BFloat16.
// Other dtypes are an error: a KV cache is float32 or bfloat16 (float64
// graphs use NewKVCache).
func KVElemSize(dt tensor.Dtype) (int, error) {
	switch dt {
	case tensor.Dtype{}, tensor.Float32:
		return 4, nil
	case BFloat16:
		return 2, nil
	}
	return 0, fmt.Errorf("kernels: KV cache dtype %s: want F32 or BF16", DtypeName(dt))
}

// ParseKVDtype maps a command-line KV cache dtype (f32, fp32, float32, bf16,
// bfloat16) to Float32 or BFloat16.
func ParseKVDtype(s string) (tensor.Dtype, error) {
	switch s {
	case "f32", "fp32", "float32", "F32":
		return tensor.Float32, nil
	case "bf16", "bfloat16", "BF16":
		return BFloat16, nil
	}
	return tensor.Dtype{}, fmt.Errorf("KV cache dtype %q: want f32 or bf16", s)
}

// Dtype is the stored element type: BFloat16 for a bfloat16 cache, else the
// type of the first append (Float32 or Float64; Float32 before any append).
func (c *KVCache) Dtype() tensor.Dtype {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.dtype == BFloat16:
		return BFloat16
	case c.k64 != nil:
		return tensor.Float64
	}
	return tensor.Float32
}

// Len is the number of cached positions (per sequence).
func (c *KVCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// MaxLen is the capacity in positions.
func (c *KVCache) MaxLen() int { return c.maxLen }

// Reset empties the cache (storage is kept for reuse).
func (c *KVCache) Reset() {
	c.mu.Lock()
	c.n = 0
	c.mu.Unlock()
}

// Truncate keeps the first n positions, dropping the rest.
func (c *KVCache) Truncate(n int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n < 0 || n > c.n {
		return fmt.Errorf("kernels: KVCache.Truncate(%d): cache holds %d positions", n, c.n)
	}
	c.n = n
	return nil
}

func (c *KVCache) String() string {
	dt := ""
	if c.dtype == BFloat16 {
		dt = " dtype=BF16"
	}
	return fmt.Sprintf("KVCache{batch=%d kvHeads=%d headDim=%d maxLen=%d%s}", c.batch, c.kvHeads, c.headDim, c.maxLen, dt)
}

// storage returns the key and value buffers for element type T, allocating
// them on first use.
func cacheStorage[T float](c *KVCache) (k, v []T, err error) {
	size := c.batch * c.maxLen * c.kvHeads * c.headDim
	switch any(*new(T)).(type) {
	case float32:
		if c.k64 != nil {
			return nil, nil, fmt.Errorf("kernels: KVCache holds float64 values, got float32")
		}
		if c.k32 == nil {
			c.k32, c.v32 = make([]float32, size), make([]float32, size)
		}
		return any(c.k32).([]T), any(c.v32).([]T), nil
	default:
		if c.k32 != nil {
			return nil, nil, fmt.Errorf("kernels: KVCache holds float32 values, got float64")
		}
		if c.k64 == nil {
			c.k64, c.v64 = make([]float64, size), make([]float64, size)
		}
		return any(c.k64).([]T), any(c.v64).([]T), nil
	}
}

// appendKV copies t positions of k and v ([batch*t, kvHeads*headDim]) into
// the cache and returns the buffers and the previous length. The caller
// holds c.mu. A bfloat16 cache is appended by appendKV16 instead.
func appendKV[T float](c *KVCache, k, v []T, t int) (kb, vb []T, start int, err error) {
	if c.n+t > c.maxLen {
		return nil, nil, 0, fmt.Errorf("kernels: KVCache full: %d cached + %d new positions exceed maxLen %d", c.n, t, c.maxLen)
	}
	if kb, vb, err = cacheStorage[T](c); err != nil {
		return nil, nil, 0, err
	}
	start = c.n
	c.scatter(t, start, func(src, dst, n int) {
		copy(kb[dst:dst+n], k[src:src+n])
		copy(vb[dst:dst+n], v[src:src+n])
	})
	c.n += t
	return kb, vb, start, nil
}

// appendKV16 rounds t positions of k and v ([batch*t, kvHeads*headDim]) to
// bfloat16 (nearest even, as Float32ToBF16) into a bfloat16 cache and
// returns the previous length. The caller holds c.mu.
func appendKV16(c *KVCache, k, v []float32, t int) (start int, err error) {
	if c.n+t > c.maxLen {
		return 0, fmt.Errorf("kernels: KVCache full: %d cached + %d new positions exceed maxLen %d", c.n, t, c.maxLen)
	}
	w := c.kvHeads * c.headDim
	if c.k16 == nil {
		size := c.batch * c.maxLen * w
		c.k16, c.v16 = make([]uint16, size), make([]uint16, size)
	}
	start = c.n
	c.scatter(t, start, func(src, dst, n int) {
		roundBF16(k[src:src+n], c.k16[dst:dst+n])
		roundBF16(v[src:src+n], c.v16[dst:dst+n])
	})
	c.n += t
	return start, nil
}

// scatter calls fn for every (sequence, position, kv head) of t new rows
// ([batch*t, kvHeads*headDim]) appended at position start: fn copies n
// elements from offset src of the rows to offset dst of the cache.
func (c *KVCache) scatter(t, start int, fn func(src, dst, n int)) {
	d, w := c.headDim, c.kvHeads*c.headDim
	for b := 0; b < c.batch; b++ {
		for p := 0; p < t; p++ {
			for g := 0; g < c.kvHeads; g++ {
				fn((b*t+p)*w+g*d, ((b*c.kvHeads+g)*c.maxLen+start+p)*d, d)
			}
		}
	}
}

// widenKV16 writes positions [0, l) of every sequence and kv head of a
// bfloat16 cache, widened to float32, to k and v in the same head-major
// layout with l positions per head ([batch][kvHeads][l][headDim]), one head
// at a time in parallel. The caller holds c.mu.
func widenKV16(c *KVCache, l int, k, v []float32) {
	d := c.headDim
	parallelFor(c.batch*c.kvHeads, 1, func(lo, hi int) {
		for bg := lo; bg < hi; bg++ {
			src, dst := bg*c.maxLen*d, bg*l*d
			widenRows(0, c.k16[src:], l*d, k[dst:], l*d, 1, l*d)
			widenRows(0, c.v16[src:], l*d, v[dst:], l*d, 1, l*d)
		}
	})
}
