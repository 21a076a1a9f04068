package gguf

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// raw builds GGUF bytes field by field, so that tests can write files the
// Writer refuses to.
type raw struct{ bytes.Buffer }

func (r *raw) u32(v uint32) *raw { binary.Write(&r.Buffer, binary.LittleEndian, v); return r }
func (r *raw) u64(v uint64) *raw { binary.Write(&r.Buffer, binary.LittleEndian, v); return r }
func (r *raw) u8(v uint8) *raw   { r.WriteByte(v); return r }
func (r *raw) str(s string) *raw { r.u64(uint64(len(s))); r.WriteString(s); return r }
func (r *raw) pad(a int) *raw {
	for r.Len()%a != 0 {
		r.WriteByte(0)
	}
	return r
}

// rawTensor is one tensor info.
type rawTensor struct {
	name string
	dims []uint64
	typ  uint32
	off  uint64
}

// build returns a file: header with the given counts (-1: the real ones),
// kv bytes, tensor infos, padding to 32 and dataLen zero bytes.
func build(version uint32, nt, nkv int64, kvs func(*raw), tensors []rawTensor, dataLen int) []byte {
	r := &raw{}
	r.WriteString(Magic)
	r.u32(version)
	if nt < 0 {
		nt = int64(len(tensors))
	}
	r.u64(uint64(nt))
	k := &raw{}
	n := 0
	if kvs != nil {
		kvs(k)
		n = -1
	}
	_ = n
	r.u64(uint64(nkv))
	r.Write(k.Bytes())
	for _, t := range tensors {
		r.str(t.name)
		r.u32(uint32(len(t.dims)))
		for _, d := range t.dims {
			r.u64(d)
		}
		r.u32(t.typ)
		r.u64(t.off)
	}
	r.pad(32)
	r.Write(make([]byte, dataLen))
	return r.Bytes()
}

func oneKV(key string, typ uint32, val func(*raw)) func(*raw) {
	return func(r *raw) { r.str(key); r.u32(typ); val(r) }
}

