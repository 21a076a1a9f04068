package ckpt

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"slices"
	"sync"
	"syscall"
	"unsafe"

	"gorgonia.org/tensor"

	"github.com/magma-go/magma/kernels"
)

// Tensors in place: a shard is memory-mapped read-only (PROT_READ,
// MAP_SHARED) the first time a tensor of it is used in its stored dtype, and
// the parameter becomes a view of the mapping (kernels.View): no copy, no
// second residency (the pages are the page cache's, loaded on first touch
// and reclaimable), so a 17.8 GB bf16 checkpoint costs 17.8 GB however many
// processes map it. The header's offsets were checked against the file size
// at open and the size is checked again before mapping, so a view never
// reaches past the end of the file (a file truncated while mapped would
// still fault: shards are treated as immutable, as every loader does).

// mapFile maps the whole file read-only once (safe for concurrent use).
func (s *SafetensorsFile) mapFile() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mapping != nil {
		return s.mapping, nil
	}
	if s.f == nil {
		return nil, fmt.Errorf("safetensors %s: file is closed", s.Path)
	}
	st, err := s.f.Stat()
	if err != nil {
		return nil, fmt.Errorf("safetensors %s: %w", s.Path, err)
	}
	if size := st.Size(); size != s.dataStart+s.dataLen {
		return nil, fmt.Errorf("safetensors %s: file changed size since it was opened (%d bytes, was %d): refusing to map it", s.Path, size, s.dataStart+s.dataLen)
	}
	if s.dataStart+s.dataLen > math.MaxInt {
		return nil, fmt.Errorf("safetensors %s: %d bytes cannot be mapped", s.Path, s.dataStart+s.dataLen)
	}
	mem, err := syscall.Mmap(int(s.f.Fd()), 0, int(s.dataStart+s.dataLen), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("safetensors %s: mapping %d bytes: %w", s.Path, s.dataStart+s.dataLen, err)
	}
	kernels.RegisterReadOnly(mem)
	s.mapping = mem
	mappedFiles.add(s)
	return mem, nil
}

// MappedBytes returns the bytes of tensor ti in the file's mapping, or nil
// when the file is not mapped (a view of them is what Dense returns in
// place).
func (s *SafetensorsFile) MappedBytes(ti TensorInfo) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mapping == nil {
		return nil
	}
	return s.mapping[s.dataStart+ti.Begin : s.dataStart+ti.End]
}

// unmap releases the mapping; views of it must no longer be used.
func (s *SafetensorsFile) unmap() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mapping == nil {
		return nil
	}
	kernels.UnregisterReadOnly(s.mapping)
	mappedFiles.remove(s)
	err := syscall.Munmap(s.mapping)
	s.mapping = nil
	return err
}

// mappedFiles are the safetensors files mapped now, so that a tensor can
// be traced back to the file and tensor it is a view of (MappedSource).
var mappedFiles mappedSet

type mappedSet struct {
	mu    sync.Mutex
	files []*SafetensorsFile
}

func (m *mappedSet) add(s *SafetensorsFile) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.files = append(m.files, s)
}

func (m *mappedSet) remove(s *SafetensorsFile) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.files = slices.DeleteFunc(m.files, func(f *SafetensorsFile) bool { return f == s })
}

// MappedSource reports the safetensors file and tensor that t is a view
// of: ok only when t's bytes are exactly one stored tensor of a file mapped
// now (same start, same length, same dtype) and the path still names that
// file, i.e. t is that tensor in place and, the mapping being read-only,
// holds the bytes the path holds.
func MappedSource(t *tensor.Dense) (path, name string, ok bool) {
	if t == nil || t.MemSize() == 0 {
		return "", "", false
	}
	p, n := t.Uintptr(), t.MemSize()
	// mapFile and unmap take a file's lock, then the set's: copy the set
	// and take the files' locks after releasing it.
	mappedFiles.mu.Lock()
	files := slices.Clone(mappedFiles.files)
	mappedFiles.mu.Unlock()
	for _, f := range files {
		f.mu.Lock()
		mem, fd := f.mapping, f.f
		f.mu.Unlock()
		if len(mem) == 0 || fd == nil {
			continue
		}
		base := uintptr(unsafe.Pointer(&mem[0]))
		if p < base || p+n > base+uintptr(len(mem)) {
			continue
		}
		off := int64(p-base) - f.dataStart
		for _, ti := range f.tensors {
			if ti.Begin == off && ti.End-ti.Begin == int64(n) && ti.DType == kernels.DtypeName(t.Dtype()) {
				// the path must still name the file that is mapped (not
				// a file written over it since)
				a, err1 := fd.Stat()
				b, err2 := os.Stat(f.Path)
				if err1 != nil || err2 != nil || !os.SameFile(a, b) {
					return "", "", false
				}
				return f.Path, ti.Name, true
			}
		}
		return "", "", false
	}
	return "", "", false
}

