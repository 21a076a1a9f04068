package train

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	G "gorgonia.org/gorgonia"

	"github.com/magma-go/magma/data"
	"github.com/magma-go/magma/kernels"
	"github.com/magma-go/magma/model"
	"github.com/magma-go/magma/train/dist"
)

// Data parallelism over MPI ranks (Options.Comm with more than one rank).
//
// Every rank holds the whole model and draws the same global data stream;
// it trains on its slice of each global batch (data.StreamOptions.Rank,
// World), so the recipe's batch_size is the global batch. The update equals
// one process's:
//
//   - Loss: one process takes the mean over the batch's supervised tokens.
//     Rank r's graph gives the mean over its own n_r tokens, so the ranks
//     first sum (n_r, tokens, samples) and weight their loss and gradients
//     by w_r = n_r / Σn: Σ_r w_r·mean_r is the global mean, not a mean of
//     means. With grad_accum each micro-batch is weighted so (one process
//     averages the micro-batches' means).
//   - Gradients: the weighted gradients are summed over ranks in buckets
//     (BucketBytes, 25 MB by default) of a flat layout of the trainable
//     parameters in reverse order, the order in which the backward pass
//     finishes them: kernels.RunOptions.OnOutput reports each gradient the
//     moment it is final, and a communication goroutine reduces a bucket as
//     soon as its last gradient arrived, while backward goes on.
//   - ZeRO stage 1: the reduction is a reduce-scatter: rank r receives the
//     summed gradient of its 1/N piece of every bucket, and keeps the AdamW
//     moments of those pieces only. The global gradient norm (clipping) is
//     the sum of the ranks' squared norms. After the (element-wise, hence
//     identical) AdamW update of its pieces, each rank all-gathers the
//     buckets' updated weights.
//   - Checkpoints: the moments are gathered to rank 0, which writes the
//     one-process layout (HF weights + optimizer.safetensors +
//     trainer_state.json), so a run resumes at any world size; on resume
//     every rank reads the file and keeps its pieces.
//
// Errors: a rank's data or label error is agreed on with the token counts
// (every rank returns it, naming the rank); start-up checks (batch divides
// by N, same recipe, model config and binary on every rank, run folder
// writable on rank 0) and checkpoint writes are agreed likewise. Anything
// else fails inside a collective, and the command aborts the job
// (dist.Comm.Abort).

// DefaultBucketBytes is the gradient bucket size (PyTorch DDP's default).
const DefaultBucketBytes = 25 << 20

// AgreedError is an error every rank of a job returns at the same point
// (the command reports it once, from rank 0, and every rank exits with it).
type AgreedError struct{ Err error }

func (e *AgreedError) Error() string { return e.Err.Error() }
func (e *AgreedError) Unwrap() error { return e.Err }

// agree turns the ranks' errors into one AgreedError (nil when all fine).
func agree(c *dist.Comm, err error) error {
	if e := c.Agree(err); e != nil {
		var ae *AgreedError
		if errors.As(e, &ae) {
			return ae
		}
		return &AgreedError{Err: e}
	}
	return nil
}

// multi reports whether c spans more than one process.
func multi(c *dist.Comm) bool { return c != nil && c.Size() > 1 }

// DistTimes is where a data-parallel step spends its time, summed over the
// run's steps after the first (rank 0's view).
type DistTimes struct {
	Steps int
	// Compute is data, forward and backward (the bucket reductions overlap
	// with backward); CommWait the time spent waiting for communication
	// after backward (unfinished buckets, the loss/norm reduction, the
	// weight all-gather); Optimizer the AdamW update of this rank's shard.
	Compute, CommWait, Optimizer time.Duration
	// ReduceTime and ReduceBytes: time inside the buckets' reduce-scatter
	// calls and the gradient bytes they reduced; GatherTime and GatherBytes
	// the same for the weight all-gathers.
	ReduceTime, GatherTime   time.Duration
	ReduceBytes, GatherBytes int64
	// ReduceOverlap is the part of ReduceTime spent while this rank's
	// backward pass was still running.
	ReduceOverlap time.Duration
	// OptimizerBytes is each rank's AdamW moment memory (index = rank).
	OptimizerBytes []int64
	Buckets        int
}

