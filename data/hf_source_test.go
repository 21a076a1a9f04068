package data

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"github.com/magma-go/magma/llm/tokenizer"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Fixtures: data/hf/testdata, written by scripts/data/make_hf_fixtures.mjs
// with npm apache-arrow and parquet-wasm.
const hfTestdata = "hf/testdata"

func hfGolden(t *testing.T) map[string][]map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(hfTestdata, "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g map[string][]map[string]any
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

func supervised(t *testing.T, env *SampleBuilder, s Sample) string {
	t.Helper()
	var ids []int
	for _, l := range s.Labels {
		if l != tokenizer.IgnoreIndex {
			ids = append(ids, l)
		}
	}
	txt, err := env.Tokenizer.Decode(ids, true)
	if err != nil {
		t.Fatal(err)
	}
	return txt
}

func TestMagmaSoMSources(t *testing.T) {
	env := testEnv(t)
	g := hfGolden(t)
	for name, dir := range map[string]string{"mind2web_som": "mind2web_som", "aitw_som": "aitw_som"} {
		t.Run(name, func(t *testing.T) {
			src, err := NewMagmaSoMSource(env, name, filepath.Join(hfTestdata, dir), MagmaSoMOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			want := g[name]
			if src.Len() != len(want) {
				t.Fatalf("len %d, want %d", src.Len(), len(want))
			}
			for i, w := range want {
				it, err := src.Item(i)
				if err != nil {
					t.Fatal(err)
				}
				wc := w["conversations"].([]any)
				if len(it.Messages) != len(wc) {
					t.Fatalf("row %d: %d messages", i, len(it.Messages))
				}
				for j, m := range it.Messages {
					wm := wc[j].(map[string]any)
					role := map[string]string{"human": "user", "gpt": "assistant"}[wm["from"].(string)]
					if m.Role != role || m.Content != wm["value"] {
						t.Fatalf("row %d turn %d: %+v, want %v", i, j, m, wm)
					}
				}
				if sha256hex(it.Image) != w["image_sha256"] {
					t.Fatalf("row %d: image differs", i)
				}
			}
			smp, err := src.Sample(1, nil)
			if err != nil {
				t.Fatal(err)
			}
			ans := want[1]["conversations"].([]any)[1].(map[string]any)["value"].(string)
			if got := supervised(t, env, smp); strings.TrimSpace(got) != ans {
				t.Fatalf("supervised %q, want %q", got, ans)
			}
			if len(smp.Images) != 1 {
				t.Fatalf("%d images", len(smp.Images))
			}
		})
	}
}

func TestMagmaToMVideo(t *testing.T) {
	env := testEnv(t)
	g := hfGolden(t)["video_tom"]
	src, err := NewMagmaToMSource(env, "video_tom", filepath.Join(hfTestdata, "video_tom"), MagmaToMOptions{
		VideoFolder: filepath.Join(hfTestdata, "video_tom", "videos"), Tasks: map[string]float64{TaskToM: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if src.Len() != len(g) {
		t.Fatalf("len %d, want %d", src.Len(), len(g))
	}
	for i, w := range g {
		it, err := src.Item(i)
		if i == 7 { // the sthv2 row written with a [T,N,3] trace
			re, ok := AsRecordError(err)
			if !ok || !strings.HasSuffix(re.Path, "shard_2.arrow") || re.Index != 3 || !strings.Contains(re.Reason, "trace has shape [16 9 3]") {
				t.Fatalf("wrong-shape trace: %v", err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if it.Task != w["task"] || it.Video != w["video_name"] || it.Frame != int(w["frame_index"].(float64)) {
			t.Fatalf("row %d: %+v", i, it)
		}
		wt := w["trace"].([]any)
		wv := w["visibility"].([]any)
		N := len(it.Tracks.Points[0])
		for k := range wt {
			tt, n, c := k/(N*2), (k/2)%N, k%2
			p := it.Tracks.Points[tt][n]
			v := p.X
			if c == 1 {
				v = p.Y
			}
			if math.Abs(v-wt[k].(float64)) > 1e-5 {
				t.Fatalf("row %d trace[%d] = %v, want %v", i, k, v, wt[k])
			}
		}
		for k := range wv {
			if it.Tracks.Visible[k/N][k%N] != wv[k].(bool) {
				t.Fatalf("row %d visibility[%d]", i, k)
			}
		}
		if it.First.W != 64 || it.First.H != 48 {
			t.Fatalf("frame %dx%d", it.First.W, it.First.H)
		}
	}
	// Row 1's moving points travel 2.8 px per step: foreground under the
	// demo's 2 px rule (the rules the maintainers give for these traces).
	smp, err := src.Sample(1, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	full, _ := env.Tokenizer.Decode(smp.IDs, false)
	if !strings.Contains(full, "The person is doing: C opens the fridge door") || !strings.Contains(supervised(t, env, smp), "should be moved") {
		t.Fatalf("ToM sample: %q", full)
	}
	// Row 0's travel 1.68 px per step, under 2 px: no ToM answer, the SoM
	// question instead (Magma's fallback).
	smp, err = src.Sample(0, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	if a := supervised(t, env, smp); strings.Contains(a, "should be moved") || !strings.HasPrefix(a, "Mark ") {
		t.Fatalf("row 0 (slow traces): %q", a)
	}
	// the wrong-shape row is a RecordError from Sample too (the stream skips or stops on it)
	if _, err := src.Sample(7, nil); err == nil {
		t.Fatal("wrong-shape trace accepted")
	}
}

func TestMagmaToMRobot(t *testing.T) {
	env := testEnv(t)
	g := hfGolden(t)["oxe_tom"]
	src, err := NewMagmaToMSource(env, "oxe_tom", filepath.Join(hfTestdata, "oxe_tom", "bridge_orig", "shard_*.arrow"), MagmaToMOptions{
		Robot: true, TraceSize: []float64{256, 256}})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if src.Len() != len(g) {
		t.Fatalf("len %d", src.Len())
	}
	it, err := src.Item(2)
	if err != nil {
		t.Fatal(err)
	}
	wt := g[2]["trace"].([]any)
	if math.Abs(it.Tracks.Points[0][1].X-wt[2].(float64)*64/256) > 1e-5 || it.First.W != 64 {
		t.Fatalf("trace not rescaled from 256 to 64: %v vs %v", it.Tracks.Points[0][1].X, wt[2])
	}
	wa := g[2]["action"].([]any)
	for d := range wa {
		if math.Abs(it.Action[d]-wa[d].(float64)) > 1e-6 {
			t.Fatalf("action %v, want %v", it.Action, wa)
		}
	}
	src.cum = []float64{0, 0, 0, 1} // action only
	smp, err := src.Sample(2, nil)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := env.Actions.Encode(it.Action)
	var sup []int
	for _, l := range smp.Labels {
		if l != tokenizer.IgnoreIndex {
			sup = append(sup, l)
		}
	}
	for d := range want {
		if sup[d] != want[d] {
			t.Fatalf("action tokens %v, want %v", sup, want)
		}
	}
	src.cum = []float64{1, 1, 1, 1} // ToM only
	smp, err = src.Sample(2, rand.New(rand.NewPCG(3, 4)))
	if err != nil {
		t.Fatal(err)
	}
	full, _ := env.Tokenizer.Decode(smp.IDs, false)
	if !strings.Contains(full, "The robot is doing: put the spoon in the pot") {
		t.Fatalf("robot ToM: %q", full)
	}
}

func TestMagmaToMBadShards(t *testing.T) {
	vf := filepath.Join(hfTestdata, "video_tom", "videos")
	env := testEnv(t)
	src, err := NewMagmaToMSource(env, "trunc", filepath.Join(hfTestdata, "bad", "truncated"), MagmaToMOptions{VideoFolder: vf})
	if err != nil {
		t.Fatal(err)
	}
	if src.Len() != 1 || env.Skipped() != 1 {
		t.Fatalf("len %d skipped %d", src.Len(), env.Skipped())
	}
	env.OnError = OnErrorStop
	_, err = NewMagmaToMSource(env, "trunc", filepath.Join(hfTestdata, "bad", "truncated"), MagmaToMOptions{VideoFolder: vf})
	re, ok := AsRecordError(err)
	if !ok || re.Index != 1 || !strings.HasSuffix(re.Path, "shard_1.arrow") || !strings.Contains(re.Reason, "truncated") {
		t.Fatalf("truncated: %v", err)
	}
	_, err = NewMagmaToMSource(env, "nocol", filepath.Join(hfTestdata, "bad", "missing_column"), MagmaToMOptions{VideoFolder: vf})
	re, ok = AsRecordError(err)
	if !ok || !strings.HasSuffix(re.Path, "shard_5.arrow") || !strings.Contains(re.Reason, "missing column for trace") {
		t.Fatalf("missing column: %v", err)
	}
	env.OnError = OnErrorSkip
	if _, err = NewMagmaToMSource(env, "nocol", filepath.Join(hfTestdata, "bad", "missing_column"), MagmaToMOptions{VideoFolder: vf}); err == nil || !strings.Contains(err.Error(), "no usable rows") {
		t.Fatalf("missing column under skip: %v", err)
	}
}

func sha256hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
