package ckpt

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/magma-go/magma/model/internal/fshook"
	"github.com/magma-go/magma/nn"
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

// LinkWeights saves the weights under root (a model, named as in its
// checkpoint) into dir by linking the files of the
// checkpoint they are mapped from, when every weight is in place: a
// read-only view of the stored tensor of the same name, in the file the
// checkpoint (found from the first weight's file, opened as Open reads it)
// gives for that name. It returns nil (and writes nothing) when
// some weight is not (copied, converted, trained, or from elsewhere): the
// caller then saves the weights as usual. The config files are the caller's.
//
// Each linked file's checksum is recorded in sums when it is not nil
// (the source's manifest entry or a checksum computed before, when there
// is one: the 17 GB of a Magma-8B base are not read at every save).
func LinkWeights(dir string, root any, sums *Sums) (*LinkResult, error) {
	ps, err := nn.Parameters(root, "")
	if err != nil {
		return nil, err
	}
	paths := make([]string, len(ps))
	for i, p := range ps {
		path, name, ok := MappedSource(p.T)
		if !ok || name != p.Name {
			return nil, nil
		}
		paths[i] = path
	}
	if len(ps) == 0 {
		return nil, nil
	}
	// The checkpoint is in the folder of a weight's file or above it (an
	// index may name shards in subfolders); every weight is checked against
	// it below.
	src := filepath.Dir(paths[0])
	for !hasCheckpoint(src) {
		up := filepath.Dir(src)
		if up == src {
			return nil, nil
		}
		src = up
	}
	ck, err := Open(src)
	if err != nil {
		return nil, err
	}
	defer ck.Close()
	for i, p := range ps {
		if _, file, err := ck.Info(p.Name); err != nil || file != paths[i] {
			return nil, nil // not where the checkpoint reads it from
		}
	}
	return LinkFiles(src, dir, ck.Files(), sums)
}

// LinkFiles links (or copies) files, paths relative to the checkpoint
// folder src, into dir under the same names, recording each one's checksum
// in sums when it is not nil (src's manifest entry when it has one, else
// computed). LinkWeights uses it for safetensors shards; a quantized base
// links its model.gguf the same way.
func LinkFiles(src, dir string, files []string, sums *Sums) (*LinkResult, error) {
	res := &LinkResult{Source: src}
	var srcMan *Manifest
	if sums != nil {
		// A damaged manifest of the source is not fatal here: the
		// checksums are then computed from the files.
		srcMan, _ = ReadManifest(src)
	}
	for _, f := range files {
		linked, n, err := linkOrCopy(filepath.Join(src, f), filepath.Join(dir, f))
		if err != nil {
			return nil, err
		}
		if sums != nil {
			sum, err := linkedSum(src, filepath.ToSlash(f), srcMan)
			if err != nil {
				return nil, err
			}
			sums.record(filepath.Join(dir, f), n, sum)
		}
		res.Files = append(res.Files, f)
		res.Bytes += n
		if linked {
			res.Linked++
		}
	}
	return res, nil
}

// hasCheckpoint reports whether dir holds model.safetensors or an index.
func hasCheckpoint(dir string) bool {
	for _, f := range []string{SingleFileName, IndexFileName} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return true
		}
	}
	return false
}

// linkOrCopy makes dst a hard link of src, or a copy when linking fails
// (another filesystem, no permission). It reports which and the size.
func linkOrCopy(src, dst string) (linked bool, n int64, err error) {
	st, err := os.Stat(src)
	if err != nil {
		return false, 0, err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return false, 0, err
	}
	if err := fshook.Link(src, dst); err == nil {
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