// piece is the intersection of one parameter with one rank's part of a
// bucket.
type piece struct {
	param  int // index in run.params
	lo, hi int // range in the parameter
	flat   int // offset in the flat layout
	shard  int // offset in this rank's shard
}

// dataParallel is the per-run state of a data-parallel job.
type dataParallel struct {
	c           *dist.Comm
	rank, world int

	flatOff []int       // flat offset of each parameter
	buckets [][2]int    // flat ranges
	counts  [][]int     // per bucket: elements of each rank's part
	offs    [][]int     // per bucket: offset of each rank's part in the bucket
	flat    []float32   // weighted local gradients, flat layout (the buckets' send buffers)
	gshard  []float32   // this rank's reduced gradient pieces
	mine    [][]piece   // per bucket: this rank's pieces
	opt     *AdamW      // the shard's optimizer (Params = pieces, moments = this rank's)
	shardG  [][]float32 // gradients aligned with opt.slots
	shardM  []float32
	shardV  []float32
	times   DistTimes
	cancel  []float64
	spans   [][2]time.Time // this step's bucket reductions (start, end)
	warm    bool           // the first step is done (times restart after it)
}

// newDataParallel lays out the buckets and this rank's shard.
func newDataParallel(c *dist.Comm, params []*optSlot, full *AdamW, bucketBytes int) *dataParallel {
	d := &dataParallel{c: c, rank: c.Rank(), world: c.Size()}
	if bucketBytes <= 0 {
		bucketBytes = DefaultBucketBytes
	}
	per := max(1, bucketBytes/4)
	d.flatOff = make([]int, len(params))
	total := 0
	for i := len(params) - 1; i >= 0; i-- {
		d.flatOff[i] = total
		total += len(params[i].Data)
	}
	for a := 0; a < total; a += per {
		d.buckets = append(d.buckets, [2]int{a, min(a+per, total)})
	}
	d.flat = make([]float32, total)
	// Parameters in flat order (reverse), to intersect with bucket parts.
	order := make([]int, len(params))
	for i := range order {
		order[i] = len(params) - 1 - i
	}
	shard := 0
	for _, b := range d.buckets {
		cnt, off := dist.Split(b[1]-b[0], d.world)
		d.counts, d.offs = append(d.counts, cnt), append(d.offs, off)
		lo, hi := b[0]+off[d.rank], b[0]+off[d.rank]+cnt[d.rank]
		var ps []piece
		for _, pi := range order {
			a, z := d.flatOff[pi], d.flatOff[pi]+len(params[pi].Data)
			s, e := max(a, lo), min(z, hi)
			if s < e {
				ps = append(ps, piece{param: pi, lo: s - a, hi: e - a, flat: s, shard: shard})
				shard += e - s
			}
		}
		d.mine = append(d.mine, ps)
	}
	d.gshard = make([]float32, shard)
	d.shardM, d.shardV = make([]float32, shard), make([]float32, shard)
	d.opt = &AdamW{Beta1: full.Beta1, Beta2: full.Beta2, Eps: full.Eps, WeightDecay: full.WeightDecay, Step: full.Step}
	for _, ps := range d.mine {
		for _, p := range ps {
			n := p.hi - p.lo
			src := params[p.param]
			d.opt.slots = append(d.opt.slots, &optSlot{Name: src.Name, Data: src.Data[p.lo:p.hi], Decay: src.Decay,
				M: d.shardM[p.shard : p.shard+n], V: d.shardV[p.shard : p.shard+n]})
			d.shardG = append(d.shardG, d.gshard[p.shard:p.shard+n])
		}
	}
	d.times.Buckets = len(d.buckets)
	return d
}

