package data

import (
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	"gocv.io/x/gocv"

	"github.com/magma-go/magma/tom"
)

// SyntheticConfig sizes the embedded default mixture (see GenerateSynthetic).
//
// In a recipe, a key that is absent takes the DefaultSyntheticConfig value
// and a key that is given is used as given: a count of 0 generates nothing
// of that kind (its source is left out of the mixture), and a value outside
// its limit (SyntheticLimits) is an error naming the key. From Go, the
// counts are used as they are (0: none), while Size and Frames of 0 take
// the defaults (a frame side or clip length of 0 means nothing).
type SyntheticConfig struct {
	Dir           string `yaml:"dir,omitempty"`
	UI            int    `yaml:"ui"`
	Videos        int    `yaml:"videos"`
	RobotEpisodes int    `yaml:"robot_episodes"`
	Captions      int    `yaml:"captions"`
	// Size is the side of video/robot frames and caption images in pixels
	// (default 64, the tiny preset's base); UI screenshots are 2*Size.
	Size int `yaml:"size"`
	// Frames per video clip and steps per robot episode (default 17: the
	// 16-step ToM horizon of the official Magma code and of `magma tom`,
	// plus the start frame).
	Frames int `yaml:"frames"`
}

// DefaultSyntheticConfig is the default size: about 200 records, a few
// seconds to generate.
func DefaultSyntheticConfig() SyntheticConfig {
	return SyntheticConfig{UI: 48, Videos: 12, RobotEpisodes: 8, Captions: 48, Size: 64, Frames: tom.DefaultConfig().Future + 1}
}

// SyntheticLimit is the documented range of one synthetic key.
type SyntheticLimit struct {
	Key      string
	Min, Max int
	value    func(SyntheticConfig) int
}

// SyntheticLimits are the ranges of the synthetic keys (inclusive), and
// MaxSyntheticPixels bounds the pixels they ask for together (UI
// screenshots + video and robot frames + caption images): the defaults ask
// for about 2.4 million; the limit, about 110 times that, takes about 30 s
// and 200 MB of disk on a 2-core machine (measured: 69 megapixels in 7.9 s,
// 52 MB).
var SyntheticLimits = []SyntheticLimit{
	{"ui", 0, 10000, func(c SyntheticConfig) int { return c.UI }},
	{"videos", 0, 1000, func(c SyntheticConfig) int { return c.Videos }},
	{"robot_episodes", 0, 1000, func(c SyntheticConfig) int { return c.RobotEpisodes }},
	{"captions", 0, 10000, func(c SyntheticConfig) int { return c.Captions }},
	{"size", 32, 512, func(c SyntheticConfig) int { return c.Size }},
	{"frames", 2, 256, func(c SyntheticConfig) int { return c.Frames }},
}

// MaxSyntheticPixels bounds SyntheticConfig.Pixels.
const MaxSyntheticPixels = 1 << 28

// Pixels is the number of pixels the config generates.
func (c SyntheticConfig) Pixels() int64 {
	s := int64(c.Size)
	return int64(c.UI)*4*s*s + int64(c.Videos+c.RobotEpisodes)*int64(c.Frames)*s*s + int64(c.Captions)*s*s
}

// Validate checks every key against SyntheticLimits and the total against
// MaxSyntheticPixels; errors name the key (synthetic.<key>), the value and
// the limit. Size and Frames must be set (see withDefaults).
func (c SyntheticConfig) Validate() error {
	for _, l := range SyntheticLimits {
		if v := l.value(c); v < l.Min || v > l.Max {
			return fmt.Errorf("synthetic.%s: %d is outside the limit [%d, %d]", l.Key, v, l.Min, l.Max)
		}
	}
	if p := c.Pixels(); p > MaxSyntheticPixels {
		return fmt.Errorf("synthetic: ui %d, videos %d, robot_episodes %d, captions %d at size %d and frames %d ask for %d megapixels; the limit is %d (lower the counts, size or frames)",
			c.UI, c.Videos, c.RobotEpisodes, c.Captions, c.Size, c.Frames, p>>20, MaxSyntheticPixels>>20)
	}
	return nil
}

