#!/usr/bin/env bash
# CoTracker3 on CPU: the official PyTorch code (Debian python3-torch,
# scripts/bench/cotracker_torch.py) vs ours (`magma tom --tracker cotracker`),
# same synthetic clip (tom/cotracker's SyntheticClip, 384x512, pan 3 px/frame,
# square moving 4 px/frame down), same grid (15x15) and 2 threads; peak RSS
# from /usr/bin/time -v. Also LK vs CoTracker time per 16-frame clip.
# Not a timed test. Usage (repository root): scripts/bench/cotracker.sh [T]
#   COTRACKER_SRC   official co-tracker checkout (default /work/ref/co-tracker)
#   COTRACKER_PTH   a CoTracker3 .pth for our side (default: formula weights
#                   written by scripts/cotracker/goldens.py --save-pth)
set -euo pipefail
cd "$(dirname "$0")/../.."
T=${1:-24}
SRC=${COTRACKER_SRC:-/work/ref/co-tracker}
PY=${PYTHON:-/usr/bin/python3}
BIN=${BIN:-bin/magma}
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
export GOFLAGS=-mod=mod GOMAXPROCS=2 OPENBLAS_NUM_THREADS=2 OMP_NUM_THREADS=2

# timed CMD...: runs CMD under /usr/bin/time -v; sets OUT (stdout), WALL (s), RSS (MiB)
timed() {
  OUT=$(/usr/bin/time -v -o "$DIR/time.txt" "$@" 2>"$DIR/stderr.txt") || { cat "$DIR/stderr.txt" >&2; return 1; }
  RSS=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2/1024}' "$DIR/time.txt")
  WALL=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; printf "%.2f", s}' "$DIR/time.txt")
}
# timed_tracking CMD...: timed for `magma tom --tracker cotracker` on formula
# weights: their visibility logits are negative, so after tracking the ToM
# rules refuse the clip ("no trace visible"); the time still covers decoding
# and tracking, which is what is measured. Any other failure stops the run.
timed_tracking() {
  if ! timed "$@" 2>/dev/null; then
    grep -q "no trace visible" "$DIR/stderr.txt" || { cat "$DIR/stderr.txt" >&2; return 1; }
    RSS=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2/1024}' "$DIR/time.txt")
    WALL=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; printf "%.2f", s}' "$DIR/time.txt")
  fi
}
val() { echo "$1" | awk -v k="$2" '$1==k {print $2}'; }

"$PY" scripts/bench/cotracker_torch.py --T "$T" --write-frames "$DIR/frames"
"$PY" scripts/bench/cotracker_torch.py --T 16 --write-frames "$DIR/frames16"
load0=$(cut -d' ' -f1-3 /proc/loadavg)

# --- PyTorch (official code), frames/s of the predictor call, peak RSS of the process
declare -A PFPS PRSS
for v in offline online; do
  timed "$PY" scripts/bench/cotracker_torch.py --src "$SRC" --variant "$v" --T "$T" --grid 15 --threads 2
  PFPS[$v]=$(val "$OUT" fps); PRSS[$v]=$RSS
done
timed "$PY" scripts/bench/cotracker_torch.py --src "$SRC" --variant offline --T 16 --grid 15 --threads 2
P16=$(val "$OUT" seconds)

# --- ours
go build -o "$BIN" ./cmd/magma
LKFLAG=""
if "$BIN" tom --help 2>&1 | grep -q -- "--tracker"; then LKFLAG="--tracker lk"; fi
# LK: the whole `magma tom` pipeline on the 16-frame clip (tracking + ToM rules + PNG decode)
# shellcheck disable=SC2086
timed "$BIN" tom --video "$DIR/frames16" --out "$DIR/lk.json" --grid 15 --future 15 --height 0 --shot-threshold 1000 $LKFLAG
LK16=$WALL; LKRSS=$RSS

GFPS=n/a; GRSS=n/a; G16=n/a
if "$BIN" tom --help 2>&1 | grep -q -- "--tracker-weights"; then
  # INTEGRATOR: `magma tom --tracker cotracker` is engineer cot's (issue 29); this
  # block measures it once it exists (whole tom pipeline, offline weights).
  PTH=${COTRACKER_PTH:-}
  if [ -z "$PTH" ]; then
    "$PY" scripts/cotracker/goldens.py --src "$SRC" --save-pth "$DIR/pth" >/dev/null
    PTH="$DIR/pth/offline.pth"
  fi
  timed_tracking "$BIN" tom --video "$DIR/frames" --out "$DIR/co.json" --grid 15 --future $((T - 1)) --height 0 --shot-threshold 1000 --tracker cotracker --tracker-weights "$PTH"
  GFPS=$(awk -v t="$T" -v s="$WALL" 'BEGIN{printf "%.3f", t/s}'); GRSS=$RSS
  timed_tracking "$BIN" tom --video "$DIR/frames16" --out "$DIR/co16.json" --grid 15 --future 15 --height 0 --shot-threshold 1000 --tracker cotracker --tracker-weights "$PTH"
  G16=$WALL
fi
load1=$(cut -d' ' -f1-3 /proc/loadavg)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a == "n/a" || b == "n/a" || b == 0) print "n/a"; else printf "%.2f", a/b }'; }
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
TV=$("$PY" -c 'import torch; print(torch.__version__)')
RES=scripts/bench/results/cotracker.md
mkdir -p "$(dirname "$RES")"
{
  echo "## CoTracker3 on CPU (Go vs official PyTorch code)"
  echo
  echo "Command: \`scripts/bench/cotracker.sh $T\` ($(date -u +%Y-%m-%dT%H:%MZ)); machine: nproc=$(nproc), $cpu;"
  echo "torch $TV (Debian), torch.set_num_threads(2); Go GOMAXPROCS=2, OPENBLAS_NUM_THREADS=2. Clip: SyntheticClip $T x 384x512,"
  echo "grid 15x15, model resolution 384x512, float32, formula weights. Load average before/after: $load0 / $load1."
  echo "PyTorch frames/s time the predictor call only; Go numbers time the whole \`magma tom\` process (PNG decode, tracking, ToM rules)."
  echo
  echo "| workload | Go | PyTorch | Go/PyTorch |"
  echo "|---|---|---|---|"
  echo "| CoTracker3 offline, frames/s | $GFPS | ${PFPS[offline]} | $(ratio "$GFPS" "${PFPS[offline]}") |"
  echo "| CoTracker3 online (online_demo.py loop), frames/s | n/a (INTEGRATOR) | ${PFPS[online]} | n/a |"
  echo "| CoTracker3 offline, peak RSS MiB | $GRSS | ${PRSS[offline]} | $(ratio "$GRSS" "${PRSS[offline]}") |"
  echo "| CoTracker3 online, peak RSS MiB | n/a (INTEGRATOR) | ${PRSS[online]} | n/a |"
  echo
  echo "| per 16-frame clip (15x15 grid, 384x512) | seconds | peak RSS MiB |"
  echo "|---|---|---|"
  echo "| LK, \`magma tom\` whole pipeline | $LK16 | $LKRSS |"
  echo "| CoTracker3 offline, \`magma tom --tracker cotracker\` whole pipeline | $G16 | $GRSS |"
  echo "| CoTracker3 offline, PyTorch predictor call | $P16 | ${PRSS[offline]} |"
} > "$RES"
cat "$RES"
