package tom

import (
	"errors"
	"fmt"
	"image"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"gocv.io/x/gocv"

	"github.com/magma-go/magma/vision/imaging"
)

// Errors callers can test with errors.Is.
var (
	ErrNoFrames      = errors.New("tom: no frames")
	ErrTooShort      = errors.New("tom: clip shorter than the horizon")
	ErrShotBoundary  = errors.New("tom: shot boundary inside the horizon")
	ErrNoTraces      = errors.New("tom: no trace visible in at least half the steps")
	ErrBadFrames     = errors.New("tom: frames differ in size or are malformed")
	ErrUnreadable    = errors.New("tom: cannot read video")
	errTrackerOutput = errors.New("tom: tracker returned tracks of the wrong shape")
)

// MaxFrames bounds how many frames ReadFrames keeps in memory when n <= 0.
const MaxFrames = 4096

// Clip is a run of decoded RGB frames.
type Clip struct {
	Frames []imaging.Image
	// FPS is the container's frame rate (0 for an image folder or when unknown).
	FPS float64
}

var imageExts = map[string]bool{".png": true, ".jpg": true, ".jpeg": true, ".bmp": true, ".webp": true, ".tif": true, ".tiff": true}

// ReadFrames decodes up to n frames (n <= 0: up to MaxFrames) starting at
// frame start from a video file (anything gocv's VideoCapture opens: mp4,
// avi, webm, ...) or from a folder of images (png/jpg/bmp/webp/tif, sorted
// by name, all the same size). An unreadable path gives ErrUnreadable, a
// video with no frames (or start past its end) ErrNoFrames.
func ReadFrames(path string, start, n int) (*Clip, error) {
	if start < 0 {
		return nil, fmt.Errorf("tom: negative start frame %d", start)
	}
	if n <= 0 || n > MaxFrames {
		n = MaxFrames
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %v", ErrUnreadable, path, err)
	}
	if st.IsDir() {
		return readFolder(path, start, n)
	}
	return readVideo(path, start, n)
}

// OpenVideo opens a video file for decoding; the error wraps ErrUnreadable
// and names the file. The caller closes the capture.
func OpenVideo(path string) (*gocv.VideoCapture, error) {
	vc, err := gocv.VideoCaptureFile(path)
	if err != nil {
		if vc != nil {
			vc.Close()
		}
		return nil, fmt.Errorf("%w %s: %v", ErrUnreadable, path, err)
	}
	if !vc.IsOpened() {
		vc.Close()
		return nil, fmt.Errorf("%w %s: not opened", ErrUnreadable, path)
	}
	return vc, nil
}

func readVideo(path string, start, n int) (*Clip, error) {
	vc, err := OpenVideo(path)
	if err != nil {
		return nil, err
	}
	defer vc.Close()
	fps := vc.Get(gocv.VideoCaptureFPS)
	if math.IsNaN(fps) || fps < 0 {
		fps = 0
	}
	m := gocv.NewMat()
	defer m.Close()
	rgb := gocv.NewMat()
	defer rgb.Close()
	clip := &Clip{FPS: fps}
	for i := 0; len(clip.Frames) < n; i++ {
		if !vc.Read(&m) || m.Empty() {
			break
		}
		if i < start {
			continue
		}
		img, err := matToRGB(m, &rgb)
		if err != nil {
			return nil, fmt.Errorf("tom: %s frame %d: %w", path, i, err)
		}
		if len(clip.Frames) > 0 && (img.W != clip.Frames[0].W || img.H != clip.Frames[0].H) {
			return nil, fmt.Errorf("%w: %s frame %d is %dx%d, first is %dx%d", ErrBadFrames, path, i, img.W, img.H, clip.Frames[0].W, clip.Frames[0].H)
		}
		clip.Frames = append(clip.Frames, img)
	}
	if len(clip.Frames) == 0 {
		return nil, fmt.Errorf("%w in %s from frame %d", ErrNoFrames, path, start)
	}
	return clip, nil
}

func matToRGB(m gocv.Mat, tmp *gocv.Mat) (imaging.Image, error) {
	switch m.Channels() {
	case 3:
		gocv.CvtColor(m, tmp, gocv.ColorBGRToRGB)
	case 4:
		gocv.CvtColor(m, tmp, gocv.ColorBGRAToBGR)
		gocv.CvtColor(*tmp, tmp, gocv.ColorBGRToRGB)
	case 1:
		gocv.CvtColor(m, tmp, gocv.ColorGrayToBGR)
	default:
		return imaging.Image{}, fmt.Errorf("%d channels", m.Channels())
	}
	if tmp.Type() != gocv.MatTypeCV8UC3 {
		return imaging.Image{}, fmt.Errorf("unsupported pixel type %v", m.Type())
	}
	return imaging.Image{W: tmp.Cols(), H: tmp.Rows(), Pix: tmp.ToBytes()}, nil
}