func TestCorruptFiles(t *testing.T) {
	f32 := func(name string, off uint64, dims ...uint64) rawTensor { return rawTensor{name, dims, 0, off} }
	good := build(3, -1, 1, oneKV("general.architecture", 8, func(r *raw) { r.str("llama") }), []rawTensor{f32("a", 0, 4), f32("b", 32, 2, 2)}, 64)
	if _, err := Parse("good.gguf", good); err != nil {
		t.Fatalf("the valid base file: %v", err)
	}
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "too short"},
		{"bad magic", append([]byte("GGUX"), good[4:]...), "not a GGUF file"},
		{"version 2", build(2, -1, 0, nil, nil, 0), "version 2, only version 3"},
		{"truncated header", good[:20], "too short"},
		{"huge tensor count", build(3, 1<<40, 0, nil, nil, 0), "tensor count 1099511627776 cannot fit"},
		{"huge metadata count", build(3, 0, 1<<50, nil, nil, 0), "metadata count"},
		{"metadata count beyond pairs", build(3, 0, 2, oneKV("a", 4, func(r *raw) { r.u32(1) }), nil, 16), "metadata pair 1"},
		{"huge key length", build(3, 0, 1, func(r *raw) { r.u64(1 << 60) }, nil, 16), "key of length 1152921504606846976 needs"},
		{"empty key", build(3, 0, 1, oneKV("", 4, func(r *raw) { r.u32(1) }), nil, 0), "empty metadata key"},
		{"binary key", build(3, 0, 1, oneKV("a\x00b", 4, func(r *raw) { r.u32(1) }), nil, 0), "not printable ASCII"},
		{"duplicate key", build(3, 0, 2, func(r *raw) {
			oneKV("a", 4, func(r *raw) { r.u32(1) })(r)
			oneKV("a", 4, func(r *raw) { r.u32(2) })(r)
		}, nil, 0), `metadata "a": key appears twice`},
		{"unknown value type", build(3, 0, 1, oneKV("k", 13, func(r *raw) { r.u32(1) }), nil, 16), `metadata "k": unknown value type 13`},
		{"bad bool", build(3, 0, 1, oneKV("k", 7, func(r *raw) { r.u8(2) }), nil, 16), "bool value 2"},
		{"bad bool in array", build(3, 0, 1, oneKV("k", 9, func(r *raw) { r.u32(7).u64(2).u8(1).u8(5) }), nil, 16), "array element 1: bool value 5"},
		{"huge string", build(3, 0, 1, oneKV("k", 8, func(r *raw) { r.u64(1 << 62) }), nil, 16), `metadata "k": string of length`},
		{"huge array", build(3, 0, 1, oneKV("k", 9, func(r *raw) { r.u32(4).u64(1 << 61) }), nil, 16), "array of 2305843009213693952 uint32 elements cannot fit"},
		{"array of unknown type", build(3, 0, 1, oneKV("k", 9, func(r *raw) { r.u32(77).u64(1) }), nil, 16), "unknown array element type 77"},
		{"array string truncated", build(3, 0, 1, oneKV("k", 9, func(r *raw) { r.u32(8).u64(2).str("ab").u64(1000) }), nil, 0), "array element 1 of length 1000"},
		{"nesting too deep", build(3, 0, 1, oneKV("k", 9, func(r *raw) {
			for range 9 {
				r.u32(9).u64(1)
			}
			r.u32(4).u64(0)
		}), nil, 0), "nested deeper than 8"},
		{"alignment not uint32", build(3, 0, 1, oneKV(KeyAlignment, 10, func(r *raw) { r.u64(32) }), nil, 0), "must be a uint32"},
		{"alignment zero", build(3, 0, 1, oneKV(KeyAlignment, 4, func(r *raw) { r.u32(0) }), nil, 0), "alignment 0 is not a power of two"},
		{"alignment 24", build(3, 0, 1, oneKV(KeyAlignment, 4, func(r *raw) { r.u32(24) }), nil, 0), "alignment 24 is not a power of two"},
		{"zero dims", build(3, -1, 0, nil, []rawTensor{{"w", nil, 0, 0}}, 32), `tensor "w": 0 dimensions`},
		{"five dims", build(3, -1, 0, nil, []rawTensor{f32("w", 0, 1, 1, 1, 1, 1)}, 32), `tensor "w": 5 dimensions`},
		{"unknown type", build(3, -1, 0, nil, []rawTensor{{"w", []uint64{4}, 5, 0}}, 32), `tensor "w": unknown or unsupported ggml type id 5`},
		{"row not block multiple", build(3, -1, 0, nil, []rawTensor{{"w", []uint64{16, 2}, 8, 0}}, 96), `tensor "w": Q8_0 [16 2]: row length ne[0]=16 is not a multiple`},
		{"dims overflow", build(3, -1, 0, nil, []rawTensor{f32("w", 0, 1<<40, 1<<40)}, 32), "overflows"},
		{"dim too large", build(3, -1, 0, nil, []rawTensor{f32("w", 0, 1<<63)}, 32), "too large"},
		{"misaligned offset", build(3, -1, 0, nil, []rawTensor{f32("w", 4, 1)}, 64), `tensor "w": offset 4 is not a multiple of the alignment 32`},
		{"offset past end", build(3, -1, 0, nil, []rawTensor{f32("w", 64, 4)}, 64), `tensor "w": data [64, +16) reaches past the end`},
		{"data truncated", build(3, -1, 0, nil, []rawTensor{f32("w", 0, 100)}, 64), `tensor "w": data [0, +400) reaches past the end`},
		{"huge offset", build(3, -1, 0, nil, []rawTensor{f32("w", 1<<63, 1)}, 64), "reaches past the end"},
		{"overlap", build(3, -1, 0, nil, []rawTensor{f32("a", 0, 16), f32("b", 32, 4)}, 96), `tensors "a" and "b" overlap`},
		{"duplicate tensor", build(3, -1, 0, nil, []rawTensor{f32("a", 0, 4), f32("a", 32, 4)}, 64), `tensor "a": tensor name appears twice`},
		{"empty tensor name", build(3, -1, 0, nil, []rawTensor{f32("", 0, 4)}, 64), "empty tensor name"},
		{"tensor count beyond infos", build(3, 2, 0, nil, []rawTensor{f32("a", 0, 4)}, 64), "tensor info 1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g, err := Parse("bad.gguf", c.data)
			if err == nil {
				t.Fatalf("accepted (%d tensors)", len(g.Tensors))
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "bad.gguf") {
				t.Fatalf("error %q does not name the file and %q", err, c.want)
			}
		})
	}
	// Open reports the same through the file system
	path := filepath.Join(t.TempDir(), "trunc.gguf")
	os.WriteFile(path, good[:len(good)-24], 0o644)
	if _, err := Open(path); err == nil || !strings.Contains(err.Error(), `tensor "b"`) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Open of a truncated file: %v", err)
	}
	os.WriteFile(path, nil, 0o644)
	if _, err := Open(path); err == nil || !strings.Contains(err.Error(), "too short") {
		t.Fatalf("Open of an empty file: %v", err)
	}
}

// FuzzParse: no input makes Parse panic, and every tensor of an accepted
// file lies inside it.
func FuzzParse(f *testing.F) {
	f.Add(build(3, -1, 1, oneKV("general.architecture", 8, func(r *raw) { r.str("llama") }), []rawTensor{{"a", []uint64{4}, 0, 0}, {"b", []uint64{32, 1}, 8, 32}}, 96))
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for _, kv := range allValues() {
		w.AddKV(kv.Key, kv.Value)
	}
	w.AddTensor("q", TypeQ4_K, []int{1, 256})
	w.AddTensor("h", TypeBF16, []int{3})
	w.WriteTensor("q", make([]byte, 144))
	w.WriteTensor("h", make([]byte, 6))
	w.Close()
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := Parse("fuzz.gguf", data)
		if err != nil {
			return
		}
		for _, ti := range g.Tensors {
			b, _, err := g.TensorBytes(ti.Name)
			if err != nil || int64(len(b)) != ti.Size {
				t.Fatalf("tensor %q: %d bytes, want %d (%v)", ti.Name, len(b), ti.Size, err)
			}
			if ti.Type == TypeF32 || ti.Type == TypeF16 || ti.Type == TypeBF16 {
				if _, _, err := g.Tensor(ti.Name); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
}
