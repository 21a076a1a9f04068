package eval

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Readers for the QA benchmarks in their published layouts (see README's
// benchmark table), each returning a QABench for RunQA.

// ShortAnswerPrompt is the short-answer instruction of Magma's (LLaVA's)
// VQAv2, TextVQA and POPE evaluation.
const ShortAnswerPrompt = "Answer the question using a single word or phrase."

// McPrompt is the multiple-choice instruction (NextQA).
const McPrompt = "Answer with the option's letter from the given choices directly."

// VideoMMEPrompt opens VideoMME questions (without subtitles).
const VideoMMEPrompt = "Select the best answer to the following multiple-choice question based on the video. Respond with only the letter (A, B, C, or D) of the correct option."

func itemWhere(path string, i int) string { return fmt.Sprintf("%s item %d", filepath.Base(path), i) }
func lineWhere(path string, i int) string { return fmt.Sprintf("%s line %d", filepath.Base(path), i) }

// jsonID renders a JSON id (number or string) as text.
func jsonID(raw json.RawMessage) string {
	s := strings.TrimSpace(string(raw))
	if u, err := strconv.Unquote(s); err == nil {
		return u
	}
	if s == "null" {
		return ""
	}
	return s
}

// checkDataDir makes a missing --data folder (or a file given as one) a
// clear error naming it, before any file in it is looked for.
func checkDataDir(what, dir string) error {
	if dir == "" {
		return fmt.Errorf("%s: no data folder given (--data)", what)
	}
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%s: data folder %s does not exist", what, dir)
	case err != nil:
		return fmt.Errorf("%s: data folder: %w", what, err)
	case !st.IsDir():
		return fmt.Errorf("%s: data folder %s is not a folder", what, dir)
	}
	return nil
}

func firstDir(cands ...string) string {
	for _, c := range cands {
		if st, err := os.Stat(c); err == nil && st.IsDir() {
			return c
		}
	}
	return cands[len(cands)-1]
}

// globOne finds exactly one file matching pattern in dir (containing filter
// when not "").
func globOne(dir, pattern, filter, what string) (string, error) {
	all, _ := filepath.Glob(filepath.Join(dir, pattern))
	var m []string
	for _, p := range all {
		if filter == "" || strings.Contains(filepath.Base(p), filter) {
			m = append(m, p)
		}
	}
	switch len(m) {
	case 0:
		if filter != "" {
			return "", fmt.Errorf("%s: no %s file with %q in its name in %s", what, pattern, filter, dir)
		}
		return "", fmt.Errorf("%s: no %s file in %s", what, pattern, dir)
	case 1:
		return m[0], nil
	}
	names := make([]string, len(m))
	for i, p := range m {
		names[i] = filepath.Base(p)
	}
	return "", fmt.Errorf("%s: %d %s files in %s (%s): pick one with --split", what, len(m), pattern, dir, strings.Join(names, ", "))
}

// ---- VQAv2 / TextVQA ----

type vqaGold struct {
	Answers    []string
	AnswerType string
}

type vqaTask struct {
	kind VQAKind
	t    VQATally
}

func (v *vqaTask) Add(it *QAItem, answer string, failed bool) (float64, string) {
	g, _ := it.Gold.(*vqaGold)
	if g == nil {
		v.t.Add(it.Category, 0)
		return 0, ""
	}
	s := 0.0
	if !failed {
		s = VQAScore(answer, g.Answers, v.kind)
	}
	v.t.Add(g.AnswerType, s)
	return s, strings.Join(g.Answers, "|")
}

func (v *vqaTask) Finish(r *QAResults) {
	r.Metrics["accuracy"] = v.t.Overall()
	for _, k := range v.t.Types() {
		tt := v.t.ByType[k]
		r.Tables[k] = map[string]float64{"accuracy": tt.Mean(), "n": float64(tt.N)}
	}
}

