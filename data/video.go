package data

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"gocv.io/x/gocv"

	"github.com/magma-go/magma/llm/tokenizer"
	"github.com/magma-go/magma/som"
	"github.com/magma-go/magma/tom"
	"github.com/magma-go/magma/vision"
)

// VideoOptions are the video source's per-type options.
type VideoOptions struct {
	// VideoFolder is where relative "video" names live (default: the
	// manifest's folder).
	VideoFolder string `yaml:"video_folder"`
	// Steps is the ToM horizon (future steps; tom default 16).
	Steps int `yaml:"steps"`
	// Grid is the tracking grid size (tom default 15).
	Grid int `yaml:"grid"`
	// FPS of frame folders, to turn start/end seconds into frames
	// (default 30; video files report their own).
	FPS float64 `yaml:"fps"`
	// Tasks weighs the sample kinds: tom (trace prediction on the marked
	// first frame), som (mark localisation), caption (describe the
	// unmarked first frame). Default tom 0.7, som 0.15, caption 0.15.
	Tasks map[string]float64 `yaml:"tasks"`
}

// Video sample kinds.
const (
	TaskToM     = "tom"
	TaskSoM     = "som"
	TaskCaption = "caption"
)

var videoTaskOrder = []string{TaskToM, TaskSoM, TaskCaption}

// CaptionQuestion is the question of caption samples (video first frames
// and image-caption pairs).
const CaptionQuestion = "Describe the image in detail."

// VideoSource turns video clips into SoM+ToM samples in-process with the
// tom package (paper Algorithm 2). Manifest records (JSON array or lines):
//
//	{"video": "P01_01.mp4", "task": "open the drawer", "caption": "A person opens ...",
//	 "start": 12.5, "end": 15.0}
//
// "video" is a video file (anything OpenCV opens) or a folder of frames,
// relative to video_folder; "task" (or "caption" when absent) fills the ToM
// question, "caption" (or "task") the caption answer; start/end are
// optional seconds ("start_frame"/"end_frame" give frames directly). Each
// sample picks a start frame uniformly in the clip, tracks Steps+1 frames
// and asks, on the first frame with marks drawn, tom.ToMQuestion → the ToM
// answer (som.SoMQuestion → the SoM answer for som samples, and
// CaptionQuestion → the caption on the unmarked frame for caption samples).
// A clip whose traces do not move falls back to the SoM question. Clips
// too short, unreadable, or cut by a shot boundary are bad records.
type VideoSource struct {
	name, path string
	env        *SampleBuilder
	opt        VideoOptions
	cum        []float64
	recs       []videoRecord
}

type videoRecord struct {
	index      int
	video      string
	task       string
	caption    string
	start, end float64 // seconds (-1: unset)
	sf, ef     int     // frames (-1: unset)
}

type videoJSON struct {
	Video      string   `json:"video"`
	Task       string   `json:"task"`
	Caption    string   `json:"caption"`
	Start      *float64 `json:"start"`
	End        *float64 `json:"end"`
	StartFrame *int     `json:"start_frame"`
	EndFrame   *int     `json:"end_frame"`
}