// UnmarshalYAML decodes the `synthetic:` section: absent keys take the
// defaults, given ones are kept as given and checked (Validate); unknown
// keys are errors.
func (c *SyntheticConfig) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		if n.Tag == "!!null" {
			*c = DefaultSyntheticConfig()
			return nil
		}
		return fmt.Errorf("synthetic: want a mapping of keys (dir, ui, videos, robot_episodes, captions, size, frames)")
	}
	known := map[string]bool{"dir": true}
	for _, l := range SyntheticLimits {
		known[l.Key] = true
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i].Value; !known[k] {
			return fmt.Errorf("synthetic: unknown key %q (want dir, ui, videos, robot_episodes, captions, size or frames)", k)
		}
	}
	type plain SyntheticConfig
	v := plain(DefaultSyntheticConfig())
	if err := n.Decode(&v); err != nil {
		return fmt.Errorf("synthetic: %w", err)
	}
	*c = SyntheticConfig(v)
	return c.Validate()
}

// withDefaults fills the Go zero values that cannot mean anything (Size,
// Frames); the counts are kept, 0 included.
func (c SyntheticConfig) withDefaults() SyntheticConfig {
	d := DefaultSyntheticConfig()
	if c.Size == 0 {
		c.Size = d.Size
	}
	if c.Frames == 0 {
		c.Frames = d.Frames
	}
	return c
}

// Synthetic file layout inside SyntheticConfig.Dir.
const (
	SyntheticUIFile      = "ui/records.json"
	SyntheticVideoFile   = "video/clips.json"
	SyntheticRobotDir    = "robot"
	SyntheticCaptionFile = "captions/captions.json"
	syntheticStamp       = "synthetic.json"
)

// SyntheticToMSteps is the ToM horizon of the synthetic sources (short
// answers for the tiny model).
const SyntheticToMSteps = 6

// SyntheticSources are the sources over generated data (paths relative to
// c.Dir): ui 0.3, video 0.2, robot 0.2, captions (llava) 0.3; a kind with a
// count of 0 is left out.
func SyntheticSources(c SyntheticConfig) []SourceConfig {
	var out []SourceConfig
	if c.UI > 0 {
		out = append(out, SourceConfig{Name: "synthetic-ui", Type: "ui", Path: SyntheticUIFile, Weight: 0.3,
			Options: map[string]any{"bbox_format": BBoxXYXY, "max_turns": 2}})
	}
	if c.Videos > 0 {
		out = append(out, SourceConfig{Name: "synthetic-video", Type: "video", Path: SyntheticVideoFile, Weight: 0.2,
			Options: map[string]any{"steps": SyntheticToMSteps, "grid": 8}})
	}
	if c.RobotEpisodes > 0 {
		out = append(out, SourceConfig{Name: "synthetic-robot", Type: "robot", Path: SyntheticRobotDir, Weight: 0.2,
			Options: map[string]any{"steps": SyntheticToMSteps, "grid": 8}})
	}
	if c.Captions > 0 {
		out = append(out, SourceConfig{Name: "synthetic-captions", Type: "llava", Path: SyntheticCaptionFile, Weight: 0.3})
	}
	return out
}

var (
	synColors = []struct {
		name string
		rgb  [3]uint8
	}{{"red", [3]uint8{220, 30, 30}}, {"green", [3]uint8{30, 170, 60}}, {"blue", [3]uint8{40, 70, 220}},
		{"yellow", [3]uint8{235, 210, 40}}, {"purple", [3]uint8{140, 50, 170}}, {"orange", [3]uint8{240, 130, 20}}}
	synShapes  = []string{"circle", "square", "triangle"}
	synButtons = []string{"OK", "Send", "Login", "Next", "Save", "Menu", "Help", "Buy"}
	synFields  = []string{"search", "email", "name", "password"}
	synLabels  = []string{"Home", "News", "Mail", "Shop", "Map", "Info"}
)

// bgr converts an RGB triple to the colour gocv draws (Mats are BGR).
func bgr(c [3]uint8) color.RGBA { return color.RGBA{c[2], c[1], c[0], 255} }

