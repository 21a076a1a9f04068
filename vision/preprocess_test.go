package vision

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gocv.io/x/gocv"
)

func TestSelectGrid(t *testing.T) {
	// Expected values worked by hand from the candidate list
	// (512,512) (512,1024) (512,1536) (512,2048) (1024,512) (1024,1024)
	// (1536,512) (2048,512) for base 512, maxCrops 4.
	cases := []struct {
		name               string
		w, h, base, max    int
		wantRows, wantCols int
	}{
		// Exact fit: effective = w*h for every candidate, least waste is 1x1.
		{"square exact", 512, 512, 512, 4, 1, 1},
		// 1024x1024 keeps min(1024², 10⁶) = 10⁶ pixels; 1x1 only 512².
		{"square large", 1000, 1000, 512, 4, 2, 2},
		// 2x2: scale .5333 → 1024x576 = 589824 beats any 1-row candidate (910x512).
		{"wide 16:9", 1920, 1080, 512, 4, 2, 2},
		{"tall 9:16", 1080, 1920, 512, 4, 2, 2},
		// 1x4 (2048x512) keeps every pixel of a 4:1 image.
		{"wide 4:1", 2000, 500, 512, 4, 1, 4},
		{"tall 1:4", 512, 2048, 512, 4, 4, 1},
		// 1x3 and 1x4 both keep all 360000 pixels (tie on effective area);
		// 3 rows waste 786432-360000 < 4 rows 1048576-360000.
		{"tall tie on effective", 300, 1200, 512, 4, 3, 1},
		// Tiny: every candidate keeps all 100 pixels, 1x1 wastes least.
		{"tiny", 10, 10, 512, 4, 1, 1},
		{"tiny wide", 100, 10, 512, 4, 1, 1},
		{"one pixel", 1, 1, 512, 4, 1, 1},
		// Huge: the 2x2 grid has the largest area.
		{"huge", 10000, 10000, 512, 4, 2, 2},
		// Exact multiples: zero waste at the matching grid.
		{"exact 1x2", 1024, 512, 512, 4, 1, 2},
		{"exact 1x3", 1536, 512, 512, 4, 1, 3},
		// One column too wide for 1x1: 1x1 keeps 511*510, 1x2 keeps all 513*512.
		{"just over", 513, 512, 512, 4, 1, 2},
		// maxCrops 1 allows only 1x1.
		{"single crop", 4000, 1000, 512, 1, 1, 1},
		// The fixture images at base 64 (cross-checked with the reference script).
		{"fixture square", 64, 64, 64, 4, 1, 1},
		{"fixture wide", 150, 70, 64, 4, 1, 3},
		{"fixture tall", 50, 120, 64, 4, 2, 1},
		{"fixture big", 200, 130, 64, 4, 2, 2},
		// Invalid input.
		{"zero width", 0, 10, 512, 4, 0, 0},
		{"zero crops", 10, 10, 512, 0, 0, 0},
	}
	for _, c := range cases {
		r, col := SelectGrid(c.w, c.h, c.base, c.max)
		if r != c.wantRows || col != c.wantCols {
			t.Errorf("%s: SelectGrid(%d,%d,%d,%d) = %dx%d, want %dx%d", c.name, c.w, c.h, c.base, c.max, r, col, c.wantRows, c.wantCols)
		}
	}
}

// TestSelectGridFirstWinsFullTie checks the strict comparison: with base 1
// and a 2x2 image both 1x2 and 2x1 would tie only if 1x1 and 2x2 did not
// exist; we emulate the rule through a bound that forbids the 2x2 grid and
// an image whose effective areas tie across equal-area candidates.
func TestSelectGridFirstWinsFullTie(t *testing.T) {
	// 1x1 image, base 1, maxCrops 3: all candidates keep 1 pixel; 1x1 wastes 0.
	if r, c := SelectGrid(1, 1, 1, 3); r != 1 || c != 1 {
		t.Fatalf("got %dx%d, want 1x1", r, c)
	}
	// 2x2 image, base 1, maxCrops 2: candidates (1,1) eff 1, (1,2) eff 1,
	// (2,1) eff 1 — effective ties; (1,1) wastes 0 and is first.
	if r, c := SelectGrid(2, 2, 1, 2); r != 1 || c != 1 {
		t.Fatalf("got %dx%d, want 1x1", r, c)
	}
	// 3x3 image, base 2, maxCrops 2: (2,2) keeps 4, (2,4) scale 2/3 → 2x2 = 4,
	// (4,2) likewise 4: full tie on effective; 1x1 wastes 0 and wins.
	if r, c := SelectGrid(3, 3, 2, 2); r != 1 || c != 1 {
		t.Fatalf("got %dx%d, want 1x1", r, c)
	}
}

