package data

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/magma-go/magma/data/hf"
	"github.com/magma-go/magma/llm/tokenizer"
	"github.com/magma-go/magma/model/action"
	"github.com/magma-go/magma/som"
	"github.com/magma-go/magma/tom"
	"github.com/magma-go/magma/vision/imaging"
)

// MagmaSoMOptions are the magma_som source's options.
type MagmaSoMOptions struct {
	// ImageFolder resolves image paths when a row has no image bytes
	// (default: the folder of path).
	ImageFolder string `yaml:"image_folder"`
	// Columns override the column names: image, conversations.
	Columns map[string]string `yaml:"columns"`
}

// MagmaSoMSource reads MagmaAI/Magma-Mind2Web-SoM and MagmaAI/Magma-AITW-SoM
// (and any `datasets` table of the same shape) from Arrow IPC or Parquet
// shards: per row an `image` (the `datasets` Image struct {bytes, path},
// the screenshot with the SoM marks and boxes already drawn) and
// `conversations` (a list of {from, value}: the task prompt and the
// {"ACTION", "MARK", "VALUE"} answer). Rows pass through as Magma's loader
// passes the `mind2web`/`aitw` items (no marks drawn at load time); the
// conversation is checked and tokenised like a LLaVA record (human/gpt
// roles, one <image> placeholder per image, put in front of the first
// human turn when missing; only gpt turns supervised).
type MagmaSoMSource struct {
	name   string
	env    *SampleBuilder
	t      *hfTable
	cols   map[string]string
	folder string
}

// NewMagmaSoMSource indexes the shards under path.
func NewMagmaSoMSource(env *SampleBuilder, name, path string, o MagmaSoMOptions) (*MagmaSoMSource, error) {
	req := map[string][]string{"image": {"image"}, "conversations": {"conversations"}}
	for role, c := range o.Columns {
		if _, ok := req[role]; !ok {
			return nil, fmt.Errorf("data: source %q: unknown column role %q (want image, conversations)", name, role)
		}
		req[role] = []string{c}
	}
	t, cols, err := openHFTable(env, name, path, req, nil)
	if err != nil {
		return nil, err
	}
	if o.ImageFolder == "" {
		o.ImageFolder = filepath.Dir(path)
	}
	return &MagmaSoMSource{name: name, env: env, t: t, cols: cols, folder: o.ImageFolder}, nil
}

func (s *MagmaSoMSource) Name() string { return s.name }
func (s *MagmaSoMSource) Len() int     { return s.t.rows }

// Close unmaps the shards.
func (s *MagmaSoMSource) Close() error { s.t.close(); return nil }

// SoMItem is a decoded row: the conversation as Magma's loader would hold
// it and the encoded screenshot.
type SoMItem struct {
	Path     string              `json:"path"`
	Row      int                 `json:"row"`
	Messages []tokenizer.Message `json:"messages"`
	Image    []byte              `json:"-"`
}

// Item decodes row i.
func (s *MagmaSoMSource) Item(i int) (*SoMItem, error) {
	row, f, r, err := s.t.row(i, []string{s.cols["image"], s.cols["conversations"]})
	if err != nil {
		return nil, err
	}
	bad := func(format string, args ...any) error { return recordErr(f.Path, r, format, args...) }
	turns, ok := row[s.cols["conversations"]].([]any)
	if !ok {
		return nil, bad("conversations is a %T, want a list of {from, value}", row[s.cols["conversations"]])
	}
	var conv []map[string]any
	for j, tv := range turns {
		m, ok := tv.(map[string]any)
		if !ok {
			return nil, bad("conversation turn %d is a %T, want {from, value}", j, tv)
		}
		conv = append(conv, m)
	}
	img, p, err := imageBytes(row[s.cols["image"]], s.folder)
	if err != nil {
		return nil, bad("%v", err)
	}
	js, _ := json.Marshal(map[string]any{"image": "row", "conversations": conv})
	rec, err := parseLLaVA(js)
	if err != nil {
		return nil, bad("%v", err)
	}
	if img == nil {
		if img, err = readFileLimited(p); err != nil {
			return nil, bad("image: %v", err)
		}
	}
	return &SoMItem{Path: f.Path, Row: r, Messages: rec.msgs, Image: img}, nil
}

