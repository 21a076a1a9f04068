package data

import (
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/magma-go/magma/llm/tokenizer"
	"github.com/magma-go/magma/vision"
)

var (
	tokOnce sync.Once
	tokVal  *tokenizer.Tokenizer
	tokErr  error
)

func testTokenizer(t testing.TB) *tokenizer.Tokenizer {
	t.Helper()
	tokOnce.Do(func() {
		dir, err := tokenizer.Locate("magma")
		if err != nil {
			tokErr = err
			return
		}
		tokVal, tokErr = tokenizer.Load(dir)
	})
	if tokErr != nil {
		t.Skipf("tokenizer not available: %v", tokErr)
	}
	return tokVal
}

func testEnv(t testing.TB) *SampleBuilder {
	t.Helper()
	env, err := NewSampleBuilder(testTokenizer(t), ImageOptions{Base: 32, MaxCrops: 1, Mean: vision.CLIPMean, Std: vision.CLIPStd})
	if err != nil {
		t.Fatal(err)
	}
	env.Logf = t.Logf
	return env
}

func writePNG(t testing.TB, path string, w, h int, c color.RGBA) {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{c.R ^ uint8(x), c.G ^ uint8(y), c.B, 255})
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t testing.TB, path, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkLabels asserts labels are tokenizer.IgnoreIndex or equal to the id, and that
// the supervised ids decode to want.
func supervisedText(t testing.TB, tok *tokenizer.Tokenizer, s Sample) string {
	t.Helper()
	if len(s.IDs) != len(s.Labels) {
		t.Fatalf("%d ids, %d labels", len(s.IDs), len(s.Labels))
	}
	var sup []int
	for i, l := range s.Labels {
		if l == tokenizer.IgnoreIndex {
			continue
		}
		if l != s.IDs[i] {
			t.Fatalf("label %d = %d, id %d", i, l, s.IDs[i])
		}
		sup = append(sup, l)
	}
	txt, err := tok.Decode(sup, false)
	if err != nil {
		t.Fatal(err)
	}
	return txt
}
