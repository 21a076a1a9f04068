package model

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/model/gguf"
)

// A GGUF file is a TensorSource: Bind copies its tensors (F32, BF16 and
// quantized ones, dequantized by the kernels) into a model by name, with
// its ggml dims read as row-major shapes.
var _ TensorSource = (*gguf.File)(nil)

func TestBindFromGGUF(t *testing.T) {
	m := newTModel()
	path := filepath.Join(t.TempDir(), "m.gguf")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := gguf.NewWriter(f)
	shapes := map[string][]int{}
	for _, n := range tModelNames {
		shape := []int{3}
		switch {
		case n == "p.stem.0":
			shape = []int{2, 2}
		case n == "p.stem.1":
			shape = []int{2}
		case strings.HasSuffix(n, "fc1.weight"):
			shape = []int{3, 2}
		case n == "p.weight":
			shape = []int{1}
		}
		shapes[n] = shape
		typ := gguf.TypeF32
		if n == "p.stem.0" {
			typ = gguf.TypeBF16
		}
		if err := w.AddTensor(n, typ, shape); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string][]float32{}
	for i, n := range tModelNames {
		ti := w.Tensors()[i]
		count := int(ti.Size) / 4
		if ti.Type == gguf.TypeBF16 {
			count = int(ti.Size) / 2
		}
		b := make([]byte, ti.Size)
		for k := 0; k < count; k++ {
			v := float32(i) + float32(k)/8
			want[n] = append(want[n], v)
			if ti.Type == gguf.TypeBF16 {
				binary.LittleEndian.PutUint16(b[2*k:], kernels.Float32ToBF16(v))
			} else {
				binary.LittleEndian.PutUint32(b[4*k:], math.Float32bits(v))
			}
		}
		if err := w.WriteTensor(n, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	g, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if _, err := Bind(m, "p", g, BindOptions{}); err != nil {
		t.Fatal(err)
	}
	got := m.Stem[0].Data().([]float32)
	for k, v := range want["p.stem.0"] {
		if got[k] != v {
			t.Fatalf("p.stem.0[%d] = %v, want %v", k, got[k], v)
		}
	}
	if fc := m.Blocks[1].FC.Weight.Data().([]float32); fc[5] != want["p.blocks.1.mlp.fc1.weight"][5] {
		t.Fatalf("fc1 = %v", fc)
	}
	// a shape that disagrees is named
	m2 := newTModel()
	m2.Blocks[0].FC.Weight = dense(2, 3)
	if _, err := Bind(m2, "p", g, BindOptions{}); err == nil || !strings.Contains(err.Error(), `"p.blocks.0.mlp.fc1.weight" shape mismatch`) {
		t.Fatalf("shape mismatch: %v", err)
	}
}
