package data

import (
	"encoding/json"
	"fmt"
	"github.com/magma-go/magma/llm/tokenizer"
	"github.com/magma-go/magma/model/action"
	"image"
	"image/color"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gocv.io/x/gocv"

	"github.com/magma-go/magma/som"
)

func TestUIReader(t *testing.T) {
	env := testEnv(t)
	dir := t.TempDir()
	writePNG(t, filepath.Join(dir, "shots/a.png"), 100, 80, color.RGBA{230, 230, 230, 255})
	ann := filepath.Join(dir, "seeclick.json")
	writeFile(t, ann, `[
 {"img_filename": "a.png", "elements": [{"instruction": "search", "bbox": [0.1, 0.1, 0.3, 0.2]}, {"instruction": "login", "bbox": [0.5, 0.5, 0.9, 0.7]}]},
 {"img_filename": "missing.png", "elements": [{"instruction": "x", "bbox": [0.1, 0.1, 0.2, 0.2]}]},
 {"img_filename": "a.png", "elements": [{"text": "far away", "bbox": [500, 500, 600, 600]}]},
 {"img_filename": "a.png", "elements": [{"bbox": [1, 1, 5, 5]}]},
 {"img_filename": "a.png", "elements": [{"instruction": "three numbers", "bbox": [1, 1, 5]}]},
 {"img_filename": "a.png", "instruction": "ScreenSpot style", "bbox": [10, 10, 40, 30]}
]`)
	src, err := NewUISource(env, "ui", ann, UIOptions{ImageFolder: filepath.Join(dir, "shots"), MaxTurns: 1})
	if err != nil {
		t.Fatal(err)
	}
	if src.Len() != 4 || env.Skipped() != 2 {
		t.Fatalf("len %d skipped %d", src.Len(), env.Skipped())
	}
	// every subtask shows up with its answer format; only answers supervised
	// SeeClick's fractions "(0.42,0.17)" plus Magma's " Mark: {id}".
	pointRE := regexp.MustCompile(`^\([01]\.\d\d,[01]\.\d\d\) Mark: [12]<\|eot_id\|>$`)
	boxRE := regexp.MustCompile(`^\([01]\.\d\d,[01]\.\d\d,[01]\.\d\d,[01]\.\d\d\) Mark: [12]<\|eot_id\|>$`)
	seen := map[string]int{}
	for k := 0; k < 40; k++ {
		s, err := src.Sample(0, rand.New(rand.NewPCG(uint64(k), 9)))
		if err != nil {
			t.Fatal(err)
		}
		ans := supervisedText(t, env.Tokenizer, s)
		switch {
		case pointRE.MatchString(ans):
			seen[Text2Point]++
		case boxRE.MatchString(ans):
			seen[Text2BBox]++
		case ans == "search<|eot_id|>" || ans == "login<|eot_id|>":
			seen["text"]++
		default:
			t.Fatalf("unexpected answer %q", ans)
		}
		if len(s.Images) != 1 || s.Index != 0 {
			t.Fatal("sample shape")
		}
	}
	if seen[Text2Point] == 0 || seen[Text2BBox] == 0 || seen["text"] == 0 {
		t.Errorf("subtasks seen %v", seen)
	}
	// subtask mix 0.4/0.4/0.1/0.1 over 4000 draws
	counts := map[string]int{}
	rng := rand.New(rand.NewPCG(1, 1))
	for k := 0; k < 4000; k++ {
		counts[src.subtask(rng)]++
	}
	for name, p := range DefaultUISubtasks {
		if got := float64(counts[name]) / 4000; math.Abs(got-p) > 4*math.Sqrt(p*(1-p)/4000) {
			t.Errorf("%s share %.3f want %.1f", name, got, p)
		}
	}
	// the text_2_point answer is the mark's box centre as fractions
	for k := 0; ; k++ {
		s, _ := src.Sample(0, rand.New(rand.NewPCG(uint64(k), 9)))
		ans := supervisedText(t, env.Tokenizer, s)
		if !pointRE.MatchString(ans) {
			continue
		}
		id, _ := som.ParseMarkID(ans)
		q, _ := env.Tokenizer.Decode(s.IDs, false)
		want := map[string]string{"search": som.UIGroundingAnswer(20, 12, 100, 80, id), "login": som.UIGroundingAnswer(70, 48, 100, 80, id)}
		ok := false
		for txt, a := range want {
			ok = ok || (strings.Contains(q, som.UIAgentPrompt(txt)) && ans == a+"<|eot_id|>")
		}
		if !ok {
			t.Fatalf("answer %q for prompt %q", ans, q)
		}
		break
	}
	for idx, reason := range map[int]string{1: "missing.png", 2: "outside"} {
		_, err := src.Sample(idx, nil)
		re, ok := AsRecordError(err)
		if !ok || re.Path != ann || re.Index != idx || !strings.Contains(re.Reason, reason) {
			t.Errorf("record %d: %v", idx, err)
		}
	}
	if s, err := src.Sample(3, nil); err != nil || len(s.Images) != 1 {
		t.Errorf("ScreenSpot-style record: %v", err)
	}
	env.OnError = OnErrorStop
	_, err = NewUISource(env, "ui", ann, UIOptions{})
	if re, ok := AsRecordError(err); !ok || re.Index != 3 || !strings.Contains(re.Reason, "instruction") {
		t.Errorf("stop: %v", err)
	}
	if _, err := NewUISource(env, "ui", ann, UIOptions{BBoxFormat: "yxyx"}); err == nil {
		t.Error("bad bbox_format accepted")
	}
}