// takeMoments keeps this rank's pieces of full's moments (loaded from a
// checkpoint) and drops the full copies.
func (d *dataParallel) takeMoments(full *AdamW) {
	k := 0
	for _, ps := range d.mine {
		for _, p := range ps {
			src := full.slots[p.param]
			if src.M != nil {
				copy(d.opt.slots[k].M, src.M[p.lo:p.hi])
				copy(d.opt.slots[k].V, src.V[p.lo:p.hi])
			}
			k++
		}
	}
	for _, p := range full.slots {
		p.M, p.V = nil, nil
	}
	d.opt.Step = full.Step
}

// gatherMoments fills full's moments on rank 0 from every rank's shard
// (a collective; other ranks get nothing). release drops them again.
func (d *dataParallel) gatherMoments(full *AdamW) error {
	counts := make([]int, d.world)
	for _, b := range d.counts {
		for r, n := range b {
			counts[r] += n
		}
	}
	var m, v []float32
	if d.rank == 0 {
		m, v = make([]float32, len(d.flat)), make([]float32, len(d.flat))
	}
	if err := d.c.GathervF32(d.shardM, m, counts, 0); err != nil {
		return err
	}
	if err := d.c.GathervF32(d.shardV, v, counts, 0); err != nil {
		return err
	}
	if d.rank != 0 {
		return nil
	}
	// Rank r's shard is its parts of the buckets in order: scatter them
	// back to flat positions, then to parameters.
	fm, fv := make([]float32, len(d.flat)), make([]float32, len(d.flat))
	src := 0
	for r := 0; r < d.world; r++ {
		for k, b := range d.buckets {
			a, n := b[0]+d.offs[k][r], d.counts[k][r]
			copy(fm[a:a+n], m[src:src+n])
			copy(fv[a:a+n], v[src:src+n])
			src += n
		}
	}
	for i, p := range full.slots {
		a := d.flatOff[i]
		p.M, p.V = fm[a:a+len(p.Data)], fv[a:a+len(p.Data)]
	}
	full.Step = d.opt.Step
	return nil
}

func releaseMoments(full *AdamW) {
	for _, p := range full.slots {
		p.M, p.V = nil, nil
	}
}

// optimizerBytes reports every rank's moment memory.
func (d *dataParallel) optimizerBytes() ([]int64, error) {
	all, err := d.c.AllgatherBytes([]byte(strconv.FormatInt(int64(8*len(d.shardM)), 10)))
	if err != nil {
		return nil, err
	}
	out := make([]int64, len(all))
	for r, b := range all {
		out[r], _ = strconv.ParseInt(string(b), 10, 64)
	}
	return out, nil
}

// fingerprint is what must be equal on every rank: the whole recipe after
// command-line overrides (steps, checkpoint cadence and logging included:
// the ranks' collectives must match to the last step), the run folder and
// --resume, the model config and the binary.
func fingerprint(r *run) (map[string]string, error) {
	sum := func(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }
	cc := *r.cfg
	cc.Source = "" // the recipe file may sit at another path on another node
	recipe, err := cc.Marshal()
	if err != nil {
		return nil, err
	}
	out := map[string]string{"recipe": sum(recipe), "run folder, --resume or bucket size": sum([]byte(fmt.Sprintf("%s\x00%v\x00%d", r.o.OutDir, r.o.Resume, r.o.BucketBytes)))}
	mc, err := json.Marshal(r.m.Config)
	if err != nil {
		return nil, err
	}
	out["model config"] = sum(mc)
	exe, err := os.Executable()
	if err == nil {
		var f *os.File
		if f, err = os.Open(exe); err == nil {
			hh := sha256.New()
			_, err = io.Copy(hh, f)
			f.Close()
			out["binary"] = hex.EncodeToString(hh.Sum(nil))
		}
	}
	if err != nil {
		return nil, fmt.Errorf("hashing the binary: %w", err)
	}
	return out, nil
}

