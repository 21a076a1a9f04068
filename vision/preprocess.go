package vision

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"sync"

	"gocv.io/x/gocv"
	"gorgonia.org/tensor"

	"github.com/magma-go/magma/kernels"
)

// CLIP normalisation constants used by Magma's image processor.
var (
	CLIPMean = [3]float32{0.48145466, 0.4578275, 0.40821073}
	CLIPStd  = [3]float32{0.26862954, 0.26130258, 0.27577711}
)

// DefaultMaxPixels bounds W*H of a decoded image (about 67 megapixels, 200 MB
// of RGB) so that a hostile or broken header cannot make the decoder allocate
// gigabytes. Override per call with WithMaxPixels.
const DefaultMaxPixels = 1 << 26

// MaxOutputPixels bounds the resized canvas (rows*base x cols*base) that
// Preprocess allocates, so a bad base or crop count fails instead of
// exhausting memory (Magma-8B needs at most 4 * 512² pixels).
const MaxOutputPixels = 1 << 26

// MaxCrops bounds the anyres crop count (Magma-8B uses 4): SelectGrid's
// search is O(maxCrops log maxCrops), and MaxOutputPixels bounds the canvas.
const MaxCrops = 1024

// Image is an 8-bit RGB image, pixels interleaved row-major: Pix[(y*W+x)*3+c].
type Image struct {
	W, H int
	Pix  []uint8
}

// Validate reports whether the image has a positive size and W*H*3 bytes.
func (im Image) Validate() error {
	if im.W <= 0 || im.H <= 0 {
		return fmt.Errorf("vision: image has zero or negative size %dx%d", im.W, im.H)
	}
	// W*H*3 must not overflow: a request may announce any size.
	if im.W > MaxImageSide || im.H > MaxImageSide {
		return fmt.Errorf("vision: image %dx%d is larger than %d pixels on a side", im.W, im.H, MaxImageSide)
	}
	if len(im.Pix) != im.W*im.H*3 {
		return fmt.Errorf("vision: image %dx%d needs %d bytes of RGB, has %d", im.W, im.H, im.W*im.H*3, len(im.Pix))
	}
	return nil
}

// MaxImageSide bounds an image's width and height (OpenCV's own limit is
// 2^30 pixels in total); with it W*H*3 cannot overflow an int.
const MaxImageSide = 1 << 20

// PixelCount returns w*h, or false when either side is not positive or the
// product does not fit in an int64 (sizes announced by a request are
// checked with it before anything is multiplied or allocated).
func PixelCount(w, h int) (int64, bool) {
	if w <= 0 || h <= 0 || int64(w) > math.MaxInt64/int64(h) {
		return 0, false
	}
	return int64(w) * int64(h), true
}

// DecodeOption adjusts DecodeImage and DecodeImageBytes.
type DecodeOption func(*decodeOptions)

type decodeOptions struct{ maxPixels int }

// WithMaxPixels rejects images whose header announces more than n pixels
// (n <= 0 means DefaultMaxPixels).
func WithMaxPixels(n int) DecodeOption {
	return func(o *decodeOptions) {
		if n > 0 {
			o.maxPixels = n
		}
	}
}

// DecodeImage reads a PNG, JPEG or WebP file and returns it as RGB.
// Errors name the file.
func DecodeImage(path string, opts ...DecodeOption) (Image, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Image{}, fmt.Errorf("vision: reading image %s: %w", path, err)
	}
	return decode(path, data, opts)
}

// DecodeImageBytes decodes an in-memory PNG, JPEG or WebP image to RGB.
func DecodeImageBytes(data []byte, opts ...DecodeOption) (Image, error) {
	return decode("<bytes>", data, opts)
}

