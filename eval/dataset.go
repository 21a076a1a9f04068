package eval

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/magma-go/magma/som"
)

// Format names a ScreenSpot-family file layout.
type Format string

// The accepted layouts. FormatAuto detects the layout from the file names
// in the data directory (and, for ScreenSpot-Pro, from the record fields).
const (
	FormatAuto       Format = "auto"
	FormatScreenSpot Format = "screenspot" // SeeClick: screenspot_{mobile,desktop,web}.json, bbox [x,y,w,h]
	FormatV2         Format = "v2"         // screenspot_{mobile,desktop,web}_v2.json, same schema
	FormatPro        Format = "pro"        // one JSON per application, bbox [x1,y1,x2,y2], img_size, ui_type, group
)

// Platforms is the row order of the ScreenSpot table.
var Platforms = []string{"mobile", "desktop", "web"}

// ElementTypes is the column order of the ScreenSpot table.
var ElementTypes = []string{"text", "icon"}

// ParseFormat accepts auto, screenspot (or v1), v2 (or screenspot-v2) and
// pro (or screenspot-pro).
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "auto":
		return FormatAuto, nil
	case "screenspot", "v1", "screenspot-v1":
		return FormatScreenSpot, nil
	case "v2", "screenspot-v2", "screenspot_v2":
		return FormatV2, nil
	case "pro", "screenspot-pro", "screenspot_pro":
		return FormatPro, nil
	}
	return "", fmt.Errorf("unknown format %q: want auto, screenspot, v2 or pro", s)
}

// Record is one grounding item, whatever the layout it came from.
type Record struct {
	// Index is the record's position in the loaded dataset (files in their
	// table order, records in file order, after --split), the index error
	// messages and predictions.jsonl use.
	Index int
	// File is the annotation file and Pos the record's 0-based position in it.
	File string
	Pos  int

	ImgFilename string
	Instruction string
	// Box is the ground-truth element in pixels, x1,y1,x2,y2 (ScreenSpot's
	// [x,y,w,h] converted with BoxFromXYWH).
	Box som.Box
	// Platform: mobile, desktop or web (ScreenSpot, v2); windows, macos or
	// linux (Pro).
	Platform string
	// Type is the element type: text or icon (data_type, or ui_type for Pro).
	Type string
	// Category is the table row: Platform for ScreenSpot and v2, Group for Pro.
	Category    string
	DataSource  string
	Application string
	Group       string
	// ImgSize is Pro's announced [w,h] (zero when absent).
	ImgSize [2]int
	// Err is set when the record could not be read (bad JSON, wrong bbox,
	// unknown element type); such records are reported and counted as errors.
	Err error
}

// Cell is the record's table cell, "category/type" (e.g. "mobile/text"), or
// "" when the record is too malformed to have one.
func (r *Record) Cell() string {
	if r.Category == "" || r.Type == "" {
		return ""
	}
	return r.Category + "/" + r.Type
}

// Where names the record in messages: "record 12 (screenspot_web.json #3)".
func (r *Record) Where() string {
	return fmt.Sprintf("record %d (%s #%d)", r.Index, filepath.Base(r.File), r.Pos)
}

// Dataset is a loaded ScreenSpot-family benchmark.
type Dataset struct {
	Format Format
	Dir    string
	// ImageDirs are searched in order for each img_filename.
	ImageDirs []string
	Files     []string
	Records   []Record
}

// LoadOptions adjusts Load.
type LoadOptions struct {
	// Split keeps only records whose platform (or Pro group / application)
	// matches, case-insensitively; "" keeps all.
	Split string
	// ImageDir overrides the image folder search.
	ImageDir string
}

// BoxFromXYWH converts ScreenSpot's [x, y, w, h] pixel box to x1,y1,x2,y2.
func BoxFromXYWH(v []float64) (som.Box, error) {
	if len(v) != 4 {
		return som.Box{}, fmt.Errorf("bbox has %d numbers, want 4 ([x,y,w,h])", len(v))
	}
	if err := finite(v); err != nil {
		return som.Box{}, err
	}
	if v[2] <= 0 || v[3] <= 0 {
		return som.Box{}, fmt.Errorf("bbox [x,y,w,h]=%v has a non-positive width or height", v)
	}
	return som.Box{X1: v[0], Y1: v[1], X2: v[0] + v[2], Y2: v[1] + v[3]}, nil
}

// BoxFromXYXY converts ScreenSpot-Pro's [x1, y1, x2, y2] pixel box.
func BoxFromXYXY(v []float64) (som.Box, error) {
	if len(v) != 4 {
		return som.Box{}, fmt.Errorf("bbox has %d numbers, want 4 ([x1,y1,x2,y2])", len(v))
	}
	if err := finite(v); err != nil {
		return som.Box{}, err
	}
	if v[2] <= v[0] || v[3] <= v[1] {
		return som.Box{}, fmt.Errorf("bbox [x1,y1,x2,y2]=%v has x2<=x1 or y2<=y1", v)
	}
	return som.Box{X1: v[0], Y1: v[1], X2: v[2], Y2: v[3]}, nil
}