func readFolder(dir string, start, n int) (*Clip, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %v", ErrUnreadable, dir, err)
	}
	var names []string
	for _, e := range ents {
		if !e.IsDir() && imageExts[strings.ToLower(filepath.Ext(e.Name()))] {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	if start >= len(names) {
		return nil, fmt.Errorf("%w: folder %s has %d images, start %d", ErrNoFrames, dir, len(names), start)
	}
	names = names[start:]
	if len(names) > n {
		names = names[:n]
	}
	// Decode on every core: image decoding is most of the cost of a short
	// clip, and each file is independent.
	frames := make([]imaging.Image, len(names))
	errs := make([]error, len(names))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(names)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rgb := gocv.NewMat()
			defer rgb.Close()
			for i := int(next.Add(1)) - 1; i < len(names); i = int(next.Add(1)) - 1 {
				frames[i], errs[i] = decodeFrameSafe(filepath.Join(dir, names[i]), &rgb)
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, err
		}
		if img := frames[i]; img.W != frames[0].W || img.H != frames[0].H {
			return nil, fmt.Errorf("%w: %s is %dx%d, first is %dx%d", ErrBadFrames, filepath.Join(dir, names[i]), img.W, img.H, frames[0].W, frames[0].H)
		}
	}
	return &Clip{Frames: frames}, nil
}

// decodeFrameSafe is decodeFrame for a worker goroutine: a panic inside
// the decoder becomes an error naming the file instead of ending the process.
func decodeFrameSafe(p string, rgb *gocv.Mat) (img imaging.Image, err error) {
	defer func() {
		if v := recover(); v != nil {
			img, err = imaging.Image{}, fmt.Errorf("%w: decoding %s failed: %v", ErrUnreadable, p, v)
		}
	}()
	return decodeFrame(p, rgb)
}

// decodeFrame reads one image file as RGB (rgb is a scratch Mat).
func decodeFrame(p string, rgb *gocv.Mat) (imaging.Image, error) {
	m := gocv.IMRead(p, gocv.IMReadColor)
	defer m.Close()
	if m.Empty() {
		return imaging.Image{}, fmt.Errorf("%w: cannot decode %s", ErrUnreadable, p)
	}
	img, err := matToRGB(m, rgb)
	if err != nil {
		return imaging.Image{}, fmt.Errorf("tom: %s: %w", p, err)
	}
	return img, nil
}

// checkFrames verifies every frame is a valid image of the first one's size.
func checkFrames(frames []imaging.Image) error {
	if len(frames) == 0 {
		return ErrNoFrames
	}
	for i, f := range frames {
		if err := f.Validate(); err != nil {
			return fmt.Errorf("%w: frame %d: %v", ErrBadFrames, i, err)
		}
		if f.W != frames[0].W || f.H != frames[0].H {
			return fmt.Errorf("%w: frame %d is %dx%d, frame 0 is %dx%d", ErrBadFrames, i, f.W, f.H, frames[0].W, frames[0].H)
		}
	}
	return nil
}

// rgbMat copies an RGB image into a Mat that owns its memory.
func rgbMat(img imaging.Image) (gocv.Mat, error) {
	m := gocv.NewMatWithSize(img.H, img.W, gocv.MatTypeCV8UC3)
	dst, err := m.DataPtrUint8()
	if err != nil || len(dst) != len(img.Pix) {
		m.Close()
		return gocv.Mat{}, fmt.Errorf("%w: cannot copy a %dx%d frame", ErrBadFrames, img.W, img.H)
	}
	copy(dst, img.Pix)
	return m, nil
}

// DefaultShotThreshold is PySceneDetect's ContentDetector default (27 on
// the mean absolute HSV difference, channels 0..255).
const DefaultShotThreshold = 27.0

// DetectShots finds shot boundaries with a content detector in the spirit
// of PySceneDetect's ContentDetector: each frame is shrunk to at most 256
// px wide and converted to HSV (OpenCV's 8-bit H is 0..179), and a new shot
// starts at frame i when the mean of the three channels' mean absolute
// differences between frames i-1 and i exceeds threshold (<= 0: 27). It
// returns the start index of every shot after the first (empty for one shot).
func DetectShots(frames []imaging.Image, threshold float64) ([]int, error) {
	if err := checkFrames(frames); err != nil {
		return nil, err
	}
	if threshold <= 0 {
		threshold = DefaultShotThreshold
	}
	var prev []uint8
	var cuts []int
	rgb, small, hsv := gocv.NewMat(), gocv.NewMat(), gocv.NewMat()
	defer rgb.Close()
	defer small.Close()
	defer hsv.Close()
	for i, f := range frames {
		m, err := rgbMat(f)
		if err != nil {
			return nil, err
		}
		src := m
		if f.W > 256 {
			h := int(math.Max(1, math.Round(float64(f.H)*256/float64(f.W))))
			gocv.Resize(m, &small, image.Pt(256, h), 0, 0, gocv.InterpolationArea)
			src = small
		}
		gocv.CvtColor(src, &hsv, gocv.ColorRGBToHSV)
		m.Close()
		cur := hsv.ToBytes()
		if prev != nil {
			var s [3]float64
			for j := 0; j < len(cur); j += 3 {
				for c := 0; c < 3; c++ {
					d := int(cur[j+c]) - int(prev[j+c])
					if d < 0 {
						d = -d
					}
					s[c] += float64(d)
				}
			}
			np := float64(len(cur) / 3)
			score := (s[0] + s[1] + s[2]) / (3 * np)
			if score > threshold {
				cuts = append(cuts, i)
			}
		}
		prev = cur
	}
	return cuts, nil
}
