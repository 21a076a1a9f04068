package tom

import (
	"errors"
	"fmt"
	"image"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gocv.io/x/gocv"

	"github.com/magma-go/magma/som"
	"github.com/magma-go/magma/vision"
)

// texture returns a w x h random RGB texture: smooth colour blobs (noise
// at 1/8 resolution, upscaled) plus fine detail for the tracker.
func texture(w, h int, seed int64) vision.Image {
	r := rand.New(rand.NewSource(seed))
	cw, ch := w/24+2, h/24+2
	coarse := vision.Image{W: cw, H: ch, Pix: make([]uint8, cw*ch*3)}
	for i := range coarse.Pix {
		coarse.Pix[i] = uint8(40 + r.Intn(176))
	}
	cm, _ := rgbMat(coarse)
	defer cm.Close()
	big := gocv.NewMat()
	defer big.Close()
	gocv.Resize(cm, &big, image.Pt(w, h), 0, 0, gocv.InterpolationCubic)
	pix := big.ToBytes()
	fine := vision.Image{W: w, H: h, Pix: make([]uint8, w*h*3)}
	for i := range fine.Pix {
		fine.Pix[i] = uint8(r.Intn(256))
	}
	fm, _ := rgbMat(fine)
	defer fm.Close()
	b := gocv.NewMat()
	defer b.Close()
	gocv.GaussianBlur(fm, &b, image.Pt(0, 0), 1.2, 1.2, gocv.BorderReflect101)
	fb := b.ToBytes()
	for i := range pix {
		v := int(pix[i]) + (int(fb[i])-128)/4
		if v < 0 {
			v = 0
		}
		if v > 255 {
			v = 255
		}
		pix[i] = uint8(v)
	}
	return vision.Image{W: w, H: h, Pix: pix}
}

// scene renders T frames of size S x S: a textured scene viewed through a
// camera moving pan px/frame to the right, with a textured square object
// of side objSide whose scene position is (ox+vx*t, oy+vy*t).
func scene(T, S int, pan, vx, vy float64) []vision.Image {
	return sceneAt(T, S, pan, vx, vy, 60, 80)
}

// sceneAt is scene with the object's frame-0 corner at (ox, oy).
func sceneAt(T, S int, pan, vx, vy, ox, oy float64) []vision.Image {
	bgW := S + int(math.Ceil(pan*float64(T))) + 8
	bg := texture(bgW, S, 1)
	obj := texture(objSide, objSide, 2)
	frames := make([]vision.Image, T)
	for t := 0; t < T; t++ {
		f := vision.Image{W: S, H: S, Pix: make([]uint8, S*S*3)}
		cam := int(math.Round(pan * float64(t)))
		for y := 0; y < S; y++ {
			copy(f.Pix[y*S*3:(y+1)*S*3], bg.Pix[(y*bgW+cam)*3:(y*bgW+cam+S)*3])
		}
		x0 := int(math.Round(ox+vx*float64(t))) - cam
		y0 := int(math.Round(oy + vy*float64(t)))
		for y := 0; y < objSide; y++ {
			for x := 0; x < objSide; x++ {
				X, Y := x0+x, y0+y
				if X >= 0 && X < S && Y >= 0 && Y < S {
					copy(f.Pix[(Y*S+X)*3:(Y*S+X)*3+3], obj.Pix[(y*objSide+x)*3:(y*objSide+x)*3+3])
				}
			}
		}
		frames[t] = f
	}
	return frames
}

func writeFolder(t *testing.T, frames []vision.Image) string {
	dir := t.TempDir()
	for i, f := range frames {
		m, _ := rgbMat(f)
		bgr := gocv.NewMat()
		gocv.CvtColor(m, &bgr, gocv.ColorBGRToRGB)
		if !gocv.IMWrite(filepath.Join(dir, fmt.Sprintf("%04d.png", i)), bgr) {
			t.Fatal("IMWrite failed")
		}
		m.Close()
		bgr.Close()
	}
	return dir
}

