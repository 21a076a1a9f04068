// Command datago measures the data readers for `make bench-data`
// (scripts/bench/data.sh): raw reader throughput over the benchmark files
// (TFRecord framing + CRC32C + tf.train.Example decode; Arrow IPC stream
// and file rows with the trace columns; Parquet rows of a SoM table), then
// the sources' samples/s (decode + marks/traces + tokenise + preprocess).
// Prints one JSON object.
package main

import (
	"encoding/json"
	"flag"
	"log"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/magma-go/magma/data"
	"github.com/magma-go/magma/data/hf"
	"github.com/magma-go/magma/data/rlds"
	"github.com/magma-go/magma/llm/tokenizer"
	"github.com/magma-go/magma/vision"
)

type result struct {
	Records   int     `json:"records"`
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"per_second"`
	MB        float64 `json:"mb"`
}

func timeIt(records int, mb float64, f func()) result {
	t0 := time.Now()
	f()
	s := time.Since(t0).Seconds()
	return result{Records: records, Seconds: s, PerSecond: float64(records) / s, MB: mb}
}

func sizeMB(files []string) float64 {
	var n int64
	for _, f := range files {
		if st, err := os.Stat(f); err == nil {
			n += st.Size()
		}
	}
	return float64(n) / 1e6
}

func peakRSSMB() float64 { return statusMB("VmHWM:") }

// statusMB reads a kB field of /proc/self/status (RssAnon: heap and
// stacks; RssFile: mapped file pages, reclaimable page cache).
func statusMB(field string) float64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, field) {
			f := strings.Fields(l)
			kb, _ := strconv.Atoi(f[1])
			return float64(kb) / 1024
		}
	}
	return 0
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

func glob(p string) []string {
	m, err := filepath.Glob(p)
	must(err)
	sort.Strings(m)
	return m
}

func readRows(files []string, cols []string) int {
	n := 0
	for _, p := range files {
		f, err := hf.Open(p)
		must(err)
		for i := 0; i < f.NumRows; i++ {
			_, err := f.Row(i, cols)
			must(err)
			n++
		}
		f.Close()
	}
	return n
}

func main() {
	dir := flag.String("dir", "", "benchmark data (scripts/bench/data_gen.mjs)")
	samples := flag.Int("samples", 200, "samples built per source for samples/s")
	flag.Parse()
	log.SetFlags(0)
	out := map[string]any{"gomaxprocs": runtime.GOMAXPROCS(0)}

	// --- raw readers (the second of two passes: warm page cache) ---
	shards := glob(filepath.Join(*dir, "libero_spatial_no_noops/1.0.0/*.tfrecord-*"))
	var tf result
	for pass := 0; pass < 2; pass++ {
		eps, steps := 0, 0
		tf = timeIt(0, sizeMB(shards), func() {
			for _, sh := range shards {
				must(rlds.ScanShard(sh, nil, func(ep *rlds.Episode, err error) error {
					if err != nil {
						return err
					}
					eps++
					steps += ep.T
					return nil
				}))
			}
		})
		tf.Records = eps
		tf.PerSecond = float64(eps) / tf.Seconds
		out["tfrecord_steps"] = steps
	}
	out["tfrecord"] = tf
	vt := glob(filepath.Join(*dir, "video_tom/ego4d/*.arrow"))
	ox := glob(filepath.Join(*dir, "oxe_tom/bridge_orig/*.arrow"))
	pq := glob(filepath.Join(*dir, "mind2web_som/data/*.parquet"))
	for pass := 0; pass < 2; pass++ {
		var n int
		out["arrow_stream_video_tom"] = timeIt(0, sizeMB(vt), func() {
			n = readRows(vt, []string{"task_string", "frame_index", "trace", "trace_visibility"})
		})
		r := out["arrow_stream_video_tom"].(result)
		r.Records, r.PerSecond = n, float64(n)/r.Seconds
		out["arrow_stream_video_tom"] = r
		out["arrow_file_oxe_tom"] = timeIt(0, sizeMB(ox), func() {
			n = readRows(ox, []string{"lang", "action", "image", "trace", "trace_visibility"})
		})
		r = out["arrow_file_oxe_tom"].(result)
		r.Records, r.PerSecond = n, float64(n)/r.Seconds
		out["arrow_file_oxe_tom"] = r
		out["parquet_mind2web_som"] = timeIt(0, sizeMB(pq), func() {
			n = readRows(pq, []string{"id", "image", "conversations"})
		})
		r = out["parquet_mind2web_som"].(result)
		r.Records, r.PerSecond = n, float64(n)/r.Seconds
		out["parquet_mind2web_som"] = r
	}
	out["peak_rss_readers_mb"] = peakRSSMB()
	out["rss_anon_after_readers_mb"] = statusMB("RssAnon:")
	out["rss_file_after_readers_mb"] = statusMB("RssFile:")

	// --- sources: index time and samples/s (one goroutine) ---
	tokDir, err := tokenizer.Locate("magma")
	must(err)
	tok, err := tokenizer.Load(tokDir)
	must(err)
	env, err := data.NewSampleBuilder(tok, data.ImageOptions{Base: 512, MaxCrops: 1, Mean: vision.CLIPMean, Std: vision.CLIPStd})
	must(err)
	env.Logf = func(string, ...any) {}
	type src interface {
		data.Source
	}
	var srcs []struct {
		name string
		open func() (src, error)
	}
	srcs = append(srcs,
		struct {
			name string
			open func() (src, error)
		}{"rlds", func() (src, error) {
			return data.NewRLDSSource(env, "rlds", filepath.Join(*dir, "libero_spatial_no_noops"), data.RLDSOptions{})
		}},
		struct {
			name string
			open func() (src, error)
		}{"magma_tom_video", func() (src, error) {
			return data.NewMagmaToMSource(env, "v", filepath.Join(*dir, "video_tom"), data.MagmaToMOptions{VideoFolder: filepath.Join(*dir, "video_tom/videos")})
		}},
		struct {
			name string
			open func() (src, error)
		}{"magma_tom_oxe", func() (src, error) {
			return data.NewMagmaToMSource(env, "o", filepath.Join(*dir, "oxe_tom"), data.MagmaToMOptions{Robot: true, TraceSize: []float64{256, 256}})
		}},
		struct {
			name string
			open func() (src, error)
		}{"magma_som", func() (src, error) {
			return data.NewMagmaSoMSource(env, "s", filepath.Join(*dir, "mind2web_som"), data.MagmaSoMOptions{})
		}},
	)
	srcOut := map[string]any{}
	for _, s := range srcs {
		var x src
		open := timeIt(1, 0, func() {
			var err error
			x, err = s.open()
			must(err)
		})
		rng := rand.New(rand.NewPCG(1, 2))
		n := *samples
		r := timeIt(n, 0, func() {
			for i := 0; i < n; i++ {
				_, err := x.Sample(rng.IntN(x.Len()), rng)
				if err != nil {
					log.Printf("%s: %v", s.name, err)
				}
			}
		})
		srcOut[s.name] = map[string]any{"open_s": open.Seconds, "records": x.Len(), "samples_per_s": r.PerSecond}
	}
	out["sources"] = srcOut
	out["peak_rss_mb"] = peakRSSMB()
	b, _ := json.MarshalIndent(out, "", "  ")
	os.Stdout.Write(append(b, '\n'))
}