// refResize is an independent float64 reference: normalise, then bilinear
// (align_corners=False, half-pixel centres, clamp at 0) with weights computed
// in float64, returned as a full (outH, outW, 3) image.
func refResize(img Image, outH, outW int, mean, std [3]float32) []float64 {
	src := func(d, in, out int) (int, int, float64) {
		if in == out {
			return d, d, 0
		}
		s := (float64(d)+0.5)*float64(in)/float64(out) - 0.5
		if s < 0 {
			s = 0
		}
		i0 := int(math.Floor(s))
		i1 := i0 + 1
		if i1 > in-1 {
			i1 = in - 1
		}
		return i0, i1, s - float64(i0)
	}
	at := func(x, y, c int) float64 {
		u := float64(img.Pix[(y*img.W+x)*3+c]) / 255
		return (u - float64(mean[c])) / float64(std[c])
	}
	out := make([]float64, outH*outW*3)
	for oy := 0; oy < outH; oy++ {
		y0, y1, ly := src(oy, img.H, outH)
		for ox := 0; ox < outW; ox++ {
			x0, x1, lx := src(ox, img.W, outW)
			for c := 0; c < 3; c++ {
				top := at(x0, y0, c)*(1-lx) + at(x1, y0, c)*lx
				bot := at(x0, y1, c)*(1-lx) + at(x1, y1, c)*lx
				out[(oy*outW+ox)*3+c] = top*(1-ly) + bot*ly
			}
		}
	}
	return out
}

func randomImage(w, h int, seed int64) Image {
	r := rand.New(rand.NewSource(seed))
	img := Image{W: w, H: h, Pix: make([]uint8, w*h*3)}
	for i := range img.Pix {
		img.Pix[i] = uint8(r.Intn(256))
	}
	return img
}

// crop-major channels-last → full image accessor.
func pixelAt(p *Pixels, y, x, c int) float32 {
	gy, gx := y/p.Base, x/p.Base
	k := gy*p.Cols + gx
	return p.Data[((k*p.Base+y%p.Base)*p.Base+x%p.Base)*3+c]
}

func TestPreprocessMatchesFloat64Reference(t *testing.T) {
	sizes := [][2]int{{64, 64}, {150, 70}, {50, 120}, {200, 130}, {7, 3}, {1, 1}, {333, 517}, {1000, 20}}
	for i, s := range sizes {
		img := randomImage(s[0], s[1], int64(i))
		px, err := Preprocess(img, 64, 4, CLIPMean, CLIPStd)
		if err != nil {
			t.Fatal(err)
		}
		rows, cols := SelectGrid(s[0], s[1], 64, 4)
		if px.Rows != rows || px.Cols != cols || px.Base != 64 || len(px.Data) != rows*cols*64*64*3 {
			t.Fatalf("%v: got %dx%d base %d len %d", s, px.Rows, px.Cols, px.Base, len(px.Data))
		}
		ref := refResize(img, rows*64, cols*64, CLIPMean, CLIPStd)
		maxd := 0.0
		for y := 0; y < rows*64; y++ {
			for x := 0; x < cols*64; x++ {
				for c := 0; c < 3; c++ {
					d := math.Abs(float64(pixelAt(px, y, x, c)) - ref[(y*cols*64+x)*3+c])
					maxd = math.Max(maxd, d)
				}
			}
		}
		t.Logf("%dx%d → grid %dx%d: max |diff| vs float64 reference %.3g", s[0], s[1], rows, cols, maxd)
		if maxd > 1e-5 {
			t.Errorf("%v: max diff %g > 1e-5", s, maxd)
		}
	}
}