// LoadVQAv2 reads the official VQAv2 layout: a questions file
// (*questions*.json: {"data_subtype", "questions": [{"question_id",
// "image_id", "question"}]}) and an annotations file (*annotations*.json:
// {"annotations": [{"question_id", "answer_type", "answers": [{"answer"}]}]})
// in dir; images COCO_<data_subtype>_<image_id, 12 digits>.jpg in imageDir
// (default dir/<data_subtype>, dir/images or dir). split picks among several
// question files by name ("val2014", ...).
func LoadVQAv2(dir, split, imageDir string) (*QABench, error) {
	if err := checkDataDir("vqav2", dir); err != nil {
		return nil, err
	}
	qPath, err := globOne(dir, "*questions*.json", split, "vqav2")
	if err != nil {
		return nil, err
	}
	aPath, err := globOne(dir, "*annotations*.json", split, "vqav2")
	if err != nil {
		return nil, err
	}
	var qf struct {
		DataSubtype string            `json:"data_subtype"`
		Questions   []json.RawMessage `json:"questions"`
	}
	if err := readJSONFile(qPath, &qf); err != nil {
		return nil, err
	}
	var af struct {
		Annotations []json.RawMessage `json:"annotations"`
	}
	if err := readJSONFile(aPath, &af); err != nil {
		return nil, err
	}
	b := &QABench{Name: "vqav2", Files: []string{qPath, aPath}, NewTask: func() QATask { return &vqaTask{kind: VQAv2Scoring} },
		PredFormats: []PredFormat{PredVQAResults, PredLLaVA}, OfficialResults: true}
	golds := map[string]*vqaGold{}
	var annErrs []QAItem
	for i, raw := range af.Annotations {
		var a struct {
			QuestionID json.RawMessage `json:"question_id"`
			AnswerType string          `json:"answer_type"`
			Answers    []struct {
				Answer string `json:"answer"`
			} `json:"answers"`
		}
		err := json.Unmarshal(raw, &a)
		id := jsonID(a.QuestionID)
		if err == nil && id == "" {
			err = errors.New("annotation without question_id")
		}
		if err == nil && len(a.Answers) == 0 {
			err = fmt.Errorf("question_id %s: annotation without answers", id)
		}
		if err != nil {
			annErrs = append(annErrs, QAItem{ID: "annotation:" + strconv.Itoa(i), Where: itemWhere(aPath, i), Err: fmt.Errorf("bad annotation: %v", err)})
			continue
		}
		g := &vqaGold{AnswerType: a.AnswerType}
		for _, x := range a.Answers {
			g.Answers = append(g.Answers, x.Answer)
		}
		golds[id] = g
	}
	sub := qf.DataSubtype
	imgs := imageDir
	if imgs == "" {
		imgs = firstDir(filepath.Join(dir, sub), filepath.Join(dir, "images"), dir)
	}
	for i, raw := range qf.Questions {
		it := QAItem{Index: len(b.Items), Where: itemWhere(qPath, i)}
		var q struct {
			QuestionID json.RawMessage `json:"question_id"`
			ImageID    json.RawMessage `json:"image_id"`
			Question   string          `json:"question"`
		}
		if err := json.Unmarshal(raw, &q); err != nil {
			it.ID, it.Err = "question:"+strconv.Itoa(i), fmt.Errorf("malformed question: %v", err)
			b.Items = append(b.Items, it)
			continue
		}
		it.ID = jsonID(q.QuestionID)
		imgID, err := strconv.Atoi(jsonID(q.ImageID))
		switch {
		case it.ID == "":
			it.ID, it.Err = "question:"+strconv.Itoa(i), errors.New("question without question_id")
		case err != nil:
			it.Err = fmt.Errorf("question_id %s: image_id %s is not a number", it.ID, q.ImageID)
		case strings.TrimSpace(q.Question) == "":
			it.Err = fmt.Errorf("question_id %s: empty question", it.ID)
		}
		if g := golds[it.ID]; g != nil {
			it.Gold, it.Category = g, g.AnswerType
		} else if it.Err == nil {
			it.Err = fmt.Errorf("question_id %s has no annotation in %s", it.ID, filepath.Base(aPath))
		}
		if it.Err == nil {
			it.Images = []string{filepath.Join(imgs, fmt.Sprintf("COCO_%s_%012d.jpg", sub, imgID))}
			it.Prompt = q.Question + "\n" + ShortAnswerPrompt
		}
		b.Items = append(b.Items, it)
	}
	for _, e := range annErrs {
		e.Index = len(b.Items)
		b.Items = append(b.Items, e)
	}
	return b, nil
}

