package hf

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Fixtures: scripts/data/make_hf_fixtures.mjs (npm apache-arrow and
// parquet-wasm).

func golden(t *testing.T) map[string][]map[string]any {
	t.Helper()
	b, err := os.ReadFile("testdata/golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var g map[string][]map[string]any
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

func sha(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func TestSoMFilesArrowStreamAndParquet(t *testing.T) {
	g := golden(t)
	for name, file := range map[string]string{
		"mind2web_som": "testdata/mind2web_som/data-00000-of-00001.arrow",
		"aitw_som":     "testdata/aitw_som/data/train-00000-of-00001.parquet",
	} {
		t.Run(name, func(t *testing.T) {
			f, err := Open(file)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			want := g[name]
			if f.NumRows != len(want) || len(f.Bad) != 0 {
				t.Fatalf("%d rows (bad %v), want %d", f.NumRows, f.Bad, len(want))
			}
			if (name == "mind2web_som") != (f.Format == ArrowStream) || f.Batches() < 2 {
				t.Fatalf("format %s with %d batches", f.Format, f.Batches())
			}
			for i, w := range want {
				row, err := f.Row(i, []string{"image", "conversations", "id"})
				if err != nil {
					t.Fatal(err)
				}
				img := row["image"].(map[string]any)
				if sha(img["bytes"].([]byte)) != w["image_sha256"] || row["id"] != w["id"] {
					t.Fatalf("row %d: id %v image differs", i, row["id"])
				}
				conv := row["conversations"].([]any)
				wc := w["conversations"].([]any)
				if len(conv) != len(wc) {
					t.Fatalf("row %d: %d turns", i, len(conv))
				}
				for j := range wc {
					a, b := conv[j].(map[string]any), wc[j].(map[string]any)
					if a["from"] != b["from"] || a["value"] != b["value"] {
						t.Fatalf("row %d turn %d: %v, want %v", i, j, a, b)
					}
				}
			}
			// projection: only the asked column comes back
			row, err := f.Row(0, []string{"id"})
			if err != nil || len(row) != 1 {
				t.Fatalf("projection: %v %v", row, err)
			}
			if _, err := f.Row(0, []string{"nope"}); err == nil || !strings.Contains(err.Error(), "no such column") {
				t.Fatalf("missing column: %v", err)
			}
		})
	}
}

func TestTraceFilesTensorValues(t *testing.T) {
	g := golden(t)
	files := map[string][]string{
		"video_tom": {"testdata/video_tom/ego4d/shard_0.arrow", "testdata/video_tom/ego4d/shard_1.arrow", "testdata/video_tom/sthv2/shard_2.arrow"},
		"oxe_tom":   {"testdata/oxe_tom/bridge_orig/shard_79.arrow"},
	}
	for name, paths := range files {
		var rows []Row
		for _, p := range paths {
			f, err := Open(p)
			if err != nil {
				t.Fatal(err)
			}
			if name == "oxe_tom" && f.Format != ArrowFile {
				t.Fatalf("%s: format %s, want the IPC file format", p, f.Format)
			}
			for i := 0; i < f.NumRows; i++ {
				r, err := f.Row(i, nil)
				if err != nil {
					t.Fatal(err)
				}
				rows = append(rows, r)
			}
			f.Close()
		}
		want := g[name]
		if len(rows) != len(want) {
			t.Fatalf("%s: %d rows, want %d", name, len(rows), len(want))
		}
		for i, w := range want {
			tr, ok := rows[i]["trace"].(*Tensor)
			if !ok {
				t.Fatalf("%s row %d: trace is %T", name, i, rows[i]["trace"])
			}
			ws := w["trace_shape"].([]any)
			for d := range ws {
				if tr.Shape[d] != int(ws[d].(float64)) {
					t.Fatalf("%s row %d: shape %v, want %v", name, i, tr.Shape, ws)
				}
			}
			wv := w["trace"].([]any)
			for j := range wv {
				if math.Abs(float64(tr.Data[j])-wv[j].(float64)) > 1e-6 {
					t.Fatalf("%s row %d: trace[%d] %v, want %v", name, i, j, tr.Data[j], wv[j])
				}
			}
			vis := rows[i]["trace_visibility"].(*Tensor)
			wvis := w["visibility"].([]any)
			for j := range wvis {
				if (vis.Data[j] == 1) != wvis[j].(bool) {
					t.Fatalf("%s row %d: visibility[%d]", name, i, j)
				}
			}
			if rows[i]["frame_index"].(int64) != int64(w["frame_index"].(float64)) {
				t.Fatalf("frame_index %v", rows[i]["frame_index"])
			}
		}
	}
}

func TestTruncatedArrowKeepsEarlierBatches(t *testing.T) {
	f, err := Open(filepath.Join("testdata", "bad", "truncated", "shard_1.arrow"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.NumRows != 1 || len(f.Bad) != 1 || f.Bad[0].FirstRow != 1 || !strings.Contains(f.Bad[0].Reason, "truncated") {
		t.Fatalf("rows %d bad %+v", f.NumRows, f.Bad)
	}
	if _, err := f.Row(0, nil); err != nil {
		t.Fatal(err)
	}
}

func TestNotArrow(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.arrow")
	if err := os.WriteFile(p, []byte("this is not an arrow file at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(p); err == nil {
		t.Fatal("garbage accepted")
	}
}

// Workers read rows of one file concurrently (the mixture's worker
// goroutines share sources); run under -race in development.
func TestConcurrentRows(t *testing.T) {
	for _, p := range []string{"testdata/video_tom/sthv2/shard_2.arrow", "testdata/oxe_tom/bridge_orig/shard_79.arrow", "testdata/aitw_som/data/train-00000-of-00001.parquet"} {
		f, err := Open(p)
		if err != nil {
			t.Fatal(err)
		}
		errs := make(chan error, 4)
		for w := 0; w < 4; w++ {
			go func(w int) {
				for k := 0; k < 50; k++ {
					if _, err := f.Row((w+k)%f.NumRows, nil); err != nil {
						errs <- err
						return
					}
				}
				errs <- nil
			}(w)
		}
		for w := 0; w < 4; w++ {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		f.Close()
	}
}

func TestTensorRaggedAndNested(t *testing.T) {
	mem := memory.NewGoAllocator()
	b := array.NewListBuilder(mem, arrow.ListOf(arrow.PrimitiveTypes.Float32))
	defer b.Release()
	inner := b.ValueBuilder().(*array.ListBuilder)
	vals := inner.ValueBuilder().(*array.Float32Builder)
	// row 0: [[1,2],[3,4]] (rectangular), row 1: [[1],[2,3]] (ragged)
	b.Append(true)
	for _, p := range [][]float32{{1, 2}, {3, 4}} {
		inner.Append(true)
		vals.AppendValues(p, nil)
	}
	b.Append(true)
	for _, p := range [][]float32{{1}, {2, 3}} {
		inner.Append(true)
		vals.AppendValues(p, nil)
	}
	arr := b.NewArray()
	defer arr.Release()
	v, err := Value(arr, 0)
	if tt, ok := v.(*Tensor); err != nil || !ok || len(tt.Shape) != 2 || tt.Shape[0] != 2 || tt.Shape[1] != 2 || tt.Data[3] != 4 {
		t.Fatalf("rectangular: %#v %v", v, err)
	}
	v, err = Value(arr, 1)
	if _, ok := v.([]any); err != nil || !ok {
		t.Fatalf("ragged cell should come back as nested lists, got %#v %v", v, err)
	}
}
