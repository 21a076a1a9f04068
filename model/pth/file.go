package pth

import (
	"archive/zip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"

	"gorgonia.org/tensor"

	"github.com/magma-go/magma/kernels"
)

// Limits of the reader (see the package doc).
const (
	maxDims      = 64        // dimensions of a tensor
	maxPickle    = 512 << 20 // bytes of data.pkl
	maxEntries   = 1 << 20   // entries of the zip directory
	maxTensors   = 1 << 20   // tensors of a state dict
	maxNesting   = 64        // dict/list nesting of the flattened names
	maxVisits    = 1 << 24   // values visited while flattening
	maxExpanded  = 1 << 24   // elements of a view larger than its storage (stride 0)
	maxRatio     = 1100      // deflate's largest expansion is 1032:1
	maxSmallFile = 1 << 10   // bytes of "version" and "byteorder"
)

// storage is one persistent id: the zip entry <archive>/data/<key>.
type storage struct {
	key    string
	entry  *zip.File
	dt     *dtype // element type the pickle declares
	nbytes int64  // declared size, checked against the entry
}

// tensorRef is a tensor of the pickle: a strided view of a storage.
type tensorRef struct {
	st     *storage
	dt     *dtype
	offset int64
	shape  []int64
	stride []int64
}

// File is an opened torch.save checkpoint: the pickle has been run and
// checked, the storages are read when a tensor is asked for.
type File struct {
	path      string
	f         *os.File
	zr        *zip.Reader
	size      int64
	prefix    string // "<archive>/"
	bigEndian bool
	names     []string
	tensors   map[string]*tensorRef
}

// Open reads path's zip directory and data.pkl, runs the pickle against
// the allow-list, and checks every tensor view against its storage entry.
// No tensor data is read.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("pth %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("pth %s: %w", path, err)
	}
	pf, err := open(f, fi.Size(), path)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("pth %s: %w", path, err)
	}
	pf.f = f
	return pf, nil
}

// OpenReader is Open over any io.ReaderAt of size bytes; name is used in
// errors. Close does not close r.
func OpenReader(r io.ReaderAt, size int64, name string) (*File, error) {
	pf, err := open(r, size, name)
	if err != nil {
		return nil, fmt.Errorf("pth %s: %w", name, err)
	}
	return pf, nil
}

