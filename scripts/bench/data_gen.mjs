// Benchmark data for `make bench-data` in the published layouts, larger
// than the test fixtures: Video-ToM-like shards (IPC stream, CoTracker grid
// 15 traces of 16 steps), OXE-ToM-like shards (IPC file format, [1,T,N,2]
// traces in 256x256 and a PNG frame per row), a Mind2Web-SoM-like Parquet
// file (screenshot PNG + conversation), and an RLDS LIBERO-like dataset
// (TFRecord with masked CRC32C, tf.train.Example episodes, PNG frames).
// Writers: npm apache-arrow, parquet-wasm; TFRecord/protobuf by hand.
//   NODE_PATH=.../node_modules node scripts/bench/data_gen.mjs OUT [SCALE]
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { createRequire } from "node:module";
const require = createRequire(import.meta.url);
const A = require("apache-arrow");
const PQ = require("parquet-wasm/node");

const out = process.argv[2];
const scale = Number(process.argv[3] || 1);
fs.mkdirSync(out, { recursive: true });
let seed = 99;
const rnd = () => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed / 0x7fffffff; };

function png(w, h, s) {
  const raw = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const o = y * (w * 3 + 1) + 1 + x * 3;
    raw[o] = (x * 3 + s * 7) & 255; raw[o + 1] = (y * 5 + s) & 255; raw[o + 2] = ((x ^ y) + s * 13) & 255;
  }
  const chunk = (t, d) => { const l = Buffer.alloc(4); l.writeUInt32BE(d.length); const td = Buffer.concat([Buffer.from(t), d]); const c = Buffer.alloc(4); c.writeUInt32BE(zlib.crc32(td) >>> 0); return Buffer.concat([l, td, c]); };
  const ih = Buffer.alloc(13); ih.writeUInt32BE(w, 0); ih.writeUInt32BE(h, 4); ih[8] = 8; ih[9] = 2;
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk("IHDR", ih), chunk("IDAT", zlib.deflateSync(raw, { level: 1 })), chunk("IEND", Buffer.alloc(0))]);
}
const utf8 = new A.Utf8();
const listOf = (t) => new A.List(new A.Field("item", t, true));
const imageType = new A.Struct([new A.Field("bytes", new A.Binary(), true), new A.Field("path", utf8, true)]);
function batches(schema, rows, per) {
  const out = [];
  for (let i = 0; i < rows.length; i += per) {
    const part = rows.slice(i, i + per);
    const data = A.makeData({ type: new A.Struct(schema.fields), length: part.length,
      children: schema.fields.map((f) => A.vectorFromArray(part.map((r) => r[f.name]), f.type).data[0]) });
    out.push(new A.RecordBatch(schema, data));
  }
  return out;
}
function write(file, schema, rows, per, Writer) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const w = new Writer(); w.reset(undefined, schema);
  for (const b of batches(schema, rows, per)) w.write(b);
  w.finish(); fs.writeFileSync(file, w.toUint8Array(true));
}
const T = 16, G = 15, N = G * G;
function trace(w, h, batchDim) {
  const tr = [], vis = [];
  const mv = new Set([100, 101, 115, 116]);
  for (let t = 0; t < T; t++) {
    const r = [], v = [];
    for (let n = 0; n < N; n++) {
      const x = (n % G + 0.5) * w / G + (mv.has(n) ? 3 * t : rnd() - 0.5), y = (Math.floor(n / G) + 0.5) * h / G + (mv.has(n) ? 2 * t : rnd() - 0.5);
      r.push([x, y]); v.push(rnd() > 0.05);
    }
    tr.push(r); vis.push(v);
  }
  return batchDim ? { trace: [tr], trace_visibility: [vis] } : { trace: tr, trace_visibility: vis };
}
const counts = {};

// Video-ToM-like: 4 shards x 500*scale rows, writer batches of 100, frames in a folder
const vSchema = new A.Schema([new A.Field("dataset_name", utf8), new A.Field("video_name", utf8), new A.Field("task_string", utf8),
  new A.Field("frame_index", new A.Int64()), new A.Field("trace", listOf(listOf(listOf(new A.Float32())))), new A.Field("trace_visibility", listOf(listOf(new A.Bool())))]);
