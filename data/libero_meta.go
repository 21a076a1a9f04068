package data

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/magma-go/magma/model/action"
)

// A LIBERO run labels its folder and every checkpoint with what it trained
// on: the action statistics (action.DatasetStatisticsFile, key = the suite) that
// eval and /act un-normalise with, and the demo split (LiberoSplitFile)
// that evaluation holds out.

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
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	var old LiberoSplit
	if err := json.Unmarshal(b, &old); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	oldJSON, _ := json.Marshal(old)
	newJSON, _ := json.Marshal(l.Split())
	if string(oldJSON) != string(newJSON) {
		return fmt.Errorf("%s was written for another selection of demos (suite, --shots, --data-seed or --remove-noops differ); use another --out", path)
	}
	return nil
}
