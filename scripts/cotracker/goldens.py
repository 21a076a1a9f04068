#!/usr/bin/python3
"""Parity goldens for the Go CoTracker3 port (tom/cotracker), from the
official facebookresearch/co-tracker code.

The official code is imported from a checkout (--src, default
/work/ref/co-tracker); it is never copied into this repository. Weights are
the deterministic formula of tom/cotracker/detweights.go (no checkpoint
needed), clips the formula of tom/cotracker/clip.go; both are documented in
tom/cotracker/testdata/README.md, which also lists every tensor a golden
holds.

    /usr/bin/python3 scripts/cotracker/goldens.py            # all goldens
    /usr/bin/python3 scripts/cotracker/goldens.py --only offline_a_g10_f64
    /usr/bin/python3 scripts/cotracker/goldens.py --selfcheck  # print weights
    /usr/bin/python3 scripts/cotracker/goldens.py --save-pth DIR

Needs python3-torch (Debian 1.13.1) and numpy.
"""

import argparse
import contextlib
import hashlib
import json
import os
import struct
import sys
import time

import numpy as np

U64 = np.uint64
GOLDEN = 0x9E3779B97F4A7C15
MASK64 = (1 << 64) - 1

# ---------------------------------------------------------------------------
# Deterministic weights (shared facts of issue 29; Go: detweights.go).


def fnv1a64(name):
    h = 0xCBF29CE484222325
    for b in name.encode("utf-8"):
        h ^= b
        h = (h * 0x100000001B3) & MASK64
    return h


