package data

import (
	"context"
	"errors"
	"fmt"
	"github.com/magma-go/magma/llm/tokenizer"
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeSource builds samples from (index, rng) with a variable delay, so
// workers finish out of order; indices in bad fail.
type fakeSource struct {
	name string
	n    int
	bad  map[int]bool
}

func (f *fakeSource) Name() string { return f.name }
func (f *fakeSource) Len() int     { return f.n }
func (f *fakeSource) Sample(i int, rng *rand.Rand) (Sample, error) {
	if f.bad[i] {
		return Sample{}, recordErr(f.name+".json", i, "bad on purpose")
	}
	v := rng.IntN(1000)
	time.Sleep(time.Duration(v%3) * 50 * time.Microsecond)
	return Sample{IDs: []int{i, v}, Labels: []int{tokenizer.IgnoreIndex, v}, Source: f.name, Index: i}, nil
}

func fakeMixture(t testing.TB, policy ErrorPolicy, bad map[int]bool) *Mixture {
	env := &SampleBuilder{OnError: policy, Logf: func(string, ...any) {}}
	m, err := NewMixture(env, []Source{
		&fakeSource{name: "a", n: 7, bad: bad},
		&fakeSource{name: "b", n: 50},
		&fakeSource{name: "c", n: 3},
	}, []float64{0.5, 0.3, 0.2})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func drain(t testing.TB, s Stream, batches int) []string {
	t.Helper()
	var out []string
	for i := 0; i < batches; i++ {
		b, err := s.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, smp := range b.Samples {
			out = append(out, fmt.Sprintf("%s/%d/%d", smp.Source, smp.Index, smp.IDs[1]))
		}
	}
	return out
}

func TestMixtureWeights(t *testing.T) {
	m := fakeMixture(t, OnErrorSkip, nil)
	s, err := m.Stream(context.Background(), StreamOptions{Seed: 3, BatchSize: 50, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	counts := map[string]int{}
	seen := map[string]map[int]int{}
	for _, k := range drain(t, s, 40) { // 2000 draws
		var src string
		var idx, v int
		fmt.Sscanf(k, "%1s/%d/%d", &src, &idx, &v)
		counts[src]++
		if seen[src] == nil {
			seen[src] = map[int]int{}
		}
		seen[src][idx]++
	}
	// binomial sd for p=0.5, n=2000 is ~22: allow 4 sd
	for src, p := range map[string]float64{"a": 0.5, "b": 0.3, "c": 0.2} {
		got := float64(counts[src]) / 2000
		if math.Abs(got-p) > 4*math.Sqrt(p*(1-p)/2000) {
			t.Errorf("source %s: share %.3f, want %.2f", src, got, p)
		}
	}
	// epochs: every record of c is visited equally often (shuffled per epoch)
	lo, hi := math.MaxInt, 0
	for _, n := range seen["c"] {
		lo, hi = min(lo, n), max(hi, n)
	}
	if len(seen["c"]) != 3 || hi-lo > 1 {
		t.Errorf("c visits %v", seen["c"])
	}
}

func TestMixtureDeterministicAcrossWorkers(t *testing.T) {
	var ref []string
	for _, w := range []int{1, 2, 5} {
		m := fakeMixture(t, OnErrorSkip, map[int]bool{2: true})
		s, err := m.Stream(context.Background(), StreamOptions{Seed: 11, BatchSize: 4, Workers: w, Prefetch: 3 + w})
		if err != nil {
			t.Fatal(err)
		}
		got := drain(t, s, 30)
		s.Close()
		if ref == nil {
			ref = got
			if s.Skipped() == 0 {
				t.Fatal("no record skipped")
			}
		} else if !reflect.DeepEqual(got, ref) {
			t.Fatalf("workers %d differ from workers 1", w)
		}
	}
	m := fakeMixture(t, OnErrorSkip, nil)
	s, _ := m.Stream(context.Background(), StreamOptions{Seed: 12, BatchSize: 4, Workers: 2})
	other := drain(t, s, 30)
	s.Close()
	if reflect.DeepEqual(other, ref) {
		t.Fatal("another seed gives the same stream")
	}
}

func TestMixtureStateRestore(t *testing.T) {
	m := fakeMixture(t, OnErrorSkip, map[int]bool{5: true})
	full, _ := m.Stream(context.Background(), StreamOptions{Seed: 5, BatchSize: 3, Workers: 3})
	want := drain(t, full, 20)
	full.Close()

	a, _ := m.Stream(context.Background(), StreamOptions{Seed: 5, BatchSize: 3, Workers: 2})
	got := drain(t, a, 7)
	st, err := a.State()
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	b, err := m.Stream(context.Background(), StreamOptions{Seed: 5, BatchSize: 3, Workers: 1, State: st})
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, drain(t, b, 13)...)
	if b.Skipped() == 0 {
		t.Error("skip count not carried")
	}
	b.Close()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("restored stream differs:\n%v\n%v", got, want)
	}
	if _, err := m.Stream(context.Background(), StreamOptions{Seed: 6, BatchSize: 3, State: st}); err == nil {
		t.Error("state with another seed accepted")
	}
	if _, err := m.Stream(context.Background(), StreamOptions{Seed: 5, BatchSize: 3, State: []byte("{")}); err == nil {
		t.Error("bad state accepted")
	}
}

func TestMixtureStopPolicy(t *testing.T) {
	m := fakeMixture(t, OnErrorStop, map[int]bool{0: true, 1: true, 2: true, 3: true})
	s, _ := m.Stream(context.Background(), StreamOptions{Seed: 1, BatchSize: 8, Workers: 2})
	defer s.Close()
	var err error
	for i := 0; i < 10 && err == nil; i++ {
		_, err = s.Next(context.Background())
	}
	re, ok := AsRecordError(err)
	if !ok || re.Path != "a.json" || re.Reason != "bad on purpose" {
		t.Fatalf("want record error, got %v", err)
	}
	if _, err2 := s.Next(context.Background()); err2 != err {
		t.Fatalf("error not sticky: %v", err2)
	}
}

func TestMixtureNoLeaks(t *testing.T) {
	before := runtime.NumGoroutine()
	m := fakeMixture(t, OnErrorSkip, nil)
	for i := 0; i < 5; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		s, _ := m.Stream(ctx, StreamOptions{Seed: 1, BatchSize: 2, Workers: 4})
		drain(t, s, 2)
		if i%2 == 0 {
			cancel() // parent cancelled: Next fails, workers exit
			if _, err := s.Next(context.Background()); !errors.Is(err, context.Canceled) {
				t.Fatalf("after cancel: %v", err)
			}
		}
		if i%2 == 1 {
			// a Next cancelled by its own context keeps the stream usable
			c2, cancel2 := context.WithCancel(context.Background())
			cancel2()
			_, _ = s.Next(c2) // error, or a batch that was already buffered
			drain(t, s, 1)
		}
		s.Close()
		cancel()
		if _, err := s.Next(context.Background()); err == nil {
			t.Fatal("Next after Close succeeded")
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("%d goroutines before, %d after Close", before, n)
	}
}

func TestBatchingHelpers(t *testing.T) {
	samples := []Sample{
		{IDs: []int{1, 2, 3}, Labels: []int{-100, 2, 3}},
		{IDs: []int{1}, Labels: []int{1}},
		{IDs: []int{1, 2, 3, 4, 5}, Labels: []int{-100, -100, 3, 4, 5}},
	}
	bs, err := Batches(samples, 2)
	if err != nil || len(bs) != 2 || len(bs[1].Samples) != 1 {
		t.Fatalf("%v %v", bs, err)
	}
	p := bs[0].Pad(0, 4)
	if p.Len != 4 || p.Rows != 2 || !reflect.DeepEqual(p.Mask, []int{1, 1, 1, 0, 1, 0, 0, 0}) ||
		!reflect.DeepEqual(p.Labels, []int{-100, 2, 3, -100, 1, -100, -100, -100}) || p.Waste != 0.5 {
		t.Fatalf("pad %+v", p)
	}
	st := Bucketing(bs, 4)
	if st.Shapes[4] != 1 || st.Shapes[8] != 1 || st.RealTokens != 9 || st.PaddedTokens != 16 {
		t.Fatalf("bucketing %+v", st)
	}
	ss, _ := NewSliceStream(samples, 2, nil)
	ss.Next(context.Background())
	state, _ := ss.State()
	ss2, err := NewSliceStream(samples, 2, state)
	if err != nil {
		t.Fatal(err)
	}
	b1, _ := ss.Next(context.Background())
	b2, _ := ss2.Next(context.Background())
	if !reflect.DeepEqual(b1, b2) {
		t.Fatal("slice stream restore")
	}
}

// countingSource counts the samples it builds.
type countingSource struct {
	Source
	n atomic.Int64
}

func (c *countingSource) Sample(i int, rng *rand.Rand) (Sample, error) {
	c.n.Add(1)
	return c.Source.Sample(i, rng)
}

// TestMixtureRankSlices: with Rank/World every rank builds only its slice
// of each global batch; the slices in rank order are the single process's
// batches, and every rank's state is the single process's state.
func TestMixtureRankSlices(t *testing.T) {
	const global, batches = 6, 5
	one, _ := fakeMixture(t, OnErrorSkip, nil).Stream(context.Background(), StreamOptions{Seed: 9, BatchSize: global, Workers: 2})
	defer one.Close()
	var want [][]string
	var wantState [][]byte
	for k := 0; k < batches; k++ {
		want = append(want, drain(t, one, 1))
		st, _ := one.State()
		wantState = append(wantState, st)
	}
	for _, world := range []int{2, 3} {
		got := make([][]string, batches)
		for rank := 0; rank < world; rank++ {
			m := fakeMixture(t, OnErrorSkip, nil)
			var counts []*countingSource
			for i, src := range m.Sources {
				counts = append(counts, &countingSource{Source: src})
				m.Sources[i] = counts[i]
			}
			local := global / world
			s, err := m.Stream(context.Background(), StreamOptions{Seed: 9, BatchSize: global, Workers: 2, Prefetch: local, Rank: rank, World: world})
			if err != nil {
				t.Fatal(err)
			}
			for k := 0; k < batches; k++ {
				got[k] = append(got[k], drain(t, s, 1)...)
				st, _ := s.State()
				if string(st) != string(wantState[k]) {
					t.Errorf("world %d rank %d batch %d: state %s, want %s", world, rank, k, st, wantState[k])
				}
			}
			s.Close()
			// Prefetching builds a window ahead, never the others' slices.
			var n int64
			for _, c := range counts {
				n += c.n.Load()
			}
			if n > int64((batches+1)*local) {
				t.Errorf("world %d rank %d: built %d samples for %d of its own (+%d prefetched)", world, rank, n, batches*local, local)
			}
		}
		for k := range want {
			if strings.Join(got[k], " ") != strings.Join(want[k], " ") {
				t.Errorf("world %d batch %d: slices %v, want %v", world, k, got[k], want[k])
			}
		}
	}
	m := fakeMixture(t, OnErrorSkip, nil)
	if _, err := m.Stream(context.Background(), StreamOptions{Seed: 9, BatchSize: 6, Rank: 0, World: 4}); err == nil || !strings.Contains(err.Error(), "does not divide over 4 ranks") {
		t.Errorf("batch 6 over 4 ranks: %v", err)
	}
}