// LoadTextVQA reads TextVQA's TextVQA_0.5.1_<split>.json ({"data":
// [{"question_id", "question", "image_id", "answers": [10 strings]}]});
// images <image_id>.jpg in imageDir (default dir/train_images - the val
// images ship there -, dir/images or dir).
func LoadTextVQA(dir, split, imageDir string) (*QABench, error) {
	if err := checkDataDir("textvqa", dir); err != nil {
		return nil, err
	}
	if split == "" {
		split = "val"
	}
	path, err := globOne(dir, "TextVQA_*_"+split+".json", "", "textvqa")
	if err != nil {
		return nil, err
	}
	var f struct {
		Data []json.RawMessage `json:"data"`
	}
	if err := readJSONFile(path, &f); err != nil {
		return nil, err
	}
	imgs := imageDir
	if imgs == "" {
		imgs = firstDir(filepath.Join(dir, "train_images"), filepath.Join(dir, "images"), dir)
	}
	b := &QABench{Name: "textvqa", Files: []string{path}, NewTask: func() QATask { return &vqaTask{kind: TextVQAScoring} },
		PredFormats: []PredFormat{PredVQAResults, PredLLaVA}, OfficialResults: true}
	for i, raw := range f.Data {
		it := QAItem{Index: i, Where: itemWhere(path, i), ID: "item:" + strconv.Itoa(i)}
		var q struct {
			QuestionID json.RawMessage `json:"question_id"`
			ImageID    string          `json:"image_id"`
			Question   string          `json:"question"`
			Answers    []string        `json:"answers"`
		}
		if err := json.Unmarshal(raw, &q); err != nil {
			it.Err = fmt.Errorf("malformed question: %v", err)
		} else if id := jsonID(q.QuestionID); id == "" {
			it.Err = errors.New("question without question_id")
		} else {
			it.ID = id
			switch {
			case q.ImageID == "":
				it.Err = fmt.Errorf("question_id %s: no image_id", id)
			case len(q.Answers) == 0:
				it.Err = fmt.Errorf("question_id %s has no answers (a test split cannot be scored here)", id)
			}
			it.Gold = &vqaGold{Answers: q.Answers}
			it.Images = []string{filepath.Join(imgs, q.ImageID+".jpg")}
			it.Prompt = q.Question + "\n" + ShortAnswerPrompt
		}
		b.Items = append(b.Items, it)
	}
	return b, nil
}

// ---- POPE ----

// POPESplits are POPE's three negative-sampling settings.
var POPESplits = []string{"random", "popular", "adversarial"}

type popeTask struct{ bySplit map[string]*POPECounts }

func (p *popeTask) Add(it *QAItem, answer string, failed bool) (float64, string) {
	label, _ := it.Gold.(string)
	c := p.bySplit[it.Category]
	if c == nil {
		c = &POPECounts{}
		p.bySplit[it.Category] = c
	}
	pred := POPEAnswer(answer)
	if failed { // wrong: the opposite of the label
		pred = "yes"
		if label != "no" {
			pred = "no"
		}
	}
	c.Add(pred, label)
	if pred == label {
		return 1, label
	}
	return 0, label
}

func (p *popeTask) Finish(r *QAResults) {
	var sum POPEMetrics
	names := sortedKeys(p.bySplit)
	for _, k := range names {
		m := p.bySplit[k].Metrics()
		r.Tables[k] = map[string]float64{"accuracy": m.Accuracy, "precision": m.Precision, "recall": m.Recall,
			"f1": m.F1, "yes_ratio": m.YesRatio, "n": float64(m.N)}
		sum.Accuracy += m.Accuracy
		sum.Precision += m.Precision
		sum.Recall += m.Recall
		sum.F1 += m.F1
		sum.YesRatio += m.YesRatio
	}
	if n := float64(len(names)); n > 0 {
		r.Metrics["accuracy"], r.Metrics["precision"], r.Metrics["recall"] = sum.Accuracy/n, sum.Precision/n, sum.Recall/n
		r.Metrics["f1"], r.Metrics["yes_ratio"] = sum.F1/n, sum.YesRatio/n
	}
}

