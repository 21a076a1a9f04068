package pth

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gorgonia.org/tensor"

	"github.com/magma-go/magma/kernels"
)

// fixture is testdata/NAME.json, written with the .pth by
// scripts/fixtures/pth_fixtures.py from what torch.load reads back.
type fixture struct {
	Error   string `json:"error"`
	Tensors []struct {
		Name  string    `json:"name"`
		DType string    `json:"dtype"`
		Shape []int     `json:"shape"`
		Hex   string    `json:"hex"`
		F32   []float64 `json:"f32"`
	} `json:"tensors"`
}

func fixtures(t testing.TB) map[string]fixture {
	t.Helper()
	paths, err := filepath.Glob("testdata/*.json")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	out := map[string]fixture{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var fx fixture
		if err := json.Unmarshal(b, &fx); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out[strings.TrimSuffix(p, ".json")+".pth"] = fx
	}
	return out
}

var wantGoDtype = map[string]tensor.Dtype{
	"F32": tensor.Float32, "F64": tensor.Float64, "BF16": kernels.BFloat16, "F16": kernels.Float16,
	"I64": tensor.Int64, "I32": tensor.Int32, "I16": tensor.Int16, "I8": tensor.Int8,
	"U8": tensor.Uint8, "BOOL": tensor.Bool,
}

// TestFixturesRoundTrip reads every torch.save fixture and compares names
// (order included), dtypes, shapes, raw bytes and float32 values exactly
// with what torch.load gave.
func TestFixturesRoundTrip(t *testing.T) {
	seen := map[string]bool{}
	for path, fx := range fixtures(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			f, err := Open(path)
			if fx.Error != "" {
				if err == nil {
					f.Close()
					t.Fatalf("Open succeeded, want an error containing %q", fx.Error)
				}
				if !strings.Contains(err.Error(), fx.Error) || !strings.Contains(err.Error(), path) {
					t.Fatalf("error %q should name %q and the file", err, fx.Error)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var names []string
			for _, w := range fx.Tensors {
				names = append(names, w.Name)
			}
			if got := f.Names(); !reflect.DeepEqual(got, names) {
				t.Fatalf("names %q, want %q", got, names)
			}
			for _, w := range fx.Tensors {
				seen[w.DType] = true
				raw, info, err := f.Raw(w.Name)
				if err != nil {
					t.Fatal(err)
				}
				if info.DType != w.DType || !reflect.DeepEqual(info.Shape, w.Shape) {
					t.Fatalf("%s: %s %v, want %s %v", w.Name, info.DType, info.Shape, w.DType, w.Shape)
				}
				if hex.EncodeToString(raw) != w.Hex {
					t.Fatalf("%s: bytes %x, want %s", w.Name, raw, w.Hex)
				}
				d, err := f.Tensor(w.Name)
				if err != nil {
					t.Fatal(err)
				}
				if d.Dtype() != wantGoDtype[w.DType] {
					t.Fatalf("%s: Go dtype %v, want %v", w.Name, d.Dtype(), wantGoDtype[w.DType])
				}
				if len(w.Shape) > 0 && !reflect.DeepEqual([]int(d.Shape()), w.Shape) {
					t.Fatalf("%s: tensor shape %v, want %v", w.Name, d.Shape(), w.Shape)
				}
				if len(w.Shape) > 0 && len(w.F32) > 0 { // gorgonia's Data() panics on an empty tensor
					if n := reflect.ValueOf(d.Data()).Len(); n != len(w.F32) {
						t.Fatalf("%s: %d elements, want %d", w.Name, n, len(w.F32))
					}
				}
				vals, shape, err := f.Float32(w.Name)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(shape, w.Shape) || len(vals) != len(w.F32) {
					t.Fatalf("%s: Float32 shape %v (%d values), want %v (%d)", w.Name, shape, len(vals), w.Shape, len(w.F32))
				}
				for i, v := range vals {
					if float64(v) != w.F32[i] && !(math.IsNaN(float64(v)) && math.IsNaN(w.F32[i])) {
						t.Fatalf("%s[%d] = %v, want %v", w.Name, i, v, w.F32[i])
					}
				}
			}
		})
	}
	for _, dt := range []string{"F32", "F64", "BF16", "F16", "I64", "I32", "U8", "BOOL"} {
		if !seen[dt] {
			t.Errorf("no fixture covers dtype %s", dt)
		}
	}
}

// TestTensorValues checks Tensor's backing values for a few fixture tensors
// (besides the byte comparison of TestFixturesRoundTrip).
func TestTensorValues(t *testing.T) {
	f, err := Open("testdata/views.pth")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// big = arange(60).reshape(3,4,5); slice = big[1:, 1:3, ::2]
	d, err := f.Tensor("slice")
	if err != nil {
		t.Fatal(err)
	}
	want := []float32{}
	for i := 1; i < 3; i++ {
		for j := 1; j < 3; j++ {
			for k := 0; k < 5; k += 2 {
				want = append(want, float32(i*20+j*5+k))
			}
		}
	}
	if !reflect.DeepEqual(d.Data(), want) || !reflect.DeepEqual([]int(d.Shape()), []int{2, 2, 3}) {
		t.Fatalf("slice = %v %v, want %v", d.Shape(), d.Data(), want)
	}
	// transpose(0, 2) of big: element [k][j][i] = big[i][j][k]
	tr, err := f.Tensor("transpose")
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := tr.At(4, 3, 2); v != float32(2*20+3*5+4) {
		t.Fatalf("transpose[4,3,2] = %v", v)
	}
	e, err := f.Tensor("expand")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(e.Data(), []float32{0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2}) {
		t.Fatalf("expand = %v", e.Data())
	}
	g, err := Open("testdata/dtypes.pth")
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	i64, err := g.Tensor("i64")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(i64.Data(), []int64{-(1 << 40), -1, 0, 1, 1<<33 + 5, 1 << 62}) {
		t.Fatalf("i64 = %v", i64.Data())
	}
	s, err := g.Tensor("scalar")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s.Data(), float32(2.5)) && !reflect.DeepEqual(s.Data(), []float32{2.5}) {
		t.Fatalf("scalar = %#v (shape %v)", s.Data(), s.Shape())
	}
	if info, _ := g.Info("scalar"); len(info.Shape) != 0 {
		t.Fatalf("scalar shape %v", info.Shape)
	}
	if _, err := g.Tensor("nope"); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("missing tensor: %v", err)
	}
}

// TestEvilFixtures: the pickles that call os.system, builtins.eval and
// subprocess.Popen are refused naming the global, with ErrGlobal.
func TestEvilFixtures(t *testing.T) {
	for _, name := range []string{"evil_os_system", "evil_eval", "evil_popen"} {
		_, err := Open("testdata/" + name + ".pth")
		if err == nil || !errors.Is(err, ErrGlobal) {
			t.Fatalf("%s: %v, want ErrGlobal", name, err)
		}
	}
}