// decode checks the container header (format and announced size) before
// handing the bytes to OpenCV, so empty, truncated, unknown or oversized
// inputs fail with a clear error instead of reaching the C++ decoder.
// The image is decoded as PIL's convert("RGB") does: 3 channels, alpha
// dropped, EXIF orientation ignored; OpenCV's BGR order is swapped to RGB.
func decode(name string, data []byte, opts []DecodeOption) (Image, error) {
	o := decodeOptions{maxPixels: DefaultMaxPixels}
	for _, f := range opts {
		f(&o)
	}
	if len(data) == 0 {
		return Image{}, fmt.Errorf("vision: image %s is empty", name)
	}
	format, w, h, err := probeImage(data)
	if err != nil {
		return Image{}, fmt.Errorf("vision: image %s: %w", name, err)
	}
	if w <= 0 || h <= 0 {
		return Image{}, fmt.Errorf("vision: image %s (%s) has zero size %dx%d", name, format, w, h)
	}
	if int64(w)*int64(h) > int64(o.maxPixels) {
		return Image{}, fmt.Errorf("vision: image %s (%s) is %dx%d = %d pixels, over the limit of %d", name, format, w, h, int64(w)*int64(h), o.maxPixels)
	}
	mat, err := gocv.IMDecode(data, gocv.IMReadColor|gocv.IMReadIgnoreOrientation)
	if err != nil {
		return Image{}, fmt.Errorf("vision: decoding image %s (%s): %w", name, format, err)
	}
	defer mat.Close()
	if mat.Empty() {
		return Image{}, fmt.Errorf("vision: image %s (%s, %dx%d): corrupt or truncated data, OpenCV could not decode it", name, format, w, h)
	}
	if mat.Type() != gocv.MatTypeCV8UC3 {
		return Image{}, fmt.Errorf("vision: image %s: decoder returned matrix type %v, want 8-bit 3-channel", name, mat.Type())
	}
	cols, rows := mat.Cols(), mat.Rows()
	if int64(cols)*int64(rows) > int64(o.maxPixels) {
		return Image{}, fmt.Errorf("vision: image %s decodes to %dx%d, over the limit of %d pixels", name, cols, rows, o.maxPixels)
	}
	if !mat.IsContinuous() {
		c := mat.Clone()
		defer c.Close()
		mat = c
	}
	bgr, err := mat.DataPtrUint8()
	if err != nil {
		return Image{}, fmt.Errorf("vision: image %s: %w", name, err)
	}
	if len(bgr) < cols*rows*3 {
		return Image{}, fmt.Errorf("vision: image %s: decoder returned %d bytes for %dx%d", name, len(bgr), cols, rows)
	}
	img := Image{W: cols, H: rows, Pix: make([]uint8, cols*rows*3)}
	for i := 0; i < cols*rows*3; i += 3 {
		img.Pix[i], img.Pix[i+1], img.Pix[i+2] = bgr[i+2], bgr[i+1], bgr[i]
	}
	return img, nil
}

var errUnknownFormat = errors.New("not a PNG, JPEG or WebP image (unrecognised signature)")

// probeImage identifies the container and reads the announced width and height
// from its header without decoding pixels.
func probeImage(d []byte) (format string, w, h int, err error) {
	switch {
	case bytes.HasPrefix(d, []byte("\x89PNG\r\n\x1a\n")):
		// IHDR must be the first chunk: length(4) "IHDR" width(4) height(4), big-endian.
		if len(d) < 24 || string(d[12:16]) != "IHDR" {
			return "PNG", 0, 0, errors.New("PNG: truncated or missing IHDR header")
		}
		w64, h64 := binary.BigEndian.Uint32(d[16:20]), binary.BigEndian.Uint32(d[20:24])
		if w64 > math.MaxInt32 || h64 > math.MaxInt32 {
			return "PNG", 0, 0, fmt.Errorf("PNG: invalid size %dx%d", w64, h64)
		}
		return "PNG", int(w64), int(h64), nil
	case len(d) >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF:
		w, h, sof, err := jpegSize(d)
		if err == nil && bytes.LastIndex(d, []byte{0xFF, 0xD9}) < sof {
			// libjpeg decodes a truncated file with a warning and grey fill;
			// PIL refuses it. Entropy-coded data byte-stuffs 0xFF, so an
			// end-of-image marker after the frame header marks a complete file.
			err = errors.New("JPEG: truncated (no end-of-image marker)")
		}
		return "JPEG", w, h, err
	case len(d) >= 12 && string(d[0:4]) == "RIFF" && string(d[8:12]) == "WEBP":
		w, h, err := webpSize(d)
		return "WebP", w, h, err
	}
	return "", 0, 0, errUnknownFormat
}