// GenerateSynthetic writes the embedded default mixture into c.Dir,
// deterministically for seed: SeeClick-style UI screenshots with buttons,
// text fields, icons and labels (gocv text and shapes, pixel boxes and
// instructions), MJPG .avi clips of moving shapes over a textured
// background (every other clip with a camera pan), robot episodes (a
// gripper square reaching for an object, 7-DoF actions, PNG frames) and
// LLaVA-format image-caption pairs. A kind with a count of 0 is not
// written. A stamp file makes a second call with the same config and seed
// a no-op. The config is checked first (SyntheticConfig.Validate).
func GenerateSynthetic(c SyntheticConfig, seed uint64) error {
	return GenerateSyntheticProgress(c, seed, nil)
}

// SyntheticProgress is reported while synthetic data is generated: the
// kind being written ("ui", "videos", "robot_episodes", "captions"), the
// records of it written so far and its count.
type SyntheticProgress struct {
	Kind        string
	Done, Total int
}

// GenerateSyntheticProgress is GenerateSynthetic calling progress (when not
// nil) before the first record of each kind and after every record.
func GenerateSyntheticProgress(c SyntheticConfig, seed uint64, progress func(SyntheticProgress)) error {
	c = c.withDefaults()
	if c.Dir == "" {
		return fmt.Errorf("data: synthetic: no dir")
	}
	if err := c.Validate(); err != nil {
		return fmt.Errorf("data: %w", err)
	}
	stamp, _ := json.Marshal(struct {
		Config SyntheticConfig
		Seed   uint64
		V      int
	}{c, seed, 2})
	if old, err := os.ReadFile(filepath.Join(c.Dir, syntheticStamp)); err == nil && string(old) == string(stamp) {
		return nil
	}
	// The old stamp goes first: an interrupted generation is redone.
	if err := os.Remove(filepath.Join(c.Dir, syntheticStamp)); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("data: synthetic: %w", err)
	}
	for _, d := range []string{"ui", "video", SyntheticRobotDir, "captions"} {
		if err := os.RemoveAll(filepath.Join(c.Dir, d)); err != nil {
			return fmt.Errorf("data: synthetic: %w", err)
		}
	}
	steps := []struct {
		kind, dir string
		n         int
		gen       func(SyntheticConfig, *rand.Rand, func(int)) error
	}{{"ui", "ui", c.UI, genUI}, {"videos", "video", c.Videos, genVideos},
		{"robot_episodes", SyntheticRobotDir, c.RobotEpisodes, genRobot}, {"captions", "captions", c.Captions, genCaptions}}
	for k, st := range steps {
		if st.n == 0 {
			continue
		}
		if err := os.MkdirAll(filepath.Join(c.Dir, st.dir), 0o755); err != nil {
			return fmt.Errorf("data: synthetic: %w", err)
		}
		report := func(done int) {
			if progress != nil {
				progress(SyntheticProgress{Kind: st.kind, Done: done, Total: st.n})
			}
		}
		report(0)
		if err := st.gen(c, rand.New(rand.NewPCG(seed, uint64(k))), report); err != nil {
			return fmt.Errorf("data: synthetic %s: %w", st.kind, err)
		}
	}
	return os.WriteFile(filepath.Join(c.Dir, syntheticStamp), stamp, 0o644)
}

// SyntheticProgressPrinter returns a progress function for
// GenerateSyntheticProgress writing to w, following the trainer's
// conventions: on a terminal one line redrawn at most 5 times a second
// ("synthetic data: ui 12/48 (0.3 s)"), otherwise plain lines (files,
// pipes, CI logs): one every 5 seconds while a kind is written and one when
// it is done. Call the returned finish
// when generation ends (it ends the terminal line).
func SyntheticProgressPrinter(w io.Writer) (progress func(SyntheticProgress), finish func()) {
	return syntheticPrinter(w, IsTerminal(w))
}

func syntheticPrinter(w io.Writer, tty bool) (progress func(SyntheticProgress), finish func()) {
	t0 := time.Now()
	last := t0
	drawn := false
	progress = func(p SyntheticProgress) {
		now := time.Now()
		end := p.Done == p.Total
		line := fmt.Sprintf("synthetic data: %s %d/%d (%.1f s)", p.Kind, p.Done, p.Total, now.Sub(t0).Seconds())
		if tty {
			if p.Done > 0 && !end && now.Sub(last) < 200*time.Millisecond {
				return
			}
			last = now
			fmt.Fprintf(w, "\r\033[K%s", line)
			drawn = true
			return
		}
		if end || (p.Done > 0 && now.Sub(last) >= 5*time.Second) {
			last = now
			fmt.Fprintln(w, line)
		}
	}
	finish = func() {
		if tty && drawn {
			fmt.Fprintln(w)
			drawn = false
		}
	}
	return progress, finish
}

