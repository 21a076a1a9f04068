package liberotest

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"
)

// WriteRLDS's shards checked without package rlds: TFRecord framing (u64
// length, masked CRC32C of the length, payload, masked CRC32C of the
// payload; CRC32C from the standard library), as many records per shard as
// dataset_info.json's shardLengths, one episode per demo, and the file
// names of its template.
func TestWriteRLDSFraming(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "libero_goal_no_noops")
	tasks := []Task{{Name: "open_the_middle_drawer_of_the_cabinet", Demos: 3, Steps: 7, Size: 8, Noops: true},
		{Name: "KITCHEN_SCENE3_turn_on_the_stove", Demos: 2, Steps: 7, Size: 8, Noops: true}}
	if err := WriteRLDS(dir, tasks, 2); err != nil {
		t.Fatal(err)
	}
	var info struct {
		Name   string `json:"name"`
		Splits []struct {
			ShardLengths []string `json:"shardLengths"`
		} `json:"splits"`
	}
	b, err := os.ReadFile(filepath.Join(dir, RLDSVersion, "dataset_info.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &info); err != nil || info.Name != "libero_goal" || len(info.Splits) != 1 {
		t.Fatalf("dataset_info.json: %v %s", err, b)
	}
	table := crc32.MakeTable(crc32.Castagnoli)
	masked := func(p []byte) uint32 {
		c := crc32.Checksum(p, table)
		return (c>>15 | c<<17) + 0xa282ead8
	}
	total := 0
	for s, want := range info.Splits[0].ShardLengths {
		raw, err := os.ReadFile(filepath.Join(dir, RLDSVersion, fmt.Sprintf("libero_goal-train.tfrecord-%05d-of-00002", s)))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for off := 0; off < len(raw); n++ {
			if off+12 > len(raw) {
				t.Fatalf("shard %d: truncated header at %d", s, off)
			}
			l := int(binary.LittleEndian.Uint64(raw[off:]))
			if binary.LittleEndian.Uint32(raw[off+8:]) != masked(raw[off:off+8]) {
				t.Fatalf("shard %d record %d: length CRC", s, n)
			}
			p := raw[off+12 : off+12+l]
			if binary.LittleEndian.Uint32(raw[off+12+l:]) != masked(p) {
				t.Fatalf("shard %d record %d: payload CRC", s, n)
			}
			off += 12 + l + 4
		}
		if fmt.Sprint(n) != want {
			t.Fatalf("shard %d: %d records, shardLengths says %s", s, n, want)
		}
		total += n
	}
	if total != 5 {
		t.Fatalf("%d episodes, want 5", total)
	}
	if got := builderInstruction("KITCHEN_SCENE3_turn_on_the_stove"); got != "turn on the stove" {
		t.Fatalf("instruction %q", got)
	}
	if err := WriteRLDS(filepath.Join(t.TempDir(), "x"), []Task{{Name: "a", Demos: 1, Steps: 2, Size: 8}, {Name: "b", Demos: 1, Steps: 2, Size: 16}}, 1); err == nil {
		t.Fatal("mixed image sizes accepted")
	}
}
