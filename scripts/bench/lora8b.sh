#!/bin/sh
# One LoRA finetune step of an 8B-size Magma on a frozen bf16 base (issue 14):
# `magma finetune sft --trainable lora` on the checkpoint written by
# `magma init --preset magma-8b --dtype bf16` (random weights, the published
# layout: 4 BF16 shards, memory-mapped and used in place). Reports the peak
# RSS and wall time of the whole command (load, one step, the final
# checkpoint: base + adapters) and the step's own time from metrics.jsonl.
# A benchmark, not a test; it holds /work/wt/bigmem.lock while it runs.
#
#   MODEL=/work/big/magma-8b scripts/bench/lora8b.sh
set -eu
cd "$(dirname "$0")/../.."
MODEL=${MODEL:-/work/big/magma-8b}
RUN=${RUN:-/work/big/lora8b-run}
OUT=scripts/bench/results
mkdir -p "$OUT"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
if [ ! -f "$MODEL/model.safetensors.index.json" ]; then
	echo "no 8B checkpoint in $MODEL: run magma init --preset magma-8b --dtype bf16 --out $MODEL" >&2
	exit 1
fi
go build -o "$TMP/magma" ./cmd/magma
# One text-only conversation (the vision tower still runs for image samples;
# a text sample keeps the step to the decoder, where the adapters are).
cat > "$TMP/sft.json" <<'J'
[{"id": "a", "conversations": [
  {"from": "human", "value": "Which robot arm joint limits matter most when a gripper approaches a cup from above, and why?"},
  {"from": "gpt", "value": "The wrist pitch and the elbow: they set the approach angle and the reach above the cup."}]}]
J
cat > "$TMP/lora.yaml" <<'Y'
model:
  preset: tiny # replaced by --model
optimizer: {name: adamw, lr: 1.0e-4, beta1: 0.9, beta2: 0.999, eps: 1.0e-8, weight_decay: 0, max_grad_norm: 1.0}
schedule: {name: constant}
steps: 1
batch_size: 1
grad_accum: 1
trainable: lora
lora: {rank: 16, alpha: 32, dropout: 0, targets: [q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj]}
seq_bucket: 32
checkpoint: {every: 1, keep: 1}
log_every: 1
seed: 0
Y
rm -rf "$RUN"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
flock /work/wt/bigmem.lock /usr/bin/time -v "$TMP/magma" finetune sft --config "$TMP/lora.yaml" --data "$TMP/sft.json" \
	--model "$MODEL" --steps 1 --out "$RUN" > "$TMP/log.txt" 2> "$TMP/time.txt" || { cat "$TMP/log.txt" "$TMP/time.txt"; exit 1; }
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
cat "$TMP/log.txt"
RSS=$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$TMP/time.txt")
WALL=$(awk '/Elapsed \(wall clock\)/ {print $NF}' "$TMP/time.txt")
STEP=$(head -1 "$RUN/metrics.jsonl")
# The checkpoint links the base's shards (model.SaveLinking) when the run
# folder is on the base's filesystem: count the links and the bytes the
# checkpoint adds (du counts a hard-linked file once, under its first path).
CK=$(ls -d "$RUN"/checkpoints/step-* | tail -1)
LINKS=$(for f in "$CK"/model*.safetensors; do [ "$(stat -c %i "$f")" = "$(stat -c %i "$MODEL/$(basename "$f")" 2>/dev/null)" ] && echo x; done | wc -l)
SHARDS=$(ls "$CK"/model*.safetensors | wc -l)
NEWB=$(du -sb "$MODEL" "$CK" | tail -1 | cut -f1)
{
	echo "# 8B LoRA step on a frozen bf16 base"
	echo
	echo "Command: \`MODEL=$MODEL scripts/bench/lora8b.sh\` (\`magma finetune sft --trainable lora\`, rank 16 on every decoder linear layer, one text-only conversation, one optimizer step, then the step-1 checkpoint: base and adapters). Machine: $(nproc) cores, $(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo), $(free -g | awk '/Mem:/ {print $2}') GiB; load average $LOAD_BEFORE before, $LOAD_AFTER after."
	echo
	echo "| peak RSS (whole command) | wall time (whole command) |"
	echo "|---|---|"
	echo "| $((RSS / 1024)) MiB | $WALL |"
	echo
	echo "Checkpoint \`$CK\`: $LINKS of $SHARDS weight shards hard-linked from the base; bytes it adds on disk: $((NEWB / 1000000)) MB."
	echo
	echo "First metrics.jsonl record: \`$STEP\`"
} > "$OUT/lora8b.md"
cat "$OUT/lora8b.md"
