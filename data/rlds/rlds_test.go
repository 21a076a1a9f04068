package rlds

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The fixtures and golden.json are written by scripts/data/make_rlds_fixtures.py
// (Python struct + table CRC32C framing, hand-encoded protobuf, PIL JPEGs,
// OpenVLA's transforms re-implemented with numpy).

type goldenTraj struct {
	Action      [][]float64 `json:"action"`
	Instruction []string    `json:"instruction"`
	Steps       []int       `json:"steps"`
}

type goldenSet struct {
	Trajectories []goldenTraj   `json:"trajectories"`
	Statistics   map[string]any `json:"statistics"`
}

func readGolden(t *testing.T) map[string]goldenSet {
	t.Helper()
	b, err := os.ReadFile("testdata/golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var g map[string]goldenSet
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

func TestMaskedCRC(t *testing.T) {
	// CRC32C check value of "123456789" is 0xE3069283 (RFC 3720).
	c := "123456789"
	raw := uint32(0xE3069283)
	want := ((raw >> 15) | (raw << 17)) + 0xa282ead8
	if got := MaskedCRC([]byte(c)); got != want {
		t.Fatalf("masked crc %08x, want %08x", got, want)
	}
}

func TestWriterReaderRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	recs := [][]byte{[]byte("a"), {}, bytes.Repeat([]byte{7}, 70000)}
	for _, r := range recs {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	r := NewReader(&buf, "mem")
	for i, want := range recs {
		got, err := r.Next()
		if err != nil || !bytes.Equal(got.Data, want) || got.Index != i {
			t.Fatalf("record %d: %v %d", i, err, len(got.Data))
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("want EOF, got %v", err)
	}
}

func TestExampleRoundTrip(t *testing.T) {
	ex := Example{
		"steps/action":   {Kind: KindFloat, Floats: []float32{1, -2.5, 3}},
		"steps/is_first": {Kind: KindInt64, Ints: []int64{1, 0, -1}},
		"steps/lang":     {Kind: KindBytes, Bytes: [][]byte{[]byte("hi"), {}}},
		"empty":          {Kind: KindNone},
	}
	keys := []string{"empty", "steps/action", "steps/is_first", "steps/lang"}
	got, err := DecodeExample(EncodeExample(keys, ex), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		a, b := ex[k], got[k]
		if b == nil || a.Kind != b.Kind || a.Len() != b.Len() {
			t.Fatalf("%s: got %+v want %+v", k, b, a)
		}
	}
	if got["steps/is_first"].Ints[2] != -1 || got["steps/action"].Floats[1] != -2.5 || string(got["steps/lang"].Bytes[0]) != "hi" {
		t.Fatalf("values: %+v", got)
	}
	proj, err := DecodeExample(EncodeExample(keys, ex), Keys("steps/action"))
	if err != nil || len(proj) != 1 || proj["steps/action"] == nil {
		t.Fatalf("projection: %v %v", proj, err)
	}
}

func TestDecodeExampleBadInput(t *testing.T) {
	good := EncodeExample([]string{"k"}, Example{"k": {Kind: KindFloat, Floats: []float32{1, 2}}})
	for name, b := range map[string][]byte{
		"truncated":   good[:len(good)-3],
		"bad varint":  {0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"field zero":  {0x02, 0x00},
		"wire type 7": {0x0f},
	} {
		if _, err := DecodeExample(b, nil); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestFixturesDecodeToOpenVLATrajectories(t *testing.T) {
	golden := readGolden(t)
	for name, g := range golden {
		t.Run(name, func(t *testing.T) {
			ds, err := Open(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			if ds.Name != name {
				t.Fatalf("name %q", ds.Name)
			}
			cfg, err := Lookup(name)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := ds.Feature(cfg.ImageKey()); !ok {
				t.Fatalf("features.json has no %s", cfg.ImageKey())
			}
			shards, err := ds.Shards("train")
			if err != nil {
				t.Fatal(err)
			}
			split, _ := ds.Split("train")
			if split.Episodes() != len(g.Trajectories) {
				t.Fatalf("shardLengths say %d episodes, golden has %d", split.Episodes(), len(g.Trajectories))
			}
			var got []*Trajectory
			for _, sh := range shards {
				err := ScanShard(sh, Keys(cfg.Keys...), func(ep *Episode, err error) error {
					if err != nil {
						return err
					}
					tr, err := cfg.Transform(ep)
					if err != nil {
						return err
					}
					got = append(got, tr)
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			if len(got) != len(g.Trajectories) {
				t.Fatalf("%d trajectories, want %d", len(got), len(g.Trajectories))
			}
			for i, w := range g.Trajectories {
				tr := got[i]
				if len(tr.Action) != len(w.Action) {
					t.Fatalf("traj %d: %d steps, want %d", i, len(tr.Action), len(w.Action))
				}
				for s := range w.Action {
					for d := range w.Action[s] {
						if math.Abs(tr.Action[s][d]-w.Action[s][d]) > 1e-6 {
							t.Fatalf("traj %d step %d dim %d: %v, want %v", i, s, d, tr.Action[s][d], w.Action[s][d])
						}
					}
					if tr.Instruction[s] != w.Instruction[s] || tr.Steps[s] != w.Steps[s] {
						t.Fatalf("traj %d step %d: %q/%d, want %q/%d", i, s, tr.Instruction[s], tr.Steps[s], w.Instruction[s], w.Steps[s])
					}
				}
			}
		})
	}
}

func TestCorruptCRCReportedAndRestKept(t *testing.T) {
	dir := filepath.Join("testdata", "corrupt", "libero_spatial_no_noops")
	ds, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	shards, _ := ds.Shards("train")
	var good int
	var bad []error
	for _, sh := range shards {
		if err := ScanShard(sh, nil, func(ep *Episode, err error) error {
			if err != nil {
				bad = append(bad, err)
				return nil
			}
			good++
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if good != 2 || len(bad) != 1 {
		t.Fatalf("good %d bad %v", good, bad)
	}
	ce, ok := IsCorrupt(bad[0])
	if !ok || ce.Index != 1 || !strings.Contains(ce.Path, "00000-of-00002") || !strings.Contains(ce.Reason, "CRC") {
		t.Fatalf("error %v", bad[0])
	}
}

func TestTruncatedAndBadLength(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	_ = w.Write([]byte("first"))
	_ = w.Write([]byte("second record"))
	full := buf.Bytes()
	r := NewReader(bytes.NewReader(full[:len(full)-5]), "trunc.tfrecord")
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	_, err := r.Next()
	ce, ok := IsCorrupt(err)
	if !ok || ce.Index != 1 || !strings.Contains(ce.Reason, "truncated") {
		t.Fatalf("got %v", err)
	}
	if _, err2 := r.Next(); err2 != err {
		t.Fatalf("after a fatal error Next must repeat it, got %v", err2)
	}
	hdr := append([]byte(nil), full...)
	hdr[3] ^= 1
	if _, err := NewReader(bytes.NewReader(hdr), "x").Next(); err == nil || !strings.Contains(err.Error(), "length CRC") {
		t.Fatalf("got %v", err)
	}
}

func TestParseFeatures(t *testing.T) {
	ds, err := Open(filepath.Join("testdata", "libero_spatial_no_noops", "1.0.0"))
	if err != nil {
		t.Fatal(err)
	}
	f, ok := ds.Feature("steps/observation/image")
	if !ok || f.Class != "Image" || !f.Step || f.Encoding != "jpeg" || len(f.Shape) != 3 {
		t.Fatalf("%+v", f)
	}
	f, ok = ds.Feature("episode_metadata/file_path")
	if !ok || f.Step || f.Class != "Text" {
		t.Fatalf("%+v", f)
	}
	if ds.Info.Name != "libero_spatial" {
		t.Fatalf("builder %q", ds.Info.Name)
	}
}

func TestRel2AbsAndBinarize(t *testing.T) {
	cases := []struct{ in, want []float64 }{
		{[]float64{0, 0, 0.8, 0, -0.9, 0}, []float64{1, 1, 0, 0, 1, 1}},
		{[]float64{0, 0}, []float64{1, 1}},
		{[]float64{-0.5, 0, 0.5}, []float64{1, 1, 0}},
	}
	for _, c := range cases {
		got := Rel2Abs(c.in)
		for i := range got {
			if got[i] != c.want[i] {
				t.Fatalf("Rel2Abs(%v) = %v, want %v", c.in, got, c.want)
			}
		}
	}
	got := Binarize([]float64{1, 0.5, 0.02, 0.3, 0.99, 0.6})
	want := []float64{1, 0, 0, 1, 1, 0.6}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("Binarize = %v, want %v", got, want)
		}
	}
}

// Transforms without a file fixture, on episodes encoded here.
func TestTransformsLanguageTableAndFanuc(t *testing.T) {
	enc := func(ex Example) *Episode {
		var keys []string
		for k := range ex {
			keys = append(keys, k)
		}
		ep, err := DecodeEpisode("mem", 0, 0, EncodeExample(keys, ex), nil)
		if err != nil {
			t.Fatal(err)
		}
		return ep
	}
	// language_table: 2-D actions, instruction as 0-padded int32 code points
	instr := make([]int64, 2*8)
	for i, r := range []rune("push ✓") {
		instr[i], instr[8+i] = int64(r), int64(r)
	}
	ep := enc(Example{
		"steps/is_first":                {Kind: KindInt64, Ints: []int64{1, 0}},
		"steps/action":                  {Kind: KindFloat, Floats: []float32{0.1, -0.2, 0.3, 0.4}},
		"steps/observation/instruction": {Kind: KindInt64, Ints: instr},
	})
	tr, err := Configs["language_table"].Transform(ep)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Instruction[1] != "push ✓" || len(tr.Action[1]) != 7 || math.Abs(tr.Action[1][1]-0.4) > 1e-6 || tr.Action[1][6] != 1 || tr.Action[1][2] != 0 {
		t.Fatalf("language_table: %q %v", tr.Instruction[1], tr.Action)
	}
	// berkeley_fanuc_manipulation: gripper = 1 - state[6]
	ep = enc(Example{
		"steps/is_first":             {Kind: KindInt64, Ints: []int64{1, 0}},
		"steps/action":               {Kind: KindFloat, Floats: []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}},
		"steps/observation/state":    {Kind: KindFloat, Floats: []float32{0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0.25, 0}},
		"steps/language_instruction": {Kind: KindBytes, Bytes: [][]byte{[]byte("open the drawer")}},
	})
	tr, err = Configs["berkeley_fanuc_manipulation"].Transform(ep)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Action[0][6] != 0 || tr.Action[1][6] != 0.75 || tr.Action[1][0] != 7 || tr.Instruction[1] != "open the drawer" {
		t.Fatalf("fanuc: %v %q", tr.Action, tr.Instruction)
	}
}
