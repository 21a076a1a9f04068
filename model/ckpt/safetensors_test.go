package ckpt

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/magma-go/magma/kernels"
)

func TestSafetensorsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	tensors := []WriteItem{
		{Name: "b.weight", Shape: []int{2, 3}, Data: []float32{1, -2, 3.5, 0, 1e-3, -7}},
		{Name: "a.bias", Shape: []int{3}, Data: []float32{0.1, 0.2, 0.3}},
		{Name: "empty", Shape: []int{0, 4}, Data: []float32{}},
	}
	for _, dt := range []string{"F32", "BF16", "F16"} {
		t.Run(dt, func(t *testing.T) {
			p := filepath.Join(dir, dt+".safetensors")
			if err := WriteSafetensors(p, tensors, WriteOptions{DType: dt}); err != nil {
				t.Fatal(err)
			}
			raw, _ := os.ReadFile(p)
			n := binary.LittleEndian.Uint64(raw)
			if (8+n)%8 != 0 {
				t.Errorf("header length %d not 8-aligned", n)
			}
			var hdr map[string]json.RawMessage
			if err := json.Unmarshal(raw[8:8+n], &hdr); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(hdr["__metadata__"]), `"format":"pt"`) {
				t.Errorf("metadata %s", hdr["__metadata__"])
			}
			f, err := OpenSafetensors(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if got := strings.Join(f.Names(), ","); got != "a.bias,b.weight,empty" {
				t.Errorf("names %s", got)
			}
			for _, want := range tensors {
				data, shape, err := f.Tensor(want.Name)
				if err != nil {
					t.Fatal(err)
				}
				if len(shape) != len(want.Shape) {
					t.Fatalf("%s shape %v", want.Name, shape)
				}
				for i, v := range want.Data {
					exp := v
					switch dt {
					case "BF16":
						exp = kernels.BF16ToFloat32(kernels.Float32ToBF16(v))
					case "F16":
						exp = kernels.F16ToFloat32(kernels.Float32ToF16(v))
					}
					if data[i] != exp {
						t.Errorf("%s[%d] = %g want %g", want.Name, i, data[i], exp)
					}
				}
				ti, _ := f.Info(want.Name)
				if ti.DType != dt {
					t.Errorf("dtype %s", ti.DType)
				}
			}
			// Deterministic output.
			p2 := filepath.Join(dir, dt+"-2.safetensors")
			if err := WriteSafetensors(p2, tensors, WriteOptions{DType: dt}); err != nil {
				t.Fatal(err)
			}
			raw2, _ := os.ReadFile(p2)
			if string(raw) != string(raw2) {
				t.Error("writer is not deterministic")
			}
		})
	}
}

