// Writes small fixtures of Magma's Hugging Face datasets in their published
// layouts with independent tools: npm `apache-arrow` (Arrow IPC stream and
// file writers, the format `datasets` writes) and npm `parquet-wasm` (the
// Rust parquet writer, for the Hub's converted Parquet form). PNG frames are
// encoded here with node's zlib. Golden JSON holds what each row decodes to
// (the item the official code would build from it).
//
// Usage (needs the two npm packages, e.g. `npm install apache-arrow@21.2.0
// parquet-wasm@0.8.0` in a scratch folder, run with NODE_PATH pointing at
// its node_modules):
//   NODE_PATH=/tmp/npmfix/node_modules node scripts/data/make_hf_fixtures.mjs data/hf/testdata
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import crypto from "node:crypto";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const A = require("apache-arrow");
const PQ = require("parquet-wasm/node");

const root = process.argv[2] || "data/hf/testdata";
fs.rmSync(root, { recursive: true, force: true });
fs.mkdirSync(root, { recursive: true });

// --- deterministic random numbers (mulberry32) ---
let seed = 12345;
function rnd() {
  seed |= 0; seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

// --- PNG encoder (RGB, filter 0) ---
function png(w, h, px) {
  const raw = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y++) {
    raw[y * (w * 3 + 1)] = 0;
    for (let x = 0; x < w; x++) {
      const [r, g, b] = px(x, y);
      const o = y * (w * 3 + 1) + 1 + x * 3;
      raw[o] = r; raw[o + 1] = g; raw[o + 2] = b;
    }
  }
  const chunk = (type, data) => {
    const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type), data]);
    const crc = Buffer.alloc(4); crc.writeUInt32BE(zlib.crc32(td) >>> 0);
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; ihdr[9] = 2; ihdr[10] = 0; ihdr[11] = 0; ihdr[12] = 0;
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk("IHDR", ihdr),
    chunk("IDAT", zlib.deflateSync(raw)), chunk("IEND", Buffer.alloc(0))]);
}
const texture = (s) => (x, y) => [(x * 7 + y * 3 + s * 40) % 256, (x * 2 + y * 9 + s * 11) % 256, ((x ^ y) * 5 + s * 23) % 256];
const sha = (b) => crypto.createHash("sha256").update(b).digest("hex");

// --- Arrow helpers ---
const utf8 = new A.Utf8();
const imageType = new A.Struct([new A.Field("bytes", new A.Binary(), true), new A.Field("path", utf8, true)]);
const turnType = new A.Struct([new A.Field("from", utf8, true), new A.Field("value", utf8, true)]);
const listOf = (t) => new A.List(new A.Field("item", t, true));

function hfMeta(features) {
  // datasets stores its Features as JSON in the schema metadata key "huggingface"
  return new Map([["huggingface", JSON.stringify({ info: { features } })]]);
}

function batches(schema, rows, perBatch) {
  const out = [];
  for (let i = 0; i < rows.length; i += perBatch) {
    const part = rows.slice(i, i + perBatch);
    const cols = {};
    for (const f of schema.fields) {
      cols[f.name] = A.vectorFromArray(part.map((r) => r[f.name]), f.type);
    }
    const data = A.makeData({ type: new A.Struct(schema.fields), length: part.length, children: schema.fields.map((f) => cols[f.name].data[0]) });
    out.push(new A.RecordBatch(schema, data));
  }
  return out;
}

function writeStream(file, schema, rows, perBatch) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const w = new A.RecordBatchStreamWriter();
  w.reset(undefined, schema);
  for (const b of batches(schema, rows, perBatch)) w.write(b);
  w.finish();
  fs.writeFileSync(file, w.toUint8Array(true));
}

function writeFile(file, schema, rows, perBatch) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const w = new A.RecordBatchFileWriter();
  w.reset(undefined, schema);
  for (const b of batches(schema, rows, perBatch)) w.write(b);
  w.finish();
  fs.writeFileSync(file, w.toUint8Array(true));
}

function writeParquet(file, schema, rows, perGroup) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const t = new A.Table(batches(schema, rows, perGroup));
  const ipc = A.tableToIPC(t, "stream");
  const props = new PQ.WriterPropertiesBuilder().setMaxRowGroupSize(perGroup).setCompression(PQ.Compression.SNAPPY).build();
  fs.writeFileSync(file, PQ.writeParquet(PQ.Table.fromIPCStream(ipc), props));
}

const golden = {};

