package nn

import (
	"strings"
	"testing"

	"gorgonia.org/tensor"
)

type tNorm struct {
	Weight *tensor.Dense `weights:"weight,norm"`
	Bias   *tensor.Dense `weights:"bias,nodecay"`
}

type tBlock struct {
	Norm  tNorm         `weights:"norm"`
	Proj  Linear        `weights:"proj"`
	Extra *tensor.Dense `weights:"extra,optional"`
	Skip  *tensor.Dense `weights:"-"`
	plain int
}

type tModel struct {
	Embed  Embedding `weights:"embed"`
	Blocks []tBlock  `weights:"blocks"`
	Head   *Linear   `weights:"head"`
	Inner  struct {
		Scale *tensor.Dense `weights:"scale"`
	} `weights:",inline"`
}

func z(shape ...int) *tensor.Dense { return Zeros(tensor.Float32, shape...) }

func TestParameters(t *testing.T) {
	m := &tModel{Embed: Embedding{Weight: z(5, 2)}}
	m.Blocks = []tBlock{
		{Norm: tNorm{z(2), z(2)}, Proj: NewLinear(true, 3, 2), Extra: z(1), Skip: z(9)},
		{Norm: tNorm{z(2), z(2)}, Proj: NewLinear(false, 3, 2)},
	}
	m.Inner.Scale = z(4)
	ps, err := Parameters(m, "lm.")
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		name               string
		size               int
		optional, norm, nd bool
	}
	wants := []want{
		{"lm.embed.weight", 10, false, false, false},
		{"lm.blocks.0.norm.weight", 2, false, true, true},
		{"lm.blocks.0.norm.bias", 2, false, false, true},
		{"lm.blocks.0.proj.weight", 6, false, false, false},
		{"lm.blocks.0.proj.bias", 3, false, false, true},
		{"lm.blocks.0.extra", 1, true, false, false},
		{"lm.blocks.1.norm.weight", 2, false, true, true},
		{"lm.blocks.1.norm.bias", 2, false, false, true},
		{"lm.blocks.1.proj.weight", 6, false, false, false},
		{"lm.scale", 4, false, false, false},
	}
	if len(ps) != len(wants) {
		for _, p := range ps {
			t.Log(p.Name)
		}
		t.Fatalf("got %d parameters, want %d", len(ps), len(wants))
	}
	for i, w := range wants {
		p := ps[i]
		if p.Name != w.name || p.T.Shape().TotalSize() != w.size || p.Optional != w.optional || p.Norm != w.norm || p.NoDecay != w.nd {
			t.Errorf("param %d = {%s %d optional=%v norm=%v nodecay=%v}, want %+v", i, p.Name, p.T.Shape().TotalSize(), p.Optional, p.Norm, p.NoDecay, w)
		}
	}
	names := ParamNames(m, "")
	if names[m.Blocks[1].Proj.Weight] != "blocks.1.proj.weight" || len(names) != len(wants) {
		t.Errorf("ParamNames: %v", names)
	}
	if n, err := ParamCount(m); err != nil || n != 38 {
		t.Errorf("ParamCount = %d, %v; want 38", n, err)
	}
}

type badTag struct {
	W *tensor.Dense `weights:"w,sometimes"`
}
type emptyTag struct {
	W *tensor.Dense `weights:""`
}
type unexported struct {
	w *tensor.Dense `weights:"w"`
}
type twice struct {
	A *tensor.Dense `weights:"w"`
	B *tensor.Dense `weights:"w"`
}
type wrongKind struct {
	N int `weights:"n"`
}
type required struct {
	W *tensor.Dense `weights:"w"`
}
type loop struct {
	Next *loop `weights:"next"`
}

func TestParametersErrors(t *testing.T) {
	l := &loop{}
	l.Next = l
	cases := []struct {
		name string
		root any
		want string
	}{
		{"nil root", nil, "nil root"},
		{"unknown option", &badTag{W: z(1)}, "unknown tag option"},
		{"empty name", &emptyTag{W: z(1)}, "empty tag name"},
		{"unexported", &unexported{w: z(1)}, "exported"},
		{"same name twice", &twice{A: z(1), B: z(1)}, "same tensor name"},
		{"wrong kind", &wrongKind{}, "cannot hold weights"},
		{"nil required", &required{}, "is nil"},
		{"cycle", l, "deeper than"},
	}
	for _, c := range cases {
		_, err := Parameters(c.root, "")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
	if _, err := ParamCount(&required{}); err == nil {
		t.Error("ParamCount of a model with a nil required tensor: no error")
	}
}
