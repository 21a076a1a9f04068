package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
)

// Linked weights. A model whose every weight is a read-only view of one
// mapped checkpoint (a frozen bf16 base under trainable: lora) holds
// exactly that checkpoint's bytes: its weights can be saved by linking the
// checkpoint's files instead of writing them again (18 GB for Magma-8B, at
// every training checkpoint). The files are hard-linked when the
// filesystem allows it (same filesystem, and the user may link them), or
// copied with the kernel's file copy otherwise. Every writer in this
// project replaces a file (temporary file + rename) rather than writing
// into it, so a link never lets a later save change the base.

// LinkResult says how LinkWeights saved the weights.
type LinkResult struct {
	Source string   // the checkpoint directory the weights are views of
	Files  []string // the files linked or copied (shards and index)
	Linked int      // how many were hard-linked (the rest were copied)
	Bytes  int64    // their size
}

// LinkWeights saves m's weights into dir by linking the files of the
// checkpoint they are mapped from, when every weight is in place: a
// read-only view of the stored tensor of the same name, all in one
// checkpoint directory. It returns nil (and writes nothing) when some
// weight is not (copied, converted, trained, or from elsewhere): the caller
// then saves the weights as usual. The config files are the caller's.
func LinkWeights(dir string, m *Magma) (*LinkResult, error) {
	ps, err := Parameters(m, "")
	if err != nil {
		return nil, err
	}
	if len(ps) == 0 {
		return nil, nil
	}
	src := ""
	owner := map[string]string{} // weight name -> file base name
	for _, p := range ps {
		path, name, ok := MappedSource(p.T)
		if !ok || name != p.Name {
			return nil, nil
		}
		d := filepath.Dir(path)
		if src == "" {
			src = d
		} else if d != src {
			return nil, nil
		}
		owner[p.Name] = filepath.Base(path)
	}
	files, err := checkpointFiles(src)
	if err != nil {
		return nil, err
	}
	if files == nil {
		return nil, nil
	}
	have := map[string]bool{}
	for _, f := range files {
		have[f] = true
	}
	for _, f := range owner {
		if !have[f] {
			return nil, nil // a file the directory's checkpoint does not read
		}
	}
	res := &LinkResult{Source: src}
	for _, f := range files {
		linked, n, err := linkOrCopy(filepath.Join(src, f), filepath.Join(dir, f))
		if err != nil {
			return nil, err
		}
		res.Files = append(res.Files, f)
		res.Bytes += n
		if linked {
			res.Linked++
		}
	}
	return res, nil
}

// checkpointFiles lists the files of the checkpoint in dir as Open reads
// it: model.safetensors alone, or the index and every shard it names; nil
// when dir holds neither.
func checkpointFiles(dir string) ([]string, error) {
	if _, err := os.Stat(filepath.Join(dir, SingleFileName)); err == nil {
		return []string{SingleFileName}, nil
	}
	path := filepath.Join(dir, IndexFileName)
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	var idx indexFile
	if err := json.Unmarshal(raw, &idx); err != nil {
		return nil, fmt.Errorf("checkpoint %s: invalid JSON: %w", path, err)
	}
	seen := map[string]bool{}
	files := []string{IndexFileName}
	for name, shard := range idx.WeightMap {
		if shard == "" || filepath.Base(shard) != shard {
			return nil, fmt.Errorf("checkpoint %s: tensor %q maps to invalid shard file name %q", path, name, shard)
		}
		if !seen[shard] {
			seen[shard] = true
			files = append(files, shard)
		}
	}
	sort.Strings(files[1:])
	return files, nil
}

// linkFile is os.Link (tests make it fail to exercise the copy).
var linkFile = os.Link

// linkOrCopy makes dst a hard link of src, or a copy when linking fails
// (another filesystem, no permission). It reports which and the size.
func linkOrCopy(src, dst string) (linked bool, n int64, err error) {
	st, err := os.Stat(src)
	if err != nil {
		return false, 0, err
	}
	if err := linkFile(src, dst); err == nil {
		return true, st.Size(), nil
	}
	in, err := os.Open(src)
	if err != nil {
		return false, 0, err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return false, 0, err
	}
	n, err = io.Copy(out, in) // copy_file_range on Linux
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(dst)
		return false, 0, fmt.Errorf("copying %s to %s: %w", src, dst, err)
	}
	return false, n, nil
}
