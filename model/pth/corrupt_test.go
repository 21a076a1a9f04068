package pth

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// corruption is one corrupted file derived from a valid fixture.
type corruption struct {
	name string
	data []byte
	// onRead: Open may succeed, but reading some tensor must fail
	// (corruption in a storage's bytes, caught by the CRC-32).
	onRead bool
	// want, when set, must appear in the error.
	want string
}

// zipDir locates the central directory records of b (no zip comment).
type cdRec struct {
	off        int // offset of the record in b
	name       string
	localOff   int
	dataOff    int // offset of the entry's data in b
	compSize   int
	uncompSize int
}

func centralDir(t testing.TB, b []byte) (eocd int, recs []cdRec) {
	t.Helper()
	eocd = len(b) - 22
	if binary.LittleEndian.Uint32(b[eocd:]) != 0x06054b50 {
		t.Fatalf("no EOCD at %d", eocd)
	}
	n := int(binary.LittleEndian.Uint16(b[eocd+10:]))
	off := int(binary.LittleEndian.Uint32(b[eocd+16:]))
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if binary.LittleEndian.Uint32(b[off:]) != 0x02014b50 {
			t.Fatalf("no central directory record at %d", off)
		}
		nl := int(binary.LittleEndian.Uint16(b[off+28:]))
		el := int(binary.LittleEndian.Uint16(b[off+30:]))
		cl := int(binary.LittleEndian.Uint16(b[off+32:]))
		r := cdRec{off: off, name: string(b[off+46 : off+46+nl]), localOff: int(binary.LittleEndian.Uint32(b[off+42:])),
			compSize: int(binary.LittleEndian.Uint32(b[off+20:])), uncompSize: int(binary.LittleEndian.Uint32(b[off+24:]))}
		do, err := zr.File[i].DataOffset()
		if err != nil {
			t.Fatal(err)
		}
		r.dataOff = int(do)
		recs = append(recs, r)
		off += 46 + nl + el + cl
	}
	return eocd, recs
}

func patched(b []byte, off int, val uint32, width int) []byte {
	c := append([]byte(nil), b...)
	switch width {
	case 2:
		binary.LittleEndian.PutUint16(c[off:], uint16(val))
	case 4:
		binary.LittleEndian.PutUint32(c[off:], val)
	}
	return c
}

func flipped(b []byte, off int) []byte {
	c := append([]byte(nil), b...)
	c[off] ^= 0xff
	return c
}

// rezip rebuilds the fixture's entries after edit (CRCs recomputed, so the
// damage reaches the pickle VM and the storage checks).
func rezip(t testing.TB, ents []zent, edit func(name string, data []byte) ([]byte, bool)) []byte {
	var out []zent
	for _, e := range ents {
		d, keep := edit(e.name, append([]byte(nil), e.data...))
		if keep {
			out = append(out, zent{name: e.name, data: d, deflate: e.deflate})
		}
	}
	return buildZip(t, out)
}

