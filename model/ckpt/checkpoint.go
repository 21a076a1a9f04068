package ckpt

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Hugging Face file names.
const (
	SingleFileName = "model.safetensors"
	IndexFileName  = "model.safetensors.index.json"
)

// DefaultMaxShardSize is Hugging Face's default max_shard_size ("5GB").
const DefaultMaxShardSize = 5_000_000_000

// Checkpoint is an opened Hugging Face safetensors checkpoint: a single
// model.safetensors or a model.safetensors.index.json with its shards.
// Only headers are read at Open; tensors are read on demand.
type Checkpoint struct {
	Dir string
	// Metadata is the index's "metadata" (sharded) or the file's __metadata__.
	Metadata map[string]any

	files  map[string]*SafetensorsFile // shard file name -> file
	owner  map[string]string           // tensor name -> shard file name
	names  []string
	single bool
}

// Index is model.safetensors.index.json: which shard holds each tensor.
type Index struct {
	Metadata  map[string]any    `json:"metadata"`
	WeightMap map[string]string `json:"weight_map"`
}

// Open opens the checkpoint in dir. dir may also be a single .safetensors
// file or an index .json file. model.safetensors is preferred over an index
// when both exist (as transformers does).
func Open(dir string) (*Checkpoint, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	if !st.IsDir() {
		if strings.HasSuffix(dir, ".json") {
			return openIndex(filepath.Dir(dir), dir)
		}
		return openSingle(filepath.Dir(dir), dir)
	}
	single := filepath.Join(dir, SingleFileName)
	if _, err := os.Stat(single); err == nil {
		return openSingle(dir, single)
	}
	index := filepath.Join(dir, IndexFileName)
	if _, err := os.Stat(index); err == nil {
		return openIndex(dir, index)
	}
	return nil, fmt.Errorf("checkpoint %s: neither %s nor %s found", dir, SingleFileName, IndexFileName)
}

func openSingle(dir, path string) (*Checkpoint, error) {
	f, err := OpenSafetensors(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	base := filepath.Base(path)
	c := &Checkpoint{Dir: dir, files: map[string]*SafetensorsFile{base: f}, owner: map[string]string{}, single: true}
	c.Metadata = map[string]any{}
	for k, v := range f.Metadata {
		c.Metadata[k] = v
	}
	for _, n := range f.Names() {
		c.owner[n] = base
	}
	c.names = f.Names()
	return c, nil
}

func openIndex(dir, path string) (*Checkpoint, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	var idx Index
	if err := json.Unmarshal(data, &idx); err != nil {
		return nil, fmt.Errorf("checkpoint %s: invalid JSON: %w", path, err)
	}
	if idx.WeightMap == nil {
		return nil, fmt.Errorf("checkpoint %s: missing key \"weight_map\"", path)
	}
	c := &Checkpoint{Dir: dir, Metadata: idx.Metadata, files: map[string]*SafetensorsFile{}, owner: map[string]string{}}
	// Group tensors by shard so each missing shard is reported with a tensor.
	byShard := map[string][]string{}
	for name, shard := range idx.WeightMap {
		if shard == "" || filepath.IsAbs(shard) || strings.Contains(filepath.ToSlash(shard), "../") {
			c.Close()
			return nil, fmt.Errorf("checkpoint %s: tensor %q maps to invalid shard file name %q", path, name, shard)
		}
		byShard[shard] = append(byShard[shard], name)
	}
	shards := make([]string, 0, len(byShard))
	for s := range byShard {
		shards = append(shards, s)
	}
	sort.Strings(shards)
	for _, shard := range shards {
		names := byShard[shard]
		sort.Strings(names)
		sp := filepath.Join(dir, shard)
		if _, err := os.Stat(sp); errors.Is(err, fs.ErrNotExist) {
			c.Close()
			return nil, fmt.Errorf("checkpoint %s: shard %s (holding tensor %q and %d more) is missing", path, shard, names[0], len(names)-1)
		}
		f, err := OpenSafetensors(sp)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
		}
		c.files[shard] = f
		for _, n := range names {
			if !f.Has(n) {
				c.Close()
				return nil, fmt.Errorf("checkpoint %s: tensor %q is listed in the index under %s but that shard does not contain it", path, n, shard)
			}
			c.owner[n] = shard
		}
		c.names = append(c.names, names...)
	}
	sort.Strings(c.names)
	return c, nil
}

