package data

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/magma-go/magma/model/action"
)

// LIBERO checkpoint metadata, in one place. A LIBERO run labels its
// folder and every checkpoint with what it trained on: the action
// statistics (action.DatasetStatisticsFile, key = the suite) that eval and /act
// un-normalise with, and the demo split (LiberoSplitFile) that evaluation
// holds out. finetune writes them (PrepareRunFolder, WriteMeta), eval reads
// them back (LoadCheckpointMeta).

// LiberoSplit records which demos were trained on.
type LiberoSplit struct {
	Suite string              `json:"suite"`
	Shots int                 `json:"shots"`
	Per   string              `json:"shots_per,omitempty"`
	Seed  uint64              `json:"seed"`
	Noops bool                `json:"remove_noops"`
	Tasks map[string][]string `json:"train_demos"`
}

// Split returns the current training selection.
func (l *Libero) Split() *LiberoSplit {
	s := &LiberoSplit{Suite: l.Opt.Suite, Shots: l.Opt.Shots, Per: l.Opt.ShotsPer, Seed: l.Opt.Seed, Noops: l.Opt.RemoveNoops, Tasks: map[string][]string{}}
	for _, t := range l.Tasks {
		keys := []string{}
		for _, i := range t.Train {
			keys = append(keys, t.Demos[i].Key)
		}
		s.Tasks[t.Name] = keys
	}
	return s
}

// LiberoSplitFile is the split's file name in a checkpoint.
const LiberoSplitFile = "libero_split.json"

// ApplySplit replaces the shot selection with saved demo keys (from a
// checkpoint's libero_split.json), so evaluation holds out exactly the
// demos training did not see.
func (l *Libero) ApplySplit(s *LiberoSplit) error {
	for _, t := range l.Tasks {
		keys, ok := s.Tasks[t.Name]
		if !ok {
			return fmt.Errorf("libero: task %s is not in the saved split (trained on another suite?)", t.Name)
		}
		in := map[string]bool{}
		for _, k := range keys {
			in[k] = true
		}
		t.Train, t.Heldout = nil, nil
		for i, d := range t.Demos {
			if in[d.Key] {
				t.Train = append(t.Train, i)
			} else {
				t.Heldout = append(t.Heldout, i)
			}
		}
		if len(t.Train) != len(keys) {
			return fmt.Errorf("libero: %s: the saved split names demos the file does not have", t.File)
		}
	}
	return nil
}

// FindLiberoMeta looks for name in the checkpoint folder, then in the run
// folder two levels up (runs/x/checkpoints/step-N → runs/x); "" when
// neither has it.
func FindLiberoMeta(dir, name string) string {
	for _, d := range []string{dir, filepath.Join(dir, "..", "..")} {
		p := filepath.Join(d, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// readLiberoSplit reads a libero_split.json file.
func readLiberoSplit(path string) (*LiberoSplit, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s LiberoSplit
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &s, nil
}

// WriteMeta writes the statistics and the split into dir.
func (l *Libero) WriteMeta(dir string) error {
	if err := action.WriteDatasetStatistics(filepath.Join(dir, action.DatasetStatisticsFile), map[string]*action.DatasetStats{l.Opt.Suite: l.Stats}); err != nil {
		return err
	}
	b, err := json.MarshalIndent(l.Split(), "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, LiberoSplitFile), b, 0o644)
}

// CheckMeta refuses a run folder whose recorded split differs from l's
// (another suite, other shots, seed or no-op filter): its checkpoints would
// be labelled with the wrong statistics and split. A folder without a
// split file is fine.
func (l *Libero) CheckMeta(dir string) error {
	path := filepath.Join(dir, LiberoSplitFile)
	old, err := readLiberoSplit(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	oldJSON, _ := json.Marshal(old)
	newJSON, _ := json.Marshal(l.Split())
	if string(oldJSON) != string(newJSON) {
		return fmt.Errorf("%s was written for another selection of demos (suite, --shots, --data-seed or --remove-noops differ); use another --out", path)
	}
	return nil
}

// PrepareRunFolder creates the run folder dir, refuses it when it was
// written for another selection of demos (CheckMeta) and labels it with
// l's statistics and split (WriteMeta).
func (l *Libero) PrepareRunFolder(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := l.CheckMeta(dir); err != nil {
		return err
	}
	return l.WriteMeta(dir)
}

// LoadCheckpointMeta reads what evaluating checkpoint ckpt on l needs.
// With useSplit, the checkpoint's split (FindLiberoMeta) replaces l's shot
// selection, so the held-out demos are the ones training did not see. The
// statistics to un-normalise with come from statsPath, else from the
// checkpoint's action.DatasetStatisticsFile: the entry of l's suite, or the only
// entry. from is the file they came from; "" means there was none and
// they are l's own, recomputed from the training demos.
func (l *Libero) LoadCheckpointMeta(ckpt, statsPath string, useSplit bool) (stats *action.DatasetStats, from string, err error) {
	if sp := FindLiberoMeta(ckpt, LiberoSplitFile); sp != "" && useSplit {
		s, err := readLiberoSplit(sp)
		if err != nil {
			return nil, "", err
		}
		if err := l.ApplySplit(s); err != nil {
			return nil, "", fmt.Errorf("%s: %w", sp, err)
		}
	}
	if statsPath == "" {
		statsPath = FindLiberoMeta(ckpt, action.DatasetStatisticsFile)
	}
	if statsPath == "" {
		return l.Stats, "", nil
	}
	all, err := action.ReadDatasetStatistics(statsPath)
	if err != nil {
		return nil, "", err
	}
	if st, ok := all[l.Opt.Suite]; ok {
		return st, statsPath, nil
	}
	if len(all) != 1 {
		return nil, "", fmt.Errorf("%s has no statistics for %q (pass --suite)", statsPath, l.Opt.Suite)
	}
	for _, st := range all {
		stats = st
	}
	return stats, statsPath, nil
}