func corruptions(t testing.TB) []corruption {
	const fx = "testdata/views.pth"
	orig, err := os.ReadFile(fx)
	if err != nil {
		t.Fatal(err)
	}
	ents := readZip(t, fx)
	prefix := strings.TrimSuffix(ents[0].name, "data.pkl")
	var pkl []byte
	for _, e := range ents {
		if e.name == prefix+"data.pkl" {
			pkl = e.data
		}
	}
	eocd, recs := centralDir(t, orig)
	var cs []corruption
	add := func(name string, b []byte, want string) { cs = append(cs, corruption{name: name, data: b, want: want}) }

	// 1. Truncations of the file.
	for _, n := range []int{0, 1, 2, 3, 4, 30, len(orig) - 1, len(orig) - 2, len(orig) - 21, len(orig) - 22, len(orig) - 23} {
		add(fmt.Sprintf("truncate at %d", n), orig[:n], "")
	}
	for n := 64; n < len(orig)-23; n += len(orig) / 40 {
		add(fmt.Sprintf("truncate at %d", n), orig[:n], "")
	}
	// 2. Byte flips inside the stored data.pkl (the CRC-32 catches them).
	var pklRec, stRec cdRec
	for _, r := range recs {
		switch {
		case r.name == prefix+"data.pkl":
			pklRec = r
		case strings.HasPrefix(r.name, prefix+"data/") && r.uncompSize > 0 && stRec.name == "":
			stRec = r
		}
	}
	for i := 0; i < pklRec.compSize; i += max(1, pklRec.compSize/30) {
		add(fmt.Sprintf("flip data.pkl byte %d", i), flipped(orig, pklRec.dataOff+i), "")
	}
	// 3. Byte flips inside a storage: Open may succeed, reading must fail.
	for i := 0; i < stRec.compSize; i += max(1, stRec.compSize/8) {
		cs = append(cs, corruption{name: fmt.Sprintf("flip %s byte %d", stRec.name, i), data: flipped(orig, stRec.dataOff+i), onRead: true, want: "checksum"})
	}
	// 4. The pickle cut short (CRC recomputed).
	for n := 0; n < len(pkl)-1; n += max(1, len(pkl)/60) {
		b := rezip(t, ents, func(name string, d []byte) ([]byte, bool) {
			if name == prefix+"data.pkl" {
				return d[:n], true
			}
			return d, true
		})
		add(fmt.Sprintf("pickle truncated at %d", n), b, "")
	}
	// 5. Entries missing, resized, duplicated, misplaced.
	for _, e := range ents {
		e := e
		if e.name == prefix+"version" {
			continue
		}
		add("drop "+e.name, rezip(t, ents, func(name string, d []byte) ([]byte, bool) { return d, name != e.name }), "")
		if strings.HasPrefix(e.name, prefix+"data/") {
			for _, delta := range []int{-1, +1, +4, -len(e.data)} {
				if len(e.data)+delta < 0 || delta == 0 {
					continue
				}
				add(fmt.Sprintf("%s resized by %d", e.name, delta), rezip(t, ents, func(name string, d []byte) ([]byte, bool) {
					if name != e.name {
						return d, true
					}
					if delta < 0 {
						return d[:len(d)+delta], true
					}
					return append(d, make([]byte, delta)...), true
				}), "holds")
			}
		}
	}
	withExtra := func(extra ...zent) []byte { return buildZip(t, append(append([]zent(nil), ents...), extra...)) }
	add("two data.pkl", withExtra(zent{name: "other/data.pkl", data: pkl}), "two data.pkl")
	add("duplicate entry", withExtra(ents[1]), "twice")
	add("top-level data.pkl", buildZip(t, []zent{{name: "data.pkl", data: pkl}}), "data.pkl")
	add("bad version", rezip(t, ents, func(name string, d []byte) ([]byte, bool) {
		if name == prefix+"version" {
			return []byte("x"), true
		}
		return d, true
	}), "version")
	add("bad byteorder", withExtra(zent{name: prefix + "byteorder", data: []byte("middle")}), "byte order")
	add("empty file", nil, "")
	add("not a zip", []byte("this is not a checkpoint at all"), "not a zip")
	add("legacy pickle magic", append([]byte{0x80, 2, 0x8a, 0x0a}, orig[4:100]...), "legacy")
	add("only a folder", buildZip(t, []zent{{name: "archive/", data: nil}}), "data.pkl")
	add("pickle replaced by garbage", rezip(t, ents, func(name string, d []byte) ([]byte, bool) {
		if name == prefix+"data.pkl" {
			return bytes.Repeat([]byte{0xfe}, 40), true
		}
		return d, true
	}), "opcode")
	add("pickle empty", rezip(t, ents, func(name string, d []byte) ([]byte, bool) {
		if name == prefix+"data.pkl" {
			return nil, true
		}
		return d, true
	}), "end of pickle")
	add("pickle without STOP", rezip(t, ents, func(name string, d []byte) ([]byte, bool) {
		if name == prefix+"data.pkl" {
			return d[:len(d)-1], true
		}
		return d, true
	}), "end of pickle")

	// 6. The zip directory damaged.
	add("EOCD entry count 0", patched(patched(orig, eocd+8, 0, 2), eocd+10, 0, 2), "")
	// (A count of 0xffff is read as "unknown" by archive/zip, which then reads the records there are.)
	add("EOCD entry count 1000", patched(patched(orig, eocd+8, 1000, 2), eocd+10, 1000, 2), "")
	add("EOCD entry count +1", patched(patched(orig, eocd+8, uint32(len(recs)+1), 2), eocd+10, uint32(len(recs)+1), 2), "")
	add("EOCD directory size huge", patched(orig, eocd+12, 0x7fffffff, 4), "")
	add("EOCD directory offset +1", patched(orig, eocd+16, binary.LittleEndian.Uint32(orig[eocd+16:])+1, 4), "")
	add("EOCD directory offset huge", patched(orig, eocd+16, 0x7ffffff0, 4), "")
	add("EOCD signature", flipped(orig, eocd), "")
	for _, r := range recs {
		if r.name == prefix+"version" {
			continue
		}
		add("CD signature of "+r.name, flipped(orig, r.off), "")
		add("CD method 99 of "+r.name, patched(orig, r.off+10, 99, 2), "compression method")
		add("CD size huge of "+r.name, patched(patched(orig, r.off+20, 0x7fffffff, 4), r.off+24, 0x7fffffff, 4), "")
		add("CD uncompressed size +8 of "+r.name, patched(orig, r.off+24, uint32(r.uncompSize+8), 4), "")
		add("CD compressed size +8 of "+r.name, patched(orig, r.off+20, uint32(r.compSize+8), 4), "")
		add("CD local offset huge of "+r.name, patched(orig, r.off+42, 0x7ffffff0, 4), "")
		add("local header signature of "+r.name, flipped(orig, r.localOff), "")
		add("CD crc of "+r.name, patched(orig, r.off+16, 0x12345678, 4), "")
	}
	// A deflated archive claiming an impossible size for its data.pkl.
	defl, err := os.ReadFile("testdata/deflated.pth")
	if err != nil {
		t.Fatal(err)
	}
	_, drecs := centralDir(t, defl)
	for _, r := range drecs {
		if strings.HasSuffix(r.name, "/data.pkl") {
			add("deflated data.pkl declares 2 GB", patched(defl, r.off+24, 0x7fffffff, 4), "impossible")
			add("deflated data.pkl declares 600 MB", patched(defl, r.off+24, 600<<20, 4), "")
		}
	}

	// 7. Declared sizes and views out of range (hand-built pickles).
	st := map[string][]byte{"0": f32Bytes(0, 1, 2, 3, 4, 5)}
	views := []struct {
		name, want    string
		numel, offset int64
		shape, stride []int64
	}{
		{"numel 2^60", "declares", 1 << 60, 0, []int64{2}, []int64{1}},
		{"numel 2^62 overflows bytes", "overflows", 1 << 62, 0, []int64{2}, []int64{1}},
		{"numel negative", "element count", -1, 0, []int64{2}, []int64{1}},
		{"numel one short", "declares", 5, 0, []int64{2}, []int64{1}},
		{"view past end by one", "past the end", 6, 5, []int64{2}, []int64{1}},
		{"shape past end", "past the end", 6, 0, []int64{7}, []int64{1}},
		{"stride past end", "past the end", 6, 0, []int64{2, 3}, []int64{3, 2}},
		{"huge shape", "past the end", 6, 0, []int64{1 << 40}, []int64{1}},
		{"shape overflow", "overflows", 6, 0, []int64{1 << 40, 1 << 40}, []int64{1, 1}},
		{"stride overflow", "overflows", 6, 0, []int64{3}, []int64{1 << 62}},
		{"negative offset", "negative storage offset", 6, -1, []int64{2}, []int64{1}},
		{"offset past end", "past the end", 6, 6, []int64{1}, []int64{1}},
		{"empty view past end", "past the end", 6, 9, []int64{0}, []int64{1}},
		{"negative size", "negative size", 6, 0, []int64{-2}, []int64{1}},
		{"negative stride", "negative stride", 6, 2, []int64{2}, []int64{-1}},
		{"rank mismatch", "differ in length", 6, 0, []int64{2, 3}, []int64{1}},
		{"too many dims", "dimensions", 6, 0, make([]int64, 65), make([]int64, 65)},
		{"expanded too far", "expanded", 6, 0, []int64{1 << 23}, []int64{0}},
	}
	for _, v := range views {
		pkl := newPickle().dict(func(p *pk) {
			p.str("w").tensorV2("FloatStorage", "0", v.numel, v.offset, v.shape, v.stride)
		}).stop()
		add("view: "+v.name, archive(t, pkl, st), v.want)
	}
	return cs
}

