package model

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"gorgonia.org/tensor"

	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/model/ckpt"
	"github.com/magma-go/magma/nn"
)

// model_mixed is the parity checkpoint re-sharded by
// scripts/reference/write_shards.py (Python standard library, its own bf16
// rounding): four shards in the published layout, BF16, F32, BF16, F32.
var mixedDir = filepath.Join(parityDir, "model_mixed")

// reference returns the parity checkpoint's float32 values by name.
func reference(t *testing.T) map[string][]float32 {
	t.Helper()
	ck, err := ckpt.Open(parityDir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	out := map[string][]float32{}
	for _, n := range ck.Names() {
		d, _, err := ck.Tensor(n)
		if err != nil {
			t.Fatal(err)
		}
		out[n] = d
	}
	return out
}

// mixedDtypes reads each tensor's stored dtype from the mixed checkpoint.
func mixedDtypes(t *testing.T, dir string) map[string]string {
	t.Helper()
	ck, err := ckpt.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	out := map[string]string{}
	for _, n := range ck.Names() {
		ti, _, _ := ck.Info(n)
		out[n] = ti.DType
	}
	return out
}

func widened(t *tensor.Dense) []float32 {
	out := make([]float32, t.Shape().TotalSize())
	kernels.Widen32(out, t, 0)
	return out
}

func roundTo(dt tensor.Dtype, v []float32) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		switch dt {
		case kernels.BFloat16:
			out[i] = kernels.BF16ToFloat32(kernels.Float32ToBF16(x))
		case kernels.Float16:
			out[i] = kernels.F16ToFloat32(kernels.Float32ToF16(x))
		default:
			out[i] = x
		}
	}
	return out
}

func sameBits(a, b []float32) int {
	if len(a) != len(b) {
		return 0
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return i
		}
	}
	return -1
}

// The shards are mapped and the parameters ARE the mapped bytes: each
// tensor's data lies inside its shard's mapping, read-only, nothing copied.
// F32 and BF16 shards mix in one model.
func TestLoadMapsShardsInPlace(t *testing.T) {
	ref := reference(t)
	stored := mixedDtypes(t, mixedDir)
	ld, err := Load(mixedDir)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := nn.Parameters(ld.Model, "")
	if err != nil {
		t.Fatal(err)
	}
	ck := ld.ck.(*ckpt.Checkpoint)
	var want int64
	seen := map[string]bool{}
	for _, p := range ps {
		ti, path, err := ck.Info(p.Name)
		if err != nil {
			t.Fatal(err)
		}
		if got := kernels.DtypeName(p.T.Dtype()); got != stored[p.Name] {
			t.Fatalf("%s: dtype %s in memory, stored %s", p.Name, got, stored[p.Name])
		}
		seen[stored[p.Name]] = true
		f := ck.Shard(filepath.Base(path))
		if !f.Mapped() {
			t.Fatalf("%s: shard %s not mapped", p.Name, path)
		}
		if got, at := p.T.Uintptr(), uintptr(unsafe.Pointer(&f.MappedBytes(ti)[0])); got != at {
			t.Fatalf("%s: data at %#x, not its bytes in the mapping of %s (%#x)", p.Name, got, path, at)
		}
		if !kernels.IsReadOnly(p.T) {
			t.Fatalf("%s: view not registered read-only", p.Name)
		}
		dt, _ := kernels.ParseDtype(stored[p.Name])
		if i := sameBits(widened(p.T), roundTo(dt, ref[p.Name])); i >= 0 {
			t.Fatalf("%s: value %d differs from the reference rounded to %s", p.Name, i, stored[p.Name])
		}
		want += int64(p.T.MemSize())
	}
	if !seen["BF16"] || !seen["F32"] {
		t.Fatalf("fixture should mix BF16 and F32 shards, saw %v", seen)
	}
	w := ld.Weights
	if w.Copied != 0 || w.InPlace != want || w.Bytes["BF16"]+w.Bytes["F32"] != want {
		t.Errorf("weight stats %+v, want %d bytes all in place", w, want)
	}
	files := map[string]*ckpt.SafetensorsFile{}
	for _, name := range ck.Files() {
		if f := ck.Shard(name); f != nil {
			files[name] = f
		}
	}
	if err := ld.Close(); err != nil {
		t.Fatal(err)
	}
	if ld.Model != nil {
		t.Error("Close left the model reachable")
	}
	for name, f := range files {
		if f.Mapped() {
			t.Errorf("%s still mapped after Close", name)
		}
	}
}

