package model

import (
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"gorgonia.org/tensor"

	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/model/ckpt"
	"github.com/magma-go/magma/model/gguf"
	"github.com/magma-go/magma/nn"
	"github.com/magma-go/magma/vision/imaging"
)

// quantFixtures holds what the quantization tests share within one test
// binary (removed by TestMain): the source checkpoint and one quantized
// folder per type.
var quantFixtures struct {
	mu   sync.Mutex
	root string
	src  string
	dirs map[string]string
}

// quantTestDir writes (once) a random bf16 checkpoint shaped for the
// quantizers: the parity fixture's config (vocab 512) with a 256-wide
// decoder of 8 layers (so Q4_K_M mixes Q6_K and Q4_K layers) and a
// ConvNeXt whose last stage is 256 wide (Q4_K there, Q8_0 before).
func quantTestDir(t *testing.T) string {
	t.Helper()
	f := &quantFixtures
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.src != "" {
		return f.src
	}
	cfg, pp, err := LoadConfig(parityDir)
	if err != nil {
		t.Fatal(err)
	}
	tc := &cfg.Text
	tc.HiddenSize, tc.IntermediateSize, tc.NumHiddenLayers = 256, 512, 8
	tc.NumAttentionHeads, tc.NumKeyValueHeads, tc.HeadDim = 4, 2, 64
	cfg.Vision.Dims = []int{32, 64, 128, 256}
	cfg.Vision.MMHiddenSize = 256
	if err := cfg.Resolve(); err != nil {
		t.Fatal(err)
	}
	if f.root, err = os.MkdirTemp("", "magma-quant-test-"); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(f.root, "src")
	if _, err := WriteRandom(dir, cfg, pp, 5, ckpt.SaveOptions{DType: "bf16"}); err != nil {
		t.Fatal(err)
	}
	f.src, f.dirs = dir, map[string]string{}
	return dir
}

// quantizeTo quantizes src (quantTestDir's) with typ, once per type.
func quantizeTo(t *testing.T, src, typ string) string {
	t.Helper()
	f := &quantFixtures
	f.mu.Lock()
	defer f.mu.Unlock()
	if d, ok := f.dirs[typ]; ok && src == f.src {
		return d
	}
	dst := filepath.Join(t.TempDir(), typ)
	if src == f.src {
		dst = filepath.Join(f.root, typ)
	}
	rep, err := Quantize(src, dst, QuantizeOptions{Type: typ})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d tensors, %d bytes from %d, by type %v, %.2fs", typ, len(rep.Tensors), rep.FileBytes, rep.SourceBytes, rep.BytesByType, rep.Seconds)
	if src == f.src {
		f.dirs[typ] = dst
	}
	return dst
}

func TestMain(m *testing.M) {
	code := m.Run()
	if quantFixtures.root != "" {
		os.RemoveAll(quantFixtures.root)
	}
	os.Exit(code)
}