// checkSame compares the ranks' fingerprints with rank 0's.
func (d *dataParallel) checkSame(r *run) error {
	fp, err := fingerprint(r)
	b, _ := json.Marshal(fp)
	if err := agree(d.c, err); err != nil {
		return err
	}
	all, err := d.c.AllgatherBytes(b)
	if err != nil {
		return err
	}
	var diffs []string
	var ref map[string]string
	if err := json.Unmarshal(all[0], &ref); err != nil {
		return &AgreedError{Err: fmt.Errorf("rank 0's fingerprint: %w", err)}
	}
	for rk := 1; rk < len(all); rk++ {
		var got map[string]string
		if err := json.Unmarshal(all[rk], &got); err != nil {
			return &AgreedError{Err: fmt.Errorf("rank %d's fingerprint: %w", rk, err)}
		}
		for _, k := range []string{"recipe", "run folder, --resume or bucket size", "model config", "binary"} {
			if got[k] != ref[k] {
				diffs = append(diffs, fmt.Sprintf("rank %d runs a different %s (sha256 %.12s…, rank 0: %.12s…)", rk, k, got[k], ref[k]))
			}
		}
	}
	if len(diffs) > 0 {
		return &AgreedError{Err: fmt.Errorf("train: the ranks disagree: %s; start every rank with the same magma binary, recipe and flags", strings.Join(diffs, "; "))}
	}
	return nil
}

// agreeCancel makes a Ctrl-C seen by any rank stop every rank at the same
// step.
func (d *dataParallel) agreeCancel(ctx context.Context) (bool, error) {
	d.cancel = append(d.cancel[:0], 0)
	if ctx.Err() != nil {
		d.cancel[0] = 1
	}
	if err := d.c.AllreduceF64(d.cancel); err != nil {
		return false, err
	}
	return d.cancel[0] > 0, nil
}

