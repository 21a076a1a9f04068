package data

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/magma-go/magma/configs/pretrain"
)

// The released-data recipe's data section uses only known source types.
func TestReleasedRecipeParses(t *testing.T) {
	raw, err := pretrain.Raw("magma-8b-released")
	if err != nil {
		t.Fatal(err)
	}
	var whole struct {
		Data yaml.Node `yaml:"data"`
	}
	if err := yaml.Unmarshal(raw, &whole); err != nil {
		t.Fatal(err)
	}
	sec, _ := yaml.Marshal(&whole.Data)
	c, err := ParseMixtureConfig(sec, "/")
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]bool{}
	for _, s := range c.Sources {
		types[s.Type] = true
	}
	for _, want := range []string{"llava", "magma_tom", "magma_som"} {
		if !types[want] {
			t.Fatalf("recipe has no %s source", want)
		}
	}
}

// A mixture of every real-format source type streams, and a stream
// restored from its state continues with the same batches.
func TestReleasedFormatsMixture(t *testing.T) {
	abs, _ := filepath.Abs(".")
	y := `
batch_size: 3
workers: 2
on_error: skip
sources:
  - {name: video-tom, type: magma_tom, path: hf/testdata/video_tom, video_folder: hf/testdata/video_tom/videos, weight: 0.3}
  - {name: oxe-tom, type: magma_tom, path: hf/testdata/oxe_tom, robot: true, trace_size: [256, 256], weight: 0.2}
  - {name: aitw-som, type: magma_som, path: hf/testdata/aitw_som, weight: 0.2}
  - {name: mind2web-som, type: magma_som, path: hf/testdata/mind2web_som, weight: 0.1}
  - {name: bridge, type: rlds, path: rlds/testdata/bridge_orig, weight: 0.2}
`
	c, err := ParseMixtureConfig([]byte(y), abs)
	if err != nil {
		t.Fatal(err)
	}
	env := testEnv(t)
	mix, err := c.Build(env, t.TempDir(), 5)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	run := func(state []byte, n int) ([][]int, []byte) {
		s, err := mix.Stream(ctx, StreamOptions{Seed: 5, BatchSize: 3, Workers: 2, State: state})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var ids [][]int
		var st []byte
		for b := 0; b < n; b++ {
			batch, err := s.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, smp := range batch.Samples {
				ids = append(ids, smp.IDs)
			}
			if b == 1 {
				st, _ = s.State()
			}
		}
		return ids, st
	}
	all, st := run(nil, 4)
	rest, _ := run(st, 2)
	for i := range rest {
		if !bytes.Equal(intsBytes(all[6+i]), intsBytes(rest[i])) {
			t.Fatalf("sample %d after resume differs", 6+i)
		}
	}
}

func intsBytes(v []int) []byte {
	b := make([]byte, 0, len(v)*4)
	for _, x := range v {
		b = append(b, byte(x), byte(x>>8), byte(x>>16), byte(x>>24))
	}
	return b
}
