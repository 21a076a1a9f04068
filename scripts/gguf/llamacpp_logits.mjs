// llama.cpp (node-llama-cpp 3.22.1's prebuilt binaries: nothing downloaded
// or compiled) evaluates a prompt of token ids on GGUF files and compares
// its next-token logits at the last position with ours (the safetensors
// file `magma generate --logits-out` writes: tensor "logits" [steps, vocab],
// row 0 = the prompt's last position). The metric is the parity metric:
// max|ours - llama.cpp| / max|ours|.
//   node llamacpp_logits.mjs IDS MODEL.gguf OURS.safetensors MAX_REL [MODEL2 OURS2 MAX_REL2 ...]
// The KV cache is F32 (KV_TYPE=F16 for llama.cpp's default), attention
// without flash attention, 2 threads.
import { getLlama } from "node-llama-cpp";
import { readFileSync } from "node:fs";

const [idsArg, ...rest] = process.argv.slice(2);
if (!idsArg || rest.length === 0 || rest.length % 3 !== 0) {
  console.error("usage: node llamacpp_logits.mjs ID,ID,... MODEL.gguf OURS.safetensors MAX_REL [...]");
  process.exit(2);
}
const ids = idsArg.split(",").map((s) => {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 0) throw new Error(`bad token id ${JSON.stringify(s)}`);
  return n;
});

function readOurs(path) {
  const b = readFileSync(path);
  const n = Number(b.readBigUInt64LE(0));
  const header = JSON.parse(b.subarray(8, 8 + n).toString("utf8"));
  const t = header.logits;
  if (!t || t.dtype !== "F32" || t.shape.length !== 2) throw new Error(`${path}: no F32 [steps, vocab] tensor "logits"`);
  const vocab = t.shape[1];
  const start = 8 + n + t.data_offsets[0];
  const out = new Float32Array(vocab);
  for (let i = 0; i < vocab; i++) out[i] = b.readFloatLE(start + 4 * i); // row 0
  return out;
}

const llama = await getLlama({ gpu: false, build: "never", skipDownload: true, usePrebuiltBinaries: true, logLevel: "error" });
const kv = process.env.KV_TYPE || "F32";
let failed = false;
for (let k = 0; k < rest.length; k += 3) {
  const [modelPath, oursPath, maxRelArg] = rest.slice(k, k + 3);
  const maxRel = Number(maxRelArg);
  const model = await llama.loadModel({ modelPath, gpuLayers: 0, useMmap: true });
  const context = await model.createContext({
    threads: 2, contextSize: Math.max(64, ids.length + 8), flashAttention: false,
    experimentalKvCacheKeyType: kv, experimentalKvCacheValueType: kv,
  });
  const sequence = context.getSequence();
  const items = ids.map((id, i) => (i === ids.length - 1 ? [id, { generateNext: { logits: true } }] : id));
  const res = await sequence.controlledEvaluate(items);
  const logits = res[ids.length - 1]?.next?.logits;
  const ours = readOurs(oursPath);
  let maxDiff = 0, maxAbs = 0, missing = 0, argOurs = 0, argTheirs = 0;
  for (let i = 0; i < ours.length; i++) {
    const v = logits?.get(i);
    if (v === undefined) { missing++; continue; }
    maxDiff = Math.max(maxDiff, Math.abs(ours[i] - v));
    maxAbs = Math.max(maxAbs, Math.abs(ours[i]));
    if (ours[i] > ours[argOurs]) argOurs = i;
    if (v > (logits.get(argTheirs) ?? -Infinity)) argTheirs = i;
  }
  const rel = maxAbs > 0 ? maxDiff / maxAbs : maxDiff;
  const ok = missing === 0 && logits.size === ours.length && rel <= maxRel;
  console.log(`${ok ? "ok  " : "FAIL"} ${modelPath.split("/").pop()} vs ${oursPath.split("/").pop()}: ${ours.length} logits, max|diff| ${maxDiff.toExponential(3)}, max|ours| ${maxAbs.toFixed(4)}, relative ${rel.toExponential(3)} (limit ${maxRel}), argmax ours ${argOurs} llama.cpp ${argTheirs}, KV cache ${kv}${missing ? `, ${missing} missing` : ""}`);
  failed ||= !ok;
  await context.dispose();
  await model.dispose();
}
await llama.dispose();
process.exit(failed ? 1 : 0);
