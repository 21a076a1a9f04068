#!/bin/sh
# The bare decode GEMV chain of a Magma-8B checkpoint (no Go, no graph)
# against the machine's read bandwidth, for the 8B section of BENCHMARKS.md:
#
#   scripts/bench/gemvchain/gemvchain.sh [CKPT] [REPS]
set -eu
cd "$(dirname "$0")"
CKPT=${1:-/work/big/magma-8b}
REPS=${2:-8}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
python3 - "$CKPT" > "$TMP/list.txt" <<'PY'
import json, struct, sys
base = sys.argv[1]
idx = json.load(open(base + "/model.safetensors.index.json"))["weight_map"]
hdrs = {}
for f in set(idx.values()):
    with open(base + "/" + f, "rb") as fh:
        n = struct.unpack("<Q", fh.read(8))[0]
        hdrs[f] = (8 + n, json.loads(fh.read(n)))
layers = sorted({int(n.split(".layers.")[1].split(".")[0]) for n in idx if "language_model" in n and ".layers." in n})
prefix = next(n for n in idx if "language_model" in n and ".layers." in n).split(".layers.")[0]
names = [f"{prefix}.layers.{l}.{m}.weight" for l in layers for m in
         ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")]
names.append(next(n for n in idx if n.endswith("lm_head.weight")))
for n in names:
    f = idx[n]; start, h = hdrs[f]; t = h[n]
    print(f, start + t["data_offsets"][0], t["shape"][0], t["shape"][1])
PY
cc -O3 -march=native -pthread chain.c -o "$TMP/chain"
cc -O3 -march=native -pthread ../membw.c -o "$TMP/membw"
echo "membw (2 threads, 2 GiB, best of 3): $("$TMP/membw" 2048 2 3) GB/s"
"$TMP/chain" "$REPS" "$CKPT" "$TMP/list.txt"
echo "membw (2 threads, 2 GiB, best of 3): $("$TMP/membw" 2048 2 3) GB/s"
