#!/usr/bin/python3
"""Re-shard a safetensors checkpoint with the Python standard library only.

An independent writer for the loader's fixtures: reads a checkpoint
(model.safetensors or an index with shards), and writes it again as N shards
plus model.safetensors.index.json, each shard in its own dtype (F32, BF16 or
F16; bf16 and f16 rounded to nearest even here, not by the Go code), e.g.

  write_shards.py --src model/testdata/parity --out model/testdata/parity/model_mixed \
      --dtypes BF16,F32,BF16,F32

Tensors are assigned to shards in sorted-name order, in N contiguous runs of
about equal size. config.json and preprocessor_config.json are copied.
"""

import argparse
import json
import math
import os
import shutil
import struct
import sys


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, en = e["data_offsets"]
        raw = data[b:en]
        if e["dtype"] == "F32":
            vals = list(struct.unpack("<%df" % (len(raw) // 4), raw))
        elif e["dtype"] == "BF16":
            vals = [struct.unpack("<f", struct.pack("<I", h << 16))[0]
                    for h in struct.unpack("<%dH" % (len(raw) // 2), raw)]
        else:
            sys.exit("%s: tensor %s: dtype %s not handled" % (path, name, e["dtype"]))
        out[name] = (e["shape"], vals)
    return out


def read_checkpoint(d):
    single = os.path.join(d, "model.safetensors")
    if os.path.exists(single):
        return read_safetensors(single)
    with open(os.path.join(d, "model.safetensors.index.json")) as f:
        wm = json.load(f)["weight_map"]
    out = {}
    for shard in sorted(set(wm.values())):
        out.update(read_safetensors(os.path.join(d, shard)))
    return out


def f32_bits(x):
    return struct.unpack("<I", struct.pack("<f", x))[0]


def to_bf16(x):
    b = f32_bits(x)
    if b & 0x7FFFFFFF > 0x7F800000:  # NaN stays NaN
        return (b >> 16) | 0x40
    return ((b + 0x7FFF + ((b >> 16) & 1)) >> 16) & 0xFFFF


def encode(vals, dtype):
    if dtype == "F32":
        return struct.pack("<%df" % len(vals), *vals)
    if dtype == "BF16":
        return struct.pack("<%dH" % len(vals), *[to_bf16(v) for v in vals])
    if dtype == "F16":
        # struct's 'e' format rounds to nearest even (IEEE half).
        return struct.pack("<%de" % len(vals), *vals)
    sys.exit("unknown dtype " + dtype)


def write_safetensors(path, tensors, dtype):
    size = {"F32": 4, "BF16": 2, "F16": 2}[dtype]
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name, (shape, vals) in tensors:
        blob = encode(vals, dtype)
        assert len(blob) == len(vals) * size
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(blob)]}
        blobs.append(blob)
        off += len(blob)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)  # data starts 8-byte aligned, as the safetensors package writes
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    return off


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--dtypes", default="BF16,BF16,BF16,BF16", help="one dtype per shard")
    a = ap.parse_args()
    dtypes = a.dtypes.split(",")
    tensors = sorted(read_checkpoint(a.src).items())
    total = sum(len(v) for _, (_, v) in tensors)
    os.makedirs(a.out, exist_ok=True)
    n = len(dtypes)
    runs, cur, acc = [[] for _ in range(n)], 0, 0
    for name, t in tensors:
        if acc >= (cur + 1) * total / n and cur < n - 1:
            cur += 1
        runs[cur].append((name, t))
        acc += len(t[1])
    wm, total_size = {}, 0
    for i, run in enumerate(runs):
        fn = "model-%05d-of-%05d.safetensors" % (i + 1, n)
        total_size += write_safetensors(os.path.join(a.out, fn), run, dtypes[i])
        for name, _ in run:
            wm[name] = fn
    with open(os.path.join(a.out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total_size}, "weight_map": wm}, f, indent=2, sort_keys=True)
        f.write("\n")
    for c in ("config.json", "preprocessor_config.json"):
        shutil.copy(os.path.join(a.src, c), os.path.join(a.out, c))


if __name__ == "__main__":
    main()
