package kernels

import (
	"fmt"
	"sort"
	"sync"
	"syscall"
	"unsafe"

	"gorgonia.org/tensor"
)

// Read-only tensors. Weights may live in memory that must never be written:
// safetensors shards mapped read-only (the checkpoint is used in place, its
// pages shared with the page cache) and the placeholders a model is built
// with before its checkpoint is bound. Writing there faults (SIGSEGV, which
// Go cannot recover), so every path that updates parameters in place (an
// optimizer step, merging an adapter) asks IsReadOnly first and works on a
// copy, or refuses.

var readOnly struct {
	sync.RWMutex
	ranges []memRange // sorted by start, disjoint
}

type memRange struct{ start, end uintptr }

// RegisterReadOnly records b as read-only memory (IsReadOnly reports
// tensors inside it) until UnregisterReadOnly(b).
func RegisterReadOnly(b []byte) {
	if len(b) == 0 {
		return
	}
	r := memRange{uintptr(unsafe.Pointer(&b[0])), uintptr(unsafe.Pointer(&b[0])) + uintptr(len(b))}
	readOnly.Lock()
	defer readOnly.Unlock()
	i := sort.Search(len(readOnly.ranges), func(i int) bool { return readOnly.ranges[i].start >= r.start })
	readOnly.ranges = append(readOnly.ranges, memRange{})
	copy(readOnly.ranges[i+1:], readOnly.ranges[i:])
	readOnly.ranges[i] = r
}

// UnregisterReadOnly forgets a range recorded by RegisterReadOnly.
func UnregisterReadOnly(b []byte) {
	if len(b) == 0 {
		return
	}
	start := uintptr(unsafe.Pointer(&b[0]))
	readOnly.Lock()
	defer readOnly.Unlock()
	for i, r := range readOnly.ranges {
		if r.start == start {
			readOnly.ranges = append(readOnly.ranges[:i], readOnly.ranges[i+1:]...)
			return
		}
	}
}

// IsReadOnly reports whether t's data lies in memory registered as
// read-only (a mapped checkpoint shard or a placeholder).
func IsReadOnly(t *tensor.Dense) bool {
	if t == nil || t.MemSize() == 0 {
		return false
	}
	p := t.Uintptr()
	readOnly.RLock()
	defer readOnly.RUnlock()
	i := sort.Search(len(readOnly.ranges), func(i int) bool { return readOnly.ranges[i].end > p })
	return i < len(readOnly.ranges) && readOnly.ranges[i].start <= p
}

// zeroPages is one read-only anonymous mapping shared by every placeholder:
// it reads as zeros (the kernel's zero page) and costs no memory.
var zeroPages struct {
	sync.Mutex
	mem []byte
}

// minZeroMapping is the smallest placeholder mapping (address space only).
const minZeroMapping = 1 << 30

// Placeholder returns a tensor of dtype dt and shape that reads as zeros
// and occupies no memory: a view of one shared read-only mapping. Models
// about to be bound to a checkpoint are built with placeholders, so an 8B
// model never allocates the float32 tensors the binding replaces. Writing
// into a placeholder faults; IsReadOnly reports it.
func Placeholder(dt tensor.Dtype, shape ...int) *tensor.Dense {
	t, err := placeholder(dt, shape)
	if err != nil {
		panic(err) // address space exhausted: as fatal as a failed allocation
	}
	return t
}

func placeholder(dt tensor.Dtype, shape []int) (*tensor.Dense, error) {
	n := prod(shape) * ElemSize(dt)
	zeroPages.Lock()
	defer zeroPages.Unlock()
	if n > len(zeroPages.mem) {
		size := max(n, minZeroMapping)
		size = (size + 1<<20 - 1) &^ (1<<20 - 1)
		mem, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ, syscall.MAP_ANON|syscall.MAP_PRIVATE|syscall.MAP_NORESERVE)
		if err != nil {
			return nil, fmt.Errorf("kernels: mapping %s of placeholder address space: %w", FormatBytes(int64(size)), err)
		}
		// The old mapping stays: placeholders made from it are still in use.
		RegisterReadOnly(mem)
		zeroPages.mem = mem
	}
	return View(dt, shape, zeroPages.mem[:n])
}