// gradients runs this rank's micro-batches of update step, reduces the
// weighted gradients bucket by bucket into this rank's shard and returns
// the global loss and squared gradient norm (sums of all ranks).
func (d *dataParallel) gradients(ctx context.Context, r *run, step int) (loss, normSq float64, err error) {
	cfg := r.cfg
	t0 := time.Now()
	clear(d.flat)
	var lossSum float64
	var comm chan error
	var ready chan int
	for micro := 0; micro < cfg.GradAccum; micro++ {
		last := micro == cfg.GradAccum-1
		tw := time.Now()
		batch, berr := r.stream.Next(ctx)
		r.window.wait += time.Since(tw)
		var lay model.Plan
		if berr != nil {
			berr = fmt.Errorf("train: step %d: data: %w", step+1, berr)
		} else if want := cfg.BatchSize / d.world; len(batch.Samples) != want {
			berr = fmt.Errorf("train: step %d: the data stream gave %d samples, this rank's slice of the global batch is %d (open the stream with Rank/World)", step+1, len(batch.Samples), want)
		} else {
			lay, berr = plan(r.m, batch, cfg.SeqBucket, r.maxLen)
			if berr == nil {
				berr = checkLabels(batch, r.o.Allowed)
			}
			if berr != nil {
				berr = fmt.Errorf("train: step %d: %w", step+1, berr)
			}
		}
		// Agree on errors and sum the counts that weight the ranks; a stop
		// signal that cut this rank's wait for data short stops every rank
		// (unless another rank has a real error, which wins).
		cnt := []float64{0, 0, 0, 0, 0}
		if berr != nil && ctx.Err() != nil && errors.Is(berr, ctx.Err()) {
			cnt[4] = 1
		} else if berr != nil {
			cnt[0] = 1
		} else {
			cnt[1], cnt[2], cnt[3] = float64(lay.Targets), float64(lay.Tokens), float64(len(batch.Samples))
		}
		mine := cnt[1]
		if err := d.c.AllreduceF64(cnt); err != nil {
			return 0, 0, err
		}
		if cnt[0] > 0 {
			if cnt[4] > 0 {
				berr = nil // this rank was only stopped: the others' errors are reported
			}
			return 0, 0, agree(d.c, berr)
		}
		if cnt[4] > 0 {
			return 0, 0, errDataCancelled
		}
		r.window.tokens += int64(cnt[2])
		r.window.samples += int64(cnt[3])
		r.tokensSeen += int64(cnt[2])
		r.samplesSeen += int64(cnt[3])
		w := 0.0
		if cnt[1] > 0 {
			w = mine / cnt[1]
		}
		sg, err := r.cache.get(lay.Shape, func() (*stepGraph, error) {
			return buildGraph(r.m, r.names, lay.Shape, r.trainable, cfg.ActivationCheckpointing)
		})
		if err != nil {
			return 0, 0, fmt.Errorf("train: step %d: building the graph for %v: %w", step+1, lay.Shape, err)
		}
		sg.fill(r.m, batch)
		exec, err := r.cache.executor()
		if err != nil {
			return 0, 0, fmt.Errorf("train: step %d: %w", step+1, err)
		}
		// Pending gradients per bucket; only the last micro-batch's
		// backward overlaps the reduction.
		var pending []int
		if last {
			pending = make([]int, len(d.buckets))
			for _, t := range sg.Params {
				d.eachBucket(r.tensorIndex[t], r.params, func(k int) { pending[k]++ })
			}
			ready = make(chan int, len(d.buckets))
			comm = make(chan error, 1)
			for k, n := range pending {
				if n == 0 {
					ready <- k
				}
			}
			go d.reduce(ready, comm)
		}
		var localLoss float64
		opts := &kernels.RunOptions{OnOutput: func(index int, n *G.Node, v G.Value) error {
			if index == 0 {
				return nil
			}
			pi := r.tensorIndex[sg.Params[index-1]]
			if mine > 0 {
				g, ok := v.Data().([]float32)
				if !ok || len(g) != len(r.params[pi].Data) {
					return fmt.Errorf("gradient of %s: %T of the wrong size", r.params[pi].Name, v.Data())
				}
				dst := d.flat[d.flatOff[pi] : d.flatOff[pi]+len(g)]
				for j, x := range g {
					dst[j] += float32(float64(x) * w)
				}
			}
			if last {
				d.eachBucket(pi, r.params, func(k int) {
					if pending[k]--; pending[k] == 0 {
						ready <- k
					}
				})
			}
			return nil
		}}
		localLoss, err = sg.runWith(exec, opts)
		if err != nil {
			return 0, 0, fmt.Errorf("train: step %d: forward/backward: %w", step+1, err)
		}
		if mine > 0 {
			lossSum += localLoss * w
		}
	}
	tc := time.Now()
	d.times.Compute += tc.Sub(t0)
	if err := <-comm; err != nil {
		return 0, 0, err
	}
	for _, sp := range d.spans {
		if sp[0].Before(tc) {
			d.times.ReduceOverlap += minTime(sp[1], tc).Sub(sp[0])
		}
	}
	var sq float64
	for _, g := range d.shardG {
		for _, x := range g {
			sq += float64(x) * float64(x)
		}
	}
	sums := []float64{lossSum, sq}
	if err := d.c.AllreduceF64(sums); err != nil {
		return 0, 0, err
	}
	d.times.CommWait += time.Since(tc)
	return sums[0] / float64(cfg.GradAccum), sums[1], nil
}

// eachBucket calls fn for every bucket that parameter pi overlaps.
func (d *dataParallel) eachBucket(pi int, params []*optSlot, fn func(k int)) {
	a, z := d.flatOff[pi], d.flatOff[pi]+len(params[pi].Data)
	if a == z || len(d.buckets) == 0 {
		return
	}
	per := d.buckets[0][1] - d.buckets[0][0]
	for k := a / per; k < len(d.buckets) && d.buckets[k][0] < z; k++ {
		fn(k)
	}
}

