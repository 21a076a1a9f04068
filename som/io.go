package som

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"gocv.io/x/gocv"

	"github.com/magma-go/magma/vision"
)

// WriteImage encodes img to path with OpenCV; the format follows the
// extension (.png, .jpg, .webp, ...).
func WriteImage(path string, img vision.Image) error {
	// OpenCV only says "false": name what is wrong first.
	dir := filepath.Dir(path)
	if st, err := os.Stat(dir); err != nil {
		return fmt.Errorf("som: cannot write image %s: folder %s does not exist", path, dir)
	} else if !st.IsDir() {
		return fmt.Errorf("som: cannot write image %s: %s is not a folder", path, dir)
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".png", ".jpg", ".jpeg", ".webp", ".bmp":
	default:
		return fmt.Errorf("som: cannot write image %s: unknown extension %q (use .png, .jpg or .webp)", path, filepath.Ext(path))
	}
	m, err := toMat(img)
	if err != nil {
		return err
	}
	defer m.Close()
	bgr := gocv.NewMat()
	defer bgr.Close()
	gocv.CvtColor(m, &bgr, gocv.ColorBGRToRGB)
	if !gocv.IMWrite(path, bgr) {
		return fmt.Errorf("som: cannot write image %s (unknown extension or unwritable path)", path)
	}
	return nil
}
