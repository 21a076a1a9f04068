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
	"github.com/magma-go/magma/vision/imaging"
)

// VideoOptions are the video source's per-type options.
type VideoOptions struct {
	// VideoFolder is where relative "video" names live (default: the
	// manifest's folder).
	VideoFolder string `yaml:"video_folder"`
	// Steps bounds the frames tracked per sample: the segment from its
	// first frame, at most Steps+1 frames (default 16). The ToM turn starts
	// at a random frame of it and runs to its end (tom.SourceVideo).
	Steps int `yaml:"steps"`
	// Grid is the tracking grid size (tom default 15).
	Grid int `yaml:"grid"`
	// FPS of frame folders, to turn start/end seconds into frames
	// (default 30; video files report their own).
	FPS float64 `yaml:"fps"`
	// SkipToM is the share of samples that stop after the caption turn
	// (default 0.2, Magma's "random.random() < 0.2").
	SkipToM *float64 `yaml:"skip_tom"`
	// Egocentric always removes camera motion, as Magma does for ego4d,
	// epic and exoego4d.
	Egocentric bool `yaml:"egocentric"`
	// Tracker and TrackerWeights choose the point tracker (tom.NewTracker:
	// cotracker or lk; default CoTracker3 when weights are given, else LK
	// with a warning). Empty: the data section's tracker: and
	// tracker_weights:.
	Tracker        string `yaml:"tracker"`
	TrackerWeights string `yaml:"tracker_weights"`
}

// VideoCaptionQuestion is the first question of a video sample, Magma's
// for ego4d and sthv2 clips (data/conversations.py, _construct_conv_semantic).
const VideoCaptionQuestion = "What is the person doing in the image?"

// CaptionQuestion is the question of image-caption pairs.
const CaptionQuestion = "Describe the image in detail."

// framePlaceholder is Magma's image_placeholder "<image>\n" as its video and
// robot classes put it before a question: f"{image_placeholder}\n{question}"
// (the chat rendering wraps it in <image_start>/<image_end> when the
// checkpoint's mm_use_image_start_end is set).
const framePlaceholder = tokenizer.ImageToken + "\n\n"

// VideoSource turns video clips into SoM+ToM samples in-process with the
// tom package (paper Algorithm 2). Manifest records (JSON array or lines):
//
//	{"video": "P01_01.mp4", "task": "open the drawer", "caption": "A person opens ...",
//	 "start": 12.5, "end": 15.0}
//
// "video" is a video file (anything OpenCV opens) or a folder of frames,
// relative to video_folder; "caption" (or "task") answers the caption
// turn, "task" (or "caption") fills the ToM question; start/end are
// optional seconds ("start_frame"/"end_frame" give frames directly).
//
// Each sample is one multi-turn item as Magma's video classes build it
// (data/conversations.py, _construct_conv): the segment's first frame with
// VideoCaptionQuestion and the caption; then, except for a SkipToM share,
// a second image, the frame where the traces start with the marks drawn,
// with the ToM question (tom.SourceVideo: mark ids listed, a random start,
// traces to the end of the tracked window) and answer, or the SoM question
// and answer when nothing moves. Both images use num_crops = 1. Clips too
// short (2 frames), unreadable, or cut by a shot boundary are bad records.
type VideoSource struct {
	name, path string
	env        *SampleBuilder
	opt        VideoOptions
	recs       []videoRecord
	tracker    tom.Tracker
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
	if o.SkipToM == nil {
		r := 0.2
		o.SkipToM = &r
	}
	if !(*o.SkipToM >= 0 && *o.SkipToM <= 1) {
		return nil, fmt.Errorf("data: source %q: skip_tom %v is not in [0,1]", name, *o.SkipToM)
	}
	tr, err := env.tracker(name, o.Tracker, o.TrackerWeights)
	if err != nil {
		return nil, err
	}
	s := &VideoSource{name: name, path: path, env: env, opt: o, tracker: tr}
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
	vc, err := tom.OpenVideo(path)
	if err != nil {
		return 0, 0, err
	}
	defer vc.Close()
	return int(vc.Get(gocv.VideoCaptureFrameCount)), vc.Get(gocv.VideoCaptureFPS), nil
}

