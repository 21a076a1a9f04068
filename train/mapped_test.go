package train

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/model"
	"github.com/magma-go/magma/model/ckpt"
	"github.com/magma-go/magma/nn"
)

// finetune with trainable: lora from a bf16 checkpoint (init_from): the base
// is the mapped shards themselves (read-only, never copied), training and a
// resume from a checkpoint of that run never write into it, and the
// interrupted run ends where an uninterrupted one does. Full fine-tuning of
// the same checkpoint trains float32 copies. The run's checkpoints link the
// base's file rather than writing it again.
func TestLoRAOnMappedBF16Base(t *testing.T) {
	base := testConfig(1)
	m, pp := testModel(t, base)
	baseDir := filepath.Join(t.TempDir(), "base")
	if err := m.Save(baseDir, pp, ckpt.SaveOptions{DType: "BF16"}); err != nil {
		t.Fatal(err)
	}
	const steps = 4
	run := func(out string, resume bool, stopAt int) (*Result, *model.Magma, error) {
		return runLoRAWith(t, out, steps, resume, stopAt, func(c *Config) {
			c.Model = ModelConfig{InitFrom: baseDir}
			c.Checkpoint = CheckpointConfig{Every: 2}
		})
	}
	mapped := func(t *testing.T, m *model.Magma) {
		t.Helper()
		ps, _ := nn.Parameters(m, "")
		for _, p := range ps {
			if p.T.Dtype() != kernels.BFloat16 || !kernels.IsReadOnly(p.T) {
				t.Fatalf("%s: %v, read-only %v: want the mapped bf16 shard", p.Name, p.T.Dtype(), kernels.IsReadOnly(p.T))
			}
		}
	}
	full, fm, err := run(t.TempDir(), false, 0)
	if err != nil {
		t.Fatal(err)
	}
	mapped(t, fm)
	// its checkpoints link the base's files instead of writing them again
	for _, f := range []string{ckpt.SingleFileName} {
		a, err1 := os.Stat(filepath.Join(baseDir, f))
		b, err2 := os.Stat(filepath.Join(full.Checkpoint, f))
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if !os.SameFile(a, b) {
			t.Errorf("checkpoint %s: %s is not a link of the base's", full.Checkpoint, f)
		}
	}
	out := t.TempDir()
	if _, _, err := run(out, false, 3); !errors.Is(err, errStop) {
		t.Fatalf("interrupted run: %v", err)
	}
	resumed, rm, err := run(out, true, 0)
	if err != nil {
		t.Fatal(err)
	}
	mapped(t, rm)
	if resumed.Resumed != 2 || !slices.Equal(resumed.Losses, full.Losses[2:]) {
		t.Errorf("resumed from %d with losses %v, uninterrupted %v", resumed.Resumed, resumed.Losses, full.Losses)
	}

	c := testConfig(1)
	c.Model = ModelConfig{InitFrom: baseDir}
	fm, _ = testModel(t, c)
	ps, _ := nn.Parameters(fm, "")
	for _, p := range ps {
		if p.T.Dtype() != fm.LM.Dtype() || kernels.IsReadOnly(p.T) {
			t.Fatalf("trainable: all: %s is %v, read-only %v: want a float32 copy", p.Name, p.T.Dtype(), kernels.IsReadOnly(p.T))
		}
	}
	c.Model.Dtype = "bf16"
	if _, _, _, err := InitModel(c); err == nil {
		t.Error("trainable: all with model.dtype bf16 loaded")
	}
}
