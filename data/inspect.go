package data

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/magma-go/magma/data/hf"
	"github.com/magma-go/magma/data/rlds"
	"github.com/magma-go/magma/llm/tokenizer"
	"github.com/magma-go/magma/model/action"
	"github.com/magma-go/magma/som"
	"github.com/magma-go/magma/tom"
	"github.com/magma-go/magma/vision/imaging"
)

// InspectOptions configure Inspect.
type InspectOptions struct {
	// Type is the source type (InspectTypes: llava, ui, video, robot, rlds,
	// magma_tom, magma_som); empty detects it from the files.
	Type string
	// Index is the record rendered as the sample.
	Index int
	// Seed drives the ToM selection of the rendered sample.
	Seed uint64
	// Per-type options, as in the recipe YAML.
	VideoFolder, ImageFolder string
	TraceSize                []float64
	Robot                    bool
	Dataset, Split           string
	// BBoxFormat of ui records (auto when empty).
	BBoxFormat string
	// Steps is the ToM horizon of video and robot sources (0: their
	// default, 16).
	Steps int
	// Tracker and TrackerWeights choose the point tracker of video and
	// robot sources (tom.NewTracker; default CoTracker3 when weights are
	// given, else LK with a warning).
	Tracker, TrackerWeights string
}

// Inspection is what `magma data inspect` prints.
type Inspection struct {
	Type    string   `json:"type"`
	Path    string   `json:"path"`
	Format  string   `json:"format"`
	Shards  int      `json:"shards"`
	Schema  []string `json:"schema"`
	Records int      `json:"records"`
	// Episodes counts the RLDS episodes (rlds; 0 otherwise).
	Episodes int `json:"episodes,omitempty"`
	// Bad lists the records the reader rejected while indexing.
	Bad []string `json:"bad,omitempty"`
	// Tracker is the point tracker of a video or robot sample (lk,
	// cotracker) and Warnings what its choice warned about.
	Tracker  string   `json:"tracker,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
	// Statistics are OpenVLA's dataset statistics (rlds).
	Statistics *action.DatasetStats `json:"statistics,omitempty"`
	// Item describes the rendered record (its decoded fields).
	Item map[string]any `json:"item"`
	// Messages is the sample's conversation (before the chat template).
	Messages []tokenizer.Message `json:"messages"`
	// Image is the sample's image with its marks and traces drawn.
	Image imaging.Image `json:"-"`
}

// DetectType guesses a source type from the files at path.
func DetectType(path string) (string, error) {
	t, _, err := detectType(path)
	return t, err
}

// detectType guesses a source type and the path to open for it: a folder
// holding one annotation file (the synthetic ui/, video/ and captions/
// folders) is inspected through that file.
func detectType(path string) (string, string, error) {
	st, err := os.Stat(path)
	if err != nil && !strings.ContainsAny(path, "*?[") {
		return "", "", fmt.Errorf("data: %w", err)
	}
	if err == nil && st.IsDir() {
		if _, err := rlds.Open(path); err == nil {
			return "rlds", path, nil
		}
		if _, err := os.Stat(filepath.Join(path, syntheticStamp)); err == nil {
			return "", "", syntheticRootError(path)
		}
		if _, err := os.Stat(filepath.Join(path, EpisodeFile)); err == nil {
			return "", "", fmt.Errorf("data: %s is one robot episode (it holds %s); a robot source is the folder of episode folders: inspect %s", path, EpisodeFile, filepath.Dir(path))
		}
		ents, err := os.ReadDir(path)
		if err != nil {
			return "", "", fmt.Errorf("data: %w", err)
		}
		var annotations []string
		for _, e := range ents {
			if e.IsDir() {
				if _, err := os.Stat(filepath.Join(path, e.Name(), EpisodeFile)); err == nil {
					return "robot", path, nil
				}
				continue
			}
			switch strings.ToLower(filepath.Ext(e.Name())) {
			case ".json", ".jsonl":
				annotations = append(annotations, filepath.Join(path, e.Name()))
			}
		}
		// Arrow/Parquet shards win (a saved Hugging Face dataset has
		// dataset_info.json and state.json beside them).
		if _, err := globShards(path, hfShardExts...); err != nil {
			switch len(annotations) {
			case 1:
				t, err := sniffJSONType(annotations[0])
				return t, annotations[0], err
			case 0:
			default:
				return "", "", fmt.Errorf("data: %s holds %d annotation files (%s): inspect one of them", path, len(annotations), strings.Join(annotations, ", "))
			}
		}
	}
	if err == nil && !st.IsDir() {
		switch strings.ToLower(filepath.Ext(path)) {
		case ".json", ".jsonl":
			t, err := sniffJSONType(path)
			return t, path, err
		}
	}
	files, err := globShards(path, hfShardExts...)
	if err != nil {
		return "", "", fmt.Errorf("data: %s: not an RLDS directory, a folder of robot episodes, a JSON annotation file (llava, ui, video) or Arrow/Parquet data: %w", path, err)
	}
	f, err := hf.Open(files[0])
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	for _, name := range []string{"trace", "pred_tracks", "traces"} {
		if len(f.Schema.FieldIndices(name)) > 0 {
			return "magma_tom", path, nil
		}
	}
	if len(f.Schema.FieldIndices("conversations")) > 0 {
		return "magma_som", path, nil
	}
	return "", "", fmt.Errorf("data: %s: Arrow/Parquet columns %v are neither a SoM table (conversations) nor a ToM table (trace)", files[0], f.Schema.Fields())
}

// syntheticRootError points from a generated synthetic-data folder to its
// sources.
func syntheticRootError(dir string) error {
	var parts []string
	for _, s := range []struct{ path, typ string }{{SyntheticUIFile, "ui"}, {SyntheticVideoFile, "video"}, {SyntheticRobotDir, "robot"}, {SyntheticCaptionFile, "llava"}} {
		if _, err := os.Stat(filepath.Join(dir, s.path)); err == nil {
			parts = append(parts, fmt.Sprintf("%s (%s)", filepath.Join(dir, s.path), s.typ))
		}
	}
	return fmt.Errorf("data: %s is a generated synthetic-data folder, not one source; inspect its sources: %s", dir, strings.Join(parts, ", "))
}

// sniffJSONType reads the first record of an annotation file (JSON array
// or JSON lines) and names the reader its keys belong to: conversations
// (llava), video (video), elements, img_filename, img_path or a top-level
// bbox (ui); anything else is read as llava, whose errors say what is
// missing.
func sniffJSONType(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("data: %w", err)
	}
	defer f.Close()
	dec := json.NewDecoder(bufio.NewReader(f))
	var first map[string]json.RawMessage
	tok, err := dec.Token()
	if err != nil {
		return "llava", nil // empty or broken: the reader reports it
	}
	if d, ok := tok.(json.Delim); ok && d == '[' {
		if !dec.More() || dec.Decode(&first) != nil {
			return "llava", nil
		}
	} else {
		// JSON lines: decode the first line again as a whole object.
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return "", fmt.Errorf("data: %w", err)
		}
		if json.NewDecoder(bufio.NewReader(f)).Decode(&first) != nil {
			return "llava", nil
		}
	}
	has := func(k string) bool { _, ok := first[k]; return ok }
	switch {
	case has("conversations"):
		return "llava", nil
	case has("video"):
		return "video", nil
	case has("elements"), has("img_filename"), has("img_path"), has("bbox"):
		return "ui", nil
	}
	return "llava", nil
}

// Inspect opens a source (no tokenizer needed), describes its schema and
// size, and renders record o.Index: its conversation and its image with
// the marks and traces drawn.
func Inspect(path string, o InspectOptions) (*Inspection, error) {
	if o.Type == "" {
		t, p, err := detectType(path)
		if err != nil {
			return nil, err
		}
		o.Type, path = t, p
	}
	in := &Inspection{Type: o.Type, Path: path}
	env := &SampleBuilder{OnError: OnErrorSkip}
	env.Logf = func(format string, args ...any) { in.Bad = append(in.Bad, fmt.Sprintf(format, args...)) }
	rng := rand.New(rand.NewPCG(o.Seed, uint64(o.Index)))
	switch o.Type {
	case "rlds":
		return in, inspectRLDS(in, env, path, o)
	case "magma_som":
		src, err := NewMagmaSoMSource(env, "inspect", path, MagmaSoMOptions{ImageFolder: o.ImageFolder})
		if err != nil {
			return nil, err
		}
		defer src.Close()
		describeTable(in, src.t)
		it, err := src.Item(o.Index)
		if err != nil {
			return in, err
		}
		in.Item = map[string]any{"shard": it.Path, "row": it.Row, "image_bytes": len(it.Image)}
		in.Messages = it.Messages
		in.Image, err = imaging.DecodeImageBytes(it.Image)
		return in, err
	case "magma_tom":
		src, err := NewMagmaToMSource(env, "inspect", path, MagmaToMOptions{VideoFolder: o.VideoFolder, ImageFolder: o.ImageFolder,
			TraceSize: o.TraceSize, Robot: o.Robot, Tasks: map[string]float64{TaskToM: 1}})
		if err != nil {
			return nil, err
		}
		defer src.Close()
		describeTable(in, src.t)
		it, err := src.Item(o.Index)
		if err != nil {
			return in, err
		}
		in.Item = map[string]any{"shard": it.Path, "row": it.Row, "task": it.Task, "video": it.Video, "frame_index": it.Frame,
			"trace_shape": it.TraceShape, "frame_size": []int{it.First.W, it.First.H}}
		if it.Action != nil {
			in.Item["action"] = it.Action
		}
		res, err := RunTraces(it.First, it.Tracks, it.Task, o.Robot, rng.Int64())
		if err != nil {
			return in, fmt.Errorf("%s row %d: %w", it.Path, it.Row, err)
		}
		q, a := res.ToMQuestion, res.ToMText
		if a == "" {
			q, a = som.SoMQuestion, res.SoMText
		}
		in.Messages = []tokenizer.Message{{Role: "user", Content: tokenizer.ImageToken + "\n" + q}, {Role: "assistant", Content: a}}
		in.Item["camera_motion"] = res.CameraMotion
		in.Item["marks"] = len(res.Marks)
		in.Image, err = tom.DrawTraces(res.Marked, res.Marks)
		return in, err
	case "llava":
		src, err := NewLLaVASource(env, "inspect", path, o.ImageFolder)
		if err != nil {
			return nil, err
		}
		in.Format, in.Shards, in.Records = "JSON", 1, src.Len()
		in.Schema = []string{"image: file name(s) under image_folder (optional)", "conversations: list of {from: human|gpt, value}"}
		if o.Index < 0 || o.Index >= src.Len() {
			return in, fmt.Errorf("index %d outside [0,%d)", o.Index, src.Len())
		}
		rec := src.recs[o.Index]
		in.Item = map[string]any{"record": rec.index, "images": rec.images}
		in.Messages = rec.msgs
		if len(rec.images) > 0 {
			p, err := resolve(src.folder, rec.images[0])
			if err != nil {
				return in, err
			}
			in.Image, err = imaging.DecodeImage(p)
			return in, err
		}
		return in, nil
	case "ui", "video", "robot":
		if o.Type != "ui" {
			t, warn, err := tom.NewTracker(o.Tracker, o.TrackerWeights)
			if err != nil {
				return nil, fmt.Errorf("data: inspect: %w", err)
			}
			if warn != "" {
				in.Warnings = append(in.Warnings, warn)
			}
			in.Tracker = tom.TrackerName(t)
			env.useTracker(o.Tracker, o.TrackerWeights, t)
		}
		f := map[string]func(*Inspection, *SampleBuilder, string, InspectOptions, *rand.Rand) error{
			"ui": inspectUI, "video": inspectVideo, "robot": inspectRobot}[o.Type]
		if err := f(in, env, path, o, rng); err != nil {
			if in.Records == 0 { // the source did not open
				return nil, err
			}
			return in, err
		}
		return in, nil
	}
	return nil, fmt.Errorf("data: inspect: unknown type %q (want %s)", o.Type, strings.Join(InspectTypes, ", "))
}

func inspectUI(in *Inspection, env *SampleBuilder, path string, o InspectOptions, rng *rand.Rand) error {
	src, err := NewUISource(env, "inspect", path, UIOptions{ImageFolder: o.ImageFolder, BBoxFormat: o.BBoxFormat})
	if err != nil {
		return err
	}
	in.Format, in.Shards, in.Records = "JSON", 1, src.Len()
	in.Schema = []string{"img_filename (or image, img_path): screenshot under image_folder",
		"elements: list of {instruction (or text), bbox} (" + src.opt.BBoxFormat + ")"}
	if o.Index < 0 || o.Index >= src.Len() {
		return fmt.Errorf("index %d outside [0,%d)", o.Index, src.Len())
	}
	rec := src.recs[o.Index]
	in.Item = map[string]any{"record": rec.index, "image": rec.image, "elements": len(rec.elements)}
	msgs, img, err := src.conversation(o.Index, rng)
	if err != nil {
		return err
	}
	in.Messages, in.Image = msgs, img
	return nil
}

func inspectVideo(in *Inspection, env *SampleBuilder, path string, o InspectOptions, rng *rand.Rand) error {
	always := 0.0 // the ToM turn is always shown
	src, err := NewVideoSource(env, "inspect", path, VideoOptions{VideoFolder: o.VideoFolder, Steps: o.Steps, SkipToM: &always})
	if err != nil {
		return err
	}
	in.Format, in.Shards, in.Records = "JSON", 1, src.Len()
	in.Schema = []string{"video: clip file or frame folder under video_folder", "task / caption: text",
		"start, end (seconds) or start_frame, end_frame (optional)"}
	if o.Index < 0 || o.Index >= src.Len() {
		return fmt.Errorf("index %d outside [0,%d)", o.Index, src.Len())
	}
	rec := src.recs[o.Index]
	in.Item = map[string]any{"record": rec.index, "video": rec.video, "task": rec.task, "caption": rec.caption, "steps": src.opt.Steps}
	msgs, images, err := src.conversation(o.Index, rng)
	if err != nil {
		return err
	}
	in.Messages, in.Image = msgs, images[len(images)-1]
	in.Item["images"] = len(images)
	return nil
}

func inspectRobot(in *Inspection, env *SampleBuilder, path string, o InspectOptions, rng *rand.Rand) error {
	at, err := action.NewTokenizer(action.LlamaBaseVocab)
	if err != nil {
		return err
	}
	env.Actions = at
	src, err := NewRobotSource(env, "inspect", path, RobotOptions{Steps: o.Steps})
	if err != nil {
		return err
	}
	in.Format, in.Shards, in.Records = "robot episode folders ("+EpisodeFile+" + frames)", len(src.eps), src.Len()
	in.Schema = []string{"<episode>/" + EpisodeFile + ": instruction, actions [[dx,dy,dz,droll,dpitch,dyaw,gripper], ...], frames (optional)",
		"<episode>/*.png|jpg: frame t observed before action t"}
	st := src.Statistics()
	in.Statistics = &st
	if o.Index < 0 || o.Index >= src.Len() {
		return fmt.Errorf("index %d outside [0,%d)", o.Index, src.Len())
	}
	ref := src.steps[o.Index]
	ep := src.eps[ref.ep]
	a := ep.actions[ref.t]
	norm, err := st.Action.Normalize(a)
	if err != nil {
		return err
	}
	ids, err := at.Encode(norm)
	if err != nil {
		return err
	}
	in.Item = map[string]any{"episode": ep.dir, "episode_index": ep.index, "step": ref.t, "frame": ep.frames[ref.t], "instruction": ep.instruction,
		"action": a, "normalized_action": norm, "action_token_ids": ids, "episodes": len(src.eps), "steps": src.opt.Steps}
	msgs, images, err := src.conversation(o.Index, rng)
	if err != nil {
		return err
	}
	for k := range msgs {
		if msgs[k].IDs != nil {
			msgs[k].Content = fmt.Sprintf("<%d action tokens %v>", len(msgs[k].IDs), msgs[k].IDs)
			msgs[k].IDs = nil
		}
	}
	in.Messages, in.Image = msgs, images[len(images)-1]
	in.Item["images"] = len(images)
	return nil
}

func describeTable(in *Inspection, t *hfTable) {
	in.Records, in.Shards = t.rows, len(t.files)
	f := t.files[0]
	in.Format = string(f.Format)
	for _, fl := range f.Schema.Fields() {
		in.Schema = append(in.Schema, fmt.Sprintf("%s: %s", fl.Name, fl.Type))
	}
	if md := f.Schema.Metadata(); md.FindKey("huggingface") >= 0 {
		var hfm struct {
			Info struct {
				Features map[string]json.RawMessage `json:"features"`
			} `json:"info"`
		}
		if json.Unmarshal([]byte(md.Values()[md.FindKey("huggingface")]), &hfm) == nil {
			var keys []string
			for k := range hfm.Info.Features {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				in.Schema = append(in.Schema, fmt.Sprintf("datasets feature %s: %s", k, hfm.Info.Features[k]))
			}
		}
	}
}

func inspectRLDS(in *Inspection, env *SampleBuilder, path string, o InspectOptions) error {
	src, err := NewRLDSSource(env, "inspect", path, RLDSOptions{Dataset: o.Dataset, Split: o.Split, Proprio: true})
	if err != nil {
		return err
	}
	defer src.Close()
	ds := src.Dataset()
	in.Format = "RLDS (TFRecord tf.train.Example episodes)"
	in.Shards = len(src.shards)
	in.Records = src.Len()
	in.Episodes = len(src.eps)
	for _, f := range ds.Features {
		kind := "episode"
		if f.Step {
			kind = "step"
		}
		s := fmt.Sprintf("%s: %s %s %v (%s)", f.Key, f.Class, f.DType, f.Shape, kind)
		if f.Encoding != "" && f.Encoding != "none" {
			s += " " + f.Encoding
		}
		in.Schema = append(in.Schema, s)
	}
	st := src.Statistics()
	in.Statistics = &st
	a, instr, img, err := src.Step(o.Index)
	if err != nil {
		return err
	}
	norm, err := st.Action.Normalize(a)
	if err != nil {
		return err
	}
	at, err := action.NewTokenizer(action.LlamaBaseVocab)
	if err != nil {
		return err
	}
	ids, err := at.Encode(norm)
	if err != nil {
		return err
	}
	ref := src.steps[o.Index]
	ep := src.eps[ref.ep]
	in.Item = map[string]any{"dataset": src.opt.Dataset, "builder": ds.Info.Name, "shard": src.shards[ep.shard], "episode_record": ep.record,
		"step": ep.steps[ref.t], "instruction": instr, "action": a, "normalized_action": norm, "action_token_ids": ids,
		"image_key": src.cfg.ImageKey(), "episodes": len(src.eps)}
	in.Messages = []tokenizer.Message{{Role: "user", Content: tokenizer.ImageToken + "\n" + action.Prompt(instr)},
		{Role: "assistant", Content: fmt.Sprintf("<7 action tokens %v>", ids)}}
	in.Image = img
	return nil
}

// WriteText prints an inspection for people.
func (in *Inspection) WriteText(w *strings.Builder) {
	fmt.Fprintf(w, "source type: %s\npath: %s\nformat: %s, %d shard(s)\n", in.Type, in.Path, in.Format, in.Shards)
	fmt.Fprintf(w, "schema:\n")
	for _, s := range in.Schema {
		fmt.Fprintf(w, "  %s\n", s)
	}
	if in.Episodes > 0 {
		fmt.Fprintf(w, "records: %d (steps)\nepisodes: %d\n", in.Records, in.Episodes)
	} else {
		fmt.Fprintf(w, "records: %d\n", in.Records)
	}
	if in.Tracker != "" {
		fmt.Fprintf(w, "tracker: %s\n", in.Tracker)
	}
	for _, s := range in.Warnings {
		fmt.Fprintf(w, "warning: %s\n", s)
	}
	if len(in.Bad) > 0 {
		fmt.Fprintf(w, "bad records (%d):\n", len(in.Bad))
		for _, b := range in.Bad {
			fmt.Fprintf(w, "  %s\n", b)
		}
	}
	if in.Statistics != nil {
		b, _ := json.Marshal(in.Statistics)
		fmt.Fprintf(w, "statistics (OpenVLA dataset_statistics.json entry, over every step; proprio as with load_proprio where the dataset has a mapping, else zeros):\n  %s\n", b)
	}
	if in.Item != nil {
		var keys []string
		for k := range in.Item {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprintf(w, "sample:\n")
		for _, k := range keys {
			fmt.Fprintf(w, "  %s: %v\n", k, in.Item[k])
		}
	}
	for _, m := range in.Messages {
		fmt.Fprintf(w, "--- %s ---\n%s\n", m.Role, m.Content)
	}
}

var errNoImage = errors.New("the sample has no image")

// WritePNG saves the sample's image (with marks/traces drawn).
func (in *Inspection) WritePNG(path string) error {
	if in.Image.W == 0 {
		return errNoImage
	}
	return som.WriteImage(path, in.Image)
}
