package model

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"gorgonia.org/tensor"

	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/model/ckpt"
	"github.com/magma-go/magma/model/internal/fshook"
	"github.com/magma-go/magma/nn"
)

// A model whose weights are all in place in one checkpoint saves them by
// linking that checkpoint's files (or copying them where links fail); any
// weight not in place (converted on load) makes SaveLinking write them.
func TestSaveLinking(t *testing.T) {
	cases := []struct {
		name     string
		src      string
		opts     LoadOptions
		noLink   bool // os.Link fails: the files are copied
		want     []string
		linkable bool // false: the weights are written, not linked
	}{
		{"mixed shards in place", mixedDir, LoadOptions{}, false,
			[]string{ckpt.IndexFileName, "model-00001-of-00004.safetensors", "model-00002-of-00004.safetensors", "model-00003-of-00004.safetensors", "model-00004-of-00004.safetensors"}, true},
		{"single file in place", parityDir, LoadOptions{}, false, []string{ckpt.SingleFileName}, true},
		{"links refused: copied", mixedDir, LoadOptions{}, true,
			[]string{ckpt.IndexFileName, "model-00001-of-00004.safetensors", "model-00002-of-00004.safetensors", "model-00003-of-00004.safetensors", "model-00004-of-00004.safetensors"}, true},
		{"F32 shards converted to bf16", mixedDir, LoadOptions{Dtype: kernels.BFloat16}, false, nil, false},
		{"converted to f32", mixedDir, LoadOptions{Dtype: tensor.Float32, Writable: true}, false, nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := copyDir(t, c.src)
			ld, err := LoadWith(src, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer ld.Close()
			if c.noLink {
				fshook.Link = func(string, string) error { return &os.LinkError{Op: "link", Err: errors.New("cross-device link")} }
				defer func() { fshook.Link = os.Link }()
			}
			out := filepath.Join(t.TempDir(), "ckpt")
			// written weights take the dtype the model holds (as the trainer's
			// checkpoints do); linked ones keep their stored dtypes
			dt := "BF16"
			if c.opts.Dtype == tensor.Float32 {
				dt = "F32"
			}
			res, err := ld.Model.SaveLinking(out, ld.Preprocessor, ckpt.SaveOptions{DType: dt})
			if err != nil {
				t.Fatal(err)
			}
			if !c.linkable {
				if res != nil {
					t.Fatalf("linked %v, but some weights are not in place", res.Files)
				}
			} else {
				if res == nil {
					t.Fatal("weights written, want them linked")
				}
				if res.Source != src || !slices.Equal(res.Files, c.want) {
					t.Errorf("linked %v from %s, want %v from %s", res.Files, res.Source, c.want, src)
				}
				wantLinked := len(c.want)
				if c.noLink {
					wantLinked = 0
				}
				if res.Linked != wantLinked {
					t.Errorf("%d of %d files hard-linked, want %d", res.Linked, len(res.Files), wantLinked)
				}
				for _, f := range c.want {
					a, err1 := os.Stat(filepath.Join(src, f))
					b, err2 := os.Stat(filepath.Join(out, f))
					if err1 != nil || err2 != nil {
						t.Fatal(err1, err2)
					}
					if os.SameFile(a, b) == c.noLink {
						t.Errorf("%s: same file %v, want %v", f, os.SameFile(a, b), !c.noLink)
					}
				}
			}
			// Either way the saved checkpoint loads to the same values, in
			// the dtypes the model held.
			got, err := Load(out)
			if err != nil {
				t.Fatal(err)
			}
			defer got.Close()
			want, _ := nn.Parameters(ld.Model, "")
			have, _ := nn.Parameters(got.Model, "")
			if len(want) != len(have) {
				t.Fatalf("%d weights saved, model has %d", len(have), len(want))
			}
			for i, p := range want {
				q := have[i]
				if p.Name != q.Name || p.T.Dtype() != q.T.Dtype() {
					t.Fatalf("weight %d: saved %s %v, model %s %v", i, q.Name, q.T.Dtype(), p.Name, p.T.Dtype())
				}
				if j := sameBits(widened(q.T), widened(p.T)); j >= 0 {
					t.Fatalf("%s: value %d differs after the save", p.Name, j)
				}
			}
			for _, f := range []string{"config.json", "preprocessor_config.json"} {
				if _, err := os.Stat(filepath.Join(out, f)); err != nil {
					t.Errorf("%s not written: %v", f, err)
				}
			}
		})
	}
}

// A shard replaced on disk after it was mapped (written over by rename)
// no longer holds the model's bytes: the weights are written, not linked.
func TestSaveLinkingShardReplaced(t *testing.T) {
	src := copyDir(t, parityDir)
	ld, err := Load(src)
	if err != nil {
		t.Fatal(err)
	}
	defer ld.Close()
	data, err := os.ReadFile(filepath.Join(src, ckpt.SingleFileName))
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(src, "new")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(src, ckpt.SingleFileName)); err != nil {
		t.Fatal(err)
	}
	res, err := ld.Model.SaveLinking(filepath.Join(t.TempDir(), "ckpt"), ld.Preprocessor, ckpt.SaveOptions{DType: "F32"})
	if err != nil {
		t.Fatal(err)
	}
	if res != nil {
		t.Fatalf("linked %v from a shard replaced since it was mapped", res.Files)
	}
}

// An index may name a shard in a subfolder (Open reads it): the link
// keeps the layout.
func TestSaveLinkingShardInSubfolder(t *testing.T) {
	src := copyDir(t, mixedDir)
	const moved = "model-00004-of-00004.safetensors"
	if err := os.Mkdir(filepath.Join(src, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(src, moved), filepath.Join(src, "sub", moved)); err != nil {
		t.Fatal(err)
	}
	idx := readIndex(t, src)
	for n, f := range idx.WeightMap {
		if f == moved {
			idx.WeightMap[n] = "sub/" + moved
		}
	}
	raw, _ := json.Marshal(idx)
	if err := os.WriteFile(filepath.Join(src, ckpt.IndexFileName), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	ld, err := Load(src)
	if err != nil {
		t.Fatal(err)
	}
	defer ld.Close()
	out := filepath.Join(t.TempDir(), "ckpt")
	res, err := ld.Model.SaveLinking(out, ld.Preprocessor, ckpt.SaveOptions{DType: "BF16"})
	if err != nil {
		t.Fatal(err)
	}
	if res == nil || !slices.Contains(res.Files, "sub/"+moved) {
		t.Fatalf("linked %v, want the subfolder's shard among them", res)
	}
	got, err := Load(out)
	if err != nil {
		t.Fatal(err)
	}
	got.Close()
}
