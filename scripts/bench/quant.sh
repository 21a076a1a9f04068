#!/usr/bin/env bash
# make bench-quant (issue 28): Magma-8B's language model at bf16, q8_0 and
# q4_k_m, ours next to llama.cpp's (npm node-llama-cpp 3.22.1, its prebuilt
# llama.cpp, CPU only) on the same weights and the same thread count:
# prefill tokens/s, decode tokens/s and peak RSS (/usr/bin/time -v).
#
#   scripts/bench/quant.sh                         # all three formats
#   FORMATS="bf16" ROUNDS=3 scripts/bench/quant.sh
#
# The base is the random bf16 checkpoint of `magma init --preset magma-8b
# --dtype bf16` (BASE, written if absent). Per format:
#   ours:      bf16 → BASE itself (shards mapped in place); q8_0, q4_k_m →
#              `magma quantize --model BASE --type F --out WORK/magma-8b-F`
#              (its GGUF mapped in place);
#   llama.cpp: `magma export gguf --text-only --model BASE --type F`
#              (WORK/magma-8b-F.gguf; the same quantizers, so the same blocks;
#              for q4_k_m, --type q4_k: export has no q4_k_m mix).
# Both run the same work (scripts/bench/quantgo -mode speed and
# scripts/bench/quant_llamacpp.mjs): PROMPT deterministic token ids
# (1000 + 37 i) in one prefill, then NEW greedy decode steps; decode is the
# median of steps 2..NEW (the first builds our decode graph). The engines
# alternate (ours first in odd rounds, llama.cpp first in even ones),
# ROUNDS rounds. Right before every timed run the weight files are read
# twice (this machine's page cache evicts pages untouched for about a
# minute, ENVIRONMENT.md) and `fincore` records how much of them is
# resident. Every 8B process runs alone under flock LOCK.
#
# Also measured: `magma quantize` (wall, peak RSS) and `magma generate` on the
# q4_k_m folder with an image (vision included; goal <= 7 GiB peak RSS);
# QLORA=1 adds one `finetune sft --trainable lora` step over the q4_k_m base
# (time and peak RSS, goal <= 8 GiB).
# Files of a format are deleted after its runs unless KEEP=1 (disk: the
# bf16 pair alone is 34 GB). Raw JSON: scripts/bench/results/quant-raw/;
# summary: scripts/bench/results/quant.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
export GOFLAGS=-mod=mod
BASE=${BASE:-/work/big/magma-8b}
WORK=${WORK:-/work/big/quant}
FORMATS=${FORMATS:-bf16 q4_k_m q8_0}
ROUNDS=${ROUNDS:-2}
PROMPT=${PROMPT:-64}
NEW=${NEW:-16}
THREADS=${THREADS:-2}
LOCK=${LOCK:-/work/wt/bigmem.lock}
KEEP=${KEEP:-0}
QLORA=${QLORA:-1}
OUT=scripts/bench/results
RAW=${RAW:-$OUT/quant-raw}
REPORT=${REPORT:-$OUT/quant.md}
mkdir -p "$OUT" "$RAW" "$WORK"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# llama.cpp: node-llama-cpp pinned in scripts/bench/llamacpp (git-ignored
# node_modules; npm installs the prebuilt binaries, nothing is compiled;
# `npm install`, not `npm ci`: ci refuses the lock's optional platform
# packages that are not published for every platform).
want=$(node -p 'require("./scripts/bench/llamacpp/package.json").dependencies["node-llama-cpp"]')
have=$(node -p 'try { require("./scripts/bench/llamacpp/node_modules/node-llama-cpp/package.json").version } catch { "" }')
if [ "$have" != "$want" ]; then
	(cd scripts/bench/llamacpp && npm install --no-audit --no-fund --loglevel=error)
fi
go build -o "$TMP/magma" ./cmd/magma
go build -o "$TMP/quantgo" ./scripts/bench/quantgo
MAGMA="$TMP/magma"

# Every OpenBLAS/OpenMP pool at THREADS, and Go's scheduler too.
export OPENBLAS_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS GOMAXPROCS=$THREADS

locked() { flock "$LOCK" "$@"; }

if [ ! -f "$BASE/model.safetensors.index.json" ]; then
	locked "$MAGMA" init --preset magma-8b --dtype bf16 --out "$BASE"
fi

# warm FILES...: read twice, print the resident fraction (fincore).
warm() {
	cat "$@" > /dev/null
	cat "$@" > /dev/null
	fincore --bytes --noheadings --output RES,SIZE "$@" | awk '{r += $1; s += $2} END {printf "%.3f", s ? r / s : 0}'
}