func writeAVI(t *testing.T, frames []vision.Image) string {
	p := filepath.Join(t.TempDir(), "clip.avi")
	vw, err := gocv.VideoWriterFile(p, "MJPG", 10, frames[0].W, frames[0].H, true)
	if err != nil {
		t.Skipf("no MJPG writer: %v", err)
	}
	for _, f := range frames {
		m, _ := rgbMat(f)
		bgr := gocv.NewMat()
		gocv.CvtColor(m, &bgr, gocv.ColorBGRToRGB)
		if err := vw.Write(bgr); err != nil {
			t.Fatal(err)
		}
		m.Close()
		bgr.Close()
	}
	vw.Close()
	return p
}

const (
	vx, vy  = 4.0, 2.0
	objSide = 64
)

// Object at frame 0 covers [60,124]x[80,144] and moves (vx,vy) per frame
// in scene coordinates. Points the object sweeps over (covered at some
// frame) are ambiguous for any tracker and are left out of the checks.
// inCore keeps points whose 21 px LK window lies inside the object.
func inCore(p som.Point) bool { return p.X >= 70 && p.X <= 114 && p.Y >= 90 && p.Y <= 134 }
func inSwept(p som.Point) bool {
	return p.X >= 60-12 && p.X <= 124+16*vx+12 && p.Y >= 80-12 && p.Y <= 144+16*vy+12
}

func checkObject(t *testing.T, frames []vision.Image, res *Result) {
	t.Helper()
	ts, err := analyze(frames[:17], DefaultConfig().withDefaults(), rand.New(rand.NewSource(1)))
	if err != nil {
		t.Fatal(err)
	}
	isFg := map[int]bool{}
	for _, i := range ts.fg {
		isFg[i] = true
	}
	core, static := 0, 0
	for i := range ts.pts[0] {
		p0 := ts.pts[0][i]
		switch {
		case inCore(p0):
			core++
			if !isFg[i] {
				t.Errorf("object trace %d at %v is background", i, p0)
				continue
			}
			for s := 1; s < len(ts.pts); s++ {
				want := som.Point{X: p0.X + vx*float64(s), Y: p0.Y + vy*float64(s)}
				if d := math.Hypot(ts.pts[s][i].X-want.X, ts.pts[s][i].Y-want.Y); d > 2 {
					t.Errorf("object trace %d step %d at %v, path says %v: off by %.2f px", i, s, ts.pts[s][i], want, d)
					break
				}
			}
		case !inSwept(p0):
			static++
			if isFg[i] {
				t.Errorf("static background trace %d at %v is foreground", i, p0)
			}
		}
	}
	if core < 4 || static < 100 {
		t.Errorf("only %d object and %d static traces survived", core, static)
	}
	nfg := 0
	for _, m := range res.Marks {
		if m.Foreground {
			nfg++
			if p := (som.Point{X: m.Points[0][0], Y: m.Points[0][1]}); !inSwept(p) {
				t.Errorf("foreground mark %d starts at %v, away from the object", m.ID, p)
			}
		}
	}
	if nfg == 0 {
		t.Error("no foreground mark")
	}
}