// IsTerminal reports whether w is a character device (a terminal), where
// progress is redrawn in place; files and pipes get plain lines instead.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

func imwrite(path string, m gocv.Mat) error {
	if !gocv.IMWrite(path, m) {
		return fmt.Errorf("cannot write %s", path)
	}
	return nil
}

func drawShape(m *gocv.Mat, shape string, cx, cy, r int, col color.RGBA) {
	switch shape {
	case "circle":
		gocv.Circle(m, image.Pt(cx, cy), r, col, -1)
	case "square":
		gocv.Rectangle(m, image.Rect(cx-r, cy-r, cx+r, cy+r), col, -1)
	default:
		pts := gocv.NewPointsVectorFromPoints([][]image.Point{{{cx, cy - r}, {cx + r, cy + r}, {cx - r, cy + r}}})
		gocv.FillPoly(m, pts, col)
		pts.Close()
	}
}

type synElement struct {
	Instruction string `json:"instruction"`
	BBox        [4]int `json:"bbox"`
	Type        string `json:"data_type"`
}

func overlaps(r image.Rectangle, taken []image.Rectangle) bool {
	for _, t := range taken {
		if r.Inset(-2).Overlaps(t) {
			return true
		}
	}
	return false
}

func genUI(c SyntheticConfig, rng *rand.Rand, report func(int)) error {
	S := 2 * c.Size
	type rec struct {
		Img      string       `json:"img_filename"`
		Elements []synElement `json:"elements"`
	}
	var recs []rec
	font := gocv.FontHersheySimplex
	for i := 0; i < c.UI; i++ {
		bg := [3]uint8{uint8(200 + rng.IntN(50)), uint8(200 + rng.IntN(50)), uint8(200 + rng.IntN(50))}
		m := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(float64(bg[2]), float64(bg[1]), float64(bg[0]), 0), S, S, gocv.MatTypeCV8UC3)
		// a title bar
		gocv.Rectangle(&m, image.Rect(0, 0, S, S/10), bgr([3]uint8{60, 60, 90}), -1)
		taken := []image.Rectangle{image.Rect(0, 0, S, S/10)}
		var els []synElement
		n := 3 + rng.IntN(3)
		for tries := 0; len(els) < n && tries < 60; tries++ {
			kind := rng.IntN(4)
			var r image.Rectangle
			var w, h int
			switch kind {
			case 0: // button
				w, h = S/4+rng.IntN(S/8), S/8
			case 1: // text field
				w, h = S/2, S/8
			case 2: // icon
				w, h = S/8, S/8
			default: // label
				w, h = S/4, S/10
			}
			x, y := rng.IntN(S-w), S/10+2+rng.IntN(S-S/10-2-h)
			r = image.Rect(x, y, x+w, y+h)
			if overlaps(r, taken) {
				continue
			}
			taken = append(taken, r)
			col := synColors[rng.IntN(len(synColors))]
			var e synElement
			switch kind {
			case 0:
				txt := synButtons[rng.IntN(len(synButtons))]
				gocv.Rectangle(&m, r, bgr(col.rgb), -1)
				gocv.PutText(&m, txt, image.Pt(x+3, y+h-4), font, 0.3, color.RGBA{255, 255, 255, 255}, 1)
				e = synElement{Instruction: "click the " + txt + " button", Type: "text"}
			case 1:
				txt := synFields[rng.IntN(len(synFields))]
				gocv.Rectangle(&m, r, color.RGBA{255, 255, 255, 255}, -1)
				gocv.Rectangle(&m, r, color.RGBA{90, 90, 90, 255}, 1)
				gocv.PutText(&m, txt, image.Pt(x+3, y+h-4), font, 0.3, color.RGBA{150, 150, 150, 255}, 1)
				e = synElement{Instruction: "type in the " + txt + " field", Type: "text"}
			case 2:
				sh := synShapes[rng.IntN(len(synShapes))]
				drawShape(&m, sh, x+w/2, y+h/2, w/2-1, bgr(col.rgb))
				e = synElement{Instruction: "the " + col.name + " " + sh + " icon", Type: "icon"}
			default:
				txt := synLabels[rng.IntN(len(synLabels))]
				gocv.PutText(&m, txt, image.Pt(x+2, y+h-3), font, 0.35, bgr(col.rgb), 1)
				e = synElement{Instruction: "the " + txt + " tab", Type: "text"}
			}
			e.BBox = [4]int{r.Min.X, r.Min.Y, r.Max.X, r.Max.Y}
			els = append(els, e)
		}
		name := fmt.Sprintf("ui_%04d.png", i)
		err := imwrite(filepath.Join(c.Dir, "ui", name), m)
		m.Close()
		if err != nil {
			return err
		}
		recs = append(recs, rec{Img: name, Elements: els})
		report(i + 1)
	}
	return writeJSON(filepath.Join(c.Dir, SyntheticUIFile), recs)
}

