#!/usr/bin/python3
"""CoTracker3 on CPU with the official PyTorch code: frames/s of one variant
on the synthetic clip of tom/cotracker (scripts/cotracker/goldens.py's
make_clip), at the published 384x512 model resolution, float32, grid
queries, torch.set_num_threads(--threads). Run it under /usr/bin/time -v
for the peak RSS (scripts/bench/cotracker.sh does).

    cotracker_torch.py --variant offline|online [--T 24] [--grid 15]
                       [--checkpoint FILE.pth] [--write-frames DIR]

Without --checkpoint the weights are the deterministic formula (speed does
not depend on the values). --write-frames DIR writes the clip as PNGs
(frame_000.png, ...) for `magma tom --video DIR` and exits.
Prints "key value" lines: variant, frames, points, seconds, fps.
"""

import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "cotracker"))
import goldens  # noqa: E402  (our driver: clip + weight formulas)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", default="/work/ref/co-tracker")
    ap.add_argument("--variant", choices=["offline", "online"], default="offline")
    ap.add_argument("--T", type=int, default=24)
    ap.add_argument("--H", type=int, default=384)
    ap.add_argument("--W", type=int, default=512)
    ap.add_argument("--grid", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--res", default="384,512", help="model resolution H,W (smoke tests: 96,128)")
    ap.add_argument("--checkpoint", default="")
    ap.add_argument("--write-frames", default="")
    args = ap.parse_args()

    clip = goldens.make_clip(T=args.T, H=args.H, W=args.W, pan_x=3, pan_y=0, vx=0, vy=4)
    if args.write_frames:
        from PIL import Image

        os.makedirs(args.write_frames, exist_ok=True)
        for t in range(args.T):
            Image.fromarray(clip[t]).save(os.path.join(args.write_frames, f"frame_{t:03d}.png"))
        return

    import torch

    torch.set_num_threads(args.threads)
    predictor, off_cls, on_cls = goldens.import_official(args.src)
    off = args.variant == "offline"
    res = tuple(int(v) for v in args.res.split(","))
    wl = 60 if off else 16
    if args.checkpoint:
        import cotracker.models.build_cotracker as bc

        model = bc.build_cotracker(args.checkpoint, offline=off, window_len=wl).eval()
        model.model_resolution = res
    else:
        model = goldens.build_model(torch, off_cls if off else on_cls, wl, res, "f32")
    predictor.build_cotracker = lambda checkpoint, v2=False, offline=off, window_len=wl: model

    with torch.no_grad():
        if off:
            pred = predictor.CoTrackerPredictor(checkpoint=None, offline=True, window_len=wl)
            video = torch.from_numpy(clip).permute(0, 3, 1, 2)[None].float()
            t0 = time.perf_counter()
            tracks, vis = pred(video, grid_size=args.grid)
            dt = time.perf_counter() - t0
        else:
            pred = predictor.CoTrackerOnlinePredictor(checkpoint=None, window_len=wl)
            frames = [clip[i] for i in range(args.T)]
            t0 = time.perf_counter()
            window, first = [], True

            def step(wf, first):
                chunk = torch.tensor(np.stack(wf[-pred.step * 2 :])).float().permute(0, 3, 1, 2)[None]
                return pred(chunk, is_first_step=first, grid_size=args.grid, grid_query_frame=0)

            for i, fr in enumerate(frames):
                if i % pred.step == 0 and i != 0:
                    step(window, first)
                    first = False
                window.append(fr)
            tracks, vis = step(window[-(i % pred.step) - pred.step - 1 :], first)
            dt = time.perf_counter() - t0
    assert tracks.shape[1] == args.T, tracks.shape
    print("variant", args.variant)
    print("frames", args.T)
    print("points", tracks.shape[2])
    print("threads", torch.get_num_threads())
    print("torch", torch.__version__)
    print(f"seconds {dt:.3f}")
    print(f"fps {args.T / dt:.3f}")


if __name__ == "__main__":
    main()