def splitmix64(x):
    """splitmix64 over a uint64 numpy array (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = x + U64(GOLDEN)
        z = x
        z = (z ^ (z >> U64(30))) * U64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> U64(27))) * U64(0x94D049BB133111EB)
        return z ^ (z >> U64(31))


def det_weights(name, shape):
    """float64 values (row-major, reshaped to shape) of parameter name."""
    shape = tuple(int(s) for s in shape)
    n = int(np.prod(shape)) if shape else 1
    i = np.arange(n, dtype=U64)
    with np.errstate(over="ignore"):
        h = splitmix64(U64(fnv1a64(name)) ^ (i * U64(GOLDEN)))
    u = (h >> U64(40)).astype(np.float64) / float(1 << 24)
    r = 2.0 * u - 1.0
    if len(shape) >= 2:
        v = r / np.sqrt(float(np.prod(shape[1:])))
    elif name.endswith(".weight"):
        v = 1.0 + 0.1 * r
    else:
        v = 0.1 * r
    return v.reshape(shape)


# ---------------------------------------------------------------------------
# Deterministic clips (Go: clip.go). All arithmetic is uint32, wrapping.

M32 = 0xFFFFFFFF


def hash32(x):
    """lowbias32 over a uint32 numpy array."""
    x = x.astype(np.uint32)
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint32(16))
        x = x * np.uint32(0x7FEB352D)
        x = x ^ (x >> np.uint32(15))
        x = x * np.uint32(0x846CA68B)
        x = x ^ (x >> np.uint32(16))
    return x


def cell_hash(a, b, c, salt):
    with np.errstate(over="ignore"):
        s = (
            np.asarray(a, dtype=np.uint32) * np.uint32(0x9E3779B1)
            + np.asarray(b, dtype=np.uint32) * np.uint32(0x85EBCA77)
            + np.asarray(c, dtype=np.uint32) * np.uint32(0xC2B2AE3D)
            + np.uint32(salt) * np.uint32(0x27D4EB2F)
        )
    return hash32(s)


CLIPS = {
    # name: T, H, W, pan (px/frame), square velocity (px/frame)
    "a": dict(T=24, H=72, W=96, pan_x=1, pan_y=0, vx=1, vy=2),
    "b": dict(T=20, H=100, W=140, pan_x=-2, pan_y=1, vx=2, vy=3),
    "full": dict(T=18, H=240, W=320, pan_x=3, pan_y=0, vx=0, vy=4),
}


def make_clip(T, H, W, pan_x, pan_y, vx, vy):
    """(T, H, W, 3) uint8; see tom/cotracker/testdata/README.md."""
    out = np.empty((T, H, W, 3), dtype=np.uint8)
    ys, xs = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    side = min(H, W) * 3 // 8
    for t in range(T):
        X = xs + pan_x * t + 1024
        Y = ys + pan_y * t + 1024
        ox, oy = W // 4 + vx * t, H // 8 + vy * t
        inside = (xs >= ox) & (xs < ox + side) & (ys >= oy) & (ys < oy + side)
        u = np.where(inside, xs - ox, 0)
        v = np.where(inside, ys - oy, 0)
        for c in range(3):
            bg = 32 + cell_hash(X // 4, Y // 4, c, 1) % np.uint32(160)
            fg = 96 + cell_hash(u // 3, v // 3, c, 2) % np.uint32(160)
            out[t, :, :, c] = np.where(inside, fg, bg).astype(np.uint8)
    return out


# ---------------------------------------------------------------------------
# safetensors writer (F64 / U8 / I64), header keys sorted, data in order.


def save_safetensors(path, tensors, metadata):
    header = {"__metadata__": {k: str(v) for k, v in metadata.items()}}
    blobs, off = [], 0
    for name in tensors:
        a = np.ascontiguousarray(tensors[name])
        if a.dtype == np.float64:
            dt = "F64"
        elif a.dtype == np.uint8:
            dt = "U8"
        elif a.dtype == np.int64:
            dt = "I64"
        else:
            raise ValueError(f"{name}: dtype {a.dtype}")
        b = a.astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


# ---------------------------------------------------------------------------
# torch side


def import_official(src):
    sys.path.insert(0, os.path.abspath(src))
    import torch  # noqa: F401
    import cotracker.predictor as predictor
    from cotracker.models.core.cotracker.cotracker3_offline import CoTrackerThreeOffline
    from cotracker.models.core.cotracker.cotracker3_online import CoTrackerThreeOnline

    return predictor, CoTrackerThreeOffline, CoTrackerThreeOnline


@contextlib.contextmanager
def float64_mode(torch):
    """Run the official forward in float64 throughout.

    The official code allocates some tensors with the default dtype
    (torch.zeros for the online predictions, torch.tensor scale factors in
    bilinear_sampler, torch.linspace support offsets, the predictor's grid)
    and calls .float() on others (initial coords, vis/conf, the interpolated
    time embedding). With a float64 model those would round intermediate
    values to float32. Here the default dtype is float64 and Tensor.float()
    leaves a float64 tensor as it is, so a float64 golden is the official
    algorithm in float64 arithmetic. Float32 goldens run unpatched.
    """
    old = torch.get_default_dtype()
    orig_float = torch.Tensor.float

    def keep64(self, *a, **k):
        if self.dtype == torch.float64:
            return self
        return orig_float(self, *a, **k)

    torch.set_default_dtype(torch.float64)
    torch.Tensor.float = keep64
    try:
        yield
    finally:
        torch.Tensor.float = orig_float
        torch.set_default_dtype(old)


def build_model(torch, cls, window_len, res, dtype):
    """Official constructor (buffers as it makes them, in float32), then
    every named parameter set from the formula, in dtype."""
    m = cls(stride=4, corr_radius=3, window_len=window_len, model_resolution=tuple(res))
    if dtype == "f64":
        m = m.double()
    with torch.no_grad():
        for name, p in m.named_parameters():
            w = det_weights(name, p.shape)
            p.copy_(torch.from_numpy(w).to(p.dtype))
    m.eval()
    return m


class Recorder:
    """Forward hooks capturing intermediates of the first model call."""

    def __init__(self, torch, model, npts):
        self.torch = torch
        self.model = model
        self.npts = npts
        self.d = {}
        self.uf_out = []  # updateformer outputs (first window only)
        self.uf_calls = 0
        self.corr_calls = 0
        self.fnet_calls = 0
        self.windows = []  # online: forward_window returns
        self.handles = [
            model.fnet.register_forward_hook(self._fnet),
            model.corr_mlp.register_forward_hook(self._corr),
            model.updateformer.register_forward_hook(self._uf),
        ]

    @staticmethod
    def np(t):
        return t.detach().to("cpu").double().numpy().copy()

    def _fnet(self, mod, inp, out):
        self.fnet_calls += 1
        if self.fnet_calls > 1:
            return
        o = self.np(out)  # (B*T, 128, H/4, W/4)
        self.d["dbg.fnet_slice"] = o[0, :8, :4, :4]
        self.d["dbg.fnet_sum"] = o.sum(axis=(1, 2, 3))
        self.d["dbg.fnet_abs_sum"] = np.abs(o).sum(axis=(1, 2, 3))

    def _corr(self, mod, inp, out):
        self.corr_calls += 1
        if self.corr_calls > 1:
            return
        x = self.np(inp[0])  # (B*T*N, 2401), level 0, iteration 0
        self.d["dbg.corr_in_rows"] = x[:2]
        self.d["dbg.corr_in_sum"] = x[:64].sum(axis=1)
        self.d["dbg.corr_out_rows"] = self.np(out)[:2]

    def _uf(self, mod, inp, out):
        self.uf_calls += 1
        if self.uf_calls == 1:
            x = self.np(inp[0])  # (B, N, T, 1110)
            self.d["dbg.uf_in_rows"] = x[0, 0, :2]
            self.d["dbg.uf_in_chansum"] = x[0].sum(axis=(0, 1))
        if self.uf_calls <= self.iters:
            self.uf_out.append(out.detach().clone())

    def close(self):
        for h in self.handles:
            h.remove()


def slice_pts(a, p):
    return a[..., :p, :] if a.ndim == 4 else a[..., :p]


def run_offline(torch, predictor, model, video_u8, grid, dtype, chunk=0, iters=6):
    tdt = torch.float64 if dtype == "f64" else torch.float32
    predictor.build_cotracker = lambda checkpoint, v2=False, offline=True, window_len=60: model
    pred = predictor.CoTrackerPredictor(checkpoint=None, offline=True, window_len=60)
    rec = Recorder(torch, model, 16)
    rec.iters = iters
    raw = {}
    orig_forward = model.forward

    def fwd(*a, **k):
        raw["queries"] = k["queries"].detach().clone()
        if chunk:
            k["fmaps_chunk_size"] = chunk
        out = orig_forward(*a, **k)
        # clone: the predictor edits the returned tracks in place
        raw["out"] = [o.clone() if o is not None else None for o in out]
        return out

    model.forward = fwd
    video = torch.from_numpy(video_u8).permute(0, 3, 1, 2)[None].to(tdt)
    tracks, vis = pred(video, grid_size=grid)
    rec.close()
    q = raw["queries"]
    B, N = q.shape[0], q.shape[1]
    T = video.shape[1]
    # Reconstruct the logits and per-iteration coords the way forward does:
    # vis = 0 + d_0 + d_1 + ..., coords = queries/stride + dc_0 + ...
    vis_l = torch.zeros((B, T, N), dtype=tdt)
    conf_l = torch.zeros((B, T, N), dtype=tdt)
    coords = (q[..., 1:3] / model.stride).reshape(B, 1, N, 2).expand(B, T, N, 2).to(tdt)
    it_c, it_v, it_f = [], [], []
    for d in rec.uf_out:
        coords = coords + d[..., :2].permute(0, 2, 1, 3)
        vis_l = vis_l + d[..., 2].permute(0, 2, 1)
        conf_l = conf_l + d[..., 3].permute(0, 2, 1)
        it_c.append(rec.np(coords * float(model.stride))[0, :, :16])
        it_v.append(rec.np(vis_l)[0, :, :16])
        it_f.append(rec.np(conf_l)[0, :, :16])
    out_coords, out_vis, out_conf, _ = raw["out"]
    # The reconstruction must be the model's own numbers, bit for bit.
    assert torch.equal(coords * float(model.stride), out_coords), ("coords reconstruction", (coords * float(model.stride) - out_coords).abs().max(), coords.dtype, out_coords.dtype, len(rec.uf_out))
    assert torch.equal(torch.sigmoid(vis_l), out_vis), "vis reconstruction"
    assert torch.equal(torch.sigmoid(conf_l), out_conf), "conf reconstruction"
    g = dict(rec.d)
    g["queries"] = rec.np(q[0])
    g["tracks"] = rec.np(tracks[0])
    g["visible"] = vis[0].numpy().astype(np.uint8)
    g["model_tracks"] = rec.np(out_coords[0])
    g["vis_logits"] = rec.np(vis_l[0])
    g["conf_logits"] = rec.np(conf_l[0])
    g["dbg.iter_coords"] = np.stack(it_c)
    g["dbg.iter_vis_logits"] = np.stack(it_v)
    g["dbg.iter_conf_logits"] = np.stack(it_f)
    return g


def run_online(torch, predictor, model, video_u8, grid, dtype, chunk=0, iters=6):
    tdt = torch.float64 if dtype == "f64" else torch.float32
    predictor.build_cotracker = lambda checkpoint, v2=False, offline=False, window_len=16: model
    pred = predictor.CoTrackerOnlinePredictor(checkpoint=None, window_len=16)
    rec = Recorder(torch, model, 16)
    rec.iters = iters
    wins = []
    orig_fw = model.forward_window

    def fw(*a, **k):
        out = orig_fw(*a, **k)
        wins.append((model.online_ind, k["coords"].detach().clone(), out))
        return out

    model.forward_window = fw
    if chunk:
        orig_forward = model.forward
        model.forward = lambda *a, **k: orig_forward(*a, fmaps_chunk_size=chunk, **k)
    frames = [video_u8[i] for i in range(video_u8.shape[0])]
    window_frames = []

    # online_demo.py's loop, frames from the clip instead of a video file.
    def step(wf, first):
        frames16 = torch.tensor(np.stack(wf[-pred.step * 2 :])).to(tdt).permute(0, 3, 1, 2)[None]
        return pred(frames16, is_first_step=first, grid_size=grid, grid_query_frame=0)

    first = True
    chunks = []
    for i, fr in enumerate(frames):
        if i % pred.step == 0 and i != 0:
            tr, vi = step(window_frames, first)
            if not first:
                chunks.append(len(window_frames[-pred.step * 2 :]))
            first = False
        window_frames.append(fr)
    last = window_frames[-(i % pred.step) - pred.step - 1 :]
    tracks, vis = step(last, first)
    chunks.append(len(last[-pred.step * 2 :]))
    rec.close()
    T = video_u8.shape[0]
    assert tracks.shape[1] == T, (tracks.shape, T)
    g = dict(rec.d)
    g["queries"] = rec.np(pred.queries[0])
    g["tracks"] = rec.np(tracks[0])
    g["visible"] = vis[0].numpy().astype(np.uint8)
    g["model_tracks"] = rec.np(model.online_coords_predicted[0])
    g["vis_logits"] = rec.np(model.online_vis_predicted[0])
    g["conf_logits"] = rec.np(model.online_conf_predicted[0])
    ind0, c0, (cs, vs, fs) = wins[0]
    g["dbg.iter_coords"] = np.stack([rec.np(c[0, :, :16]) for c in cs])
    g["dbg.iter_vis_logits"] = np.stack([rec.np(v[0, :, :16]) for v in vs])
    g["dbg.iter_conf_logits"] = np.stack([rec.np(f[0, :, :16]) for f in fs])
    # the second window's initial coords (copied over from the first)
    if len(wins) > 1:
        g["dbg.win1_init_coords"] = rec.np(wins[1][1][0, :, :16] * model.stride)
    g["window_starts"] = np.array([w[0] for w in wins], dtype=np.int64)
    g["window_frames"] = np.array(chunks, dtype=np.int64)
    return g


GOLDENS = []
for variant in ("offline", "online"):
    for clip in ("a", "b"):
        for grid in (10, 15):
            GOLDENS.append(dict(name=f"{variant}_{clip}_g{grid}_f64", variant=variant, clip=clip,
                                grid=grid, res=[96, 128], dtype="f64", full=False))
    GOLDENS.append(dict(name=f"{variant}_a_g10_f32", variant=variant, clip="a", grid=10,
                        res=[96, 128], dtype="f32", full=False))
    GOLDENS.append(dict(name=f"{variant}_full_g10_f64", variant=variant, clip="full", grid=10,
                        res=[384, 512], dtype="f64", full=True))


def params_listing(torch, cls):
    m = cls(stride=4, corr_radius=3, window_len=16)
    out = []
    for name, p in m.named_parameters():
        w = det_weights(name, p.shape).reshape(-1)
        out.append({"name": name, "shape": list(p.shape), "first": [float(x) for x in w[:4]],
                    "sum": float(w.sum())})
    bufs = [{"name": n, "shape": list(b.shape), "dtype": str(b.dtype)} for n, b in m.named_buffers()]
    return out, bufs


def selfcheck():
    for name, shape in [("fnet.conv1.weight", (64, 3, 7, 7)), ("fnet.conv1.bias", (64,)),
                        ("updateformer.space_point2virtual_blocks.0.norm_context.weight", (384,))]:
        w = det_weights(name, shape).reshape(-1)
        print(name, list(shape), " ".join(repr(float(x)) for x in w[:4]))


def time_emb(window_len):
    """The official constructor's time_emb buffer (1, window_len, 1110):
    sin/cos of positions 0..window_len-1 times 1/10000^(k/555), k < 555,
    computed in float64 and rounded to float32 (equal bit for bit; checked
    against the official module in save_pth when it is importable)."""
    omega = 1.0 / 10000 ** (np.arange(555, dtype=np.float64) / 555.0)
    out = np.arange(window_len, dtype=np.float64)[:, None] * omega[None, :]
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)[None].astype(np.float32)


def formula_state_dict(torch, window_len, params_path):
    """The state_dict of a model with the formula weights, float32, in the
    official order (the top module's buffer time_emb first, then the
    parameters), built from params.json without the official code."""
    import collections

    with open(params_path) as f:
        plist = json.load(f)["params"]
    sd = collections.OrderedDict()
    sd["time_emb"] = torch.from_numpy(time_emb(window_len))
    for p in plist:
        sd[p["name"]] = torch.from_numpy(det_weights(p["name"], p["shape"])).float()
    return sd


def save_pth(torch, src, out_dir, params_path):
    """Formula weights (float32, as the official checkpoints) saved with
    torch.save: offline.pth / online.pth hold the bare state_dict (the 187
    parameters and the time_emb buffer), offline_wrapped.pth holds
    {"model": state_dict}. Their weights are the f32 goldens' bit for bit.
    When the official code is importable from src, the state_dict is
    checked against the official model's and every file is loaded back
    through build_cotracker (strict load_state_dict)."""
    try:
        predictor, off_cls, on_cls = import_official(src)
        import cotracker.models.build_cotracker as bc
    except ImportError as e:
        print(f"goldens.py: official code not importable from {src} ({e}); "
              "writing the .pth files from params.json without the round-trip check", file=sys.stderr)
        bc = None
    os.makedirs(out_dir, exist_ok=True)
    for variant, wl in (("offline", 60), ("online", 16)):
        sd = formula_state_dict(torch, wl, params_path)
        files = {f"{variant}.pth": sd}
        if variant == "offline":
            files["offline_wrapped.pth"] = {"model": sd}
        for fn, obj in files.items():
            torch.save(obj, os.path.join(out_dir, fn))
        if bc is None:
            continue
        ref = build_model(torch, off_cls if variant == "offline" else on_cls, wl, (384, 512), "f32").state_dict()
        assert list(ref) == list(sd), (variant, "state_dict order")
        for k in ref:
            assert ref[k].dtype == sd[k].dtype and torch.equal(ref[k], sd[k]), (variant, k)
        for fn in files:
            got = bc.build_cotracker(os.path.join(out_dir, fn), offline=(variant == "offline"), window_len=wl)
            for k, v in got.state_dict().items():
                assert torch.equal(v, sd[k]), (fn, k)
            print(f"{out_dir}/{fn}: {len(sd)} tensors, equal to the official model's state_dict, "
                  "loads through build_cotracker")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", default="/work/ref/co-tracker", help="official co-tracker checkout")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "../../tom/cotracker/testdata"))
    ap.add_argument("--only", default="", help="comma-separated golden names, made in this order")
    ap.add_argument("--no-full", action="store_true", help="skip the 384x512 goldens")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--selfcheck", action="store_true", help="print the first weights of 3 parameters")
    ap.add_argument("--save-pth", default="", metavar="DIR", help="write formula weights as .pth files")
    args = ap.parse_args()

    if args.selfcheck:
        selfcheck()
        return
    import torch

    torch.set_num_threads(args.threads)
    out = os.path.abspath(args.out)
    if args.save_pth:
        save_pth(torch, args.src, args.save_pth, os.path.join(out, "params.json"))
        return
    predictor, off_cls, on_cls = import_official(args.src)
    os.makedirs(out, exist_ok=True)

    # clips.json: the clip formula's checks for the Go side
    clips = {}
    for cname, c in CLIPS.items():
        v = make_clip(**c)
        probe = [[0, 0, 0], [c["T"] - 1, c["H"] - 1, c["W"] - 1], [c["T"] // 2, c["H"] // 2, c["W"] // 2],
                 [1, c["H"] // 8 + c["vy"] + 1, c["W"] // 4 + c["vx"] + 1]]
        clips[cname] = dict(c, sha256=hashlib.sha256(v.tobytes()).hexdigest(),
                            pixels=[[t, y, x, [int(p) for p in v[t, y, x]]] for t, y, x in probe])
    with open(os.path.join(out, "clips.json"), "w") as f:
        json.dump(clips, f, indent=1)
    plist, bufs = params_listing(torch, on_cls)
    with open(os.path.join(out, "params.json"), "w") as f:
        json.dump({"params": plist, "buffers": bufs}, f, indent=0)

    only = [n for n in args.only.split(",") if n]
    specs = {g["name"]: g for g in GOLDENS}
    for n in only:
        if n not in specs:
            sys.exit(f"goldens.py: unknown golden {n!r} (known: {', '.join(specs)})")
    index_path = os.path.join(out, "goldens.json")
    index = {}
    if os.path.exists(index_path):
        with open(index_path) as f:
            index = {g["name"]: g for g in json.load(f)["goldens"]}
    for spec in [specs[n] for n in only] if only else GOLDENS:
        if args.no_full and spec["full"]:
            continue
        t0 = time.time()
        c = CLIPS[spec["clip"]]
        video = make_clip(**c)
        off = spec["variant"] == "offline"
        # built outside float64_mode: buffers (time_emb) as the official
        # constructor makes them (float32), widened by .double()
        model = build_model(torch, off_cls if off else on_cls, 60 if off else 16, spec["res"], spec["dtype"])
        run = run_offline if off else run_online
        ctx = float64_mode(torch) if spec["dtype"] == "f64" else contextlib.nullcontext()
        with ctx, torch.no_grad():
            # offline at 384x512: the encoder runs 2 frames at a time (the
            # official fmaps_chunk_size path; per-frame results are the
            # same) to bound memory. Not online: its chunk path drops the
            # padding frames of a short last window (T < window_len).
            g = run(torch, predictor, model, video, spec["grid"], spec["dtype"],
                    chunk=2 if spec["full"] and off else 0)
        meta = dict(spec, clip_params=json.dumps(c), iters=6, torch=torch.__version__)
        meta = {k: (json.dumps(v) if isinstance(v, (list, bool)) else v) for k, v in meta.items()}
        fn = spec["name"] + ".safetensors"
        save_safetensors(os.path.join(out, fn), g, meta)
        entry = dict(spec, file=fn, clip_params=c, iters=6,
                     tensors={k: list(v.shape) for k, v in g.items()},
                     seconds=round(time.time() - t0, 1))
        index[spec["name"]] = entry
        print(f"{fn}: {time.time() - t0:.1f}s " + " ".join(f"{k}{list(v.shape)}" for k, v in g.items() if not k.startswith("dbg.")), flush=True)
        with open(index_path, "w") as f:
            json.dump({"goldens": [index[k] for k in sorted(index)]}, f, indent=1)


if __name__ == "__main__":
    main()
