package main

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/magma-go/magma/model"
	"github.com/magma-go/magma/model/ckpt"
)

// Issue 31, data safety point 1: --verify on load names a damaged file (or
// a tensor holding NaN) of the checkpoint, wherever the CLI loads one.

// verifyFixture copies the parity checkpoint's model files into a fresh
// folder and writes their manifest.
func verifyFixture(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ckpt")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{model.ConfigFileName, "preprocessor_config.json", ckpt.SingleFileName} {
		data, err := os.ReadFile(filepath.Join(parityDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ckpt.WriteManifest(dir, nil); err != nil {
		t.Fatal(err)
	}
	return dir
}

// damage XORs 64 bytes in the middle of path.
func damage(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := len(data) / 2; i < len(data)/2+64; i++ {
		data[i] ^= 0xff
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// nanInto stores a float32 NaN in the first element of tensor name of an
// F32 model.safetensors.
func nanInto(t *testing.T, dir, name string) {
	t.Helper()
	path := filepath.Join(dir, ckpt.SingleFileName)
	f, err := ckpt.OpenSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	ti, ok := f.Info(name)
	f.Close()
	if !ok || ti.DType != ckpt.DTypeF32 {
		t.Fatalf("%s: %s is %v", path, name, ti.DType)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	off := 8 + int64(binary.LittleEndian.Uint64(data)) + ti.Begin
	binary.LittleEndian.PutUint32(data[off:], math.Float32bits(float32(math.NaN())))
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyFlagOnLoad(t *testing.T) {
	const tensor = "language_model.model.layers.0.self_attn.o_proj.weight"
	cases := []struct {
		name  string
		prep  func(t *testing.T, dir string)
		want  []string // in the error; nil: the command succeeds
		plain bool     // the command also succeeds without --verify
	}{
		{"intact", func(*testing.T, string) {}, nil, true},
		{"64 bytes flipped", func(t *testing.T, dir string) { damage(t, filepath.Join(dir, ckpt.SingleFileName)) },
			[]string{"corrupt checkpoint", filepath.Join("DIR", ckpt.SingleFileName), "checksum"}, false},
		{"NaN weight saved with its checksums", func(t *testing.T, dir string) {
			nanInto(t, dir, tensor)
			if _, err := ckpt.WriteManifest(dir, nil); err != nil {
				t.Fatal(err)
			}
		}, []string{"corrupt checkpoint", tensor, "NaN"}, false},
	}
	gen := func(dir string, extra ...string) (string, error) {
		return runMagma(t, append([]string{"generate", "--model", dir, "--prompt-ids", "1,2,3", "--max-new-tokens", "1", "--json"}, extra...)...)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := verifyFixture(t)
			c.prep(t, dir)
			out, err := gen(dir, "--verify")
			if c.want == nil {
				if err != nil {
					t.Fatalf("generate --verify: %v\n%s", err, out)
				}
			} else {
				if err == nil {
					t.Fatalf("generate --verify accepted the damage:\n%s", out)
				}
				msg := strings.ReplaceAll(err.Error(), dir, "DIR")
				for _, w := range c.want {
					if !strings.Contains(msg, w) {
						t.Errorf("%q missing from %q", w, msg)
					}
				}
			}
			if c.plain {
				if out, err := gen(dir); err != nil {
					t.Fatalf("generate without --verify: %v\n%s", err, out)
				}
			}
		})
	}
}

// finetune's starting checkpoint (--model, --init, model.init_from) is
// checked with --verify before training.
func TestVerifyFlagOnFinetune(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "sft.json")
	recs := `[{"id": "b", "conversations": [{"from": "human", "value": "Say hi."}, {"from": "gpt", "value": "Hi."}]}]`
	if err := os.WriteFile(data, []byte(recs), 0o644); err != nil {
		t.Fatal(err)
	}
	init := filepath.Join(dir, "tiny")
	if log, err := runMagma(t, "init", "--preset", "tiny", "--out", init); err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	if _, err := ckpt.WriteManifest(init, nil); err != nil {
		t.Fatal(err)
	}
	damage(t, filepath.Join(init, ckpt.SingleFileName))
	log, err := runMagma(t, "finetune", "sft", "--data", data, "--model", init, "--steps", "1", "--batch-size", "1", "--out", filepath.Join(dir, "run"), "--verify")
	if err == nil || !strings.Contains(err.Error(), filepath.Join(init, ckpt.SingleFileName)) || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("finetune --verify on a damaged --model: %v\n%s", err, log)
	}
	if _, serr := os.Stat(filepath.Join(dir, "run", "metrics.jsonl")); serr == nil {
		t.Fatal("trained from a damaged checkpoint")
	}
}
