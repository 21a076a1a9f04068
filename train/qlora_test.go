package train

import (
	"context"
	"crypto/sha256"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"gorgonia.org/tensor"

	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/model"
	"github.com/magma-go/magma/model/ckpt"
	"github.com/magma-go/magma/nn"
)

// qloraPreset is the tiny preset with every decoder projection and the LM
// head a whole number of 256-weight Q4_K super-blocks wide (hidden 256,
// intermediate 512, head dim 64); tiny's 64-wide rows fit Q8_0 only.
const qloraPreset = `model:
  architectures: [MagmaForCausalLM]
  model_type: magma
  torch_dtype: float32
  image_token_index: 128257
  vision_config: {vision_backbone: convnext_tiny_custom, depths: [1, 1, 1, 1], dims: [16, 32, 48, 64], norm_eps: 1.0e-5,
    img_size: 64, max_num_crops: 4, img_anyres_strategy: crop, mm_projector_type: mlp2x_gelu, mm_hidden_size: 64, mm_use_im_start_end: false}
  text_config: {vocab_size: 128320, hidden_size: 256, intermediate_size: 512, num_hidden_layers: 2, num_attention_heads: 4,
    num_key_value_heads: 2, rms_norm_eps: 1.0e-5, rope_theta: 500000.0, max_position_embeddings: 2048, tie_word_embeddings: false,
    bos_token_id: 128000, eos_token_id: 128009, pad_token_id: 128256}
preprocessor: {anyres_strategy: crop, base_img_size: 64, num_crops: 4, image_mean: [0.48145466, 0.4578275, 0.40821073],
  image_std: [0.26862954, 0.26130258, 0.27577711]}
`

// quantizeLinears replaces every decoder projection and the LM head of m
// with its dt quantization (ggml blocks, kernels.Quantize), registered
// read-only as a mapped base is, and returns, for the twin model f (same
// weights), the same weights dequantized to float32 in place. It returns
// the quantized bytes, to check that training never writes them.
func quantizeLinears(t *testing.T, dt tensor.Dtype, m, f *model.Magma) [][]byte {
	t.Helper()
	var raws [][]byte
	for i := range m.LM.Decoder.Layers {
		L, F := &m.LM.Decoder.Layers[i], &f.LM.Decoder.Layers[i]
		pairs := [][2]*nn.Linear{
			{&L.SelfAttention.Query, &F.SelfAttention.Query}, {&L.SelfAttention.Key, &F.SelfAttention.Key},
			{&L.SelfAttention.Value, &F.SelfAttention.Value}, {&L.SelfAttention.Output, &F.SelfAttention.Output},
			{&L.MLP.Gate, &F.MLP.Gate}, {&L.MLP.Up, &F.MLP.Up}, {&L.MLP.Down, &F.MLP.Down},
		}
		for _, p := range pairs {
			raws = append(raws, quantizeInto(t, dt, p[0], p[1]))
		}
	}
	raws = append(raws, quantizeInto(t, dt, &m.LM.LMHead, &f.LM.LMHead))
	return raws
}

func quantizeInto(t *testing.T, dt tensor.Dtype, q, f *nn.Linear) []byte {
	t.Helper()
	w := q.Weight
	shape := []int(w.Shape().Clone())
	x := w.Data().([]float32)
	raw := make([]byte, kernels.QuantizedSize(dt, len(x)))
	if err := kernels.Quantize(dt, raw, x); err != nil {
		t.Fatal(err)
	}
	qs, err := kernels.QuantShape(dt, shape)
	if err != nil {
		t.Fatal(err)
	}
	qt, err := kernels.View(dt, qs, raw)
	if err != nil {
		t.Fatal(err)
	}
	kernels.RegisterReadOnly(raw)
	t.Cleanup(func() { kernels.UnregisterReadOnly(raw) })
	q.Weight = qt
	if err := kernels.Dequantize(dt, raw, f.Weight.Data().([]float32)); err != nil {
		t.Fatal(err)
	}
	return raw
}

func hashAll(raws [][]byte) [32]byte {
	h := sha256.New()
	for _, r := range raws {
		h.Write(r)
	}
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s
}

