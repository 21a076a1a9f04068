package ckpt

import (
	"path/filepath"
	"testing"

	"gorgonia.org/tensor"

	"github.com/magma-go/magma/kernels"
)

// mixedDir is a checkpoint of shards in mixed dtypes (see model's tests).
var mixedDir = filepath.Join("..", "testdata", "parity", "model_mixed")

// MappedSource names the file and tensor of a view and nothing else.
func TestMappedSource(t *testing.T) {
	ck, err := Open(mixedDir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	var name string
	var v *tensor.Dense
	for _, n := range ck.Names() {
		d, inPlace, err := ck.Dense(n, tensor.Dtype{})
		if err != nil {
			t.Fatal(err)
		}
		if inPlace {
			name, v = n, d
			break
		}
	}
	if v == nil {
		t.Fatal("no tensor of the checkpoint is used in place")
	}
	path, got, ok := MappedSource(v)
	if !ok || got != name || filepath.Dir(path) != mixedDir {
		t.Errorf("MappedSource(%s) = %s, %s, %v", name, path, got, ok)
	}
	cp := v.Clone().(*tensor.Dense)
	if _, _, ok := MappedSource(cp); ok {
		t.Error("a copy reported as mapped")
	}
	if n := v.Shape().TotalSize(); n > 1 {
		ti, file, err := ck.Info(name)
		if err != nil {
			t.Fatal(err)
		}
		f := ck.files[filepath.Base(file)]
		es := int64(kernels.ElemSize(v.Dtype()))
		part, err := kernels.View(v.Dtype(), []int{n - 1}, f.mapping[f.dataStart+ti.Begin+es:f.dataStart+ti.End])
		if err != nil {
			t.Fatal(err)
		}
		if _, _, ok := MappedSource(part); ok {
			t.Error("a view of part of a tensor reported as that tensor")
		}
	}
}
