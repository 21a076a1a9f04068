#!/usr/bin/python3
"""Plain-PyTorch reference implementation of Magma (ConvNeXt trunk + MLP
projector + Llama-3 decoder) used to produce parity fixtures for the Go port.

Weights are held in a flat dict keyed by the exact tensor names of the
published Hugging Face checkpoint (microsoft/Magma-8B). No transformers /
timm / safetensors packages are needed.

Subcommands:
  make-parity --out DIR     regenerate model/testdata/parity byte-identically
  verify --dir DIR          reload the fixture and recheck every golden
"""

import argparse
import json
import math
import os
import struct
import sys
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

TRUNK = "vision_tower.clip_vision_model.trunk."
PROJ = "multi_modal_projector."
LM = "language_model."


# ---------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------

class Cfg:
    """Flattened view of a Magma HF config.json."""

    def __init__(self, d):
        v = d["vision_config"]
        t = d["text_config"]
        self.raw = d
        self.image_token_index = int(d["image_token_index"])
        self.depths = list(v["depths"]) if "depths" in v else None
        self.dims = list(v["dims"]) if "dims" in v else None
        self.vision_eps = float(v.get("norm_eps", 1e-5))
        self.img_size = int(v["img_size"])
        self.max_num_crops = int(v["max_num_crops"])
        self.mm_hidden = int(v["mm_hidden_size"])
        self.vocab = int(t["vocab_size"])
        self.hidden = int(t["hidden_size"])
        self.inter = int(t["intermediate_size"])
        self.layers = int(t["num_hidden_layers"])
        self.heads = int(t["num_attention_heads"])
        self.kv_heads = int(t.get("num_key_value_heads", self.heads))
        self.rms_eps = float(t["rms_norm_eps"])
        self.rope_theta = float(t["rope_theta"])
        self.head_dim = self.hidden // self.heads
        if self.depths is None or self.dims is None:
            raise ValueError("vision_config must carry depths and dims")
        if self.mm_hidden != self.dims[-1]:
            raise ValueError("mm_hidden_size %d != dims[-1] %d" % (self.mm_hidden, self.dims[-1]))

    @staticmethod
    def load(path):
        """config.json (HF layout) or a repo configs/*.yaml (its `model:` section)."""
        with open(path) as f:
            if path.endswith((".yaml", ".yml")):
                import yaml
                d = yaml.safe_load(f)
                d = d.get("model", d)
            else:
                d = json.load(f)
        return Cfg(d)


# ---------------------------------------------------------------------------
# Random weights
# ---------------------------------------------------------------------------