// Sample decodes the screenshot and tokenises the conversation.
func (s *MagmaSoMSource) Sample(i int, _ *rand.Rand) (Sample, error) {
	it, err := s.Item(i)
	if err != nil {
		return Sample{}, err
	}
	img, err := imaging.DecodeImageBytes(it.Image, imaging.WithMaxPixels(s.env.Image.MaxPixels))
	if err != nil {
		return Sample{}, recordErr(it.Path, it.Row, "image: %v", err)
	}
	smp, err := s.env.ChatSample(it.Messages, []imaging.Image{img})
	if err != nil {
		return Sample{}, recordErr(it.Path, it.Row, "%v", err)
	}
	smp.Source, smp.Index = it.Path, it.Row
	return smp, nil
}

// MagmaToMOptions are the magma_tom source's options.
type MagmaToMOptions struct {
	// Robot switches the question to "The robot is doing" (OXE-ToM).
	Robot bool `yaml:"robot"`
	// VideoFolder holds the videos (files or frame folders) named by the
	// video column, for rows without an image (Video-ToM).
	VideoFolder string `yaml:"video_folder"`
	// ImageFolder resolves image paths of rows with an image path.
	ImageFolder string `yaml:"image_folder"`
	// TraceSize is the pixel space [w, h] the traces are in (default: the
	// frame's own size; OXE-ToM's traces are 256x256).
	TraceSize []float64 `yaml:"trace_size"`
	// Tasks weighs the sample kinds: tom, som, caption (video: "What is
	// the person doing in the image?" → the task text) and action (rows
	// with an action column: the 7 stored, already normalised action
	// values as action tokens). Default tom 0.8, som 0.1, caption 0.1 for
	// video; tom 0.5, action 0.5 for robot rows with actions.
	Tasks map[string]float64 `yaml:"tasks"`
	// Columns override the column names: task, trace, visibility, video,
	// frame, image, action.
	Columns map[string]string `yaml:"columns"`
}

// Magma ToM task kinds beyond the video ones.
const TaskAction = "action"

// PersonQuestion is Magma's first video turn (data/conversations.py).
const PersonQuestion = "What is the person doing in the image?"

var magmaToMTaskOrder = []string{TaskToM, TaskSoM, TaskCaption, TaskAction}

// MagmaToMSource reads MagmaAI/Magma-Video-ToM (subsets ego4d,
// instruct_videos, sthv2) and MagmaAI/Magma-OXE-ToM from their `.arrow`
// shards: per row the task text (task_string / lang), the pre-extracted
// CoTracker traces (trace [T,N,2] or [1,T,N,2] of (x, y) pixels, and
// trace_visibility [T,N] or [1,T,N]), the frame they start at (an image
// column, or video_name + frame_index read from video_folder) and, for
// OXE-ToM, the normalised 7-D action. The traces are used as they are (no
// tracker runs): rescaled from trace_size to the frame, then tom.RunTracks
// does Magma's selection (visibility, camera motion, foreground split,
// clustering, marks) and the som/tom formatters write the texts. Missing
// columns are reported per shard; a trace of the wrong shape, a missing
// frame or a bad image is a *RecordError{shard, row}.
type MagmaToMSource struct {
	name string
	env  *SampleBuilder
	t    *hfTable
	cols map[string]string
	opt  MagmaToMOptions
	cum  []float64
}

