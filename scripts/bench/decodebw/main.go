// Command decodebw measures decode speed against the machine's read
// bandwidth in the same minute, for scripts/bench/8b.sh: it loads a
// checkpoint as `magma generate` does (stored dtypes, shards mapped in
// place), prefills a short prompt of token ids and then alternates a
// decode step with a read pass over exactly the bytes a decode step reads
// (every text-model tensor but the embedding table, of which a step reads
// one row), taken from the same page-cache pages through a second read-only
// mapping of the shards. A shared machine's bandwidth moves by ±30% from
// one minute to the next; interleaving puts every step next to its own
// bound, so their ratio is a property of the decoder, not of the minute.
//
// The read pass sums the bytes with 256-bit vector loads (8 independent
// accumulators, as scripts/bench/membw.c) on GOMAXPROCS goroutines, each
// over a contiguous share. It prints one JSON object.
package main

/*
#cgo CFLAGS: -O3
#include <stddef.h>
#include <stdint.h>

typedef float v8 __attribute__((vector_size(32)));

__attribute__((target("avx2"))) static float read_avx2(const v8 *p, size_t n) {
	v8 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, a4 = {0}, a5 = {0}, a6 = {0}, a7 = {0};
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		a0 += p[i]; a1 += p[i + 1]; a2 += p[i + 2]; a3 += p[i + 3];
		a4 += p[i + 4]; a5 += p[i + 5]; a6 += p[i + 6]; a7 += p[i + 7];
	}
	for (; i < n; i++) a0 += p[i];
	v8 s = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
	return s[0] + s[7];
}

static float read_plain(const float *p, size_t n) {
	float a0 = 0, a1 = 0, a2 = 0, a3 = 0;
	size_t i = 0;
	for (; i + 4 <= n; i += 4) { a0 += p[i]; a1 += p[i + 1]; a2 += p[i + 2]; a3 += p[i + 3]; }
	return a0 + a1 + a2 + a3;
}

// read_bytes reads [p, p+n) once (n rounded down to 32 bytes; p is 32-byte
// aligned by the caller's split) and returns a value that depends on it;
// 256-bit loads where the CPU has AVX2.
static float read_bytes(const void *p, size_t n) {
	if (__builtin_cpu_supports("avx2")) return read_avx2((const v8 *)p, n / 32);
	return read_plain((const float *)p, n / 32 * 8);
}
*/
import "C"

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"
	"unsafe"

	"gorgonia.org/tensor"

	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/llm"
	"github.com/magma-go/magma/model"
	"github.com/magma-go/magma/model/ckpt"
)

type span struct {
	p unsafe.Pointer
	n int
}

