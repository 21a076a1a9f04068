package model

import (
	"github.com/magma-go/magma/model/ckpt"
	"github.com/magma-go/magma/nn"
	"strings"
	"testing"

	"gorgonia.org/tensor"
)

type tNorm struct {
	Weight *tensor.Dense `weights:"weight"`
	Bias   *tensor.Dense `weights:"bias,optional"`
}

type tBlock struct {
	Norm  tNorm         `weights:"norm"`
	FC    *tNorm        `weights:"mlp.fc1"`
	Gamma *tensor.Dense `weights:"gamma"`
	Cache []float32     // untagged: skipped
	Skip  *tensor.Dense `weights:"-"`
}

type tModel struct {
	Stem   []*tensor.Dense `weights:"stem"`
	Blocks []tBlock        `weights:"blocks"`
	Head   *tNorm          `weights:"head"` // nil: no tensors
	Inner  tNorm           `weights:",inline"`
	Name   string
}

func dense(shape ...int) *tensor.Dense {
	return tensor.New(tensor.WithShape(shape...), tensor.Of(tensor.Float32))
}

func newTModel() *tModel {
	m := &tModel{Stem: []*tensor.Dense{dense(2, 2), dense(2)}}
	for i := 0; i < 2; i++ {
		m.Blocks = append(m.Blocks, tBlock{
			Norm:  tNorm{Weight: dense(3), Bias: dense(3)},
			FC:    &tNorm{Weight: dense(3, 2)},
			Gamma: dense(3),
			Skip:  dense(1),
		})
	}
	m.Inner = tNorm{Weight: dense(1)}
	return m
}

var tModelNames = []string{
	"p.stem.0", "p.stem.1",
	"p.blocks.0.norm.weight", "p.blocks.0.norm.bias", "p.blocks.0.mlp.fc1.weight", "p.blocks.0.gamma",
	"p.blocks.1.norm.weight", "p.blocks.1.norm.bias", "p.blocks.1.mlp.fc1.weight", "p.blocks.1.gamma",
	"p.weight",
}

func TestWalkNames(t *testing.T) {
	var got []string
	ps, err := nn.Parameters(newTModel(), "p")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		got = append(got, p.Name)
	}
	if strings.Join(got, " ") != strings.Join(tModelNames, " ") {
		t.Errorf("walk order\n got %v\nwant %v", got, tModelNames)
	}
	m := newTModel()
	names := nn.ParamNames(m, "p.")
	if names[m.Blocks[1].FC.Weight] != "p.blocks.1.mlp.fc1.weight" || len(names) != len(tModelNames) {
		t.Errorf("Names: %v", names)
	}
	if n, err := nn.ParamCount(m); err != nil || n != 4+2+2*(3+3+6+3)+1 {
		t.Errorf("ParamCount=%d %v", n, err)
	}
	by, err := ParamCountByPrefix(m, "p", 2)
	if err != nil || by["p.blocks"] != 30 || by["p.stem"] != 6 {
		t.Errorf("by prefix %v %v", by, err)
	}
}

// memSource is an in-memory TensorSource.
type memSource map[string]ckpt.WriteItem

func (s memSource) Has(n string) bool { _, ok := s[n]; return ok }
func (s memSource) Tensor(n string) ([]float32, []int, error) {
	t := s[n]
	return t.Data, t.Shape, nil
}

func TestBindCollectSave(t *testing.T) {
	src := newTModel()
	i := float32(0)
	for _, p := range must(nn.Parameters(src, "p")) {
		d := p.T
		for j := range d.Data().([]float32) {
			i++
			d.Data().([]float32)[j] = i
		}
	}
	named, err := ckpt.WriteItems(src, "p")
	if err != nil {
		t.Fatal(err)
	}
	named = append(named, ckpt.WriteItem{Name: "p.head.fc.weight", Shape: []int{1}, Data: []float32{9}})
	dir := t.TempDir()
	if err := ckpt.Save(dir, named, ckpt.SaveOptions{MaxShardSize: 40}); err != nil {
		t.Fatal(err)
	}
	ck, err := ckpt.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	dst := newTModel()
	if _, err := Bind(dst, "p", ck, BindOptions{}); err != nil {
		t.Fatal(err)
	}
	a, _ := ckpt.WriteItems(src, "p")
	b, _ := ckpt.WriteItems(dst, "p")
	for k := range a {
		for j := range a[k].Data {
			if a[k].Data[j] != b[k].Data[j] {
				t.Fatalf("%s differs", a[k].Name)
			}
		}
	}
	unused, err := Unused(ck.Names(), Binding{dst, "p"})
	if err != nil || len(unused) != 1 || unused[0] != "p.head.fc.weight" {
		t.Errorf("unused %v %v", unused, err)
	}
}

func TestBindErrors(t *testing.T) {
	full := memSource{}
	m := newTModel()
	named, _ := ckpt.WriteItems(m, "p")
	for _, n := range named {
		full[n.Name] = n
	}
	t.Run("optional missing ok", func(t *testing.T) {
		s := memSource{}
		for k, v := range full {
			if !strings.HasSuffix(k, ".bias") {
				s[k] = v
			}
		}
		if _, err := Bind(newTModel(), "p", s, BindOptions{}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		s := memSource{}
		for k, v := range full {
			if k != "p.blocks.1.gamma" {
				s[k] = v
			}
		}
		_, err := Bind(newTModel(), "p", s, BindOptions{})
		if err == nil || !strings.Contains(err.Error(), `"p.blocks.1.gamma" missing`) {
			t.Errorf("got %v", err)
		}
	})
	t.Run("shape mismatch", func(t *testing.T) {
		s := memSource{}
		for k, v := range full {
			s[k] = v
		}
		s["p.stem.0"] = ckpt.WriteItem{Shape: []int{4}, Data: make([]float32, 4)}
		_, err := Bind(newTModel(), "p", s, BindOptions{})
		if err == nil || !strings.Contains(err.Error(), `"p.stem.0" shape mismatch: expected [2 2], got [4]`) {
			t.Errorf("got %v", err)
		}
	})
	t.Run("nil required tensor", func(t *testing.T) {
		m := newTModel()
		m.Blocks[0].Gamma = nil
		_, err := Bind(m, "p", full, BindOptions{})
		if err == nil || !strings.Contains(err.Error(), "p.blocks.0.gamma") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("nil optional tensor", func(t *testing.T) {
		m := newTModel()
		m.Blocks[0].Norm.Bias = nil
		if _, err := Bind(m, "p", full, BindOptions{}); err != nil {
			t.Error(err)
		}
	})
	t.Run("bad field type", func(t *testing.T) {
		type bad struct {
			X int `weights:"x"`
		}
		if _, err := nn.Parameters(&bad{}, ""); err == nil {
			t.Error("int field accepted")
		}
	})
	t.Run("duplicate names", func(t *testing.T) {
		type dup struct {
			A *tensor.Dense `weights:"w"`
			B *tensor.Dense `weights:"w"`
		}
		if _, err := nn.Parameters(&dup{A: dense(1), B: dense(1)}, ""); err == nil {
			t.Error("duplicate accepted")
		}
	})
}
