#!/usr/bin/env bash
# LIBERO benchmark: `magma finetune libero` samples/s on the tiny model, and
# POST /act latency (p50/p99) of `magma serve` on the small model, on a
# synthetic suite in the real LIBERO HDF5 layout (4 tasks x 12 demos x 20
# steps, 128x128 frames). Writes scripts/bench/results/libero.md.
#
#   scripts/bench/libero.sh [ACT_REQUESTS=50] [FINETUNE_STEPS=30]
set -euo pipefail
cd "$(dirname "$0")/../.."
N_ACT=${1:-50}
STEPS=${2:-30}
WORK=$(mktemp -d)
trap 'kill $SERVE_PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
SERVE_PID=

export GOFLAGS=-mod=mod
go build -o "$WORK/magma" ./cmd/magma
"$WORK/magma" eval synthetic --benchmark libero --format hdf5 --out "$WORK/libero_spatial" \
  --tasks 4 --demos 12 --steps 20 --size 128 --noops >/dev/null

"$WORK/magma" init --preset tiny --out "$WORK/tiny" >/dev/null
FT_CMD="magma finetune libero --data SUITE --init tiny --shots 10 --steps $STEPS --batch-size 4 --lr 1e-3 --save-every 0"
"$WORK/magma" finetune libero --data "$WORK/libero_spatial" --init "$WORK/tiny" --out "$WORK/run" \
  --shots 10 --steps "$STEPS" --batch-size 4 --lr 1e-3 --save-every 0 >"$WORK/ft.log" 2>&1
# Mean samples/s over the logged steps after the first (graph build, warm-up).
FT=$(python3 - "$WORK/run/metrics.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
rows = rows[1:] or rows
sps = sum(r["samples_per_s"] for r in rows) / len(rows)
step = sum(r["step_ms"] for r in rows) / len(rows)
print(f"{sps:.2f} {step:.0f}")
PY
)
FT_SPS=${FT% *}; FT_STEP=${FT#* }

# /act on the small preset (random weights: latency only), statistics from the run.
"$WORK/magma" init --preset small --out "$WORK/small" >/dev/null
cp "$WORK/run/dataset_statistics.json" "$WORK/small/"
PORT=$((20000 + RANDOM % 20000))
"$WORK/magma" serve --model "$WORK/small" --addr "127.0.0.1:$PORT" --max-batch 1 >"$WORK/serve.log" 2>&1 &
SERVE_PID=$!
for _ in $(seq 1 600); do
  curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
  sleep 0.5
done
python3 - "$PORT" "$N_ACT" "$WORK/lat.txt" <<'PY'
import json, sys, time, urllib.request
port, n, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
img = [[[(x * 2) % 256, (y * 2) % 256, 128] for x in range(128)] for y in range(128)]
body = json.dumps({"image": img, "instruction": "do bench task 1", "unnorm_key": "libero_spatial"}).encode()
lat = []
for i in range(n + 2):
    t = time.perf_counter()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/act", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        a = json.loads(r.read())
        assert len(a) == 7, a
    if i >= 2:  # two warm-up requests
        lat.append((time.perf_counter() - t) * 1000)
open(out, "w").write("\n".join(f"{v:.2f}" for v in lat))
PY
kill $SERVE_PID; wait $SERVE_PID 2>/dev/null || true; SERVE_PID=
read -r P50 P99 < <(python3 - "$WORK/lat.txt" <<'PY'
import sys
v = sorted(float(l) for l in open(sys.argv[1]))
def q(p):  # numpy linear quantile
    h = (len(v) - 1) * p; i = int(h); return v[i] + (h - i) * (v[min(i + 1, len(v) - 1)] - v[i])
print(f"{q(0.5):.1f} {q(0.99):.1f}")
PY
)

CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
mkdir -p scripts/bench/results
cat > scripts/bench/results/libero.md <<MD
# LIBERO benchmark

\`scripts/bench/libero.sh $N_ACT $STEPS\` on $(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD).
Machine: \`nproc\` = $(nproc), $CPU, load average before the runs' end: $LOAD (shared machine).
Suite: \`magma eval synthetic --benchmark libero --format hdf5 --tasks 4 --demos 12 --steps 20 --size 128\` (real LIBERO HDF5 layout, 2 no-ops per demo, 128x128 frames); 10 shots.

| what | command | model | result |
|---|---|---|---|
| finetune throughput | \`$FT_CMD\` | tiny (random init) | $FT_SPS samples/s ($FT_STEP ms per update of 4 samples), mean over updates 2..$STEPS |
| /act latency | \`magma serve --model small --max-batch 1\`, $N_ACT sequential POST /act, 128x128 nested-list image | small (random init) | p50 $P50 ms, p99 $P99 ms (after 2 warm-up requests) |

/act latency includes JSON parsing of the 128x128x3 nested list, anyres preprocessing, the vision tower, prefill and 7 decode steps.
MD
cat scripts/bench/results/libero.md