func main() {
	dir := flag.String("model", "", "checkpoint directory")
	steps := flag.Int("steps", 12, "decode steps (the first builds the decode graph and is not counted)")
	promptLen := flag.Int("prompt", 16, "prompt tokens")
	flag.Parse()
	log.SetFlags(0)
	if *dir == "" || *steps < 3 || *promptLen < 1 {
		log.Fatal("decodebw: want -model DIR, -steps >= 3, -prompt >= 1")
	}
	spans, bytes, err := decoderSpans(*dir)
	if err != nil {
		log.Fatal(err)
	}
	shares := split(spans, runtime.GOMAXPROCS(0))

	ld, err := model.LoadWith(*dir, model.LoadOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer ld.Close()
	m := ld.Model
	ids := make([]int, *promptLen)
	for i := range ids {
		ids[i] = (1000 + 37*i) % m.Config.Text.VocabSize
	}
	gen := llm.NewGenerator(m.LM, *promptLen+*steps+1)
	defer gen.Release()

	var stepMS, readMS []float64
	var sink float32
	var last time.Time
	t0 := time.Now()
	var prefill time.Duration
	_, err = gen.Generate(context.Background(), llm.Prompt{IDs: ids}, llm.GenerateOptions{MaxNewTokens: *steps + 1},
		func(step, id int, logits []float32) error {
			now := time.Now()
			if step == 0 {
				prefill = now.Sub(t0)
			} else {
				stepMS = append(stepMS, ms(now.Sub(last)))
			}
			r0 := time.Now()
			sink += readPass(shares)
			readMS = append(readMS, ms(time.Since(r0)))
			last = time.Now()
			return nil
		})
	if err != nil {
		log.Fatal(err)
	}
	// step i (1-based, after the first token) sits between read passes i-1
	// and i; the first step builds the decode graph and is dropped.
	var ratios []float64
	for i := 1; i < len(stepMS); i++ {
		bound := (readMS[i] + readMS[i+1]) / 2
		ratios = append(ratios, bound/stepMS[i])
	}
	out := map[string]any{
		"model":              *dir,
		"threads":            runtime.GOMAXPROCS(0),
		"bytes_per_step":     bytes,
		"prefill_ms":         ms(prefill),
		"prompt_tokens":      *promptLen,
		"step_ms":            stepMS,
		"read_ms":            readMS,
		"step_ms_median":     median(stepMS[1:]),
		"read_ms_median":     median(readMS[1:]),
		"read_gb_s_median":   float64(bytes) / median(readMS[1:]) / 1e6,
		"read_gb_s_best":     float64(bytes) / minf(readMS[1:]) / 1e6,
		"decode_gb_s":        float64(bytes) / median(stepMS[1:]) / 1e6,
		"ratio_median":       median(ratios),
		"ratio_min":          minf(ratios),
		"ratio_max":          maxf(ratios),
		"ratio_of_medians":   median(readMS[1:]) / median(stepMS[1:]),
		"ratio_best_to_best": minf(readMS[1:]) / minf(stepMS[1:]),
		"sink":               sink != 0,
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		log.Fatal(err)
	}
}

// decoderSpans opens the checkpoint in dir a second time (its own read-only
// mapping of the same page-cache pages) and returns the byte spans of the
// tensors a decode step reads: the text model's (name containing
// "language_model.") except its embedding table. The checkpoint stays open
// for the spans' lifetime (the process's).
func decoderSpans(dir string) ([]span, int64, error) {
	ck, err := ckpt.Open(dir)
	if err != nil {
		return nil, 0, err
	}
	var spans []span
	var total int64
	for _, name := range ck.Names() {
		if !strings.Contains(name, "language_model.") || strings.Contains(name, "embed_tokens") {
			continue
		}
		t, inPlace, err := ck.Dense(name, tensor.Dtype{})
		if err != nil {
			return nil, 0, err
		}
		var p unsafe.Pointer
		switch d := t.Data().(type) {
		case []kernels.BF16:
			p = unsafe.Pointer(&d[0])
		case []kernels.F16:
			p = unsafe.Pointer(&d[0])
		case []float32:
			p = unsafe.Pointer(&d[0])
		}
		if !inPlace || p == nil {
			return nil, 0, fmt.Errorf("%s: tensor %q (%v) is not a view of its mapped shard", dir, name, t.Dtype())
		}
		spans = append(spans, span{p, int(t.MemSize())})
		total += int64(t.MemSize())
	}
	sort.Slice(spans, func(i, j int) bool { return uintptr(spans[i].p) < uintptr(spans[j].p) })
	return spans, total, nil
}

// split cuts the spans into n shares of about equal bytes, each a list of
// contiguous pieces with 32-byte aligned starts.
func split(spans []span, n int) [][]span {
	var total int
	for _, s := range spans {
		total += s.n
	}
	per := total/n + 1
	shares := make([][]span, n)
	i, room := 0, per
	for _, s := range spans {
		// align the start up to 32 bytes (the few bytes skipped are noise)
		pad := int((32 - uintptr(s.p)%32) % 32)
		p, left := unsafe.Add(s.p, pad), s.n-pad
		for left > 0 {
			take := min(left, room)
			shares[i] = append(shares[i], span{p, take})
			p, left, room = unsafe.Add(p, take), left-take, room-take
			if room == 0 && i < n-1 {
				i, room = i+1, per
			}
		}
	}
	return shares
}

func readPass(shares [][]span) float32 {
	var wg sync.WaitGroup
	sums := make([]float32, len(shares))
	for g, sh := range shares {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, s := range sh {
				sums[g] += float32(C.read_bytes(s.p, C.size_t(s.n)))
			}
		}()
	}
	wg.Wait()
	var s float32
	for _, v := range sums {
		s += v
	}
	return s
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func minf(v []float64) float64 {
	m := v[0]
	for _, x := range v[1:] {
		m = min(m, x)
	}
	return m
}

func maxf(v []float64) float64 {
	m := v[0]
	for _, x := range v[1:] {
		m = max(m, x)
	}
	return m
}