func finite(v []float64) error {
	for _, x := range v {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Errorf("bbox %v has a non-finite number", v)
		}
	}
	return nil
}

// CheckBox is the per-record image check: the ground-truth box must overlap
// a w x h image. A box partly outside is kept as published (a click inside
// its visible part still counts); one with no area inside is an error.
func CheckBox(b som.Box, w, h int) error {
	if b.X2 <= 0 || b.Y2 <= 0 || b.X1 >= float64(w) || b.Y1 >= float64(h) {
		return fmt.Errorf("ground-truth box [%g,%g,%g,%g] lies outside the %dx%d image", b.X1, b.Y1, b.X2, b.Y2, w, h)
	}
	return nil
}

// Load reads a ScreenSpot, ScreenSpot-v2 or ScreenSpot-Pro directory.
// Errors in single records do not fail the load: they are kept as records
// with Err set. A missing directory, no annotation file or an unknown
// format fail.
func Load(dir string, format Format, opt LoadOptions) (*Dataset, error) {
	if err := checkDataDir("screenspot", dir); err != nil {
		return nil, err
	}
	if format == "" {
		format = FormatAuto
	}
	if _, err := ParseFormat(string(format)); err != nil {
		return nil, err
	}
	if format == FormatAuto {
		var err error
		if format, err = DetectFormat(dir); err != nil {
			return nil, err
		}
	}
	ds := &Dataset{Format: format, Dir: dir}
	var files []string
	switch format {
	case FormatScreenSpot, FormatV2:
		suffix := ".json"
		if format == FormatV2 {
			suffix = "_v2.json"
		}
		for _, p := range Platforms {
			f := filepath.Join(dir, "screenspot_"+p+suffix)
			if _, err := os.Stat(f); err == nil {
				files = append(files, f)
			}
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("%s: no screenspot_{mobile,desktop,web}%s (format %s)", dir, suffix, format)
		}
		ds.ImageDirs = existingDirs(dir, "screenspot_imgs", "screenspotv2_image", "screenspot_v2_imgs", "images", "imgs", "")
	case FormatPro:
		files = proFiles(dir)
		if len(files) == 0 {
			return nil, fmt.Errorf("%s: no ScreenSpot-Pro annotation JSON (annotations/*.json)", dir)
		}
		ds.ImageDirs = existingDirs(dir, "images", "")
	}
	if opt.ImageDir != "" {
		ds.ImageDirs = []string{opt.ImageDir}
	}
	ds.Files = files
	split := strings.ToLower(opt.Split)
	for _, f := range files {
		recs, err := readFile(f, format)
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			known := r.Platform != "" || r.Group != "" || r.Application != ""
			if split != "" && known && !strings.EqualFold(r.Platform, split) &&
				!strings.EqualFold(r.Group, split) && !strings.EqualFold(r.Application, split) {
				continue
			}
			r.Index = len(ds.Records)
			ds.Records = append(ds.Records, r)
		}
	}
	if len(ds.Records) == 0 && split != "" {
		return nil, fmt.Errorf("--split %q matches no record of %s; it names a platform (%s)%s", opt.Split, dir,
			strings.Join(Platforms, ", "), map[bool]string{true: ", a Pro group or an application", false: ""}[format == FormatPro])
	}
	if len(ds.Records) == 0 {
		return nil, fmt.Errorf("%s: the annotation files hold no records", dir)
	}
	return ds, nil
}

// DetectFormat looks at the file names: screenspot_*_v2.json is v2,
// screenspot_*.json is ScreenSpot, annotations/*.json (or top-level JSON
// whose first record has img_size or ui_type) is Pro.
func DetectFormat(dir string) (Format, error) {
	var v1, v2 bool
	for _, p := range Platforms {
		if _, err := os.Stat(filepath.Join(dir, "screenspot_"+p+"_v2.json")); err == nil {
			v2 = true
		}
		if _, err := os.Stat(filepath.Join(dir, "screenspot_"+p+".json")); err == nil {
			v1 = true
		}
	}
	switch {
	case v1 && v2:
		return "", fmt.Errorf("%s holds both ScreenSpot and ScreenSpot-v2 files: pass --format screenspot or v2", dir)
	case v2:
		return FormatV2, nil
	case v1:
		return FormatScreenSpot, nil
	}
	if len(proFiles(dir)) > 0 {
		return FormatPro, nil
	}
	return "", fmt.Errorf("%s: unknown format: no screenspot_{mobile,desktop,web}.json, screenspot_*_v2.json or ScreenSpot-Pro annotations/*.json", dir)
}

// proFiles lists annotations/*.json, or top-level *.json files that look
// like Pro (first record has img_size or ui_type).
func proFiles(dir string) []string {
	if fs, _ := filepath.Glob(filepath.Join(dir, "annotations", "*.json")); len(fs) > 0 {
		sort.Strings(fs)
		return fs
	}
	fs, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	sort.Strings(fs)
	var out []string
	for _, f := range fs {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var first []map[string]json.RawMessage
		dec := json.NewDecoder(bytes.NewReader(data))
		if dec.Decode(&first) != nil || len(first) == 0 {
			continue
		}
		_, a := first[0]["img_size"]
		_, b := first[0]["ui_type"]
		if a || b {
			out = append(out, f)
		}
	}
	return out
}