// TestQuantTypeFor: the mix table, including llama.cpp's Q4_K_M layers
// (use_more_bits for 8 layers: 0, 3, 6, 7) and the block fallbacks.
func TestQuantTypeFor(t *testing.T) {
	dec := func(l int, w string) string {
		return "language_model.model.layers." + string(rune('0'+l)) + "." + w + ".weight"
	}
	cases := []struct {
		name  string
		shape []int
		typ   string
		want  string // "" kept
	}{
		{"language_model.lm_head.weight", []int{512, 256}, "q8_0", "Q8_0"},
		{"language_model.lm_head.weight", []int{512, 256}, "q4_k", "Q4_K"},
		{"language_model.lm_head.weight", []int{512, 256}, "q4_k_m", "Q6_K"},
		{"language_model.model.embed_tokens.weight", []int{512, 256}, "q4_k_m", ""},
		{"language_model.model.norm.weight", []int{256}, "q8_0", ""},
		{dec(0, "self_attn.v_proj"), []int{128, 256}, "q4_k_m", "Q6_K"},
		{dec(1, "self_attn.v_proj"), []int{128, 256}, "q4_k_m", "Q4_K"},
		{dec(3, "mlp.down_proj"), []int{256, 512}, "q4_k_m", "Q6_K"},
		{dec(4, "mlp.down_proj"), []int{256, 512}, "q4_k_m", "Q4_K"},
		{dec(6, "self_attn.v_proj"), []int{128, 256}, "q4_k_m", "Q6_K"},
		{dec(7, "mlp.down_proj"), []int{256, 512}, "q4_k_m", "Q6_K"},
		{dec(3, "self_attn.q_proj"), []int{256, 256}, "q4_k_m", "Q4_K"},
		{dec(2, "mlp.gate_proj"), []int{512, 256}, "q8_0", "Q8_0"},
		{dec(2, "mlp.gate_proj"), []int{512, 96}, "q4_k", "Q8_0"}, // 96 % 256 != 0
		{dec(2, "mlp.gate_proj"), []int{512, 48}, "q4_k", ""},     // 48 % 32 != 0
		{"vision_tower.clip_vision_model.trunk.stages.3.blocks.0.mlp.fc1.weight", []int{1024, 256}, "q4_k_m", "Q4_K"},
		{"vision_tower.clip_vision_model.trunk.stages.0.blocks.0.mlp.fc2.weight", []int{32, 128}, "q4_k", "Q8_0"},
		{"vision_tower.clip_vision_model.trunk.stages.0.blocks.0.conv_dw.weight", []int{32, 1, 7, 7}, "q8_0", ""},
		{"multi_modal_projector.proj.2.weight", []int{256, 256}, "q4_k", "Q4_K"},
		{"multi_modal_projector.proj.2.bias", []int{256}, "q4_k", ""},
	}
	for _, c := range cases {
		dt, why := QuantTypeFor(c.name, c.shape, 8, c.typ)
		got := ""
		if dt != (tensor.Dtype{}) {
			got = kernels.DtypeName(dt)
		}
		if got != c.want {
			t.Errorf("%s %v %s: %q (%s), want %q", c.name, c.shape, c.typ, got, why, c.want)
		}
	}
}

