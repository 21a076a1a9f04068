#!/bin/sh
# Data reader benchmark (make bench-data): writes benchmark files in the
# published layouts (scripts/bench/data_gen.mjs: Video-ToM-like Arrow IPC
# stream shards, OXE-ToM-like Arrow IPC file shards, a Mind2Web-SoM-like
# Parquet file, a LIBERO-like RLDS TFRecord dataset), reads them with the Go
# readers (scripts/bench/datago) and with the references (npm apache-arrow +
# parquet-wasm: scripts/bench/data_ref.mjs; Python struct TFRecord:
# scripts/bench/data_ref_tfrecord.py), then trains the tiny preset for STEPS
# updates on a mixture of the four real-format sources and reports the
# trainer's data wait per step. Writes scripts/bench/results/data.md.
#
#   scripts/bench/data.sh [SCALE] [STEPS]
set -eu
cd "$(dirname "$0")/../.."
SCALE=${1:-1}
STEPS=${2:-30}
OUT=scripts/bench/results
mkdir -p "$OUT"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
npm install --prefix "$TMP/npm" --no-audit --no-fund --silent apache-arrow@21.2.0 parquet-wasm@0.8.0 >/dev/null
export NODE_PATH="$TMP/npm/node_modules"
node scripts/bench/data_gen.mjs "$TMP/data" "$SCALE" >/dev/null
GOFLAGS=-mod=mod go build -o "$TMP/datago" ./scripts/bench/datago
GOFLAGS=-mod=mod go build -o "$TMP/magma" ./cmd/magma
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
"$TMP/datago" -dir "$TMP/data" > "$TMP/go.json"
node scripts/bench/data_ref.mjs "$TMP/data" > "$TMP/node.json"
/usr/bin/python3 scripts/bench/data_ref_tfrecord.py "$TMP/data" > "$TMP/py.json"
D="$TMP/data"
cat > "$TMP/recipe.yaml" <<YAML
model:
  preset: tiny
data:
  workers: 2
  on_error: skip
  max_crops: 1
  sources:
    - {name: video-tom, type: magma_tom, path: $D/video_tom, video_folder: $D/video_tom/videos, weight: 0.3}
    - {name: oxe-tom, type: magma_tom, path: $D/oxe_tom, robot: true, trace_size: [256, 256], weight: 0.3}
    - {name: mind2web-som, type: magma_som, path: $D/mind2web_som, weight: 0.2}
    - {name: libero-rlds, type: rlds, path: $D/libero_spatial_no_noops, weight: 0.2}
optimizer: {name: adamw, lr: 1.0e-3, weight_decay: 0.01, max_grad_norm: 1.0}
schedule: {name: constant}
steps: $STEPS
batch_size: 2
seq_bucket: 128
max_seq_len: 768
checkpoint: {every: 0, keep: 1}
log_every: 1
seed: 0
YAML
/usr/bin/time -v "$TMP/magma" pretrain --config "$TMP/recipe.yaml" --out "$TMP/run" > "$TMP/train.log" 2> "$TMP/train.time"
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
mkdir -p "$OUT/data-raw"
cp "$TMP/go.json" "$TMP/node.json" "$TMP/py.json" "$TMP/run/metrics.jsonl" "$TMP/data/counts.json" "$OUT/data-raw/"
/usr/bin/python3 - "$TMP" "$SCALE" "$STEPS" "$LOAD_BEFORE" "$LOAD_AFTER" > "$OUT/data.md" <<'PY'
import json, sys, subprocess, statistics
tmp, scale, steps, lb, la = sys.argv[1:6]
g = json.load(open(tmp + "/go.json")); n = json.load(open(tmp + "/node.json")); p = json.load(open(tmp + "/py.json"))
counts = json.load(open(tmp + "/data/counts.json"))
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
nproc = subprocess.check_output(["nproc"]).decode().strip()
waits, steptimes = [], []
for line in open(tmp + "/run/metrics.jsonl"):
    m = json.loads(line)
    if "data_wait_ms" in m:
        waits.append(m["data_wait_ms"])
