package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/magma-go/magma/train"
	"github.com/magma-go/magma/train/dist"
)

// job is the MPI job a run of the command tree belongs to: main creates
// it and passes it to the training commands (pretrain, finetune), which
// join it when they start under mpirun or srun; main then ends it
// (exitJob). comm stays nil for a single process or a command that trains
// nothing.
type job struct{ comm *dist.Comm }

// join joins the MPI job (dist.Init: only under an MPI launcher; nil for a
// single process). A command joins once.
func (j *job) join() (*dist.Comm, error) {
	c, err := dist.Init()
	j.comm = c
	return c, err
}

// rankZero reports whether this process prints (one process, or rank 0).
func rankZero(c *dist.Comm) bool { return c == nil || c.Rank() == 0 }

// exitJob ends a process of an MPI job: an error every rank agreed on is
// printed once (rank 0) and every rank exits with status 1; any other error
// is printed naming its rank and aborts the whole job (MPI_Abort), so the
// other ranks never wait for this one.
func exitJob(c *dist.Comm, err error) {
	if err == nil {
		if ferr := c.Finalize(); ferr != nil {
			fmt.Fprintf(os.Stderr, "magma: rank %d: %v\n", c.Rank(), ferr)
			os.Exit(1)
		}
		os.Exit(0)
	}
	var agreed *train.AgreedError
	if errors.As(err, &agreed) {
		if c.Rank() == 0 {
			fmt.Fprintf(os.Stderr, "magma: %v\n", err)
		}
		c.Finalize()
		os.Exit(1)
	}
	c.Abort(err, 1)
}

// printDist reports a data-parallel run: ranks, ZeRO-1 optimizer memory
// per rank, and where a step's time went.
func printDist(w io.Writer, o train.Options, d *train.DistTimes) {
	n := o.Comm.Size()
	var total int64
	for _, b := range d.OptimizerBytes {
		total += b
	}
	fmt.Fprintf(w, "data parallel: %d ranks, global batch %d (%d per rank), %d gradient bucket(s)\n", n, o.Config.BatchSize, o.Config.BatchSize/n, d.Buckets)
	fmt.Fprintf(w, "optimizer state (ZeRO-1):")
	for r, b := range d.OptimizerBytes {
		fmt.Fprintf(w, " rank %d %d bytes;", r, b)
	}
	fmt.Fprintf(w, " one process: %d bytes\n", total)
	if d.Steps == 0 {
		return
	}
	ms := func(t time.Duration) float64 { return float64(t.Microseconds()) / 1000 / float64(d.Steps) }
	mbps := func(b int64, t time.Duration) float64 {
		if t <= 0 {
			return 0
		}
		return float64(b) / 1e6 / t.Seconds()
	}
	fmt.Fprintf(w, "rank 0 time per step: compute %.1f ms, waiting on communication %.1f ms, optimizer %.1f ms\n", ms(d.Compute), ms(d.CommWait), ms(d.Optimizer))
	fmt.Fprintf(w, "gradient reduce-scatter: %.1f MB/s (%.1f ms per step, %.1f ms of it during backward); weight all-gather: %.1f MB/s (%.1f ms per step)\n",
		mbps(d.ReduceBytes, d.ReduceTime), ms(d.ReduceTime), ms(d.ReduceOverlap), mbps(d.GatherBytes, d.GatherTime), ms(d.GatherTime))
}
