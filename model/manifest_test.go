package model

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/model/ckpt"
)

// Issue 31, data safety point 1: manifest.json records the CRC-32C of every
// file; VerifyManifest (and LoadOptions.Verify, magma --verify) names a
// damaged file; Verify also names a tensor holding NaN or infinite values.

// flipBytes XORs n bytes of path from its middle on.
func flipBytes(t *testing.T, path string, n int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := len(data) / 2; i < len(data)/2+n; i++ {
		data[i] ^= 0xa5
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// putNaN stores a NaN (in the tensor's dtype) in element 1 of tensor name
// of a checkpoint directory, in place.
func putNaN(t *testing.T, dir, name string) {
	t.Helper()
	ck, err := ckpt.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ti, path, err := ck.Info(name)
	ck.Close()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var hl [8]byte
	if _, err := f.ReadAt(hl[:], 0); err != nil {
		t.Fatal(err)
	}
	off := 8 + int64(binary.LittleEndian.Uint64(hl[:])) + ti.Begin
	var b []byte
	switch ti.DType {
	case ckpt.DTypeF32:
		b = binary.LittleEndian.AppendUint32(nil, math.Float32bits(float32(math.NaN())))
	case ckpt.DTypeBF16, ckpt.DTypeF16:
		b = binary.LittleEndian.AppendUint16(nil, 0x7e00|0x7fc0)
	default:
		t.Fatalf("%s is %s", name, ti.DType)
	}
	if _, err := f.WriteAt(b, off+int64(len(b))); err != nil {
		t.Fatal(err)
	}
}

func TestManifestVerify(t *testing.T) {
	const shard = "model-00002-of-00004.safetensors"
	cases := []struct {
		name   string
		damage func(t *testing.T, dir string)
		want   []string // in the error ("" entries: none expected)
	}{
		{"intact", func(*testing.T, string) {}, nil},
		{"64 bytes flipped in a shard", func(t *testing.T, dir string) { flipBytes(t, filepath.Join(dir, shard), 64) },
			[]string{"corrupt checkpoint", filepath.Join("DIR", shard), ckpt.ChecksumAlgorithm + " checksum", "damaged"}},
		{"config changed", func(t *testing.T, dir string) { flipBytes(t, filepath.Join(dir, ConfigFileName), 1) },
			[]string{filepath.Join("DIR", ConfigFileName), "checksum"}},
		{"shard truncated", func(t *testing.T, dir string) { os.Truncate(filepath.Join(dir, shard), 100) },
			[]string{filepath.Join("DIR", shard) + " is 100 bytes", "truncated"}},
		{"shard missing", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, shard)) },
			[]string{filepath.Join("DIR", shard) + " is missing"}},
		{"manifest damaged", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, ckpt.ManifestFileName), []byte(`{"format": 1, "algorithm": "crc32c", "files": {`), 0o644)
		}, []string{"corrupt checkpoint", filepath.Join("DIR", ckpt.ManifestFileName), "invalid JSON"}},
		{"manifest emptied", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, ckpt.ManifestFileName), []byte(`{"format": 1, "algorithm": "crc32c"}`), 0o644)
		}, []string{"corrupt checkpoint", "lists no files"}},
		{"file name escaping the folder", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, ckpt.ManifestFileName), []byte(`{"format": 1, "algorithm": "crc32c", "files": {"../x": {"size": 1, "checksum": "00000000"}}}`), 0o644)
		}, []string{"invalid file name \"../x\""}},
		{"unknown algorithm", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, ckpt.ManifestFileName), []byte(`{"format": 1, "algorithm": "md4", "files": {}}`), 0o644)
		}, []string{"unsupported checksum algorithm \"md4\""}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := copyDir(t, mixedDir)
			man, err := ckpt.WriteManifest(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(man.Files) != 7 || man.Algorithm != ckpt.ChecksumAlgorithm {
				t.Fatalf("manifest %+v, want the 7 files of %s", man, mixedDir)
			}
			c.damage(t, dir)
			for _, verify := range []func() error{
				func() error { _, err := ckpt.VerifyManifest(dir); return err },
				func() error {
					ld, err := LoadWith(dir, LoadOptions{Verify: true})
					if err == nil {
						if ld.Verified == nil || ld.Verified.Files != 7 {
							t.Errorf("Verified %+v", ld.Verified)
						}
						ld.Close()
					}
					return err
				},
			} {
				err := verify()
				if c.want == nil {
					if err != nil {
						t.Fatal(err)
					}
					continue
				}
				if err == nil {
					t.Fatal("damage not found")
				}
				msg := strings.ReplaceAll(err.Error(), dir, "DIR")
				for _, w := range c.want {
					if !strings.Contains(msg, w) {
						t.Errorf("%q missing from %q", w, msg)
					}
				}
			}
		})
	}
}