func open(r io.ReaderAt, size int64, path string) (*File, error) {
	if size < 4 {
		return nil, fmt.Errorf("file of %d bytes is not a torch.save zip archive", size)
	}
	var magic [4]byte
	if _, err := r.ReadAt(magic[:], 0); err != nil {
		return nil, fmt.Errorf("reading: %w", err)
	}
	if string(magic[:]) != "PK\x03\x04" {
		if magic[0] == 0x80 || magic[0] == 0x8a {
			return nil, errors.New("legacy (torch < 1.6, non-zip) torch.save format is not supported; re-save it with torch.save in a current torch")
		}
		return nil, errors.New("not a zip archive (torch.save files start with PK\\x03\\x04)")
	}
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, fmt.Errorf("zip directory: %w", err)
	}
	if len(zr.File) > maxEntries {
		return nil, fmt.Errorf("zip directory has %d entries (at most %d)", len(zr.File), maxEntries)
	}
	p := &File{path: path, zr: zr, size: size}
	// The archive's entries all live under one folder <archive>/ that has data.pkl.
	byName := make(map[string]*zip.File, len(zr.File))
	for _, e := range zr.File {
		if _, dup := byName[e.Name]; dup {
			return nil, fmt.Errorf("zip entry %q appears twice", e.Name)
		}
		byName[e.Name] = e
		if strings.HasSuffix(e.Name, "/data.pkl") && strings.Count(e.Name, "/") == 1 {
			if p.prefix != "" {
				return nil, fmt.Errorf("two data.pkl entries (%q and %q)", p.prefix+"data.pkl", e.Name)
			}
			p.prefix = strings.TrimSuffix(e.Name, "data.pkl")
		}
	}
	if p.prefix == "" {
		if _, ok := byName["data.pkl"]; ok {
			return nil, errors.New("data.pkl is not inside an <archive>/ folder (not a torch.save archive)")
		}
		return nil, errors.New("no <archive>/data.pkl entry (not a torch.save archive; TorchScript and other zips are not state dicts)")
	}
	if e := byName[p.prefix+"byteorder"]; e != nil {
		b, err := p.readEntry(e, maxSmallFile)
		if err != nil {
			return nil, err
		}
		switch string(b) {
		case "little":
		case "big":
			p.bigEndian = true
		default:
			return nil, fmt.Errorf("entry %s: unknown byte order %q", e.Name, truncate(string(b)))
		}
	}
	if e := byName[p.prefix+"version"]; e != nil {
		b, err := p.readEntry(e, maxSmallFile)
		if err != nil {
			return nil, err
		}
		v, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || v < 1 || v > 100 {
			return nil, fmt.Errorf("entry %s: bad archive version %q", e.Name, truncate(string(b)))
		}
	}
	pkl, err := p.readEntry(byName[p.prefix+"data.pkl"], maxPickle)
	if err != nil {
		return nil, err
	}
	storages := map[string]*storage{}
	up := &unpickler{data: pkl}
	up.persistentLoad = func(id any) (any, error) {
		return p.loadStorage(id, byName, storages)
	}
	root, err := up.run()
	if err != nil {
		return nil, err
	}
	if err := p.flatten(root); err != nil {
		return nil, err
	}
	return p, nil
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// loadStorage resolves ('storage', storage_type, key, location, numel).
func (p *File) loadStorage(id any, byName map[string]*zip.File, storages map[string]*storage) (any, error) {
	t, ok := id.(pyTuple)
	if !ok || len(t) != 5 {
		n := -1
		if ok {
			n = len(t)
		}
		return nil, fmt.Errorf("persistent id of type %s (len %d), want ('storage', type, key, location, numel)", typeName(id), n)
	}
	if s, _ := t[0].(string); s != "storage" {
		return nil, fmt.Errorf("persistent id kind %v, want 'storage'", t[0])
	}
	g, ok := t[1].(*pyGlobal)
	if !ok || g.storageDtype() == nil {
		return nil, fmt.Errorf("persistent id storage type of type %s, want a torch storage type", typeName(t[1]))
	}
	key, ok := t[2].(string)
	if !ok {
		return nil, fmt.Errorf("persistent id key of type %s, want str", typeName(t[2]))
	}
	if key == "" || strings.ContainsAny(key, "/\\") || key == "." || key == ".." {
		return nil, fmt.Errorf("storage key %q is not a plain name", truncate(key))
	}
	if _, ok := t[3].(string); !ok {
		return nil, fmt.Errorf("storage %s: location of type %s, want str", key, typeName(t[3]))
	}
	numel, ok := toInt(t[4])
	if !ok || numel < 0 {
		return nil, fmt.Errorf("storage %s: bad element count %v", key, t[4])
	}
	dt := g.storageDtype()
	if numel > math.MaxInt64/int64(dt.size) {
		return nil, fmt.Errorf("storage %s: element count %d overflows", key, numel)
	}
	if s, ok := storages[key]; ok {
		if s.dt != dt || s.nbytes != numel*int64(dt.size) {
			return nil, fmt.Errorf("storage %s is declared twice with different types or sizes", key)
		}
		return s, nil
	}
	name := p.prefix + "data/" + key
	e := byName[name]
	if e == nil {
		return nil, fmt.Errorf("storage %s: zip entry %s is missing", key, name)
	}
	s := &storage{key: key, entry: e, dt: dt, nbytes: numel * int64(dt.size)}
	if int64(e.UncompressedSize64) != s.nbytes || e.UncompressedSize64 > math.MaxInt64 {
		return nil, fmt.Errorf("storage %s: zip entry %s holds %d bytes, the pickle declares %d (%d x %s)", key, name, e.UncompressedSize64, s.nbytes, numel, g.name)
	}
	if err := p.checkEntryBounds(e); err != nil {
		return nil, err
	}
	storages[key] = s
	return s, nil
}