// Close closes all shard files.
func (c *Checkpoint) Close() error {
	var errs []error
	for _, f := range c.files {
		if err := f.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Files returns the files the checkpoint reads, relative to Dir: the
// single file, or the index and its shards (sorted).
func (c *Checkpoint) Files() []string {
	var shards []string
	for f := range c.files {
		shards = append(shards, f)
	}
	sort.Strings(shards)
	if c.single {
		return shards
	}
	return append([]string{IndexFileName}, shards...)
}

// Shard returns the open safetensors file of the checkpoint named file (as
// Info and Files name it, relative to Dir), or nil.
func (c *Checkpoint) Shard(file string) *SafetensorsFile { return c.files[file] }

// Names returns all tensor names, sorted.
func (c *Checkpoint) Names() []string { return append([]string(nil), c.names...) }

// Has reports whether the checkpoint holds name.
func (c *Checkpoint) Has(name string) bool { _, ok := c.owner[name]; return ok }

// Info returns a tensor's dtype, shape and the file it lives in.
func (c *Checkpoint) Info(name string) (TensorInfo, string, error) {
	shard, ok := c.owner[name]
	if !ok {
		return TensorInfo{}, "", fmt.Errorf("checkpoint %s: tensor %q not found", c.Dir, name)
	}
	ti, _ := c.files[shard].Info(name)
	return ti, c.files[shard].Path, nil
}

// Tensor reads a tensor as float32 with its shape.
func (c *Checkpoint) Tensor(name string) ([]float32, []int, error) {
	shard, ok := c.owner[name]
	if !ok {
		return nil, nil, fmt.Errorf("checkpoint %s: tensor %q not found", c.Dir, name)
	}
	return c.files[shard].Tensor(name)
}

// TensorFloat64 reads a tensor as float64.
func (c *Checkpoint) TensorFloat64(name string) ([]float64, []int, error) {
	shard, ok := c.owner[name]
	if !ok {
		return nil, nil, fmt.Errorf("checkpoint %s: tensor %q not found", c.Dir, name)
	}
	return c.files[shard].TensorFloat64(name)
}

// Sharded reports whether the checkpoint came from an index file.
func (c *Checkpoint) Sharded() bool { return !c.single }

// SaveOptions controls Save.
type SaveOptions struct {
	// DType of the stored tensors: "F32" (default) or "BF16" (or "F16").
	DType string
	// MaxShardSize in bytes; 0 means DefaultMaxShardSize. See ParseSize.
	MaxShardSize int64
	// Metadata is added to each file's __metadata__ (format=pt is always set).
	Metadata map[string]string
	// Sums, when set, receives the CRC-32C of every weights file written
	// or linked (for WriteManifest).
	Sums *Sums
}

// ParseSize parses a size like Hugging Face's max_shard_size: "5GB"
// (decimal, 5e9), "500MB", "2GiB" (binary), "1024KB", or a plain byte count.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(strings.ToUpper(s))
	units := []struct {
		suffix string
		mult   int64
	}{
		{"GIB", 1 << 30}, {"MIB", 1 << 20}, {"KIB", 1 << 10},
		{"GB", 1_000_000_000}, {"MB", 1_000_000}, {"KB", 1_000}, {"B", 1},
	}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			mult = u.mult
			t = strings.TrimSpace(strings.TrimSuffix(t, u.suffix))
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("invalid size %q (want e.g. \"5GB\", \"500MB\", \"2GiB\")", s)
	}
	return int64(v * float64(mult)), nil
}