// NewMagmaToMSource indexes the shards under path.
func NewMagmaToMSource(env *SampleBuilder, name, path string, o MagmaToMOptions) (*MagmaToMSource, error) {
	req := map[string][]string{
		"task":       {"task_string", "lang", "language_instruction", "instruction", "task"},
		"trace":      {"trace", "pred_tracks", "traces"},
		"visibility": {"trace_visibility", "pred_visibility", "visibility"},
	}
	opt := map[string][]string{
		"video":  {"video_name", "video"},
		"frame":  {"frame_index", "frame"},
		"image":  {"image", "frame_image"},
		"action": {"action"},
	}
	for role, c := range o.Columns {
		switch {
		case req[role] != nil:
			req[role] = []string{c}
		case opt[role] != nil:
			opt[role] = []string{c}
		default:
			return nil, fmt.Errorf("data: source %q: unknown column role %q (want task, trace, visibility, video, frame, image, action)", name, role)
		}
	}
	if len(o.TraceSize) != 0 && (len(o.TraceSize) != 2 || !(o.TraceSize[0] > 0 && o.TraceSize[1] > 0)) {
		return nil, fmt.Errorf("data: source %q: trace_size %v: want [width, height]", name, o.TraceSize)
	}
	t, cols, err := openHFTable(env, name, path, req, opt)
	if err != nil {
		return nil, err
	}
	if cols["image"] == "" && (cols["video"] == "" || cols["frame"] == "") {
		t.close()
		return nil, fmt.Errorf("data: source %q: rows have no image column and no video_name + frame_index to read the frame from", name)
	}
	if cols["image"] == "" && o.VideoFolder == "" {
		t.close()
		return nil, fmt.Errorf("data: source %q: video_folder is needed to read frames (the rows name videos, they hold no images)", name)
	}
	if o.Tasks == nil {
		if o.Robot && cols["action"] != "" {
			o.Tasks = map[string]float64{TaskToM: 0.5, TaskAction: 0.5}
		} else if o.Robot {
			o.Tasks = map[string]float64{TaskToM: 0.9, TaskSoM: 0.1}
		} else {
			o.Tasks = map[string]float64{TaskToM: 0.8, TaskSoM: 0.1, TaskCaption: 0.1}
		}
	}
	if o.Tasks[TaskAction] > 0 && cols["action"] == "" {
		t.close()
		return nil, fmt.Errorf("data: source %q: task action needs an action column", name)
	}
	cum, err := cumulative(name, o.Tasks, magmaToMTaskOrder)
	if err != nil {
		t.close()
		return nil, err
	}
	if o.ImageFolder == "" {
		o.ImageFolder = filepath.Dir(path)
	}
	return &MagmaToMSource{name: name, env: env, t: t, cols: cols, opt: o, cum: cum}, nil
}

func (s *MagmaToMSource) Name() string { return s.name }
func (s *MagmaToMSource) Len() int     { return s.t.rows }

// Close unmaps the shards.
func (s *MagmaToMSource) Close() error { s.t.close(); return nil }

// ToMItem is a decoded row: what Magma's constructors receive.
type ToMItem struct {
	Path  string `json:"path"`
	Row   int    `json:"row"`
	Task  string `json:"task"`
	Video string `json:"video,omitempty"`
	Frame int    `json:"frame_index"`
	// Tracks in the frame's pixels (rescaled from trace_size).
	Tracks *tom.Tracks `json:"-"`
	// TraceShape is the stored shape ([T,N,2] or [1,T,N,2]).
	TraceShape []int         `json:"trace_shape"`
	Action     []float64     `json:"action,omitempty"`
	First      imaging.Image `json:"-"`
}