const vdir = path.join(out, "video_tom");
for (let v = 0; v < 8; v++) {
  const d = path.join(vdir, "videos", "clip" + v); fs.mkdirSync(d, { recursive: true });
  for (let f = 0; f < 4; f++) fs.writeFileSync(path.join(d, String(f).padStart(6, "0") + ".png"), png(256, 192, v * 4 + f));
}
counts.video_tom = 0;
for (let s = 0; s < 4; s++) {
  const rows = [];
  for (let i = 0; i < 500 * scale; i++) rows.push({ dataset_name: "ego4d", video_name: "clip" + (i % 8), task_string: "C picks up the cup " + i, frame_index: BigInt(i % 4), ...trace(256, 192, false) });
  write(path.join(vdir, "ego4d", `shard_${s}.arrow`), vSchema, rows, 100, A.RecordBatchStreamWriter);
  counts.video_tom += rows.length;
}
// OXE-ToM-like: 2 shards x 300*scale rows, file format, PNG frame per row
const oSchema = new A.Schema([new A.Field("dataset_name", utf8), new A.Field("traj_index", new A.Int64()), new A.Field("frame_index", new A.Int64()),
  new A.Field("lang", utf8), new A.Field("action", new A.FixedSizeList(7, new A.Field("item", new A.Float32()))), new A.Field("image", imageType),
  new A.Field("trace", listOf(listOf(listOf(listOf(new A.Float32()))))), new A.Field("trace_visibility", listOf(listOf(listOf(new A.Bool()))))]);
const frames = Array.from({ length: 16 }, (_, i) => png(256, 256, 100 + i));
counts.oxe_tom = 0;
for (let s = 0; s < 2; s++) {
  const rows = [];
  for (let i = 0; i < 300 * scale; i++) rows.push({ dataset_name: "bridge_orig", traj_index: BigInt(i >> 4), frame_index: BigInt(i & 15), lang: "put the spoon in the pot",
    action: Array.from({ length: 7 }, () => rnd() * 2 - 1), image: { bytes: frames[i & 15], path: null }, ...trace(256, 256, true) });
  write(path.join(out, "oxe_tom", "bridge_orig", `shard_${80 + s}.arrow`), oSchema, rows, 100, A.RecordBatchFileWriter);
  counts.oxe_tom += rows.length;
}
// Mind2Web-SoM-like Parquet (Hub conversion layout), row groups of 100
const sSchema = new A.Schema([new A.Field("id", utf8), new A.Field("image", imageType),
  new A.Field("conversations", listOf(new A.Struct([new A.Field("from", utf8), new A.Field("value", utf8)])))]);