// TestCorruptedFiles derives 100+ damaged files from a valid fixture; each
// gives an error naming the file and a reason, fast and with bounded
// memory, never a panic or a wrong success.
func TestCorruptedFiles(t *testing.T) {
	cs := corruptions(t)
	if len(cs) < 100 {
		t.Fatalf("only %d corruptions", len(cs))
	}
	dir := t.TempDir()
	start := time.Now()
	for i, c := range cs {
		path := writeTemp(t, dir, fmt.Sprintf("bad%03d.pth", i), c.data)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		err := openAndReadAll(path)
		runtime.ReadMemStats(&after)
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
			t.Errorf("%s: allocated %d bytes", c.name, alloc)
		}
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		msg := err.Error()
		if testing.Verbose() {
			t.Logf("%-40s %s", c.name, strings.TrimPrefix(msg, "pth "+path+": "))
		}
		if !strings.HasPrefix(msg, "pth "+path+": ") || len(msg) < len(path)+15 {
			t.Errorf("%s: error %q does not name the file and a reason", c.name, msg)
		}
		if c.want != "" && !strings.Contains(msg, c.want) {
			t.Errorf("%s: error %q, want it to mention %q", c.name, msg, c.want)
		}
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("%d corrupted files took %v", len(cs), d)
	}
	t.Logf("%d corrupted files, all refused, in %v", len(cs), time.Since(start))
}

