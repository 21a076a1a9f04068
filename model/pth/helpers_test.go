package pth

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"io"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// zent is one entry of a hand-built zip.
type zent struct {
	name    string
	data    []byte
	deflate bool
}

// buildZip writes entries as a zip (stored unless deflate), CRCs computed.
func buildZip(t testing.TB, ents []zent) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range ents {
		m := zip.Store
		if e.deflate {
			m = zip.Deflate
		}
		w, err := zw.CreateHeader(&zip.FileHeader{Name: e.name, Method: m})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// readZip returns a fixture's entries in order.
func readZip(t testing.TB, path string) []zent {
	t.Helper()
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	var out []zent
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, zent{name: f.Name, data: b, deflate: f.Method == zip.Deflate})
	}
	return out
}

func writeTemp(t testing.TB, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// pk builds pickles by hand (protocol 2 opcodes unless said otherwise).
type pk struct{ b []byte }

func newPickle() *pk { return &pk{b: []byte{0x80, 2}} }

func (p *pk) op(b ...byte) *pk { p.b = append(p.b, b...); return p }
func (p *pk) mark() *pk        { return p.op('(') }
func (p *pk) tuple() *pk       { return p.op('t') }
func (p *pk) stop() []byte     { p.op('.'); return p.b }

func (p *pk) global(mod, name string) *pk {
	p.op('c')
	p.b = append(p.b, mod+"\n"+name+"\n"...)
	return p
}

func (p *pk) str(s string) *pk {
	p.op('X')
	p.b = binary.LittleEndian.AppendUint32(p.b, uint32(len(s)))
	p.b = append(p.b, s...)
	return p
}

func (p *pk) int(i int64) *pk {
	if i >= math.MinInt32 && i <= math.MaxInt32 {
		p.op('J')
		p.b = binary.LittleEndian.AppendUint32(p.b, uint32(int32(i)))
		return p
	}
	p.op(0x8a, 8)
	p.b = binary.LittleEndian.AppendUint64(p.b, uint64(i))
	return p
}

func (p *pk) ints(xs ...int64) *pk {
	p.mark()
	for _, x := range xs {
		p.int(x)
	}
	return p.tuple()
}

// persid pushes the persistent id of a storage.
func (p *pk) persid(storageType, key string, numel int64) *pk {
	p.mark().str("storage").global("torch", storageType).str(key).str("cpu").int(numel).tuple()
	return p.op('Q')
}

// tensorV2 pushes _rebuild_tensor_v2(storage, offset, shape, stride, False, OrderedDict()).
func (p *pk) tensorV2(storageType, key string, numel, offset int64, shape, stride []int64) *pk {
	p.global("torch._utils", "_rebuild_tensor_v2").mark()
	p.persid(storageType, key, numel).int(offset).ints(shape...).ints(stride...)
	p.op(0x89).global("collections", "OrderedDict").op(')', 'R')
	return p.tuple().op('R')
}

// dict wraps the items pushed by fn (key, value pairs) in a dict.
func (p *pk) dict(fn func(p *pk)) *pk {
	p.op('}').mark()
	fn(p)
	return p.op('u')
}

// f32Bytes is the little-endian bytes of vs.
func f32Bytes(vs ...float32) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b
}

// archive is a torch.save-like zip of a pickle and its storages.
func archive(t testing.TB, pkl []byte, storages map[string][]byte) []byte {
	t.Helper()
	ents := []zent{{name: "archive/data.pkl", data: pkl}}
	for _, k := range sortedKeys(storages) {
		ents = append(ents, zent{name: "archive/data/" + k, data: storages[k]})
	}
	ents = append(ents, zent{name: "archive/version", data: []byte("3\n")})
	return buildZip(t, ents)
}

func sortedKeys(m map[string][]byte) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	for i := range ks {
		for j := i + 1; j < len(ks); j++ {
			if ks[j] < ks[i] {
				ks[i], ks[j] = ks[j], ks[i]
			}
		}
	}
	return ks
}

// openBytes opens b as a .pth named name.
func openBytes(b []byte, name string) (*File, error) {
	return OpenReader(bytes.NewReader(b), int64(len(b)), name)
}
