#!/bin/sh
# Training-step benchmark: Go engine (data pipeline + forward + backward +
# AdamW, train.Run on the small preset) vs an equivalent PyTorch step
# (scripts/bench/train_torch.py on magma_ref.py's model), same config,
# batch and sequence shapes. Writes scripts/bench/results/train.md.
#
#   scripts/bench/train.sh [BATCH] [STEPS]
set -eu
cd "$(dirname "$0")/../.."
BATCH=${1:-2}
STEPS=${2:-4}
THREADS=$(nproc)
OUT=scripts/bench/results
mkdir -p "$OUT"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
GOFLAGS=-mod=mod go build -o "$TMP/traingo" ./scripts/bench/traingo
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
GOMAXPROCS=$THREADS "$TMP/traingo" -preset configs/small.yaml -batch "$BATCH" -steps "$STEPS" > "$TMP/go.json"
# The same with activation checkpointing (activation_checkpointing: true).
GOMAXPROCS=$THREADS "$TMP/traingo" -preset configs/small.yaml -batch "$BATCH" -steps "$STEPS" -recompute > "$TMP/go_rc.json"
TEXT=$(/usr/bin/python3 -c "import json;d=json.load(open('$TMP/go.json'));print(d['text_tokens_per_sample'][0])")
SUP=$(/usr/bin/python3 -c "import json;d=json.load(open('$TMP/go.json'));print(d['supervised_per_sample'][0])")
# PyTorch with as many threads as cores, and with 1 (its OpenBLAS still uses
# every core; 2 torch threads on top oversubscribe a 2-core machine).
for T in "$THREADS" 1; do
	/usr/bin/python3 scripts/bench/train_torch.py --config configs/small.yaml --batch "$BATCH" --text-tokens "$TEXT" \
		--supervised "$SUP" --steps "$STEPS" --threads "$T" --json "$TMP/torch_t$T.json"
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
/usr/bin/python3 - "$TMP/go.json" "$TMP/torch_t$THREADS.json" "$BATCH" "$STEPS" "$LOAD_BEFORE" "$LOAD_AFTER" "$TMP/torch_t1.json" "$TMP/go_rc.json" > "$OUT/train.md" <<'PY'
import json, sys, subprocess, platform
g = json.load(open(sys.argv[1])); t = json.load(open(sys.argv[2]))
batch, steps, lb, la = sys.argv[3:7]
t1 = json.load(open(sys.argv[7]))
rc = json.load(open(sys.argv[8]))
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
nproc = subprocess.check_output(["nproc"]).decode().strip()
def r(a, b): return "%.2fx" % (a / b) if b else "-"
print("# Training step benchmark: `small` preset (configs/small.yaml, 100.8M parameters)\n")
print("Command: `scripts/bench/train.sh %s %s` (batch %s, %s steps, the first is warm-up and not counted; medians).\n" % (batch, steps, batch, steps))
print("Machine: %s CPU cores (`nproc`), %s; load average %s before, %s after. The machine is shared with other engineers' jobs, so absolute numbers are noisy; Go and PyTorch ran back to back.\n" % (nproc, cpu, lb, la))
print("Each sample: one 512x512 image (1 crop, 272 image positions) + %d text ids (LLaVA chat template, real tokenizer), %d supervised targets.\n" % (g["text_tokens_per_sample"][0], g["supervised_per_sample"][0]))
print("| | Go (train.Run) | PyTorch %s, %s threads | PyTorch, 1 thread | Go / PyTorch-%s | Go / PyTorch-1 |" % (t["torch"], nproc, nproc))
print("|---|---|---|---|---|---|")
for label, key, fmt in [("step time (ms)", "step_ms", "%.0f"), ("training tokens/s (positions)", "tokens_per_s", "%.1f"),
                        ("samples/s", "samples_per_s", "%.3f"), ("peak RSS (MB)", "peak_rss_mb", "%.0f")]:
    print(("| %s | " + fmt + " | " + fmt + " | " + fmt + " | %s | %s |") % (label, g[key], t[key], t1[key], r(g[key], t[key]), r(g[key], t1[key])))
for label, key, fmt in [("step time with activation checkpointing (ms)", "step_ms", "%.0f"), ("peak RSS with activation checkpointing (MB)", "peak_rss_mb", "%.0f")]:
    print(("| %s | " + fmt + " | " + fmt + " | " + fmt + " | %s | %s |") % (label, rc[key], t[key], t1[key], r(rc[key], t[key]), r(rc[key], t1[key])))
print("| trainer data wait per step (ms, median / max) | %.2f / %.2f | n/a (in-memory tensors) | | | |" % (g["data_wait_ms_per_step"], g["data_wait_ms_max"]))
print("\nGo: data = the data package's MixtureStream (LLaVA reader, PNG decode, anyres preprocess, tokenizer) on worker goroutines; data wait is the time train.Run blocked in Stream.Next, measured. The Go batch is right-padded to 32·2^k positions (padding is computed but masked); PyTorch runs each sequence unpadded. Both: AdamW (wd 0.01), global-norm clipping at 1.0, float32.")
PY
cat "$OUT/train.md"