// Item decodes row i, reading its frame.
func (s *MagmaToMSource) Item(i int) (*ToMItem, error) {
	var cols []string
	for _, c := range s.cols {
		cols = append(cols, c)
	}
	row, f, r, err := s.t.row(i, cols)
	if err != nil {
		return nil, err
	}
	bad := func(format string, args ...any) error { return recordErr(f.Path, r, format, args...) }
	it := &ToMItem{Path: f.Path, Row: r}
	task, ok := row[s.cols["task"]].(string)
	if !ok || strings.TrimSpace(task) == "" {
		return nil, bad("no task text in column %q", s.cols["task"])
	}
	it.Task = strings.TrimSpace(task)
	if c := s.cols["frame"]; c != "" {
		n, ok := row[c].(int64)
		if !ok || n < 0 {
			return nil, bad("frame index %v in column %q is not a non-negative integer", row[c], c)
		}
		it.Frame = int(n)
	}
	if c := s.cols["video"]; c != "" {
		it.Video, _ = row[c].(string)
	}
	if c := s.cols["action"]; c != "" && row[c] != nil {
		a, ok := row[c].(*hf.Tensor)
		if !ok || len(a.Shape) != 1 || a.Shape[0] != ActionDim {
			return nil, bad("action in column %q must be %d numbers", c, ActionDim)
		}
		for _, v := range a.Data {
			it.Action = append(it.Action, float64(v))
		}
	}
	// the frame
	if c := s.cols["image"]; c != "" && row[c] != nil {
		b, p, err := imageBytes(row[c], s.opt.ImageFolder)
		if err != nil {
			return nil, bad("%v", err)
		}
		if b != nil {
			it.First, err = imaging.DecodeImageBytes(b, imaging.WithMaxPixels(s.env.Image.MaxPixels))
		} else {
			it.First, err = s.env.decode(p)
		}
		if err != nil {
			return nil, bad("image: %v", err)
		}
	} else {
		p, err := resolve(s.opt.VideoFolder, it.Video)
		if err != nil {
			return nil, bad("video: %v", err)
		}
		clip, err := tom.ReadFrames(p, it.Frame, 1)
		if err != nil {
			return nil, bad("video %s frame %d: %v", it.Video, it.Frame, err)
		}
		if len(clip.Frames) == 0 {
			return nil, bad("video %s has no frame %d", it.Video, it.Frame)
		}
		it.First = clip.Frames[0]
	}
	tr, ok := row[s.cols["trace"]].(*hf.Tensor)
	if !ok {
		return nil, bad("trace in column %q is not a rectangular numeric array (%T)", s.cols["trace"], row[s.cols["trace"]])
	}
	vis, ok := row[s.cols["visibility"]].(*hf.Tensor)
	if !ok {
		return nil, bad("visibility in column %q is not a rectangular array (%T)", s.cols["visibility"], row[s.cols["visibility"]])
	}
	it.TraceShape = tr.Shape
	sx, sy := 1.0, 1.0
	if len(s.opt.TraceSize) == 2 {
		sx, sy = float64(it.First.W)/s.opt.TraceSize[0], float64(it.First.H)/s.opt.TraceSize[1]
	}
	tracks, err := tracksFrom(tr, vis, sx, sy)
	if err != nil {
		return nil, bad("%v", err)
	}
	it.Tracks = tracks
	return it, nil
}

