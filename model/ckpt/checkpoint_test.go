package ckpt

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/magma-go/magma/kernels"
)

func makeTensors(n, size int) []WriteItem {
	var ts []WriteItem
	for i := 0; i < n; i++ {
		d := make([]float32, size)
		for j := range d {
			d[j] = float32(i*1000 + j)
		}
		ts = append(ts, WriteItem{Name: "layers." + string(rune('a'+i)) + ".weight", Shape: []int{size}, Data: d})
	}
	return ts
}

func TestSaveOpenSingleAndSharded(t *testing.T) {
	ts := makeTensors(5, 100) // 400 bytes each in F32, 200 in BF16
	cases := []struct {
		name       string
		opts       SaveOptions
		wantShards int
	}{
		{"single", SaveOptions{}, 1},
		{"sharded f32", SaveOptions{MaxShardSize: 1000}, 3},
		{"sharded bf16", SaveOptions{MaxShardSize: 450, DType: "BF16"}, 3},
		{"tensor bigger than shard", SaveOptions{MaxShardSize: 10}, 5},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := Save(dir, ts, c.opts); err != nil {
				t.Fatal(err)
			}
			ck, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer ck.Close()
			if ck.Sharded() != (c.wantShards > 1) {
				t.Errorf("sharded=%v", ck.Sharded())
			}
			if c.wantShards > 1 {
				raw, err := os.ReadFile(filepath.Join(dir, IndexFileName))
				if err != nil {
					t.Fatal(err)
				}
				var idx Index
				json.Unmarshal(raw, &idx)
				shards := map[string]bool{}
				for _, s := range idx.WeightMap {
					shards[s] = true
				}
				if len(shards) != c.wantShards {
					t.Errorf("%d shards, want %d", len(shards), c.wantShards)
				}
				if _, ok := idx.Metadata["total_size"]; !ok {
					t.Error("no total_size")
				}
				if _, err := os.Stat(filepath.Join(dir, SingleFileName)); err == nil {
					t.Error("model.safetensors written next to shards")
				}
			}
			if len(ck.Names()) != len(ts) {
				t.Fatalf("names %v", ck.Names())
			}
			for _, want := range ts {
				if !ck.Has(want.Name) {
					t.Fatalf("missing %s", want.Name)
				}
				got, shape, err := ck.Tensor(want.Name)
				if err != nil {
					t.Fatal(err)
				}
				if shape[0] != 100 {
					t.Errorf("shape %v", shape)
				}
				for i := range got {
					exp := want.Data[i]
					if c.opts.DType == "BF16" {
						exp = kernels.BF16ToFloat32(kernels.Float32ToBF16(exp))
					}
					if got[i] != exp {
						t.Fatalf("%s[%d]=%g want %g", want.Name, i, got[i], exp)
					}
				}
			}
			if _, _, err := ck.Tensor("nope"); err == nil || !strings.Contains(err.Error(), `"nope"`) {
				t.Errorf("missing tensor error: %v", err)
			}
		})
	}
	// Re-saving as a single file replaces the sharded layout.
	dir := t.TempDir()
	if err := Save(dir, ts, SaveOptions{MaxShardSize: 1000}); err != nil {
		t.Fatal(err)
	}
	if err := Save(dir, ts[:1], SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "model-*"))
	if len(left) != 0 {
		t.Errorf("stale shards: %v", left)
	}
}

func TestCheckpointBadIndex(t *testing.T) {
	ts := makeTensors(4, 10)
	setup := func(t *testing.T) string {
		dir := t.TempDir()
		if err := Save(dir, ts, SaveOptions{MaxShardSize: 50}); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	editIndex := func(t *testing.T, dir string, f func(*Index)) {
		p := filepath.Join(dir, IndexFileName)
		raw, _ := os.ReadFile(p)
		var idx Index
		json.Unmarshal(raw, &idx)
		f(&idx)
		raw, _ = json.Marshal(idx)
		os.WriteFile(p, raw, 0o644)
	}
	t.Run("missing shard", func(t *testing.T) {
		dir := setup(t)
		os.Remove(filepath.Join(dir, "model-00002-of-00004.safetensors"))
		_, err := Open(dir)
		if err == nil || !strings.Contains(err.Error(), "model-00002-of-00004.safetensors") || !strings.Contains(err.Error(), ts[1].Name) {
			t.Errorf("got %v", err)
		}
	})
	t.Run("tensor not in shard", func(t *testing.T) {
		dir := setup(t)
		editIndex(t, dir, func(i *Index) { i.WeightMap["ghost.weight"] = "model-00001-of-00004.safetensors" })
		_, err := Open(dir)
		if err == nil || !strings.Contains(err.Error(), `"ghost.weight"`) || !strings.Contains(err.Error(), IndexFileName) {
			t.Errorf("got %v", err)
		}
	})
	t.Run("no weight_map", func(t *testing.T) {
		dir := setup(t)
		os.WriteFile(filepath.Join(dir, IndexFileName), []byte(`{"metadata":{}}`), 0o644)
		_, err := Open(dir)
		if err == nil || !strings.Contains(err.Error(), "weight_map") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("bad json", func(t *testing.T) {
		dir := setup(t)
		os.WriteFile(filepath.Join(dir, IndexFileName), []byte(`{`), 0o644)
		_, err := Open(dir)
		if err == nil || !strings.Contains(err.Error(), IndexFileName) {
			t.Errorf("got %v", err)
		}
	})
	t.Run("empty dir", func(t *testing.T) {
		_, err := Open(t.TempDir())
		if err == nil || !strings.Contains(err.Error(), SingleFileName) {
			t.Errorf("got %v", err)
		}
	})
	t.Run("truncated shard", func(t *testing.T) {
		dir := setup(t)
		p := filepath.Join(dir, "model-00003-of-00004.safetensors")
		raw, _ := os.ReadFile(p)
		os.WriteFile(p, raw[:len(raw)-4], 0o644)
		_, err := Open(dir)
		if err == nil || !strings.Contains(err.Error(), "model-00003-of-00004.safetensors") || !strings.Contains(err.Error(), ts[2].Name) {
			t.Errorf("got %v", err)
		}
	})
	t.Run("open file path", func(t *testing.T) {
		dir := setup(t)
		ck, err := Open(filepath.Join(dir, "model-00001-of-00004.safetensors"))
		if err != nil || len(ck.Names()) != 1 {
			t.Fatalf("%v %v", err, ck)
		}
		ck.Close()
		ck, err = Open(filepath.Join(dir, IndexFileName))
		if err != nil || len(ck.Names()) != 4 {
			t.Fatalf("%v", err)
		}
		ck.Close()
	})
}

func TestParseSize(t *testing.T) {
	cases := map[string]int64{"5GB": 5_000_000_000, "500MB": 500_000_000, "2GiB": 2 << 30, "10KB": 10_000, "123": 123, " 1.5GB ": 1_500_000_000, "4mib": 4 << 20}
	for in, want := range cases {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q)=%d,%v want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "GB", "-1GB", "five"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
}
