package train

import (
	"context"
	"math"
	"strings"
	"testing"

	"gorgonia.org/tensor"

	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/model"
	"github.com/magma-go/magma/nn"
)

// halfBits copies the raw 16-bit patterns of every parameter.
func halfBits(t *testing.T, m *model.Magma) map[string][]kernels.BF16 {
	t.Helper()
	out := map[string][]kernels.BF16{}
	ps, err := nn.Parameters(m, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		d, ok := p.T.Data().([]kernels.BF16)
		if !ok {
			t.Fatalf("%s is %v, want bf16", p.Name, p.T.Dtype())
		}
		out[p.Name] = append([]kernels.BF16(nil), d...)
	}
	return out
}

// trainable: lora on a frozen bf16 base: the base stays bf16 and bit for
// bit unchanged, only the float32 adapters (and their AdamW moments) train,
// and the run follows the same run on the float32 upcast of the base: the
// losses within 1e-5 relative and the adapters within 1e-4 of their largest
// magnitude after 6 steps (float32 summation order differs in the bf16
// GEMV/GEMM paths, nothing else does).
func TestLoRAOnBF16Base(t *testing.T) {
	const steps = 6
	run := func(half bool) (*Result, *model.Magma, map[string][]kernels.BF16) {
		c := loraTestConfig(steps)
		m, pp := testModel(t, c)
		if err := nn.ConvertParams(m, kernels.BFloat16); err != nil {
			t.Fatal(err)
		}
		var before map[string][]kernels.BF16
		if half {
			before = halfBits(t, m)
		} else if err := nn.ConvertParams(m, tensor.Float32); err != nil {
			t.Fatal(err)
		}
		samples := testSamples(t, m, pp, 5)
		o := Options{Config: c, Model: m, Preprocessor: pp, Data: openCycle(samples, 2), OutDir: t.TempDir(), Log: quiet(), NoPlot: true}
		res, err := Run(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		return res, m, before
	}
	resH, mH, before := run(true)
	resU, mU, _ := run(false)
	after := halfBits(t, mH)
	for name, w := range before {
		for i, x := range after[name] {
			if x != w[i] {
				t.Fatalf("frozen bf16 %s[%d] changed: %#x -> %#x", name, i, w[i], x)
			}
		}
	}
	if len(resH.Losses) != len(resU.Losses) {
		t.Fatalf("%d losses, float32 run %d", len(resH.Losses), len(resU.Losses))
	}
	for i := range resH.Losses {
		if d := math.Abs(resH.Losses[i]-resU.Losses[i]) / math.Abs(resU.Losses[i]); d > 1e-5 {
			t.Errorf("loss %d: bf16 base %.7g, float32 upcast %.7g (rel %.3g)", i, resH.Losses[i], resU.Losses[i], d)
		}
	}
	a, b := model.LoRATensors(mH.LM, ""), model.LoRATensors(mU.LM, "")
	worst := 0.0
	for k, v := range a {
		got, want := v.Data().([]float32), b[k].Data().([]float32)
		var md, mr float64
		for i := range got {
			md = math.Max(md, math.Abs(float64(got[i]-want[i])))
			mr = math.Max(mr, math.Abs(float64(want[i])))
		}
		worst = math.Max(worst, md/mr)
		if md > 1e-4*mr {
			t.Errorf("adapter %s: max diff %.3g, max |ref| %.3g", k, md, mr)
		}
	}
	t.Logf("losses %.5f -> %.5f; adapters vs the float32 upcast run: worst relative diff %.3g", resH.Losses[0], resH.FinalLoss, worst)
}

// Training the base weights of a bf16 model is refused by name.
func TestFullTrainingOnBF16Refused(t *testing.T) {
	c := testConfig(2)
	m, pp := testModel(t, c)
	if err := nn.ConvertParams(m, kernels.BFloat16); err != nil {
		t.Fatal(err)
	}
	samples := testSamples(t, m, pp, 2)
	_, err := Run(context.Background(), Options{Config: c, Model: m, Preprocessor: pp, Data: openCycle(samples, 2), OutDir: t.TempDir(), Log: quiet(), NoPlot: true})
	if err == nil || !strings.Contains(err.Error(), "is bf16 and frozen; use trainable: lora or --dtype f32") {
		t.Fatalf("full training of a bf16 model: %v", err)
	}
}