// reduce is the communication goroutine: it reduce-scatters the buckets in
// order (every rank must issue the collectives in the same order), each as
// soon as it is ready.
func (d *dataParallel) reduce(ready <-chan int, done chan<- error) {
	got := make([]bool, len(d.buckets))
	shard := 0
	d.spans = d.spans[:0]
	for k := range d.buckets {
		for !got[k] {
			got[<-ready] = true
		}
		b := d.buckets[k]
		n := d.counts[k][d.rank]
		t := time.Now()
		if err := d.c.ReduceScatterF32(d.flat[b[0]:b[1]], d.gshard[shard:shard+n], d.counts[k]); err != nil {
			done <- err
			return
		}
		te := time.Now()
		d.spans = append(d.spans, [2]time.Time{t, te})
		d.times.ReduceTime += te.Sub(t)
		d.times.ReduceBytes += int64(4 * (b[1] - b[0]))
		shard += n
	}
	done <- nil
}

// update applies AdamW to this rank's shard and all-gathers the weights.
func (d *dataParallel) update(params []*optSlot, lr, scale float64) error {
	t := time.Now()
	if err := d.opt.Update(d.shardG, lr, scale); err != nil {
		return err
	}
	tg := time.Now()
	d.times.Optimizer += tg.Sub(t)
	for k, b := range d.buckets {
		buf := d.flat[b[0]:b[1]]
		for _, p := range d.mine[k] {
			copy(d.flat[p.flat:p.flat+p.hi-p.lo], params[p.param].Data[p.lo:p.hi])
		}
		if err := d.c.AllgathervF32(buf, d.counts[k]); err != nil {
			return err
		}
		for i := len(params) - 1; i >= 0; i-- {
			a, z := d.flatOff[i], d.flatOff[i]+len(params[i].Data)
			s, e := max(a, b[0]), min(z, b[1])
			if s < e {
				copy(params[i].Data[s-a:e-a], d.flat[s:e])
			}
		}
		d.times.GatherBytes += int64(4 * (b[1] - b[0]))
	}
	el := time.Since(tg)
	d.times.GatherTime += el
	d.times.CommWait += el
	d.times.Steps++
	if !d.warm {
		// The first step compiles graphs and touches fresh memory: the
		// times report the steps after it.
		d.warm = true
		d.times = DistTimes{OptimizerBytes: d.times.OptimizerBytes, Buckets: d.times.Buckets}
	}
	return nil
}

// globalState is the data position to checkpoint: the furthest of the
// ranks' stream states (they are equal unless a rank skipped records).
func (d *dataParallel) globalState(own []byte) ([]byte, error) {
	all, err := d.c.AllgatherBytes(own)
	if err != nil {
		return nil, err
	}
	best, bestSeq := own, uint64(0)
	for _, b := range all {
		var st data.StreamState
		if json.Unmarshal(b, &st) == nil && st.Seq >= bestSeq {
			best, bestSeq = b, st.Seq
		}
	}
	return best, nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// finite reports whether x is a finite number.
func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// saveDP writes a checkpoint from a data-parallel job: the ranks agree on
// the data position, gather the optimizer moments to rank 0, rank 0 writes
// the one-process layout and every rank learns whether that worked.
func (r *run) saveDP(step int, loss float64, ds []byte, err error) error {
	d := r.dp
	ds, gerr := d.globalState(ds)
	if gerr != nil {
		return gerr
	}
	if err = agree(d.c, err); err != nil {
		return err
	}
	if err := d.gatherMoments(r.opt); err != nil {
		return err
	}
	var dir string
	if d.rank == 0 {
		dir, err = r.writer.save(r.state(step, loss, ds), r.opt)
		releaseMoments(r.opt)
	}
	if err = agree(d.c, err); err != nil {
		return err
	}
	name := []byte(dir)
	if name, err = d.c.BcastBytes(name, 0); err != nil {
		return err
	}
	r.lastCheckpoint = string(name)
	r.res.Checkpoint = string(name)
	return nil
}
