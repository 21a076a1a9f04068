package data

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/magma-go/magma/data/hf"
)

// hfTable is the rows of a sharded Hugging Face dataset (Arrow IPC or
// Parquet files) for this rank: every shard is indexed up front (headers
// or footer only), mapped lazily on its first read, and addressed by a
// global row number.
type hfTable struct {
	name   string
	files  []*hf.File
	starts []int // first global row of each file
	rows   int
}

// hfShardExts are the file extensions a dataset folder is searched for.
var hfShardExts = []string{".arrow", ".parquet"}

// openHFTable indexes the rank's shards of path (a file, glob or folder).
// required lists, per role, the candidate column names (first present
// wins); a shard without any candidate of a role, unreadable shards and the
// truncated tails of shards are bad records under the env's policy. It
// returns the resolved column name per role.
func openHFTable(env *SampleBuilder, name, path string, required map[string][]string, optional map[string][]string) (*hfTable, map[string]string, error) {
	all, err := globShards(path, hfShardExts...)
	if err != nil {
		return nil, nil, fmt.Errorf("data: source %q: %w", name, err)
	}
	shards, err := AssignShards(all, env.Rank, env.World)
	if err != nil {
		return nil, nil, fmt.Errorf("data: source %q: %w", name, err)
	}
	t := &hfTable{name: name}
	var cols map[string]string
	var bad []*RecordError
	for _, p := range shards {
		f, err := hf.Open(p)
		if err != nil {
			bad = append(bad, recordErr(p, 0, "unreadable shard: %v", err))
			continue
		}
		c, err := resolveColumns(f, required, optional)
		if err != nil {
			bad = append(bad, recordErr(p, 0, "%v (all %d rows of the shard skipped)", err, f.NumRows))
			f.Close()
			continue
		}
		if cols == nil {
			cols = c
		} else {
			for role, col := range c {
				if cols[role] != col {
					bad = append(bad, recordErr(p, 0, "role %s is column %q here but %q in the first shard (all rows skipped)", role, col, cols[role]))
					c = nil
					break
				}
			}
			if c == nil {
				f.Close()
				continue
			}
		}
		for _, b := range f.Bad {
			bad = append(bad, recordErr(p, b.FirstRow, "%s (this and the following rows of the shard are lost)", b.Reason))
		}
		if f.NumRows == 0 {
			continue
		}
		t.starts = append(t.starts, t.rows)
		t.files = append(t.files, f)
		t.rows += f.NumRows
	}
	if err := env.handleLoadErrors(bad); err != nil {
		t.close()
		return nil, nil, err
	}
	if t.rows == 0 {
		return nil, nil, fmt.Errorf("data: source %q: no usable rows in %s (%s)", name, path, rejectedSummary(bad))
	}
	return t, cols, nil
}

// resolveColumns maps roles to the first candidate column the file has.
func resolveColumns(f *hf.File, required, optional map[string][]string) (map[string]string, error) {
	have := map[string]bool{}
	var names []string
	for _, fl := range f.Schema.Fields() {
		have[fl.Name] = true
		names = append(names, fl.Name)
	}
	out := map[string]string{}
	roles := func(m map[string][]string) []string {
		var r []string
		for k := range m {
			r = append(r, k)
		}
		sort.Strings(r)
		return r
	}
	for _, role := range roles(required) {
		found := false
		for _, c := range required[role] {
			if have[c] {
				out[role], found = c, true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("missing column for %s (looked for %s; the file has %s)", role, strings.Join(required[role], ", "), strings.Join(names, ", "))
		}
	}
	for _, role := range roles(optional) {
		for _, c := range optional[role] {
			if have[c] {
				out[role] = c
				break
			}
		}
	}
	return out, nil
}

// locate returns the file and its row for global row i.
func (t *hfTable) locate(i int) (*hf.File, int) {
	k := sort.Search(len(t.starts), func(j int) bool { return t.starts[j] > i }) - 1
	return t.files[k], i - t.starts[k]
}

// row reads global row i's columns; errors are *RecordError{file, row}.
func (t *hfTable) row(i int, cols []string) (hf.Row, *hf.File, int, error) {
	if i < 0 || i >= t.rows {
		return nil, nil, 0, fmt.Errorf("data: %s: index %d out of range", t.name, i)
	}
	f, r := t.locate(i)
	row, err := f.Row(r, cols)
	if err != nil {
		return nil, f, r, recordErr(f.Path, r, "%v", err)
	}
	return row, f, r, nil
}

func (t *hfTable) close() {
	for _, f := range t.files {
		f.Close()
	}
}

// imageBytes extracts an encoded image from a cell: the `datasets` Image
// struct {bytes, path}, raw bytes, or a path (resolved against folder).
func imageBytes(v any, folder string) ([]byte, string, error) {
	switch x := v.(type) {
	case []byte:
		return x, "", nil
	case string:
		p, err := resolve(folder, x)
		return nil, p, err
	case map[string]any:
		if b, ok := x["bytes"].([]byte); ok && len(b) > 0 {
			return b, "", nil
		}
		if p, ok := x["path"].(string); ok && p != "" {
			rp, err := resolve(folder, p)
			return nil, rp, err
		}
		return nil, "", errors.New("image has neither bytes nor a path")
	case nil:
		return nil, "", errors.New("image is null")
	}
	return nil, "", fmt.Errorf("image cell is a %T", v)
}