// Mapped reports whether the file is memory-mapped (some tensor of it is
// used in place).
func (s *SafetensorsFile) Mapped() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.mapping != nil }

// storageDtype is the in-memory dtype of a stored dtype: the float formats
// are kept as they are (F64 too); anything else cannot be a weight.
func storageDtype(path, name, dtype string) (tensor.Dtype, error) {
	switch dtype {
	case DTypeBF16, DTypeF16, DTypeF32, DTypeF64:
		return kernels.ParseDtype(dtype)
	}
	return tensor.Dtype{}, fmt.Errorf("safetensors %s: tensor %q has dtype %s, not a floating-point type: it cannot be a weight", path, name, dtype)
}

// Dense returns a tensor as a *tensor.Dense of dtype want (the zero Dtype:
// the stored dtype). When want is the stored dtype and the data is aligned
// to its element size, the result is a read-only view of the mapped file
// (inPlace true); otherwise it is a converted copy (BF16, F16, F32 and F64
// convert to one another, rounding to nearest even when narrowing). A
// non-float stored dtype is an error naming the file and tensor.
func (s *SafetensorsFile) Dense(name string, want tensor.Dtype) (t *tensor.Dense, inPlace bool, err error) {
	return s.dense(name, want, true)
}

// dense is Dense; without inPlace the result is always a copy.
func (s *SafetensorsFile) dense(name string, want tensor.Dtype, inPlace bool) (*tensor.Dense, bool, error) {
	ti, ok := s.tensors[name]
	if !ok {
		return nil, false, fmt.Errorf("safetensors %s: tensor %q not found", s.Path, name)
	}
	have, err := storageDtype(s.Path, name, ti.DType)
	if err != nil {
		return nil, false, err
	}
	if want == (tensor.Dtype{}) {
		want = have
	}
	switch want {
	case kernels.BFloat16, kernels.Float16, tensor.Float32, tensor.Float64:
	default:
		return nil, false, fmt.Errorf("safetensors %s: tensor %q: unsupported target dtype %v", s.Path, name, want)
	}
	shape := append([]int(nil), ti.Shape...)
	if len(shape) == 0 {
		shape = []int{1} // a scalar is a one-element tensor in the layers
	}
	if want == have && inPlace {
		mem, err := s.mapFile()
		if err != nil {
			return nil, false, err
		}
		if v, err := kernels.View(want, shape, mem[s.dataStart+ti.Begin:s.dataStart+ti.End]); err == nil {
			return v, true, nil
		}
		// Misaligned (an F32 tensor after an odd number of 16-bit values):
		// copied below.
	}
	out := tensor.New(tensor.WithShape(shape...), tensor.Of(want))
	if err := s.convertInto(ti, out); err != nil {
		return nil, false, err
	}
	return out, false, nil
}

// convertInto streams ti's bytes (pread, not the mapping: a conversion
// leaves no mapped pages behind) into dst, converting element by element.
func (s *SafetensorsFile) convertInto(ti TensorInfo, dst *tensor.Dense) error {
	conv, err := float32Converter(ti.DType)
	if err != nil {
		return fmt.Errorf("safetensors %s: tensor %q: %w", s.Path, ti.Name, err)
	}
	es := dtypeSizes[ti.DType]
	if ti.DType == DTypeF64 {
		if d, ok := dst.Data().([]float64); ok {
			return s.stream(ti, func(off int, b []byte) {
				for i := 0; i+8 <= len(b); i += 8 {
					d[off+i/8] = math.Float64frombits(binary.LittleEndian.Uint64(b[i:]))
				}
			})
		}
	}
	tmp := make([]float32, readChunk/es)
	return s.stream(ti, func(off int, b []byte) {
		n := len(b) / es
		f := tmp[:n]
		conv(f, b)
		switch d := dst.Data().(type) {
		case []float32:
			copy(d[off:], f)
		case []float64:
			for i, v := range f {
				d[off+i] = float64(v)
			}
		case []kernels.BF16:
			for i, v := range f {
				d[off+i] = kernels.BF16(kernels.Float32ToBF16(v))
			}
		case []kernels.F16:
			for i, v := range f {
				d[off+i] = kernels.F16(kernels.Float32ToF16(v))
			}
		}
	})
}