func existingDirs(dir string, names ...string) []string {
	var out []string
	for _, n := range names {
		p := filepath.Join(dir, n)
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			out = append(out, p)
		}
	}
	return out
}

// ImagePath finds the record's screenshot in the image folders.
func (d *Dataset) ImagePath(r *Record) (string, error) {
	if r.ImgFilename == "" {
		return "", errors.New("record has no img_filename")
	}
	for _, dir := range d.ImageDirs {
		p := filepath.Join(dir, r.ImgFilename)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("image %s not found in %s", r.ImgFilename, strings.Join(d.ImageDirs, ", "))
}

// rawRecord is the union of the three layouts' fields.
type rawRecord struct {
	ImgFilename string    `json:"img_filename"`
	Instruction string    `json:"instruction"`
	BBox        []float64 `json:"bbox"`
	DataType    string    `json:"data_type"`
	DataSource  string    `json:"data_source"`
	UIType      string    `json:"ui_type"`
	Platform    string    `json:"platform"`
	Application string    `json:"application"`
	Group       string    `json:"group"`
	ImgSize     []int     `json:"img_size"`
}

// readJSONItems returns the raw items of a JSON array file, or of a JSON
// lines file. A malformed item is returned as an error at its position; a
// syntax error inside an array ends the file there (the decoder cannot
// resynchronise) after recording it.
func readJSONItems(path string) ([]json.RawMessage, []error, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	trim := bytes.TrimLeft(data, " \t\r\n\ufeff")
	var items []json.RawMessage
	var errs []error
	if len(trim) > 0 && trim[0] == '[' {
		dec := json.NewDecoder(bytes.NewReader(trim))
		if _, err := dec.Token(); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		for dec.More() {
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				// The decoder cannot resynchronise: the rest of the file
				// would be lost silently, so the file is unreadable.
				return nil, nil, fmt.Errorf("%s: malformed JSON in item %d: %w", path, len(items), err)
			}
			items = append(items, raw)
			errs = append(errs, nil)
		}
		return items, errs, nil
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		if !json.Valid(line) {
			items = append(items, nil)
			errs = append(errs, fmt.Errorf("malformed JSON line %q", clip(string(line), 60)))
			continue
		}
		items = append(items, append(json.RawMessage(nil), line...))
		errs = append(errs, nil)
	}
	if err := sc.Err(); err != nil && err != io.EOF {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(items) > 0 && !slices.ContainsFunc(errs, func(e error) bool { return e == nil }) {
		return nil, nil, fmt.Errorf("%s: not a JSON array or JSON lines file (%v)", path, errs[0])
	}
	if len(items) == 0 {
		return nil, nil, fmt.Errorf("%s: empty: no JSON records", path)
	}
	return items, errs, nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func readFile(path string, format Format) ([]Record, error) {
	items, errs, err := readJSONItems(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	platform := ""
	if format != FormatPro {
		base := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(path), ".json"), "_v2")
		platform = strings.TrimPrefix(base, "screenspot_")
	}
	out := make([]Record, len(items))
	for i, it := range items {
		r := Record{File: path, Pos: i, Platform: platform, Category: platform}
		if errs[i] != nil {
			r.Err = errs[i]
			out[i] = r
			continue
		}
		r.Err = fillRecord(&r, it, format)
		out[i] = r
	}
	return out, nil
}

func fillRecord(r *Record, it json.RawMessage, format Format) error {
	var raw rawRecord
	if err := json.Unmarshal(it, &raw); err != nil {
		return fmt.Errorf("malformed record: %w", err)
	}
	r.ImgFilename, r.Instruction, r.DataSource = raw.ImgFilename, raw.Instruction, raw.DataSource
	r.Application, r.Group = raw.Application, raw.Group
	var err error
	switch format {
	case FormatPro:
		r.Platform = raw.Platform
		r.Category = raw.Group
		if r.Category == "" {
			r.Category = raw.Application
		}
		r.Type = strings.ToLower(raw.UIType)
		if len(raw.ImgSize) == 2 {
			r.ImgSize = [2]int{raw.ImgSize[0], raw.ImgSize[1]}
		} else if raw.ImgSize != nil {
			return fmt.Errorf("img_size has %d numbers, want [w,h]", len(raw.ImgSize))
		}
		if r.Box, err = BoxFromXYXY(raw.BBox); err != nil {
			return err
		}
	default:
		r.Type = strings.ToLower(raw.DataType)
		if r.Box, err = BoxFromXYWH(raw.BBox); err != nil {
			return err
		}
	}
	if r.ImgFilename == "" {
		return errors.New("record has no img_filename")
	}
	if r.Type != "text" && r.Type != "icon" {
		t := r.Type
		r.Type = ""
		return fmt.Errorf("element type %q, want text or icon", t)
	}
	return nil
}