// NewVideoSource indexes a clip manifest.
func NewVideoSource(env *SampleBuilder, name, path string, o VideoOptions) (*VideoSource, error) {
	if o.VideoFolder == "" {
		o.VideoFolder = filepath.Dir(path)
	}
	if o.Steps <= 0 {
		o.Steps = tom.DefaultConfig().Future
	}
	if o.FPS <= 0 {
		o.FPS = 30
	}
	if o.Tasks == nil {
		o.Tasks = map[string]float64{TaskToM: 0.7, TaskSoM: 0.15, TaskCaption: 0.15}
	}
	cum, err := cumulative(name, o.Tasks, videoTaskOrder)
	if err != nil {
		return nil, err
	}
	s := &VideoSource{name: name, path: path, env: env, opt: o, cum: cum}
	recs, err := loadRecords(env, path, func(index int, data []byte) (videoRecord, error) {
		var j videoJSON
		if err := strictDecode(data, &j); err != nil {
			return videoRecord{}, fmt.Errorf("not a video record: %v", err)
		}
		rec := videoRecord{index: index, video: strings.TrimSpace(j.Video), task: strings.TrimSpace(j.Task),
			caption: strings.TrimSpace(j.Caption), start: -1, end: -1, sf: -1, ef: -1}
		if rec.task == "" {
			rec.task = rec.caption
		}
		if rec.caption == "" {
			rec.caption = rec.task
		}
		var reason string
		switch {
		case rec.video == "":
			reason = `no "video"`
		case rec.task == "":
			reason = `no "task" or "caption"`
		}
		if j.Start != nil {
			rec.start = *j.Start
		}
		if j.End != nil {
			rec.end = *j.End
		}
		if j.StartFrame != nil {
			rec.sf = *j.StartFrame
		}
		if j.EndFrame != nil {
			rec.ef = *j.EndFrame
		}
		if reason == "" && (math.IsNaN(rec.start) || math.IsNaN(rec.end) || (j.Start != nil && rec.start < 0) ||
			(j.End != nil && rec.end < 0) || (j.Start != nil && j.End != nil && rec.end <= rec.start) ||
			(j.StartFrame != nil && rec.sf < 0) || (j.StartFrame != nil && j.EndFrame != nil && rec.ef <= rec.sf)) {
			reason = "bad start/end"
		}
		if reason != "" {
			return videoRecord{}, errors.New(reason)
		}
		return rec, nil
	})
	if err != nil {
		return nil, err
	}
	s.recs = recs
	return s, nil
}

func cumulative(name string, w map[string]float64, order []string) ([]float64, error) {
	for k, v := range w {
		known := false
		for _, n := range order {
			known = known || n == k
		}
		if !known {
			return nil, fmt.Errorf("data: source %q: unknown task %q (want %s)", name, k, strings.Join(order, ", "))
		}
		if !(v >= 0) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("data: source %q: task %s weight %v", name, k, v)
		}
	}
	var cum []float64
	total := 0.0
	for _, n := range order {
		total += w[n]
		cum = append(cum, total)
	}
	if !(total > 0) {
		return nil, fmt.Errorf("data: source %q: task weights sum to 0", name)
	}
	return cum, nil
}

func pick(cum []float64, order []string, rng *rand.Rand) string {
	u := rng.Float64() * cum[len(cum)-1]
	for i, c := range cum {
		if u < c {
			return order[i]
		}
	}
	return order[len(order)-1]
}

func (s *VideoSource) Name() string { return s.name }
func (s *VideoSource) Len() int     { return len(s.recs) }

// videoInfo returns the frame count and frame rate of a video file or
// frame folder (fps for folders is the configured one).
func videoInfo(path string, folderFPS float64) (int, float64, error) {
	st, err := os.Stat(path)
	if err != nil {
		return 0, 0, err
	}
	if st.IsDir() {
		ents, err := os.ReadDir(path)
		if err != nil {
			return 0, 0, err
		}
		n := 0
		for _, e := range ents {
			switch strings.ToLower(filepath.Ext(e.Name())) {
			case ".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff":
				n++
			}
		}
		return n, folderFPS, nil
	}
	vc, err := gocv.VideoCaptureFile(path)
	if err != nil {
		return 0, 0, err
	}
	defer vc.Close()
	if !vc.IsOpened() {
		return 0, 0, errors.New("cannot open video")
	}
	return int(vc.Get(gocv.VideoCaptureFrameCount)), vc.Get(gocv.VideoCaptureFPS), nil
}

