package eval

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"os"
	"path/filepath"
	"strings"

	"gocv.io/x/gocv"
)

// SyntheticQAOptions sizes the synthetic QA fixtures.
type SyntheticQAOptions struct {
	// Items per benchmark (default 6; POPE writes this many per split).
	Items int
	// Bad adds the bad records the loop must report: a question without
	// annotation and a missing image (VQAv2), a missing image and a
	// question without question_id (TextVQA), a malformed JSON line (POPE),
	// a bad answer index (NextQA), a missing video (VideoMME), a step with
	// an unknown action (AITW).
	Bad bool
}

// QABenchmarks are the benchmarks WriteSyntheticQA writes, one folder each.
var QABenchmarks = []string{"vqav2", "textvqa", "pope", "nextqa", "videomme", "aitw"}

// WriteSyntheticQA writes small fixtures of every QA benchmark in its
// published layout under dir/<benchmark>/ (solid-colour images and short
// MJPG clips whose answers are their colours), for tests, demos and
// scripts/bench/eval_qa.sh.
func WriteSyntheticQA(dir string, opt SyntheticQAOptions) error {
	if opt.Items <= 0 {
		opt.Items = 6
	}
	w := &synthQA{dir: dir, n: opt.Items, bad: opt.Bad}
	for _, f := range []func() error{w.vqav2, w.textvqa, w.pope, w.nextqa, w.videomme, w.aitw} {
		if err := f(); err != nil {
			return err
		}
	}
	return nil
}

type synthQA struct {
	dir string
	n   int
	bad bool
}

func (s *synthQA) sub(name string, parts ...string) (string, error) {
	p := filepath.Join(append([]string{s.dir, name}, parts...)...)
	return p, os.MkdirAll(p, 0o755)
}

func synthColor(i int) (string, color.RGBA) {
	c := synthColors[i%len(synthColors)]
	return c.name, color.RGBA{c.c.R, c.c.G, c.c.B, 255}
}

// writeSolid writes a w x h image of colour c with a white square whose
// position depends on i (so frames and images differ).
func writeSolid(path string, w, h, i int, c color.RGBA) error {
	m := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(float64(c.B), float64(c.G), float64(c.R), 0), h, w, gocv.MatTypeCV8UC3)
	defer m.Close()
	x := (i * 7) % (w - 10)
	gocv.Rectangle(&m, image.Rect(x, h/3, x+10, h/3+10), color.RGBA{255, 255, 255, 255}, -1)
	if !gocv.IMWrite(path, m) {
		return fmt.Errorf("synthetic: writing %s failed", path)
	}
	return nil
}

func writeClip(path string, frames, i int, c color.RGBA) error {
	const w, h = 64, 48
	vw, err := gocv.VideoWriterFile(path, "MJPG", 10, w, h, true)
	if err != nil {
		return fmt.Errorf("synthetic: video %s: %w", path, err)
	}
	defer vw.Close()
	for f := 0; f < frames; f++ {
		m := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(float64(c.B), float64(c.G), float64(c.R), 0), h, w, gocv.MatTypeCV8UC3)
		x := (f*9 + i) % (w - 10)
		gocv.Rectangle(&m, image.Rect(x, 20, x+10, 30), color.RGBA{255, 255, 255, 255}, -1)
		err := vw.Write(m)
		m.Close()
		if err != nil {
			return fmt.Errorf("synthetic: video %s: %w", path, err)
		}
	}
	return nil
}