const shots = Array.from({ length: 16 }, (_, i) => png(320, 240, 200 + i));
const sRows = [];
for (let i = 0; i < 600 * scale; i++) sRows.push({ id: "m2w_" + i, image: { bytes: shots[i & 15], path: null }, conversations: [
  { from: "human", value: "<image>\nYou are asked to complete the following task: find store " + i + ". For your convinience, I have labeled the candidates with numeric marks and bounding boxes on the screenshot. What is the next action you would take?" },
  { from: "gpt", value: `{"ACTION": "CLICK", "MARK": ${i % 30}, "VALUE": "None"}` }] });
{
  const ipc = A.tableToIPC(new A.Table(batches(sSchema, sRows, 100)), "stream");
  const props = new PQ.WriterPropertiesBuilder().setMaxRowGroupSize(100).setCompression(PQ.Compression.SNAPPY).build();
  fs.mkdirSync(path.join(out, "mind2web_som", "data"), { recursive: true });
  fs.writeFileSync(path.join(out, "mind2web_som", "data", "train-00000-of-00001.parquet"), PQ.writeParquet(PQ.Table.fromIPCStream(ipc), props));
  counts.mind2web_som = sRows.length;
}
// RLDS LIBERO-like: 4 shards, 40*scale episodes of 50 steps, two 128px PNG cameras
const CT = new Uint32Array(256);
for (let i = 0; i < 256; i++) { let c = i; for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1; CT[i] = c >>> 0; }
const crc32c = (b) => { let c = 0xffffffff; for (let i = 0; i < b.length; i++) c = CT[(c ^ b[i]) & 255] ^ (c >>> 8); return (c ^ 0xffffffff) >>> 0; };
const masked = (b) => ((((crc32c(b) >>> 15) | (crc32c(b) << 17)) >>> 0) + 0xa282ead8) >>> 0;
const varint = (n) => { const o = []; n = BigInt(n); do { let b = Number(n & 0x7fn); n >>= 7n; o.push(n ? b | 0x80 : b); } while (n); return Buffer.from(o); };
const ld = (f, d) => Buffer.concat([varint((f << 3) | 2), varint(d.length), d]);
const feature = (kind, vals) => {
  if (kind === "bytes") return ld(1, Buffer.concat(vals.map((v) => ld(1, v))));
  if (kind === "float") { const b = Buffer.alloc(4 * vals.length); vals.forEach((v, i) => b.writeFloatLE(v, 4 * i)); return ld(2, ld(1, b)); }
  return ld(3, ld(1, Buffer.concat(vals.map(varint))));
};
const example = (feats) => ld(1, Buffer.concat(feats.sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([k, kind, v]) => ld(1, Buffer.concat([ld(1, Buffer.from(k)), ld(2, feature(kind, v))])))));
const rec = (p) => { const h = Buffer.alloc(8); h.writeBigUInt64LE(BigInt(p.length)); const c1 = Buffer.alloc(4); c1.writeUInt32LE(masked(h)); const c2 = Buffer.alloc(4); c2.writeUInt32LE(masked(p)); return Buffer.concat([h, c1, p, c2]); };
const rdir = path.join(out, "libero_spatial_no_noops", "1.0.0");
fs.mkdirSync(rdir, { recursive: true });
const cams = Array.from({ length: 32 }, (_, i) => png(128, 128, 300 + i));
const nsh = 4, eps = 40 * scale, St = 50, lengths = [];
let nbytes = 0;
counts.rlds_episodes = eps; counts.rlds_steps = eps * St;
for (let s = 0; s < nsh; s++) {
  const parts = [];
  let n = 0;
  for (let e = s; e < eps; e += nsh, n++) {
    const act = [], st = [];
    for (let t = 0; t < St; t++) { for (let d = 0; d < 7; d++) act.push(d === 6 ? (rnd() < 0.5 ? -1 : 1) : rnd() - 0.5); for (let d = 0; d < 8; d++) st.push(rnd()); }
    parts.push(rec(example([
      ["steps/observation/image", "bytes", Array.from({ length: St }, (_, t) => cams[(e + t) & 31])],
      ["steps/observation/wrist_image", "bytes", Array.from({ length: St }, (_, t) => cams[(e + t + 7) & 31])],
      ["steps/observation/state", "float", st], ["steps/action", "float", act],
      ["steps/reward", "float", Array.from({ length: St }, (_, t) => (t === St - 1 ? 1 : 0))],
      ["steps/discount", "float", Array(St).fill(1)],
      ["steps/is_first", "int64", Array.from({ length: St }, (_, t) => (t === 0 ? 1 : 0))],
      ["steps/is_last", "int64", Array.from({ length: St }, (_, t) => (t === St - 1 ? 1 : 0))],
      ["steps/is_terminal", "int64", Array.from({ length: St }, (_, t) => (t === St - 1 ? 1 : 0))],
      ["steps/language_instruction", "bytes", Array(St).fill(Buffer.from("pick up the black bowl and place it on the plate"))],
      ["episode_metadata/file_path", "bytes", [Buffer.from("/libero/" + e + ".hdf5")]],
    ])));
  }
  const data = Buffer.concat(parts);
  nbytes += data.length;
  fs.writeFileSync(path.join(rdir, `libero_spatial-train.tfrecord-${String(s).padStart(5, "0")}-of-${String(nsh).padStart(5, "0")}`), data);
  lengths.push(String(n));
}
fs.writeFileSync(path.join(rdir, "dataset_info.json"), JSON.stringify({ fileFormat: "tfrecord", name: "libero_spatial", version: "1.0.0",
  splits: [{ filepathTemplate: "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}", name: "train", numBytes: String(nbytes), shardLengths: lengths }] }));
const img = (fmt) => ({ pythonClassName: "tensorflow_datasets.core.features.image_feature.Image", image: { shape: { dimensions: ["128", "128", "3"] }, dtype: "uint8", encodingFormat: fmt } });
const ten = (d) => ({ pythonClassName: "tensorflow_datasets.core.features.tensor_feature.Tensor", tensor: { shape: { dimensions: d }, dtype: "float32", encoding: "none" } });
const sc = (dt) => ({ pythonClassName: "tensorflow_datasets.core.features.scalar.Scalar", tensor: { shape: {}, dtype: dt, encoding: "none" } });
const fd = (f) => ({ pythonClassName: "tensorflow_datasets.core.features.features_dict.FeaturesDict", featuresDict: { features: f } });
fs.writeFileSync(path.join(rdir, "features.json"), JSON.stringify(fd({
  steps: { pythonClassName: "tensorflow_datasets.core.features.dataset_feature.Dataset", sequence: { length: "-1", feature: fd({
    observation: fd({ image: img("png"), wrist_image: img("png"), state: ten(["8"]) }), action: ten(["7"]), reward: sc("float32"), discount: sc("float32"),
    is_first: sc("bool"), is_last: sc("bool"), is_terminal: sc("bool"), language_instruction: { pythonClassName: "tensorflow_datasets.core.features.text_feature.Text", text: {} } }) } },
  episode_metadata: fd({ file_path: { pythonClassName: "tensorflow_datasets.core.features.text_feature.Text", text: {} } }) })));
fs.writeFileSync(path.join(out, "counts.json"), JSON.stringify(counts));
console.log(JSON.stringify(counts));