// LoadPOPE reads coco_pope_<split>.json (JSON lines {"question_id",
// "image", "text", "label": "yes"|"no"}) for each split found in dir (or
// the one given); images in imageDir (default dir/val2014, dir/images or
// dir). Results are per split; the headline numbers average the splits.
func LoadPOPE(dir, split, imageDir string) (*QABench, error) {
	if err := checkDataDir("pope", dir); err != nil {
		return nil, err
	}
	splits := POPESplits
	if split != "" {
		if !contains(POPESplits, split) {
			return nil, fmt.Errorf("pope: unknown split %q (want %s)", split, strings.Join(POPESplits, ", "))
		}
		splits = []string{split}
	}
	imgs := imageDir
	if imgs == "" {
		imgs = firstDir(filepath.Join(dir, "val2014"), filepath.Join(dir, "images"), dir)
	}
	b := &QABench{Name: "pope", NewTask: func() QATask { return &popeTask{bySplit: map[string]*POPECounts{}} },
		PredFormats: []PredFormat{PredPOPE, PredLLaVA}, ByOrder: true}
	for _, s := range splits {
		path := filepath.Join(dir, "coco_pope_"+s+".json")
		lines, err := readLinesFile(path)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) && split == "" {
				continue
			}
			return nil, err
		}
		b.Files = append(b.Files, path)
		for ln, line := range lines {
			if strings.TrimSpace(line) == "" {
				continue
			}
			it := QAItem{Index: len(b.Items), Where: lineWhere(path, ln+1), Category: s, ID: s + "/line:" + strconv.Itoa(ln+1)}
			var q struct {
				QuestionID json.RawMessage `json:"question_id"`
				Image      string          `json:"image"`
				Text       string          `json:"text"`
				Label      string          `json:"label"`
			}
			if err := json.Unmarshal([]byte(line), &q); err != nil {
				it.Err = fmt.Errorf("malformed JSON line: %v", err)
			} else {
				if id := jsonID(q.QuestionID); id != "" {
					it.ID = s + "/" + id
				}
				lbl := strings.ToLower(strings.TrimSpace(q.Label))
				switch {
				case lbl != "yes" && lbl != "no":
					it.Err = fmt.Errorf("label %q is not yes or no", q.Label)
				case q.Image == "":
					it.Err = errors.New("no image")
				case strings.TrimSpace(q.Text) == "":
					it.Err = errors.New("empty question")
				}
				it.Gold, it.Question = lbl, q.Text
				it.Images = []string{filepath.Join(imgs, q.Image)}
				it.Prompt = q.Text + "\n" + ShortAnswerPrompt
			}
			b.Items = append(b.Items, it)
		}
	}
	if len(b.Files) == 0 {
		return nil, fmt.Errorf("pope: no coco_pope_{%s}.json in %s", strings.Join(POPESplits, ","), dir)
	}
	return b, nil
}

// ---- multiple-choice video QA ----

type mcGold struct {
	Answer   string // letter
	NOptions int
}

type mcTask struct{ t MCTally }

func (m *mcTask) Add(it *QAItem, answer string, failed bool) (float64, string) {
	g, _ := it.Gold.(*mcGold)
	if g == nil {
		m.t.Add(it.Category, "", "?")
		return 0, ""
	}
	choice := ""
	if !failed {
		choice = ExtractChoice(answer, g.NOptions)
	}
	if m.t.Add(it.Category, choice, g.Answer) {
		return 1, g.Answer
	}
	return 0, g.Answer
}

func (m *mcTask) Finish(r *QAResults) {
	r.Metrics["accuracy"] = m.t.Accuracy()
	r.Metrics["unanswered"] = float64(m.t.Unanswered)
	for _, k := range sortedKeys(m.t.ByCat) {
		c := m.t.ByCat[k]
		r.Tables[k] = map[string]float64{"accuracy": c.Accuracy(), "n": float64(c.Total), "unanswered": float64(c.Unanswered)}
	}
}