// An image of exactly rows*base x cols*base is not resampled: each crop must
// be the matching tile, in row-major order, and NCHW must transpose it.
func TestPreprocessCropOrderAndNCHW(t *testing.T) {
	const base = 8
	img := randomImage(3*base, 2*base, 42)
	px, err := Preprocess(img, base, 6, CLIPMean, CLIPStd)
	if err != nil {
		t.Fatal(err)
	}
	if px.Rows != 2 || px.Cols != 3 {
		t.Fatalf("grid %dx%d, want 2x3", px.Rows, px.Cols)
	}
	nchw := px.NCHW()
	for k := 0; k < 6; k++ {
		gy, gx := k/3, k%3
		for y := 0; y < base; y++ {
			for x := 0; x < base; x++ {
				for c := 0; c < 3; c++ {
					u := img.Pix[((gy*base+y)*img.W+gx*base+x)*3+c]
					want := (float32(u)/255 - CLIPMean[c]) / CLIPStd[c]
					if got := px.Data[((k*base+y)*base+x)*3+c]; got != want {
						t.Fatalf("crop %d (%d,%d,%d): %v want %v", k, y, x, c, got, want)
					}
					if got := nchw[((k*3+c)*base+y)*base+x]; got != want {
						t.Fatalf("NCHW crop %d (%d,%d,%d): %v want %v", k, c, y, x, got, want)
					}
				}
			}
		}
	}
	if g := px.Grid(); g.N != 6 || g.H != base || g.W != base {
		t.Fatalf("Grid() = %+v", g)
	}
	if s := px.Tensor().Shape(); s[0] != 6*base*base || s[1] != 3 {
		t.Fatalf("Tensor shape %v", s)
	}
}

func TestPreprocessBadInput(t *testing.T) {
	good := randomImage(4, 4, 1)
	cases := []struct {
		name      string
		img       Image
		base, max int
		std       [3]float32
	}{
		{"zero size", Image{}, 64, 4, CLIPStd},
		{"zero width", Image{W: 0, H: 5, Pix: nil}, 64, 4, CLIPStd},
		{"short pixels", Image{W: 4, H: 4, Pix: make([]uint8, 10)}, 64, 4, CLIPStd},
		{"zero base", good, 0, 4, CLIPStd},
		{"zero crops", good, 64, 0, CLIPStd},
		{"zero std", good, 64, 4, [3]float32{1, 0, 1}},
		{"huge canvas", good, 1 << 14, 4, CLIPStd},
	}
	for _, c := range cases {
		if _, err := Preprocess(c.img, c.base, c.max, CLIPMean, c.std); err == nil {
			t.Errorf("%s: no error", c.name)
		} else {
			t.Logf("%s: %v", c.name, err)
		}
	}
}