// jpegSize walks the JPEG marker segments up to the first start-of-frame
// marker (SOF0..SOF15 except DHT C4, JPG C8, DAC CC), which holds the size;
// it also returns the offset of that frame header.
func jpegSize(d []byte) (w, h, sof int, err error) {
	i := 2
	for {
		for i < len(d) && d[i] == 0xFF { // fill bytes
			i++
		}
		if i >= len(d) {
			return 0, 0, 0, errors.New("JPEG: truncated before the frame header")
		}
		m := d[i]
		i++
		if m == 0xD8 || m == 0x01 || (m >= 0xD0 && m <= 0xD7) { // markers without a length
			continue
		}
		if m == 0xD9 || m == 0xDA {
			return 0, 0, 0, errors.New("JPEG: no frame header before the scan data")
		}
		if i+2 > len(d) {
			return 0, 0, 0, errors.New("JPEG: truncated segment header")
		}
		n := int(binary.BigEndian.Uint16(d[i : i+2]))
		if n < 2 || i+n > len(d) {
			return 0, 0, 0, errors.New("JPEG: truncated or invalid segment")
		}
		if m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC {
			if n < 7 {
				return 0, 0, 0, errors.New("JPEG: short frame header")
			}
			h := int(binary.BigEndian.Uint16(d[i+3 : i+5]))
			w := int(binary.BigEndian.Uint16(d[i+5 : i+7]))
			return w, h, i, nil
		}
		i += n
	}
}

// webpSize reads the canvas size of a simple lossy (VP8), lossless (VP8L) or
// extended (VP8X) WebP file.
func webpSize(d []byte) (int, int, error) {
	if len(d) < 30 {
		return 0, 0, errors.New("WebP: truncated header")
	}
	switch string(d[12:16]) {
	case "VP8X": // 24-bit little-endian width-1 and height-1 at 24 and 27
		w := int(d[24]) | int(d[25])<<8 | int(d[26])<<16
		h := int(d[27]) | int(d[28])<<8 | int(d[29])<<16
		return w + 1, h + 1, nil
	case "VP8L": // signature 0x2f, then 14-bit width-1 and height-1, LSB first
		if d[20] != 0x2f {
			return 0, 0, errors.New("WebP: bad VP8L signature")
		}
		bits := binary.LittleEndian.Uint32(d[21:25])
		return int(bits&0x3fff) + 1, int((bits>>14)&0x3fff) + 1, nil
	case "VP8 ": // 3-byte frame tag, start code 9d 01 2a, then 14-bit sizes
		if d[23] != 0x9d || d[24] != 0x01 || d[25] != 0x2a {
			return 0, 0, errors.New("WebP: bad VP8 start code")
		}
		w := int(binary.LittleEndian.Uint16(d[26:28]) & 0x3fff)
		h := int(binary.LittleEndian.Uint16(d[28:30]) & 0x3fff)
		return w, h, nil
	}
	return 0, 0, fmt.Errorf("WebP: unknown chunk %q", d[12:16])
}

// SelectGrid picks Magma's anyres "crop" grid for an image of w x h pixels,
// as LLaVA's select_best_resolution does over the candidate resolutions
// (width i*base, height j*base) for i = 1..maxCrops, j = 1..maxCrops/i
// (so i*j <= maxCrops), visited in that order. For each candidate (W, H):
//
//	scale     = min(W/w, H/h)                      (float64)
//	effective = min(int(w*scale) * int(h*scale), w*h)
//	wasted    = W*H - effective
//
// The candidate with the largest effective area wins (the most image detail
// kept after fitting), ties broken by the smallest wasted area (the least
// padding/upsampling); comparisons are strict, so the first candidate wins a
// full tie. It returns rows = H/base and cols = W/base. Invalid arguments
// (non-positive sizes, base or maxCrops) return 0, 0.
func SelectGrid(w, h, base, maxCrops int) (rows, cols int) {
	if w <= 0 || h <= 0 || base <= 0 || maxCrops <= 0 {
		return 0, 0
	}
	bestEff, bestWaste := -1, 0
	for i := 1; i <= maxCrops; i++ {
		for j := 1; j <= maxCrops/i; j++ {
			cw, ch := i*base, j*base
			scale := math.Min(float64(cw)/float64(w), float64(ch)/float64(h))
			dw, dh := int(float64(w)*scale), int(float64(h)*scale)
			eff := dw * dh
			if eff > w*h {
				eff = w * h
			}
			waste := cw*ch - eff
			if eff > bestEff || (eff == bestEff && waste < bestWaste) {
				bestEff, bestWaste = eff, waste
				rows, cols = j, i
			}
		}
	}
	return rows, cols
}

