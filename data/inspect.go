package data

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/magma-go/magma/data/hf"
	"github.com/magma-go/magma/data/rlds"
	"github.com/magma-go/magma/llm/tokenizer"
	"github.com/magma-go/magma/som"
	"github.com/magma-go/magma/tom"
	"github.com/magma-go/magma/vision/imaging"
)

// InspectOptions configure Inspect.
type InspectOptions struct {
	// Type is the source type (rlds, magma_som, magma_tom, llava); empty
	// detects it from the files.
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
	// Statistics are OpenVLA's dataset statistics (rlds).
	Statistics *DatasetStats `json:"statistics,omitempty"`
	// Item describes the rendered record (its decoded fields).
	Item map[string]any `json:"item"`
	// Messages is the sample's conversation (before the chat template).
	Messages []tokenizer.Message `json:"messages"`
	// Image is the sample's image with its marks and traces drawn.
	Image imaging.Image `json:"-"`
}

// DetectType guesses a source type from the files at path.
func DetectType(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil && !strings.ContainsAny(path, "*?[") {
		return "", fmt.Errorf("data: %w", err)
	}
	if err == nil && st.IsDir() {
		if _, err := rlds.Open(path); err == nil {
			return "rlds", nil
		}
	}
	if err == nil && !st.IsDir() {
		switch strings.ToLower(filepath.Ext(path)) {
		case ".json", ".jsonl":
			return "llava", nil
		}
	}
	files, err := globShards(path, hfShardExts...)
	if err != nil {
		return "", fmt.Errorf("data: %s: not an RLDS directory, JSON annotation file or Arrow/Parquet data: %w", path, err)
	}
	f, err := hf.Open(files[0])
	if err != nil {
		return "", err
	}
	defer f.Close()
	for _, name := range []string{"trace", "pred_tracks", "traces"} {
		if len(f.Schema.FieldIndices(name)) > 0 {
			return "magma_tom", nil
		}
	}
	if len(f.Schema.FieldIndices("conversations")) > 0 {
		return "magma_som", nil
	}
	return "", fmt.Errorf("data: %s: Arrow/Parquet columns %v are neither a SoM table (conversations) nor a ToM table (trace)", files[0], f.Schema.Fields())
}

// Inspect opens a source (no tokenizer needed), describes its schema and
// size, and renders record o.Index: its conversation and its image with
// the marks and traces drawn.
func Inspect(path string, o InspectOptions) (*Inspection, error) {
	if o.Type == "" {
		t, err := DetectType(path)
		if err != nil {
			return nil, err
		}
		o.Type = t
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
	}
	return nil, fmt.Errorf("data: inspect: unknown type %q (want rlds, magma_som, magma_tom, llava)", o.Type)
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
	at, err := NewActionTokenizer(LlamaBaseVocab)
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
	in.Messages = []tokenizer.Message{{Role: "user", Content: tokenizer.ImageToken + "\n" + ActionPrompt(instr)},
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