// checkEntryBounds checks an entry's data lies in the file and its declared
// size is possible for its compression.
func (p *File) checkEntryBounds(e *zip.File) error {
	off, err := e.DataOffset()
	if err != nil {
		return fmt.Errorf("entry %s: %w", e.Name, err)
	}
	if e.CompressedSize64 > uint64(p.size) || off < 0 || off > p.size-int64(e.CompressedSize64) {
		return fmt.Errorf("entry %s: data (%d bytes at offset %d) runs past the end of the file (%d bytes)", e.Name, e.CompressedSize64, off, p.size)
	}
	switch e.Method {
	case zip.Store:
		if e.CompressedSize64 != e.UncompressedSize64 {
			return fmt.Errorf("entry %s: stored entry with compressed size %d != size %d", e.Name, e.CompressedSize64, e.UncompressedSize64)
		}
	case zip.Deflate:
		if e.UncompressedSize64/maxRatio > e.CompressedSize64+1 {
			return fmt.Errorf("entry %s: declared size %d is impossible for %d deflated bytes", e.Name, e.UncompressedSize64, e.CompressedSize64)
		}
	default:
		return fmt.Errorf("entry %s: unsupported compression method %d", e.Name, e.Method)
	}
	return nil
}

// readEntry reads a whole entry (at most limit bytes), checking its CRC.
func (p *File) readEntry(e *zip.File, limit int64) ([]byte, error) {
	if err := p.checkEntryBounds(e); err != nil {
		return nil, err
	}
	if e.UncompressedSize64 > uint64(limit) {
		return nil, fmt.Errorf("entry %s: %d bytes (at most %d)", e.Name, e.UncompressedSize64, limit)
	}
	rc, err := e.Open()
	if err != nil {
		return nil, fmt.Errorf("entry %s: %w", e.Name, err)
	}
	defer rc.Close()
	n := int64(e.UncompressedSize64)
	buf := make([]byte, n)
	if _, err := io.ReadFull(rc, buf); err != nil {
		return nil, fmt.Errorf("entry %s: reading %d bytes: %w", e.Name, n, err)
	}
	// Reading on to EOF makes archive/zip check the size and CRC-32.
	if k, err := io.Copy(io.Discard, io.LimitReader(rc, 1)); err != nil || k != 0 {
		if err == nil {
			err = errors.New("more data than the declared size")
		}
		return nil, fmt.Errorf("entry %s: %w", e.Name, err)
	}
	return buf, nil
}

// flatten lists the tensors of the pickled object under dotted names.
func (p *File) flatten(root any) error {
	p.tensors = map[string]*tensorRef{}
	switch root.(type) {
	case *pyDict, *pyList, pyTuple:
	case *tensorRef:
		return errors.New("the file holds a single tensor, not a state dict")
	default:
		return fmt.Errorf("the file holds a %s, not a state dict", typeName(root))
	}
	visits := 0
	var walk func(v any, name string, depth int) error
	walk = func(v any, name string, depth int) error {
		visits++
		if visits > maxVisits {
			return fmt.Errorf("more than %d values to walk (shared or cyclic containers?)", maxVisits)
		}
		if depth > maxNesting {
			return fmt.Errorf("%s: nested more than %d levels deep", name, maxNesting)
		}
		child := func(k string) string {
			if name == "" {
				return k
			}
			return name + "." + k
		}
		switch c := v.(type) {
		case *tensorRef:
			if _, dup := p.tensors[name]; dup {
				return fmt.Errorf("tensor name %q appears twice after flattening nested dicts with \".\"", name)
			}
			if len(p.tensors) >= maxTensors {
				return fmt.Errorf("more than %d tensors", maxTensors)
			}
			if err := c.check(name); err != nil {
				return err
			}
			p.tensors[name] = c
			p.names = append(p.names, name)
		case *pyDict:
			for i, k := range c.keys {
				var ks string
				switch kk := k.(type) {
				case string:
					ks = kk
				case int64:
					ks = strconv.FormatInt(kk, 10)
				default:
					if containsTensor(c.vals[i], 0) {
						return fmt.Errorf("%s: dict key of type %s holds tensors (only str and int keys name tensors)", orRoot(name), typeName(k))
					}
					continue
				}
				if err := walk(c.vals[i], child(ks), depth+1); err != nil {
					return err
				}
			}
		case *pyList:
			for i, it := range c.items {
				if err := walk(it, child(strconv.Itoa(i)), depth+1); err != nil {
					return err
				}
			}
		case pyTuple:
			for i, it := range c {
				if err := walk(it, child(strconv.Itoa(i)), depth+1); err != nil {
					return err
				}
			}
		}
		// Other values (numbers, strings, None, dtypes) carry no tensor.
		return nil
	}
	return walk(root, "", 0)
}

