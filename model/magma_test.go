package model

import (
	"strings"
	"testing"

	"github.com/magma-go/magma/vision/imaging"
)

// A prompt with more image tokens than images names how many image tokens
// it has (not the image token's id), as the other mismatch does.
func TestSequenceLengthImageCount(t *testing.T) {
	m := &Magma{Config: &Config{ImageTokenIndex: 7}}
	m.Config.Vision.ImageSize = 64
	img := &imaging.Pixels{Rows: 1, Cols: 1, Base: 64}
	for _, c := range []struct {
		ids    []int
		images []*imaging.Pixels
		want   string
	}{
		{[]int{1, 7, 2, 7, 7}, []*imaging.Pixels{img}, "prompt has 3 image tokens (id 7) but 1 images were given"},
		{[]int{1, 7}, []*imaging.Pixels{img, img}, "prompt has 1 image tokens (id 7) but 2 images were given"},
	} {
		if _, err := m.SequenceLength(c.ids, c.images); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ids %v with %d images: %v (want %q)", c.ids, len(c.images), err, c.want)
		}
	}
	if n, err := m.SequenceLength([]int{1, 7, 2}, []*imaging.Pixels{img}); err != nil || n <= 3 {
		t.Errorf("one image token, one image: %d, %v", n, err)
	}
}