// buildFile assembles a safetensors file from a header value and data.
func buildFile(t *testing.T, dir, name string, header any, data []byte) string {
	t.Helper()
	var hdr []byte
	switch h := header.(type) {
	case string:
		hdr = []byte(h)
	default:
		var err error
		if hdr, err = json.Marshal(h); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 8, 8+len(hdr)+len(data))
	binary.LittleEndian.PutUint64(buf, uint64(len(hdr)))
	buf = append(buf, hdr...)
	buf = append(buf, data...)
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestHandBuiltF16AndF64File(t *testing.T) {
	dir := t.TempDir()
	// f16: [1, -2, 0.5, 65504]; f64: [0.1, -3]
	f16 := []uint16{0x3c00, 0xc000, 0x3800, 0x7bff}
	var data []byte
	for _, h := range f16 {
		data = binary.LittleEndian.AppendUint16(data, h)
	}
	data = binary.LittleEndian.AppendUint64(data, math.Float64bits(0.1))
	data = binary.LittleEndian.AppendUint64(data, math.Float64bits(-3))
	p := buildFile(t, dir, "h.safetensors", map[string]any{
		"half":   map[string]any{"dtype": "F16", "shape": []int{2, 2}, "data_offsets": []int{0, 8}},
		"double": map[string]any{"dtype": "F64", "shape": []int{2}, "data_offsets": []int{8, 24}},
	}, data)
	f, err := OpenSafetensors(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, shape, err := f.Tensor("half")
	if err != nil {
		t.Fatal(err)
	}
	want := []float32{1, -2, 0.5, 65504}
	if len(shape) != 2 || shape[0] != 2 || shape[1] != 2 {
		t.Errorf("shape %v", shape)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("half[%d]=%g want %g", i, got[i], want[i])
		}
	}
	d32, _, err := f.Tensor("double")
	if err != nil || d32[0] != float32(0.1) || d32[1] != -3 {
		t.Errorf("double as f32: %v %v", d32, err)
	}
	d64, _, err := f.TensorFloat64("double")
	if err != nil || d64[0] != 0.1 || d64[1] != -3 {
		t.Errorf("double as f64: %v %v", d64, err)
	}
	h64, _, err := f.TensorFloat64("half")
	if err != nil || h64[3] != 65504 {
		t.Errorf("half as f64: %v %v", h64, err)
	}
}

func TestSafetensorsBadInput(t *testing.T) {
	dir := t.TempDir()
	ok4 := map[string]any{"dtype": "F32", "shape": []int{1}, "data_offsets": []int{0, 4}}
	four := make([]byte, 4)
	cases := []struct {
		name  string
		make  func() string
		wants []string // substrings the error must contain
		atGet string   // if set, open succeeds and Tensor(atGet) must fail
	}{
		{"short file", func() string {
			p := filepath.Join(dir, "short.safetensors")
			os.WriteFile(p, []byte{1, 2, 3}, 0o644)
			return p
		}, []string{"short.safetensors", "shorter than"}, ""},
		{"header too long", func() string {
			p := filepath.Join(dir, "long.safetensors")
			b := binary.LittleEndian.AppendUint64(nil, 1<<40)
			os.WriteFile(p, append(b, []byte("{}")...), 0o644)
			return p
		}, []string{"long.safetensors", "exceeds the file size"}, ""},
		{"invalid json", func() string {
			return buildFile(t, dir, "json.safetensors", `{"a": [`, nil)
		}, []string{"json.safetensors", "invalid JSON"}, ""},
		{"unknown dtype I4", func() string {
			return buildFile(t, dir, "i4.safetensors", map[string]any{"w": map[string]any{"dtype": "I4", "shape": []int{1}, "data_offsets": []int{0, 1}}}, []byte{0})
		}, []string{"i4.safetensors", `"w"`, `unknown dtype "I4"`}, ""},
		{"fp8 unsupported", func() string {
			return buildFile(t, dir, "f8.safetensors", map[string]any{"w8": map[string]any{"dtype": "F8_E4M3", "shape": []int{2}, "data_offsets": []int{0, 2}}}, []byte{0, 0})
		}, []string{"f8.safetensors", `"w8"`, "F8_E4M3"}, "w8"},
		{"offsets out of range", func() string {
			return buildFile(t, dir, "range.safetensors", map[string]any{"w": map[string]any{"dtype": "F32", "shape": []int{2}, "data_offsets": []int{0, 8}}}, four)
		}, []string{"range.safetensors", `"w"`, "out of range"}, ""},
		{"size mismatch", func() string {
			return buildFile(t, dir, "size.safetensors", map[string]any{"w": map[string]any{"dtype": "F32", "shape": []int{2}, "data_offsets": []int{0, 4}}}, make([]byte, 8))
		}, []string{"size.safetensors", `"w"`, "needs 8"}, ""},
		{"overlap", func() string {
			return buildFile(t, dir, "overlap.safetensors", map[string]any{
				"a": map[string]any{"dtype": "F32", "shape": []int{2}, "data_offsets": []int{0, 8}},
				"b": map[string]any{"dtype": "F32", "shape": []int{2}, "data_offsets": []int{4, 12}},
			}, make([]byte, 12))
		}, []string{"overlap.safetensors", `"b"`, `"a"`, "overlaps"}, ""},
		{"bad offsets arity", func() string {
			return buildFile(t, dir, "arity.safetensors", map[string]any{"w": map[string]any{"dtype": "F32", "shape": []int{1}, "data_offsets": []int{0}}}, four)
		}, []string{"arity.safetensors", `"w"`, "data_offsets"}, ""},
		{"missing tensor", func() string {
			return buildFile(t, dir, "ok.safetensors", map[string]any{"w": ok4}, four)
		}, []string{"ok.safetensors", `"nope"`, "not found"}, "nope"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := c.make()
			f, err := OpenSafetensors(p)
			if c.atGet != "" {
				if err != nil {
					t.Fatalf("open: %v", err)
				}
				defer f.Close()
				_, _, err = f.Tensor(c.atGet)
			}
			if err == nil {
				t.Fatal("expected an error")
			}
			for _, w := range c.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestWriteSafetensorsRejects(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x.safetensors")
	if err := WriteSafetensors(p, []WriteItem{{Name: "a", Shape: []int{3}, Data: []float32{1}}}, WriteOptions{}); err == nil || !strings.Contains(err.Error(), `"a"`) {
		t.Errorf("shape/data mismatch: %v", err)
	}
	if err := WriteSafetensors(p, []WriteItem{{Name: "a", Shape: []int{1}, Data: []float32{1}}, {Name: "a", Shape: []int{1}, Data: []float32{1}}}, WriteOptions{}); err == nil || !strings.Contains(err.Error(), "duplicate") {
		t.Errorf("duplicate: %v", err)
	}
	if err := WriteSafetensors(p, nil, WriteOptions{DType: "I8"}); err == nil {
		t.Error("bad dtype accepted")
	}
	if _, err := os.Stat(p); err == nil {
		t.Error("failed write left a file")
	}
}