// texture fills m with a random pattern of small blocks that trackers can
// follow; returned as a Mat the caller closes.
func texture(w, h int, rng *rand.Rand) gocv.Mat {
	m := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(120, 120, 120, 0), h, w, gocv.MatTypeCV8UC3)
	// grey blocks: trackable corners, and no hue change when the camera
	// pans (the shot detector compares HSV)
	for k := 0; k < w*h/30; k++ {
		x, y := rng.IntN(w), rng.IntN(h)
		s := 3 + rng.IntN(5)
		v := uint8(70 + rng.IntN(110))
		gocv.Rectangle(&m, image.Rect(x, y, x+s, y+s), color.RGBA{v, v, v, 255}, -1)
	}
	return m
}

func genVideos(c SyntheticConfig, rng *rand.Rand, report func(int)) error {
	S := c.Size
	type rec struct {
		Video   string `json:"video"`
		Task    string `json:"task"`
		Caption string `json:"caption"`
	}
	var recs []rec
	dirs := map[string][2]float64{"right": {1, 0}, "left": {-1, 0}, "down": {0, 1}, "up": {0, -1}}
	dirNames := []string{"right", "left", "down", "up"}
	for i := 0; i < c.Videos; i++ {
		big := texture(2*S, 2*S, rng)
		col := synColors[rng.IntN(len(synColors))]
		sh := synShapes[rng.IntN(len(synShapes))]
		dn := dirNames[rng.IntN(len(dirNames))]
		d := dirs[dn]
		pan := i%2 == 1
		speed := float64(S) / float64(c.Frames) * 0.5
		x0 := float64(S)/2 - d[0]*float64(S)/4
		y0 := float64(S)/2 - d[1]*float64(S)/4
		name := fmt.Sprintf("clip_%03d.avi", i)
		vw, err := gocv.VideoWriterFile(filepath.Join(c.Dir, "video", name), "MJPG", 10, S, S, true)
		if err != nil {
			big.Close()
			return err
		}
		for t := 0; t < c.Frames; t++ {
			ox, oy := S/4, S/4
			if pan {
				ox += t
			}
			roi := big.Region(image.Rect(ox, oy, ox+S, oy+S))
			f := roi.Clone()
			roi.Close()
			cx := int(math.Round(x0 + d[0]*speed*float64(t)))
			cy := int(math.Round(y0 + d[1]*speed*float64(t)))
			drawShape(&f, sh, cx, cy, S/8, bgr(col.rgb))
			err = vw.Write(f)
			f.Close()
			if err != nil {
				break
			}
		}
		vw.Close()
		big.Close()
		if err != nil {
			return err
		}
		camera := "a static camera"
		if pan {
			camera = "a panning camera"
		}
		recs = append(recs, rec{Video: name, Task: "move the " + col.name + " " + sh + " " + dn,
			Caption: "A " + col.name + " " + sh + " moves " + dn + " over a textured background, filmed with " + camera + "."})
		report(i + 1)
	}
	return writeJSON(filepath.Join(c.Dir, SyntheticVideoFile), recs)
}