// encode makes a test image file in memory with OpenCV (BGR input).
func encode(t *testing.T, img Image, ext string, params ...int) []byte {
	t.Helper()
	bgr := make([]byte, len(img.Pix))
	for i := 0; i < len(bgr); i += 3 {
		bgr[i], bgr[i+1], bgr[i+2] = img.Pix[i+2], img.Pix[i+1], img.Pix[i]
	}
	m, err := gocv.NewMatFromBytes(img.H, img.W, gocv.MatTypeCV8UC3, bgr)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var buf *gocv.NativeByteBuffer
	if len(params) > 0 {
		buf, err = gocv.IMEncodeWithParams(gocv.FileExt(ext), m, params)
	} else {
		buf, err = gocv.IMEncode(gocv.FileExt(ext), m)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer buf.Close()
	return append([]byte(nil), buf.GetBytes()...)
}

func TestDecodeFormats(t *testing.T) {
	img := randomImage(37, 23, 7)
	// A pure red pixel checks the BGR→RGB swap.
	img.Pix[0], img.Pix[1], img.Pix[2] = 255, 0, 0
	cases := []struct {
		name   string
		data   []byte
		format string
		exact  bool
	}{
		{"png", encode(t, img, ".png"), "PNG", true},
		{"webp lossless", encode(t, img, ".webp", gocv.IMWriteWebpQuality, 101), "WebP", true},
		{"webp lossy", encode(t, img, ".webp", gocv.IMWriteWebpQuality, 90), "WebP", false},
		{"jpeg", encode(t, img, ".jpg", gocv.IMWriteJpegQuality, 95), "JPEG", false},
	}
	for _, c := range cases {
		format, w, h, err := probeImage(c.data)
		if err != nil || format != c.format || w != img.W || h != img.H {
			t.Errorf("%s: probe = %s %dx%d %v", c.name, format, w, h, err)
		}
		got, err := DecodeImageBytes(c.data)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got.W != img.W || got.H != img.H || len(got.Pix) != len(img.Pix) {
			t.Fatalf("%s: decoded %dx%d", c.name, got.W, got.H)
		}
		if c.exact && !bytes.Equal(got.Pix, img.Pix) {
			t.Errorf("%s: lossless round trip differs", c.name)
		}
		if !c.exact && got.Pix[0] < 128 {
			t.Errorf("%s: red pixel decoded as %v (channel order?)", c.name, got.Pix[:3])
		}
	}
	// From a file too.
	path := filepath.Join(t.TempDir(), "x.png")
	if err := os.WriteFile(path, cases[0].data, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := DecodeImage(path)
	if err != nil || !bytes.Equal(got.Pix, img.Pix) {
		t.Fatalf("DecodeImage: %v", err)
	}
}

// pngChunk builds one PNG chunk with its CRC.
func pngChunk(typ string, data []byte) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.BigEndian, uint32(len(data)))
	b.WriteString(typ)
	b.Write(data)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(append([]byte(typ), data...)))
	return b.Bytes()
}

func pngHeader(w, h uint32) []byte {
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 2 // 8-bit RGB
	return append([]byte("\x89PNG\r\n\x1a\n"), pngChunk("IHDR", ihdr)...)
}

func TestDecodeBadInput(t *testing.T) {
	valid := encode(t, randomImage(40, 30, 3), ".png")
	corrupt := append([]byte(nil), valid...)
	for i := 40; i < len(corrupt)-12; i++ {
		corrupt[i] ^= 0x5a
	}
	jpg := encode(t, randomImage(40, 30, 4), ".jpg")
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "empty"},
		{"garbage", []byte("this is not an image at all"), "not a PNG, JPEG or WebP"},
		{"png signature only", valid[:8], "truncated"},
		{"truncated png", valid[:len(valid)/2], "corrupt"},
		{"corrupt png", corrupt, "corrupt"},
		{"zero-size png", append(pngHeader(0, 10), pngChunk("IEND", nil)...), "zero size"},
		{"huge png header", append(pngHeader(1<<30, 1<<30), pngChunk("IEND", nil)...), "over the limit"},
		{"truncated jpeg", jpg[:20], "JPEG"},
		{"jpeg header only", jpg[:len(jpg)/3], "truncated"},
		{"truncated webp", []byte("RIFF\x00\x00\x00\x00WEBPVP8 "), "WebP"},
	}
	for _, c := range cases {
		_, err := DecodeImageBytes(c.data)
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q does not mention %q", c.name, err, c.want)
		}
		t.Logf("%s: %v", c.name, err)
	}
	// Pixel limit option.
	if _, err := DecodeImageBytes(valid, WithMaxPixels(100)); err == nil || !strings.Contains(err.Error(), "over the limit") {
		t.Errorf("pixel limit: %v", err)
	}
	// File errors name the file.
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.png")
	os.WriteFile(empty, nil, 0o644)
	bad := filepath.Join(dir, "bad.jpg")
	os.WriteFile(bad, corrupt, 0o644)
	for _, p := range []string{filepath.Join(dir, "missing.png"), empty, bad} {
		_, err := DecodeImage(p)
		if err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error %v does not name the file", p, err)
		} else {
			t.Logf("%v", err)
		}
	}
}

