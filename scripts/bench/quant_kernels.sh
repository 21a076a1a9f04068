#!/bin/sh
# Quantized decode GEMV (issue 28): Q8_0, Q4_K, Q6_K weights on an 8B
# decoder's projection shapes, every code path the CPU has, 8-bit
# activations ("q8", the default) and float32 activations ("exact"), against
# the bf16 GEMV and the machine's read bandwidth measured before and after,
# in one run. GB/s counts the weight bytes read per product. Then each
# path's compute ceiling per core (BenchmarkGEMVQuantCompute: in-cache
# matrix, bytes per second of the thread's CPU time, robust to load).
# Prints a markdown table and writes it to
# scripts/bench/results/quant_kernels.md.
#
#   scripts/bench/quant_kernels.sh [benchtime]
set -eu
cd "$(dirname "$0")/../.."
OUT=scripts/bench/results
mkdir -p "$OUT"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
export GOFLAGS=-mod=mod
N=${1:-30}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
go test -c -o "$TMP/kernels.test" ./kernels/
(cd kernels && "$TMP/kernels.test" -test.run '^$' -test.bench '^BenchmarkReadBandwidth$' -test.benchtime 10x -test.count 2) | tee "$TMP/bw.txt"
(cd kernels && /usr/bin/time -f 'peakRSS %M KB' -o "$TMP/rss.txt" "$TMP/kernels.test" -test.run '^$' -test.bench '^BenchmarkGEMVQuant$' -test.benchtime "${N}x" -test.count 2) | tee "$TMP/gemv.txt"
(cd kernels && "$TMP/kernels.test" -test.run '^$' -test.bench '^BenchmarkReadBandwidth$' -test.benchtime 10x -test.count 2) | tee -a "$TMP/bw.txt"
(cd kernels && "$TMP/kernels.test" -test.run '^$' -test.bench '^BenchmarkGEMVQuantCompute$' -test.benchtime 200x -test.count 2) | tee "$TMP/cpu.txt"
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

/usr/bin/python3 - "$TMP" "$LOAD_BEFORE" "$LOAD_AFTER" "$N" > "$OUT/quant_kernels.md" <<'PY'
import os, re, statistics, subprocess, sys
tmp, lb, la, n = sys.argv[1:5]
def rate(path):
    r = {}
    for line in open(os.path.join(tmp, path)):
        m = re.match(r"Benchmark(\S+?)-\d+\s+\d+\s+[\d.]+ ns/op\s+([\d.]+) MB/s", line)
        if m:
            r.setdefault(m.group(1), []).append(float(m.group(2)) / 1000)
    return r
bw, gemv = rate("bw.txt"), rate("gemv.txt")
cpu_rate = {}
for line in open(os.path.join(tmp, "cpu.txt")):
    m = re.match(r"BenchmarkGEMVQuantCompute/(\S+?)-\d+\s+\d+\s+[\d.]+ ns/op\s+([\d.]+) cpuGB/s", line)
    if m:
        cpu_rate[m.group(1)] = max(cpu_rate.get(m.group(1), 0), float(m.group(2)))
rss = open(os.path.join(tmp, "rss.txt")).read().split()[-2]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
flags = next((l for l in open("/proc/cpuinfo") if l.startswith("flags")), "")
simd = ", ".join(f for f in ("avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx2", "fma", "f16c") if (" %s " % f) in flags + " ")
nproc = subprocess.check_output(["nproc"]).decode().strip()
read2 = max(bw.get("ReadBandwidth/goroutines=2", [0]))
print("# Quantized decode GEMV (issue 28)\n")
print("Command: `make bench-quant-kernels` (`scripts/bench/quant_kernels.sh %s`). Machine: %s cores, %s (%s); "
      "load average %s before, %s after (the machine is shared: numbers move with the load). Peak RSS of the GEMV benchmark: %.0f MB.\n"
      % (n, nproc, cpu, simd, lb, la, int(rss) / 1024))
print("y = x·Wᵀ, one input row, 2 goroutines (64-row pieces), each product on another matrix (over 256 MiB round robin, "
      "so weights come from DRAM). GB/s = weight bytes read (blocks with their scales) / time, best of 2 runs; "
      "read bound = BenchmarkReadBandwidth, 2 goroutines, best of the runs before and after (%.1f GB/s). "
      "weights/s relative to bf16 = (GB/s / bytes per weight) / bf16's on the same shape. "
      "Compute ceiling = BenchmarkGEMVQuantCompute (511x4096 in cache, one thread): weight bytes per second of the thread's CPU time, "
      "best of 2; a path whose ceiling is above a core's share of the read bandwidth is memory-bound.\n" % read2)
print("| weights | shape | path | activations | GB/s | of read bound | weights/s vs bf16 | compute ceiling per core, GB/s |")
print("|---|---|---|---|---|---|---|---|")
bpw = {"BF16": 2, "Q8_0": 34 / 32, "Q4_K": 144 / 256, "Q6_K": 210 / 256}
for shape in ("4096x4096", "14336x4096"):
    bf = [(k, v) for k, v in gemv.items() if k.startswith("GEMVQuant/BF16/%s/" % shape)]
    bfrate = max(bf[0][1]) / 2 if bf else 0
    for k, v in gemv.items():
        parts = k.split("/")
        if parts[2] != shape:
            continue
        dt, path = parts[1], parts[3]
        mode = parts[4] if len(parts) > 4 else "f32"
        g = max(v)
        wr = g / bpw[dt]
        ck = "%s/%s" % (dt, path) if dt == "BF16" else "%s/%s/%s" % (dt, path, mode)
        print("| %s | %s | %s | %s | %.1f | %.2f | %.2fx | %.1f |" % (dt, shape, path, mode, g, g / read2 if read2 else 0, wr / bfrate if bfrate else 0, cpu_rate.get(ck, 0)))
PY
cat "$OUT/quant_kernels.md"