// openAndReadAll opens path and reads every tensor, returning the first error.
func openAndReadAll(path string) error {
	f, err := Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, n := range f.Names() {
		if _, _, err := f.Raw(n); err != nil {
			return err
		}
	}
	return nil
}

// TestRandomPickleDamage: seeded random edits of a fixture's data.pkl (CRC
// recomputed) never panic; an error names the file, a success reads all
// its tensors or refuses them with the file's name.
func TestRandomPickleDamage(t *testing.T) {
	ents := readZip(t, "testdata/nested.pth")
	rng := rand.New(rand.NewSource(29))
	dir := t.TempDir()
	refused := 0
	const n = 400
	for i := 0; i < n; i++ {
		b := rezip(t, ents, func(name string, d []byte) ([]byte, bool) {
			if !strings.HasSuffix(name, "/data.pkl") {
				return d, true
			}
			for k := 0; k < 1+rng.Intn(3); k++ {
				j := rng.Intn(len(d))
				switch rng.Intn(4) {
				case 0:
					d[j] = byte(rng.Intn(256))
				case 1:
					d[j] ^= 1 << rng.Intn(8)
				case 2:
					d = append(d[:j], d[j+1:]...)
				case 3:
					d = append(d[:j], append([]byte{byte(rng.Intn(256))}, d[j:]...)...)
				}
			}
			return d, true
		})
		path := writeTemp(t, dir, fmt.Sprintf("r%03d.pth", i), b)
		if err := openAndReadAll(path); err != nil {
			refused++
			if !strings.HasPrefix(err.Error(), "pth "+path+": ") {
				t.Errorf("case %d: error %q does not name the file", i, err)
			}
		}
	}
	t.Logf("%d of %d randomly damaged pickles refused (the rest are still valid state dicts)", refused, n)
	_ = filepath.Join
}