// ===== Mind2Web-SoM (save_to_disk layout) and AITW-SoM (Hub parquet) =====
const somFeatures = {
  id: { dtype: "string", _type: "Value" },
  image: { _type: "Image" },
  conversations: [{ from: { dtype: "string", _type: "Value" }, value: { dtype: "string", _type: "Value" } }],
};
const somSchema = new A.Schema([new A.Field("id", utf8, true), new A.Field("image", imageType, true),
  new A.Field("conversations", listOf(turnType), true)], hfMeta(somFeatures));
const m2wPrompt = (task, prev) => "<image>\nImagine that you are imitating humans doing web navigation for a task step by step. At each stage, you can see the webpage like humans by a screenshot and know the previous actions before the current step decided by yourself through recorded history. You need to decide on the first following action to take. You can click an element with the mouse, select an option, or type text with the keyboard. The output format should be a dictionary like: \n{\"ACTION\": \"CLICK\" or \"TYPE\" or \"SELECT\", \"MARK\": a numeric id, e.g., 5, \"VALUE\": a string value for the action if applicable, otherwise None}\nYou are asked to complete the following task: " + task + ". The previous actions you have taken: \n" + prev + "\nFor your convinience, I have labeled the candidates with numeric marks and bounding boxes on the screenshot. What is the next action you would take?";
function somRows(n, prefix) {
  const rows = [];
  for (let i = 0; i < n; i++) {
    const img = png(40 + 8 * i, 32, texture(i));
    rows.push({
      id: `${prefix}_${i}`,
      image: { bytes: img, path: null },
      conversations: [
        { from: "human", value: m2wPrompt(["Find a store near 60601", "Search for flights to Tokyo", "Add a red shirt to the cart"][i % 3], i ? "[link] Store Locator -> CLICK" : "") },
        { from: "gpt", value: `{"ACTION": "${["CLICK", "TYPE", "SELECT"][i % 3]}", "MARK": ${13 + i}, "VALUE": "${i % 3 === 1 ? "Tokyo" : "None"}"}` },
      ],
    });
  }
  return rows;
}
const m2w = somRows(5, "m2w");
const m2wDir = path.join(root, "mind2web_som");
writeStream(path.join(m2wDir, "data-00000-of-00001.arrow"), somSchema, m2w, 2);
fs.writeFileSync(path.join(m2wDir, "state.json"), JSON.stringify({ _data_files: [{ filename: "data-00000-of-00001.arrow" }], _fingerprint: "fixture", _format_columns: null, _format_kwargs: {}, _format_type: null, _output_all_columns: false, _split: "train" }, null, 2));
fs.writeFileSync(path.join(m2wDir, "dataset_info.json"), JSON.stringify({ citation: "", description: "", features: somFeatures, homepage: "", license: "" }, null, 2));
const somGolden = (rows) => rows.map((r) => ({ id: r.id, image_sha256: sha(r.image.bytes), conversations: r.conversations }));
golden.mind2web_som = somGolden(m2w);

const aitw = somRows(4, "aitw");
writeParquet(path.join(root, "aitw_som", "data", "train-00000-of-00001.parquet"), somSchema, aitw, 3);
golden.aitw_som = somGolden(aitw);

// ===== Video-ToM: <subset>/shard_<N>.arrow with pre-extracted CoTracker traces =====
const T = 16, G = 3, N = G * G, W = 64, H = 48;
function traceFor(move, w, h, wrongShape) {
  const tr = [], vis = [];
  for (let t = 0; t < T; t++) {
    const row = [], vrow = [];
    for (let n = 0; n < N; n++) {
      const gx = (n % G + 0.5) * w / G, gy = (Math.floor(n / G) + 0.5) * h / G;
      const moving = n === 4 || n === 5;
      const dx = moving ? move * t : 0.2 * (rnd() - 0.5), dy = moving ? 0.5 * move * t : 0.2 * (rnd() - 0.5);
      const p = [Math.fround(gx + dx), Math.fround(gy + dy)];
      if (wrongShape) p.push(0);
      row.push(p);
      vrow.push(!(n === 8 && t > 12));
    }
    tr.push(row); vis.push(vrow);
  }
  return { tr, vis };
}
const videoSchema = new A.Schema([
  new A.Field("dataset_name", utf8, true), new A.Field("video_name", utf8, true), new A.Field("task_string", utf8, true),
  new A.Field("frame_index", new A.Int64(), true),
  new A.Field("trace", listOf(listOf(listOf(new A.Float32()))), true), new A.Field("trace_visibility", listOf(listOf(new A.Bool())), true),
], hfMeta({ dataset_name: { dtype: "string", _type: "Value" }, video_name: { dtype: "string", _type: "Value" }, task_string: { dtype: "string", _type: "Value" },
  frame_index: { dtype: "int64", _type: "Value" }, trace: { feature: { feature: { feature: { dtype: "float32", _type: "Value" }, _type: "Sequence" }, _type: "Sequence" }, _type: "Sequence" },
  trace_visibility: { feature: { feature: { dtype: "bool", _type: "Value" }, _type: "Sequence" }, _type: "Sequence" } }));
