package ckpt

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"gorgonia.org/tensor"

	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/nn"
)

// Checksum manifest. A training checkpoint carries manifest.json: the size
// and CRC-32C (Castagnoli) of every other file in the directory, relative
// path by relative path. CRC-32C runs in hardware on amd64 (SSE4.2) and
// arm64 at several GB/s, so the checksums of a Magma-8B checkpoint cost
// seconds; it detects every burst error up to 32 bits and any other damage
// with probability 1-2^-32 (it is not meant to resist tampering). The
// files a checkpoint writes are summed while they are written (Sums); the
// shards of a frozen base that are linked rather than written take the
// checksum the base's own manifest records, or the one this process
// computed for the same file before (same device, inode, size and
// modification time), so a LoRA run does not read 17 GB at every save.
// VerifyManifest reads every listed file again and compares.

// ManifestFileName is the checksum manifest of a checkpoint directory.
const ManifestFileName = "manifest.json"

// ChecksumAlgorithm names the checksum in the manifest's "algorithm".
const ChecksumAlgorithm = "crc32c"

const manifestFormat = 1

// ErrCorrupt marks a checkpoint whose files do not match their recorded
// checksums or whose weights hold NaN or infinite values.
var ErrCorrupt = errors.New("corrupt checkpoint")

// Manifest is manifest.json.
type Manifest struct {
	Format    int    `json:"format"`
	Algorithm string `json:"algorithm"`
	// Files maps each file's path relative to the checkpoint directory
	// (slash-separated) to its size and checksum.
	Files map[string]ManifestEntry `json:"files"`
}

// ManifestEntry is one file of a Manifest.
type ManifestEntry struct {
	Size     int64  `json:"size"`
	Checksum string `json:"checksum"` // 8 lowercase hex digits for crc32c
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func formatSum(s uint32) string { return fmt.Sprintf("%08x", s) }

// Sums collects the checksums of files as they are written or linked, for
// WriteManifest. The zero value is not usable; a nil *Sums records nothing.
type Sums struct {
	mu sync.Mutex
	m  map[string]fileSum
}

type fileSum struct {
	size int64
	sum  uint32
}

// NewSums returns an empty Sums.
func NewSums() *Sums { return &Sums{m: map[string]fileSum{}} }

func sumKey(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		return abs
	}
	return filepath.Clean(path)
}

func (s *Sums) record(path string, size int64, sum uint32) {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.m[sumKey(path)] = fileSum{size, sum}
	s.mu.Unlock()
}

// Lookup returns the checksum recorded for the file at path when its size
// is still size.
func (s *Sums) Lookup(path string, size int64) (uint32, bool) {
	if s == nil {
		return 0, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	fs, ok := s.m[sumKey(path)]
	if !ok || fs.size != size {
		return 0, false
	}
	return fs.sum, true
}

// sumWriter passes writes on and keeps their CRC-32C and length.
type sumWriter struct {
	w   io.Writer
	crc uint32
	n   int64
}

func (s *sumWriter) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	s.crc = crc32.Update(s.crc, castagnoli, p[:n])
	s.n += int64(n)
	return n, err
}

// fileID identifies a file's content for the process-wide checksum cache:
// writers in this project replace files (new inode) rather than write into
// them, and a write in place changes the modification time.
type fileID struct {
	dev, ino    uint64
	size, mtime int64
}

var sumCache = struct {
	sync.Mutex
	m map[fileID]uint32
}{m: map[fileID]uint32{}}

func identify(fi fs.FileInfo) (fileID, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, false
	}
	return fileID{dev: uint64(st.Dev), ino: uint64(st.Ino), size: fi.Size(), mtime: fi.ModTime().UnixNano()}, true
}

func cachedSum(fi fs.FileInfo) (uint32, bool) {
	id, ok := identify(fi)
	if !ok {
		return 0, false
	}
	sumCache.Lock()
	defer sumCache.Unlock()
	s, ok := sumCache.m[id]
	return s, ok
}

func cacheSum(fi fs.FileInfo, sum uint32) {
	if id, ok := identify(fi); ok {
		sumCache.Lock()
		sumCache.m[id] = sum
		sumCache.Unlock()
	}
}

// hashFile reads path and returns its size and CRC-32C (and remembers it
// in the process-wide cache).
func hashFile(path string) (int64, uint32, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	sw := &sumWriter{w: io.Discard}
	if _, err := io.CopyBuffer(sw, struct{ io.Reader }{f}, make([]byte, 1<<20)); err != nil {
		return 0, 0, fmt.Errorf("reading %s: %w", path, err)
	}
	if sw.n == fi.Size() {
		cacheSum(fi, sw.crc)
	}
	return sw.n, sw.crc, nil
}

