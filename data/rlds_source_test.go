package data

import (
	"encoding/json"
	"github.com/magma-go/magma/llm/tokenizer"
	"github.com/magma-go/magma/model/action"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const rldsTestdata = "rlds/testdata"

func TestRLDSSourceStatisticsMatchOpenVLA(t *testing.T) {
	env := testEnv(t)
	b, err := os.ReadFile(filepath.Join(rldsTestdata, "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var golden map[string]struct {
		Trajectories []json.RawMessage   `json:"trajectories"`
		Statistics   action.DatasetStats `json:"statistics"`
	}
	if err := json.Unmarshal(b, &golden); err != nil {
		t.Fatal(err)
	}
	for name, g := range golden {
		t.Run(name, func(t *testing.T) {
			src, err := NewRLDSSource(env, name, filepath.Join(rldsTestdata, name), RLDSOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			st := src.Statistics()
			w := g.Statistics
			if st.NumTransitions != w.NumTransitions || st.NumTrajectories != w.NumTrajectories || src.Len() != w.NumTransitions {
				t.Fatalf("counts %d/%d (len %d), want %d/%d", st.NumTransitions, st.NumTrajectories, src.Len(), w.NumTransitions, w.NumTrajectories)
			}
			for field, pair := range map[string][2][]float64{"mean": {st.Action.Mean, w.Action.Mean}, "std": {st.Action.Std, w.Action.Std},
				"min": {st.Action.Min, w.Action.Min}, "max": {st.Action.Max, w.Action.Max}, "q01": {st.Action.Q01, w.Action.Q01}, "q99": {st.Action.Q99, w.Action.Q99}} {
				for d := range pair[1] {
					if math.Abs(pair[0][d]-pair[1][d]) > 1e-5*(1+math.Abs(pair[1][d])) {
						t.Fatalf("action %s[%d] = %v, numpy %v", field, d, pair[0][d], pair[1][d])
					}
				}
			}
			if st.Proprio == nil || len(st.Proprio.Mean) != 7 || st.Proprio.Max[0] != 0 {
				t.Fatalf("proprio %+v", st.Proprio)
			}
			smp, err := src.Sample(src.Len()-1, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(smp.Images) != 1 {
				t.Fatalf("%d images", len(smp.Images))
			}
			full, _ := env.Tokenizer.Decode(smp.IDs, false)
			if !strings.Contains(full, "What action should the robot take to ") {
				t.Fatalf("prompt %q", full)
			}
			var sup []int
			for _, l := range smp.Labels {
				if l != tokenizer.IgnoreIndex {
					sup = append(sup, l)
				}
			}
			if len(sup) != 8 || !env.Actions.IsActionID(sup[0]) || sup[7] != env.Tokenizer.EOS() {
				t.Fatalf("supervised %v", sup)
			}
			a, _, img, err := src.Step(src.Len() - 1)
			if err != nil || img.W != 64 && img.W != 80 {
				t.Fatalf("step: %v %dx%d", err, img.W, img.H)
			}
			norm, _ := st.Action.Normalize(a)
			want, _ := env.Actions.Encode(norm)
			for i := range want {
				if sup[i] != want[i] {
					t.Fatalf("action tokens %v, want %v", sup[:7], want)
				}
			}
		})
	}
}

func TestRLDSSourceCorruptRecord(t *testing.T) {
	dir := filepath.Join(rldsTestdata, "corrupt", "libero_spatial_no_noops")
	env := testEnv(t)
	src, err := NewRLDSSource(env, "libero", dir, RLDSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if env.Skipped() != 1 || src.Statistics().NumTrajectories != 2 {
		t.Fatalf("skipped %d, trajectories %d", env.Skipped(), src.Statistics().NumTrajectories)
	}
	env.OnError = OnErrorStop
	_, err = NewRLDSSource(env, "libero", dir, RLDSOptions{})
	re, ok := AsRecordError(err)
	if !ok || re.Index != 1 || !strings.Contains(re.Path, "libero_spatial-train.tfrecord-00000-of-00002") || !strings.Contains(re.Reason, "CRC") {
		t.Fatalf("got %v", err)
	}
}

func TestRLDSSourceRanks(t *testing.T) {
	env := testEnv(t)
	total := 0
	for rank := 0; rank < 2; rank++ {
		env.Rank, env.World = rank, 2
		src, err := NewRLDSSource(env, "libero", filepath.Join(rldsTestdata, "libero_spatial_no_noops"), RLDSOptions{})
		if err != nil {
			t.Fatal(err)
		}
		total += src.Len()
	}
	if total != 15 {
		t.Fatalf("ranks read %d transitions together, want 15", total)
	}
	env.Rank, env.World = 2, 3
	if _, err := NewRLDSSource(env, "libero", filepath.Join(rldsTestdata, "libero_spatial_no_noops"), RLDSOptions{}); err == nil {
		t.Fatal("rank without shards accepted")
	}
}

func TestAssignShardsAndNaturalOrder(t *testing.T) {
	files := []string{"shard_10.arrow", "shard_9.arrow", "shard_79.arrow", "shard_2.arrow"}
	sortStringsNatural(files)
	if strings.Join(files, ",") != "shard_2.arrow,shard_9.arrow,shard_10.arrow,shard_79.arrow" {
		t.Fatalf("order %v", files)
	}
	for _, c := range []struct {
		rank, world int
		want        string
	}{{0, 1, "a,b,c"}, {0, 2, "a,c"}, {1, 2, "b"}} {
		got, err := AssignShards([]string{"a", "b", "c"}, c.rank, c.world)
		if err != nil || strings.Join(got, ",") != c.want {
			t.Fatalf("rank %d/%d: %v %v", c.rank, c.world, got, err)
		}
	}
	if _, err := AssignShards([]string{"a"}, 1, 2); err == nil {
		t.Fatal("empty rank accepted")
	}
}
