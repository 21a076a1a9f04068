#!/usr/bin/python3
"""Writes small RLDS fixtures in the published TFDS layouts, independently of
the Go code: TFRecord framing with Python's struct and a table CRC32C,
tf.train.Example serialised by a few lines of protobuf wire encoding,
JPEG frames from PIL, dataset_info.json / features.json as TFDS writes them.
It also writes golden JSON: the trajectories OpenVLA's standardisation
transforms produce (prismatic/vla/datasets/rlds/oxe/transforms.py,
re-implemented here with numpy) and the statistics of
get_dataset_statistics (numpy mean/std/min/max/quantile).

Usage: /usr/bin/python3 scripts/data/make_rlds_fixtures.py data/rlds/testdata
Needs python3-numpy and python3-pil (make setup-ref).
"""
import io, json, os, struct, sys

import numpy as np
from PIL import Image

# --- CRC32C (Castagnoli, reflected polynomial 0x82F63B78) ---
_T = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    _T.append(c)


def crc32c(b):
    c = 0xFFFFFFFF
    for x in b:
        c = _T[(c ^ x) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def masked(b):
    c = crc32c(b)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def tfrecord(payload):
    hdr = struct.pack("<Q", len(payload))
    return hdr + struct.pack("<I", masked(hdr)) + payload + struct.pack("<I", masked(payload))


# --- protobuf wire format of tensorflow/core/example/{example,feature}.proto ---
def varint(n):
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def ld(field, data):
    return varint(field << 3 | 2) + varint(len(data)) + data


def feature(kind, values):
    if kind == "bytes":
        lst = b"".join(ld(1, v) for v in values)
        return ld(1, lst)
    if kind == "float":
        return ld(2, ld(1, struct.pack("<%df" % len(values), *values)))
    if kind == "int64":
        return ld(3, ld(1, b"".join(varint(int(v)) for v in values)))
    raise ValueError(kind)


def example(feats):
    """feats: list of (key, kind, values) in TFDS's order (sorted keys)."""
    body = b""
    for key, kind, values in sorted(feats, key=lambda f: f[0]):
        entry = ld(1, key.encode()) + ld(2, feature(kind, values))
        body += ld(1, entry)
    return ld(1, body)


# --- TFDS metadata ---
def tensor(shape, dtype):
    return {"pythonClassName": "tensorflow_datasets.core.features.tensor_feature.Tensor",
            "tensor": {"shape": {"dimensions": [str(d) for d in shape]} if shape else {}, "dtype": dtype, "encoding": "none"}}


def scalar(dtype):
    return {"pythonClassName": "tensorflow_datasets.core.features.scalar.Scalar",
            "tensor": {"shape": {}, "dtype": dtype, "encoding": "none"}}


def image(shape, fmt="jpeg"):
    return {"pythonClassName": "tensorflow_datasets.core.features.image_feature.Image",
            "image": {"shape": {"dimensions": [str(d) for d in shape]}, "dtype": "uint8", "encodingFormat": fmt}}


def text():
    return {"pythonClassName": "tensorflow_datasets.core.features.text_feature.Text", "text": {}}


def fdict(d):
    return {"pythonClassName": "tensorflow_datasets.core.features.features_dict.FeaturesDict",
            "featuresDict": {"features": d}}


def steps(d):
    return {"pythonClassName": "tensorflow_datasets.core.features.dataset_feature.Dataset",
            "sequence": {"feature": fdict(d), "length": "-1"}}


def write_dataset(root, dirname, version, builder, features, episodes_per_shard):
    d = os.path.join(root, dirname, version)
    os.makedirs(d, exist_ok=True)
    n = len(episodes_per_shard)
    lengths, nbytes = [], 0
    for i, eps in enumerate(episodes_per_shard):
        name = "%s-train.tfrecord-%05d-of-%05d" % (builder, i, n)
        data = b"".join(tfrecord(example(e)) for e in eps)
        nbytes += len(data)
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
        lengths.append(str(len(eps)))
    info = {"citation": "", "description": "fixture", "fileFormat": "tfrecord", "moduleName": builder + "." + builder + "_dataset_builder",
            "name": builder, "releaseNotes": {version: "fixture"},
            "splits": [{"filepathTemplate": "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}", "name": "train",
                        "numBytes": str(nbytes), "shardLengths": lengths}], "version": version}
    with open(os.path.join(d, "dataset_info.json"), "w") as f:
        json.dump(info, f, indent=4)
    with open(os.path.join(d, "features.json"), "w") as f:
        json.dump(fdict(features), f, indent=4)
    return d


def jpeg(rng, size, seed):
    y, x = np.mgrid[0:size, 0:size]
    img = np.stack([(x * 4 + seed * 17) % 256, (y * 4 + seed * 5) % 256, ((x + y) * 2 + seed * 29) % 256], -1).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=70)
    return buf.getvalue()


