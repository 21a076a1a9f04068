// npm @huggingface/gguf parses our GGUF files: every metadata value with its
// type, every tensor name, shape (ggml dims), type and offset as written.
//   node check_npm.mjs fixture FILE.gguf FILE.json      (every value/tensor type)
//   node check_npm.mjs export FILE.gguf config.json WRITTEN.json
//     (magma export gguf; WRITTEN.json is its --json output: the type it
//     chose for each tensor, checked against what the parser reads)
import { gguf } from "@huggingface/gguf";
import { readFileSync } from "node:fs";

const [mode, file, expectPath, writtenPath] = process.argv.slice(2);
let failures = 0;
const fail = (msg) => {
  failures++;
  console.error(`FAIL ${file}: ${msg}`);
};
const norm = (v) => (typeof v === "bigint" ? v.toString() : Array.isArray(v) ? v.map(norm) : v);
const same = (a, b) => JSON.stringify(norm(a)) === JSON.stringify(norm(b));
const sameDims = (shape, dims) => shape.length === dims.length && shape.every((d, i) => Number(d) === dims[i]);

const parsed = await gguf(file, { allowLocalFile: true, typedMetadata: true });
const { metadata, typedMetadata, tensorInfos } = parsed;
if (metadata.version !== 3) fail(`version ${metadata.version}, want 3`);

const GGML = { F32: 0, F16: 1, Q8_0: 8, Q4_K: 12, Q6_K: 14, BF16: 30 };

if (mode === "fixture") {
  const want = JSON.parse(readFileSync(expectPath, "utf8"));
  for (const [key, w] of Object.entries(want.metadata)) {
    const got = typedMetadata[key];
    if (!got) { fail(`metadata ${key} missing`); continue; }
    if (got.type !== w.type) fail(`metadata ${key}: type ${got.type}, want ${w.type}`);
    if ((w.subType ?? undefined) !== (got.subType ?? undefined)) fail(`metadata ${key}: subType ${got.subType}, want ${w.subType}`);
    if (!same(got.value, w.value)) fail(`metadata ${key}: ${JSON.stringify(norm(got.value))}, want ${JSON.stringify(w.value)}`);
  }
  if (tensorInfos.length !== want.tensors.length) fail(`${tensorInfos.length} tensors, want ${want.tensors.length}`);
  want.tensors.forEach((w, i) => {
    const t = tensorInfos[i];
    if (!t) return;
    if (t.name !== w.name) fail(`tensor ${i}: name ${t.name}, want ${w.name}`);
    if (!sameDims(t.shape, w.dims)) fail(`tensor ${w.name}: dims ${norm(t.shape)}, want ${w.dims}`);
    if (t.dtype !== w.type) fail(`tensor ${w.name}: type ${t.dtype}, want ${w.type}`);
    if (t.offset.toString() !== want.offsets[i]) fail(`tensor ${w.name}: offset ${t.offset}, want ${want.offsets[i]}`);
  });
  if (Number(parsed.tensorDataOffset) % 64 !== 0) fail(`data offset ${parsed.tensorDataOffset} not aligned to general.alignment 64`);
} else if (mode === "export") {
  const cfg = JSON.parse(readFileSync(expectPath, "utf8")).text_config;
  const V = cfg.vocab_size, D = cfg.hidden_size, I = cfg.intermediate_size;
  const H = cfg.num_attention_heads, KV = cfg.num_key_value_heads ?? H, hd = cfg.head_dim ?? D / H;
  const written = JSON.parse(readFileSync(writtenPath, "utf8")).tensors;
  const block = { 0: 1, 1: 1, 30: 1, 8: 32, 12: 256, 14: 256 };
  const typeOf = (name, dims) => {
    const w = written.find((t) => t.name === name);
    const t = w ? GGML[w.type] : undefined;
    if (t === undefined) return `unknown (${w?.type})`;
    if (dims.length < 2 && t !== GGML.F32) return `F32 for a 1-D tensor, not ${w.type}`;
    if (dims[0] % block[t] !== 0) return `a type whose block divides ${dims[0]}, not ${w.type}`;
    return t;
  };
  const want = [["token_embd.weight", [D, V]]];
  for (let l = 0; l < cfg.num_hidden_layers; l++) {
    const p = `blk.${l}.`;
    want.push(
      [p + "attn_norm.weight", [D]], [p + "attn_q.weight", [D, H * hd]], [p + "attn_k.weight", [D, KV * hd]],
      [p + "attn_v.weight", [D, KV * hd]], [p + "attn_output.weight", [H * hd, D]], [p + "ffn_norm.weight", [D]],
      [p + "ffn_gate.weight", [D, I]], [p + "ffn_up.weight", [D, I]], [p + "ffn_down.weight", [I, D]],
    );
  }
  want.push(["output_norm.weight", [D]]);
  if (!cfg.tie_word_embeddings) want.push(["output.weight", [D, V]]);
  if (tensorInfos.length !== want.length) fail(`${tensorInfos.length} tensors, want ${want.length}`);
  want.forEach(([name, dims], i) => {
    const t = tensorInfos[i];
    if (!t) return;
    if (t.name !== name) fail(`tensor ${i}: ${t.name}, want ${name}`);
    if (!sameDims(t.shape, dims)) fail(`tensor ${name}: dims ${norm(t.shape)}, want ${dims}`);
    if (t.dtype !== typeOf(name, dims)) fail(`tensor ${name}: type ${t.dtype}, want ${typeOf(name, dims)}`);
  });
  const expect = {
    "general.architecture": "llama", "llama.block_count": cfg.num_hidden_layers, "llama.embedding_length": D,
    "llama.feed_forward_length": I, "llama.attention.head_count": H, "llama.attention.head_count_kv": KV,
    "llama.rope.dimension_count": hd, "llama.vocab_size": V, "tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "llama-bpe",
    "tokenizer.ggml.bos_token_id": 128000, "tokenizer.ggml.eos_token_id": 128009, "tokenizer.ggml.padding_token_id": 128256,
  };
  for (const [k, v] of Object.entries(expect)) if (!same(metadata[k], v)) fail(`metadata ${k} = ${norm(metadata[k])}, want ${v}`);
  const toks = metadata["tokenizer.ggml.tokens"], types = metadata["tokenizer.ggml.token_type"];
  if (!Array.isArray(toks) || toks.length !== V) fail(`tokenizer.ggml.tokens has ${toks?.length} entries, want ${V}`);
  else {
    const checks = [[128000, "<|begin_of_text|>", 3], [9906, "Hello", 1], [128258, "[PAD128258]", 5], [V - 1, `[PAD${V - 1}]`, 5], [128257, "<image>", 3]];
    for (const [id, tok, ty] of checks) {
      if (toks[id] !== tok) fail(`token ${id} = ${JSON.stringify(toks[id])}, want ${JSON.stringify(tok)}`);
      if (types[id] !== ty) fail(`token ${id} type ${types[id]}, want ${ty}`);
    }
  }
  if (!Array.isArray(metadata["tokenizer.ggml.merges"]) || metadata["tokenizer.ggml.merges"][0] !== "Ġ Ġ") fail(`merges[0] = ${metadata["tokenizer.ggml.merges"]?.[0]}`);
} else {
  console.error("usage: node check_npm.mjs fixture|export FILE.gguf EXPECT [TYPE]");
  process.exit(2);
}
if (failures) process.exit(1);
console.log(`ok ${file}: ${tensorInfos.length} tensors, ${Object.keys(typedMetadata).length} metadata keys as written`);