func writeJSONTo(path string, v any) error {
	data, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

func tenAnswers(main string, agree int, other string) []string {
	out := make([]string, 10)
	for i := range out {
		if i < agree {
			out[i] = main
		} else {
			out[i] = other
		}
	}
	return out
}

func (s *synthQA) vqav2() error {
	img, err := s.sub("vqav2", "val2014")
	if err != nil {
		return err
	}
	var qs, anns []map[string]any
	for i := 0; i < s.n; i++ {
		name, c := synthColor(i)
		imgID := 1000 + i
		if err := writeSolid(filepath.Join(img, fmt.Sprintf("COCO_val2014_%012d.jpg", imgID)), 64, 48, i, c); err != nil {
			return err
		}
		qid := imgID*10 + 1
		var q, atype string
		var answers []string
		switch i % 3 {
		case 0:
			q, atype, answers = "What color is the picture?", "other", tenAnswers(name, 10, name)
		case 1:
			q, atype, answers = "Is the picture "+name+"?", "yes/no", tenAnswers("yes", 9, "no")
		default:
			q, atype, answers = "How many white squares are there?", "number", tenAnswers("1", 3, "one square")
		}
		qs = append(qs, map[string]any{"image_id": imgID, "question": q, "question_id": qid})
		var as []map[string]any
		for k, a := range answers {
			as = append(as, map[string]any{"answer": a, "answer_confidence": "yes", "answer_id": k + 1})
		}
		anns = append(anns, map[string]any{"question_id": qid, "image_id": imgID, "answer_type": atype,
			"question_type": "what", "multiple_choice_answer": answers[0], "answers": as})
	}
	if s.bad {
		// a question without annotation, and one whose image is missing
		qs = append(qs, map[string]any{"image_id": 1000, "question": "Orphan?", "question_id": 999001})
		qs = append(qs, map[string]any{"image_id": 777, "question": "Where is my image?", "question_id": 7771})
		anns = append(anns, map[string]any{"question_id": 7771, "image_id": 777, "answer_type": "other",
			"answers": []map[string]any{{"answer": "gone", "answer_id": 1}}})
	}
	d := filepath.Join(s.dir, "vqav2")
	if err := writeJSONTo(filepath.Join(d, "v2_OpenEnded_mscoco_val2014_questions.json"),
		map[string]any{"task_type": "Open-Ended", "data_type": "mscoco", "data_subtype": "val2014", "questions": qs}); err != nil {
		return err
	}
	return writeJSONTo(filepath.Join(d, "v2_mscoco_val2014_annotations.json"),
		map[string]any{"data_type": "mscoco", "data_subtype": "val2014", "annotations": anns})
}

func (s *synthQA) textvqa() error {
	img, err := s.sub("textvqa", "train_images")
	if err != nil {
		return err
	}
	var data []map[string]any
	for i := 0; i < s.n; i++ {
		name, c := synthColor(i)
		id := fmt.Sprintf("%016x", 0xabc0+i)
		if err := writeSolid(filepath.Join(img, id+".jpg"), 64, 48, i, c); err != nil {
			return err
		}
		data = append(data, map[string]any{"question_id": 34602 + i, "question": "what colour is the sign?",
			"image_id": id, "answers": tenAnswers(strings.ToUpper(name), 4, name+" sign"), "image_classes": []string{"sign"}})
	}
	if s.bad {
		// a question whose image is missing, and one without question_id
		data = append(data, map[string]any{"question_id": 34999, "question": "what does the sign say?",
			"image_id": "missing000000000", "answers": tenAnswers("stop", 10, "stop")})
		data = append(data, map[string]any{"question": "who left out my id?", "image_id": fmt.Sprintf("%016x", 0xabc0),
			"answers": tenAnswers("nobody", 10, "nobody")})
	}
	return writeJSONTo(filepath.Join(s.dir, "textvqa", "TextVQA_0.5.1_val.json"), map[string]any{"dataset_type": "val", "dataset_name": "textvqa", "data": data})
}

func (s *synthQA) pope() error {
	img, err := s.sub("pope", "val2014")
	if err != nil {
		return err
	}
	for i := 0; i < s.n; i++ {
		_, c := synthColor(i)
		if err := writeSolid(filepath.Join(img, fmt.Sprintf("COCO_val2014_%012d.jpg", 2000+i)), 64, 48, i, c); err != nil {
			return err
		}
	}
	objs := []string{"dog", "car", "person", "chair"}
	for si, split := range POPESplits {
		var lines []string
		for i := 0; i < s.n; i++ {
			label := "yes"
			if (i+si)%2 == 1 {
				label = "no"
			}
			b, _ := json.Marshal(map[string]any{"question_id": i + 1, "image": fmt.Sprintf("COCO_val2014_%012d.jpg", 2000+i),
				"text": fmt.Sprintf("Is there a %s in the image?", objs[(i+si)%len(objs)]), "label": label})
			lines = append(lines, string(b))
		}
		if s.bad && split == "random" {
			lines = append(lines[:1], append([]string{`{"question_id": 99, "image": "x.jpg", "text": "broken`}, lines[1:]...)...)
		}
		if err := os.WriteFile(filepath.Join(s.dir, "pope", "coco_pope_"+split+".json"), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func (s *synthQA) nextqa() error {
	vd, err := s.sub("nextqa", "NExTVideo", "0000")
	if err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(s.dir, "nextqa", "val.csv"))
	if err != nil {
		return err
	}
	defer f.Close()
	cw := csv.NewWriter(f)
	cw.Write([]string{"video", "frame_count", "width", "height", "question", "answer", "qid", "type", "a0", "a1", "a2", "a3", "a4"})
	vmap := map[string]string{}
	types := []string{"CW", "TN", "DC", "CH", "TC", "DO"}
	for i := 0; i < s.n; i++ {
		name, c := synthColor(i)
		vid := fmt.Sprintf("%d", 4000000000+i)
		vmap[vid] = "0000/" + vid
		if err := writeClip(filepath.Join(vd, vid+".avi"), 12, i, c); err != nil {
			return err
		}
		opts := []string{"red", "blue", "green", "orange", "purple"}
		ans := 0
		for k, o := range opts {
			if o == name {
				ans = k
			}
		}
		cw.Write([]string{vid, "12", "64", "48", "what colour is the background", fmt.Sprint(ans), "1", types[i%len(types)],
			opts[0], opts[1], opts[2], opts[3], opts[4]})
	}
	if s.bad {
		cw.Write([]string{"4000000000", "12", "64", "48", "which option", "7", "2", "CW", "a", "b", "c", "d", "e"})
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return err
	}
	return writeJSONTo(filepath.Join(s.dir, "nextqa", "map_vid_vidorID.json"), vmap)
}

func (s *synthQA) videomme() error {
	vd, err := s.sub("videomme", "data")
	if err != nil {
		return err
	}
	var items []map[string]any
	durs := VideoMMEDurations
	for i := 0; i < s.n; i++ {
		name, c := synthColor(i)
		vid := fmt.Sprintf("vid%03d", i)
		if err := writeClip(filepath.Join(vd, vid+".avi"), 10, i, c); err != nil {
			return err
		}
		opts := []string{"A. red", "B. blue", "C. green", "D. something else"}
		ans := "D"
		for k, o := range opts[:3] {
			if strings.HasSuffix(o, name) {
				ans = ChoiceLetter(k)
			}
		}
		items = append(items, map[string]any{"video_id": fmt.Sprintf("%03d", i), "duration": durs[i%3], "domain": "Knowledge",
			"sub_category": "Humanity & History", "videoID": vid, "question_id": fmt.Sprintf("%03d-1", i), "task_type": "Counting Problem",
			"question": "What is the background colour?", "options": opts, "answer": ans})
	}
	if s.bad {
		items = append(items, map[string]any{"duration": "short", "videoID": "missing_clip", "question_id": "404-1",
			"question": "Is the video there?", "options": []string{"A. yes", "B. no", "C. maybe", "D. unknown"}, "answer": "B"})
	}
	return writeJSONTo(filepath.Join(s.dir, "videomme", "videomme.json"), items)
}

func (s *synthQA) aitw() error {
	img, err := s.sub("aitw", "aitw_images")
	if err != nil {
		return err
	}
	cats := map[string][][]map[string]any{}
	for i := 0; i < s.n; i++ {
		cat := AITWCategories[i%len(AITWCategories)]
		_, c := synthColor(i)
		var ep []map[string]any
		for k := 0; k < 3; k++ {
			fn := fmt.Sprintf("%s/%d_%d", cat, 100+i, k)
			if err := os.MkdirAll(filepath.Join(img, cat), 0o755); err != nil {
				return err
			}
			if err := writeSolid(filepath.Join(img, fn+".png"), 54, 96, i+k, c); err != nil {
				return err
			}
			st := map[string]any{"img_filename": fn, "goal": "open the settings app", "ep_id": fmt.Sprint(100 + i), "step": k,
				"annot_position": []float64{0.1, 0.1, 0.05, 0.3, 0.5, 0.2, 0.08, 0.6}, "touch": []float64{-1, -1}, "lift": []float64{-1, -1}, "type_text": ""}
			switch k {
			case 0:
				st["action_type_id"], st["action_type_text"] = 4, "click"
				st["touch"], st["lift"] = []float64{0.25, 0.12}, []float64{0.25, 0.12}
			case 1:
				st["action_type_id"], st["action_type_text"], st["type_text"] = 3, "type", "settings"
			default:
				st["action_type_id"], st["action_type_text"] = 4, "scroll down"
			}
			ep = append(ep, st)
		}
		if s.bad && i == 0 {
			ep = append(ep, map[string]any{"img_filename": fmt.Sprintf("%s/%d_9", cat, 100+i), "goal": "x", "action_type_id": 2, "action_type_text": "unused"})
		}
		cats[cat] = append(cats[cat], ep)
	}
	return writeJSONTo(filepath.Join(s.dir, "aitw", "aitw_data_test.json"), cats)
}