def param_specs(cfg):
    """Ordered list of (name, shape, kind). kind selects the init law."""
    specs = []
    d0 = cfg.dims[0]
    specs += [(TRUNK + "stem.0.weight", (d0, 3, 4, 4), ("lin", 3 * 16)),
              (TRUNK + "stem.0.bias", (d0,), ("bias",)),
              (TRUNK + "stem.1.weight", (d0,), ("normw",)),
              (TRUNK + "stem.1.bias", (d0,), ("bias",))]
    for s, (depth, c) in enumerate(zip(cfg.depths, cfg.dims)):
        p = TRUNK + "stages.%d." % s
        if s >= 1:
            cp = cfg.dims[s - 1]
            specs += [(p + "downsample.0.weight", (cp,), ("normw",)),
                      (p + "downsample.0.bias", (cp,), ("bias",)),
                      (p + "downsample.1.weight", (c, cp, 2, 2), ("lin", cp * 4)),
                      (p + "downsample.1.bias", (c,), ("bias",))]
        for b in range(depth):
            q = p + "blocks.%d." % b
            specs += [(q + "conv_dw.weight", (c, 1, 7, 7), ("lin", 49)),
                      (q + "conv_dw.bias", (c,), ("bias",)),
                      (q + "norm.weight", (c,), ("normw",)),
                      (q + "norm.bias", (c,), ("bias",)),
                      (q + "mlp.fc1.weight", (4 * c, c), ("lin", c)),
                      (q + "mlp.fc1.bias", (4 * c,), ("bias",)),
                      (q + "mlp.fc2.weight", (c, 4 * c), ("lin", 4 * c)),
                      (q + "mlp.fc2.bias", (c,), ("bias",)),
                      (q + "gamma", (c,), ("gamma",))]
    cl = cfg.dims[-1]
    specs += [(TRUNK + "head.norm.weight", (cl,), ("normw",)),
              (TRUNK + "head.norm.bias", (cl,), ("bias",))]
    D = cfg.hidden
    specs += [(PROJ + "proj.0.weight", (D, cfg.mm_hidden), ("lin", cfg.mm_hidden)),
              (PROJ + "proj.0.bias", (D,), ("bias",)),
              (PROJ + "proj.2.weight", (D, D), ("lin", D)),
              (PROJ + "proj.2.bias", (D,), ("bias",)),
              (PROJ + "row_seperator", (1, 1, D), ("unit",))]
    hd = cfg.head_dim
    specs.append((LM + "model.embed_tokens.weight", (cfg.vocab, D), ("unit",)))
    for i in range(cfg.layers):
        p = LM + "model.layers.%d." % i
        specs += [(p + "input_layernorm.weight", (D,), ("normw",)),
                  (p + "self_attn.q_proj.weight", (cfg.heads * hd, D), ("lin", D)),
                  (p + "self_attn.k_proj.weight", (cfg.kv_heads * hd, D), ("lin", D)),
                  (p + "self_attn.v_proj.weight", (cfg.kv_heads * hd, D), ("lin", D)),
                  (p + "self_attn.o_proj.weight", (D, cfg.heads * hd), ("lin", cfg.heads * hd)),
                  (p + "post_attention_layernorm.weight", (D,), ("normw",)),
                  (p + "mlp.gate_proj.weight", (cfg.inter, D), ("lin", D)),
                  (p + "mlp.up_proj.weight", (cfg.inter, D), ("lin", D)),
                  (p + "mlp.down_proj.weight", (D, cfg.inter), ("lin", cfg.inter))]
    specs += [(LM + "model.norm.weight", (D,), ("normw",)),
              (LM + "lm_head.weight", (cfg.vocab, D), ("head", D))]
    return specs


def init_weights(cfg, seed):
    """Deterministic random weights with non-trivial activations."""
    g = torch.Generator().manual_seed(seed)
    out = OrderedDict()
    for name, shape, kind in param_specs(cfg):
        n = torch.randn(shape, generator=g, dtype=torch.float32)
        k = kind[0]
        if k == "lin":
            t = n / math.sqrt(kind[1])
        elif k == "bias":
            t = 0.1 * n
        elif k == "normw":
            t = 1.0 + 0.1 * n
        elif k == "gamma":
            t = 0.5 + 0.2 * n
        elif k == "unit":
            t = n
        elif k == "head":
            t = 3.0 * n / math.sqrt(kind[1])
        else:
            raise ValueError(k)
        out[name] = t.contiguous()
    return out


def round_bf16(weights):
    return OrderedDict((k, v.to(torch.bfloat16).to(torch.float32)) for k, v in weights.items())


# ---------------------------------------------------------------------------
# safetensors (hand-written)
# ---------------------------------------------------------------------------

_DT = {torch.float32: ("F32", 4), torch.bfloat16: ("BF16", 2)}


def _tensor_bytes(t):
    t = t.contiguous().cpu()
    if t.dtype == torch.float32:
        return t.numpy().astype("<f4").tobytes()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().astype("<i2").tobytes()
    raise ValueError("unsupported dtype %s" % t.dtype)