// ReadManifest reads dir's manifest.json; it returns nil and no error when
// there is none (a checkpoint written before manifests).
func ReadManifest(dir string) (*Manifest, error) {
	path := filepath.Join(dir, ManifestFileName)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%w: %s: invalid JSON: %v", ErrCorrupt, path, err)
	}
	if m.Format != manifestFormat {
		return nil, fmt.Errorf("%s: unsupported manifest format %d (this build reads %d)", path, m.Format, manifestFormat)
	}
	if m.Algorithm != ChecksumAlgorithm {
		return nil, fmt.Errorf("%s: unsupported checksum algorithm %q (this build knows %s)", path, m.Algorithm, ChecksumAlgorithm)
	}
	if len(m.Files) == 0 {
		return nil, fmt.Errorf("%w: %s lists no files", ErrCorrupt, path)
	}
	for rel, e := range m.Files {
		if !validRel(rel) {
			return nil, fmt.Errorf("%w: %s: invalid file name %q", ErrCorrupt, path, rel)
		}
		if _, err := strconv.ParseUint(e.Checksum, 16, 32); err != nil || len(e.Checksum) != 8 || e.Size < 0 {
			return nil, fmt.Errorf("%w: %s: file %q: invalid entry (size %d, checksum %q)", ErrCorrupt, path, rel, e.Size, e.Checksum)
		}
	}
	return &m, nil
}

func validRel(rel string) bool {
	if rel == "" || rel == ManifestFileName || strings.HasPrefix(rel, "/") || filepath.IsAbs(rel) {
		return false
	}
	for _, part := range strings.Split(rel, "/") {
		if part == "" || part == "." || part == ".." {
			return false
		}
	}
	return true
}

// WriteManifest writes dir/manifest.json for every regular file under dir
// (subfolders included). A file's checksum comes from sums when it was
// recorded there for the file's current size (summed while written, or
// taken over from a linked file's source), otherwise the file is read.
func WriteManifest(dir string, sums *Sums) (*Manifest, error) {
	man := &Manifest{Format: manifestFormat, Algorithm: ChecksumAlgorithm, Files: map[string]ManifestEntry{}}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() || rel == ManifestFileName || rel == ManifestFileName+".tmp" {
			return nil
		}
		fi, err := os.Stat(path) // follows a symbolic link
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		sum, ok := sums.Lookup(path, fi.Size())
		if !ok {
			n, s, err := hashFile(path)
			if err != nil {
				return err
			}
			if n != fi.Size() {
				return fmt.Errorf("%s changed while it was read (%d bytes, then %d)", path, fi.Size(), n)
			}
			sum = s
		}
		man.Files[rel] = ManifestEntry{Size: fi.Size(), Checksum: formatSum(sum)}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("manifest of %s: %w", dir, err)
	}
	js, err := json.MarshalIndent(man, "", "  ")
	if err != nil {
		return nil, err
	}
	tmp := filepath.Join(dir, ManifestFileName+".tmp")
	if err := os.WriteFile(tmp, append(js, '\n'), 0o644); err != nil {
		return nil, fmt.Errorf("manifest of %s: %w", dir, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, ManifestFileName)); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("manifest of %s: %w", dir, err)
	}
	return man, nil
}

// linkedSum returns the checksum to record for a file linked (or copied)
// from src, a checkpoint directory, without reading it when possible: the
// entry of src's manifest for the same relative path and size, else the
// process-wide cache, else the file is read.
func linkedSum(srcDir, rel string, srcMan *Manifest) (uint32, error) {
	path := filepath.Join(srcDir, filepath.FromSlash(rel))
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	if srcMan != nil {
		if e, ok := srcMan.Files[filepath.ToSlash(rel)]; ok && e.Size == fi.Size() {
			if s, err := strconv.ParseUint(e.Checksum, 16, 32); err == nil {
				return uint32(s), nil
			}
		}
	}
	if s, ok := cachedSum(fi); ok {
		return s, nil
	}
	n, s, err := hashFile(path)
	if err != nil {
		return 0, err
	}
	if n != fi.Size() {
		return 0, fmt.Errorf("%s changed while it was read (%d bytes, then %d)", path, fi.Size(), n)
	}
	return s, nil
}

// Verification says what VerifyManifest checked.
type Verification struct {
	Dir       string
	Algorithm string // "" when the checkpoint has no manifest
	Files     int    // files whose checksum matched
	Bytes     int64  // their size
}

// String is a one-line report ("verified 9 files (12.3 MB, crc32c) of DIR",
// or a note that there was nothing to verify).
func (v *Verification) String() string {
	if v.Algorithm == "" {
		return fmt.Sprintf("note: %s has no %s (written elsewhere, or before checksums were recorded): its files could not be checked against checksums", v.Dir, ManifestFileName)
	}
	return fmt.Sprintf("verified %d files of %s (%s, %s)", v.Files, v.Dir, kernels.FormatBytes(v.Bytes), v.Algorithm)
}