def flags(T):
    first = [1] + [0] * (T - 1)
    last = [0] * (T - 1) + [1]
    return first, last


# --- OpenVLA transforms (numpy re-implementation) ---
def rel2abs(a):
    th = np.where(a < -0.1, 1, np.where(a > 0.1, -1, 0))
    nz = np.nonzero(th)[0]
    start = -th[nz[0]] if len(nz) else 0
    carry = 1 if start == 0 else start
    out = []
    for v in th:
        if v != 0:
            carry = v
        out.append(carry)
    return np.array(out, np.float32) / 2 + 0.5


def binarize(a):
    carry = a[-1]
    out = np.empty_like(a)
    for i in reversed(range(len(a))):
        if a[i] > 0.95:
            carry = 1.0
        elif a[i] < 0.05:
            carry = 0.0
        out[i] = carry
    return out


def stats(actions):
    a = np.concatenate(actions).astype(np.float32)
    p = np.zeros_like(a)
    def one(x):
        return {"mean": x.mean(0).tolist(), "std": x.std(0).tolist(), "max": x.max(0).tolist(), "min": x.min(0).tolist(),
                "q01": np.quantile(x, 0.01, axis=0).tolist(), "q99": np.quantile(x, 0.99, axis=0).tolist()}
    return {"action": one(a), "proprio": one(p), "num_transitions": int(a.shape[0]), "num_trajectories": len(actions)}


def f32(x):
    return np.asarray(x, np.float32)