// tracksFrom checks the CoTracker layouts ([T,N,2] / [1,T,N,2] tracks,
// [T,N] / [1,T,N] visibility) and scales the points.
func tracksFrom(tr, vis *hf.Tensor, sx, sy float64) (*tom.Tracks, error) {
	ts, vs := tr.Shape, vis.Shape
	if len(ts) == 4 && ts[0] == 1 {
		ts = ts[1:]
	}
	if len(vs) == 3 && vs[0] == 1 {
		vs = vs[1:]
	}
	if len(ts) != 3 || ts[2] != 2 {
		return nil, fmt.Errorf("trace has shape %v, want [T,N,2] or [1,T,N,2]", tr.Shape)
	}
	T, N := ts[0], ts[1]
	if len(vs) != 2 || vs[0] != T || vs[1] != N {
		return nil, fmt.Errorf("trace_visibility has shape %v, want [%d,%d] (or with a leading 1) to match the trace %v", vis.Shape, T, N, tr.Shape)
	}
	if T < 2 || N == 0 {
		return nil, fmt.Errorf("trace has shape %v: need at least 2 steps and 1 point", tr.Shape)
	}
	// CoTracker placed occluded points too: Magma's rules use every
	// position (tom.Tracks.ThroughOcclusion).
	out := &tom.Tracks{Points: make([][]som.Point, T), Visible: make([][]bool, T), ThroughOcclusion: true}
	for t := 0; t < T; t++ {
		out.Points[t] = make([]som.Point, N)
		out.Visible[t] = make([]bool, N)
		for n := 0; n < N; n++ {
			x, y := float64(tr.Data[(t*N+n)*2]), float64(tr.Data[(t*N+n)*2+1])
			if x != x || y != y {
				return nil, fmt.Errorf("trace step %d point %d is NaN", t, n)
			}
			out.Points[t][n] = som.Point{X: x * sx, Y: y * sy}
			out.Visible[t][n] = vis.Data[t*N+n] != 0
		}
	}
	return out, nil
}

// Sample builds a ToM (or SoM, caption, action) sample from row i.
func (s *MagmaToMSource) Sample(i int, rng *rand.Rand) (Sample, error) {
	if rng == nil {
		rng = rand.New(rand.NewPCG(uint64(i), 0))
	}
	it, err := s.Item(i)
	if err != nil {
		return Sample{}, err
	}
	fail := func(err error) (Sample, error) { return Sample{}, recordErr(it.Path, it.Row, "%v", err) }
	kind := pick(s.cum, magmaToMTaskOrder, rng)
	var smp Sample
	switch kind {
	case TaskCaption:
		smp, err = s.env.ChatSample([]tokenizer.Message{
			{Role: "user", Content: tokenizer.ImageToken + "\n" + PersonQuestion},
			{Role: "assistant", Content: it.Task}}, []imaging.Image{it.First})
	case TaskAction:
		ids, e := s.env.Actions.Encode(it.Action)
		if e != nil {
			return fail(e)
		}
		smp, err = s.env.ActionSample([]tokenizer.Message{{Role: "user", Content: tokenizer.ImageToken + "\n" + action.Prompt(it.Task)}},
			[]imaging.Image{it.First}, ids)
	default:
		smp, err = s.env.tracesSample(it.First, it.Tracks, kind, it.Task, s.opt.Robot, rng)
	}
	if err != nil {
		return fail(err)
	}
	smp.Source, smp.Index = it.Path, it.Row
	return smp, nil
}

// tracesSample is marksSample for pre-extracted tracks.
func (e *SampleBuilder) tracesSample(first imaging.Image, tr *tom.Tracks, kind, task string, robot bool, rng *rand.Rand) (Sample, error) {
	res, err := RunTraces(first, tr, task, robot, rng.Int64())
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
		{Role: "assistant", Content: a}}, []imaging.Image{res.Marked})
}

// RunTraces runs Magma's ToM selection on pre-extracted tracks
// (tom.RunTracks): OXE-ToM rows with the robot rules (data/openx_magma),
// Video-ToM rows with the demo's, as the maintainers say the published
// traces are meant to be used (microsoft/Magma issue #66: "the way
// tools/som_tom/demo.py does").
func RunTraces(first imaging.Image, tr *tom.Tracks, task string, robot bool, seed int64) (*tom.Result, error) {
	src := tom.SourceDemo
	if robot {
		src = tom.SourceRobot
	}
	cfg := tom.SourceConfig(src)
	cfg.Seed, cfg.Task = seed, task
	return tom.RunTracks(first, tr, cfg)
}

// readFileLimited reads an image file named by a row, refusing huge files.
func readFileLimited(p string) ([]byte, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if st.Size() > 256<<20 {
		return nil, fmt.Errorf("%s: %d bytes is too large for an image", p, st.Size())
	}
	return os.ReadFile(p)
}
