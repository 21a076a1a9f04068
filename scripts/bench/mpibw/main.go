// Command mpibw measures what the trainer's collectives achieve between
// the ranks of an MPI job (train/dist): sum all-reduce, and the ZeRO-1
// pair reduce-scatter + all-gather, on float32 buffers of the gradient
// bucket size, side by side with a plain memory copy of the same bytes in
// one process. Run under mpirun; rank 0 prints one JSON object.
//
//	mpirun -np 2 mpibw -mb 25 -iters 20
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/magma-go/magma/train/dist"
)

func main() {
	mb := flag.Float64("mb", 25, "buffer size in MiB (the trainer's default bucket)")
	iters := flag.Int("iters", 20, "timed repetitions (after 3 warm-up ones)")
	flag.Parse()
	c, err := dist.Init()
	if err != nil || c == nil {
		fmt.Fprintln(os.Stderr, "mpibw: run under mpirun:", err)
		os.Exit(1)
	}
	n := int(*mb * (1 << 20) / 4)
	buf := make([]float32, n)
	src := make([]float32, n)
	for i := range buf {
		buf[i], src[i] = 1, float32(i%7)
	}
	counts, _ := dist.Split(n, c.Size())
	recv := make([]float32, counts[c.Rank()])
	median := func(f func() error) float64 {
		var ts []float64
		for i := 0; i < *iters+3; i++ {
			if err := c.Barrier(); err != nil {
				c.Abort(err, 1)
			}
			t := time.Now()
			if err := f(); err != nil {
				c.Abort(err, 1)
			}
			if i >= 3 {
				ts = append(ts, time.Since(t).Seconds())
			}
		}
		sort.Float64s(ts)
		return ts[len(ts)/2]
	}
	allreduce := median(func() error { return c.AllreduceF32(buf) })
	rsag := median(func() error {
		if err := c.ReduceScatterF32(buf, recv, counts); err != nil {
			return err
		}
		return c.AllgathervF32(buf, counts)
	})
	memcpy := median(func() error { copy(buf, src); return nil })
	bytes := float64(4 * n)
	gbs := func(t float64) float64 { return bytes / t / 1e9 }
	// nccl-tests' "bus bandwidth": what each link carries, comparable
	// across rank counts (all-reduce moves 2(n-1)/n of the buffer).
	k := float64(c.Size())
	res := map[string]any{
		"ranks": c.Size(), "bytes": int64(bytes), "iters": *iters,
		"allreduce_s": allreduce, "allreduce_algbw_GBps": gbs(allreduce), "allreduce_busbw_GBps": gbs(allreduce) * 2 * (k - 1) / k,
		"reduce_scatter_allgather_s": rsag, "reduce_scatter_allgather_algbw_GBps": gbs(rsag),
		"memcpy_s": memcpy, "memcpy_GBps": gbs(memcpy),
	}
	if c.Rank() == 0 {
		b, _ := json.Marshal(res)
		fmt.Println(string(b))
	}
	if err := c.Finalize(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