func orRoot(name string) string {
	if name == "" {
		return "top-level dict"
	}
	return name
}

func containsTensor(v any, depth int) bool {
	if depth > maxNesting {
		return true
	}
	switch c := v.(type) {
	case *tensorRef:
		return true
	case *pyDict:
		for _, x := range c.vals {
			if containsTensor(x, depth+1) {
				return true
			}
		}
	case *pyList:
		for _, x := range c.items {
			if containsTensor(x, depth+1) {
				return true
			}
		}
	case pyTuple:
		for _, x := range c {
			if containsTensor(x, depth+1) {
				return true
			}
		}
	}
	return false
}

// newTensorRef builds the tensor of _rebuild_tensor*: dt overrides the
// storage's element type (_rebuild_tensor_v3 over an untyped storage).
func newTensorRef(st, off, size, stride any, dt *dtype) (*tensorRef, error) {
	s, ok := st.(*storage)
	if !ok {
		return nil, fmt.Errorf("storage argument of type %s", typeName(st))
	}
	o, ok := toInt(off)
	if !ok {
		return nil, fmt.Errorf("storage offset of type %s", typeName(off))
	}
	shape, err := intTuple(size, "size")
	if err != nil {
		return nil, err
	}
	strides, err := intTuple(stride, "stride")
	if err != nil {
		return nil, err
	}
	if len(shape) != len(strides) {
		return nil, fmt.Errorf("size %s and stride %s differ in length", joinInts(shape), joinInts(strides))
	}
	if dt == nil {
		dt = s.dt
	}
	return &tensorRef{st: s, dt: dt, offset: o, shape: shape, stride: strides}, nil
}

// check validates the view against its storage (done for every tensor at Open).
func (t *tensorRef) check(name string) error {
	fail := func(format string, a ...any) error {
		return fmt.Errorf("tensor %s: %s", name, fmt.Sprintf(format, a...))
	}
	if t.st.nbytes%int64(t.dt.size) != 0 {
		return fail("storage %s of %d bytes does not hold whole %s elements", t.st.key, t.st.nbytes, t.dt.name)
	}
	stElems := t.st.nbytes / int64(t.dt.size)
	if t.offset < 0 {
		return fail("negative storage offset %d", t.offset)
	}
	n := int64(1)
	for i, d := range t.shape {
		if d < 0 {
			return fail("negative size %d in shape %s", d, joinInts(t.shape))
		}
		if t.stride[i] < 0 {
			return fail("negative stride %d in %s", t.stride[i], joinInts(t.stride))
		}
		if d != 0 && n > math.MaxInt64/d {
			return fail("shape %s overflows", joinInts(t.shape))
		}
		n *= d
	}
	if n == 0 {
		if t.offset > stElems {
			return fail("storage offset %d past the end of storage %s (%d elements)", t.offset, t.st.key, stElems)
		}
		return nil
	}
	last := t.offset
	for i, d := range t.shape {
		step := d - 1
		if t.stride[i] != 0 && step > (math.MaxInt64-last)/t.stride[i] {
			return fail("view (offset %d, shape %s, stride %s) overflows", t.offset, joinInts(t.shape), joinInts(t.stride))
		}
		last += step * t.stride[i]
	}
	if last >= stElems {
		return fail("view (offset %d, shape %s, stride %s) reaches element %d, past the end of storage %s (%d %s elements)",
			t.offset, joinInts(t.shape), joinInts(t.stride), last, t.st.key, stElems, t.dt.name)
	}
	if n > stElems && n > maxExpanded {
		return fail("view of %d elements over a storage of %d (at most %d for an expanded view)", n, stElems, maxExpanded)
	}
	return nil
}

