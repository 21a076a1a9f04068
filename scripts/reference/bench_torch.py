#!/usr/bin/python3
"""PyTorch (CPU) side of the Magma benchmark, built on magma_ref.py.

  bench (default):
    bench_torch.py --config cfg.json --image-size 512 --prompt-tokens 64 \
        --decode-tokens 32 --threads 2 --repeat 3 --json out.json
  check-cache:
    bench_torch.py check-cache [--config cfg.json] [--steps 8]
    greedy decode with the KV cache must match full recompute (max |diff| < 1e-4).
"""

import argparse
import gc
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import magma_ref as M  # noqa: E402

DEFAULT_TINY = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                            "..", "..", "model", "testdata", "parity", "config.json")


def reset_peak_rss():
    """Start peak-RSS accounting afresh (VmHWM), after the weights are built."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


def make_prompt(cfg, n_tokens, seed=7):
    """n_tokens ids: BOS-like 1st id, one image token at index 4 (or last if short)."""
    g = torch.Generator().manual_seed(seed)
    hi = min(cfg.vocab, cfg.image_token_index)
    ids = torch.randint(3, max(hi, 4), (n_tokens,), generator=g).tolist()
    ids[0] = int(cfg.raw["text_config"].get("bos_token_id", 1))
    ids[min(4, n_tokens - 1)] = cfg.image_token_index
    return ids


def prefill(W, cfg, pv, grid, ids, cache=None):
    _, imf = M.encode_image(W, cfg, pv, grid)
    emb = M.build_inputs_embeds(W, cfg, ids, [imf])
    return M.llama_forward(W, cfg, emb, cache=cache, last_only=True)[-1], emb.shape[0]


def cmd_bench(a):
    torch.set_num_threads(a.threads)
    cfg = M.Cfg.load(a.config)
    t0 = time.perf_counter()
    W = M.init_weights(cfg, a.seed)
    n_params = sum(v.numel() for k, v in W.items() if ".head.norm." not in k)
    dtype = {"f32": torch.float32, "bf16": torch.bfloat16}[a.dtype]
    if dtype != torch.float32:
        # model.to(torch.bfloat16): every weight (and the pixels) in bf16.
        W = {k: v.to(dtype) for k, v in W.items()}
    t_init = time.perf_counter() - t0
    gc.collect()
    reset_peak_rss()
    img = M.synth_image(a.image_size, a.image_size, 0)
    tok_emb = W[M.LM + "model.embed_tokens.weight"]

    with torch.inference_mode():
        tp = time.perf_counter()
        pv, grid = M.preprocess(img, cfg.img_size, cfg.max_num_crops)
        pv = pv.to(dtype)
        pre_ms = (time.perf_counter() - tp) * 1e3
        ids = make_prompt(cfg, a.prompt_tokens)

        # (a) full forward: vision + projector + decoder prefill, last-position logits.
        fwd = []
        for r in range(a.repeat + 1):
            t = time.perf_counter()
            _, n_prefill = prefill(W, cfg, pv, grid, ids)
            dt = (time.perf_counter() - t) * 1e3
            if r > 0:
                fwd.append(dt)
        forward_ms = statistics.median(fwd)

        # (b) decode with KV cache after a cached prefill (prefill not timed).
        tps = []
        for r in range(a.repeat + 1):
            cache = M.KVCache(cfg, 512 + a.decode_tokens)
            lg, pos = prefill(W, cfg, pv, grid, ids, cache=cache)
            t = time.perf_counter()
            for _ in range(a.decode_tokens):
                nxt = int(torch.argmax(lg))
                lg = M.llama_forward(W, cfg, tok_emb[nxt:nxt + 1], cache=cache, start=pos)[-1]
                pos += 1
            dt = time.perf_counter() - t
            if r > 0:
                tps.append(a.decode_tokens / dt)
        decode_tps = statistics.median(tps)

    res = {"forward_ms": round(forward_ms, 3), "forward_ms_all": [round(x, 3) for x in fwd],
           "prefill_tokens": n_prefill, "decode_tokens_per_s": round(decode_tps, 3),
           "decode_tokens_per_s_all": [round(x, 3) for x in tps],
           "forward_ms_min": round(min(fwd), 3), "decode_tokens_per_s_max": round(max(tps), 3),
           "loadavg_1m": os.getloadavg()[0],
           "decode_tokens": a.decode_tokens, "grid": list(grid), "crops": int(pv.shape[0]),
           "image_size": a.image_size, "prompt_tokens": a.prompt_tokens,
           "preprocess_ms": round(pre_ms, 3), "threads": a.threads, "repeat": a.repeat,
           "params": n_params, "config": os.path.abspath(a.config),
           "torch_version": torch.__version__, "dtype": a.dtype, "peak_rss_mb": peak_rss_mb()}
    print("torch %s threads=%d config=%s params=%.1fM (init %.1fs) | image %dx%d grid %dx%d -> %d prefill "
          "tokens | forward %.1f ms (median of %d, min %.1f) | decode %.2f tok/s (%d tokens, best %.2f) | "
          "preprocess %.1f ms | loadavg %.2f"
          % (torch.__version__, a.threads, a.config, n_params / 1e6, t_init, a.image_size, a.image_size,
             grid[0], grid[1], n_prefill, forward_ms, a.repeat, min(fwd), decode_tps, a.decode_tokens, max(tps),
             pre_ms, os.getloadavg()[0]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=2)
            f.write("\n")


def cmd_check_cache(a):
    torch.set_num_threads(a.threads)
    cfg = M.Cfg.load(a.config)
    W = M.init_weights(cfg, a.seed)
    img = M.synth_image(a.image_size or cfg.img_size, a.image_size or cfg.img_size, 1)
    ids = make_prompt(cfg, a.prompt_tokens)
    with torch.no_grad():
        r = M.run_case(W, cfg, ids, [img], a.steps)
        cl, cg = M.generate_cached(W, cfg, r["inputs_embeds"], a.steps)
    d = float((cl - r["logits"]).abs().max())
    ok = d < 1e-4 and cg == r["generated"]
    print("check-cache %s: config=%s steps=%d prefill=%d max|cached-recompute|=%.3e generated=%s"
          % ("OK" if ok else "FAIL", a.config, a.steps, r["inputs_embeds"].shape[0], d, cg))
    if not ok:
        raise SystemExit(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cmd", nargs="?", default="bench", choices=["bench", "check-cache"])
    ap.add_argument("--config", default=None)
    ap.add_argument("--image-size", type=int, default=None)
    ap.add_argument("--prompt-tokens", type=int, default=64)
    ap.add_argument("--decode-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    ap.add_argument("--dtype", default="f32", choices=["f32", "bf16"],
                    help="weight dtype: bf16 = every weight converted with .to(torch.bfloat16)")
    a = ap.parse_args()
    if a.cmd == "check-cache":
        a.config = a.config or DEFAULT_TINY
        if a.prompt_tokens == 64 and a.config == DEFAULT_TINY:
            a.prompt_tokens = 16
        cmd_check_cache(a)
    else:
        if a.config is None:
            ap.error("--config is required for bench")
        a.image_size = a.image_size or 512
        cmd_bench(a)


if __name__ == "__main__":
    main()
