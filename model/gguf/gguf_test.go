package gguf

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gorgonia.org/tensor"

	"github.com/magma-go/magma/kernels"
)

// allValues is one metadata pair of every value type, arrays included.
func allValues() []KV {
	return []KV{
		{"t.u8", uint8(200)},
		{"t.i8", int8(-7)},
		{"t.u16", uint16(65000)},
		{"t.i16", int16(-30000)},
		{"t.u32", uint32(4000000000)},
		{"t.i32", int32(-2000000000)},
		{"t.f32", float32(1.5e-5)},
		{"t.bool_true", true},
		{"t.bool_false", false},
		{"t.str", "héllo wörld"},
		{"t.str_empty", ""},
		{"t.u64", uint64(1) << 63},
		{"t.i64", int64(-1) << 62},
		{"t.f64", math.Pi},
		{"a.u8", []uint8{0, 1, 255}},
		{"a.i8", []int8{-128, 0, 127}},
		{"a.u16", []uint16{1, 65535}},
		{"a.i16", []int16{-32768, 32767}},
		{"a.u32", []uint32{7, 1 << 31}},
		{"a.i32", []int32{-1, 3, 128256}},
		{"a.f32", []float32{-0.5, float32(math.Inf(1)), 3}},
		{"a.bool", []bool{true, false, true}},
		{"a.str", []string{"Ġthe", "", "<|begin_of_text|>", "a b"}},
		{"a.u64", []uint64{0, math.MaxUint64}},
		{"a.i64", []int64{math.MinInt64, 5}},
		{"a.f64", []float64{1e300, -2}},
		{"a.empty", []int32{}},
		{"a.nested", Array{[]string{"x", "y"}, []uint8{9}, Array{[]float32{1, 2}}}},
	}
}

