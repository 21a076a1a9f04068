package train

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/llm/tokenizer"
	"io"
	"testing"

	"github.com/magma-go/magma/data"
	"github.com/magma-go/magma/model"
	"github.com/magma-go/magma/vision/imaging"
)

// testVocab is the vocabulary of the test models: the tiny preset with a
// 96-token vocabulary (image token 95), so steps take milliseconds.
const testVocab = 96

func testConfig(steps int) *Config {
	c := DefaultConfig()
	c.Model = ModelConfig{Preset: "tiny", VocabSize: testVocab}
	c.Optimizer.LR = 3e-3
	c.Optimizer.WeightDecay = 0.01
	c.Schedule = ScheduleConfig{Name: "cosine", WarmupRatio: 0.1}
	c.Steps = steps
	c.BatchSize = 2
	c.SeqBucket = 16
	c.MaxSeqLen = 128
	c.Checkpoint = CheckpointConfig{Every: 5, Keep: 2}
	c.Source = "test"
	return &c
}

func testModel(t testing.TB, c *Config) (*model.Magma, *model.PreprocessorConfig) {
	t.Helper()
	m, pp, _, err := InitModel(c)
	if err != nil {
		t.Fatal(err)
	}
	m.SetKernels(kernels.TestOptions())
	return m, pp
}

// synthImage is a deterministic w×h picture: a gradient with a square
// whose colour depends on k.
func synthImage(w, h, k int) imaging.Image {
	im := imaging.Image{W: w, H: h, Pix: make([]uint8, w*h*3)}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			o := (y*w + x) * 3
			im.Pix[o], im.Pix[o+1], im.Pix[o+2] = uint8(x*255/w), uint8(y*255/h), 128
			if x > w/4 && x < w/2 && y > h/4 && y < h/2 {
				im.Pix[o], im.Pix[o+1], im.Pix[o+2] = uint8(60*k), uint8(255-50*k), uint8(30*k)
			}
		}
	}
	return im
}

func pixels(t testing.TB, m *model.Magma, pp *model.PreprocessorConfig, im imaging.Image) *imaging.Pixels {
	t.Helper()
	var mean, std [3]float32
	for i := range 3 {
		mean[i], std[i] = float32(pp.ImageMean[i]), float32(pp.ImageStd[i])
	}
	px, err := imaging.Preprocess(im, pp.BaseImgSize, pp.NumCrops, mean, std)
	if err != nil {
		t.Fatal(err)
	}
	return px
}

// testSamples are n hand-built samples: prompt (with an image for every
// other sample, anyres grids 1x1, 1x2 or 2x1) and a fixed answer of
// "mark ids" that only the image/prompt determines; labels supervise the
// answer and the end token.
func testSamples(t testing.TB, m *model.Magma, pp *model.PreprocessorConfig, n int) []data.Sample {
	img := m.Config.ImageTokenIndex
	var out []data.Sample
	for i := 0; i < n; i++ {
		prompt := []int{1, 10 + i, 11 + 2*i%7}
		var images []*imaging.Pixels
		if i%2 == 0 {
			w, h := 64, 64
			if i%4 == 2 {
				w, h = 128, 60
			}
			if i%6 == 4 {
				w, h = 60, 128
			}
			prompt = append([]int{1, img}, prompt[1:]...)
			images = append(images, pixels(t, m, pp, synthImage(w, h, i)))
		}
		prompt = append(prompt, 2) // "assistant:" marker
		answer := []int{40 + (i*7)%30, 40 + (i*11+3)%30, 40 + (i*5+1)%30, 3}
		ids := append(append([]int(nil), prompt...), answer...)
		labels := make([]int, len(ids))
		for j := range labels {
			labels[j] = tokenizer.IgnoreIndex
			if j >= len(prompt) {
				labels[j] = ids[j]
			}
		}
		out = append(out, data.Sample{IDs: ids, Labels: labels, Images: images, Source: "test", Index: i})
	}
	return out
}

// cycleStream serves batches of b samples cycling through a fixed list;
// its state is the position.
type cycleStream struct {
	samples []data.Sample
	b, pos  int
	served  int
}

func openCycle(samples []data.Sample, b int) StreamOpener {
	return func(state []byte) (data.Stream, error) {
		s := &cycleStream{samples: samples, b: b}
		if state != nil {
			var st struct{ Pos int }
			if err := json.Unmarshal(state, &st); err != nil {
				return nil, fmt.Errorf("cycle state: %w", err)
			}
			s.pos = st.Pos
		}
		return s, nil
	}
}

func (s *cycleStream) Next(ctx context.Context) (data.Batch, error) {
	if err := ctx.Err(); err != nil {
		return data.Batch{}, err
	}
	if len(s.samples) == 0 {
		return data.Batch{}, io.EOF
	}
	var b data.Batch
	for i := 0; i < s.b; i++ {
		b.Samples = append(b.Samples, s.samples[s.pos%len(s.samples)])
		s.pos++
	}
	s.served++
	return b, nil
}

func (s *cycleStream) State() ([]byte, error) { return json.Marshal(struct{ Pos int }{s.pos}) }
func (s *cycleStream) Close() error           { return nil }

func quiet() io.Writer { return io.Discard }
