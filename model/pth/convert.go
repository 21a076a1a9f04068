package pth

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// safetensorsEntry is one tensor of a safetensors header.
type safetensorsEntry struct {
	DType       string  `json:"dtype"`
	Shape       []int   `json:"shape"`
	DataOffsets []int64 `json:"data_offsets"`
}

// ConvertToSafetensors writes every tensor of the torch.save file in to the
// safetensors file out, under the same names, shapes and dtypes (F32, F64,
// BF16, F16, I64, I32, I16, I8, U8, BOOL), in sorted order; out is written
// to a temporary name and renamed, so a failure leaves no partial file.
// Only one tensor is held in memory at a time. It returns the number of
// tensors written.
func ConvertToSafetensors(in, out string) (int, error) {
	f, err := Open(in)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return f.WriteSafetensors(out)
}

// WriteSafetensors writes p's tensors to the safetensors file out (see
// ConvertToSafetensors).
func (p *File) WriteSafetensors(out string) (int, error) {
	names := p.sortedNames()
	header := make(map[string]any, len(names)+1)
	header["__metadata__"] = map[string]string{"format": "pt"}
	var off int64
	for _, n := range names {
		if err := checkSafetensorsName(n); err != nil {
			return 0, fmt.Errorf("pth %s: tensor %q: %w", p.path, n, err)
		}
		t := p.tensors[n]
		switch t.dt.name {
		case "F32", "F64", "BF16", "F16", "I64", "I32", "I16", "I8", "U8", "BOOL":
		default:
			return 0, fmt.Errorf("pth %s: tensor %q: dtype %s cannot be written to safetensors", p.path, n, t.dt.name)
		}
		size := t.numel() * int64(t.dt.size)
		header[n] = safetensorsEntry{DType: t.dt.name, Shape: ints(t.shape), DataOffsets: []int64{off, off + size}}
		off += size
	}
	hdr, err := json.Marshal(header)
	if err != nil {
		return 0, fmt.Errorf("safetensors %s: encoding header: %w", out, err)
	}
	for len(hdr)%8 != 0 {
		hdr = append(hdr, ' ')
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".tmp-"+filepath.Base(out)+"-*")
	if err != nil {
		return 0, fmt.Errorf("safetensors %s: %w", out, err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o644); err != nil {
		return 0, fmt.Errorf("safetensors %s: %w", out, err)
	}
	w := bufio.NewWriterSize(tmp, 1<<20)
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(hdr)))
	w.Write(lenBuf[:])
	w.Write(hdr)
	for _, n := range names {
		b, _, err := p.Raw(n)
		if err != nil {
			return 0, err
		}
		if _, err := w.Write(b); err != nil {
			return 0, fmt.Errorf("safetensors %s: writing: %w", out, err)
		}
	}
	if err := w.Flush(); err != nil {
		return 0, fmt.Errorf("safetensors %s: writing: %w", out, err)
	}
	if err := tmp.Close(); err != nil {
		return 0, fmt.Errorf("safetensors %s: writing: %w", out, err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return 0, fmt.Errorf("safetensors %s: %w", out, err)
	}
	ok = true
	return len(names), nil
}

// checkSafetensorsName refuses names safetensors readers cannot take.
func checkSafetensorsName(n string) error {
	switch {
	case n == "":
		return fmt.Errorf("empty tensor name")
	case n == "__metadata__":
		return fmt.Errorf("name is reserved in safetensors")
	case !utf8.ValidString(n):
		return fmt.Errorf("name is not valid UTF-8")
	case strings.ContainsRune(n, 0):
		return fmt.Errorf("name contains a NUL byte")
	}
	return nil
}