const videoRows = { ego4d: [], sthv2: [] };
const tasks = ["C cuts the onion with a knife", "C opens the fridge door", "Pushing a cup from left to right", "Moving a pen up"];
let k = 0;
for (const subset of ["ego4d", "sthv2"]) {
  for (let i = 0; i < 4; i++, k++) {
    const video = `${subset}_clip${i}`;
    const dir = path.join(root, "video_tom", "videos", video);
    fs.mkdirSync(dir, { recursive: true });
    for (let f = 0; f < 4; f++) fs.writeFileSync(path.join(dir, String(f).padStart(6, "0") + ".png"), png(W, H, texture(k * 10 + f)));
    const { tr, vis } = traceFor(1.5 + i, W, H, subset === "sthv2" && i === 3);
    videoRows[subset].push({ dataset_name: subset, video_name: video, task_string: tasks[k % 4], frame_index: BigInt(i % 4), trace: tr, trace_visibility: vis });
  }
}
writeStream(path.join(root, "video_tom", "ego4d", "shard_0.arrow"), videoSchema, videoRows.ego4d.slice(0, 2), 1);
writeStream(path.join(root, "video_tom", "ego4d", "shard_1.arrow"), videoSchema, videoRows.ego4d.slice(2), 1);
writeStream(path.join(root, "video_tom", "sthv2", "shard_2.arrow"), videoSchema, videoRows.sthv2, 2);
golden.video_tom = [...videoRows.ego4d, ...videoRows.sthv2].map((r) => ({
  dataset_name: r.dataset_name, video_name: r.video_name, task: r.task_string, frame_index: Number(r.frame_index),
  trace_shape: [r.trace.length, r.trace[0].length, r.trace[0][0].length], trace: r.trace.flat(2), visibility: r.trace_visibility.flat(1),
}));

// a truncated download: the last batch's body cut short
const full = fs.readFileSync(path.join(root, "video_tom", "ego4d", "shard_1.arrow"));
fs.mkdirSync(path.join(root, "bad", "truncated"), { recursive: true });
fs.writeFileSync(path.join(root, "bad", "truncated", "shard_1.arrow"), full.subarray(0, full.length - 200));
// a shard without the trace column
const noTrace = new A.Schema(videoSchema.fields.filter((f) => f.name !== "trace"));
writeStream(path.join(root, "bad", "missing_column", "shard_5.arrow"), noTrace, videoRows.ego4d.slice(0, 2), 2);

// ===== OXE-ToM: <dataset>/shard_<N>.arrow, IPC file format here, traces [1,T,N,2] in 256x256 =====
const oxeSchema = new A.Schema([
  new A.Field("dataset_name", utf8, true), new A.Field("traj_index", new A.Int64(), true), new A.Field("frame_index", new A.Int64(), true),
  new A.Field("lang", utf8, true), new A.Field("action", new A.FixedSizeList(7, new A.Field("item", new A.Float32(), true)), true),
  new A.Field("image", imageType, true),
  new A.Field("trace", listOf(listOf(listOf(listOf(new A.Float32())))), true), new A.Field("trace_visibility", listOf(listOf(listOf(new A.Bool()))), true),
]);
const oxeRows = [];
for (let i = 0; i < 3; i++) {
  const { tr, vis } = traceFor(6 + 2 * i, 256, 256, false);
  const img = png(64, 64, texture(50 + i));
  oxeRows.push({ dataset_name: "bridge_orig", traj_index: BigInt(7), frame_index: BigInt(i), lang: "put the spoon in the pot",
    action: Array.from({ length: 7 }, (_, d) => Math.fround(d === 6 ? 1 : (rnd() - 0.5) * 0.02)), image: { bytes: img, path: `bridge_orig/7/${i}.jpg` },
    trace: [tr], trace_visibility: [vis] });
}
writeFile(path.join(root, "oxe_tom", "bridge_orig", "shard_79.arrow"), oxeSchema, oxeRows, 2);
golden.oxe_tom = oxeRows.map((r) => ({ dataset_name: r.dataset_name, traj_index: Number(r.traj_index), frame_index: Number(r.frame_index), task: r.lang,
  action: r.action, image_sha256: sha(r.image.bytes), trace_shape: [1, r.trace[0].length, N, 2], trace: r.trace.flat(3), visibility: r.trace_visibility.flat(2) }));

fs.writeFileSync(path.join(root, "golden.json"), JSON.stringify(golden, null, 1));
console.log("wrote", root);
