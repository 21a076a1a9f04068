#!/bin/sh
# Distributed training benchmark (issue 15): `mpirun -np 2 magma pretrain`
# on the `small` preset (the tiny recipe's synthetic mixture, global batch
# 4 = 2 per rank), time per step split into compute, waiting on
# communication and optimizer (rank 0, steps after the first), next to one
# process on the same global batch; and what the collectives achieve on
# 25 MiB buffers vs a plain memory copy (scripts/bench/mpibw). Writes
# scripts/bench/results/mpi.md.
#
#   scripts/bench/mpi.sh [STEPS]
set -eu
cd "$(dirname "$0")/../.."
STEPS=${1:-4}
OUT=scripts/bench/results
mkdir -p "$OUT"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
GOFLAGS=-mod=mod go build -o "$TMP/magma" ./cmd/magma
GOFLAGS=-mod=mod go build -o "$TMP/mpibw" ./scripts/bench/mpibw
MPIRUN="mpirun --allow-run-as-root --oversubscribe"
sed -e 's/preset: tiny/preset: small/' -e "s/^steps: 300/steps: $STEPS/" -e 's/^log_every: 5/log_every: 1/' -e 's/^max_seq_len: 512/max_seq_len: 2048/' \
	-e "s|  synthetic:|  synthetic:\n    dir: $TMP/synth|" configs/pretrain/tiny.yaml > "$TMP/small.yaml"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
# Two ranks with one thread each on this 2-core machine; one process with
# both cores. Each small run peaks near 3 GB per process: the bigmem lock.
flock /work/wt/bigmem.lock /usr/bin/time -f '%M' -o "$TMP/rss1" env GOMAXPROCS=2 OPENBLAS_NUM_THREADS=1 \
	"$TMP/magma" pretrain --config "$TMP/small.yaml" --out "$TMP/one" > "$TMP/one.log" 2>&1 || { tail -20 "$TMP/one.log"; exit 1; }
flock /work/wt/bigmem.lock /usr/bin/time -f '%M' -o "$TMP/rss2" $MPIRUN -np 2 -x GOMAXPROCS=1 -x OPENBLAS_NUM_THREADS=1 \
	"$TMP/magma" pretrain --config "$TMP/small.yaml" --out "$TMP/two" > "$TMP/two.log" 2>&1 || { tail -20 "$TMP/two.log"; exit 1; }
$MPIRUN -np 2 "$TMP/mpibw" -mb 25 -iters 20 > "$TMP/bw.json"
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
/usr/bin/python3 - "$TMP" "$STEPS" "$LOAD_BEFORE" "$LOAD_AFTER" > "$OUT/mpi.md" <<'PY'
import json, re, sys, subprocess
tmp, steps, lb, la = sys.argv[1:5]
def metrics(d):
    return [json.loads(l) for l in open(f"{tmp}/{d}/metrics.jsonl") if l.strip()]
one, two = metrics("one"), metrics("two")
def med(v):
    v = sorted(v); return v[len(v)//2]
s1 = med([m["step_ms"] for m in one[1:]]); s2 = med([m["step_ms"] for m in two[1:]])
log = open(f"{tmp}/two.log").read()
split = re.search(r"compute ([\d.]+) ms, waiting on communication ([\d.]+) ms, optimizer ([\d.]+) ms", log)
red = re.search(r"reduce-scatter: ([\d.]+) MB/s \(([\d.]+) ms per step, ([\d.]+) ms of it during backward\); weight all-gather: ([\d.]+) MB/s \(([\d.]+) ms per step\)", log)
opt = re.search(r"rank 0 (\d+) bytes; rank 1 (\d+) bytes; one process: (\d+) bytes", log)
bw = json.load(open(f"{tmp}/bw.json"))
maxdiff = max(abs(a["loss"]-b["loss"])/abs(a["loss"]) for a, b in zip(one, two))
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
nproc = subprocess.check_output(["nproc"]).decode().strip()
mpiv = subprocess.check_output(["mpirun", "--version"]).decode().splitlines()[0]
rss1 = int(open(f"{tmp}/rss1").read().split()[-1]) // 1024
rss2 = int(open(f"{tmp}/rss2").read().split()[-1]) // 1024
c, w, o = (float(x) for x in split.groups())
print(f"# Distributed training: `mpirun -np 2 magma pretrain`, `small` preset\n")
print(f"Machine: {cpu}, {nproc} cores; {mpiv} (shared memory between the ranks); load {lb} before, {la} after.")
print(f"Command: `make bench-mpi` (`scripts/bench/mpi.sh {steps}`): the tiny recipe with `preset: small` (100.8M parameters), global batch 4, {steps} updates; medians over the updates after the first.\n")
print("| | one process (2 threads) | mpirun -np 2 (1 thread each) | ratio |")
print("|---|---|---|---|")
print(f"| step time (ms, median) | {s1:.0f} | {s2:.0f} | {s2/s1:.2f}x |")
print(f"| peak RSS (MB; one process / largest rank as `time` sees mpirun's children) | {rss1} | {rss2} | |")
print(f"| loss curve, max relative difference | | {maxdiff:.1e} | |")
print(f"\nRank 0's step at N=2 (mean over the updates after the first):\n")
print("| compute (data + forward + backward) | waiting on communication | optimizer (AdamW on the rank's half) |")
print("|---|---|---|")
print(f"| {c:.0f} ms ({c/(c+w+o):.0%}) | {w:.0f} ms ({w/(c+w+o):.0%}) | {o:.0f} ms ({o/(c+w+o):.0%}) |")
print(f"\nGradient reduce-scatter in 25 MiB buckets: {float(red.group(1)):.0f} MB/s, {float(red.group(2)):.0f} ms per step of which {float(red.group(3)):.0f} ms overlapped the backward pass; weight all-gather: {float(red.group(4)):.0f} MB/s, {float(red.group(5)):.0f} ms per step.")
print(f"ZeRO-1 optimizer state: rank 0 {int(opt.group(1))/1e6:.0f} MB, rank 1 {int(opt.group(2))/1e6:.0f} MB; one process {int(opt.group(3))/1e6:.0f} MB ({int(opt.group(1))/int(opt.group(3)):.2f}x per rank).\n")
print(f"Collectives on {bw['bytes']/2**20:.0f} MiB float32 buffers between the 2 ranks (`mpibw`, median of {bw['iters']}), vs a memory copy of the same bytes in one process:\n")
print("| operation | time (ms) | bandwidth (GB/s) | vs memcpy |")
print("|---|---|---|---|")
m = bw["memcpy_GBps"]
print(f"| memcpy (copy) | {bw['memcpy_s']*1e3:.1f} | {m:.2f} | 1.00x |")
print(f"| MPI_Allreduce (sum) | {bw['allreduce_s']*1e3:.1f} | {bw['allreduce_algbw_GBps']:.2f} (bus {bw['allreduce_busbw_GBps']:.2f}) | {bw['allreduce_algbw_GBps']/m:.3f}x |")
print(f"| MPI_Reduce_scatter + MPI_Allgatherv (ZeRO-1) | {bw['reduce_scatter_allgather_s']*1e3:.1f} | {bw['reduce_scatter_allgather_algbw_GBps']:.2f} | {bw['reduce_scatter_allgather_algbw_GBps']/m:.3f}x |")
PY
cat "$OUT/mpi.md"
