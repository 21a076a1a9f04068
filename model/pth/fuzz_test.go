package pth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fuzzRead opens b and reads every tensor; it must never panic, and an
// error must name the file.
func fuzzRead(t *testing.T, b []byte) {
	f, err := openBytes(b, "fuzz.pth")
	if err != nil {
		if !strings.HasPrefix(err.Error(), "pth fuzz.pth: ") {
			t.Fatalf("error %q does not name the file", err)
		}
		return
	}
	for _, n := range f.Names() {
		info, ok := f.Info(n)
		if !ok {
			t.Fatalf("listed tensor %q has no Info", n)
		}
		raw, got, err := f.Raw(n)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "pth fuzz.pth: ") {
				t.Fatalf("error %q does not name the file", err)
			}
			continue
		}
		numel := 1
		for _, d := range info.Shape {
			numel *= d
		}
		if got.DType != info.DType || len(raw) != numel*dtypeSize(info.DType) {
			t.Fatalf("%s: %d bytes for %s %v", n, len(raw), info.DType, info.Shape)
		}
		if _, err := f.Tensor(n); err != nil {
			t.Fatal(err)
		}
		if _, _, err := f.Float32(n); err != nil {
			t.Fatal(err)
		}
	}
}

func dtypeSize(name string) int {
	for _, dt := range storageTypes {
		if dt.name == name {
			return dt.size
		}
	}
	return -1
}

func fixtureSeeds(f *testing.F) [][]byte {
	paths, _ := filepath.Glob("testdata/*.pth")
	var out [][]byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	if len(out) == 0 {
		f.Fatal("no fixtures")
	}
	return out
}

// FuzzOpen fuzzes whole files, seeded with the fixtures (the seeds run in
// make test; `go test -fuzz FuzzOpen ./model/pth` explores).
func FuzzOpen(f *testing.F) {
	for _, b := range fixtureSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(fuzzRead)
}

// FuzzPickle fuzzes data.pkl inside an otherwise valid archive (the zip's
// CRC-32 would stop most of FuzzOpen's mutations before the pickle VM),
// seeded with the fixtures' pickles and their storages.
func FuzzPickle(f *testing.F) {
	type base struct {
		prefix string
		ents   []zent
	}
	var bases []base
	paths, _ := filepath.Glob("testdata/*.pth")
	for _, p := range paths {
		if strings.Contains(p, "legacy") {
			continue
		}
		ents := readZip(f, p)
		for _, e := range ents {
			if strings.HasSuffix(e.name, "/data.pkl") {
				bases = append(bases, base{prefix: strings.TrimSuffix(e.name, "data.pkl"), ents: ents})
				f.Add(uint8(len(bases)-1), e.data)
			}
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, pkl []byte) {
		b := bases[int(which)%len(bases)]
		var ents []zent
		for _, e := range b.ents {
			if e.name == b.prefix+"data.pkl" {
				e.data = pkl
			}
			ents = append(ents, e)
		}
		fuzzRead(t, buildZip(t, ents))
	})
}
