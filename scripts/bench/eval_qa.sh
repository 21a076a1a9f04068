#!/usr/bin/env bash
# Benchmark of the QA evaluation loop (`magma eval vqav2|textvqa|pope|
# nextqa|videomme|aitw`: reader, image decode or video frame sampling, model,
# answer scoring, report) with the `small` preset (random weights) on the
# synthetic published-layout fixtures. Writes scripts/bench/results/eval_qa.md.
# Not a timed test.
#
#   scripts/bench/eval_qa.sh [ITEMS] [MAX_NEW_TOKENS] [FRAMES]
set -euo pipefail
cd "$(dirname "$0")/../.."
ITEMS=${1:-6}
MAXNEW=${2:-8}
FRAMES=${3:-4}
export GOFLAGS=${GOFLAGS:--mod=mod}
WORK=${WORK:-$(mktemp -d /tmp/magma-bench-evalqa.XXXXXX)}
BIN=$WORK/magma
OUT=scripts/bench/results/eval_qa.md

go build -o "$BIN" ./cmd/magma 2>/dev/null
[ -d "$WORK/small" ] || "$BIN" init --preset small --out "$WORK/small" >/dev/null
rm -rf "$WORK/data" && "$BIN" eval synthetic-qa --out "$WORK/data" --items "$ITEMS" >/dev/null

rm -f "$WORK/rows.md" "$WORK/cmds.md"
for b in vqav2 textvqa pope nextqa videomme aitw; do
  cmd=("$BIN" eval "$b" --model "$WORK/small" --data "$WORK/data/$b" --out "$WORK/out-$b" --max-new-tokens "$MAXNEW" --progress-every 100)
  case $b in nextqa|videomme) cmd+=(--frames "$FRAMES");; esac
  load0=$(cut -d' ' -f1-3 /proc/loadavg)
  /usr/bin/time -f '%M' -o "$WORK/$b.rss" "${cmd[@]}" >"$WORK/$b.log" 2>&1
  load1=$(cut -d' ' -f1-3 /proc/loadavg)
  python3 - "$WORK/out-$b/timing.json" "$b" "$load0" "$load1" "$(cat "$WORK/$b.rss")" <<'PY' >>"$WORK/rows.md"
import json, sys
r = json.load(open(sys.argv[1]))
w, n = r["wall_s"], r["records"]
share = lambda k: f'{100 * r[k] / w:.1f}% ({1000 * r[k] / n:.0f} ms)'
m = r["model_s"]
split = (f'{100 * r["model_embed_s"] / m:.0f}/{100 * r["model_prefill_s"] / m:.0f}/{100 * r["model_decode_s"] / m:.0f}%'
         if m > 0 else '-')
print(f'| {sys.argv[2]} | {n} | {w:.1f} | {r["records_per_s"]:.3f} | {share("load_s")} | {share("model_s")} | {split} '
      f'| {share("parse_s")} | {share("report_s")} | {int(sys.argv[5]) // 1024} | {sys.argv[3]} -> {sys.argv[4]} |')
PY
  echo "\`${cmd[*]}\`" | sed "s|$WORK|\$WORK|g" >>"$WORK/cmds.md"
done

CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
{
  echo "# magma eval vqav2|textvqa|pope|nextqa|videomme|aitw: QA eval-loop throughput (small preset)"
  echo
  echo "Command: \`scripts/bench/eval_qa.sh $ITEMS $MAXNEW $FRAMES\` ($(date -u +%Y-%m-%d), Go $(go env GOVERSION))."
  echo "Machine: \`nproc\` = $(nproc), CPU \"$CPU\"; load average (1/5/15 min) before -> after each run."
  echo "The cores are shared with other jobs: treat absolute numbers as +-2x."
  echo
  echo "Fixture: \`magma eval synthetic-qa --items $ITEMS\` (64x48 JPEG images, 54x96 PNG screenshots, 10-12 frame 64x48 MJPG clips;"
  echo "POPE has $ITEMS items per split, AITW 3 steps per episode); model: \`magma init --preset small\` (random weights:"
  echo "every answer runs the full $MAXNEW new tokens); video benchmarks pass $FRAMES frames = $FRAMES images per question."
  echo
  echo "Stage columns: share of the loop's wall time (mean ms per record), from timing.json. load = image decode or video"
  echo "frame sampling; model split = vision embed / prefill / decode as model.Timing reports them; scoring = answer"
  echo "extraction + metric; report = predictions.jsonl. Peak RSS from /usr/bin/time."
  echo
  echo "| benchmark | records | wall s | records/s | load | model | model split embed/prefill/decode | scoring | report | peak RSS MB | load avg |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  cat "$WORK/rows.md"
  echo
  echo "Exact eval commands (\$WORK = $WORK):"
  echo
  sed 's/^/    /; s/`//g' "$WORK/cmds.md"
  echo
  echo "No reference implementation runs here (lmms-eval needs PyTorch weights and the datasets); the"
  echo "ScreenSpot loop's numbers in BENCHMARKS.md are the in-project comparison."
} >"$OUT"
cat "$OUT"
