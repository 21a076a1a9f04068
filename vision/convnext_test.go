package vision

import (
	"encoding/json"
	"github.com/magma-go/magma/nn"
	"github.com/magma-go/magma/vision/imaging"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gorgonia.org/tensor"

	"github.com/magma-go/magma/kernels"
)

const (
	parityDir   = "../model/testdata/parity"
	trunkPrefix = "vision_tower.clip_vision_model.trunk."
)

// fixtureConfig reads vision_config from the parity fixture's config.json.
func fixtureConfig(t testing.TB) Config {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(parityDir, "config.json"))
	if err != nil {
		t.Skipf("parity fixture not present: %v", err)
	}
	var c struct {
		Vision Config `json:"vision_config"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c.Vision
}

func shapeOf(t *tensor.Dense) []int { return []int(t.Shape()) }

func eqInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// loadFixtureTrunk builds the fixture's trunk and fills every tensor by name
// from model.safetensors, checking that the names and shapes agree both ways
// (checkpoint head.* tensors are expected to be unused).
func loadFixtureTrunk(t testing.TB) *ConvNeXt {
	t.Helper()
	cfg := fixtureConfig(t)
	m, err := NewConvNeXt(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m.Kernels = kernels.TestOptions()
	ckpt, err := readSafetensorsF32(filepath.Join(parityDir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	for _, nt := range params(m, trunkPrefix) {
		st, ok := ckpt[nt.Name]
		if !ok {
			t.Fatalf("tensor %s missing from the checkpoint", nt.Name)
		}
		if !eqInts(st.Shape, shapeOf(nt.T)) {
			t.Fatalf("tensor %s: checkpoint shape %v, model %v", nt.Name, st.Shape, shapeOf(nt.T))
		}
		copy(nt.T.Data().([]float32), st.Data)
		used[nt.Name] = true
	}
	for _, name := range sortedKeys(ckpt) {
		if strings.HasPrefix(name, trunkPrefix) && !used[name] && !strings.HasPrefix(name, trunkPrefix+"head.") {
			t.Fatalf("checkpoint tensor %s has no field in the trunk", name)
		}
	}
	return m
}

func TestConvNeXtNames(t *testing.T) {
	m, err := NewConvNeXt(Config{Depths: []int{1, 2, 1, 1}, Dims: []int{8, 16, 24, 32}, ImageSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]int{}
	for _, nt := range params(m, "") {
		got[nt.Name] = shapeOf(nt.T)
	}
	want := map[string][]int{
		"stem.0.weight":                    {8, 3, 4, 4},
		"stem.0.bias":                      {8},
		"stem.1.weight":                    {8},
		"stem.1.bias":                      {8},
		"stages.0.blocks.0.conv_dw.weight": {8, 1, 7, 7},
		"stages.0.blocks.0.conv_dw.bias":   {8},
		"stages.0.blocks.0.norm.weight":    {8},
		"stages.0.blocks.0.norm.bias":      {8},
		"stages.0.blocks.0.mlp.fc1.weight": {32, 8},
		"stages.0.blocks.0.mlp.fc1.bias":   {32},
		"stages.0.blocks.0.mlp.fc2.weight": {8, 32},
		"stages.0.blocks.0.mlp.fc2.bias":   {8},
		"stages.0.blocks.0.gamma":          {8},
		"stages.1.downsample.0.weight":     {8},
		"stages.1.downsample.0.bias":       {8},
		"stages.1.downsample.1.weight":     {16, 8, 2, 2},
		"stages.1.downsample.1.bias":       {16},
		"stages.1.blocks.1.mlp.fc2.weight": {16, 64},
		"stages.3.downsample.1.weight":     {32, 24, 2, 2},
		"stages.3.blocks.0.gamma":          {32},
		"stages.2.blocks.0.conv_dw.weight": {24, 1, 7, 7},
	}
	for name, shape := range want {
		if !eqInts(got[name], shape) {
			t.Errorf("%s: got shape %v, want %v", name, got[name], shape)
		}
	}
	if _, ok := got["stages.0.downsample.0.weight"]; ok {
		t.Error("stage 0 must not have a downsample")
	}
	// 4 stem + 3 downsamples*4 + 5 blocks*9.
	if len(got) != 4+12+45 {
		t.Errorf("%d tensors, want %d", len(got), 4+12+45)
	}
	if nn.ParamNames(m, "p.")[m.Stem.Conv.Weight] != "p.stem.0.weight" {
		t.Error("Names prefix")
	}
}

// paramFormula counts parameters independently of the struct walk:
// stem 48C0+C0 + 2C0; downsample 2Cin + 4CinCout + Cout;
// block 49C+C (dw) + 2C (norm) + 4C²+4C (fc1) + 4C²+C (fc2) + C (gamma).
func paramFormula(depths, dims []int) int {
	n := 48*dims[0] + dims[0] + 2*dims[0]
	for s, c := range dims {
		if s > 0 {
			n += 2*dims[s-1] + 4*dims[s-1]*c + c
		}
		n += depths[s] * (8*c*c + 58*c)
	}
	return n
}

func TestParamCount(t *testing.T) {
	for _, name := range []string{"convnext_tiny", "convnext_xxlarge", "convnextxxlarge"} {
		m, err := NewConvNeXt(Config{Backbone: name, ImageSize: 512})
		if err != nil {
			t.Fatal(err)
		}
		c := m.Config()
		if got, want := paramCount(m), paramFormula(c.Depths, c.Dims); got != want {
			t.Errorf("%s: ParamCount %d, formula %d", name, got, want)
		}
		t.Logf("%s: %d parameters (eps %g)", name, paramCount(m), c.NormEps)
	}
	// timm's convnext_tiny has 28.59M parameters including a 768-wide head
	// norm (1536) and the 1000-class classifier (769000).
	m, _ := NewConvNeXt(Config{Backbone: "convnext_tiny", ImageSize: 512})
	if got := paramCount(m) + 1536 + 769000; got != 28589128 {
		t.Errorf("convnext_tiny + head = %d, timm reports 28589128", got)
	}
	if _, err := NewConvNeXt(Config{Backbone: "nope", ImageSize: 512}); err == nil {
		t.Error("unknown backbone accepted")
	}
}

// skipIfNoKernels skips while the kernels package is still a stub.
func skipIfNoKernels(t testing.TB, err error) {
	if err != nil && strings.Contains(err.Error(), "not implemented") {
		t.Skipf("kernels not implemented yet: %v", err)
	}
}

type goldenCase struct {
	Image string `json:"image"`
	Grid  [2]int `json:"grid"`
}

func goldenCases(t testing.TB) map[string]goldenCase {
	raw, err := os.ReadFile(filepath.Join(parityDir, "golden.json"))
	if err != nil {
		t.Skipf("golden.json not present: %v", err)
	}
	var g struct {
		Cases map[string]goldenCase `json:"cases"`
	}
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatal(err)
	}
	return g.Cases
}

var paritycases = []string{"square", "wide", "tall", "big"}

func TestPreprocessParity(t *testing.T) {
	cfg := fixtureConfig(t)
	cases := goldenCases(t)
	for _, name := range paritycases {
		gc, ok := cases[name]
		if !ok {
			t.Fatalf("golden.json has no case %s", name)
		}
		img, err := imaging.DecodeImage(filepath.Join(parityDir, gc.Image))
		if err != nil {
			t.Fatal(err)
		}
		px, err := imaging.Preprocess(img, cfg.ImageSize, cfg.MaxNumCrops, imaging.CLIPMean, imaging.CLIPStd)
		if err != nil {
			t.Fatal(err)
		}
		if px.Rows != gc.Grid[0] || px.Cols != gc.Grid[1] {
			t.Errorf("%s: grid %dx%d, golden %v", name, px.Rows, px.Cols, gc.Grid)
		}
		gold, err := readSafetensorsF32(filepath.Join(parityDir, "golden_"+name+".safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		ref := gold["pixel_values"]
		if want := []int{px.NumCrops(), 3, px.Base, px.Base}; !eqInts(ref.Shape, want) {
			t.Fatalf("%s: golden pixel_values %v, ours %v", name, ref.Shape, want)
		}
		got := px.NCHW()
		maxd := 0.0
		for i := range got {
			maxd = math.Max(maxd, math.Abs(float64(got[i])-float64(ref.Data[i])))
		}
		t.Logf("%s (%dx%d → %dx%d crops): pixel_values max |diff| = %.3g", name, img.W, img.H, px.Rows, px.Cols, maxd)
		if maxd > 1e-5 {
			t.Errorf("%s: pixel_values max |diff| %g > 1e-5", name, maxd)
		}
	}
}

func TestConvNeXtParity(t *testing.T) {
	m := loadFixtureTrunk(t)
	cases := goldenCases(t)
	for _, name := range paritycases {
		gold, err := readSafetensorsF32(filepath.Join(parityDir, "golden_"+name+".safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		// Feed the golden pixels so this test isolates the trunk.
		pv := gold["pixel_values"]
		n, base := pv.Shape[0], pv.Shape[2]
		gc := cases[name]
		px := &imaging.Pixels{Rows: gc.Grid[0], Cols: gc.Grid[1], Base: base, Data: make([]float32, len(pv.Data))}
		if px.NumCrops() != n {
			t.Fatalf("%s: grid %v but %d crops", name, gc.Grid, n)
		}
		s := base * base
		for k := 0; k < n; k++ {
			for c := 0; c < 3; c++ {
				for i := 0; i < s; i++ {
					px.Data[(k*s+i)*3+c] = pv.Data[(k*3+c)*s+i]
				}
			}
		}
		out, g, err := m.Encode(px)
		skipIfNoKernels(t, err)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		ref := gold["vision_features"]
		if want := []int{g.N, g.H, g.W, m.OutDim()}; !eqInts(ref.Shape, want) {
			t.Fatalf("%s: golden vision_features %v, ours %v", name, ref.Shape, want)
		}
		if !eqInts(shapeOf(out), []int{g.N * g.H * g.W, m.OutDim()}) {
			t.Fatalf("%s: output shape %v", name, out.Shape())
		}
		got := out.Data().([]float32)
		maxd, maxr := 0.0, 0.0
		for i := range got {
			maxd = math.Max(maxd, math.Abs(float64(got[i])-float64(ref.Data[i])))
			maxr = math.Max(maxr, math.Abs(float64(ref.Data[i])))
		}
		t.Logf("%s: vision_features max |diff| = %.3g, max |ref| = %.3g, relative %.3g", name, maxd, maxr, maxd/maxr)
		if maxd/maxr > 1e-4 {
			t.Errorf("%s: relative diff %g > 1e-4", name, maxd/maxr)
		}
	}
}

// TestEndToEndParity runs decode → preprocess → trunk from the PNG files.
func TestEndToEndParity(t *testing.T) {
	m := loadFixtureTrunk(t)
	cfg := m.Config()
	cases := goldenCases(t)
	for _, name := range paritycases {
		img, err := imaging.DecodeImage(filepath.Join(parityDir, cases[name].Image))
		if err != nil {
			t.Fatal(err)
		}
		px, err := imaging.Preprocess(img, cfg.ImageSize, cfg.MaxNumCrops, imaging.CLIPMean, imaging.CLIPStd)
		if err != nil {
			t.Fatal(err)
		}
		out, _, err := m.Encode(px)
		skipIfNoKernels(t, err)
		if err != nil {
			t.Fatal(err)
		}
		gold, err := readSafetensorsF32(filepath.Join(parityDir, "golden_"+name+".safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		ref := gold["vision_features"].Data
		got := out.Data().([]float32)
		if len(got) != len(ref) {
			t.Fatalf("%s: %d values, golden %d", name, len(got), len(ref))
		}
		maxd, maxr := 0.0, 0.0
		for i := range got {
			maxd = math.Max(maxd, math.Abs(float64(got[i])-float64(ref[i])))
			maxr = math.Max(maxr, math.Abs(float64(ref[i])))
		}
		t.Logf("%s: end-to-end relative diff %.3g", name, maxd/maxr)
		if maxd/maxr > 1e-4 {
			t.Errorf("%s: end-to-end relative diff %g > 1e-4", name, maxd/maxr)
		}
	}
}

func TestForwardErrors(t *testing.T) {
	m, err := NewConvNeXt(Config{Depths: []int{1, 1, 1, 1}, Dims: []int{8, 8, 8, 8}, ImageSize: 32})
	if err != nil {
		t.Fatal(err)
	}
	m.Kernels = kernels.TestOptions()
	good := &imaging.Pixels{Rows: 1, Cols: 1, Base: 32, Data: make([]float32, 32*32*3)}
	bad := []struct {
		name string
		px   *imaging.Pixels
	}{
		{"nil", nil},
		{"not multiple of 32", &imaging.Pixels{Rows: 1, Cols: 1, Base: 48, Data: make([]float32, 48*48*3)}},
		{"short data", &imaging.Pixels{Rows: 1, Cols: 2, Base: 32, Data: make([]float32, 32*32*3)}},
		{"zero crops", &imaging.Pixels{Base: 32}},
	}
	for _, c := range bad {
		if _, _, err := m.Encode(c.px); err == nil {
			t.Errorf("%s: no error", c.name)
		} else {
			t.Logf("%s: %v", c.name, err)
		}
	}
	// Grid disagreeing with the input shape.
	b := kernels.NewBuilder(nil)
	x := b.Input("x", PixelTensor(good))
	if m.Forward(b, x, kernels.Grid{N: 2, H: 32, W: 32}); b.Err() == nil {
		t.Error("grid/shape mismatch accepted")
	}
	// A missing (nil) parameter is an error, not a panic.
	m.Stages[2].Blocks[0].Gamma = nil
	b = kernels.NewBuilder(nil)
	x = b.Input("x", PixelTensor(good))
	m.Forward(b, x, CropGrid(good))
	if err = b.Err(); err == nil || !strings.Contains(err.Error(), "gamma") {
		t.Errorf("nil gamma: %v", err)
	} else {
		t.Log(err)
	}
	// An unconstructed model.
	var empty ConvNeXt
	if _, _, err := empty.Encode(good); err == nil {
		t.Error("empty model accepted")
	}
}

func TestCropGridAndPixelTensor(t *testing.T) {
	const base = 32
	px := &imaging.Pixels{Rows: 2, Cols: 3, Base: base, Data: make([]float32, 6*base*base*3)}
	if g := CropGrid(px); g.N != 6 || g.H != base || g.W != base {
		t.Fatalf("CropGrid = %+v", g)
	}
	x := PixelTensor(px)
	if s := x.Shape(); s[0] != 6*base*base || s[1] != 3 {
		t.Fatalf("PixelTensor shape %v", s)
	}
	if &x.Data().([]float32)[0] != &px.Data[0] {
		t.Fatal("PixelTensor copied the pixels")
	}
}