// --dtype converts on load; a tensor already in the wanted dtype stays in
// place; Writable copies everything.
func TestLoadDtypeConversion(t *testing.T) {
	ref := reference(t)
	stored := mixedDtypes(t, mixedDir)
	cases := []struct {
		name string
		dir  string
		opts LoadOptions
	}{
		{"mixed to f32", mixedDir, LoadOptions{Dtype: tensor.Float32}},
		{"mixed to bf16", mixedDir, LoadOptions{Dtype: kernels.BFloat16}},
		{"mixed to f16", mixedDir, LoadOptions{Dtype: kernels.Float16}},
		{"f32 to bf16", parityDir, LoadOptions{Dtype: kernels.BFloat16}},
		{"mixed to writable f32", mixedDir, LoadOptions{Dtype: tensor.Float32, Writable: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ld, err := LoadWith(c.dir, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer ld.Close()
			ps, _ := nn.Parameters(ld.Model, "")
			for _, p := range ps {
				if p.T.Dtype() != c.opts.Dtype {
					t.Fatalf("%s: dtype %v, want %v", p.Name, p.T.Dtype(), c.opts.Dtype)
				}
				src := "F32"
				if c.dir == mixedDir {
					src = stored[p.Name]
				}
				sdt, _ := kernels.ParseDtype(src)
				want := roundTo(c.opts.Dtype, roundTo(sdt, ref[p.Name]))
				if i := sameBits(widened(p.T), want); i >= 0 {
					t.Fatalf("%s: value %d: got %v, want %v", p.Name, i, widened(p.T)[i], want[i])
				}
				inPlace := sdt == c.opts.Dtype && !c.opts.Writable
				if kernels.IsReadOnly(p.T) != inPlace {
					t.Fatalf("%s stored %s: read-only %v, want %v", p.Name, src, kernels.IsReadOnly(p.T), inPlace)
				}
			}
		})
	}
}

// copyDir copies a checkpoint directory a test may damage.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dir := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func readIndex(t *testing.T, dir string) ckpt.Index {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, ckpt.IndexFileName))
	if err != nil {
		t.Fatal(err)
	}
	var idx ckpt.Index
	if err := json.Unmarshal(raw, &idx); err != nil {
		t.Fatal(err)
	}
	return idx
}

func firstIn(idx ckpt.Index, shard string) string {
	best := ""
	for n, s := range idx.WeightMap {
		if s == shard && (best == "" || n < best) {
			best = n
		}
	}
	return best
}