// clipFrames reads the record's segment from its first frame: at most
// steps+1 frames and at least 2.
func clipFrames(path string, sf, ef int, start, end, folderFPS float64, steps int) ([]imaging.Image, error) {
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
	if hi-lo < 2 {
		return nil, fmt.Errorf("clip has %d frames in range [%d,%d), needs 2", max(hi-lo, 0), lo, hi)
	}
	want := min(hi-lo, steps+1)
	clip, err := tom.ReadFrames(path, lo, want)
	if err != nil {
		return nil, err
	}
	if len(clip.Frames) < 2 {
		return nil, fmt.Errorf("read %d frames from %d, need 2", len(clip.Frames), lo)
	}
	return clip.Frames, nil
}

// marksTurn runs tom with a source's rules on frames and returns the ToM
// question and answer on the marked start frame, or the SoM ones when no
// trace qualifies (Magma's fallback).
func marksTurn(frames []imaging.Image, cfg tom.Config) (q, a string, img imaging.Image, err error) {
	res, err := tom.Run(frames, cfg)
	if err != nil {
		return "", "", imaging.Image{}, err
	}
	q, a = res.ToMQuestion, res.ToMText
	if a == "" {
		q, a = som.SoMQuestion+"\n", res.SoMText+"\n"
	}
	if res.SoMText == "" {
		return "", "", imaging.Image{}, errors.New("no marks")
	}
	return q, a, res.Marked, nil
}

// Sample reads the record's segment and builds one sample.
func (s *VideoSource) Sample(i int, rng *rand.Rand) (Sample, error) {
	msgs, images, err := s.conversation(i, rng)
	if err != nil {
		return Sample{}, err
	}
	rec := s.recs[i]
	smp, err := s.env.FrameSample(msgs, images)
	if err != nil {
		return Sample{}, recordErr(s.path, rec.index, "video %s: %v", rec.video, err)
	}
	smp.Source, smp.Index = s.path, rec.index
	return smp, nil
}

// conversation is Sample before tokenisation: the turns and their images
// (the segment's first frame, then the marked start frame of the ToM or
// SoM turn when there is one).
func (s *VideoSource) conversation(i int, rng *rand.Rand) ([]tokenizer.Message, []imaging.Image, error) {
	if i < 0 || i >= len(s.recs) {
		return nil, nil, fmt.Errorf("data: %s: index %d out of range", s.name, i)
	}
	if rng == nil {
		rng = rand.New(rand.NewPCG(uint64(i), 0))
	}
	rec := s.recs[i]
	p, err := resolve(s.opt.VideoFolder, rec.video)
	if err != nil {
		return nil, nil, recordErr(s.path, rec.index, "%v", err)
	}
	frames, err := clipFrames(p, rec.sf, rec.ef, rec.start, rec.end, s.opt.FPS, s.opt.Steps)
	if err != nil {
		return nil, nil, recordErr(s.path, rec.index, "video %s: %v", rec.video, err)
	}
	msgs := []tokenizer.Message{
		{Role: "user", Content: framePlaceholder + VideoCaptionQuestion + "\n"},
		{Role: "assistant", Content: rec.caption + "\n"}}
	images := []imaging.Image{frames[0]}
	if rng.Float64() >= *s.opt.SkipToM {
		cfg := tom.SourceConfig(tom.SourceVideo)
		cfg.Seed, cfg.Task, cfg.Grid, cfg.ForceCamera, cfg.Tracker = rng.Int64(), rec.task, s.opt.Grid, s.opt.Egocentric, s.tracker
		q, a, img, err := marksTurn(frames, cfg)
		if err != nil && !errors.Is(err, tom.ErrNoTraces) {
			return nil, nil, recordErr(s.path, rec.index, "video %s: %v", rec.video, err)
		}
		if err == nil { // no traces at all: the caption turn alone, as Magma does
			msgs = append(msgs, tokenizer.Message{Role: "user", Content: framePlaceholder + q},
				tokenizer.Message{Role: "assistant", Content: a})
			images = append(images, img)
		}
	}
	return msgs, images, nil
}
