package data

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/magma-go/magma/model/action"
)

// A run folder labelled by PrepareRunFolder is read back by
// LoadCheckpointMeta from a checkpoint two levels down: the saved split
// replaces a different shot selection, and the statistics are the suite's
// entry, the only entry of another key, or l's own when there is no file.
func TestLiberoCheckpointMeta(t *testing.T) {
	dir, _ := liberoFixture(t, false)
	trained, err := OpenLibero(dir, LiberoOptions{Shots: 3, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	defer trained.Close()
	run := filepath.Join(t.TempDir(), "run")
	if err := trained.PrepareRunFolder(run); err != nil {
		t.Fatal(err)
	}
	ckpt := filepath.Join(run, "checkpoints", "step-1")
	if err := os.MkdirAll(ckpt, 0o755); err != nil {
		t.Fatal(err)
	}
	other, err := OpenLibero(dir, LiberoOptions{Shots: 3, Seed: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := other.CheckMeta(run); err == nil || !strings.Contains(err.Error(), "another selection of demos") {
		t.Fatalf("CheckMeta of another seed: %v", err)
	}
	st, from, err := other.LoadCheckpointMeta(ckpt, "", true)
	if err != nil {
		t.Fatal(err)
	}
	if from != filepath.Join(ckpt, "..", "..", action.DatasetStatisticsFile) || !reflect.DeepEqual(st, trained.Stats) {
		t.Fatalf("statistics from %q: %+v, want the run folder's %+v", from, st, trained.Stats)
	}
	if !reflect.DeepEqual(other.Split().Tasks, trained.Split().Tasks) {
		t.Fatalf("split not applied: %v, want %v", other.Split().Tasks, trained.Split().Tasks)
	}

	// Another key, the only one: taken; two keys without the suite: refused.
	alt := filepath.Join(t.TempDir(), action.DatasetStatisticsFile)
	if err := action.WriteDatasetStatistics(alt, map[string]*action.DatasetStats{"other": trained.Stats}); err != nil {
		t.Fatal(err)
	}
	if st, from, err := other.LoadCheckpointMeta(ckpt, alt, false); err != nil || from != alt || !reflect.DeepEqual(st, trained.Stats) {
		t.Fatalf("single entry: %v %q %v", st, from, err)
	}
	if err := action.WriteDatasetStatistics(alt, map[string]*action.DatasetStats{"a": trained.Stats, "b": trained.Stats}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := other.LoadCheckpointMeta(ckpt, alt, false); err == nil || !strings.Contains(err.Error(), "pass --suite") {
		t.Fatalf("two entries without the suite: %v", err)
	}

	// No metadata at all: l's own statistics, from "".
	bare := t.TempDir()
	if st, from, err := other.LoadCheckpointMeta(bare, "", true); err != nil || from != "" || st != other.Stats {
		t.Fatalf("no metadata: %v %q %v", st, from, err)
	}
}
