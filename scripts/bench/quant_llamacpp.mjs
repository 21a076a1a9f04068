// llama.cpp's side of `make bench-quant` (scripts/bench/quant.sh): the
// prebuilt llama.cpp of npm node-llama-cpp 3.22.1 (installed by quant.sh
// into the git-ignored scripts/bench/llamacpp/node_modules; nothing is
// downloaded or compiled at run time) loads a GGUF mapped in place, CPU
// only, and runs the same work as scripts/bench/quantgo -mode speed: a
// prompt of PROMPT deterministic token ids (1000 + 37 i, no BOS added),
// then NEW greedy decode steps. Prints one JSON object with the same keys
// as quantgo.
//
//   node scripts/bench/quant_llamacpp.mjs --model FILE.gguf [--prompt 64] [--new 16] [--threads 2]
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import fs from "node:fs";

const here = path.dirname(fileURLToPath(import.meta.url));
const pkgDir = path.join(here, "llamacpp", "node_modules", "node-llama-cpp");

function args(argv) {
  const o = { model: "", prompt: 64, new: 16, threads: 2 };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i].replace(/^--?/, "");
    if (!(k in o)) throw new Error(`quant_llamacpp: unknown flag ${argv[i]}`);
    const v = argv[++i];
    if (v === undefined) throw new Error(`quant_llamacpp: flag ${argv[i - 1]} needs a value`);
    o[k] = typeof o[k] === "number" ? Number(v) : v;
    if (typeof o[k] === "number" && !(Number.isInteger(o[k]) && o[k] > 0)) {
      throw new Error(`quant_llamacpp: --${k} wants a positive integer, got ${v}`);
    }
  }
  if (!o.model) throw new Error("quant_llamacpp: --model FILE.gguf is required");
  if (o.prompt > 3000) throw new Error("quant_llamacpp: --prompt must be <= 3000 (ids 1000 + 37 i stay in Llama-3's base vocabulary)");
  if (o.new < 3) throw new Error("quant_llamacpp: --new must be >= 3 (the first step is not counted)");
  return o;
}

const median = (a) => {
  const s = [...a].sort((x, y) => x - y);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
};

async function main() {
  const o = args(process.argv.slice(2));
  const pkg = JSON.parse(fs.readFileSync(path.join(pkgDir, "package.json"), "utf8"));
  const { getLlama } = await import(pathToFileURL(path.join(pkgDir, "dist", "index.js")).href);
  const t0 = performance.now();
  const llama = await getLlama({ gpu: false, build: "never", skipDownload: true, usePrebuiltBinaries: true, logLevel: "error" });
  const model = await llama.loadModel({ modelPath: o.model, gpuLayers: 0, useMmap: true });
  const ctxSize = Math.max(256, o.prompt + o.new + 8);
  const context = await model.createContext({ threads: o.threads, contextSize: ctxSize, batchSize: Math.max(o.prompt, 32) });
  const seq = context.getSequence();
  const loadMs = performance.now() - t0;
  const ids = Array.from({ length: o.prompt }, (_, i) => 1000 + 37 * i);

  const out = [];
  const stepMs = [];
  let prefillMs = 0;
  const s0 = performance.now();
  let last = s0;
  for await (const tok of seq.evaluate(ids, { temperature: 0 })) {
    const now = performance.now();
    if (out.length === 0) prefillMs = now - s0;
    else stepMs.push(now - last);
    out.push(tok);
    last = now;
    if (out.length > o.new) break;
  }
  const steady = stepMs.slice(1);
  const med = median(steady);
  const res = {
    engine: "llama.cpp",
    version: `node-llama-cpp ${pkg.version}, llama.cpp ${llama.llamaCppRelease?.release ?? "?"}`,
    build: llama.buildType ?? "",
    system_info: llama.systemInfo,
    model: o.model,
    threads: o.threads,
    load_ms: loadMs,
    prompt_tokens: o.prompt,
    // Time to the first generated token: prompt processing plus one sampling.
    prefill_ms: prefillMs,
    prefill_tokens_per_s: (o.prompt * 1e3) / prefillMs,
    decode_step_ms: stepMs,
    decode_ms_median: med,
    decode_tokens_per_s: 1e3 / med,
    output_ids: out,
  };
  console.log(JSON.stringify(res));
  await context.dispose();
  await model.dispose();
  await llama.dispose();
}

main().catch((e) => {
  console.error(e?.stack ?? String(e));
  process.exit(1);
});