// clipFrames reads Steps+1 frames from a random start inside the record's
// range.
func clipFrames(path string, sf, ef int, start, end, folderFPS float64, steps int, rng *rand.Rand) ([]vision.Image, error) {
	n, fps, err := videoInfo(path, folderFPS)
	if err != nil {
		return nil, err
	}
	if fps <= 0 {
		fps = folderFPS
	}
	lo, hi := 0, n
	if sf >= 0 {
		lo = sf
	} else if start >= 0 {
		lo = int(math.Round(start * fps))
	}
	if ef >= 0 {
		hi = min(hi, ef)
	} else if end >= 0 {
		hi = min(hi, int(math.Round(end*fps)))
	}
	if hi-lo < steps+1 {
		return nil, fmt.Errorf("clip has %d frames in range [%d,%d), needs %d", max(hi-lo, 0), lo, hi, steps+1)
	}
	t0 := lo + rng.IntN(hi-lo-steps)
	clip, err := tom.ReadFrames(path, t0, steps+1)
	if err != nil {
		return nil, err
	}
	if len(clip.Frames) < steps+1 {
		return nil, fmt.Errorf("read %d frames from %d, need %d", len(clip.Frames), t0, steps+1)
	}
	return clip.Frames, nil
}

// marksSample builds the ToM / SoM / caption conversation for frames.
// It reports ok=false when tracking found nothing usable.
func (e *SampleBuilder) marksSample(frames []vision.Image, kind, task, caption string, steps, grid int, robot bool, rng *rand.Rand) (Sample, error) {
	if kind == TaskCaption {
		return e.ChatSample([]tokenizer.Message{
			{Role: "user", Content: tokenizer.ImageToken + "\n" + CaptionQuestion},
			{Role: "assistant", Content: caption}}, []vision.Image{frames[0]})
	}
	cfg := tom.DefaultConfig()
	cfg.Future, cfg.Seed, cfg.Task, cfg.Robot = steps, rng.Int64(), task, robot
	if grid > 0 {
		cfg.Grid = grid
	}
	res, err := tom.Run(frames, cfg)
	if err != nil {
		return Sample{}, err
	}
	q, a := res.ToMQuestion, res.ToMText
	if kind == TaskSoM || a == "" {
		q, a = som.SoMQuestion, res.SoMText
	}
	if a == "" {
		return Sample{}, errors.New("no marks")
	}
	return e.ChatSample([]tokenizer.Message{
		{Role: "user", Content: tokenizer.ImageToken + "\n" + q},
		{Role: "assistant", Content: a}}, []vision.Image{res.Marked})
}

// Sample reads a window of the clip and builds one sample.
func (s *VideoSource) Sample(i int, rng *rand.Rand) (Sample, error) {
	if i < 0 || i >= len(s.recs) {
		return Sample{}, fmt.Errorf("data: %s: index %d out of range", s.name, i)
	}
	if rng == nil {
		rng = rand.New(rand.NewPCG(uint64(i), 0))
	}
	rec := s.recs[i]
	p, err := resolve(s.opt.VideoFolder, rec.video)
	if err != nil {
		return Sample{}, recordErr(s.path, rec.index, "%v", err)
	}
	kind := pick(s.cum, videoTaskOrder, rng)
	steps := s.opt.Steps
	if kind == TaskCaption {
		steps = 0
	}
	frames, err := clipFrames(p, rec.sf, rec.ef, rec.start, rec.end, s.opt.FPS, steps, rng)
	if err != nil {
		return Sample{}, recordErr(s.path, rec.index, "video %s: %v", rec.video, err)
	}
	smp, err := s.env.marksSample(frames, kind, rec.task, rec.caption, s.opt.Steps, s.opt.Grid, false, rng)
	if err != nil {
		return Sample{}, recordErr(s.path, rec.index, "video %s: %v", rec.video, err)
	}
	smp.Source, smp.Index = s.path, rec.index
	return smp, nil
}

func init() {
	sourceTypes["video"] = func(env *SampleBuilder, sc SourceConfig, abs func(string) string) (Source, error) {
		var o VideoOptions
		if err := sc.options(&o); err != nil {
			return nil, err
		}
		o.VideoFolder = abs(o.VideoFolder)
		return NewVideoSource(env, sc.Name, abs(sc.Path), o)
	}
}
