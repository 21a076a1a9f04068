package tom

import (
	"fmt"
	"math"
	"os"

	"gocv.io/x/gocv"

	"github.com/magma-go/magma/vision/imaging"
)

// MaxSampleFrames bounds SampleFrames' n.
const MaxSampleFrames = 256

// UniformIndices are the n frame indices Magma's (and LLaVA's) video
// inference samples from a clip of total frames: linspace(0, total-1, n)
// truncated to integers (numpy's dtype=int). With n >= total every frame
// is used once.
func UniformIndices(total, n int) []int {
	if total <= 0 || n <= 0 {
		return nil
	}
	if n >= total {
		out := make([]int, total)
		for i := range out {
			out[i] = i
		}
		return out
	}
	out := make([]int, n)
	if n == 1 {
		return out
	}
	step := float64(total-1) / float64(n-1)
	for i := range out {
		out[i] = int(float64(i) * step)
	}
	out[n-1] = total - 1
	return out
}

// SampleFrames decodes n frames sampled uniformly (UniformIndices) from a
// video file (anything gocv's VideoCapture opens) or a folder of frame
// images, as RGB. Frames not sampled are skipped without decoding. A clip
// whose container announces more frames than it has gives the frames that
// could be read (at least one, else ErrNoFrames).
func SampleFrames(path string, n int) ([]imaging.Image, error) {
	if n <= 0 || n > MaxSampleFrames {
		return nil, fmt.Errorf("tom: %d frames requested from %s, want 1..%d", n, path, MaxSampleFrames)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %v", ErrUnreadable, path, err)
	}
	if st.IsDir() {
		clip, err := readFolder(path, 0, MaxFrames)
		if err != nil {
			return nil, err
		}
		var out []imaging.Image
		for _, i := range UniformIndices(len(clip.Frames), n) {
			out = append(out, clip.Frames[i])
		}
		return out, nil
	}
	vc, err := OpenVideo(path)
	if err != nil {
		return nil, err
	}
	defer vc.Close()
	total := vc.Get(gocv.VideoCaptureFrameCount)
	if math.IsNaN(total) || total < 1 || total > 1e8 {
		// unknown length: decode up to MaxFrames and sample from them
		vc.Close()
		clip, err := readVideo(path, 0, MaxFrames)
		if err != nil {
			return nil, err
		}
		var out []imaging.Image
		for _, i := range UniformIndices(len(clip.Frames), n) {
			out = append(out, clip.Frames[i])
		}
		return out, nil
	}
	want := UniformIndices(int(total), n)
	m := gocv.NewMat()
	defer m.Close()
	rgb := gocv.NewMat()
	defer rgb.Close()
	var out []imaging.Image
	pos := 0
	for _, idx := range want {
		if idx > pos {
			vc.Grab(idx - pos)
			pos = idx
		}
		if !vc.Read(&m) || m.Empty() {
			break
		}
		pos++
		img, err := matToRGB(m, &rgb)
		if err != nil {
			return nil, fmt.Errorf("tom: %s frame %d: %w", path, idx, err)
		}
		out = append(out, img)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w in %s", ErrNoFrames, path)
	}
	return out, nil
}
