// The official OpenAI JavaScript SDK (npm openai, pinned in package.json)
// against a running `magma serve` (started by run.sh on a random tiny
// checkpoint served as "tiny,magma"). A random model writes gibberish, so
// this checks the protocol: shapes, names, counts, errors, and the
// arithmetic of logprobs and penalties, never the text.
//
//   node check.mjs http://127.0.0.1:PORT/v1
import OpenAI from "openai";
import zlib from "node:zlib";

const baseURL = process.argv[2];
if (!baseURL) {
  console.error("usage: node check.mjs BASE_URL (e.g. http://127.0.0.1:8080/v1)");
  process.exit(2);
}
const client = new OpenAI({ baseURL, apiKey: "unused", maxRetries: 0, timeout: 120_000 });
const MODEL = "tiny";

let failed = 0;
async function check(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e?.stack ?? e}`);
  }
}
function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}
const json = (v) => JSON.stringify(v);

// A small RGB PNG as a data: URI (zlib for IDAT, CRC-32 by table).
const crcTable = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function pngDataURI(w, h) {
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, "latin1"), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(td));
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  const raw = Buffer.alloc(h * (1 + 3 * w));
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      raw.set([(x * 7) & 255, (y * 5) & 255, (x + y) & 255], y * (1 + 3 * w) + 1 + 3 * x);
    }
  }
  const png = Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", zlib.deflateSync(raw)),
    chunk("IEND", Buffer.alloc(0)),
  ]);
  return "data:image/png;base64," + png.toString("base64");
}

const image = pngDataURI(48, 40);
const withImage = [
  {
    role: "user",
    content: [
      { type: "image_url", image_url: { url: image } },
      { type: "text", text: "What is in the image?" },
    ],
  },
];
const textOnly = [{ role: "user", content: "What is in the image?" }];

function checkCompletion(r, what) {
  assert(r.object === "chat.completion", `${what}: object ${r.object}`);
  assert(r.model === MODEL, `${what}: model ${r.model}, want ${MODEL}`);
  assert(typeof r.id === "string" && r.id.startsWith("chatcmpl-"), `${what}: id ${r.id}`);
  assert(r.choices.length === 1, `${what}: ${r.choices.length} choices`);
  const c = r.choices[0];
  assert(c.message.role === "assistant" && typeof c.message.content === "string", `${what}: message ${json(c.message)}`);
  assert(["stop", "length"].includes(c.finish_reason), `${what}: finish_reason ${c.finish_reason}`);
  const u = r.usage;
  assert(u && u.prompt_tokens > 0 && u.completion_tokens > 0 && u.total_tokens === u.prompt_tokens + u.completion_tokens, `${what}: usage ${json(u)}`);
}

// Logprob entries in OpenAI's shape; greedy's token is the most probable.
function checkLogprobs(entries, top, what, greedy = true) {
  assert(Array.isArray(entries) && entries.length > 0, `${what}: logprobs.content ${json(entries)}`);
  entries.forEach((e, i) => {
    assert(typeof e.token === "string" && typeof e.logprob === "number" && e.logprob <= 0 && Array.isArray(e.bytes), `${what}[${i}]: ${json(e)}`);
    assert(Array.isArray(e.top_logprobs) && e.top_logprobs.length === top, `${what}[${i}]: ${e.top_logprobs?.length} top_logprobs, want ${top}`);
    for (let k = 1; k < e.top_logprobs.length; k++) {
      assert(e.top_logprobs[k].logprob <= e.top_logprobs[k - 1].logprob, `${what}[${i}]: top_logprobs not sorted`);
    }
    if (greedy && top > 0) assert(e.logprob === e.top_logprobs[0].logprob, `${what}[${i}]: greedy token ${json(e.token)} is not the most probable`);
  });
}

await check("models.list: the served names, the first first", async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  assert(json(ids) === json(["tiny", "magma"]), `ids ${json(ids)}`);
});

await check("models.retrieve: name and alias; unknown is 404 model_not_found", async () => {
  for (const id of ["tiny", "magma"]) {
    const m = await client.models.retrieve(id);
    assert(m.id === id && m.object === "model" && typeof m.created === "number" && m.owned_by, `retrieve ${id}: ${json(m)}`);
  }
  try {
    await client.models.retrieve("gpt-4o");
    throw new Error("retrieve gpt-4o succeeded");
  } catch (e) {
    assert(e instanceof OpenAI.NotFoundError && e.code === "model_not_found" && e.param === "model", `retrieve gpt-4o: ${e}`);
  }
});

let plain;
await check("chat.completions.create with an image (non-streaming), via the alias", async () => {
  plain = await client.chat.completions.create({ model: "magma", messages: withImage, max_tokens: 12, temperature: 0 });
  checkCompletion(plain, "with image");
  const text = await client.chat.completions.create({ model: MODEL, messages: textOnly, max_tokens: 1, temperature: 0 });
  checkCompletion(text, "text only");
  assert(plain.usage.prompt_tokens > text.usage.prompt_tokens + 1,
    `the image adds no positions: ${plain.usage.prompt_tokens} vs ${text.usage.prompt_tokens} prompt tokens`);
});

await check("chat.completions.create stream: true with an image: same text as non-streaming, usage chunk", async () => {
  const stream = await client.chat.completions.create({
    model: MODEL, messages: withImage, max_tokens: 12, temperature: 0, stream: true, stream_options: { include_usage: true },
  });
  let text = "", finish = null, usage = null, n = 0, role = null;
  for await (const chunk of stream) {
    assert(chunk.object === "chat.completion.chunk" && chunk.model === MODEL, `chunk ${json(chunk)}`);
    n++;
    if (chunk.usage) { usage = chunk.usage; continue; }
    const d = chunk.choices[0].delta;
    role ??= d.role;
    text += d.content ?? "";
    finish = chunk.choices[0].finish_reason ?? finish;
  }
  assert(n >= 3 && role === "assistant", `${n} chunks, role ${role}`);
  assert(text === plain.choices[0].message.content, `streamed ${json(text)}, non-streamed ${json(plain.choices[0].message.content)}`);
  assert(finish === plain.choices[0].finish_reason, `finish ${finish} vs ${plain.choices[0].finish_reason}`);
  assert(json(usage) === json(plain.usage), `usage ${json(usage)} vs ${json(plain.usage)}`);
});

let lp;
await check("logprobs + top_logprobs (non-streaming)", async () => {
  lp = await client.chat.completions.create({ model: MODEL, messages: withImage, max_tokens: 8, temperature: 0, logprobs: true, top_logprobs: 3 });
  checkCompletion(lp, "logprobs");
  const c = lp.choices[0];
  const entries = c.logprobs?.content;
  checkLogprobs(entries, 3, "logprobs");
  const want = lp.usage.completion_tokens - (c.finish_reason === "stop" ? 1 : 0); // the ending EOS has no entry
  assert(entries.length === want, `${entries.length} entries for ${lp.usage.completion_tokens} tokens (${c.finish_reason})`);
  const bytes = Buffer.from(entries.flatMap((e) => e.bytes));
  assert(bytes.toString("utf8") === c.message.content, `bytes spell ${json(bytes.toString("utf8"))}, content ${json(c.message.content)}`);
});

await check("logprobs streamed (chat.completions.stream helper): the same entries", async () => {
  const runner = client.chat.completions.stream({ model: MODEL, messages: withImage, max_tokens: 8, temperature: 0, logprobs: true, top_logprobs: 3 });
  const fin = await runner.finalChatCompletion();
  const got = fin.choices[0].logprobs?.content;
  checkLogprobs(got, 3, "streamed logprobs");
  const want = lp.choices[0].logprobs.content;
  assert(fin.choices[0].message.content === lp.choices[0].message.content, `streamed text ${json(fin.choices[0].message.content)}`);
  assert(json(got) === json(want), `streamed entries differ: ${json(got).slice(0, 300)} vs ${json(want).slice(0, 300)}`);
});

await check("presence_penalty / frequency_penalty: OpenAI's formula over the generated tokens", async () => {
  const ask = (extra) => client.chat.completions.create({
    model: MODEL, messages: textOnly, max_tokens: 2, temperature: 0, logprobs: true, top_logprobs: 20, ...extra,
  });
  const a = (await ask({})).choices[0].logprobs.content;
  const b = (await ask({ frequency_penalty: -1.5, presence_penalty: -0.5 })).choices[0].logprobs.content;
  assert(a.length === 2 && b.length === 2, `entries ${a.length}, ${b.length}`);
  assert(a[0].token === b[0].token && a[0].logprob === b[0].logprob, "the first token differs with penalties (no token generated yet)");
  // Step 2 sees the same model logits; penalties -1.5*1 - 0.5 raise t1's by 2:
  // every other token shifts by one constant, t1 by that constant + 2.
  const t1 = a[0].token;
  const plainLP = new Map(a[1].top_logprobs.map((e) => [e.token, e.logprob]));
  let shift = null, common = 0;
  for (const e of b[1].top_logprobs) {
    if (!plainLP.has(e.token) || e.token === t1) continue;
    const d = e.logprob - plainLP.get(e.token);
    shift ??= d;
    assert(Math.abs(d - shift) < 1e-3, `token ${json(e.token)} shifted ${d}, others ${shift}`);
    common++;
  }
  assert(common >= 10 && shift <= 1e-3, `${common} common tokens, shift ${shift}`);
  const t1Pen = b[1].top_logprobs.find((e) => e.token === t1);
  assert(t1Pen, `t1 ${json(t1)} (+2) missing from the penalised top 20`);
  if (plainLP.has(t1)) {
    assert(Math.abs(t1Pen.logprob - (plainLP.get(t1) + shift + 2)) < 1e-3, `t1 ${t1Pen.logprob} vs ${plainLP.get(t1)} + ${shift} + 2`);
  }
  // Positive penalties are accepted too.
  checkCompletion(await client.chat.completions.create({ model: MODEL, messages: textOnly, max_tokens: 4, presence_penalty: 2, frequency_penalty: 2 }), "penalties 2/2");
});

await check("400 invalid_request_error naming each unsupported or invalid parameter", async () => {
  const tools = [{ type: "function", function: { name: "f", parameters: { type: "object", properties: {} } } }];
  const cases = [
    ["response_format", { response_format: { type: "json_object" } }],
    ["response_format", { response_format: { type: "json_schema", json_schema: { name: "x", schema: { type: "object" } } } }],
    ["tools", { tools }],
    ["tool_choice", { tool_choice: "auto" }],
    ["functions", { functions: [{ name: "f", parameters: {} }] }],
    ["logit_bias", { logit_bias: { 50256: -100 } }],
    ["presence_penalty", { presence_penalty: 2.5 }],
    ["frequency_penalty", { frequency_penalty: -3 }],
    ["top_logprobs", { top_logprobs: 2 }],
    ["top_logprobs", { logprobs: true, top_logprobs: 21 }],
    ["n", { n: 2 }],
  ];
  for (const [param, extra] of cases) {
    try {
      await client.chat.completions.create({ model: MODEL, messages: textOnly, max_tokens: 2, ...extra });
      throw new Error(`${json(extra)} was accepted`);
    } catch (e) {
      assert(e instanceof OpenAI.BadRequestError && e.status === 400 && e.type === "invalid_request_error" && e.param === param,
        `${json(extra)}: ${e} (param ${e.param}, type ${e.type})`);
    }
  }
  // Neutral values pass.
  checkCompletion(await client.chat.completions.create({
    model: MODEL, messages: textOnly, max_tokens: 2, response_format: { type: "text" }, tools: [], tool_choice: "none",
  }), "neutral values");
});

if (failed) {
  console.log(`${failed} check(s) failed`);
  process.exit(1);
}
console.log("all OpenAI SDK checks passed");
