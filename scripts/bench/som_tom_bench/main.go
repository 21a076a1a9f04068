// Command som_tom_bench times the Go SoM and ToM pipelines for
// scripts/bench/som_tom.sh: -gen writes the shared inputs, then it prints
// "tom_fps <v>" and "som_marks_per_s <v>".
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"time"

	"github.com/magma-go/magma/som"
	"github.com/magma-go/magma/tom"
	"github.com/magma-go/magma/vision/imaging"
)

func main() {
	dir := flag.String("dir", "", "input folder")
	gen := flag.Bool("gen", false, "write the inputs into -dir and exit")
	reps := flag.Int("reps", 5, "repetitions (best is reported)")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "need -dir")
		os.Exit(2)
	}
	if *gen {
		if err := generate(*dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	cfg := tom.DefaultConfig()
	cfg.Future = 31
	best := time.Duration(1 << 62)
	for i := 0; i < *reps; i++ {
		t0 := time.Now()
		if _, err := tom.RunFile(filepath.Join(*dir, "clip"), 0, cfg); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if d := time.Since(t0); d < best {
			best = d
		}
	}
	fmt.Printf("tom_fps %.2f\n", 32/best.Seconds())

	img, err := imaging.DecodeImage(filepath.Join(*dir, "screen.png"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	data, _ := os.ReadFile(filepath.Join(*dir, "boxes.json"))
	boxes, err := som.ParseBoxesJSON(data)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	best = time.Duration(1 << 62)
	for i := 0; i < 4**reps; i++ {
		t0 := time.Now()
		if _, err := som.DrawBoxes(img, boxes, som.Options{}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if d := time.Since(t0); d < best {
			best = d
		}
	}
	fmt.Printf("som_marks_per_s %.1f\n", float64(len(boxes))/best.Seconds())
}

// generate writes a 512x512 32-frame PNG clip (textured scene, a textured
// object moving (4,2) px/frame, camera pan 3 px/frame), a 1920x1080
// screenshot-like image and 100 boxes.
func generate(dir string) error {
	r := rand.New(rand.NewSource(1))
	if err := os.MkdirAll(filepath.Join(dir, "clip"), 0o755); err != nil {
		return err
	}
	const S, T = 512, 32
	bgW := S + 3*T + 8
	bg := blobs(r, bgW, S, 24)
	obj := blobs(r, 96, 96, 16)
	for t := 0; t < T; t++ {
		f := imaging.Image{W: S, H: S, Pix: make([]uint8, S*S*3)}
		cam := 3 * t
		for y := 0; y < S; y++ {
			copy(f.Pix[y*S*3:(y+1)*S*3], bg.Pix[(y*bgW+cam)*3:(y*bgW+cam+S)*3])
		}
		x0, y0 := 120+4*t-cam, 160+2*t
		for y := 0; y < 96; y++ {
			for x := 0; x < 96; x++ {
				X, Y := x0+x, y0+y
				if X >= 0 && X < S && Y >= 0 && Y < S {
					copy(f.Pix[(Y*S+X)*3:(Y*S+X)*3+3], obj.Pix[(y*96+x)*3:(y*96+x)*3+3])
				}
			}
		}
		if err := som.WriteImage(filepath.Join(dir, "clip", fmt.Sprintf("%04d.png", t)), f); err != nil {
			return err
		}
	}
	scr := blobs(r, 1920, 1080, 64)
	if err := som.WriteImage(filepath.Join(dir, "screen.png"), scr); err != nil {
		return err
	}
	type bx struct {
		BBox [4]int `json:"bbox"`
	}
	var boxes []bx
	for i := 0; i < 100; i++ {
		x, y := r.Intn(1800), r.Intn(1020)
		boxes = append(boxes, bx{[4]int{x, y, x + 20 + r.Intn(100), y + 12 + r.Intn(48)}})
	}
	data, _ := json.Marshal(boxes)
	return os.WriteFile(filepath.Join(dir, "boxes.json"), data, 0o644)
}

// blobs is a smooth random colour field (bilinear over a cell grid) with
// fine noise, trackable and free of spurious shot cuts.
func blobs(r *rand.Rand, w, h, cell int) imaging.Image {
	cw, ch := w/cell+2, h/cell+2
	g := make([]float64, cw*ch*3)
	for i := range g {
		g[i] = 40 + 176*r.Float64()
	}
	img := imaging.Image{W: w, H: h, Pix: make([]uint8, w*h*3)}
	for y := 0; y < h; y++ {
		fy := float64(y) / float64(cell)
		iy := int(fy)
		ty := fy - float64(iy)
		for x := 0; x < w; x++ {
			fx := float64(x) / float64(cell)
			ix := int(fx)
			tx := fx - float64(ix)
			for c := 0; c < 3; c++ {
				a := g[(iy*cw+ix)*3+c]*(1-tx) + g[(iy*cw+ix+1)*3+c]*tx
				b := g[((iy+1)*cw+ix)*3+c]*(1-tx) + g[((iy+1)*cw+ix+1)*3+c]*tx
				v := a*(1-ty) + b*ty + float64(r.Intn(41)-20)
				if v < 0 {
					v = 0
				}
				if v > 255 {
					v = 255
				}
				img.Pix[(y*w+x)*3+c] = uint8(v)
			}
		}
	}
	return img
}