rss = next((int(l.split(":")[1]) / 1024 for l in open(tmp + "/train.time") if "Maximum resident" in l), 0)
print("# Data readers: released Magma sets (Arrow/Parquet) and OXE RLDS (TFRecord)\n")
print("Command: `scripts/bench/data.sh %s %s` (`make bench-data`). Machine: %s CPU cores (`nproc`), %s; load average %s before, %s after (shared machine: absolute numbers are noisy; all readers ran back to back). Each reader's second pass over the files is timed (page cache warm).\n" % (scale, steps, nproc, cpu, lb, la))
print("Files (written by scripts/bench/data_gen.mjs with npm apache-arrow %s and parquet-wasm %s): Video-ToM-like: %d rows in 4 IPC-stream shards (CoTracker grid 15: trace [16,225,2] float32 + visibility [16,225] bool, 100-row batches); OXE-ToM-like: %d rows in 2 IPC-file shards (trace [1,16,225,2], 7-D action, 256x256 PNG frame); Mind2Web-SoM-like: %d rows of Parquet (320x240 PNG screenshot + conversation, 100-row groups, snappy); LIBERO-like RLDS: %d episodes x 50 steps in 4 TFRecord shards (two 128x128 PNG cameras, state, action, instruction).\n" % (n["apache_arrow"], n["parquet_wasm"], counts["video_tom"], counts["oxe_tom"], counts["mind2web_som"], counts["rlds_episodes"]))
print("| reader (rows read, columns) | Go rows/s | reference | reference rows/s | Go / reference | MB |")
print("|---|---|---|---|---|---|")
def row(label, key, ref, refname):
    a, b = g[key], ref[key]
    print("| %s | %.0f | %s | %.0f | %.2fx | %.0f |" % (label, a["per_second"], refname, b["per_second"], a["per_second"] / b["per_second"], a["mb"]))
row("Arrow IPC stream, Video-ToM (task, frame, trace, visibility)", "arrow_stream_video_tom", n, "Node %s apache-arrow" % n["node"])
row("Arrow IPC file, OXE-ToM (lang, action, image bytes, trace, visibility)", "arrow_file_oxe_tom", n, "Node apache-arrow")
row("Parquet, Mind2Web-SoM (id, image bytes, conversations)", "parquet_mind2web_som", n, "Node parquet-wasm + apache-arrow")
a, b = g["tfrecord"], p["tfrecord"]
print("| TFRecord RLDS episodes (every feature; Go checks both CRC32Cs) | %.1f episodes/s (%.0f MB/s) | Python %s struct + pure-Python protobuf, no CRC | %.1f episodes/s (%.0f MB/s) | %.2fx | %.0f |" % (a["per_second"], a["mb"] / a["seconds"], p["python"], b["per_second"], b["mb"] / b["seconds"], a["per_second"] / b["per_second"], a["mb"]))
print("\nPeak RSS: Go readers %.0f MB, of which mapped file pages (page cache, reclaimable: the files are memory-mapped and batches decoded zero-copy, one at a time) %.0f MB and heap %.0f MB after the readers; Node %.0f MB (each file read whole into memory, then tables); Python %.0f MB (one record at a time).\n" % (g["peak_rss_readers_mb"], g["rss_file_after_readers_mb"], g["rss_anon_after_readers_mb"], n["peak_rss_mb"], p["peak_rss_mb"]))
print("Sources (one goroutine; open = indexing pass, for RLDS including OpenVLA statistics; a sample = read + decode image/frame + ToM selection or SoM/action text + tokenise + preprocess at 512 px):\n")
print("| source | records | open (s) | samples/s |")
print("|---|---|---|---|")
for k, v in g["sources"].items():
    print("| %s | %d | %.2f | %.1f |" % (k, v["records"], v["open_s"], v["samples_per_s"]))
if waits:
    ws = waits[1:] or waits
    print("\nTrainer: `magma pretrain` (tiny preset, batch 2, seq_bucket 128, 2 data workers) on a mixture of the four real-format sources (video-tom 0.3, oxe-tom 0.3, mind2web-som 0.2, libero-rlds 0.2), %d updates, log_every 1: data wait per update median %.2f ms, max %.2f ms (first update excluded: %.2f ms, the pipeline filling); peak RSS %.0f MB." % (len(waits), statistics.median(ws), max(ws), waits[0], rss))
PY
cat "$OUT/data.md"