# measure NAME FILES CMD...: under the lock (nothing else of 8B size runs
# meanwhile), warm FILES (a space-separated list), record their resident
# fraction in RAW/NAME.resident, then run CMD under /usr/bin/time -v with
# stdout to RAW/NAME.json and the report to RAW/NAME.time.
measure() {
	local name=$1 files=$2
	shift 2
	(
		flock 9
		# shellcheck disable=SC2086
		warm $files > "$RAW/$name.resident"
		/usr/bin/time -v "$@" > "$RAW/$name.json" 2> "$RAW/$name.time"
	) 9> "$LOCK" || { tail -20 "$RAW/$name.time" >&2; return 1; }
}

ours_dir() { if [ "$1" = bf16 ]; then echo "$BASE"; else echo "$WORK/magma-8b-$1"; fi; }
ours_files() {
	local d
	d=$(ours_dir "$1")
	if [ "$1" = bf16 ]; then ls "$d"/model-*.safetensors | tr '\n' ' '; else ls "$d"/*.gguf | tr '\n' ' '; fi
}
gguf_file() { echo "$WORK/magma-8b-$1.gguf"; }

prepare() {
	local f=$1 d
	d=$(ours_dir "$f")
	if [ "$f" != bf16 ] && ! ls "$d"/*.gguf > /dev/null 2>&1; then
		locked /usr/bin/time -v "$MAGMA" quantize --model "$BASE" --type "$f" --out "$d" \
			> "$RAW/quantize-$f.log" 2> "$RAW/quantize-$f.time"
	fi
	# llama.cpp's file: exported from the bf16 base with the same
	# quantizers. `export gguf` has no q4_k_m: llama.cpp gets q4_k (Q4_K,
	# output Q6_K), which has fewer Q6_K tensors than our q4_k_m (v_proj and
	# down_proj of some layers): llama.cpp reads slightly fewer bytes.
	local et=$f
	[ "$f" = q4_k_m ] && et=q4_k
	if [ ! -f "$(gguf_file "$f")" ]; then
		locked /usr/bin/time -v "$MAGMA" export gguf --text-only --model "$BASE" --type "$et" --out "$(gguf_file "$f")" \
			> "$RAW/export-$f.log" 2> "$RAW/export-$f.time"
	fi
}

line() {
	python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print('prefill %.2f tok/s, decode %.3f tok/s' % (d['prefill_tokens_per_s'], d['decode_tokens_per_s']))" "$RAW/$1.json"
}

run_ours() {
	local f=$1 r=$2
	measure "$f-magma-$r" "$(ours_files "$f")" "$TMP/quantgo" -mode speed -model "$(ours_dir "$f")" -prompt "$PROMPT" -new "$NEW"
	echo "  $f magma round $r: resident $(cat "$RAW/$f-magma-$r.resident"), $(line "$f-magma-$r")"
}

run_llama() {
	local f=$1 r=$2
	measure "$f-llamacpp-$r" "$(gguf_file "$f")" node scripts/bench/quant_llamacpp.mjs --model "$(gguf_file "$f")" --prompt "$PROMPT" --new "$NEW" --threads "$THREADS"
	echo "  $f llama.cpp round $r: resident $(cat "$RAW/$f-llamacpp-$r.resident"), $(line "$f-llamacpp-$r")"
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for f in $FORMATS; do
	echo "== $f"
	prepare "$f"
	for r in $(seq 1 "$ROUNDS"); do
		if [ $((r % 2)) = 1 ]; then
			run_ours "$f" "$r"
			run_llama "$f" "$r"
		else
			run_llama "$f" "$r"
			run_ours "$f" "$r"
		fi
	done
	if [ "$f" = q4_k_m ] && [ "${GENERATE:-1}" = 1 ]; then
		# magma generate on the quantized folder, vision included: one
		# 64x64 image (one 512x512 crop), a short prompt, 8 new tokens.
		python3 -c "
import struct, zlib
w = h = 64
raw = b''.join(b'\x00' + b''.join(bytes((x * 4 % 256, y * 4 % 256, 128)) for x in range(w)) for y in range(h))
def chunk(t, d): return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d))
open('$TMP/img.png', 'wb').write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0)) + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b''))
"
		measure "generate-$f" "$(ours_files "$f")" "$MAGMA" generate --model "$(ours_dir "$f")" --image "$TMP/img.png" \
			--prompt "What is in the image?" --max-new-tokens 8 --max-context 1024 --json
		if [ "$QLORA" = 1 ]; then
			QBASE=$(ours_dir "$f") RAWDIR=$RAW MAGMA=$MAGMA LOCK=$LOCK bash scripts/bench/qlora8b.sh
		fi
	fi
	if [ "$KEEP" != 1 ]; then
		rm -f "$(gguf_file "$f")"
		[ "$f" = bf16 ] || rm -rf "$(ours_dir "$f")"
	fi
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

python3 scripts/bench/quant_report.py "$RAW" "$FORMATS" "$ROUNDS" "$PROMPT" "$NEW" "$THREADS" "$LOAD_BEFORE" "$LOAD_AFTER" > "$REPORT"
cat "$REPORT"