// QLoRA: trainable: lora over a quantized frozen base (Q8_0 and Q4_K
// projections and LM head; dx flows back through the quantized weights in
// kernels' LinearGradX) trains the same adapters as LoRA on the
// dequantized float32 base: 6 steps, every loss within 1e-4 relative, every
// lora_A/lora_B within 1e-4 (relative distance and largest element
// difference), and the base's bytes unchanged (sha256 before and after);
// merged, the adapters give the dequantized base's merged weights.
func TestQLoRAMatchesLoRAOnDequantizedBase(t *testing.T) {
	preset := filepath.Join(t.TempDir(), "qlora.yaml")
	if err := os.WriteFile(preset, []byte(qloraPreset), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, dt := range []tensor.Dtype{kernels.Q8_0, kernels.Q4K} {
		t.Run(kernels.DtypeName(dt), func(t *testing.T) {
			const steps = 6
			c := loraTestConfig(steps)
			c.Model.Preset = preset
			c.LoRA.Targets = nil // all seven projections
			c.GradAccum = 1
			// lr 3e-3, not the LoRA tests' 1e-2: there AdamW's first steps
			// turn the float32 summation-order noise of near-zero gradient
			// elements into 3e-4 differences in one adapter (the losses
			// still agree to 1e-6); at 3e-3 every adapter agrees to ~1e-6.
			c.Optimizer.LR = 3e-3
			qm, pp := testModel(t, c)
			fm, _ := testModel(t, c)
			raws := quantizeLinears(t, dt, qm, fm)
			before := hashAll(raws)
			samples := testSamples(t, qm, pp, 4)
			run := func(m *model.Magma) *Result {
				res, err := Run(context.Background(), Options{Config: c, Model: m, Preprocessor: pp, Data: openCycle(samples, 2),
					OutDir: t.TempDir(), Log: quiet(), NoPlot: true, NoCheckpoint: true})
				if err != nil {
					t.Fatal(err)
				}
				return res
			}
			q, f := run(qm), run(fm)
			if hashAll(raws) != before {
				t.Fatal("training wrote into the quantized base")
			}
			if len(q.Losses) != steps || len(f.Losses) != steps {
				t.Fatalf("%d and %d losses, want %d", len(q.Losses), len(f.Losses), steps)
			}
			for i := range q.Losses {
				if d := math.Abs(q.Losses[i] - f.Losses[i]); d > 1e-4*math.Max(1, math.Abs(f.Losses[i])) {
					t.Errorf("step %d: QLoRA loss %.7f, LoRA on the dequantized base %.7f", i+1, q.Losses[i], f.Losses[i])
				}
			}
			if !(q.Losses[steps-1] < q.Losses[0]) {
				t.Errorf("QLoRA loss did not fall: %v", q.Losses)
			}
			a, b := model.LoRATensors(qm.LM, ""), model.LoRATensors(fm.LM, "")
			if len(a) != 2*7*qm.Config.Text.NumHiddenLayers || len(a) != len(b) {
				t.Fatalf("%d and %d adapter tensors", len(a), len(b))
			}
			// Per tensor: the relative Frobenius distance ‖a−b‖/‖b‖ and the
			// largest element difference, both within 1e-4 (float32
			// summation order differs between the quantized kernels' tiles
			// and one sgemm; AdamW's first steps amplify it where a
			// gradient is near zero).
			worstRel, worstAbs := 0.0, 0.0
			for name, ta := range a {
				x, y := ta.Data().([]float32), b[name].Data().([]float32)
				num, den, mx := 0.0, 0.0, 0.0
				for i := range x {
					d := float64(x[i] - y[i])
					num += d * d
					den += float64(y[i]) * float64(y[i])
					mx = math.Max(mx, math.Abs(d))
				}
				rel := math.Sqrt(num / math.Max(den, 1e-30))
				if name[len(name)-len("lora_B.weight"):] == "lora_B.weight" && den == 0 {
					t.Errorf("%s is still zero", name)
				}
				if rel > 1e-4 || mx > 1e-4 {
					t.Errorf("%s: QLoRA vs LoRA on the dequantized base: relative distance %.3g, largest difference %.3g", name, rel, mx)
				}
				worstRel, worstAbs = math.Max(worstRel, rel), math.Max(worstAbs, mx)
			}
			// Merging (finetune libero --merge) folds the adapters into
			// float32 copies: dequantize(W) + ΔW, the dequantized base's merge.
			if _, err := qm.LM.MergeLoRA(); err != nil {
				t.Fatal(err)
			}
			if _, err := fm.LM.MergeLoRA(); err != nil {
				t.Fatal(err)
			}
			for _, pair := range [][2]*tensor.Dense{{qm.LM.Decoder.Layers[1].MLP.Down.Weight, fm.LM.Decoder.Layers[1].MLP.Down.Weight},
				{qm.LM.Decoder.Layers[0].SelfAttention.Query.Weight, fm.LM.Decoder.Layers[0].SelfAttention.Query.Weight}} {
				x, ok := pair[0].Data().([]float32)
				if !ok || !pair[0].Shape().Eq(pair[1].Shape()) {
					t.Fatalf("merged quantized weight: %v %v, want float32 %v", pair[0].Dtype(), pair[0].Shape(), pair[1].Shape())
				}
				for i, y := range pair[1].Data().([]float32) {
					if math.Abs(float64(x[i]-y)) > 1e-5 {
						t.Fatalf("merged weight [%d]: %v, dequantized base's merge %v", i, x[i], y)
					}
				}
			}
			t.Logf("%s: losses %.5f -> %.5f; adapters: worst relative distance %.2g, largest difference %.2g", kernels.DtypeName(dt), q.Losses[0], q.Losses[steps-1], worstRel, worstAbs)
		})
	}
}

// QLoRA from a quantized folder (magma quantize --type q4_k_m; finetune's
// model.init_from): the GGUF is mapped and used in place, 6 steps match
// LoRA on the same folder loaded as dequantized float32 copies (model.dtype
// f32) within 1e-4, the GGUF's bytes are unchanged (sha256), every
// checkpoint links the GGUF instead of writing the weights, and a run
// resumed from the step-3 checkpoint logs the uninterrupted run's losses.
func TestQLoRAFromQuantizedFolder(t *testing.T) {
	dir := t.TempDir()
	preset := filepath.Join(dir, "qlora.yaml")
	if err := os.WriteFile(preset, []byte(qloraPreset), 0o644); err != nil {
		t.Fatal(err)
	}
	c0 := testConfig(1)
	c0.Model.Preset = preset
	m, pp := testModel(t, c0)
	src, qdir := filepath.Join(dir, "base"), filepath.Join(dir, "base-q4_k_m")
	if err := m.Save(src, pp, ckpt.SaveOptions{DType: "BF16"}); err != nil {
		t.Fatal(err)
	}
	if _, err := model.Quantize(src, qdir, model.QuantizeOptions{Type: "q4_k_m"}); err != nil {
		t.Fatal(err)
	}
	gg := filepath.Join(qdir, model.GGUFFileName)
	sum := func() [32]byte {
		b, err := os.ReadFile(gg)
		if err != nil {
			t.Fatal(err)
		}
		return sha256.Sum256(b)
	}
	before := sum()
	const steps = 6
	run := func(out, dtype string, resume bool, stopAt int) (*Result, *model.Magma, error) {
		return runLoRAWith(t, out, steps, resume, stopAt, func(c *Config) {
			c.Model = ModelConfig{InitFrom: qdir, Dtype: dtype}
			c.LoRA.Targets = nil
			c.GradAccum = 1
			c.Optimizer.LR = 3e-3
			c.Checkpoint = CheckpointConfig{Every: 3}
		})
	}
	q, qm, err := run(t.TempDir(), "", false, 0)
	if err != nil {
		t.Fatal(err)
	}
	quantized := 0
	ps, _ := nn.Parameters(qm, "")
	for _, p := range ps {
		if kernels.IsQuant(p.T.Dtype()) {
			quantized++
			if !kernels.IsReadOnly(p.T) {
				t.Fatalf("%s is a %v copy, want the mapped GGUF's blocks", p.Name, p.T.Dtype())
			}
		}
	}
	if quantized < 7*qm.Config.Text.NumHiddenLayers {
		t.Fatalf("only %d quantized weights in use", quantized)
	}
	f, _, err := run(t.TempDir(), "f32", false, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range q.Losses {
		if d := math.Abs(q.Losses[i] - f.Losses[i]); d > 1e-4*math.Max(1, math.Abs(f.Losses[i])) {
			t.Errorf("step %d: QLoRA loss %.7f, LoRA on the dequantized folder %.7f", i+1, q.Losses[i], f.Losses[i])
		}
	}
	if sum() != before {
		t.Fatal("training wrote into the quantized base's GGUF")
	}
	a, err1 := os.Stat(gg)
	b, err2 := os.Stat(filepath.Join(q.Checkpoint, model.GGUFFileName))
	if err1 != nil || err2 != nil || !os.SameFile(a, b) {
		t.Fatalf("checkpoint %s does not link the base's GGUF: %v %v", q.Checkpoint, err1, err2)
	}
	out := t.TempDir()
	if _, _, err := run(out, "", false, 4); !errors.Is(err, errStop) {
		t.Fatalf("interrupted run: %v", err)
	}
	r, _, err := run(out, "", true, 0)
	if err != nil {
		t.Fatal(err)
	}
	if r.Resumed != 3 || !slices.Equal(r.Losses, q.Losses[3:]) {
		t.Errorf("resumed from %d with losses %v, uninterrupted %v", r.Resumed, r.Losses, q.Losses)
	}
	t.Logf("q4_k_m folder: %d quantized weights in place; losses %.5f -> %.5f (dequantized f32: %.5f -> %.5f)", quantized, q.Losses[0], q.Losses[steps-1], f.Losses[0], f.Losses[steps-1])
}