// VerifyManifest reads every file listed in dir's manifest.json and checks
// its size and checksum. A checkpoint without a manifest verifies with
// Algorithm "" (nothing to compare). Every mismatching, truncated or
// missing file is named in the error, which wraps ErrCorrupt.
func VerifyManifest(dir string) (*Verification, error) {
	v := &Verification{Dir: dir}
	man, err := ReadManifest(dir)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	if man == nil {
		return v, nil
	}
	v.Algorithm = man.Algorithm
	rels := make([]string, 0, len(man.Files))
	for rel := range man.Files {
		rels = append(rels, rel)
	}
	sort.Strings(rels)
	errs := make([]error, len(rels))
	work := make(chan int)
	var wg sync.WaitGroup
	workers := min(len(rels), max(1, runtime.GOMAXPROCS(0)), 4)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				errs[i] = verifyFile(dir, rels[i], man.Files[rels[i]])
			}
		}()
	}
	for i := range rels {
		work <- i
	}
	close(work)
	wg.Wait()
	var bad []error
	for i, err := range errs {
		if err != nil {
			bad = append(bad, err)
			continue
		}
		v.Files++
		v.Bytes += man.Files[rels[i]].Size
	}
	if len(bad) > 0 {
		return v, fmt.Errorf("%w %s: %w", ErrCorrupt, dir, errors.Join(bad...))
	}
	return v, nil
}

func verifyFile(dir, rel string, e ManifestEntry) error {
	path := filepath.Join(dir, filepath.FromSlash(rel))
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s is missing (%s lists it)", path, ManifestFileName)
	}
	if err != nil {
		return err
	}
	if fi.Size() != e.Size {
		return fmt.Errorf("%s is %d bytes, %s recorded %d (truncated or replaced)", path, fi.Size(), ManifestFileName, e.Size)
	}
	n, sum, err := hashFile(path)
	if err != nil {
		return err
	}
	if n != e.Size {
		return fmt.Errorf("%s is %d bytes, %s recorded %d (truncated or replaced)", path, n, ManifestFileName, e.Size)
	}
	if got := formatSum(sum); got != e.Checksum {
		return fmt.Errorf("%s: %s checksum %s, %s recorded %s: the file is damaged", path, ChecksumAlgorithm, got, ManifestFileName, e.Checksum)
	}
	return nil
}

// NonFinite counts the NaN and infinite values of t and the flat index of
// the first (-1 when none); a block-quantized t is dequantized a chunk at
// a time (indexes count logical weights).
func NonFinite(t *tensor.Dense) (bad, first int) {
	first = -1
	note := func(i int) {
		bad++
		if first < 0 {
			first = i
		}
	}
	if kernels.IsQuant(t.Dtype()) {
		n := t.Shape().TotalSize() * kernels.BlockWeights(t.Dtype())
		buf := make([]float32, min(n, 1<<16))
		for off := 0; off < n; off += len(buf) {
			vals := buf[:min(len(buf), n-off)]
			kernels.Widen32(vals, t, off)
			for i, v := range vals {
				if math.Float32bits(v)&0x7f800000 == 0x7f800000 {
					note(off + i)
				}
			}
		}
		return bad, first
	}
	switch d := t.Data().(type) {
	case []kernels.BF16:
		for i, v := range d {
			if v&0x7f80 == 0x7f80 {
				note(i)
			}
		}
	case []kernels.F16:
		for i, v := range d {
			if v&0x7c00 == 0x7c00 {
				note(i)
			}
		}
	case []float32:
		for i, v := range d {
			if math.Float32bits(v)&0x7f800000 == 0x7f800000 {
				note(i)
			}
		}
	case []float64:
		for i, v := range d {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				note(i)
			}
		}
	}
	return bad, first
}

// NonFiniteError names a tensor holding NaN or infinite values.
type NonFiniteError struct {
	Tensor            string
	Bad, Total, First int // how many, of how many, the first's flat index
}

func (e *NonFiniteError) Error() string {
	return fmt.Sprintf("tensor %q has %d NaN or infinite values of %d (first at flat index %d)", e.Tensor, e.Bad, e.Total, e.First)
}

// CheckFiniteValues reports a NaN or infinite value in vals as a corrupt
// checkpoint naming the tensor (ErrCorrupt wrapping a *NonFiniteError).
func CheckFiniteValues(name string, vals []float32) error {
	for i, v := range vals {
		if math.Float32bits(v)&0x7f800000 == 0x7f800000 {
			bad := 0
			for _, w := range vals[i:] {
				if math.Float32bits(w)&0x7f800000 == 0x7f800000 {
					bad++
				}
			}
			return fmt.Errorf("%w: %w", ErrCorrupt, &NonFiniteError{name, bad, len(vals), i})
		}
	}
	return nil
}

// CheckFinite scans every weight under root (prefix as for nn.Parameters) for NaN
// and infinite values; the first such tensor is reported as a corrupt
// checkpoint (ErrCorrupt wrapping a *NonFiniteError). skipReadOnly leaves
// out weights used in place from a mapped checkpoint (a frozen base: not
// the checkpoint being checked).
func CheckFinite(root any, prefix string, skipReadOnly bool) error {
	ps, err := nn.Parameters(root, prefix)
	if err != nil {
		return err
	}
	for _, p := range ps {
		if skipReadOnly && kernels.IsReadOnly(p.T) {
			continue
		}
		if bad, first := NonFinite(p.T); bad > 0 {
			return fmt.Errorf("%w: %w", ErrCorrupt, &NonFiniteError{p.Name, bad, p.T.Shape().TotalSize(), first})
		}
	}
	return nil
}
