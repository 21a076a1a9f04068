#!/usr/bin/env bash
# QLoRA on Magma-8B (issue 28), called by scripts/bench/quant.sh (or alone):
# `magma finetune sft --trainable lora` over a quantized frozen base (the
# folder of `magma quantize`, its GGUF mapped in place and never written),
# rank 16 on all seven projections of the 32 decoder blocks, STEPS
# optimizer steps on one text-only conversation, then the final checkpoint
# (which links the base's GGUF). Reports the step time (median of steps
# 2..STEPS: the first also compiles the programs) and the peak RSS of the
# whole command (goal <= 8 GiB) as RAWDIR/qlora8b.json.
#
#   QBASE=/work/big/quant/magma-8b-q4_k_m scripts/bench/qlora8b.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
QBASE=${QBASE:?QBASE: a quantized Magma-8B folder (magma quantize --out)}
RAWDIR=${RAWDIR:-scripts/bench/results/quant-raw}
LOCK=${LOCK:-/work/wt/bigmem.lock}
STEPS=${STEPS:-3}
RUN=${RUN:-$(dirname "$QBASE")/qlora8b-run}
mkdir -p "$RAWDIR"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP" "$RUN"' EXIT
if [ -z "${MAGMA:-}" ]; then
	GOFLAGS=-mod=mod go build -o "$TMP/magma" ./cmd/magma
	MAGMA=$TMP/magma
fi
cat > "$TMP/sft.json" <<'J'
[{"id": "a", "conversations": [
  {"from": "human", "value": "Which robot arm joint limits matter most when a gripper approaches a cup from above, and why?"},
  {"from": "gpt", "value": "The wrist pitch and the elbow: they set the approach angle and the reach above the cup."}]}]
J
cat > "$TMP/qlora.yaml" <<'Y'
model:
  preset: tiny # replaced by --model
optimizer: {name: adamw, lr: 1.0e-4, beta1: 0.9, beta2: 0.999, eps: 1.0e-8, weight_decay: 0, max_grad_norm: 1.0}
schedule: {name: constant}
batch_size: 1
grad_accum: 1
trainable: lora
lora: {rank: 16, alpha: 32, dropout: 0, targets: [q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj]}
seq_bucket: 32
checkpoint: {every: 1000, keep: 1}
log_every: 1
seed: 0
Y
sha_before=$(sha256sum "$QBASE"/*.gguf | sha256sum | cut -c1-16)
rm -rf "$RUN"
(
	flock 9
	cat "$QBASE"/*.gguf > /dev/null
	cat "$QBASE"/*.gguf > /dev/null
	/usr/bin/time -v "$MAGMA" finetune sft --config "$TMP/qlora.yaml" --data "$TMP/sft.json" \
		--model "$QBASE" --steps "$STEPS" --out "$RUN" > "$TMP/log.txt" 2> "$RAWDIR/qlora8b.time"
) 9> "$LOCK" || { cat "$TMP/log.txt"; tail -30 "$RAWDIR/qlora8b.time"; exit 1; }
sha_after=$(sha256sum "$QBASE"/*.gguf | sha256sum | cut -c1-16)
CK=$(ls -d "$RUN"/checkpoints/step-* | tail -1)
LINKED=0
for g in "$CK"/*.gguf; do
	[ -e "$g" ] && [ "$(stat -c %i "$g")" = "$(stat -c %i "$QBASE/$(basename "$g")" 2>/dev/null)" ] && LINKED=$((LINKED + 1))
done
python3 - "$RUN/metrics.jsonl" "$RAWDIR/qlora8b.time" "$QBASE" "$sha_before" "$sha_after" "$LINKED" "$(du -sb "$QBASE" "$CK" | tail -1 | cut -f1)" > "$RAWDIR/qlora8b.json" <<'PY'
import json, re, statistics, sys
metrics, timef, base, before, after, linked, added = sys.argv[1:8]
recs = [json.loads(l) for l in open(metrics) if l.strip()]
t = open(timef).read()
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1)) * 1024
w = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", t).group(1)
wall = 0.0
for p in w.split(":"):
    wall = wall * 60 + float(p)
steps = [r["step_ms"] / 1e3 for r in recs]
cfg = json.load(open(base + "/config.json"))
qtype = base.rstrip("/").rsplit("-", 1)[-1]
print(json.dumps({
    "base": base, "base_type": qtype, "rank": 16, "steps": len(recs),
    "tokens": recs[0].get("tokens") if recs else None,
    "step_s": steps, "step_s_median": statistics.median(steps[1:] if len(steps) > 1 else steps),
    "losses": [r["loss"] for r in recs], "wall_s": wall, "peak_rss": rss,
    "base_sha256_before": before, "base_sha256_after": after, "base_unchanged": before == after,
    "checkpoint_gguf_links": int(linked), "checkpoint_added_bytes": int(added),
}))
PY
cat "$RAWDIR/qlora8b.json"