// Pixels is a preprocessed image: Rows x Cols crops of Base x Base pixels,
// stored channels-last as the ConvNeXt graph input [crops*Base*Base, 3]
// (crop-major row-major over the grid, then y, then x, then channel).
type Pixels struct {
	Rows, Cols, Base int
	Data             []float32
}

// NumCrops is Rows*Cols.
func (p *Pixels) NumCrops() int { return p.Rows * p.Cols }

// Grid is the spatial layout of Data for the kernels: N crops of Base x Base.
func (p *Pixels) Grid() kernels.Grid { return kernels.Grid{N: p.NumCrops(), H: p.Base, W: p.Base} }

// Tensor wraps Data (no copy) as a [crops*Base*Base, 3] float32 tensor.
func (p *Pixels) Tensor() *tensor.Dense {
	return tensor.New(tensor.WithShape(p.NumCrops()*p.Base*p.Base, 3), tensor.WithBacking(p.Data))
}

// NCHW returns the crops in PyTorch's layout [crops, 3, Base, Base]
// (what Magma's processor calls pixel_values), for comparisons.
func (p *Pixels) NCHW() []float32 {
	n, s := p.NumCrops(), p.Base*p.Base
	out := make([]float32, len(p.Data))
	for k := 0; k < n; k++ {
		src := p.Data[k*s*3 : (k+1)*s*3]
		dst := out[k*s*3 : (k+1)*s*3]
		for i := 0; i < s; i++ {
			dst[i] = src[i*3]
			dst[s+i] = src[i*3+1]
			dst[2*s+i] = src[i*3+2]
		}
	}
	return out
}

// Preprocess is Magma's image processor with the "crop" anyres strategy:
//
//  1. x = (u/255 - mean[c]) / std[c] per channel in float32 (torchvision's
//     ToTensor then Normalize);
//
//  2. bilinear resize to (rows*base) x (cols*base), (rows, cols) from
//     SelectGrid, as torch.nn.functional.interpolate(mode="bilinear",
//     align_corners=False, antialias=False) on float32: source indices and
//     weights in float32 as PyTorch computes them (see resizeAxis), then
//
//     out = (v00*wx0 + v01*wx1)*wy0 + (v10*wx0 + v11*wx1)*wy1
//
//     evaluated in float64 and rounded once to float32. This reproduces the
//     PyTorch goldens bit for bit; the same formula with float32 roundings
//     after every operation differs by 1 ulp in about a third of the values
//     (the reference kernel evidently keeps extra precision);
//
//  3. cut into base x base crops, row-major over the grid.
//
// Normalising before resizing matches the reference order; since the resize
// is linear the two orders differ only by float rounding. The uint8→float
// normalisation is a 256-entry table per channel, applied on the fly, so no
// full-size float copy of the input is made. The resize runs on
// GOMAXPROCS goroutines, split over output rows.
func Preprocess(img Image, base, maxCrops int, mean, std [3]float32) (*Pixels, error) {
	if err := img.Validate(); err != nil {
		return nil, err
	}
	if base <= 0 {
		return nil, fmt.Errorf("vision: preprocess: base crop size %d must be positive", base)
	}
	if maxCrops <= 0 || maxCrops > MaxCrops {
		return nil, fmt.Errorf("vision: preprocess: max crops %d must be in [1, %d]", maxCrops, MaxCrops)
	}
	if int64(base)*int64(base) > MaxOutputPixels {
		return nil, fmt.Errorf("vision: preprocess: base crop size %d is over the limit of %d pixels", base, int64(MaxOutputPixels))
	}
	for c := 0; c < 3; c++ {
		if std[c] == 0 || math.IsNaN(float64(std[c])) || math.IsNaN(float64(mean[c])) {
			return nil, fmt.Errorf("vision: preprocess: invalid mean/std for channel %d: %v/%v", c, mean[c], std[c])
		}
	}
	rows, cols := SelectGrid(img.W, img.H, base, maxCrops)
	outH, outW := rows*base, cols*base
	if int64(outH)*int64(outW) > MaxOutputPixels {
		return nil, fmt.Errorf("vision: preprocess: %dx%d crops of %d px make %dx%d pixels, over the limit of %d", rows, cols, base, outW, outH, int64(MaxOutputPixels))
	}

	var lut [3][256]float32
	for c := 0; c < 3; c++ {
		for u := 0; u < 256; u++ {
			x := float32(u) / 255
			x = x - mean[c]
			lut[c][u] = x / std[c]
		}
	}
	ys := resizeAxis(img.H, outH)
	xs := resizeAxis(img.W, outW)

	px := &Pixels{Rows: rows, Cols: cols, Base: base, Data: make([]float32, outH*outW*3)}
	stride := img.W * 3
	rowFn := func(oy int) {
		ty := ys[oy]
		r0 := img.Pix[ty.i0*stride : (ty.i0+1)*stride]
		r1 := img.Pix[ty.i1*stride : (ty.i1+1)*stride]
		gy := oy / base
		cy := oy % base
		wy0, wy1 := float64(ty.w0), float64(ty.w1)
		for gx := 0; gx < cols; gx++ {
			// Destination: crop (gy, gx), row cy, all base columns.
			off := ((gy*cols+gx)*base*base + cy*base) * 3
			dst := px.Data[off : off+base*3]
			for cx := 0; cx < base; cx++ {
				tx := xs[gx*base+cx]
				a0, a1 := tx.i0*3, tx.i1*3
				wx0, wx1 := float64(tx.w0), float64(tx.w1)
				for c := 0; c < 3; c++ {
					l := &lut[c]
					// Interpolate along x in each source row, then blend the
					// two rows along y, in float64, rounding once to float32.
					t0 := float64(l[r0[a0+c]])*wx0 + float64(l[r0[a1+c]])*wx1
					t1 := float64(l[r1[a0+c]])*wx0 + float64(l[r1[a1+c]])*wx1
					dst[cx*3+c] = float32(t0*wy0 + t1*wy1)
				}
			}
		}
	}
	parallelRows(outH, rowFn)
	return px, nil
}