// TestDecodeMutations feeds randomly damaged PNG, JPEG and WebP files to the
// decoder: each must either decode to a valid image or return an error,
// never panic or crash in the C++ decoder.
func TestDecodeMutations(t *testing.T) {
	img := randomImage(48, 32, 9)
	srcs := map[string][]byte{
		"png":   encode(t, img, ".png"),
		"jpeg":  encode(t, img, ".jpg"),
		"webp":  encode(t, img, ".webp", gocv.IMWriteWebpQuality, 80),
		"webpl": encode(t, img, ".webp", gocv.IMWriteWebpQuality, 101),
	}
	r := rand.New(rand.NewSource(11))
	for name, src := range srcs {
		ok, bad := 0, 0
		for k := 0; k < 150; k++ {
			d := append([]byte(nil), src...)
			switch k % 3 {
			case 0: // flip a few bytes
				for n := 0; n < 1+r.Intn(8); n++ {
					d[r.Intn(len(d))] ^= byte(1 + r.Intn(255))
				}
			case 1: // truncate
				d = d[:r.Intn(len(d))]
			case 2: // overwrite a run with zeros
				i := r.Intn(len(d))
				for j := i; j < len(d) && j < i+32; j++ {
					d[j] = 0
				}
			}
			got, err := DecodeImageBytes(d)
			if err != nil {
				bad++
				continue
			}
			if err := got.Validate(); err != nil {
				t.Fatalf("%s mutation %d: decoded an invalid image: %v", name, k, err)
			}
			ok++
		}
		t.Logf("%s: %d decoded, %d rejected", name, ok, bad)
	}
}

// TestOverflowingSizes (issue 20, point 1): sizes whose W*H*3 overflows are
// refused before anything is multiplied or allocated.
func TestOverflowingSizes(t *testing.T) {
	for _, im := range []Image{{W: 4, H: 1 << 62}, {W: 1 << 62, H: 4}, {W: 1<<31 + 1, H: 1<<31 + 1}, {W: MaxImageSide + 1, H: 1}} {
		if err := im.Validate(); err == nil {
			t.Errorf("%dx%d with %d bytes validated", im.W, im.H, len(im.Pix))
		}
		if _, err := Preprocess(im, 64, 4, CLIPMean, CLIPStd); err == nil {
			t.Errorf("%dx%d preprocessed", im.W, im.H)
		}
	}
	if _, ok := PixelCount(1<<62, 4); ok {
		t.Error("PixelCount(2^62, 4) did not report the overflow")
	}
	if _, err := Preprocess(Image{W: 2, H: 2, Pix: make([]uint8, 12)}, 64, 1_000_000_000, CLIPMean, CLIPStd); err == nil {
		t.Error("a billion crops were accepted")
	}
}

// TestParallelRowsPanicReachesCaller: a panic in a worker goroutine is
// re-raised on the caller, where a server's recover catches it.
func TestParallelRowsPanicReachesCaller(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("the panic was lost")
		}
	}()
	parallelRows(1024, func(r int) {
		if r == 1000 {
			panic("row 1000")
		}
	})
}

// FuzzPreprocess (issue 20): arbitrary sizes, pixel buffers, crop sizes and
// crop counts give a result or an error, never a panic.
func FuzzPreprocess(f *testing.F) {
	f.Add(4, 1<<62, []byte{}, 64, 4)
	f.Add(3, 2, make([]byte, 18), 64, 4)
	f.Add(1, 1, []byte{1, 2, 3}, 32, 1_000_000_000)
	f.Add(100, 1, make([]byte, 300), 1<<20, 1)
	f.Add(0, 5, []byte{}, 64, 4)
	f.Add(17, 9, make([]byte, 17*9*3), 96, 9)
	f.Fuzz(func(t *testing.T, w, h int, pix []byte, base, crops int) {
		if base > 512 || crops > 16 {
			// Valid but large work: checked for refusal only.
			if int64(base)*int64(base)*int64(crops) <= MaxOutputPixels && base > 0 && crops > 0 && crops <= MaxCrops && len(pix) == w*h*3 && w > 0 && h > 0 {
				return
			}
		}
		px, err := Preprocess(Image{W: w, H: h, Pix: pix}, base, crops, CLIPMean, CLIPStd)
		if err == nil && len(px.Data) != px.NumCrops()*base*base*3 {
			t.Fatalf("%d floats for %d crops of %d", len(px.Data), px.NumCrops(), base)
		}
	})
}
