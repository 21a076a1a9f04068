package llm_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/llm"
	"github.com/magma-go/magma/nn"
)

// The PyTorch goldens of the decoder alone ("text" case, no image), written
// by scripts/reference/magma_ref.py into model/testdata/parity.
const parityDir = "../model/testdata/parity"

// readSafetensorsF32 is a minimal reader for F32 safetensors files: it
// returns every tensor's data and shape.
func readSafetensorsF32(path string) (map[string][]float32, map[string][]int, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	if len(raw) < 8 {
		return nil, nil, fmt.Errorf("%s: truncated header", path)
	}
	n := binary.LittleEndian.Uint64(raw)
	if n > uint64(len(raw)-8) {
		return nil, nil, fmt.Errorf("%s: header length %d beyond file size %d", path, n, len(raw))
	}
	var hdr map[string]json.RawMessage
	if err := json.Unmarshal(raw[8:8+n], &hdr); err != nil {
		return nil, nil, fmt.Errorf("%s: header: %w", path, err)
	}
	body := raw[8+n:]
	data, shapes := map[string][]float32{}, map[string][]int{}
	for name, msg := range hdr {
		if name == "__metadata__" {
			continue
		}
		var e struct {
			Dtype   string   `json:"dtype"`
			Shape   []int    `json:"shape"`
			Offsets [2]int64 `json:"data_offsets"`
		}
		if err := json.Unmarshal(msg, &e); err != nil {
			return nil, nil, fmt.Errorf("%s: tensor %s: %w", path, name, err)
		}
		if e.Dtype != "F32" {
			return nil, nil, fmt.Errorf("%s: tensor %s has dtype %s, this reader takes F32", path, name, e.Dtype)
		}
		count := int64(1)
		for _, s := range e.Shape {
			count *= int64(s)
		}
		lo, hi := e.Offsets[0], e.Offsets[1]
		if lo < 0 || hi > int64(len(body)) || hi-lo != 4*count {
			return nil, nil, fmt.Errorf("%s: tensor %s: bad data offsets %v", path, name, e.Offsets)
		}
		vals := make([]float32, count)
		for i := range vals {
			vals[i] = math.Float32frombits(binary.LittleEndian.Uint32(body[lo+4*int64(i):]))
		}
		data[name], shapes[name] = vals, e.Shape
	}
	return data, shapes, nil
}

func TestPyTorchParityText(t *testing.T) {
	golden, err := os.ReadFile(filepath.Join(parityDir, "golden.json"))
	if os.IsNotExist(err) {
		t.Skip("no PyTorch goldens in", parityDir)
	}
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Steps int `json:"steps"`
		Cases map[string]struct {
			PromptIDs []int `json:"prompt_ids"`
			Generated []int `json:"generated"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(golden, &g); err != nil {
		t.Fatal(err)
	}
	text, ok := g.Cases["text"]
	if !ok {
		t.Skip("golden.json has no text case")
	}

	cfgRaw, err := os.ReadFile(filepath.Join(parityDir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var top struct {
		TextConfig llm.Config `json:"text_config"`
	}
	if err := json.Unmarshal(cfgRaw, &top); err != nil {
		t.Fatal(err)
	}
	m, err := llm.New(top.TextConfig)
	if err != nil {
		t.Fatal(err)
	}
	m.Kernels = kernels.TestOptions()
	weights, shapes, err := readSafetensorsF32(filepath.Join(parityDir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	ps, _ := nn.Parameters(m, "language_model.")
	for _, p := range ps {
		name, dst := p.Name, p.T
		src, ok := weights[name]
		if !ok {
			t.Fatalf("checkpoint lacks %s", name)
		}
		if !slices.Equal(shapes[name], []int(dst.Shape())) {
			t.Fatalf("%s: checkpoint shape %v, model %v", name, shapes[name], dst.Shape())
		}
		copy(dst.Data().([]float32), src)
	}
	gold, gshapes, err := readSafetensorsF32(filepath.Join(parityDir, "golden_text.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	V := m.Config.VocabSize
	wantLogits := gold["logits"]
	if s := gshapes["logits"]; len(s) != 2 || s[1] != V || s[0] != len(text.Generated) {
		t.Fatalf("golden logits shape %v, want [%d, %d]", s, len(text.Generated), V)
	}
	if e, ok := gold["inputs_embeds"]; ok {
		got, err := m.EmbedIDs(text.PromptIDs)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.Data().([]float32), e) {
			t.Errorf("prompt embeddings differ from PyTorch's inputs_embeds")
		}
	}

	gen := llm.NewGenerator(m, 0)
	var rows [][]float32
	out, err := gen.Generate(context.Background(), llm.Prompt{IDs: text.PromptIDs},
		llm.GenerateOptions{MaxNewTokens: len(text.Generated)},
		func(step, id int, logits []float32) error { rows = append(rows, logits); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(out, text.Generated) {
		t.Errorf("greedy tokens %v, PyTorch %v", out, text.Generated)
	}
	var num, den float64
	for s, row := range rows {
		for i, v := range row {
			w := float64(wantLogits[s*V+i])
			num = math.Max(num, math.Abs(float64(v)-w))
			den = math.Max(den, math.Abs(w))
		}
	}
	t.Logf("decoder vs PyTorch over %d steps: max|diff| %.3g, max|ref| %.3g, relative %.3g", len(rows), num, den, num/den)
	if num/den > 1e-4 {
		t.Errorf("logits differ from PyTorch: relative %.3g > 1e-4", num/den)
	}
}
