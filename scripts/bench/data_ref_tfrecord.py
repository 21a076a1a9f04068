#!/usr/bin/python3
"""Reference TFRecord reader for `make bench-data`: Python's struct for the
framing (no CRC check: Python has no CRC32C, and a pure-Python one runs at
a few MB/s) and a pure-Python decoder of the tf.train.Example wire format,
decoding every feature as the Go reader does. Prints one JSON object."""
import glob, json, os, struct, sys, time, resource

def varint(b, p):
    r = s = 0
    while True:
        x = b[p]; p += 1
        r |= (x & 0x7F) << s
        if x < 0x80:
            return r, p
        s += 7

def fields(b):
    p, n = 0, len(b)
    while p < n:
        tag, p = varint(b, p)
        wt = tag & 7
        if wt == 2:
            l, p = varint(b, p)
            yield tag >> 3, b[p:p + l]; p += l
        elif wt == 0:
            v, p = varint(b, p); yield tag >> 3, v
        elif wt == 5:
            yield tag >> 3, b[p:p + 4]; p += 4
        elif wt == 1:
            yield tag >> 3, b[p:p + 8]; p += 8
        else:
            raise ValueError("wire type %d" % wt)

def example(b):
    ex = {}
    for f, feats in fields(b):
        if f != 1: continue
        for f2, entry in fields(feats):
            key = val = None
            for f3, v in fields(entry):
                if f3 == 1: key = bytes(v).decode()
                elif f3 == 2: val = v
            for kind, lst in fields(val):
                if kind == 1: ex[key] = [bytes(v) for _, v in fields(lst)]
                elif kind == 2:
                    vals = []
                    for _, v in fields(lst):
                        vals.extend(struct.unpack("<%df" % (len(v) // 4), v))
                    ex[key] = vals
                elif kind == 3:
                    vals = []
                    for _, v in fields(lst):
                        if isinstance(v, int): vals.append(v)
                        else:
                            q = 0
                            while q < len(v):
                                x, q = varint(v, q); vals.append(x)
                    ex[key] = vals
    return ex

def scan(paths):
    eps = steps = 0
    for path in paths:
        with open(path, "rb") as f:
            while True:
                h = f.read(12)
                if len(h) < 12: break
                (n,) = struct.unpack("<Q", h[:8])
                data = memoryview(f.read(n)); f.read(4)
                ex = example(data)
                eps += 1; steps += len(ex["steps/is_first"])
    return eps, steps

paths = sorted(glob.glob(os.path.join(sys.argv[1], "libero_spatial_no_noops/1.0.0/*.tfrecord-*")))
for _ in range(2):
    t0 = time.perf_counter(); eps, steps = scan(paths); s = time.perf_counter() - t0
mb = sum(os.path.getsize(p) for p in paths) / 1e6
print(json.dumps({"python": sys.version.split()[0], "tfrecord": {"records": eps, "steps": steps, "seconds": s, "per_second": eps / s, "mb": mb},
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}, indent=2))