func TestStaticCameraMovingObject(t *testing.T) {
	frames := scene(17, 256, 0, vx, vy)
	dir := writeFolder(t, frames)
	res, err := RunFile(dir, 0, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if res.CameraMotion {
		t.Error("camera motion detected without a pan")
	}
	if res.Width != 256 || res.Height != 256 || res.FramesUsed != 17 {
		t.Errorf("header %d %d %d", res.Width, res.Height, res.FramesUsed)
	}
	checkObject(t, frames, res)
	if !strings.Contains(res.ToMText, " should be moved, and their future positions are:\n\n\"Mark ") {
		t.Errorf("ToM text %q", res.ToMText)
	}
	if res.SoMText == "" || res.Marked.W != 256 {
		t.Error("no SoM")
	}
}

func TestPanMovingObject(t *testing.T) {
	frames := scene(17, 256, 3, vx, vy)
	res, err := Run(frames, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if !res.CameraMotion {
		t.Fatal("pan not detected")
	}
	checkObject(t, frames, res)
}

func TestVideoFile(t *testing.T) {
	frames := scene(20, 256, 0, vx, vy)
	p := writeAVI(t, frames)
	clip, err := ReadFrames(p, 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(clip.Frames) != 18 || clip.FPS != 10 {
		t.Errorf("read %d frames at %v fps", len(clip.Frames), clip.FPS)
	}
	res, err := RunFile(p, 0, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if res.FPS != 10 || res.CameraMotion {
		t.Errorf("fps %v camera %v", res.FPS, res.CameraMotion)
	}
	fg := 0
	for _, m := range res.Marks {
		if m.Foreground {
			fg++
		}
	}
	if fg == 0 {
		t.Error("no foreground from the MJPG video")
	}
	if _, err := RunFile(p, 10, DefaultConfig()); !errors.Is(err, ErrTooShort) {
		t.Errorf("short tail: %v", err)
	}
}

func TestDeterministic(t *testing.T) {
	frames := scene(17, 128, 0, vx, vy)
	a, err := Run(frames, Config{Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Run(frames, Config{Seed: 7})
	if a.ToMText != b.ToMText || a.SoMText != b.SoMText || len(a.Marks) != len(b.Marks) {
		t.Error("same seed, different result")
	}
}

func TestShotBoundary(t *testing.T) {
	a := scene(10, 128, 0, vx, vy)
	b := scene(10, 128, 0, 0, 0)
	for i := range b {
		for j := range b[i].Pix {
			b[i].Pix[j] = 255 - b[i].Pix[j]/2
		}
	}
	cuts, err := DetectShots(append(a, b...), 0)
	if err != nil || len(cuts) != 1 || cuts[0] != 10 {
		t.Errorf("cuts %v %v", cuts, err)
	}
	if _, err := Run(append(a, b...), DefaultConfig()); !errors.Is(err, ErrShotBoundary) {
		t.Errorf("Run across a cut: %v", err)
	}
	cuts, _ = DetectShots(a, 0)
	if len(cuts) != 0 {
		t.Errorf("cuts in one shot: %v", cuts)
	}
}

func TestGridQueries(t *testing.T) {
	q := GridQueries(512, 384, 15)
	if len(q) != 225 {
		t.Fatal(len(q))
	}
	if q[0] != (som.Point{X: 8, Y: 8}) || q[14] != (som.Point{X: 504, Y: 8}) || q[224] != (som.Point{X: 504, Y: 376}) {
		t.Errorf("grid corners %v %v %v", q[0], q[14], q[224])
	}
	if q[15].Y <= q[0].Y || q[15].X != q[0].X {
		t.Error("not row-major")
	}
}

// Official format strings, quoted from microsoft/Magma (commit 0483f87):
//
// data/conversations.py, _construct_conv (video):
//
//	f"{self.image_placeholder}\nThe image is split into {self.spatial_quant_size}x{self.spatial_quant_size} grids, and labeled with numeric marks {mark_ids}.\n"
//	f"The person is doing: {gpt_response_todo}. To finish the task, how to move the numerical marks in the image for the next {step_to_predict} steps?\n"
//
// data/openx_magma/data_utils.py, __call__ (robot):
//
//	f"{self.image_placeholder}\nThe image is split into {self.spatial_quant_size}x{self.spatial_quant_size} grids, and labeled with numeric marks: {mark_ids}.\n"
//	f"The robot is doing: {gpt_response}. To finish the task, how to move the numerical marks in the image for the next {step_to_predict} steps?\n"
//
// both files, the answer:
//
//	formmated_val = ', '.join([f"Mark {key} at [{val[0][0].item()},{val[0][1].item()}]" for key, val in valid_marks.items()])
//	val_str_future = '[' + ','.join([f'[{x[0]},{x[1]}]' for x in valid_marks[key][1:].tolist()]) + ']'
//	mark_trace_future += f'\"Mark {key}\": \"{val_str_future}\"\n\n'
//	conv_gpt = f"{formmated_val} should be moved, and their future positions are:\n\n{mark_trace_future}"
//
// with mark_ids = sorted([...]) printed by Python as "[1, 4, 7]" and the
// image placeholder added by the data package.
func TestToMStrings(t *testing.T) {
	q := ToMQuestion("pick up the cup", 16, []int{1, 4, 7}, false)
	want := "The image is split into 256x256 grids, and labeled with numeric marks [1, 4, 7].\nThe person is doing: pick up the cup. To finish the task, how to move the numerical marks in the image for the next 16 steps?\n"
	if q != want {
		t.Errorf("video question %q", q)
	}
	q = ToMQuestion("put the bowl on the plate", 15, []int{2, 3}, true)
	want = "The image is split into 256x256 grids, and labeled with numeric marks: [2, 3].\nThe robot is doing: put the bowl on the plate. To finish the task, how to move the numerical marks in the image for the next 15 steps?\n"
	if q != want {
		t.Errorf("robot question %q", q)
	}
	marks := []Mark{
		{ID: 5, Foreground: true, Points: [][2]float64{{10, 20}, {12, 20}, {512, 256}}},
		{ID: 2, Foreground: true, Points: [][2]float64{{0, 0}, {-3, 1}}},
		{ID: 1, Foreground: false, Points: [][2]float64{{100, 100}, {100, 100}}},
	}
	got, steps := ToMAnswer(marks, 512, 256, AnswerRules{})
	want = "Mark 2 at [0,0], Mark 5 at [5,20] should be moved, and their future positions are:\n\n" +
		"\"Mark 2\": \"[[0,1]]\"\n\n\"Mark 5\": \"[[6,20],[255,255]]\"\n\n"
	if got != want || steps != 2 {
		t.Errorf("got %q (%d steps)\nwant %q", got, steps, want)
	}
	if a, n := ToMAnswer(marks[2:], 512, 256, AnswerRules{}); a != "" || n != 0 {
		t.Error("no foreground should give empty answer")
	}
	// Video rules: points closer than 2 grid units to the last kept one go
	// (remove_close_points_tensor), then points at <= 0 ("invisible"), and a
	// trace left with too few points is dropped.
	vm := []Mark{
		{ID: 3, Foreground: true, Points: [][2]float64{{100, 100}, {101, 100}, {104, 100}, {104, 106}, {110, 110}}},
		{ID: 4, Foreground: true, Points: [][2]float64{{50, 50}, {50, 50}, {50, 50}, {50, 50}, {50, 50}}},
	}
	got, steps = ToMAnswer(vm, 256, 256, AnswerRules{CloseDist: 2, MinPoints: 5/4 + 1, MinSpeed: 1})
	want = "Mark 3 at [100,100] should be moved, and their future positions are:\n\n\"Mark 3\": \"[[104,100],[104,106],[110,110]]\"\n\n"
	if got != want || steps != 3 {
		t.Errorf("video answer %q (%d steps)", got, steps)
	}
}

// panScene is a 256x256 clip whose camera pans pan px/frame to the right
// over a textured scene, with a textured object moving straight down 3
// px/frame in the scene.
// The object starts at (150,80) so that it stays in view.
func panScene(pan float64) []vision.Image { return sceneAt(17, 256, pan, 0, 3, 150, 80) }

func TestCameraMotionPixels(t *testing.T) {
	for _, pan := range []float64{1, 3, 6} {
		frames := panScene(pan)
		res, err := Run(frames, DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		if !res.CameraMotion {
			t.Errorf("pan %v px/frame: camera motion not detected", pan)
			continue
		}
		// After removal the object's traces follow its scene motion: +y
		// (3 px per step), little x.
		ts, err := analyze(frames, DefaultConfig().withDefaults(), rand.New(rand.NewSource(1)))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, i := range ts.fg {
			p0 := ts.pts[0][i]
			if !(p0.X >= 160 && p0.X <= 204 && p0.Y >= 90 && p0.Y <= 134) {
				continue
			}
			n++
			dx := ts.pts[16][i].X - p0.X
			dy := ts.pts[16][i].Y - p0.Y
			if math.Abs(dy-48) > 4 || math.Abs(dx) > 4 {
				t.Errorf("pan %v: object trace from %v moved (%.1f,%.1f) px, want (0,48)", pan, p0, dx, dy)
				break
			}
		}
		if n < 4 {
			t.Errorf("pan %v: only %d object traces are foreground", pan, n)
		}
		for _, m := range res.Marks {
			p0 := m.Points[0]
			if m.Foreground && p0[0] >= 160 && p0[0] <= 204 && p0[1] >= 90 && p0[1] <= 134 {
				if d := m.Points[16][1] - m.Points[0][1]; d < 30 {
					t.Errorf("pan %v: foreground mark %d moves %.1f px down, want about 48", pan, m.ID, d)
				}
			}
		}
	}
	res, err := Run(scene(17, 256, 0, 0, 0), DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if res.CameraMotion {
		t.Error("static clip: camera motion detected")
	}
	if res.ToMText != "" || len(res.Warnings) == 0 || !strings.Contains(res.Warnings[0], "static") {
		t.Errorf("static clip: tom %q warnings %q", res.ToMText, res.Warnings)
	}
}

func TestSourceRules(t *testing.T) {
	frames := scene(33, 256, 0, vx, vy)
	for seed := int64(1); seed <= 3; seed++ {
		cfg := SourceConfig(SourceVideo)
		cfg.Seed, cfg.Task = seed, "push the box"
		res, err := Run(frames, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if res.FramesUsed != 33 || res.StartFrame < 0 || res.StartFrame >= 32 {
			t.Errorf("video: %d frames, start %d", res.FramesUsed, res.StartFrame)
		}
		if len(res.Marks[0].Points) != 33-res.StartFrame {
			t.Errorf("video: marks have %d points from start %d", len(res.Marks[0].Points), res.StartFrame)
		}
		if res.ToMText == "" || res.Steps < 1 || res.Steps > 32-res.StartFrame {
			t.Errorf("video: steps %d answer %q", res.Steps, res.ToMText)
		}
		if !strings.HasPrefix(res.ToMQuestion, "The image is split into 256x256 grids, and labeled with numeric marks [") ||
			!strings.Contains(res.ToMQuestion, "for the next "+fmt.Sprint(res.Steps)+" steps?") {
			t.Errorf("video question %q", res.ToMQuestion)
		}
		nfg, nbg := 0, 0
		for _, m := range res.Marks {
			if m.Foreground {
				nfg++
			} else {
				nbg++
			}
		}
		if nfg < 1 || nfg > 5 || nbg < 6 || nbg > 14 {
			t.Errorf("video: %d foreground and %d background marks, want [2,5] clusters and [6,14]", nfg, nbg)
		}
	}
	cfg := SourceConfig(SourceRobot)
	cfg.Task = "lift the cube"
	res, err := Run(frames, cfg)
	if err != nil {
		t.Fatal(err)
	}
	nfg, nbg := 0, 0
	for _, m := range res.Marks {
		if m.Foreground {
			nfg++
		} else {
			nbg++
		}
	}
	if res.FramesUsed != 17 || res.StartFrame != 0 || nfg > 4 || nbg < 4 || nbg > 9 {
		t.Errorf("robot: %d frames from %d, %d fg %d bg", res.FramesUsed, res.StartFrame, nfg, nbg)
	}
	if !strings.Contains(res.ToMQuestion, "labeled with numeric marks: [") || !strings.Contains(res.ToMQuestion, "The robot is doing: lift the cube.") {
		t.Errorf("robot question %q", res.ToMQuestion)
	}
}

// A flat-colour object moving 3 px/frame over a flat background in a
// 160x120 clip has no trackable points: the run must say so.
func TestFlatObjectWarns(t *testing.T) {
	frames := make([]vision.Image, 17)
	for i := range frames {
		f := vision.Image{W: 160, H: 120, Pix: make([]uint8, 160*120*3)}
		for p := 0; p < len(f.Pix); p += 3 {
			f.Pix[p], f.Pix[p+1], f.Pix[p+2] = 200, 200, 200
		}
		x0 := 20 + 3*i
		for y := 40; y < 80; y++ {
			for x := x0; x < x0+40; x++ {
				o := (y*160 + x) * 3
				f.Pix[o], f.Pix[o+1], f.Pix[o+2] = 200, 30, 30
			}
		}
		frames[i] = f
	}
	res, err := Run(frames, DefaultConfig())
	if err != nil {
		if !errors.Is(err, ErrNoTraces) || !strings.Contains(err.Error(), "texture") {
			t.Fatalf("flat object: %v", err)
		}
		return
	}
	if res.ToMText != "" {
		t.Skipf("flat object traced: %q", res.ToMText)
	}
	if len(res.Warnings) == 0 || !strings.Contains(res.Warnings[0], "texture-less") {
		t.Errorf("flat object: no warning saying why, got %q", res.Warnings)
	}
}

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.mp4")
	os.WriteFile(junk, []byte("not a video"), 0o644)
	if _, err := RunFile(junk, 0, DefaultConfig()); !errors.Is(err, ErrUnreadable) && !errors.Is(err, ErrNoFrames) {
		t.Errorf("junk video: %v", err)
	}
	if _, err := RunFile(filepath.Join(dir, "missing.avi"), 0, DefaultConfig()); !errors.Is(err, ErrUnreadable) {
		t.Errorf("missing: %v", err)
	}
	empty := t.TempDir()
	if _, err := RunFile(empty, 0, DefaultConfig()); !errors.Is(err, ErrNoFrames) {
		t.Errorf("empty folder: %v", err)
	}
	if _, err := Run(nil, DefaultConfig()); !errors.Is(err, ErrNoFrames) {
		t.Errorf("nil frames: %v", err)
	}
	short := scene(5, 64, 0, vx, vy)
	if _, err := Run(short, DefaultConfig()); !errors.Is(err, ErrTooShort) {
		t.Errorf("short: %v", err)
	}
	bad := scene(17, 64, 0, vx, vy)
	bad[3] = vision.Image{W: 32, H: 32, Pix: make([]uint8, 32*32*3)}
	if _, err := Run(bad, DefaultConfig()); !errors.Is(err, ErrBadFrames) {
		t.Errorf("mixed sizes: %v", err)
	}
	// A texture-less clip: nothing to track reliably, must not panic.
	flat := make([]vision.Image, 17)
	for i := range flat {
		flat[i] = vision.Image{W: 64, H: 64, Pix: make([]uint8, 64*64*3)}
	}
	if res, err := Run(flat, DefaultConfig()); err == nil && res.ToMText != "" {
		t.Errorf("flat clip gave a ToM answer %q", res.ToMText)
	}
	if _, err := DrawTraces(vision.Image{}, nil); err == nil {
		t.Error("DrawTraces on empty image")
	}
}

func TestDrawTraces(t *testing.T) {
	frames := scene(17, 128, 0, vx, vy)
	res, err := Run(frames, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	viz, err := DrawTraces(res.First, res.Marks)
	if err != nil || viz.W != 128 {
		t.Fatal(err)
	}
}
