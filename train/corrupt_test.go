package train

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/magma-go/magma/model"
	"github.com/magma-go/magma/model/ckpt"
	"github.com/magma-go/magma/nn"
)

// Issue 31, data safety point 1: a damaged checkpoint is found on --resume
// (checksums of the manifest, NaN or infinite weights) and the previous
// intact one is used.

// xorBytes flips n bytes of path from the middle of the file on.
func xorBytes(t *testing.T, path string, n int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	mid := len(data) / 2
	for i := mid; i < mid+n && i < len(data); i++ {
		data[i] ^= 0x5a
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// firstF32Tensor is the first float32 tensor of a safetensors file whose
// name contains sub.
func firstF32Tensor(t *testing.T, path, sub string) string {
	t.Helper()
	f, err := ckpt.OpenSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, n := range f.Names() {
		if ti, _ := f.Info(n); ti.DType == ckpt.DTypeF32 && strings.Contains(n, sub) && ti.NumElements() > 3 {
			return n
		}
	}
	t.Fatalf("%s: no F32 tensor matching %q", path, sub)
	return ""
}

// writeNaN stores a NaN in element 3 of tensor name of a safetensors file
// (in place, as a bit flip in the exponent would).
func writeNaN(t *testing.T, path, name string) {
	t.Helper()
	f, err := ckpt.OpenSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	ti, _ := f.Info(name)
	f.Close()
	fh, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var hl [8]byte
	if _, err := fh.ReadAt(hl[:], 0); err != nil {
		t.Fatal(err)
	}
	off := 8 + int64(binary.LittleEndian.Uint64(hl[:])) + ti.Begin + 3*4
	var nan [4]byte
	binary.LittleEndian.PutUint32(nan[:], math.Float32bits(float32(math.NaN())))
	if _, err := fh.WriteAt(nan[:], off); err != nil {
		t.Fatal(err)
	}
}

func TestResumeRejectsCorruptCheckpoint(t *testing.T) {
	// One interrupted run (checkpoints at steps 8 and 12) is copied for
	// every case.
	base := t.TempDir()
	stop := errors.New("stop")
	_, err := faultRun(t, base, false, &bytes.Buffer{}, func(o *Options) {
		o.Hooks.OnStep = func(si StepInfo) error {
			if si.Step >= 13 {
				return stop
			}
			return nil
		}
	})
	if !errors.Is(err, stop) {
		t.Fatalf("first run: %v", err)
	}
	steps, _ := listSteps(filepath.Join(base, checkpointsDir))
	if len(steps) != 2 {
		t.Fatalf("checkpoints %v", steps)
	}
	older, newer := stepName(steps[0]), stepName(steps[1])
	// Every file of a checkpoint is in its manifest, with the algorithm.
	man, err := ckpt.ReadManifest(filepath.Join(base, checkpointsDir, newer))
	if err != nil || man == nil {
		t.Fatalf("manifest of %s: %v %v", newer, man, err)
	}
	for _, f := range []string{ckpt.SingleFileName, optimizerFile, stateFile, model.ConfigFileName} {
		if _, ok := man.Files[f]; !ok {
			t.Errorf("manifest of %s lacks %s: %v", newer, f, man.Files)
		}
	}
	if man.Algorithm != ckpt.ChecksumAlgorithm {
		t.Errorf("algorithm %q", man.Algorithm)
	}
	tensor := firstF32Tensor(t, filepath.Join(base, checkpointsDir, newer, ckpt.SingleFileName), "layers.0.")

	for _, tc := range []struct {
		name string
		// damage changes the run folder's checkpoints.
		damage func(t *testing.T, ck string)
		// resumed is the checkpoint the run must continue from ("": none).
		resumed string
		// want are strings the log (or, with resumed "", the error) holds.
		want []string
	}{
		{"xor 64 bytes", func(t *testing.T, ck string) {
			xorBytes(t, filepath.Join(ck, newer, ckpt.SingleFileName), 64)
		}, older, []string{"corrupt", filepath.Join(newer, ckpt.SingleFileName), "checksum", "falling back to " + filepath.Join(ck0, older)}},
		{"xor 64 bytes of the optimizer state", func(t *testing.T, ck string) {
			xorBytes(t, filepath.Join(ck, newer, optimizerFile), 64)
		}, older, []string{"corrupt", filepath.Join(newer, optimizerFile), "falling back to"}},
		{"NaN weight saved with its checksums", func(t *testing.T, ck string) {
			writeNaN(t, filepath.Join(ck, newer, ckpt.SingleFileName), tensor)
			if _, err := ckpt.WriteManifest(filepath.Join(ck, newer), nil); err != nil {
				t.Fatal(err)
			}
		}, older, []string{"corrupt", tensor, "NaN", "falling back to"}},
		{"NaN weight in a checkpoint without manifest", func(t *testing.T, ck string) {
			writeNaN(t, filepath.Join(ck, newer, ckpt.SingleFileName), tensor)
			os.Remove(filepath.Join(ck, newer, ckpt.ManifestFileName))
		}, older, []string{"note: ", "has no " + ckpt.ManifestFileName, "corrupt", tensor, "falling back to"}},
		{"intact checkpoint without manifest", func(t *testing.T, ck string) {
			os.Remove(filepath.Join(ck, newer, ckpt.ManifestFileName))
		}, newer, []string{"note: ", filepath.Join(ck0, newer) + " has no " + ckpt.ManifestFileName}},
		{"none intact", func(t *testing.T, ck string) {
			xorBytes(t, filepath.Join(ck, newer, ckpt.SingleFileName), 64)
			writeNaN(t, filepath.Join(ck, older, ckpt.SingleFileName), tensor)
			if _, err := ckpt.WriteManifest(filepath.Join(ck, older), nil); err != nil {
				t.Fatal(err)
			}
		}, "", []string{"no intact checkpoint", filepath.Join(newer, ckpt.SingleFileName), "checksum", older, tensor}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "run")
			if err := os.CopyFS(out, os.DirFS(base)); err != nil {
				t.Fatal(err)
			}
			ck := filepath.Join(out, checkpointsDir)
			tc.damage(t, ck)
			var log bytes.Buffer
			res, err := faultRun(t, out, true, &log, nil)
			text := log.String()
			if tc.resumed == "" {
				if err == nil {
					t.Fatalf("resumed from %d with no intact checkpoint:\n%s", res.Resumed, text)
				}
				text = err.Error()
			} else {
				if err != nil {
					t.Fatalf("resume: %v\n%s", err, text)
				}
				if stepName(res.Resumed) != tc.resumed {
					t.Fatalf("resumed from %s, want %s\n%s", stepName(res.Resumed), tc.resumed, text)
				}
				if res.Steps != resumeSteps {
					t.Fatalf("ran to step %d", res.Steps)
				}
			}
			text = strings.ReplaceAll(text, ck, ck0)
			for _, w := range tc.want {
				if !strings.Contains(text, w) {
					t.Errorf("%q missing from:\n%s", w, text)
				}
			}
		})
	}
}

