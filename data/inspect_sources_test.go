package data

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// Issue 31 point 5: every source type a recipe accepts is inspectable, the
// sources a default pretrain writes (synthetic-data/ui, video, robot,
// captions) open as they are, and "no usable records" says why.
func TestInspectEverySourceType(t *testing.T) {
	var recipe []string
	for k := range sourceTypes {
		recipe = append(recipe, k)
	}
	sort.Strings(recipe)
	inspectable := map[string]bool{}
	for _, k := range InspectTypes {
		inspectable[k] = true
	}
	for _, k := range recipe {
		if !inspectable[k] {
			t.Errorf("recipe source type %q is not inspectable (InspectTypes %v)", k, InspectTypes)
		}
	}

	dir := t.TempDir()
	if err := GenerateSynthetic(SyntheticConfig{Dir: dir, UI: 2, Videos: 2, RobotEpisodes: 2, Captions: 2}, 5); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path, typ string
		index     int
		want      string // in the conversation
	}{
		{"ui", "ui", 1, " Mark: "},
		{"ui/records.json", "ui", 0, ""},
		{"video", "video", 1, "What is the person doing in the image?"},
		{"video/clips.json", "video", 0, ""},
		{"robot", "robot", 3, "action tokens"},
		{"captions", "llava", 1, ""},
	} {
		in, err := Inspect(filepath.Join(dir, c.path), InspectOptions{Index: c.index})
		if err != nil {
			t.Fatalf("%s: %v", c.path, err)
		}
		var sb strings.Builder
		in.WriteText(&sb)
		if in.Type != c.typ || in.Records == 0 || len(in.Messages) < 2 || in.Image.W == 0 {
			t.Fatalf("%s: type %s (want %s), %d records, %d messages, image %dx%d\n%s", c.path, in.Type, c.typ, in.Records, len(in.Messages), in.Image.W, in.Image.H, sb.String())
		}
		if c.want != "" && !strings.Contains(sb.String(), c.want) {
			t.Errorf("%s: no %q in\n%s", c.path, c.want, sb.String())
		}
	}
	// The synthetic root and one episode folder point to the sources.
	if _, err := Inspect(dir, InspectOptions{}); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, SyntheticUIFile)+" (ui)") || !strings.Contains(err.Error(), filepath.Join(dir, "robot")+" (robot)") {
		t.Errorf("synthetic root: %v", err)
	}
	if _, err := Inspect(filepath.Join(dir, "robot", "episode_000"), InspectOptions{}); err == nil || !strings.Contains(err.Error(), "inspect "+filepath.Join(dir, "robot")) {
		t.Errorf("episode folder: %v", err)
	}

	// "no usable records": the first rejected records with file, index and reason.
	bad := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(bad, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	clips := write("clips.json", `[{"video": "", "task": "x"}, {"video": "a.mp4"}, {"video": "b.mp4", "task": "t", "start": 3, "end": 1}, {"video": "c.mp4", "task": "t", "start": -1}, {"video": ""}]`)
	write("robot/ep_a/episode.json", `{"actions": [[0,0,0,0,0,0,1]]}`)
	write("robot/ep_b/episode.json", `{"instruction": "go", "actions": [[0,0,0]]}`)
	for _, c := range []struct {
		path string
		o    InspectOptions
		want []string
	}{
		{clips, InspectOptions{}, []string{"no usable records", "5 rejected", clips + ": record 0: no \"video\"", "record 1: no \"task\" or \"caption\"", "record 2: bad start/end", "and 2 more"}},
		{filepath.Join(dir, SyntheticUIFile), InspectOptions{Type: "llava"}, []string{"no usable records", "2 rejected", "record 0: no \"conversations\""}},
		{filepath.Join(bad, "robot"), InspectOptions{}, []string{"no usable episodes", "2 rejected", "ep_a/episode.json: record 0: no \"instruction\"", "record 1: action 0 has 3 values, want 7"}},
		{write("empty.json", "[]"), InspectOptions{}, []string{"no usable records", "there are no records"}},
	} {
		_, err := Inspect(c.path, c.o)
		if err == nil {
			t.Fatalf("%s: inspected", c.path)
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q lacks %q", c.path, err, w)
			}
		}
	}
}