func mcPrompt(question string, options []string) string {
	var sb strings.Builder
	sb.WriteString(question)
	for i, o := range options {
		fmt.Fprintf(&sb, "\n%s. %s", ChoiceLetter(i), o)
	}
	return sb.String()
}

// nextQAGroups maps NextQA's question types to its three reported groups.
var nextQAGroups = map[byte]string{'C': "causal", 'T': "temporal", 'D': "descriptive"}

// LoadNextQA reads NextQA's multiple-choice <split>.csv (default val; header
// video, frame_count, width, height, question, answer, qid, type, a0..a4;
// answer is the option index) and finds each video as
// <video dir>/<map_vid_vidorID.json[video]>.mp4 (the published NExTVideo
// layout) or <video dir>/<video>.mp4; video dir defaults to dir/NExTVideo,
// dir/videos or dir. Rows are grouped by question type: causal (C*),
// temporal (T*), descriptive (D*).
func LoadNextQA(dir, split, videoDir string, frames int) (*QABench, error) {
	if err := checkDataDir("nextqa", dir); err != nil {
		return nil, err
	}
	if split == "" {
		split = "val"
	}
	path := filepath.Join(dir, split+".csv")
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("nextqa: %w", err)
	}
	defer f.Close()
	vids := videoDir
	if vids == "" {
		vids = firstDir(filepath.Join(dir, "NExTVideo"), filepath.Join(dir, "videos"), dir)
	}
	vmap := map[string]string{}
	if data, err := os.ReadFile(filepath.Join(dir, "map_vid_vidorID.json")); err == nil {
		if err := json.Unmarshal(data, &vmap); err != nil {
			return nil, fmt.Errorf("nextqa: map_vid_vidorID.json: %w", err)
		}
	}
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("nextqa: %s header: %w", path, err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.TrimSpace(h)] = i
	}
	for _, need := range []string{"video", "question", "answer", "qid", "type", "a0", "a1", "a2", "a3", "a4"} {
		if _, ok := col[need]; !ok {
			return nil, fmt.Errorf("nextqa: %s: no %q column (header %v)", path, need, header)
		}
	}
	b := &QABench{Name: "nextqa", Files: []string{path}, NewTask: func() QATask { return &mcTask{} }, PredFormats: []PredFormat{PredNextQA}}
	for row := 2; ; row++ {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		it := QAItem{Index: len(b.Items), Where: lineWhere(path, row), ID: "row:" + strconv.Itoa(row), Frames: frames}
		if err != nil {
			it.Err = fmt.Errorf("malformed CSV row: %v", err)
			b.Items = append(b.Items, it)
			continue
		}
		get := func(k string) string {
			if i := col[k]; i < len(rec) {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		video, qid := get("video"), get("qid")
		it.ID = video + "_" + qid
		var opts []string
		for i := 0; i < 5; i++ {
			opts = append(opts, get("a"+strconv.Itoa(i)))
		}
		ans, aerr := strconv.Atoi(get("answer"))
		typ := get("type")
		if typ != "" {
			if g, ok := nextQAGroups[typ[0]]; ok {
				it.Category = g
			} else {
				it.Category = typ
			}
		}
		switch {
		case video == "":
			it.Err = errors.New("no video")
		case aerr != nil || ans < 0 || ans > 4:
			it.Err = fmt.Errorf("answer %q is not an option index 0..4", get("answer"))
		case get("question") == "":
			it.Err = errors.New("empty question")
		}
		it.Gold = &mcGold{Answer: ChoiceLetter(ans), NOptions: 5}
		name := video
		if m, ok := vmap[video]; ok {
			name = m
		}
		it.Video = resolveVideo(filepath.Join(vids, name))
		it.Prompt = mcPrompt(get("question"), opts) + "\n" + McPrompt
		b.Items = append(b.Items, it)
	}
	return b, nil
}

// VideoMMEDurations are VideoMME's duration groups.
var VideoMMEDurations = []string{"short", "medium", "long"}

// LoadVideoMME reads VideoMME's question table as JSON (an array or JSON
// lines, e.g. the published parquet written out with pandas' to_json
// (orient="records")): {"videoID", "duration": short|medium|long,
// "question_id", "question", "options": ["A. ...", ...], "answer": "A", ...}
// from dir/videomme.json(l) or the single *.json(l) file in dir; videos
// <videoID>.mp4 in videoDir (default dir/data, dir/videos or dir). split
// keeps one duration.
func LoadVideoMME(dir, split, videoDir string, frames int) (*QABench, error) {
	if split != "" && !contains(VideoMMEDurations, split) {
		return nil, fmt.Errorf("videomme: unknown split %q (want %s)", split, strings.Join(VideoMMEDurations, ", "))
	}
	if err := checkDataDir("videomme", dir); err != nil {
		return nil, err
	}
	path, err := globOne(dir, "*.json*", "", "videomme")
	if err != nil {
		return nil, err
	}
	items, itemErrs, err := readJSONItems(path)
	if err != nil {
		return nil, fmt.Errorf("videomme: %w", err)
	}
	vids := videoDir
	if vids == "" {
		vids = firstDir(filepath.Join(dir, "data"), filepath.Join(dir, "videos"), dir)
	}
	b := &QABench{Name: "videomme", Files: []string{path}, NewTask: func() QATask { return &mcTask{} }, PredFormats: []PredFormat{PredVideoMME}}
	for i, raw := range items {
		it := QAItem{Index: len(b.Items), Where: itemWhere(path, i), ID: "item:" + strconv.Itoa(i), Frames: frames}
		if itemErrs[i] != nil {
			it.Err = itemErrs[i]
			b.Items = append(b.Items, it)
			continue
		}
		var q struct {
			VideoID    string          `json:"videoID"`
			Duration   string          `json:"duration"`
			QuestionID json.RawMessage `json:"question_id"`
			Question   string          `json:"question"`
			Options    []string        `json:"options"`
			Answer     string          `json:"answer"`
		}
		if err := json.Unmarshal(raw, &q); err != nil {
			it.Err = fmt.Errorf("malformed item: %v", err)
			b.Items = append(b.Items, it)
			continue
		}
		if split != "" && q.Duration != split {
			continue
		}
		if id := jsonID(q.QuestionID); id != "" {
			it.ID = id
		}
		it.Category = q.Duration
		ans := strings.TrimSpace(q.Answer)
		switch {
		case q.VideoID == "":
			it.Err = errors.New("no videoID")
		case len(q.Options) != 4:
			it.Err = fmt.Errorf("%d options, want 4", len(q.Options))
		case len(ans) != 1 || ans[0] < 'A' || ans[0] > 'D':
			it.Err = fmt.Errorf("answer %q is not A-D", q.Answer)
		case !contains(VideoMMEDurations, q.Duration):
			it.Err = fmt.Errorf("duration %q is not short, medium or long", q.Duration)
		}
		it.Gold = &mcGold{Answer: ans, NOptions: 4}
		it.Video = resolveVideo(filepath.Join(vids, q.VideoID))
		it.Prompt = VideoMMEPrompt + "\n" + q.Question + "\n" + strings.Join(q.Options, "\n") + "\nThe best answer is:"
		b.Items = append(b.Items, it)
	}
	return b, nil
}

// ---- AITW ----

type aitwGold struct {
	Ref   AITWAction
	Boxes [][4]float64
}

type aitwTask struct{ t AITWTally }

func (a *aitwTask) Add(it *QAItem, answer string, failed bool) (float64, string) {
	g, _ := it.Gold.(*aitwGold)
	if g == nil || failed {
		var ref AITWAction
		if g != nil {
			ref = g.Ref
		}
		a.t.Add(AITWStep{Category: it.Category, Ref: ref, Err: true})
		return 0, ""
	}
	pred, err := ParseAITWAction(answer)
	s := ScoreAITWStep(it.Category, pred, err, g.Ref, g.Boxes)
	a.t.Add(s)
	gold := fmt.Sprintf("type %d", g.Ref.Type)
	if s.Match {
		return 1, gold
	}
	return 0, gold
}

func (a *aitwTask) Finish(r *QAResults) {
	macro, macroText, micro := a.t.Overall()
	r.Metrics["action_acc"], r.Metrics["action_text_acc"], r.Metrics["action_acc_micro"] = macro, macroText, micro
	for _, k := range a.t.Categories() {
		c := a.t.ByCat[k].Category()
		r.Tables[k] = map[string]float64{"action_acc": c.ActionAcc, "action_text_acc": c.ActionTextAcc,
			"type_acc": c.TypeAcc, "text_acc": c.TextAcc, "click_acc": c.ClickAcc, "scroll_acc": c.ScrollAcc,
			"scroll_dir_acc": c.ScrollDirAcc, "steps": float64(c.Counts.Steps), "unparsed": float64(c.Counts.Unparsed)}
	}
}

// AITWPrompt is SeeClick's AITW prompt (previous: the last four actions in
// its answer format, "Step0: {...}. Step1: ...").
func AITWPrompt(goal, previous string) string {
	return "Please generate the next move according to the ui screenshot, instruction and previous actions. Instruction: " +
		goal + ". Previous actions: " + previous
}

type aitwStepJSON struct {
	ImgFilename    string    `json:"img_filename"`
	Goal           string    `json:"goal"`
	ActionTypeID   *int      `json:"action_type_id"`
	ActionTypeText string    `json:"action_type_text"`
	Touch          []float64 `json:"touch"`
	Lift           []float64 `json:"lift"`
	TypeText       string    `json:"type_text"`
	AnnotPosition  []float64 `json:"annot_position"`
	EpID           string    `json:"ep_id"`
}

// aitwRef converts a ground-truth step to matching form and to SeeClick's
// answer format (for the previous-actions prompt).
func aitwRef(s aitwStepJSON) (AITWAction, string, error) {
	if s.ActionTypeID == nil {
		return AITWAction{}, "", errors.New("no action_type_id")
	}
	id := *s.ActionTypeID
	switch id {
	case AITWDualPoint:
		if s.ActionTypeText == "click" {
			if len(s.Touch) != 2 || len(s.Lift) != 2 {
				return AITWAction{}, "", errors.New("click without touch and lift [x, y]")
			}
			a := AITWAction{Type: id, Touch: [2]float64{s.Touch[1], s.Touch[0]}, Lift: [2]float64{s.Lift[1], s.Lift[0]}}
			return a, fmt.Sprintf(`{"action_type": 4, "click_point": (%.2f,%.2f)}`, (s.Touch[0]+s.Lift[0])/2, (s.Touch[1]+s.Lift[1])/2), nil
		}
		a, ok := AITWScroll(s.ActionTypeText)
		if !ok {
			return AITWAction{}, "", fmt.Errorf("action_type 4 with action_type_text %q (want click or scroll up/down/left/right)", s.ActionTypeText)
		}
		for sid, name := range aitwScrollIDs {
			if name == s.ActionTypeText {
				return a, fmt.Sprintf(`{"action_type": %d}`, sid), nil
			}
		}
	case AITWType:
		return AITWAction{Type: id, Text: s.TypeText}, fmt.Sprintf(`{"action_type": 3, "typed_text": "%s"}`, s.TypeText), nil
	case AITWPressBack, AITWPressHome, AITWPressEnter, AITWTaskComplete, AITWImpossible:
		return AITWAction{Type: id}, fmt.Sprintf(`{"action_type": %d}`, id), nil
	}
	return AITWAction{}, "", fmt.Errorf("unknown action_type_id %d", id)
}

// LoadAITW reads SeeClick's AITW test file aitw_data_test.json ({category:
// [episode: [step: {"img_filename", "goal", "action_type_id",
// "action_type_text", "touch": [x,y], "lift": [x,y], "type_text",
// "annot_position": [y,x,h,w, ...] screen fractions, "ep_id"}]]}) with
// screenshots <img_filename>.png in imageDir (default dir/aitw_images,
// dir/images or dir). split keeps one category.
func LoadAITW(dir, split, imageDir string) (*QABench, error) {
	if split != "" && !contains(AITWCategories, split) {
		return nil, fmt.Errorf("aitw: unknown split %q (want %s)", split, strings.Join(AITWCategories, ", "))
	}
	if err := checkDataDir("aitw", dir); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "aitw_data_test.json")
	var cats map[string][]json.RawMessage
	if err := readJSONFile(path, &cats); err != nil {
		return nil, err
	}
	imgs := imageDir
	if imgs == "" {
		imgs = firstDir(filepath.Join(dir, "aitw_images"), filepath.Join(dir, "images"), dir)
	}
	b := &QABench{Name: "aitw", Files: []string{path}, NewTask: func() QATask { return &aitwTask{} }}
	names := make([]string, 0, len(cats))
	for k := range cats {
		names = append(names, k)
	}
	sort.SliceStable(names, func(i, j int) bool { return catOrder(names[i]) < catOrder(names[j]) })
	for _, cat := range names {
		if split != "" && cat != split {
			continue
		}
		for ei, rawEp := range cats[cat] {
			var steps []json.RawMessage
			if err := json.Unmarshal(rawEp, &steps); err != nil {
				b.Items = append(b.Items, QAItem{Index: len(b.Items), Category: cat, ID: fmt.Sprintf("%s/ep%d", cat, ei),
					Where: fmt.Sprintf("%s %s episode %d", filepath.Base(path), cat, ei), Err: fmt.Errorf("malformed episode: %v", err)})
				continue
			}
			var prev []string
			for si, rawStep := range steps {
				it := QAItem{Index: len(b.Items), Category: cat, ID: fmt.Sprintf("%s/ep%d/step%d", cat, ei, si),
					Where: fmt.Sprintf("%s %s episode %d step %d", filepath.Base(path), cat, ei, si)}
				var s aitwStepJSON
				if err := json.Unmarshal(rawStep, &s); err != nil {
					it.Err = fmt.Errorf("malformed step: %v", err)
					b.Items = append(b.Items, it)
					continue
				}
				ref, fmtd, err := aitwRef(s)
				if err == nil && len(s.AnnotPosition)%4 != 0 {
					err = fmt.Errorf("annot_position has %d numbers, not a multiple of 4", len(s.AnnotPosition))
				}
				if err == nil && s.ImgFilename == "" {
					err = errors.New("no img_filename")
				}
				g := &aitwGold{Ref: ref}
				for k := 0; k+3 < len(s.AnnotPosition); k += 4 {
					p := s.AnnotPosition
					g.Boxes = append(g.Boxes, [4]float64{p[k], p[k+1], p[k+2], p[k+3]})
				}
				it.Gold, it.Err = g, err
				if s.EpID != "" {
					it.ID = fmt.Sprintf("%s/%s/step%d", cat, s.EpID, si)
				}
				var ps strings.Builder
				start := max(0, len(prev)-4)
				for k, a := range prev[start:] {
					fmt.Fprintf(&ps, "Step%d: %s. ", k, a)
				}
				it.Prompt = AITWPrompt(s.Goal, ps.String())
				it.Images = []string{filepath.Join(imgs, s.ImgFilename+".png")}
				prev = append(prev, fmtd)
				b.Items = append(b.Items, it)
			}
		}
	}
	return b, nil
}

func catOrder(c string) int {
	for i, k := range AITWCategories {
		if k == c {
			return i
		}
	}
	return len(AITWCategories)
}

// ---- small file helpers ----

// videoExts are the containers tried after the published .mp4.
var videoExts = []string{".mp4", ".avi", ".mkv", ".webm", ".mov"}

// resolveVideo finds base.mp4 (or another container, or a folder of frames
// named base); a video found nowhere keeps the .mp4 name, and the run
// reports it missing.
func resolveVideo(base string) string {
	for _, e := range videoExts {
		if st, err := os.Stat(base + e); err == nil && !st.IsDir() {
			return base + e
		}
	}
	if st, err := os.Stat(base); err == nil && st.IsDir() {
		return base
	}
	return base + ".mp4"
}

func readJSONFile(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func readLinesFile(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return strings.Split(strings.TrimRight(string(data), "\n"), "\n"), nil
}
