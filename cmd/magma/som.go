package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/magma-go/magma/som"
	"github.com/magma-go/magma/vision/imaging"
)

func newSomCmd() *cobra.Command {
	var imgPath, boxesPath, pointsPath, out string
	var propose, asJSON bool
	cmd := &cobra.Command{
		Use:   "som --image IMG (--boxes FILE.json | --points FILE.json | --propose) --out MARKED.png [--json]",
		Short: "Draw Set-of-Mark numbered marks on an image (boxes JSON: [{\"bbox\":[x1,y1,x2,y2]},...] in pixels)",
		Example: `  magma som --image screen.png --propose --out marked.png
  magma som --image screen.png --boxes boxes.json --out marked.png --json
  magma som --image frame.png --points points.json --out marked.png`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			n := 0
			for _, set := range []bool{boxesPath != "", pointsPath != "", propose} {
				if set {
					n++
				}
			}
			if n != 1 {
				return errors.New("som: give exactly one of --boxes, --points, --propose")
			}
			if imgPath == "" || out == "" {
				return errors.New("som: --image and --out are required")
			}
			img, err := imaging.DecodeImage(imgPath)
			if err != nil {
				return err
			}
			res, err := markImage(img, boxesPath, pointsPath)
			if err != nil {
				return err
			}
			if err := som.WriteImage(out, res.Image); err != nil {
				return err
			}
			if !asJSON {
				fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: %d marks on a %dx%d image\n", out, len(res.Marks), res.Image.W, res.Image.H)
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				return enc.Encode(map[string]any{
					"width": res.Image.W, "height": res.Image.H, "marks": res.Marks,
					"som_text": som.SoMAnswer(res.GridMarks()),
				})
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&imgPath, "image", "", "input image (PNG/JPEG/WebP)")
	f.StringVar(&boxesPath, "boxes", "", "boxes JSON [{\"bbox\":[x1,y1,x2,y2]},...] in pixels")
	f.StringVar(&pointsPath, "points", "", "points JSON [{\"point\":[x,y]},...] or [[x,y],...] in pixels")
	f.BoolVar(&propose, "propose", false, "propose UI element boxes with the classical proposer")
	f.StringVar(&out, "out", "", "marked image to write")
	f.BoolVar(&asJSON, "json", false, "print the mark map (id -> bbox/point) as JSON")
	return cmd
}

// markImage draws the marks of the boxes file, else of the points file,
// else of the classical proposer's boxes on img.
func markImage(img imaging.Image, boxesPath, pointsPath string) (*som.Result, error) {
	switch {
	case boxesPath != "":
		data, err := os.ReadFile(boxesPath)
		if err != nil {
			return nil, err
		}
		boxes, err := som.ParseBoxesJSON(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", boxesPath, err)
		}
		return som.DrawBoxes(img, boxes, som.Options{})
	case pointsPath != "":
		data, err := os.ReadFile(pointsPath)
		if err != nil {
			return nil, err
		}
		pts, err := som.ParsePointsJSON(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", pointsPath, err)
		}
		return som.DrawPoints(img, pts, som.Options{})
	default:
		boxes, err := som.NewClassicalProposer().Propose(img)
		if err != nil {
			return nil, err
		}
		return som.DrawBoxes(img, boxes, som.Options{})
	}
}