// writeClip writes an MJPG clip of a square moving right over a grey texture.
func writeClip(t testing.TB, path string, frames, size int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	vw, err := gocv.VideoWriterFile(path, "MJPG", 10, size, size, true)
	if err != nil {
		t.Fatal(err)
	}
	defer vw.Close()
	bg := texture(size, size, rand.New(rand.NewPCG(1, 2)))
	defer bg.Close()
	for i := 0; i < frames; i++ {
		f := bg.Clone()
		gocv.Rectangle(&f, image.Rect(8+2*i, 20, 20+2*i, 32), color.RGBA{0, 0, 255, 255}, -1)
		if err := vw.Write(f); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
}

func TestVideoReader(t *testing.T) {
	env := testEnv(t)
	dir := t.TempDir()
	writeClip(t, filepath.Join(dir, "clips/push.avi"), 12, 64)
	man := filepath.Join(dir, "clips.jsonl")
	writeFile(t, man, `{"video": "push.avi", "task": "push the red square right", "caption": "A red square slides right.", "start": 0.1, "end": 1.2}
{"video": "gone.avi", "task": "x"}
{"video": "push.avi", "task": "x", "start_frame": 2, "end_frame": 5}
{"video": "push.avi", "task": "x", "start": 3, "end": 1}
{"video": "push.avi"}
`)
	zero, one := 0.0, 1.0
	src, err := NewVideoSource(env, "video", man, VideoOptions{VideoFolder: filepath.Join(dir, "clips"), Steps: 6, Grid: 8, SkipToM: &zero})
	if err != nil {
		t.Fatal(err)
	}
	if src.Len() != 3 || env.Skipped() != 2 {
		t.Fatalf("len %d skipped %d", src.Len(), env.Skipped())
	}
	s, err := src.Sample(0, rand.New(rand.NewPCG(3, 4)))
	if err != nil {
		t.Fatal(err)
	}
	ans := supervisedText(t, env.Tokenizer, s)
	full, _ := env.Tokenizer.Decode(s.IDs, false)
	// data/conversations.py: one item, caption turn then ToM (or SoM) turn,
	// each question after f"{image_placeholder}\n" with image_placeholder "<image>\n".
	if !strings.Contains(full, "<|start_header_id|>user<|end_header_id|>\n\n<image>\n\nWhat is the person doing in the image?<|eot_id|>") ||
		!strings.HasPrefix(ans, "A red square slides right.<|eot_id|>") {
		t.Fatalf("caption turn:\n%s", full)
	}
	if !strings.Contains(full, "<image>\n\nThe image is split into 256x256 grids, and labeled with numeric marks") || len(s.Images) != 2 {
		t.Fatalf("second turn (%d images):\n%s", len(s.Images), full)
	}
	if strings.Contains(ans, "should be moved") && !strings.Contains(full, "The person is doing: push the red square right. To finish the task, how to move the numerical marks in the image for the next ") {
		t.Fatalf("ToM question:\n%s", full)
	}
	for i, px := range s.Images {
		if px.NumCrops() != 1 {
			t.Errorf("image %d has %d crops, want num_crops 1", i, px.NumCrops())
		}
	}
	t.Logf("answers: %q", ans)
	_, err = src.Sample(1, rand.New(rand.NewPCG(1, 1)))
	if re, ok := AsRecordError(err); !ok || re.Path != man || !strings.Contains(re.Reason, "gone.avi") {
		t.Errorf("record 1: %v", err)
	}
	// skip_tom 1: the caption turn alone.
	src2, _ := NewVideoSource(env, "video", man, VideoOptions{VideoFolder: filepath.Join(dir, "clips"), Steps: 6, Grid: 8, SkipToM: &one})
	s, err = src2.Sample(0, rand.New(rand.NewPCG(5, 4)))
	if err != nil {
		t.Fatal(err)
	}
	if a := supervisedText(t, env.Tokenizer, s); a != "A red square slides right.<|eot_id|>" || len(s.Images) != 1 {
		t.Errorf("caption-only sample %q with %d images", a, len(s.Images))
	}
	bad := 2.0
	if _, err := NewVideoSource(env, "video", man, VideoOptions{SkipToM: &bad}); err == nil {
		t.Error("skip_tom 2 accepted")
	}
}

func writeEpisode(t testing.TB, dir, instruction string, actions any, frames int) {
	t.Helper()
	for i := 0; i < frames; i++ {
		writePNG(t, filepath.Join(dir, fmt.Sprintf("%06d.png", i)), 32, 32, color.RGBA{uint8(10 * i), 100, 50, 255})
	}
	b, _ := json.Marshal(map[string]any{"instruction": instruction, "actions": actions})
	writeFile(t, filepath.Join(dir, EpisodeFile), string(b))
}

func TestRobotReader(t *testing.T) {
	env := testEnv(t)
	dir := t.TempDir()
	var acts [][]float64
	for i := 0; i < 5; i++ {
		acts = append(acts, []float64{0.1 * float64(i), -0.2, 0.05 * float64(i*i), 0, 0.01, -0.01, float64(2*(i%2) - 1)})
	}
	writeEpisode(t, filepath.Join(dir, "ep0"), "Pick up the bowl.", acts, 5)
	writeEpisode(t, filepath.Join(dir, "ep1"), "Open the drawer", acts[:3], 3)
	writeEpisode(t, filepath.Join(dir, "ep2"), "short action", [][]float64{{1, 2, 3}}, 1)
	writeEpisode(t, filepath.Join(dir, "ep3"), "frames missing", acts, 2)
	writeEpisode(t, filepath.Join(dir, "ep4"), "nan", acts[:1], 1)
	// Python's json.dump writes NaN bare
	writeFile(t, filepath.Join(dir, "ep4", EpisodeFile), `{"instruction": "nan", "actions": [[0, 0, NaN, 0, 0, 0, 1]]}`)
	zero := 0.0
	src, err := NewRobotSource(env, "robot", dir, RobotOptions{TomRatio: &zero})
	if err != nil {
		t.Fatal(err)
	}
	if src.Len() != 8 || env.Skipped() != 3 {
		t.Fatalf("len %d skipped %d", src.Len(), env.Skipped())
	}
	st := src.Statistics()
	if st.NumTrajectories != 2 || st.NumTransitions != 8 || st.Action.Mask[6] || !st.Action.Mask[0] {
		t.Fatalf("stats %+v", st)
	}
	// q01/q99 of dim 0 over {0,.1,.2,.3,.4,0,.1,.2}: numpy linear interpolation
	if math.Abs(st.Action.Q01[0]-0) > 1e-12 || math.Abs(st.Action.Q99[0]-0.393) > 1e-9 {
		t.Fatalf("q01 %v q99 %v", st.Action.Q01[0], st.Action.Q99[0])
	}
	s, err := src.Sample(2, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	var sup []int
	for i, l := range s.Labels {
		if l != tokenizer.IgnoreIndex {
			sup = append(sup, s.IDs[i])
		}
	}
	norm, _ := st.Action.Normalize(acts[2])
	want, _ := env.Actions.Encode(norm)
	want = append(want, env.Tokenizer.EOS())
	if fmt.Sprint(sup) != fmt.Sprint(want) {
		t.Fatalf("supervised %v, want %v", sup, want)
	}
	for _, id := range sup[:7] {
		if !env.Actions.IsActionID(id) {
			t.Fatalf("non-action id %d", id)
		}
	}
	full, _ := env.Tokenizer.Decode(s.IDs, false)
	// data/openx_magma/data_utils.py keeps the instruction as written:
	// f"{image_placeholder}\nWhat action should the robot take to {gpt_response}?"
	if !strings.Contains(full, "<image>\n\nWhat action should the robot take to Pick up the bowl.?") || s.Images[0].NumCrops() != 1 {
		t.Fatalf("prompt %q", full)
	}
	env.OnError = OnErrorStop
	_, err = NewRobotSource(env, "robot", dir, RobotOptions{})
	re, ok := AsRecordError(err)
	if !ok || re.Index != 2 || re.Path != filepath.Join(dir, "ep2", EpisodeFile) || !strings.Contains(re.Reason, "3 values, want 7") {
		t.Fatalf("stop: %v", err)
	}
	os.RemoveAll(filepath.Join(dir, "ep2"))
	os.RemoveAll(filepath.Join(dir, "ep3"))
	_, err = NewRobotSource(env, "robot", dir, RobotOptions{})
	if re, ok := AsRecordError(err); !ok || !strings.Contains(re.Reason, "not a finite number") {
		t.Fatalf("NaN: %v", err)
	}
	// statistics round trip
	p := filepath.Join(dir, "dataset_statistics.json")
	if err := action.WriteDatasetStatistics(p, map[string]*action.DatasetStats{"robot": &st}); err != nil {
		t.Fatal(err)
	}
	back, err := readRobotStatistics(p, "", "robot")
	if err != nil || fmt.Sprint(back) != fmt.Sprint(st) {
		t.Fatalf("statistics round trip: %v", err)
	}
}

func TestRobotToMSamples(t *testing.T) {
	env := testEnv(t)
	dir := t.TempDir()
	c := SyntheticConfig{Dir: dir, UI: 1, Videos: 1, RobotEpisodes: 2, Captions: 1}
	if err := GenerateSynthetic(c, 3); err != nil {
		t.Fatal(err)
	}
	one := 1.0
	src, err := NewRobotSource(env, "robot", filepath.Join(dir, SyntheticRobotDir), RobotOptions{TomRatio: &one, Steps: 6, Grid: 8})
	if err != nil {
		t.Fatal(err)
	}
	s, err := src.Sample(0, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	full, _ := env.Tokenizer.Decode(s.IDs, false)
	// One item: the action turn, then the ToM (or SoM) turn.
	if !strings.Contains(full, "What action should the robot take to") || len(s.Images) != 2 ||
		!strings.Contains(full, "The image is split into 256x256 grids, and labeled with numeric marks") {
		t.Fatalf("robot sample (%d images): %q", len(s.Images), full)
	}
	if strings.Contains(full, "should be moved") && !strings.Contains(full, "labeled with numeric marks: [") {
		t.Fatalf("robot ToM question: %q", full)
	}
	nAct := 0
	for i, l := range s.Labels {
		if l != tokenizer.IgnoreIndex && env.Actions.IsActionID(s.IDs[i]) {
			nAct++
		}
	}
	if nAct != 7 {
		t.Errorf("%d supervised action tokens, want 7", nAct)
	}
}