// A checkpoint without manifest.json (written before checksums) verifies
// with a note; Verify still finds a NaN weight that a plain load accepts.
func TestVerifyFindsNonFiniteWeight(t *testing.T) {
	dir := copyDir(t, mixedDir)
	v, err := ckpt.VerifyManifest(dir)
	if err != nil || v.Algorithm != "" || !strings.Contains(v.String(), "has no "+ckpt.ManifestFileName) {
		t.Fatalf("%v %v", v, err)
	}
	const name = "language_model.model.layers.0.mlp.down_proj.weight"
	putNaN(t, dir, name)
	ld, err := LoadWith(dir, LoadOptions{})
	if err != nil {
		t.Fatalf("plain load: %v", err)
	}
	ld.Close()
	_, err = LoadWith(dir, LoadOptions{Verify: true})
	if !errors.Is(err, ckpt.ErrCorrupt) || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "NaN") {
		t.Fatalf("--verify with a NaN in %s: %v", name, err)
	}
	// The weights every answer depends on are checked without Verify too,
	// reported as corrupt.
	putNaN(t, dir, "language_model.lm_head.weight")
	if _, err = LoadWith(dir, LoadOptions{}); !errors.Is(err, ckpt.ErrCorrupt) || !strings.Contains(err.Error(), "lm_head") {
		t.Fatalf("NaN in lm_head: %v", err)
	}
}

// Files are summed while written; linked shards take the checksum their
// source's manifest records (the base is not read again at every save).
func TestManifestSums(t *testing.T) {
	dir := t.TempDir()
	sums := ckpt.NewSums()
	path := filepath.Join(dir, "x.safetensors")
	if err := ckpt.WriteSafetensors(path, []ckpt.WriteItem{{Name: "a", Shape: []int{3}, Data: []float32{1, 2, 3}}}, ckpt.WriteOptions{Sums: sums}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if got, ok := sums.Lookup(path, int64(len(data))); !ok || got != crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli)) {
		t.Fatalf("recorded %08x %v, file %08x", got, ok, crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli)))
	}

	for _, withManifest := range []bool{true, false} {
		src := copyDir(t, mixedDir)
		const fake = "0badc0de"
		if withManifest {
			man, err := ckpt.WriteManifest(src, nil)
			if err != nil {
				t.Fatal(err)
			}
			// A recorded checksum that differs from the file's shows
			// where the linked shard's checksum came from.
			e := man.Files["model-00003-of-00004.safetensors"]
			e.Checksum = fake
			man.Files["model-00003-of-00004.safetensors"] = e
			writeJSON(t, filepath.Join(src, ckpt.ManifestFileName), man)
		}
		ld, err := LoadWith(src, LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), "ckpt")
		sums := ckpt.NewSums()
		res, err := ld.Model.SaveLinking(out, ld.Preprocessor, ckpt.SaveOptions{DType: kernels.DtypeName(kernels.BFloat16), Sums: sums})
		ld.Close()
		if err != nil || res == nil {
			t.Fatalf("SaveLinking: %v %v", res, err)
		}
		man, err := ckpt.WriteManifest(out, sums)
		if err != nil {
			t.Fatal(err)
		}
		got := man.Files["model-00003-of-00004.safetensors"].Checksum
		_, verr := ckpt.VerifyManifest(out)
		if withManifest {
			if got != fake {
				t.Errorf("linked shard's checksum %s, want the source manifest's %s", got, fake)
			}
			if verr == nil || !strings.Contains(verr.Error(), "model-00003-of-00004.safetensors") {
				t.Errorf("verify: %v", verr)
			}
		} else if verr != nil {
			t.Errorf("linked without a source manifest: %v", verr)
		}
	}
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	js, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, js, 0o644); err != nil {
		t.Fatal(err)
	}
}