// Save writes tensors to dir in the Hugging Face layout: model.safetensors
// when everything fits in one shard, otherwise model-0000i-of-0000n.safetensors
// plus model.safetensors.index.json. Tensors are assigned to shards in the
// order given (a new shard starts when the next tensor would overflow; a
// tensor larger than the limit gets a shard of its own); names are used
// exactly as given. Existing model*.safetensors files and index in dir are
// removed first so a stale layout cannot shadow the new one.
func Save(dir string, tensors []WriteItem, opts SaveOptions) error {
	return save(dir, tensors, opts, true)
}

// SaveOrdered is Save with each shard's data in the order given (not sorted
// by name): model.WriteRandom's values are drawn in parameter order.
func SaveOrdered(dir string, tensors []WriteItem, opts SaveOptions) error {
	return save(dir, tensors, opts, false)
}

func save(dir string, tensors []WriteItem, opts SaveOptions, sorted bool) error {
	dtype, _, err := normDType(opts.DType)
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	maxShard := opts.MaxShardSize
	if maxShard <= 0 {
		maxShard = DefaultMaxShardSize
	}
	seen := make(map[string]bool, len(tensors))
	for _, t := range tensors {
		if seen[t.Name] {
			return fmt.Errorf("checkpoint %s: duplicate tensor %q", dir, t.Name)
		}
		seen[t.Name] = true
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	if err := RemoveOldCheckpoint(dir); err != nil {
		return err
	}
	var shards [][]WriteItem
	var cur []WriteItem
	var curSize, total int64
	for _, t := range tensors {
		sz := tensorBytes(t, dtype)
		total += sz
		if len(cur) > 0 && curSize+sz > maxShard {
			shards = append(shards, cur)
			cur, curSize = nil, 0
		}
		cur = append(cur, t)
		curSize += sz
	}
	if len(cur) > 0 || len(shards) == 0 {
		shards = append(shards, cur)
	}
	write := writeSafetensors
	if sorted {
		write = WriteSafetensors
	}
	wopts := WriteOptions{DType: dtype, Metadata: opts.Metadata, Sums: opts.Sums}
	if len(shards) == 1 {
		return write(filepath.Join(dir, SingleFileName), shards[0], wopts)
	}
	idx := Index{Metadata: map[string]any{"total_size": total}, WeightMap: map[string]string{}}
	for i, sh := range shards {
		name := fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, len(shards))
		if err := write(filepath.Join(dir, name), sh, wopts); err != nil {
			return err
		}
		for _, t := range sh {
			idx.WeightMap[t.Name] = name
		}
	}
	return writeIndex(dir, idx)
}

// RemoveOldCheckpoint removes the weight files of a checkpoint in dir
// (model.safetensors, shards, index) before new ones are written.
func RemoveOldCheckpoint(dir string) error {
	old, _ := filepath.Glob(filepath.Join(dir, "model-*-of-*.safetensors"))
	old = append(old, filepath.Join(dir, SingleFileName), filepath.Join(dir, IndexFileName))
	for _, p := range old {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("checkpoint %s: removing old %s: %w", dir, filepath.Base(p), err)
		}
	}
	return nil
}

// tokenizerFiles are the files of a Hugging Face tokenizer directory.
var tokenizerFiles = []string{"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}

// CopyTokenizer copies the tokenizer files present in src into a checkpoint
// directory, so the directory is self-contained as on the Hub.
func CopyTokenizer(src, dst string) error {
	n := 0
	for _, f := range tokenizerFiles {
		data, err := os.ReadFile(filepath.Join(src, f))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, f), data, 0o644); err != nil {
			return err
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("copy tokenizer: no tokenizer files in %s", src)
	}
	return nil
}

// writeIndex writes model.safetensors.index.json.
func writeIndex(dir string, idx Index) error {
	data, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	if err := os.WriteFile(filepath.Join(dir, IndexFileName), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	return nil
}