// ck0 stands for the checkpoints folder of the run in expected messages.
var ck0 = filepath.Join("RUN", checkpointsDir)

// A LoRA run on a mapped base links the base's shards into its checkpoints:
// their checksums are the ones the base's manifest records (not read again),
// or computed from the file when the base has none; either way the
// checkpoint verifies, and a damaged adapter file is found on --resume.
func TestLinkedBaseChecksums(t *testing.T) {
	for _, baseManifest := range []bool{true, false} {
		base := testConfig(1)
		m, pp := testModel(t, base)
		baseDir := filepath.Join(t.TempDir(), "base")
		if err := m.Save(baseDir, pp, ckpt.SaveOptions{DType: "BF16"}); err != nil {
			t.Fatal(err)
		}
		var bm *ckpt.Manifest
		if baseManifest {
			var err error
			if bm, err = ckpt.WriteManifest(baseDir, nil); err != nil {
				t.Fatal(err)
			}
		}
		out := t.TempDir()
		edit := func(c *Config) {
			c.Model = ModelConfig{InitFrom: baseDir}
			c.Checkpoint = CheckpointConfig{Every: 2}
		}
		if _, _, err := runLoRAWith(t, out, 4, false, 3, edit); !errors.Is(err, errStop) {
			t.Fatalf("interrupted run: %v", err)
		}
		dir := filepath.Join(out, checkpointsDir, stepName(2))
		v, err := ckpt.VerifyManifest(dir)
		if err != nil || v.Algorithm == "" {
			t.Fatalf("checkpoint with a linked base (base manifest %v): %v %v", baseManifest, v, err)
		}
		man, _ := ckpt.ReadManifest(dir)
		for _, f := range []string{ckpt.SingleFileName, ckpt.AdapterWeightsFile, optimizerFile} {
			if _, ok := man.Files[f]; !ok {
				t.Errorf("manifest lacks %s", f)
			}
		}
		if bm != nil && man.Files[ckpt.SingleFileName] != bm.Files[ckpt.SingleFileName] {
			t.Errorf("linked %s: %+v, the base recorded %+v", ckpt.SingleFileName, man.Files[ckpt.SingleFileName], bm.Files[ckpt.SingleFileName])
		}
		if baseManifest {
			continue
		}
		xorBytes(t, filepath.Join(dir, ckpt.AdapterWeightsFile), 64)
		_, _, err = runLoRAWith(t, out, 4, true, 0, edit)
		if err == nil || !strings.Contains(err.Error(), "no intact checkpoint") || !strings.Contains(err.Error(), filepath.Join(dir, ckpt.AdapterWeightsFile)) {
			t.Fatalf("resume from a damaged adapter file: %v", err)
		}
	}
}

// A weight that turned NaN in memory is never saved: the save names the
// tensor and the checkpoints on disk stay the last good ones.
func TestNonFiniteWeightsNeverSaved(t *testing.T) {
	out := t.TempDir()
	var poisoned string
	_, err := faultRun(t, out, false, &bytes.Buffer{}, func(o *Options) {
		m := o.Model
		o.Hooks.OnStep = func(si StepInfo) error {
			if si.Step != 8 { // checkpoints every 4 steps
				return nil
			}
			ps, _ := nn.Parameters(m, "")
			for _, p := range ps {
				if d, ok := p.T.Data().([]float32); ok && len(d) > 2 && strings.Contains(p.Name, "layers.1.") {
					d[2] = float32(math.Inf(1))
					poisoned = p.Name
					return nil
				}
			}
			t.Fatal("no float32 weight to poison")
			return nil
		}
	})
	if err == nil || !strings.Contains(err.Error(), "not written") || !strings.Contains(err.Error(), poisoned) {
		t.Fatalf("saving an infinite weight %s: %v", poisoned, err)
	}
	steps, _ := listSteps(filepath.Join(out, checkpointsDir))
	if len(steps) != 1 || steps[0] != 4 {
		t.Fatalf("checkpoints %v, want only the good step 4", steps)
	}
}