def save_safetensors(path, tensors):
    """tensors: ordered mapping name -> tensor (F32 or BF16); written in that order."""
    header = OrderedDict()
    header["__metadata__"] = {"format": "pt"}
    blobs = []
    off = 0
    for name, t in tensors.items():
        b = _tensor_bytes(t)
        header[name] = {"dtype": _DT[t.dtype][0], "shape": list(t.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    return off


def load_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    base = 8 + n
    out = OrderedDict()
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        raw = data[base + a: base + b]
        shape = info["shape"]
        if info["dtype"] == "F32":
            t = torch.from_numpy(np.frombuffer(raw, dtype="<f4").copy()).reshape(shape)
        elif info["dtype"] == "BF16":
            u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            t = torch.from_numpy(u.view(np.float32).copy()).reshape(shape)
        else:
            raise ValueError(info["dtype"])
        out[name] = t
    return out


def load_checkpoint(d):
    """Load model.safetensors or a sharded index from directory d (as float32)."""
    idx = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(idx):
        with open(idx) as f:
            wm = json.load(f)["weight_map"]
        out = OrderedDict()
        for shard in sorted(set(wm.values())):
            out.update(load_safetensors(os.path.join(d, shard)))
        return out
    return load_safetensors(os.path.join(d, "model.safetensors"))


# ---------------------------------------------------------------------------
# Image processor
# ---------------------------------------------------------------------------

def candidate_resolutions(max_crops, base):
    res = []
    for i in range(1, max_crops + 1):
        for j in range(1, max_crops // i + 1):
            res.append((i * base, j * base))  # (width, height)
    return res


def select_best_resolution(orig_w, orig_h, candidates):
    best = None
    best_eff = -1
    best_waste = float("inf")
    for (w, h) in candidates:
        scale = min(w / orig_w, h / orig_h)
        dw, dh = int(orig_w * scale), int(orig_h * scale)
        eff = min(dw * dh, orig_w * orig_h)
        waste = w * h - eff
        if eff > best_eff or (eff == best_eff and waste < best_waste):
            best, best_eff, best_waste = (w, h), eff, waste
    return best


def preprocess(img_rgb_u8, base, max_crops):
    """uint8 RGB HxWx3 -> (pixel_values [rows*cols,3,base,base], (rows, cols))."""
    oh, ow = img_rgb_u8.shape[:2]
    x = torch.from_numpy(np.ascontiguousarray(img_rgb_u8)).permute(2, 0, 1).float().div(255.0)
    mean = torch.tensor(CLIP_MEAN, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=torch.float32).view(3, 1, 1)
    x = (x - mean) / std
    W, H = select_best_resolution(ow, oh, candidate_resolutions(max_crops, base))
    x = F.interpolate(x[None], size=(H, W), mode="bilinear", align_corners=False)[0]
    rows, cols = H // base, W // base
    crops = []
    for r in range(rows):
        for c in range(cols):
            crops.append(x[:, r * base:(r + 1) * base, c * base:(c + 1) * base])
    return torch.stack(crops, 0).contiguous(), (rows, cols)


# ---------------------------------------------------------------------------
# Vision trunk (timm ConvNeXt) + projector + merge
# ---------------------------------------------------------------------------

def _ln2d(x, w, b, eps):
    x = x.permute(0, 2, 3, 1)
    x = F.layer_norm(x, (x.shape[-1],), w, b, eps)
    return x.permute(0, 3, 1, 2)


def convnext_trunk(W, cfg, pv):
    """pv [N,3,S,S] -> raw last-stage map [N,C,S/32,S/32]."""
    eps = cfg.vision_eps
    x = F.conv2d(pv, W[TRUNK + "stem.0.weight"], W[TRUNK + "stem.0.bias"], stride=4)
    x = _ln2d(x, W[TRUNK + "stem.1.weight"], W[TRUNK + "stem.1.bias"], eps)
    for s, depth in enumerate(cfg.depths):
        p = TRUNK + "stages.%d." % s
        if s >= 1:
            x = _ln2d(x, W[p + "downsample.0.weight"], W[p + "downsample.0.bias"], eps)
            x = F.conv2d(x, W[p + "downsample.1.weight"], W[p + "downsample.1.bias"], stride=2)
        for b in range(depth):
            q = p + "blocks.%d." % b
            c = x.shape[1]
            sc = x
            y = F.conv2d(x, W[q + "conv_dw.weight"], W[q + "conv_dw.bias"], padding=3, groups=c)
            y = y.permute(0, 2, 3, 1)
            y = F.layer_norm(y, (c,), W[q + "norm.weight"], W[q + "norm.bias"], eps)
            y = F.linear(y, W[q + "mlp.fc1.weight"], W[q + "mlp.fc1.bias"])
            y = F.gelu(y)
            y = F.linear(y, W[q + "mlp.fc2.weight"], W[q + "mlp.fc2.bias"])
            y = y.permute(0, 3, 1, 2)
            y = y * W[q + "gamma"].view(1, -1, 1, 1)
            x = y + sc
    return x


def projector(W, f):
    y = F.linear(f, W[PROJ + "proj.0.weight"], W[PROJ + "proj.0.bias"])
    y = F.gelu(y)
    return F.linear(y, W[PROJ + "proj.2.weight"], W[PROJ + "proj.2.bias"])


def encode_image(W, cfg, pv, grid):
    """Returns (vision_features [crops,h,w,C], image_features [L_img, D])."""
    rows, cols = grid
    feats = convnext_trunk(W, cfg, pv).permute(0, 2, 3, 1).contiguous()
    n, h, w, _ = feats.shape
    p = projector(W, feats)
    D = p.shape[-1]
    p = p.view(rows, cols, h, w, D).permute(0, 2, 1, 3, 4).reshape(rows * h, cols * w, D)
    sep = W[PROJ + "row_seperator"].expand(rows * h, 1, D)
    p = torch.cat([p, sep], dim=1)
    return feats, p.reshape(-1, D).contiguous()


# ---------------------------------------------------------------------------
# Llama-3 decoder
# ---------------------------------------------------------------------------

def rms_norm(x, w, eps):
    xf = x.float()
    var = xf.pow(2).mean(-1, keepdim=True)
    return w * (xf * torch.rsqrt(var + eps)).to(x.dtype)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


def rope_cos_sin(cfg, positions):
    d = cfg.head_dim
    inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
    freqs = positions.float()[:, None] * inv_freq[None, :]
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos(), emb.sin()


class KVCache:
    """Per-layer key/value buffers [KV, capacity, d]; grows by doubling."""

    def __init__(self, cfg, capacity=256):
        self.cfg = cfg
        self.cap = capacity
        self.len = 0
        self.k = [None] * cfg.layers
        self.v = [None] * cfg.layers

    def append(self, i, k, v):
        """Store k, v ([KV, T, d]) for layer i at positions len..len+T-1 and
        return views over positions 0..len+T-1 (len advances via advance())."""
        T = k.shape[1]
        need = self.len + T
        if self.k[i] is None or need > self.k[i].shape[1]:
            cap = max(self.cap, need)
            while cap < need:
                cap *= 2
            self.cap = cap
            nk = k.new_zeros((k.shape[0], cap, k.shape[2]))
            nv = v.new_zeros((v.shape[0], cap, v.shape[2]))
            if self.k[i] is not None:
                nk[:, :self.len] = self.k[i][:, :self.len]
                nv[:, :self.len] = self.v[i][:, :self.len]
            self.k[i], self.v[i] = nk, nv
        self.k[i][:, self.len:need] = k
        self.v[i][:, self.len:need] = v
        return self.k[i][:, :need], self.v[i][:, :need]

    def advance(self, T):
        self.len += T


def llama_forward(W, cfg, x, cache=None, start=0, last_only=False):
    """x: [T, D] input embeddings for positions start..start+T-1.
    cache: None or a KVCache whose length equals start (extended here).
    Returns logits [T, vocab] (or [1, vocab] if last_only)."""
    T, D = x.shape
    H, KV, d = cfg.heads, cfg.kv_heads, cfg.head_dim
    rep = H // KV
    if cache is not None and cache.len != start:
        raise ValueError("cache length %d != start %d" % (cache.len, start))
    pos = torch.arange(start, start + T)
    cos, sin = rope_cos_sin(cfg, pos)
    cos, sin = cos.to(x.dtype)[None], sin.to(x.dtype)[None]  # HF: cos.to(dtype=x.dtype)
    S = start + T
    qpos = torch.arange(start, start + T)[:, None]
    kpos = torch.arange(0, S)[None, :]
    masked = kpos > qpos  # causal: key after query
    for i in range(cfg.layers):
        p = LM + "model.layers.%d." % i
        h = rms_norm(x, W[p + "input_layernorm.weight"], cfg.rms_eps)
        q = F.linear(h, W[p + "self_attn.q_proj.weight"]).view(T, H, d).transpose(0, 1)
        k = F.linear(h, W[p + "self_attn.k_proj.weight"]).view(T, KV, d).transpose(0, 1)
        v = F.linear(h, W[p + "self_attn.v_proj.weight"]).view(T, KV, d).transpose(0, 1)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if cache is not None:
            k, v = cache.append(i, k, v)
        # GQA: query head h = g*rep + r uses kv head g = h // rep.
        qg = q.reshape(KV, rep * T, d)
        att = torch.matmul(qg, k.transpose(1, 2)).view(KV, rep, T, S) / math.sqrt(d)
        att = att.masked_fill(masked, float("-inf"))
        att = torch.softmax(att.float(), dim=-1).to(q.dtype)
        o = torch.matmul(att.view(KV, rep * T, S), v).view(H, T, d)
        o = o.transpose(0, 1).reshape(T, H * d)
        x = x + F.linear(o, W[p + "self_attn.o_proj.weight"])
        h = rms_norm(x, W[p + "post_attention_layernorm.weight"], cfg.rms_eps)
        m = F.silu(F.linear(h, W[p + "mlp.gate_proj.weight"])) * F.linear(h, W[p + "mlp.up_proj.weight"])
        x = x + F.linear(m, W[p + "mlp.down_proj.weight"])
    if cache is not None:
        cache.advance(T)
    if last_only:
        x = x[-1:]
    x = rms_norm(x, W[LM + "model.norm.weight"], cfg.rms_eps)
    return F.linear(x, W[LM + "lm_head.weight"])


def build_inputs_embeds(W, cfg, ids, image_feats):
    """Replace each image token with the next image's merged features."""
    # One embedding lookup for all text tokens: slicing the table per token
    # would give autograd one full-size gradient buffer per token.
    emb = W[LM + "model.embed_tokens.weight"]
    text_ids = [t for t in ids if t != cfg.image_token_index]
    text = F.embedding(torch.tensor(text_ids, dtype=torch.long), emb)
    parts = []
    it = iter(image_feats)
    n_img = k = 0
    for t in ids:
        if t == cfg.image_token_index:
            parts.append(next(it))
            n_img += 1
        else:
            parts.append(text[k:k + 1])
            k += 1
    if n_img != len(image_feats):
        raise ValueError("image tokens (%d) != images (%d)" % (n_img, len(image_feats)))
    return torch.cat(parts, 0)


def run_case(W, cfg, ids, images, steps):
    """Full reference pipeline + greedy decoding without a cache.
    images: list of uint8 RGB arrays. Returns a dict of intermediate tensors."""
    pvs, grids, vfs, ifs = [], [], [], []
    for img in images:
        pv, grid = preprocess(img, cfg.img_size, cfg.max_num_crops)
        vf, imf = encode_image(W, cfg, pv, grid)
        pvs.append(pv), grids.append(grid), vfs.append(vf), ifs.append(imf)
    emb = build_inputs_embeds(W, cfg, ids, ifs)
    x = emb
    logits_rows, generated, margins = [], [], []
    tok_emb = W[LM + "model.embed_tokens.weight"]
    for _ in range(steps):
        lg = llama_forward(W, cfg, x)[-1]
        top = torch.topk(lg, 2)
        margins.append(float(top.values[0] - top.values[1]))
        nxt = int(torch.argmax(lg))
        logits_rows.append(lg)
        generated.append(nxt)
        x = torch.cat([x, tok_emb[nxt:nxt + 1]], 0)
    return {"pixel_values": pvs, "grids": grids, "vision_features": vfs,
            "image_features": ifs, "inputs_embeds": emb,
            "logits": torch.stack(logits_rows, 0), "generated": generated,
            "min_margin": min(margins)}


def generate_cached(W, cfg, emb, steps):
    """Greedy decode with KV cache; returns (logits [steps,V], generated)."""
    cache = KVCache(cfg, emb.shape[0] + steps)
    tok_emb = W[LM + "model.embed_tokens.weight"]
    lg = llama_forward(W, cfg, emb, cache=cache, start=0, last_only=True)[-1]
    pos = emb.shape[0]
    rows, gen = [lg], []
    for s in range(steps):
        nxt = int(torch.argmax(lg))
        gen.append(nxt)
        if s == steps - 1:
            break
        lg = llama_forward(W, cfg, tok_emb[nxt:nxt + 1], cache=cache, start=pos)[-1]
        pos += 1
        rows.append(lg)
    return torch.stack(rows, 0), gen


# ---------------------------------------------------------------------------
# Parity fixture
# ---------------------------------------------------------------------------

TINY_CONFIG = OrderedDict([
    ("architectures", ["MagmaForCausalLM"]),
    ("model_type", "magma"),
    ("image_token_index", 500),
    ("vision_config", OrderedDict([
        ("vision_backbone", "convnext_custom"),
        ("depths", [1, 1, 2, 1]),
        ("dims", [16, 32, 48, 64]),
        ("norm_eps", 1e-5),
        ("img_size", 64),
        ("max_num_crops", 4),
        ("img_anyres_strategy", "crop"),
        ("mm_projector_type", "mlp2x_gelu"),
        ("mm_hidden_size", 64),
        ("mm_use_im_start_end", False)])),
    ("text_config", OrderedDict([
        ("vocab_size", 512),
        ("hidden_size", 64),
        ("intermediate_size", 192),
        ("num_hidden_layers", 2),
        ("num_attention_heads", 4),
        ("num_key_value_heads", 2),
        ("rms_norm_eps", 1e-5),
        ("rope_theta", 500000.0),
        ("max_position_embeddings", 2048),
        ("tie_word_embeddings", False),
        ("bos_token_id", 1),
        ("eos_token_id", 2)])),
])

PREPROCESSOR_CONFIG = OrderedDict([
    ("anyres_strategy", "crop"),
    ("base_img_size", 64),
    ("num_crops", 4),
    ("image_mean", list(CLIP_MEAN)),
    ("image_std", list(CLIP_STD)),
    ("do_convert_rgb", True),
])

IMAGES = [("square", "square.png", 64, 64),
          ("wide", "wide.png", 150, 70),
          ("tall", "tall.png", 50, 120),
          ("big", "big.png", 200, 130)]
IMAGE_PROMPT = [1, 10, 11, 12, 500, 20, 21, 22, 23]
TEXT_PROMPT = [1, 30, 31, 32, 33, 34, 35]
STEPS = 6
MARGIN_MIN = 1e-2
BASE_SEED = 1234


def synth_image(w, h, seed):
    """Deterministic RGB uint8 image: gradients + shapes + a little noise."""
    import cv2
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 255.0 * xx / max(w - 1, 1)
    g = 255.0 * yy / max(h - 1, 1)
    b = 128.0 + 100.0 * np.sin(2 * np.pi * (xx / w + 0.5 * yy / h) * (1 + seed % 3))
    img = np.stack([r, g, b], axis=-1)
    img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    img = np.ascontiguousarray(img)
    cv2.circle(img, (int(w * 0.3), int(h * 0.4)), max(3, min(w, h) // 5), (250, 40, 30), -1)
    cv2.rectangle(img, (int(w * 0.55), int(h * 0.55)), (int(w * 0.85), int(h * 0.9)), (20, 200, 60), -1)
    cv2.line(img, (0, h - 1), (w - 1, 0), (255, 255, 255), 2)
    rs = np.random.RandomState(1000 + seed)
    noise = rs.randint(-6, 7, size=img.shape)
    return np.clip(img.astype(np.int32) + noise, 0, 255).astype(np.uint8)


def read_rgb(path):
    import cv2
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        raise IOError(path)
    return np.ascontiguousarray(bgr[:, :, ::-1])


def fixture_cases(out):
    cases = []
    for name, fn, _, _ in IMAGES:
        cases.append((name, fn, IMAGE_PROMPT, [read_rgb(os.path.join(out, fn))]))
    cases.append(("text", None, TEXT_PROMPT, []))
    return cases


def _setup_determinism():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)


def _write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def cmd_make_parity(args):
    import cv2
    _setup_determinism()
    out = args.out
    os.makedirs(out, exist_ok=True)
    cfg = Cfg(json.loads(json.dumps(TINY_CONFIG)))
    _write_json(os.path.join(out, "config.json"), TINY_CONFIG)
    _write_json(os.path.join(out, "preprocessor_config.json"), PREPROCESSOR_CONFIG)
    for i, (_, fn, w, h) in enumerate(IMAGES):
        rgb = synth_image(w, h, i)
        cv2.imwrite(os.path.join(out, fn), np.ascontiguousarray(rgb[:, :, ::-1]),
                    [cv2.IMWRITE_PNG_COMPRESSION, 9])
    cases = fixture_cases(out)

    # Pick a seed whose greedy steps are all unambiguous (fp32 and bf16 weights).
    chosen = None
    for seed in range(BASE_SEED, BASE_SEED + args.max_seeds):
        W = init_weights(cfg, seed)
        with torch.no_grad():
            res = {n: run_case(W, cfg, ids, imgs, STEPS) for n, _, ids, imgs in cases}
            Wb = round_bf16(W)
            n, _, ids, imgs = cases[0]
            resb = run_case(Wb, cfg, ids, imgs, STEPS)
        mm = min(min(r["min_margin"] for r in res.values()), resb["min_margin"])
        print("seed %d: min margin %.6f" % (seed, mm), file=sys.stderr)
        if mm > MARGIN_MIN:
            chosen = (seed, W, res, Wb, resb)
            break
    if chosen is None:
        raise SystemExit("no seed with margin > %g" % MARGIN_MIN)
    seed, W, res, Wb, resb = chosen

    save_safetensors(os.path.join(out, "model.safetensors"), W)

    meta = OrderedDict([("seed", seed), ("steps", STEPS), ("margin_threshold", MARGIN_MIN),
                        ("cases", OrderedDict())])
    for name, fn, ids, imgs in cases:
        r = res[name]
        t = OrderedDict()
        if imgs:
            t["pixel_values"] = r["pixel_values"][0]
            t["vision_features"] = r["vision_features"][0]
            t["image_features"] = r["image_features"][0]
        t["inputs_embeds"] = r["inputs_embeds"]
        t["logits"] = r["logits"]
        save_safetensors(os.path.join(out, "golden_%s.safetensors" % name), t)
        meta["cases"][name] = OrderedDict([
            ("image", fn), ("prompt_ids", ids),
            ("grid", list(r["grids"][0]) if imgs else None),
            ("generated", r["generated"]), ("min_margin", r["min_margin"])])

    # BF16 sharded variant.
    bdir = os.path.join(out, "model_bf16")
    os.makedirs(bdir, exist_ok=True)
    names = list(W.keys())
    half = len(names) // 2
    shards = [names[:half], names[half:]]
    wmap = OrderedDict()
    total = 0
    for si, chunk in enumerate(shards):
        sfn = "model-%05d-of-%05d.safetensors" % (si + 1, len(shards))
        total += save_safetensors(os.path.join(bdir, sfn),
                                  OrderedDict((k, W[k].to(torch.bfloat16)) for k in chunk))
        for k in chunk:
            wmap[k] = sfn
    _write_json(os.path.join(bdir, "model.safetensors.index.json"),
                OrderedDict([("metadata", {"total_size": total}),
                             ("weight_map", OrderedDict(sorted(wmap.items())))]))
    _write_json(os.path.join(bdir, "config.json"), TINY_CONFIG)
    _write_json(os.path.join(bdir, "preprocessor_config.json"), PREPROCESSOR_CONFIG)
    save_safetensors(os.path.join(out, "golden_bf16_square.safetensors"),
                     OrderedDict([("logits", resb["logits"])]))
    meta["bf16"] = OrderedDict([("square", OrderedDict([
        ("weights", "model_bf16"), ("image", "square.png"), ("prompt_ids", IMAGE_PROMPT),
        ("grid", list(resb["grids"][0])), ("generated", resb["generated"]),
        ("min_margin", resb["min_margin"])]))])
    _write_json(os.path.join(out, "golden.json"), meta)
    print("seed %d written to %s" % (seed, out))
    for name in meta["cases"]:
        c = meta["cases"][name]
        print("  %-7s grid=%s generated=%s min_margin=%.4f" % (name, c["grid"], c["generated"], c["min_margin"]))
    b = meta["bf16"]["square"]
    print("  bf16    grid=%s generated=%s min_margin=%.4f" % (b["grid"], b["generated"], b["min_margin"]))


def cmd_verify(args):
    """Reload the fixture from disk and recompute every golden."""
    _setup_determinism()
    d = args.dir
    cfg = Cfg.load(os.path.join(d, "config.json"))
    with open(os.path.join(d, "golden.json")) as f:
        meta = json.load(f)
    W = load_checkpoint(d)
    ok = True
    with torch.no_grad():
        for name, c in meta["cases"].items():
            imgs = [read_rgb(os.path.join(d, c["image"]))] if c["image"] else []
            r = run_case(W, cfg, c["prompt_ids"], imgs, len(c["generated"]))
            g = load_safetensors(os.path.join(d, "golden_%s.safetensors" % name))
            diffs = {"logits": float((r["logits"] - g["logits"]).abs().max()),
                     "inputs_embeds": float((r["inputs_embeds"] - g["inputs_embeds"]).abs().max())}
            if imgs:
                for k in ("pixel_values", "vision_features", "image_features"):
                    diffs[k] = float((r[k][0] - g[k]).abs().max())
            # cached decode must agree with recompute
            cl, cg = generate_cached(W, cfg, r["inputs_embeds"], len(c["generated"]))
            diffs["cache_vs_recompute"] = float((cl - r["logits"]).abs().max())
            good = r["generated"] == c["generated"] and max(diffs.values()) < 1e-4
            ok &= good
            print("%-7s %s gen=%s %s" % (name, "OK " if good else "BAD", r["generated"],
                                         " ".join("%s=%.2e" % kv for kv in diffs.items())))
        Wb = load_checkpoint(os.path.join(d, "model_bf16"))
        Wr = round_bf16(W)
        wd = max(float((Wb[k] - Wr[k]).abs().max()) for k in Wr)
        b = meta["bf16"]["square"]
        r = run_case(Wb, cfg, b["prompt_ids"], [read_rgb(os.path.join(d, b["image"]))], len(b["generated"]))
        g = load_safetensors(os.path.join(d, "golden_bf16_square.safetensors"))
        dl = float((r["logits"] - g["logits"]).abs().max())
        good = r["generated"] == b["generated"] and dl < 1e-4 and wd == 0.0
        ok &= good
        print("bf16    %s gen=%s logits=%.2e weights=%.2e" % ("OK " if good else "BAD", r["generated"], dl, wd))
    if not ok:
        raise SystemExit(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("make-parity")
    p.add_argument("--out", default="model/testdata/parity")
    p.add_argument("--max-seeds", type=int, default=200)
    p.set_defaults(fn=cmd_make_parity)
    p = sub.add_parser("verify")
    p.add_argument("--dir", default="model/testdata/parity")
    p.set_defaults(fn=cmd_verify)
    args = ap.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