func (t *tensorRef) numel() int64 {
	n := int64(1)
	for _, d := range t.shape {
		n *= d
	}
	return n
}

// Close closes the file.
func (p *File) Close() error {
	if p.f == nil {
		return nil
	}
	err := p.f.Close()
	p.f = nil
	return err
}

// Path is the file's path as given to Open.
func (p *File) Path() string { return p.path }

// Names lists the tensors in the order the pickle stores them (nested
// dicts and lists flattened with ".").
func (p *File) Names() []string { return append([]string(nil), p.names...) }

// Has reports whether the file has a tensor named name.
func (p *File) Has(name string) bool { _, ok := p.tensors[name]; return ok }

// Info is a tensor's stored dtype (safetensors spelling: F32, F64, F16,
// BF16, I64, I32, I16, I8, U8, BOOL) and shape.
type Info struct {
	DType string
	Shape []int
}

// Info returns name's dtype and shape.
func (p *File) Info(name string) (Info, bool) {
	t, ok := p.tensors[name]
	if !ok {
		return Info{}, false
	}
	return Info{DType: t.dt.name, Shape: ints(t.shape)}, true
}

func ints(xs []int64) []int {
	out := make([]int, len(xs))
	for i, x := range xs {
		out[i] = int(x)
	}
	return out
}

func (p *File) lookup(name string) (*tensorRef, error) {
	t, ok := p.tensors[name]
	if !ok {
		return nil, fmt.Errorf("pth %s: no tensor %q", p.path, name)
	}
	return t, nil
}

// Raw returns name's elements as contiguous little-endian bytes (row-major),
// with its Info.
func (p *File) Raw(name string) ([]byte, Info, error) {
	t, err := p.lookup(name)
	if err != nil {
		return nil, Info{}, err
	}
	b, err := p.materialise(t)
	if err != nil {
		return nil, Info{}, fmt.Errorf("pth %s: tensor %s: %w", p.path, name, err)
	}
	return b, Info{DType: t.dt.name, Shape: ints(t.shape)}, nil
}

// materialise reads t's storage and copies its view out contiguous, in
// little-endian order.
func (p *File) materialise(t *tensorRef) ([]byte, error) {
	raw, err := p.readEntry(t.st.entry, t.st.nbytes)
	if err != nil {
		return nil, fmt.Errorf("storage %s: %w", t.st.key, err)
	}
	if int64(len(raw)) != t.st.nbytes {
		return nil, fmt.Errorf("storage %s: %d bytes, want %d", t.st.key, len(raw), t.st.nbytes)
	}
	es := int64(t.dt.size)
	n := t.numel()
	out := make([]byte, n*es)
	if n > 0 {
		copyStrided(out, raw, t.offset, t.shape, t.stride, es)
	}
	if p.bigEndian && es > 1 {
		for i := int64(0); i < int64(len(out)); i += es {
			e := out[i : i+es]
			for a, b := 0, len(e)-1; a < b; a, b = a+1, b-1 {
				e[a], e[b] = e[b], e[a]
			}
		}
	}
	return out, nil
}

// copyStrided copies the view (offset, shape, stride in elements of es
// bytes) of src to dst in row-major order; the view was checked to lie in src.
func copyStrided(dst, src []byte, offset int64, shape, stride []int64, es int64) {
	nd := len(shape)
	// The innermost run: contiguous rows are copied at once.
	if nd == 0 {
		copy(dst, src[offset*es:(offset+1)*es])
		return
	}
	idx := make([]int64, nd)
	inner := shape[nd-1]
	innerStride := stride[nd-1]
	o := 0
	pos := offset
	for {
		if innerStride == 1 {
			k := inner * es
			copy(dst[o:int64(o)+k], src[pos*es:pos*es+k])
			o += int(k)
		} else {
			q := pos
			for j := int64(0); j < inner; j++ {
				copy(dst[o:o+int(es)], src[q*es:q*es+es])
				o += int(es)
				q += innerStride
			}
		}
		// advance the outer indices
		d := nd - 2
		for ; d >= 0; d-- {
			idx[d]++
			pos += stride[d]
			if idx[d] < shape[d] {
				break
			}
			pos -= stride[d] * shape[d]
			idx[d] = 0
		}
		if d < 0 {
			return
		}
	}
}