// Broken full-layout checkpoints give errors naming the shard and tensor,
// never a panic or a fault, also on the mapped path.
func TestLoadBrokenShards(t *testing.T) {
	idx := readIndex(t, mixedDir)
	const s2, s3 = "model-00002-of-00004.safetensors", "model-00003-of-00004.safetensors"
	cases := []struct {
		name   string
		damage func(t *testing.T, dir string)
		opts   LoadOptions
		want   []string // empty: loads
	}{
		{"missing shard", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, s3)) }, LoadOptions{},
			[]string{s3, "missing", firstIn(idx, s3)}},
		{"truncated shard", func(t *testing.T, dir string) {
			p := filepath.Join(dir, s2)
			raw, _ := os.ReadFile(p)
			os.WriteFile(p, raw[:len(raw)-100], 0o644)
		}, LoadOptions{}, []string{s2, "out of range"}},
		{"tensor listed but absent from its shard", func(t *testing.T, dir string) {
			n := firstIn(idx, s2)
			i := readIndex(t, dir)
			i.WeightMap[n] = s3
			raw, _ := json.Marshal(i)
			os.WriteFile(filepath.Join(dir, ckpt.IndexFileName), raw, 0o644)
		}, LoadOptions{}, []string{firstIn(idx, s2), s3, "does not contain"}},
		{"extra shard not in the index", func(t *testing.T, dir string) {
			// A stale shard holding other values for a tensor: the index
			// decides, the extra file is not read.
			n := firstIn(idx, s2)
			ts := []ckpt.WriteItem{{Name: n, Shape: []int{1}, Data: []float32{42}}}
			if err := ckpt.WriteSafetensors(filepath.Join(dir, "model-00005-of-00005.safetensors"), ts, ckpt.WriteOptions{}); err != nil {
				t.Fatal(err)
			}
		}, LoadOptions{}, nil},
		{"weight of an integer dtype", func(t *testing.T, dir string) {
			p := filepath.Join(dir, s2)
			n := firstIn(idx, s2)
			f, err := ckpt.OpenSafetensors(p)
			if err != nil {
				t.Fatal(err)
			}
			f.Close()
			raw, _ := os.ReadFile(p)
			hl := int(le64(raw))
			old := `"` + n + `":{"dtype":"F32"`
			hdr := strings.Replace(string(raw[8:8+hl]), old, `"`+n+`":{"dtype":"I32"`, 1)
			if hdr == string(raw[8:8+hl]) {
				t.Fatalf("header of %s does not contain %s", s2, old)
			}
			copy(raw[8:], hdr)
			os.WriteFile(p, raw, 0o644)
		}, LoadOptions{}, []string{firstIn(idx, s2), "I32", "not a floating-point"}},
		{"integer dtype asked to convert", nil, LoadOptions{Dtype: tensor.Int}, []string{"unsupported target dtype"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := copyDir(t, mixedDir)
			if c.damage != nil {
				c.damage(t, dir)
			}
			ld, err := LoadWith(dir, c.opts)
			if len(c.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				defer ld.Close()
				ref := reference(t)
				n := firstIn(idx, s2)
				if w := ld.Weights.Tensors; w != len(ref)-len(ld.Unused) {
					t.Errorf("%d tensors loaded, want %d", w, len(ref)-len(ld.Unused))
				}
				for _, p := range must(nn.Parameters(ld.Model, "")) {
					if p.Name == n && widened(p.T)[0] != ref[n][0] {
						t.Errorf("%s read from the extra shard", n)
					}
				}
				return
			}
			if err == nil {
				ld.Close()
				t.Fatal("loaded")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func le64(b []byte) uint64 {
	var v uint64
	for i := 7; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v
}

// A shard truncated after it was opened is refused before it is mapped
// (mapping it would fault on the first read past the end).
func TestMapRefusesFileShrunkAfterOpen(t *testing.T) {
	dir := copyDir(t, mixedDir)
	ck, err := ckpt.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	const s2 = "model-00002-of-00004.safetensors"
	n := firstIn(readIndex(t, dir), s2)
	p := filepath.Join(dir, s2)
	st, _ := os.Stat(p)
	if err := os.Truncate(p, st.Size()-64); err != nil {
		t.Fatal(err)
	}
	_, _, err = ck.Dense(n, tensor.Dtype{})
	if err == nil || !strings.Contains(err.Error(), s2) || !strings.Contains(err.Error(), "changed size") {
		t.Fatalf("got %v", err)
	}
}

// An F32 tensor that starts 2 bytes off alignment (after an odd number of
// bf16 values) cannot be viewed: it is copied, with the same values.
func TestMisalignedTensorIsCopied(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "m.safetensors")
	hdr := `{"a":{"dtype":"BF16","shape":[3],"data_offsets":[0,6]},"b":{"dtype":"F32","shape":[2],"data_offsets":[6,14]}}`
	for len(hdr)%8 != 0 {
		hdr += " "
	}
	raw := make([]byte, 8+len(hdr)+14)
	raw[0] = byte(len(hdr))
	copy(raw[8:], hdr)
	d := raw[8+len(hdr):]
	for i, h := range []uint16{0x3f80, 0x4000, 0xc040} {
		d[2*i], d[2*i+1] = byte(h), byte(h>>8)
	}
	for i, v := range []float32{1.5, -2.25} {
		b := math.Float32bits(v)
		d[6+4*i], d[7+4*i], d[8+4*i], d[9+4*i] = byte(b), byte(b>>8), byte(b>>16), byte(b>>24)
	}
	os.WriteFile(p, raw, 0o644)
	f, err := ckpt.OpenSafetensors(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	a, inPlace, err := f.Dense("a", tensor.Dtype{})
	if err != nil || !inPlace || a.Dtype() != kernels.BFloat16 {
		t.Fatalf("a: %v in place %v", err, inPlace)
	}
	if got := widened(a); got[0] != 1 || got[1] != 2 || got[2] != -3 {
		t.Errorf("a = %v", got)
	}
	b, inPlace, err := f.Dense("b", tensor.Dtype{})
	if err != nil || inPlace || kernels.IsReadOnly(b) {
		t.Fatalf("b: %v in place %v", err, inPlace)
	}
	if got := b.Data().([]float32); got[0] != 1.5 || got[1] != -2.25 {
		t.Errorf("b = %v", got)
	}
}

// WriteRandom streams the checkpoint New + InitRandom + Save writes: same
// values (rounded to the stored dtype), same names, same shards.
func TestWriteRandomMatchesInitRandom(t *testing.T) {
	cfg, pp, err := LoadConfig(parityDir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.InitRandom(7); err != nil {
		t.Fatal(err)
	}
	opts := ckpt.SaveOptions{DType: "BF16", MaxShardSize: 200_000}
	inMem, streamed := t.TempDir(), t.TempDir()
	if err := m.Save(inMem, pp, opts); err != nil {
		t.Fatal(err)
	}
	n, err := WriteRandom(streamed, cfg, pp, 7, opts)
	if err != nil {
		t.Fatal(err)
	}
	if want := must(nn.ParamCount(m)); n != want {
		t.Errorf("%d parameters, want %d", n, want)
	}
	a, b := readIndex(t, inMem), readIndex(t, streamed)
	if len(b.WeightMap) != len(a.WeightMap) || len(a.WeightMap) == 0 {
		t.Fatalf("index of %d tensors, want %d", len(b.WeightMap), len(a.WeightMap))
	}
	for name, shard := range a.WeightMap {
		if b.WeightMap[name] != shard {
			t.Errorf("%s in %s, want %s", name, b.WeightMap[name], shard)
		}
	}
	ld, err := Load(streamed)
	if err != nil {
		t.Fatal(err)
	}
	defer ld.Close()
	want := map[string][]float32{}
	for _, nt := range must(ckpt.WriteItems(m, "")) {
		want[nt.Name] = roundTo(kernels.BFloat16, nt.Data)
	}
	for _, p := range must(nn.Parameters(ld.Model, "")) {
		if p.T.Dtype() != kernels.BFloat16 {
			t.Fatalf("%s: %v", p.Name, p.T.Dtype())
		}
		if i := sameBits(widened(p.T), want[p.Name]); i >= 0 {
			t.Fatalf("%s: value %d differs", p.Name, i)
		}
	}
}

// The memory refusal counts the weights in the dtype they will have.
func TestLoadRefusesWithoutMemory(t *testing.T) {
	defer func(f func() (int64, bool)) { memAvailable = f }(memAvailable)
	st, _ := os.Stat(filepath.Join(parityDir, ckpt.SingleFileName))
	memAvailable = func() (int64, bool) { return st.Size() / 2, true } // bf16 fits, f32 does not
	_, err := LoadWith(parityDir, LoadOptions{})
	if !errors.Is(err, kernels.ErrNoMemory) || !strings.Contains(err.Error(), "F32") {
		t.Fatalf("f32: got %v", err)
	}
	ld, err := LoadWith(parityDir, LoadOptions{Dtype: kernels.BFloat16})
	if err != nil {
		t.Fatalf("bf16: %v", err)
	}
	ld.Close()
	_, err = LoadWith(parityDir, LoadOptions{Dtype: kernels.BFloat16, Extra: st.Size(), ExtraWhat: "KV cache"})
	if !errors.Is(err, kernels.ErrNoMemory) || !strings.Contains(err.Error(), "KV cache") {
		t.Fatalf("bf16 + KV cache: got %v", err)
	}
}

// A model built for loading holds placeholders, not memory: Magma-8B's
// 8.9e9 parameters (35.6 GB in float32) cost the Go heap a few MB and no
// resident pages until a checkpoint replaces them.
func TestModelForLoadAllocatesNothing(t *testing.T) {
	cfg, _, err := PresetConfigs("magma-8b")
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	m, err := newForLoad(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
		t.Errorf("building the 8B model for loading allocated %d MB", grew>>20)
	}
	n := int64(0)
	for _, p := range must(nn.Parameters(m, "")) {
		if !kernels.IsReadOnly(p.T) {
			t.Fatalf("%s is not a placeholder", p.Name)
		}
		n += int64(p.T.Shape().TotalSize())
	}
	if n != 8_903_549_824 {
		t.Errorf("%d parameters", n)
	}
}
