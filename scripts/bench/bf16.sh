#!/bin/sh
# bf16 weights benchmark (issue 14), in one run:
#  (1) the `small` preset forward and decode with float32 and with bf16
#      weights in memory (Go: model benchmarks with MAGMA_BENCH_DTYPE), and
#      PyTorch on the same config.json with float32 and with bf16 weights
#      (bench_torch.py --dtype bf16: every weight .to(torch.bfloat16)),
#      peak RSS of each after the weights are built;
#  (2) the decode GEMV with bf16 weights (8B-size projections) in GB/s
#      against the machine's read bandwidth, measured before and after it.
# Prints a markdown table and writes it to scripts/bench/results/bf16.md.
#
#   scripts/bench/bf16.sh
set -eu
cd "$(dirname "$0")/../.."
OUT=scripts/bench/results
mkdir -p "$OUT"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
export GOFLAGS=-mod=mod

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
go run ./cmd/magma init --preset small --out "$TMP/small" > "$TMP/init.log"
rm -f "$TMP/small/model.safetensors"
sync
CFG="$TMP/small/config.json"
export MAGMA_BENCH_CONFIG_DIR="$TMP/small"

# (1) Go, float32 then bf16 weights.
go test -c -o "$TMP/model.test" ./model/
go test -c -o "$TMP/kernels.test" ./kernels/
for dt in f32 bf16; do
	(cd model && MAGMA_BENCH_DTYPE=$dt "$TMP/model.test" -test.run '^$' -test.bench '^BenchmarkSmallForward$' -test.benchtime 3x -test.count 3) | sed "s/^Benchmark/$dt Benchmark/" | tee -a "$TMP/go.txt"
	(cd model && MAGMA_BENCH_DTYPE=$dt "$TMP/model.test" -test.run '^$' -test.bench '^BenchmarkSmallDecode$' -test.benchtime 32x -test.count 3) | sed "s/^Benchmark/$dt Benchmark/" | tee -a "$TMP/go.txt"
done
# PyTorch, 1 thread (its fastest setting here, see BENCHMARKS.md issue 2).
for dt in f32 bf16; do
	/usr/bin/python3 scripts/reference/bench_torch.py --config "$CFG" --image-size 512 --prompt-tokens 64 \
		--decode-tokens 32 --threads 1 --repeat 3 --dtype "$dt" --json "$TMP/torch_$dt.json"
done

# (2) GEMV vs read bandwidth: bandwidth, GEMV, bandwidth.
(cd kernels && "$TMP/kernels.test" -test.run '^$' -test.bench '^BenchmarkReadBandwidth$' -test.benchtime 10x -test.count 3) | tee "$TMP/bw.txt"
(cd kernels && "$TMP/kernels.test" -test.run '^$' -test.bench '^BenchmarkGEMVDecode$' -test.benchtime 60x -test.count 3) | tee "$TMP/gemv.txt"
(cd kernels && "$TMP/kernels.test" -test.run '^$' -test.bench '^BenchmarkReadBandwidth$' -test.benchtime 10x -test.count 3) | tee -a "$TMP/bw.txt"
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

/usr/bin/python3 - "$TMP" "$LOAD_BEFORE" "$LOAD_AFTER" > "$OUT/bf16.md" <<'PY'
import json, os, re, statistics, subprocess, sys
tmp, lb, la = sys.argv[1:4]
go = {}
for line in open(os.path.join(tmp, "go.txt")):
    m = re.match(r"(\w+) Benchmark(\w+)-\d+\s+\d+\s+([\d.]+) ns/op\s+([\d.]+) peakRSS-MB", line)
    if m:
        go.setdefault((m.group(1), m.group(2)), []).append((float(m.group(3)), float(m.group(4))))
def gmed(dt, name, i=0):
    return statistics.median(v[i] for v in go[(dt, name)])
torch = {dt: json.load(open(os.path.join(tmp, "torch_%s.json" % dt))) for dt in ("f32", "bf16")}
def rate(path):
    r = {}
    for line in open(os.path.join(tmp, path)):
        m = re.match(r"Benchmark(\S+?)-\d+\s+\d+\s+[\d.]+ ns/op\s+([\d.]+) MB/s", line)
        if m:
            r.setdefault(m.group(1), []).append(float(m.group(2)) / 1000)
    return r