// Tensor returns a contiguous copy of name in its stored dtype:
// tensor.Float32, tensor.Float64, kernels.BFloat16, kernels.Float16,
// tensor.Int64, tensor.Int32, tensor.Int16, tensor.Int8, tensor.Uint8 or
// tensor.Bool. A 0-d tensor has shape () and one element.
func (p *File) Tensor(name string) (*tensor.Dense, error) {
	b, info, err := p.Raw(name)
	if err != nil {
		return nil, err
	}
	n := len(b) / p.tensors[name].dt.size
	var backing any
	switch info.DType {
	case "F32":
		v := make([]float32, n)
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
		backing = v
	case "F64":
		v := make([]float64, n)
		for i := range v {
			v[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
		}
		backing = v
	case "BF16":
		v := make([]kernels.BF16, n)
		for i := range v {
			v[i] = kernels.BF16(binary.LittleEndian.Uint16(b[2*i:]))
		}
		backing = v
	case "F16":
		v := make([]kernels.F16, n)
		for i := range v {
			v[i] = kernels.F16(binary.LittleEndian.Uint16(b[2*i:]))
		}
		backing = v
	case "I64":
		v := make([]int64, n)
		for i := range v {
			v[i] = int64(binary.LittleEndian.Uint64(b[8*i:]))
		}
		backing = v
	case "I32":
		v := make([]int32, n)
		for i := range v {
			v[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
		}
		backing = v
	case "I16":
		v := make([]int16, n)
		for i := range v {
			v[i] = int16(binary.LittleEndian.Uint16(b[2*i:]))
		}
		backing = v
	case "I8":
		v := make([]int8, n)
		for i := range v {
			v[i] = int8(b[i])
		}
		backing = v
	case "U8":
		backing = b
	case "BOOL":
		v := make([]bool, n)
		for i := range v {
			v[i] = b[i] != 0
		}
		backing = v
	default:
		return nil, fmt.Errorf("pth %s: tensor %s: dtype %s has no Go tensor type", p.path, name, info.DType)
	}
	if len(info.Shape) == 0 {
		return tensor.New(tensor.WithShape(), tensor.WithBacking(backing)), nil
	}
	return tensor.New(tensor.WithShape(info.Shape...), tensor.WithBacking(backing)), nil
}

// Float32 returns name's values widened (or, for F64 and the integer
// types, converted) to float32, with its shape; bools are 0 and 1.
func (p *File) Float32(name string) ([]float32, []int, error) {
	b, info, err := p.Raw(name)
	if err != nil {
		return nil, nil, err
	}
	es := p.tensors[name].dt.size
	n := len(b) / es
	out := make([]float32, n)
	for i := range out {
		e := b[i*es:]
		switch info.DType {
		case "F32":
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(e))
		case "F64":
			out[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(e)))
		case "BF16":
			out[i] = kernels.BF16ToFloat32(binary.LittleEndian.Uint16(e))
		case "F16":
			out[i] = kernels.F16ToFloat32(binary.LittleEndian.Uint16(e))
		case "I64":
			out[i] = float32(int64(binary.LittleEndian.Uint64(e)))
		case "I32":
			out[i] = float32(int32(binary.LittleEndian.Uint32(e)))
		case "I16":
			out[i] = float32(int16(binary.LittleEndian.Uint16(e)))
		case "I8":
			out[i] = float32(int8(e[0]))
		case "U8":
			out[i] = float32(e[0])
		case "BOOL":
			if e[0] != 0 {
				out[i] = 1
			}
		}
	}
	return out, info.Shape, nil
}

// sortedNames is Names sorted (for writers whose format sorts).
func (p *File) sortedNames() []string {
	s := p.Names()
	sort.Strings(s)
	return s
}