def main(root):
    rng = np.random.default_rng(7)
    golden = {}

    # LIBERO spatial (OpenVLA's modified release): builder libero_spatial, 2 shards
    lib_feats = {
        "steps": steps({
            "observation": fdict({"image": image((64, 64, 3)), "wrist_image": image((64, 64, 3)),
                                  "state": tensor((8,), "float32"), "joint_state": tensor((7,), "float32")}),
            "action": tensor((7,), "float32"), "discount": scalar("float32"), "reward": scalar("float32"),
            "is_first": scalar("bool"), "is_last": scalar("bool"), "is_terminal": scalar("bool"),
            "language_instruction": text()}),
        "episode_metadata": fdict({"file_path": text()}),
    }
    shards, trajs, acts = [], [], []
    instr = ["pick up the black bowl next to the cookie box and place it on the plate",
             "pick up the black bowl on the ramekin and place it on the plate",
             "pick up the black bowl between the plate and the ramekin and place it on the plate"]
    seed = 0
    for s, lens in enumerate([[5, 6], [4]]):
        eps = []
        for T in lens:
            a = f32(rng.uniform(-0.9, 0.9, (T, 7)))
            a[:, 6] = np.where(rng.uniform(size=T) < 0.5, -1.0, 1.0)
            st = f32(rng.normal(size=(T, 8)))
            js = f32(rng.normal(size=(T, 7)))
            first, last = flags(T)
            lang = instr[seed % 3]
            imgs = [jpeg(rng, 64, seed * 10 + t) for t in range(T)]
            wr = [jpeg(rng, 64, seed * 10 + t + 100) for t in range(T)]
            eps.append([
                ("steps/observation/image", "bytes", imgs), ("steps/observation/wrist_image", "bytes", wr),
                ("steps/observation/state", "float", st.ravel().tolist()), ("steps/observation/joint_state", "float", js.ravel().tolist()),
                ("steps/action", "float", a.ravel().tolist()), ("steps/discount", "float", [1.0] * T),
                ("steps/reward", "float", [0.0] * (T - 1) + [1.0]), ("steps/is_first", "int64", first),
                ("steps/is_last", "int64", last), ("steps/is_terminal", "int64", last),
                ("steps/language_instruction", "bytes", [lang.encode()] * T),
                ("episode_metadata/file_path", "bytes", [("/data/libero_spatial/%s_demo.hdf5" % lang.replace(" ", "_")).encode()]),
            ])
            std = np.concatenate([a[:, :6], 1 - np.clip(a[:, -1:], 0, 1)], -1)
            trajs.append({"action": std.tolist(), "instruction": [lang] * T, "steps": list(range(T))})
            acts.append(std)
            seed += 1
        shards.append(eps)
    write_dataset(root, "libero_spatial_no_noops", "1.0.0", "libero_spatial", lib_feats, shards)
    golden["libero_spatial_no_noops"] = {"trajectories": trajs, "statistics": stats(acts)}

    # fractal20220817_data (RT-1): dict actions, instruction inside observation
    fr_feats = {
        "steps": steps({
            "action": fdict({"world_vector": tensor((3,), "float32"), "rotation_delta": tensor((3,), "float32"),
                             "gripper_closedness_action": tensor((1,), "float32"), "terminate_episode": tensor((3,), "int32"),
                             "base_displacement_vector": tensor((2,), "float32"), "base_displacement_vertical_rotation": tensor((1,), "float32")}),
            "observation": fdict({"image": image((64, 80, 3)), "natural_language_instruction": text(),
                                  "base_pose_tool_reached": tensor((7,), "float32"), "gripper_closed": tensor((1,), "float32")}),
            "is_first": scalar("bool"), "is_last": scalar("bool"), "is_terminal": scalar("bool"), "reward": scalar("float32")}),
    }
    eps, trajs, acts = [], [], []
    for e, (T, g) in enumerate([(6, [0, 0, 0.8, 0, -0.9, 0]), (5, [0, 0, 0, 0, 0]), (5, [-0.5, 0.05, 0.5, 0, 0])]):
        wv = f32(rng.uniform(-0.05, 0.05, (T, 3)))
        rd = f32(rng.uniform(-0.2, 0.2, (T, 3)))
        g = f32(g)
        first, last = flags(T)
        lang = ["pick coke can", "move blue chip bag near sponge", "open middle drawer"][e]
        eps.append([
            ("steps/action/world_vector", "float", wv.ravel().tolist()), ("steps/action/rotation_delta", "float", rd.ravel().tolist()),
            ("steps/action/gripper_closedness_action", "float", g.tolist()), ("steps/action/terminate_episode", "int64", [0, 1, 0] * T),
            ("steps/action/base_displacement_vector", "float", [0.0] * 2 * T), ("steps/action/base_displacement_vertical_rotation", "float", [0.0] * T),
            ("steps/observation/image", "bytes", [jpeg(rng, 64, 50 + e * 10 + t) for t in range(T)]),
            ("steps/observation/natural_language_instruction", "bytes", [lang.encode()] * T),
            ("steps/observation/base_pose_tool_reached", "float", f32(rng.normal(size=(T, 7))).ravel().tolist()),
            ("steps/observation/gripper_closed", "float", [0.0] * T),
            ("steps/is_first", "int64", first), ("steps/is_last", "int64", last), ("steps/is_terminal", "int64", last),
            ("steps/reward", "float", [0.0] * (T - 1) + [1.0]),
        ])
        std = np.concatenate([wv, rd, rel2abs(g)[:, None]], -1).astype(np.float32)
        trajs.append({"action": std.tolist(), "instruction": [lang] * T, "steps": list(range(T))})
        acts.append(std)
    write_dataset(root, "fractal20220817_data", "0.1.0", "fractal20220817_data", fr_feats, [eps])
    golden["fractal20220817_data"] = {"trajectories": trajs, "statistics": stats(acts)}

    # bridge_orig: folder renamed as OpenVLA asks, builder bridge_dataset
    br_feats = {
        "steps": steps({
            "observation": fdict({"image_0": image((64, 64, 3)), "image_1": image((64, 64, 3)), "image_2": image((64, 64, 3)),
                                  "image_3": image((64, 64, 3)), "state": tensor((7,), "float32")}),
            "action": tensor((7,), "float32"), "discount": scalar("float32"), "reward": scalar("float32"),
            "is_first": scalar("bool"), "is_last": scalar("bool"), "is_terminal": scalar("bool"),
            "language_instruction": text(), "language_embedding": tensor((4,), "float32")}),
        "episode_metadata": fdict({"file_path": text(), "episode_id": scalar("int32"),
                                   "has_image_0": scalar("bool"), "has_image_1": scalar("bool"), "has_image_2": scalar("bool"),
                                   "has_image_3": scalar("bool"), "has_language": scalar("bool")}),
    }
    eps, trajs, acts = [], [], []
    for e, T in enumerate([7, 5]):
        a = f32(rng.uniform(-0.1, 0.1, (T, 7)))
        a[0] = 0
        a[:, 6] = f32([1.0, 1.0, 0.5, 0.02, 0.3, 0.99, 0.6][:T])
        st = f32(rng.normal(size=(T, 7)))
        first, last = flags(T)
        lang = ["put the spoon in the pot", "wipe the table"][e]
        imgs = {k: [jpeg(rng, 64, 200 + e * 40 + t + 10 * j) for t in range(T)] for j, k in enumerate(["image_0", "image_1", "image_2", "image_3"])}
        eps.append([("steps/observation/" + k, "bytes", v) for k, v in imgs.items()] + [
            ("steps/observation/state", "float", st.ravel().tolist()), ("steps/action", "float", a.ravel().tolist()),
            ("steps/discount", "float", [1.0] * T), ("steps/reward", "float", [0.0] * (T - 1) + [1.0]),
            ("steps/is_first", "int64", first), ("steps/is_last", "int64", last), ("steps/is_terminal", "int64", last),
            ("steps/language_instruction", "bytes", [lang.encode()] * T), ("steps/language_embedding", "float", [0.0] * 4 * T),
            ("episode_metadata/file_path", "bytes", [b"/bridge/raw/%d" % e]), ("episode_metadata/episode_id", "int64", [e]),
            ("episode_metadata/has_image_0", "int64", [1]), ("episode_metadata/has_image_1", "int64", [1]),
            ("episode_metadata/has_image_2", "int64", [1]), ("episode_metadata/has_image_3", "int64", [1]),
            ("episode_metadata/has_language", "int64", [1]),
        ])
        # bridge_orig_dataset_transform + relabel_bridge_actions
        a2, st2 = a[1:], st[1:]
        act = np.concatenate([a2[:, :6], binarize(a2[:, -1])[:, None]], 1)
        mov = st2[1:, :6] - st2[:-1, :6]
        std = np.concatenate([mov, act[:-1, -1:]], 1).astype(np.float32)
        n = len(std)
        trajs.append({"action": std.tolist(), "instruction": [lang] * n, "steps": list(range(1, n + 1))})
        acts.append(std)
    write_dataset(root, "bridge_orig", "1.0.0", "bridge_dataset", br_feats, [eps])
    golden["bridge_orig"] = {"trajectories": trajs, "statistics": stats(acts)}

    # corrupt copy of the LIBERO shard 0: one payload byte of record 1 flipped
    src = os.path.join(root, "libero_spatial_no_noops", "1.0.0")
    bad = os.path.join(root, "corrupt", "libero_spatial_no_noops", "1.0.0")
    os.makedirs(bad, exist_ok=True)
    for name in os.listdir(src):
        data = bytearray(open(os.path.join(src, name), "rb").read())
        if name.endswith("00000-of-00002"):
            (l0,) = struct.unpack("<Q", data[:8])
            off1 = 12 + l0 + 4
            data[off1 + 12 + 100] ^= 0xFF
        open(os.path.join(bad, name), "wb").write(bytes(data))

    with open(os.path.join(root, "golden.json"), "w") as f:
        json.dump(golden, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "data/rlds/testdata")