// tap is one output coordinate's two source indices and weights.
type tap struct {
	i0, i1 int
	w0, w1 float32
}

// resizeAxis computes PyTorch's bilinear source taps (align_corners=False,
// no antialias) for one axis, in float32 as its CPU kernel does for float
// tensors (opmath type float):
//
//	scale = in/out                            (area_pixel_compute_scale)
//	src   = max(scale*(dst+0.5) - 0.5, 0)     (area_pixel_compute_source_index)
//	i0    = trunc(src); i1 = i0+1 if i0 < in-1 else i0
//	w1    = clamp(src - i0, 0, 1); w0 = 1 - w1
//
// When in == out the kernel copies (w0 = 1, w1 = 0). Half-pixel centres make
// the resize symmetric; the clamp at 0 replicates the first row/column at the
// border instead of reading outside the image.
func resizeAxis(in, out int) []tap {
	taps := make([]tap, out)
	if in == out {
		for i := range taps {
			taps[i] = tap{i0: i, i1: i, w0: 1, w1: 0}
		}
		return taps
	}
	scale := float32(in) / float32(out)
	for d := range taps {
		src := float32(scale*float32(float32(d)+0.5)) - 0.5
		if src < 0 {
			src = 0
		}
		i0 := int(src)
		if i0 > in-1 {
			i0 = in - 1
		}
		i1 := i0
		if i0 < in-1 {
			i1 = i0 + 1
		}
		w1 := src - float32(i0)
		if w1 < 0 {
			w1 = 0
		} else if w1 > 1 {
			w1 = 1
		}
		taps[d] = tap{i0: i0, i1: i1, w0: 1 - w1, w1: w1}
	}
	return taps
}

// parallelRows runs fn(row) for rows 0..n-1 on up to GOMAXPROCS goroutines,
// each taking a contiguous block of rows. A panic in a worker is re-raised
// on the calling goroutine (where a server's recover sees it) instead of
// killing the process.
func parallelRows(n int, fn func(row int)) {
	workers := runtime.GOMAXPROCS(0)
	if workers > n {
		workers = n
	}
	if workers <= 1 || n < 16 {
		for r := 0; r < n; r++ {
			fn(r)
		}
		return
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var perr any
	chunk := (n + workers - 1) / workers
	for lo := 0; lo < n; lo += chunk {
		hi := lo + chunk
		if hi > n {
			hi = n
		}
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			defer func() {
				if v := recover(); v != nil {
					mu.Lock()
					perr = v
					mu.Unlock()
				}
			}()
			for r := lo; r < hi; r++ {
				fn(r)
			}
		}(lo, hi)
	}
	wg.Wait()
	if perr != nil {
		panic(perr)
	}
}
