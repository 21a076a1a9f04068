package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/magma-go/magma/model/ckpt"
	"github.com/magma-go/magma/model/pth"
)

// `magma convert pth2safetensors` end to end: the torch.save fixtures of
// model/pth become safetensors files with the same names, dtypes, shapes and
// bytes (views contiguous); a malicious pickle is refused by name and
// leaves no output file.
func TestConvertPth2Safetensors(t *testing.T) {
	dir := t.TempDir()
	for _, fx := range []string{"dtypes", "views", "nested", "module"} {
		in := filepath.Join("..", "..", "model", "pth", "testdata", fx+".pth")
		out := filepath.Join(dir, fx+".safetensors")
		log, err := runMagma(t, "convert", "pth2safetensors", in, out)
		if err != nil {
			t.Fatalf("%s: %v\n%s", fx, err, log)
		}
		if !strings.Contains(log, "wrote ") || !strings.Contains(log, out) {
			t.Fatalf("%s: log %q", fx, log)
		}
		src, err := pth.Open(in)
		if err != nil {
			t.Fatal(err)
		}
		st, err := ckpt.OpenSafetensors(out)
		if err != nil {
			t.Fatal(err)
		}
		want := src.Names()
		sort.Strings(want)
		got := st.Names()
		sort.Strings(got)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: names %q, want %q", fx, got, want)
		}
		for _, n := range want {
			raw, info, err := src.Raw(n)
			if err != nil {
				t.Fatal(err)
			}
			b, ti, err := st.ReadRaw(n)
			if err != nil {
				t.Fatal(err)
			}
			if ti.DType != info.DType || fmt.Sprint(ti.Shape) != fmt.Sprint(info.Shape) || !bytes.Equal(b, raw) {
				t.Fatalf("%s %s: %s %v %x, want %s %v %x", fx, n, ti.DType, ti.Shape, b, info.DType, info.Shape, raw)
			}
		}
		st.Close()
		src.Close()
	}
	out := filepath.Join(dir, "evil.safetensors")
	_, err := runMagma(t, "convert", "pth2safetensors", filepath.Join("..", "..", "model", "pth", "testdata", "evil_os_system.pth"), out)
	if err == nil || !strings.Contains(err.Error(), "posix.system") {
		t.Fatalf("evil pickle: %v", err)
	}
	if _, serr := os.Stat(out); !os.IsNotExist(serr) {
		t.Fatalf("a refused conversion left %s", out)
	}
	if _, err := runMagma(t, "convert", "pth2safetensors", "only-one-arg"); err == nil {
		t.Fatal("one argument accepted")
	}
}