func genRobot(c SyntheticConfig, rng *rand.Rand, report func(int)) error {
	S := c.Size
	for e := 0; e < c.RobotEpisodes; e++ {
		dir := filepath.Join(c.Dir, SyntheticRobotDir, fmt.Sprintf("episode_%03d", e))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		bg := texture(S, S, rng)
		col := synColors[rng.IntN(len(synColors))]
		sh := synShapes[rng.IntN(len(synShapes))]
		ox, oy := float64(S/4+rng.IntN(S/2)), float64(S/4+rng.IntN(S/2))
		gx, gy := float64(4+rng.IntN(S-8)), float64(4+rng.IntN(S-8))
		var actions [][]float64
		for t := 0; t < c.Frames; t++ {
			f := bg.Clone()
			drawShape(&f, sh, int(ox), int(oy), S/10, bgr(col.rgb))
			gocv.Rectangle(&f, image.Rect(int(gx)-3, int(gy)-3, int(gx)+4, int(gy)+4), color.RGBA{20, 20, 20, 255}, -1)
			err := imwrite(filepath.Join(dir, fmt.Sprintf("%06d.png", t)), f)
			f.Close()
			if err != nil {
				bg.Close()
				return err
			}
			dx, dy := (ox-gx)/float64(c.Frames-t), (oy-gy)/float64(c.Frames-t)
			grip := -1.0
			if t >= c.Frames*3/4 {
				grip = 1
			}
			a := []float64{dx / float64(S), dy / float64(S), -0.01 * float64(t%3), 0.02 * (rng.Float64() - 0.5), 0.02 * (rng.Float64() - 0.5), 0.05 * (rng.Float64() - 0.5), grip}
			for d := range a {
				a[d] = math.Round(a[d]*1e5) / 1e5
			}
			actions = append(actions, a)
			gx, gy = gx+dx, gy+dy
		}
		bg.Close()
		if err := writeJSON(filepath.Join(dir, EpisodeFile), map[string]any{
			"instruction": "pick up the " + col.name + " " + sh, "actions": actions}); err != nil {
			return err
		}
		report(e + 1)
	}
	return nil
}

func genCaptions(c SyntheticConfig, rng *rand.Rand, report func(int)) error {
	S := c.Size
	type turn struct {
		From  string `json:"from"`
		Value string `json:"value"`
	}
	type rec struct {
		ID    string `json:"id"`
		Image string `json:"image"`
		Conv  []turn `json:"conversations"`
	}
	bgs := []struct {
		name string
		rgb  [3]uint8
	}{{"white", [3]uint8{245, 245, 245}}, {"gray", [3]uint8{128, 128, 128}}, {"black", [3]uint8{15, 15, 15}}}
	var recs []rec
	for i := 0; i < c.Captions; i++ {
		bg := bgs[rng.IntN(len(bgs))]
		m := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(float64(bg.rgb[2]), float64(bg.rgb[1]), float64(bg.rgb[0]), 0), S, S, gocv.MatTypeCV8UC3)
		n := 1 + rng.IntN(2)
		var parts []string
		for k := 0; k < n; k++ {
			col := synColors[rng.IntN(len(synColors))]
			sh := synShapes[rng.IntN(len(synShapes))]
			cx := S/4 + k*S/2
			drawShape(&m, sh, cx, S/4+rng.IntN(S/2), S/6, bgr(col.rgb))
			pos := "left"
			if k == 1 {
				pos = "right"
			} else if n == 1 {
				pos = "left side"
			}
			parts = append(parts, "a "+col.name+" "+sh+" on the "+pos)
		}
		name := fmt.Sprintf("img_%04d.png", i)
		err := imwrite(filepath.Join(c.Dir, "captions", name), m)
		m.Close()
		if err != nil {
			return err
		}
		caption := strings.ToUpper(parts[0][:1]) + parts[0][1:]
		if n == 2 {
			caption += " and " + parts[1]
		}
		caption += ", on a " + bg.name + " background."
		q := []string{CaptionQuestion, "What is in the picture?", "What shapes do you see?"}[rng.IntN(3)]
		recs = append(recs, rec{ID: fmt.Sprint(i), Image: name, Conv: []turn{{"human", "<image>\n" + q}, {"gpt", caption}}})
		report(i + 1)
	}
	return writeJSON(filepath.Join(c.Dir, SyntheticCaptionFile), recs)
}