bw, gemv = rate("bw.txt"), rate("gemv.txt")
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
flags = next((l for l in open("/proc/cpuinfo") if l.startswith("flags")), "")
simd = ", ".join(f for f in ("avx512f", "avx512_bf16", "avx2", "fma", "f16c") if (" %s " % f) in flags + " ")
nproc = subprocess.check_output(["nproc"]).decode().strip()
print("# bf16 weights: `small` preset and decode GEMV\n")
print("Command: `make bench-bf16` (`scripts/bench/bf16.sh`). Machine: %s cores, %s (%s); load average %s before, %s after; PyTorch %s, 1 thread.\n"
      % (nproc, cpu, simd, lb, la, torch["f32"]["torch_version"]))
print("Workload: the `small` preset (100.8M parameters, random weights), one 512x512 image and a 64-token prompt "
      "(335 prefill positions); forward = vision + projector + prefill to the last logits; decode = greedy steps with the KV cache. "
      "bf16 = weights held as bfloat16 in memory (Go: nn.ConvertParams, float32 activations and accumulation; PyTorch: every weight "
      "and the pixels `.to(torch.bfloat16)`, bf16 compute). Peak RSS is counted after the weights are built (VmHWM reset).\n")
print("| | Go f32 | Go bf16 | Go bf16 / f32 | PyTorch f32 | PyTorch bf16 | Go bf16 / PyTorch bf16 |")
print("|---|---|---|---|---|---|---|")
f32f, bff = gmed("f32", "SmallForward") / 1e6, gmed("bf16", "SmallForward") / 1e6
f32d, bfd = 1e9 / gmed("f32", "SmallDecode"), 1e9 / gmed("bf16", "SmallDecode")
tf, tb = torch["f32"], torch["bf16"]
print("| forward (ms, lower is better) | %.0f | %.0f | %.2fx | %.0f | %.0f | %.2fx |" % (f32f, bff, bff / f32f, tf["forward_ms"], tb["forward_ms"], bff / tb["forward_ms"]))
print("| decode (tokens/s, higher is better) | %.1f | %.1f | %.2fx | %.1f | %.1f | %.2fx |" % (f32d, bfd, bfd / f32d, tf["decode_tokens_per_s"], tb["decode_tokens_per_s"], bfd / tb["decode_tokens_per_s"]))
pr = lambda dt, n: gmed(dt, n, 1)
print("| peak RSS forward (MB) | %.0f | %.0f | %.2fx | - | - | - |" % (pr("f32", "SmallForward"), pr("bf16", "SmallForward"), pr("bf16", "SmallForward") / pr("f32", "SmallForward")))
print("| peak RSS decode run (MB) | %.0f | %.0f | %.2fx | %.0f | %.0f | %.2fx |" % (pr("f32", "SmallDecode"), pr("bf16", "SmallDecode"), pr("bf16", "SmallDecode") / pr("f32", "SmallDecode"), tf["peak_rss_mb"], tb["peak_rss_mb"], pr("bf16", "SmallDecode") / tb["peak_rss_mb"]))
print("\n(PyTorch's peak RSS covers its whole bench run: forward and decode.)\n")
bw2 = bw.get("ReadBandwidth/goroutines=2", [])
bw1 = bw.get("ReadBandwidth/goroutines=1", [])
bound = max(bw2 + bw1)
print("## Decode GEMV vs read bandwidth\n")
print("Read bandwidth (1 GiB, widest loads, measured before and after the GEMVs): 2 goroutines %s GB/s, 1 goroutine %s GB/s; bound used: %.1f GB/s, the best run (the machine is shared: the conservative choice).\n"
      % (", ".join("%.1f" % x for x in bw2), ", ".join("%.1f" % x for x in bw1), bound))
print("| weight (out x in) | dtype / path | GB/s of weights read (median of 3) | median % of the bound | best run % of the bound | time per product (ms, median) |")
print("|---|---|---|---|---|---|")
for k in sorted(gemv):
    parts = k.split("/")
    dt, shape = parts[1], parts[2]
    path = parts[3] if len(parts) > 3 else "OpenBLAS sgemv"
    g = statistics.median(gemv[k])
    o, i = map(int, shape.split("x"))
    nbytes = o * i * (2 if dt == "BF16" else 4)
    print("| %s | %s %s | %.1f | %.0f%% | %.0f%% | %.2f |" % (shape, dt, path, g, 100 * g / bound, 100 * max(gemv[k]) / bound, nbytes / g / 1e6))
PY
cat "$OUT/bf16.md"
