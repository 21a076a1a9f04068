"""Summary of make bench-quant (scripts/bench/quant.sh): reads the raw JSON
and /usr/bin/time -v reports in RAW and prints the Markdown of
scripts/bench/results/quant.md.

  python3 scripts/bench/quant_report.py RAW "bf16 q8_0 q4_k_m" ROUNDS PROMPT NEW THREADS LOAD_BEFORE LOAD_AFTER
"""
import json
import os
import re
import statistics
import sys

raw, formats, rounds, prompt, new, threads, lb, la = sys.argv[1:9]
formats = formats.split()
rounds = int(rounds)
GiB = 1 << 30


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def rss(name):
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", read(os.path.join(raw, name + ".time")))
    return int(m.group(1)) * 1024 if m else None


def wall(name):
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", read(os.path.join(raw, name + ".time")))
    if not m:
        return None
    s = 0.0
    for p in m.group(1).split(":"):
        s = s * 60 + float(p)
    return s


def js(name):
    t = read(os.path.join(raw, name + ".json")).strip()
    return json.loads(t.splitlines()[-1]) if t else None


def resident(name):
    t = read(os.path.join(raw, name + ".resident")).strip()
    return float(t) if t else None


def runs(f, engine):
    out = []
    for r in range(1, rounds + 1):
        n = "%s-%s-%d" % (f, engine, r)
        d = js(n)
        if d:
            out.append((d, rss(n), resident(n), wall(n)))
    return out


cpu = ""
for line in read("/proc/cpuinfo").splitlines():
    if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip()
        break
flags = read("/proc/cpuinfo")
simd = ",".join(x for x in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16") if re.search(r"\b%s\b" % x, flags))
mem = int(read("/proc/meminfo").split()[1]) / (1 << 20)
print("Machine: %d cores (%s; %s), %.1f GiB RAM; load average %s before, %s after. Threads: %s on both sides "
      "(GOMAXPROCS, OPENBLAS_NUM_THREADS; llama.cpp `createContext({threads: %s})`)." % (
          os.cpu_count(), cpu, simd, mem, lb, la, threads, threads))
ll = None
for f in formats:
    for d, *_ in runs(f, "llamacpp"):
        ll = d
        break
    if ll:
        break
if ll:
    print()
    print("llama.cpp: %s (%s build), system info `%s`." % (ll.get("version"), ll.get("build"), ll.get("system_info", "").strip()))
print()
print("Work per run: a prompt of %s token ids in one prefill, then %s greedy decode steps; decode = median of steps 2..%s. "
      "%d rounds, engines alternating (ours first in odd rounds). Weights read twice right before each run; "
      "\"resident\" is `fincore`'s fraction of the weight files in the page cache at the start." % (prompt, new, new, rounds))
print()
print("| format | engine | weights file | prefill tokens/s (rounds) | decode ms/token (rounds) | **decode tokens/s** | peak RSS | resident |")
print("|---|---|---|---|---|---|---|---|")
summary = {}
for f in formats:
    for engine, label in (("magma", "ours"), ("llamacpp", "llama.cpp")):
        rs = runs(f, engine)
        if not rs:
            continue
        pf = [d["prefill_tokens_per_s"] for d, *_ in rs]
        dm = [d["decode_ms_median"] for d, *_ in rs]
        dec = 1e3 / statistics.median(dm)
        pre = statistics.median(pf)
        peak = max(x[1] or 0 for x in rs)
        res = min(x[2] if x[2] is not None else 1 for x in rs)
        summary[(f, engine)] = (pre, dec, peak)
        wfile = rs[0][0].get("model", "")
        print("| %s | %s | `%s` | %.2f (%s) | %.0f (%s) | **%.3f** | %.2f GiB | %.2f |" % (
            f, label, os.path.basename(wfile.rstrip("/")), pre, ", ".join("%.2f" % x for x in pf),
            statistics.median(dm), ", ".join("%.0f" % x for x in dm), dec, peak / GiB, res))
print()
print("| format | decode: ours / llama.cpp (goal >= 1.0) | prefill: ours / llama.cpp (goal >= 1.0) | peak RSS: ours / llama.cpp | decode vs our bf16 |")
print("|---|---|---|---|---|")
for f in formats:
    o, l = summary.get((f, "magma")), summary.get((f, "llamacpp"))
    if not o or not l:
        continue
    b = summary.get(("bf16", "magma"))
    print("| %s | **%.2fx** (%.3f vs %.3f tokens/s) | **%.2fx** (%.2f vs %.2f tokens/s) | %.2f vs %.2f GiB | %s |" % (
        f, o[1] / l[1], o[1], l[1], o[0] / l[0], o[0], l[0], o[2] / GiB, l[2] / GiB,
        "%.2fx" % (o[1] / b[1]) if b else "—"))
print()
extra = []
for f in formats:
    n = "quantize-%s" % f
    if rss(n):
        extra.append("| `magma quantize --type %s` (streaming) | %.0f s | %.2f GiB |" % (f, wall(n), rss(n) / GiB))
    n = "export-%s" % f
    if rss(n):
        extra.append("| `magma export gguf --text-only --type %s` | %.0f s | %.2f GiB |" % (f, wall(n), rss(n) / GiB))
for f in formats:
    n = "generate-%s" % f
    g = js(n)
    if g and rss(n):
        extra.append("| `magma generate` on the %s folder, vision included (one 512x512 crop, %d positions, 8 new tokens; goal <= 7 GiB) | %.0f s (prefill %.2f tokens/s, decode %.3f tokens/s) | **%.2f GiB** |" % (
            f, g.get("sequence_length", 0), wall(n), g.get("prefill_tokens_per_s", 0), g.get("decode_tokens_per_s", 0), rss(n) / GiB))
q = js("qlora8b")
if q:
    extra.append("| QLoRA: `magma finetune sft --trainable lora` over the %s base, rank %s on every decoder linear layer, %s steps of %s tokens (goal <= 8 GiB) | step %.1f s (median), whole command %.0f s | **%.2f GiB** |" % (
        q.get("base_type", "?"), q.get("rank", "?"), q.get("steps", "?"), q.get("tokens", "?"), q.get("step_s_median", 0), q.get("wall_s", 0), q.get("peak_rss", 0) / GiB))
if extra:
    print("| command | wall | peak RSS |")
    print("|---|---|---|")
    print("\n".join(extra))
