// Reference readers for `make bench-data`: npm apache-arrow (Arrow IPC
// stream and file) and parquet-wasm + apache-arrow (Parquet), reading the
// same rows and columns as scripts/bench/datago. Prints one JSON object.
//   NODE_PATH=.../node_modules node scripts/bench/data_ref.mjs DIR
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
const require = createRequire(import.meta.url);
const A = require("apache-arrow");
const PQ = require("parquet-wasm/node");
const dir = process.argv[2];
const ls = (d, re) => fs.readdirSync(d).filter((f) => re.test(f)).sort().map((f) => path.join(d, f));
const mb = (fs_) => fs_.reduce((s, f) => s + fs.statSync(f).size, 0) / 1e6;

// A list cell is materialised the fast way: its row's range is followed
// through the offset buffers down to the leaf values, which are copied out
// (the Go reader also copies a cell's numbers into a float32 slice).
function leafRange(data, lo, hi) {
  let d = data;
  while (d.children && d.children.length === 1 && (A.DataType.isList(d.type) || A.DataType.isFixedSizeList(d.type))) {
    if (A.DataType.isList(d.type)) { lo = d.valueOffsets[d.offset + lo]; hi = d.valueOffsets[d.offset + hi]; }
    else { lo *= d.type.listSize; hi *= d.type.listSize; }
    d = d.children[0];
  }
  return [d, lo, hi];
}
function materialise(data, i) {
  const [leaf, lo, hi] = leafRange(data, i, i + 1);
  if (A.DataType.isBool(leaf.type)) {
    const out = new Uint8Array(hi - lo);
    for (let j = lo; j < hi; j++) { const k = leaf.offset + j; out[j - lo] = (leaf.values[k >> 3] >> (k & 7)) & 1; }
    return out.length;
  }
  return leaf.values.slice(leaf.offset + lo, leaf.offset + hi).length;
}
function readTable(t, cols) {
  let n = 0, acc = 0;
  for (const batch of t.batches) {
    const vecs = cols.map((c) => batch.getChild(c));
    for (let i = 0; i < batch.numRows; i++) {
      for (let c = 0; c < vecs.length; c++) {
        const vec = vecs[c], type = vec.type;
        if (A.DataType.isList(type) || A.DataType.isFixedSizeList(type)) {
          if (A.DataType.isStruct(type.children[0].type)) { for (const turn of vec.get(i)) acc += String(turn.value).length + String(turn.from).length; }
          else acc += materialise(vec.data[0], i);
        } else if (A.DataType.isStruct(type)) {
          const o = vec.get(i); const b = o.bytes; acc += b ? b.slice().length : 0;
        } else {
          const v = vec.get(i); acc += typeof v === "string" ? v.length : 1;
        }
      }
      n++;
    }
  }
  return [n, acc];
}
function bench(files, cols, load) {
  let res;
  for (let pass = 0; pass < 2; pass++) {
    const t0 = process.hrtime.bigint();
    let n = 0;
    for (const f of files) n += readTable(load(f), cols)[0];
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    res = { records: n, seconds: s, per_second: n / s, mb: mb(files) };
  }
  return res;
}
function version(mod) {
  let d = path.dirname(require.resolve(mod));
  for (;;) {
    const p = path.join(d, "package.json");
    if (fs.existsSync(p)) {
      const j = JSON.parse(fs.readFileSync(p));
      if (j.version) return j.version;
    }
    d = path.dirname(d);
  }
}
const out = { node: process.version, apache_arrow: version("apache-arrow"), parquet_wasm: version("parquet-wasm/node") };
out.arrow_stream_video_tom = bench(ls(path.join(dir, "video_tom/ego4d"), /\.arrow$/), ["task_string", "frame_index", "trace", "trace_visibility"], (f) => A.tableFromIPC(fs.readFileSync(f)));
out.arrow_file_oxe_tom = bench(ls(path.join(dir, "oxe_tom/bridge_orig"), /\.arrow$/), ["lang", "action", "image", "trace", "trace_visibility"], (f) => A.tableFromIPC(fs.readFileSync(f)));
out.parquet_mind2web_som = bench(ls(path.join(dir, "mind2web_som/data"), /\.parquet$/), ["id", "image", "conversations"],
  (f) => A.tableFromIPC(PQ.readParquet(fs.readFileSync(f)).intoIPCStream()));
out.peak_rss_mb = process.resourceUsage().maxRSS / 1024;
console.log(JSON.stringify(out, null, 2));