// writeFile writes a GGUF of kvs and tensors (each with the given bytes)
// to a temporary file and returns its path.
func writeFile(t *testing.T, kvs []KV, tensors []testTensor) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "m.gguf")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := NewWriter(f)
	for _, kv := range kvs {
		if err := w.AddKV(kv.Key, kv.Value); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range tensors {
		if err := w.AddTensor(tt.name, tt.typ, tt.shape); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range tensors {
		// write in two pieces: the stream is chunked
		tw, err := w.BeginTensor(tt.name)
		if err != nil {
			t.Fatal(err)
		}
		h := len(tt.data) / 2
		if _, err := tw.Write(tt.data[:h]); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(tt.data[h:]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

type testTensor struct {
	name  string
	typ   TensorType
	shape []int
	data  []byte
}

func randTensor(r *rand.Rand, name string, typ TensorType, shape ...int) testTensor {
	n := int64(1)
	for _, s := range shape {
		n *= int64(s)
	}
	size := n / int64(typ.BlockWeights()) * int64(typ.BlockBytes())
	b := make([]byte, size)
	r.Read(b)
	return testTensor{name, typ, shape, b}
}

func TestRoundTripMetadata(t *testing.T) {
	kvs := allValues()
	path := writeFile(t, kvs, nil)
	g, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if len(g.KVs) != len(kvs) {
		t.Fatalf("%d pairs, want %d", len(g.KVs), len(kvs))
	}
	for i, kv := range kvs {
		got := g.KVs[i]
		if got.Key != kv.Key || !reflect.DeepEqual(got.Value, kv.Value) {
			t.Errorf("pair %d: got %q=%#v, want %q=%#v", i, got.Key, got.Value, kv.Key, kv.Value)
		}
		if v, ok := g.Get(kv.Key); !ok || !reflect.DeepEqual(v, kv.Value) {
			t.Errorf("Get(%q) = %#v, %v", kv.Key, v, ok)
		}
	}
	if s, err := g.String("t.str"); err != nil || s != "héllo wörld" {
		t.Errorf("String: %q %v", s, err)
	}
	if u, err := g.Uint("t.u32"); err != nil || u != 4000000000 {
		t.Errorf("Uint: %d %v", u, err)
	}
	if _, err := g.Uint("t.i8"); err == nil || !strings.Contains(err.Error(), "negative") {
		t.Errorf("Uint of a negative value: %v", err)
	}
	if f, err := g.Float("t.f32"); err != nil || f != float64(float32(1.5e-5)) {
		t.Errorf("Float: %v %v", f, err)
	}
	if _, err := g.String("t.u8"); err == nil || !strings.Contains(err.Error(), `"t.u8"`) {
		t.Errorf("String of a uint8: %v", err)
	}
	if g.DataOffset%DefaultAlignment != 0 {
		t.Errorf("data offset %d not aligned", g.DataOffset)
	}
}

func TestRoundTripTensors(t *testing.T) {
	for _, align := range []uint32{0, 1, 32, 64, 4096} {
		r := rand.New(rand.NewSource(int64(align)))
		tensors := []testTensor{
			randTensor(r, "f32", TypeF32, 3, 5),
			randTensor(r, "f16", TypeF16, 7),
			randTensor(r, "bf16", TypeBF16, 2, 3, 4),
			randTensor(r, "q8_0", TypeQ8_0, 3, 64),
			randTensor(r, "q4_0", TypeQ4_0, 2, 32),
			randTensor(r, "q4_k", TypeQ4_K, 2, 512),
			randTensor(r, "q6_k", TypeQ6_K, 1, 2, 3, 256),
			randTensor(r, "scalar", TypeF32),
		}
		var kvs []KV
		want := uint64(DefaultAlignment)
		if align != 0 {
			kvs = append(kvs, KV{KeyAlignment, align})
			want = uint64(align)
		}
		kvs = append(kvs, KV{"general.architecture", "llama"})
		path := writeFile(t, kvs, tensors)
		g, err := Open(path)
		if err != nil {
			t.Fatalf("alignment %d: %v", align, err)
		}
		if g.Alignment != want {
			t.Errorf("alignment %d: read %d", want, g.Alignment)
		}
		if len(g.Tensors) != len(tensors) {
			t.Fatalf("%d tensors, want %d", len(g.Tensors), len(tensors))
		}
		for i, tt := range tensors {
			ti := g.Tensors[i]
			wantShape := tt.shape
			if len(wantShape) == 0 {
				wantShape = []int{1}
			}
			if ti.Name != tt.name || ti.Type != tt.typ || !reflect.DeepEqual(ti.Shape(), wantShape) {
				t.Errorf("tensor %d: %q %v %v, want %q %v %v", i, ti.Name, ti.Type, ti.Shape(), tt.name, tt.typ, wantShape)
			}
			if !reflect.DeepEqual(ti.Dims, GGMLDims(tt.shape)) {
				t.Errorf("tensor %q: dims %v, want %v", tt.name, ti.Dims, GGMLDims(tt.shape))
			}
			if (g.DataOffset+int64(ti.Offset))%int64(want) != 0 {
				t.Errorf("tensor %q at %d+%d not aligned to %d", tt.name, g.DataOffset, ti.Offset, want)
			}
			b, _, err := g.TensorBytes(tt.name)
			if err != nil || !bytes.Equal(b, tt.data) {
				t.Errorf("tensor %q: bytes differ (%v)", tt.name, err)
			}
		}
		g.Close()
	}
}

func TestDimsOrder(t *testing.T) {
	// a weight [out=3, in=64] is ggml [64, 3]
	if d := GGMLDims([]int{3, 64}); !reflect.DeepEqual(d, []uint64{64, 3}) {
		t.Fatalf("GGMLDims = %v", d)
	}
	if s := (TensorInfo{Dims: []uint64{64, 3, 2}}).Shape(); !reflect.DeepEqual(s, []int{2, 3, 64}) {
		t.Fatalf("Shape = %v", s)
	}
	if _, err := TensorBytes(TypeQ8_0, []uint64{3, 64}); err == nil {
		t.Fatal("Q8_0 with ne[0]=3 accepted")
	}
}

func TestFloatTensors(t *testing.T) {
	vals := []float32{1, -2.5, 0.15625, 3e-3, 65504, -0.0}
	le := binary.LittleEndian
	f32 := make([]byte, 4*len(vals))
	f16 := make([]byte, 2*len(vals))
	bf := make([]byte, 2*len(vals))
	for i, v := range vals {
		le.PutUint32(f32[4*i:], math.Float32bits(v))
		le.PutUint16(f16[2*i:], kernels.Float32ToF16(v))
		le.PutUint16(bf[2*i:], kernels.Float32ToBF16(v))
	}
	path := writeFile(t, nil, []testTensor{
		{"a", TypeF32, []int{2, 3}, f32},
		{"b", TypeF16, []int{2, 3}, f16},
		{"c", TypeBF16, []int{2, 3}, bf},
		{"q", TypeQ8_0, []int{32}, make([]byte, 34)},
		{"q4", TypeQ4_0, []int{32}, make([]byte, 18)},
	})
	g, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	for _, c := range []struct {
		name string
		conv func(float32) float32
		dt   tensor.Dtype
	}{
		{"a", func(v float32) float32 { return v }, tensor.Float32},
		{"b", func(v float32) float32 { return kernels.F16ToFloat32(kernels.Float32ToF16(v)) }, kernels.Float16},
		{"c", func(v float32) float32 { return kernels.BF16ToFloat32(kernels.Float32ToBF16(v)) }, kernels.BFloat16},
	} {
		got, shape, err := g.Tensor(c.name)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(shape, []int{2, 3}) {
			t.Errorf("%s: shape %v", c.name, shape)
		}
		for i, v := range vals {
			if got[i] != c.conv(v) {
				t.Errorf("%s[%d] = %v, want %v", c.name, i, got[i], c.conv(v))
			}
		}
		d, inPlace, err := g.Dense(c.name, tensor.Dtype{})
		if err != nil || !inPlace || d.Dtype() != c.dt || !kernels.IsReadOnly(d) {
			t.Errorf("%s: Dense in place %v dtype %v read-only %v err %v", c.name, inPlace, d.Dtype(), kernels.IsReadOnly(d), err)
		}
		d32, inPlace, err := g.Dense(c.name, tensor.Float32)
		if err != nil || (c.dt != tensor.Float32 && inPlace) || !reflect.DeepEqual(d32.Data().([]float32), got) {
			t.Errorf("%s: Dense f32: %v %v", c.name, inPlace, err)
		}
	}
	if v, _, err := g.Tensor("q"); err != nil || len(v) != 32 || v[0] != 0 {
		t.Errorf("Q8_0 through the kernels' dequantizer: %v %v", v, err)
	}
	if _, _, err := g.Tensor("q4"); err == nil || !strings.Contains(err.Error(), `"q4" has type Q4_0`) {
		t.Errorf("Q4_0 has no dequantizer: %v", err)
	}
	if _, _, err := g.Dense("q", tensor.Dtype{}); err == nil {
		t.Error("Dense of a Q8_0 tensor accepted")
	}
	if _, _, err := g.Tensor("nope"); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("missing tensor: %v", err)
	}
}

func TestWriterErrors(t *testing.T) {
	cases := []struct {
		name string
		do   func(w *Writer) error
		want string
	}{
		{"dup key", func(w *Writer) error { w.AddKV("a", uint8(1)); return w.AddKV("a", uint8(2)) }, "twice"},
		{"bad value", func(w *Writer) error { return w.AddKV("a", 3) }, "int is not a GGUF metadata value"},
		{"bad alignment type", func(w *Writer) error { return w.AddKV(KeyAlignment, uint64(32)) }, "uint32"},
		{"alignment not power of two", func(w *Writer) error { return w.AddKV(KeyAlignment, uint32(48)) }, "power of two"},
		{"non-ascii key", func(w *Writer) error { return w.AddKV("clé", uint8(1)) }, "ASCII"},
		{"nested non-array", func(w *Writer) error { return w.AddKV("a", Array{uint8(1)}) }, "not an array"},
		{"dup tensor", func(w *Writer) error { w.AddTensor("x", TypeF32, []int{1}); return w.AddTensor("x", TypeF32, []int{1}) }, "twice"},
		{"row not a block multiple", func(w *Writer) error { return w.AddTensor("x", TypeQ4_K, []int{2, 128}) }, "multiple of Q4_K's block of 256"},
		{"unknown type", func(w *Writer) error { return w.AddTensor("x", TensorType(99), []int{4}) }, "unknown ggml type id 99"},
		{"too many dims", func(w *Writer) error { return w.AddTensor("x", TypeF32, []int{1, 1, 1, 1, 1}) }, "5 dimensions"},
		{"out of order", func(w *Writer) error {
			w.AddTensor("x", TypeF32, []int{1})
			w.AddTensor("y", TypeF32, []int{1})
			_, err := w.BeginTensor("y")
			return err
		}, `tensor "y" written out of order`},
		{"too many bytes", func(w *Writer) error {
			w.AddTensor("x", TypeF32, []int{1})
			return w.WriteTensor("x", make([]byte, 8))
		}, "more than its 4"},
		{"too few bytes", func(w *Writer) error {
			w.AddTensor("x", TypeF32, []int{2})
			return w.WriteTensor("x", make([]byte, 4))
		}, "4 bytes written, want 8"},
		{"missing tensor", func(w *Writer) error {
			w.AddTensor("x", TypeF32, []int{2})
			return w.Close()
		}, `0 of 1 tensors written (next: "x")`},
		{"kv after header", func(w *Writer) error {
			w.AddTensor("x", TypeF32, []int{1})
			w.WriteTensor("x", make([]byte, 4))
			return w.AddKV("late", uint8(1))
		}, "after the header"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.do(NewWriter(&bytes.Buffer{}))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
}

// TestKernelBlockSizes: the block sizes taken from the kernels' dtypes are
// ggml's (ggml-common.h).
func TestKernelBlockSizes(t *testing.T) {
	for _, c := range []struct {
		t             TensorType
		name          string
		weights, size int
	}{{TypeQ8_0, "Q8_0", 32, 34}, {TypeQ4_K, "Q4_K", 256, 144}, {TypeQ6_K, "Q6_K", 256, 210}, {TypeQ4_0, "Q4_0", 32, 18}, {TypeBF16, "BF16", 1, 2}} {
		if c.t.String() != c.name || c.t.BlockWeights() != c.weights || c.t.BlockBytes() != c.size {
			t.Errorf("%v: %s %d values in %d bytes, want %s %d in %d", uint32(c.t), c.t, c.t.BlockWeights(), c.t.BlockBytes(), c.name, c.weights, c.size)
		}
	}
}