// TestQuantizeFolderLoads: each mix writes a folder whose GGUF holds every
// source tensor under its name, in the table's type; loading binds the
// quantized tensors in place (views of the mapping), --dtype f32 loads the
// dequantized values, and info reports bytes by type and the choices.
func TestQuantizeFolderLoads(t *testing.T) {
	src := quantTestDir(t)
	ck, err := ckpt.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	cfg, _, err := LoadConfig(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range QuantTypes {
		t.Run(typ, func(t *testing.T) {
			dst := quantizeTo(t, src, typ)
			for _, f := range []string{ConfigFileName, PreprocessorFileName, GGUFFileName} {
				if _, err := os.Stat(filepath.Join(dst, f)); err != nil {
					t.Fatal(err)
				}
			}
			g, err := gguf.Open(filepath.Join(dst, GGUFFileName))
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			if len(g.Tensors) != len(ck.Names()) {
				t.Fatalf("GGUF has %d tensors, source %d", len(g.Tensors), len(ck.Names()))
			}
			seen := map[string]bool{}
			for _, name := range ck.Names() {
				sti, _, _ := ck.Info(name)
				gti, err := g.Info(name)
				if err != nil {
					t.Fatal(err)
				}
				if !sameShape(sti.Shape, gti.Shape()) {
					t.Errorf("%s: shape %v, source %v", name, gti.Shape(), sti.Shape)
				}
				dt, _ := QuantTypeFor(name, sti.Shape, cfg.Text.NumHiddenLayers, typ)
				want := sti.DType
				if dt != (tensor.Dtype{}) {
					want = kernels.DtypeName(dt)
				}
				if gti.Type.String() != want {
					t.Errorf("%s: type %s, want %s", name, gti.Type, want)
				}
				seen[want] = true
			}
			wantTypes := map[string][]string{"q8_0": {"Q8_0", "BF16"}, "q4_k": {"Q4_K", "Q8_0", "BF16"}, "q4_k_m": {"Q4_K", "Q6_K", "Q8_0", "BF16"}}[typ]
			for _, w := range wantTypes {
				if !seen[w] {
					t.Errorf("no %s tensor in the %s folder (types %v)", w, typ, seen)
				}
			}

			ld, err := Load(dst)
			if err != nil {
				t.Fatal(err)
			}
			defer ld.Close()
			if ld.Weights.Copied != 0 || ld.Weights.InPlace == 0 {
				t.Errorf("weights %+v: want all in place", ld.Weights)
			}
			ps, _ := nn.Parameters(ld.Model, "")
			f32, err := LoadWith(dst, LoadOptions{Dtype: tensor.Float32})
			if err != nil {
				t.Fatal(err)
			}
			defer f32.Close()
			pf, _ := nn.Parameters(f32.Model, "")
			for i, p := range ps {
				dt, _ := QuantTypeFor(p.Name, pf[i].T.Shape(), cfg.Text.NumHiddenLayers, typ)
				if dt != (tensor.Dtype{}) && p.T.Dtype() != dt {
					t.Fatalf("%s loaded as %s, want %s", p.Name, kernels.DtypeName(p.T.Dtype()), kernels.DtypeName(dt))
				}
				if !kernels.IsQuant(p.T.Dtype()) {
					continue
				}
				if !kernels.IsReadOnly(p.T) {
					t.Errorf("%s: quantized weight is not a view of the mapped GGUF", p.Name)
				}
				raw, _ := kernels.QuantBytes(p.T)
				want := make([]float32, pf[i].T.Shape().TotalSize())
				if err := kernels.Dequantize(p.T.Dtype(), raw, want); err != nil {
					t.Fatal(err)
				}
				for j, v := range pf[i].T.Data().([]float32) {
					if v != want[j] {
						t.Fatalf("%s: --dtype f32 value %d is %g, dequantized %g", p.Name, j, v, want[j])
					}
				}
			}

			numpyDecode(t, src, dst, true)
			if typ == "q8_0" { // the decoder does fail: one quant moved far off
				bad := rewriteGGUF(t, dst, func(n string, ty gguf.TensorType, s []int, d []byte) (string, gguf.TensorType, []int, []byte) {
					if n == "language_model.lm_head.weight" {
						d = append([]byte(nil), d...)
						d[2+5] ^= 0x80
					}
					return n, ty, s, d
				})
				numpyDecode(t, src, bad, false)
			}

			info, err := DescribeWeights(dst, cfg, tensor.Dtype{})
			if err != nil {
				t.Fatal(err)
			}
			q := info.Quantization
			if q == nil || q.Type != typ || len(q.Choices) == 0 {
				t.Fatalf("info quantization %+v", q)
			}
			var total int64
			for _, c := range q.ByType {
				total += c.Bytes
			}
			if total != info.InMemory.Total()+unusedBytes(t, g, ld.Unused) {
				t.Errorf("info: %d bytes by type, %d in memory", total, info.InMemory.Total())
			}
		})
	}
}

// numpyDecode runs scripts/fixtures/ggml_decode.py (numpy, written from
// ggml's block definitions) on dst's GGUF against the source checkpoint:
// it must pass (ok) or fail naming a value. Skipped without python3 and
// numpy.
func numpyDecode(t *testing.T, src, dst string, ok bool) {
	t.Helper()
	py := os.Getenv("PYTHON")
	if py == "" {
		py = "/usr/bin/python3"
	}
	if err := exec.Command(py, "-c", "import numpy").Run(); err != nil {
		t.Logf("numpy decoder skipped: %s cannot import numpy (%v)", py, err)
		return
	}
	out, err := exec.Command(py, "../scripts/fixtures/ggml_decode.py", "--gguf", filepath.Join(dst, GGUFFileName), "--source", src).CombinedOutput()
	switch {
	case ok && err != nil:
		t.Errorf("numpy decoder: %v\n%s", err, out)
	case !ok && (err == nil || !strings.Contains(string(out), "FAIL language_model.lm_head.weight")):
		t.Errorf("numpy decoder accepted a corrupted block: %v\n%s", err, out)
	case ok:
		t.Logf("numpy decoder:\n%s", out)
	}
}

func unusedBytes(t *testing.T, g *gguf.File, names []string) int64 {
	var n int64
	for _, name := range names {
		ti, err := g.Info(name)
		if err != nil {
			t.Fatal(err)
		}
		n += ti.Size
	}
	return n
}

// TestQuantizeRefusesNonFinite: a NaN weight stops quantize with an
// error naming the tensor and the index; no GGUF is left behind.
func TestQuantizeRefusesNonFinite(t *testing.T) {
	src := quantTestDir(t)
	ld, err := LoadWith(src, LoadOptions{Dtype: tensor.Float32, Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	const name = "language_model.model.layers.2.mlp.up_proj.weight"
	w := ld.Model.LM.Decoder.Layers[2].MLP.Up.Weight
	w.Data().([]float32)[1234] = float32(math.NaN())
	bad := filepath.Join(t.TempDir(), "bad")
	if err := ld.Model.Save(bad, ld.Preprocessor, ckpt.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "q")
	_, err = Quantize(bad, dst, QuantizeOptions{Type: "q4_k"})
	if err == nil || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "index 1234") {
		t.Fatalf("got %v, want an error naming %s and index 1234", err, name)
	}
	if _, err := os.Stat(filepath.Join(dst, GGUFFileName)); err == nil {
		t.Errorf("a GGUF was left behind")
	}
	if _, err := Quantize(src, filepath.Join(t.TempDir(), "x"), QuantizeOptions{Type: "q5_k"}); err == nil || !strings.Contains(err.Error(), "q4_k_m") {
		t.Errorf("type q5_k: %v", err)
	}
}

// rewriteGGUF copies src's GGUF to a new folder, passing every tensor
// through edit (which may rename it, change its type and shape and bytes).
func rewriteGGUF(t *testing.T, src string, edit func(name string, typ gguf.TensorType, shape []int, data []byte) (string, gguf.TensorType, []int, []byte)) string {
	t.Helper()
	dst := t.TempDir()
	for _, f := range []string{ConfigFileName, PreprocessorFileName} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dst, f), b, 0o644)
	}
	g, err := gguf.Open(filepath.Join(src, GGUFFileName))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	out, err := os.Create(filepath.Join(dst, GGUFFileName))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	w := gguf.NewWriter(out)
	type tt struct {
		name string
		data []byte
	}
	var ts []tt
	for _, ti := range g.Tensors {
		raw, _, _ := g.TensorBytes(ti.Name)
		name, typ, shape, data := edit(ti.Name, ti.Type, ti.Shape(), raw)
		if err := w.AddTensor(name, typ, shape); err != nil {
			t.Fatal(err)
		}
		ts = append(ts, tt{name, data})
	}
	for _, x := range ts {
		if err := w.WriteTensor(x.name, x.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestQuantizedFolderMismatch: a GGUF whose tensors do not match the
// config is refused with an error naming the tensor: a missing name, a
// wrong shape, and a quantized tensor where the model reads floats.
func TestQuantizedFolderMismatch(t *testing.T) {
	good := quantizeTo(t, quantTestDir(t), "q8_0")
	const up = "language_model.model.layers.1.mlp.up_proj.weight"
	const norm = "language_model.model.layers.1.input_layernorm.weight"
	cases := []struct {
		what string
		edit func(string, gguf.TensorType, []int, []byte) (string, gguf.TensorType, []int, []byte)
		want []string
	}{
		{"missing", func(n string, ty gguf.TensorType, s []int, d []byte) (string, gguf.TensorType, []int, []byte) {
			if n == up {
				n = "renamed.weight"
			}
			return n, ty, s, d
		}, []string{up, "missing"}},
		{"shape", func(n string, ty gguf.TensorType, s []int, d []byte) (string, gguf.TensorType, []int, []byte) {
			if n == up { // [512, 256] stored as [256, 512]: same bytes
				s = []int{s[1], s[0]}
			}
			return n, ty, s, d
		}, []string{up, "shape mismatch"}},
		{"type", func(n string, ty gguf.TensorType, s []int, d []byte) (string, gguf.TensorType, []int, []byte) {
			if n == norm { // 256 bf16 values become 8 Q8_0 blocks
				q := make([]byte, kernels.QuantizedSize(kernels.Q8_0, 256))
				kernels.Quantize(kernels.Q8_0, q, make([]float32, 256))
				return n, gguf.TypeQ8_0, s, q
			}
			return n, ty, s, d
		}, []string{norm, "Q8_0", "float tensor"}},
	}
	for _, c := range cases {
		t.Run(c.what, func(t *testing.T) {
			dir := rewriteGGUF(t, good, c.edit)
			_, err := Load(dir)
			if err == nil {
				t.Fatal("loaded")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
		})
	}
}

// quantLogits runs the prompt (text and one image) through a loaded
// model: the greedy steps' logits.
func quantLogits(t *testing.T, ld *Loaded, steps int, opts kernels.Options) [][]float32 {
	t.Helper()
	ld.Model.SetKernels(opts)
	px := preprocessFile(t, filepath.Join(parityDir, "square.png"), ld.Preprocessor)
	ids := []int{1, 7, 42, ld.Model.Config.ImageTokenIndex, 99, 300, 11}
	emb, err := ld.Model.EmbedSequence(ids, []*imaging.Pixels{px})
	if err != nil {
		t.Fatal(err)
	}
	rows, _ := greedyLogits(t, ld.Model, emb.Embeds, steps)
	return rows
}

// TestQuantizedExactPath: the quantized model (weights used in place, the
// vision tower and projector included) computes what float32 computes on
// the dequantized weights: logits within 1e-4 relative (max|diff| over
// max|ref|) at every greedy step with float32 activations
// (Options.QuantExact), the same greedy tokens. With activations quantized
// to 8 bits per block (the default decode path) the extra error is
// measured and logged, and bounded loosely (5e-2).
func TestQuantizedExactPath(t *testing.T) {
	src := quantTestDir(t)
	for _, typ := range QuantTypes {
		t.Run(typ, func(t *testing.T) {
			dst := quantizeTo(t, src, typ)
			ref, err := LoadWith(dst, LoadOptions{Dtype: tensor.Float32})
			if err != nil {
				t.Fatal(err)
			}
			defer ref.Close()
			q, err := Load(dst)
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			const steps = 4
			want := quantLogits(t, ref, steps, kernels.TestOptions())
			exact := kernels.TestOptions()
			exact.QuantExact = true
			got := quantLogits(t, q, steps, exact)
			worst := 0.0
			for s := range want {
				d := relDiff(t, "logits", got[s], want[s])
				worst = max(worst, d)
				if d > 1e-4 {
					t.Errorf("step %d: logits rel diff %.3g > 1e-4", s, d)
				}
			}
			q8 := quantLogits(t, q, steps, kernels.TestOptions())
			worst8 := 0.0
			for s := range want {
				worst8 = max(worst8, relDiff(t, "logits", q8[s], want[s]))
			}
			t.Logf("%s: logits vs float32 on the dequantized weights: %.3g (float32 activations), %.3g (8-bit activations)", typ, worst, worst8)
			if worst8 > 5e-2 {
				t.Errorf("8-bit activations: logits rel diff %.3g > 5e-2", worst8)
			}
		})
	}
}
