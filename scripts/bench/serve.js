'use strict';
// The serving benchmark (issue 14): total decode tokens/s, time to first token and p50 / p99 latency
// of the Engine at concurrency 1, 8 and 32, with every request on one adapter and with every request
// on a different one of 100 (LoRA r16 on q, v), on stories260K and on SmolLM-135M shapes (random
// weights, 30 layers); and single-sequence decoding against node-llama-cpp on the same GGUF.
//
//   npm run bench:serve -- [--models=stories,smollm] [--concurrency=1,8,32] [--adapters=100]
//                          [--prompt-tokens=32] [--max-tokens=64] [--reps=3] [--llama-cpp=DIR] [--json=PATH]
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const { findNodeLlamaCpp, llamaRunner } = require('./forward-llama');
const { defaultPath, makeSmollmGguf } = require('./make-smollm-gguf');
const { renderMarkdown, num, ratio } = require('./table');

const root = path.resolve(__dirname, '..', '..');
const lib = require(path.join(root, 'dist'));

function option(name, fallback) {
  const hit = process.argv.slice(2).find((a) => a.startsWith(`--${name}=`));
  return hit ? hit.slice(name.length + 3) : fallback;
}

const STORIES = path.resolve(root, '..', 'shared', 'models', 'stories260K', 'stories260K.gguf');

/** A seeded generator of uniform numbers in [-1, 1). */
function random(seed) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s >>> 8) / 8388608 - 1;
  };
}

/** `count` random LoRA adapters (r, q and v of every layer) in Hugging Face PEFT's format under dir. */
function writeAdapters(model, dir, count, r) {
  const modules = model.nativeModel.linearModules().filter((m) => /self_attn\.(q|v)_proj$/.test(m.name));
  for (let i = 0; i < count; i++) {
    const out = path.join(dir, `a${i}`);
    fs.mkdirSync(out, { recursive: true });
    fs.writeFileSync(path.join(out, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', r, lora_alpha: 2 * r, target_modules: ['q_proj', 'v_proj'], task_type: 'CAUSAL_LM' }));
    const next = random(1000 + i);
    const tensors = {};
    for (const m of modules) {
      const a = new Float32Array(r * m.inFeatures).map(() => next() * 0.05);
      const b = new Float32Array(m.outFeatures * r).map(() => next() * 0.05);
      tensors[`base_model.model.${m.name}.lora_A.weight`] = lib.tensor(a, [r, m.inFeatures]);
      tensors[`base_model.model.${m.name}.lora_B.weight`] = lib.tensor(b, [m.outFeatures, r]);
    }
    lib.writeSafetensorsSync(path.join(out, 'adapter_model.safetensors'), tensors);
  }
}

function quantile(values, q) {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

/** Closed loop: `concurrency` clients, each sending its next request when the last one ends. */
async function load(engine, { concurrency, requests, adapterOf, prompt, maxTokens }) {
  let next = 0;
  const results = [];
  const started = Date.now();
  const before = engine.stats();
  const client = async () => {
    while (next < requests) {
      const i = next++;
      results.push(await engine.complete({ prompt, adapter: adapterOf(i), maxTokens, ignoreEos: true }));
    }
  };
  await Promise.all(Array.from({ length: concurrency }, client));
  const seconds = (Date.now() - started) / 1000;
  const tokens = results.reduce((a, r) => a + r.completionTokens, 0);
  const after = engine.stats();
  return {
    tokS: tokens / seconds,
    // Steps that only decoded: the batch's decoding speed without the prompts' prefill.
    decodeTokS: (after.decodeRows - before.decodeRows) / ((after.decodeMs - before.decodeMs) / 1000),
    meanBatch: (after.decodeRows - before.decodeRows) / Math.max(1, after.decodeSteps - before.decodeSteps),
    ttftP50: quantile(results.map((r) => r.timings.firstTokenMs), 0.5),
    p50: quantile(results.map((r) => r.timings.totalMs), 0.5),
    p99: quantile(results.map((r) => r.timings.totalMs), 0.99),
  };
}

async function benchModel(label, file, opts, pkg) {
  const model = await lib.loadModel(file);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-bench-serve-'));
  process.stderr.write(`${label}: writing ${opts.adapters} adapters\n`);
  writeAdapters(model, dir, opts.adapters, 16);
  const prompt = Array.from({ length: opts.promptTokens }, (_, i) => 3 + ((i * 7919) % Math.min(200, model.config.vocabSize - 3)));
  const rows = [];
  try {
    // Warm the allocator and load every adapter once (the pool's budget holds them all): the table
    // is the steady state; loading from disk on a miss is timed separately below.
    const engine = new lib.Engine(model, { adapters: { dir, budgetBytes: 8 * 2 ** 30 }, maxBatch: 64 });
    const t0 = performance.now();
    await load(engine, { concurrency: 8, requests: opts.adapters, adapterOf: (i) => `a${i}`, prompt, maxTokens: 1 });
    const coldMs = (performance.now() - t0) / opts.adapters;
    for (const c of opts.concurrency) {
      const requests = Math.max(2 * c, 8);
      const row = { concurrency: c };
      for (const [mode, adapterOf] of [['base', () => null], ['same', () => 'a0'], ['distinct', (i) => `a${i % opts.adapters}`]]) {
        process.stderr.write(`${label}: concurrency ${c}, ${mode}\n`);
        // The median run by tokens/s of `reps` (this shared machine's speed drifts from run to run).
        const runs = [];
        for (let rep = 0; rep < opts.reps; rep++) runs.push(await load(engine, { concurrency: c, requests, adapterOf, prompt, maxTokens: opts.maxTokens }));
        runs.sort((a, b) => a.tokS - b.tokS);
        row[mode] = runs[Math.floor(runs.length / 2)];
      }
      rows.push(row);
    }
    const pool = engine.adapters.stats();
    await engine.dispose();
    // Single-sequence decoding against node-llama-cpp on the same file.
    let single;
    // Decoding only, as for llama.cpp below: the time of N tokens less the time of the first (the prefill).
    const ours = await (async () => {
      const timed = async (n) => {
        const t0 = performance.now();
        await model.generate(prompt, { maxNewTokens: n, stopTokens: [] });
        return (performance.now() - t0) / 1000;
      };
      await timed(4);
      const first = Math.min(await timed(1), await timed(1));
      const all = await timed(opts.maxTokens);
      return (opts.maxTokens - 1) / (all - first);
    })();
    if (pkg) {
      const runner = await llamaRunner(pkg, file, os.cpus().length, 1024);
      await runner.generate(prompt, 4);
      const g = await runner.generate(prompt, opts.maxTokens);
      single = { ours, llama: (g.tokens.length - 1) / (g.seconds - g.firstSeconds) };
      await runner.dispose();
    } else {
      single = { ours, llama: null };
    }
    return { label, rows, pool, coldMs, perAdapterBytes: pool.loaded ? pool.bytes / pool.loaded : 0, single };
  } finally {
    model.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function print(results, opts) {
  for (const r of results) {
    console.log(`\n### ${r.label}: prompt ${opts.promptTokens} tokens, ${opts.maxTokens} new tokens per request, ${opts.adapters} adapters (LoRA r16 q,v)\n`);
    const columns = ['concurrency', 'base tok/s', 'one adapter tok/s', `${opts.adapters} adapters tok/s`, 'distinct / one', 'decode tok/s one / distinct', 'TTFT p50 ms (distinct)', 'latency p50 / p99 ms (distinct)'].map((title, i) => ({ title, right: i < 5 || i === 6 }));
    const table = [];
    for (const row of r.rows) {
      table.push([String(row.concurrency), num(row.base.tokS, 1), num(row.same.tokS, 1), num(row.distinct.tokS, 1), ratio(row.distinct.tokS / row.same.tokS),
        `${num(row.same.decodeTokS, 1)} / ${num(row.distinct.decodeTokS, 1)}`, num(row.distinct.ttftP50, 0), `${num(row.distinct.p50, 0)} / ${num(row.distinct.p99, 0)}`]);
    }
    console.log(renderMarkdown(columns, table).join('\n'));
    const c1 = r.rows.find((x) => x.concurrency === 1);
    const c8 = r.rows.find((x) => x.concurrency === 8);
    if (c1 && c8) {
      console.log(`\nbatched decode, concurrency 8 / 1 (one adapter): ${ratio(c8.same.tokS / c1.same.tokS)} end to end, ${ratio(c8.same.decodeTokS / c1.same.decodeTokS)} in the decoding steps (target >= 4x)`);
    }
    const worst = Math.min(...r.rows.map((x) => x.distinct.tokS / x.same.tokS));
    console.log(`${opts.adapters} distinct adapters / one adapter, worst concurrency: ${ratio(worst)} (target >= 0.8x)`);
    console.log(`single sequence decode (Model.generate, prefill left out): ours ${num(r.single.ours, 1)} tok/s` + (r.single.llama ? `, node-llama-cpp ${num(r.single.llama, 1)} tok/s: ${ratio(r.single.ours / r.single.llama)} (target >= 0.9x)` : ', node-llama-cpp not found'));
    console.log(`first use of an adapter (read from disk, checked, registered) with a 1-token request: ${num(r.coldMs, 1)} ms per request`);
    console.log(`adapter memory: ${num(r.perAdapterBytes / 2 ** 20, 2)} MiB per adapter; pool hit rate ${num(100 * r.pool.hitRate, 1)}% (${r.pool.hits} hits, ${r.pool.misses} misses)`);
  }
}

async function main() {
  const opts = {
    models: option('models', 'stories,smollm').split(','),
    concurrency: option('concurrency', '1,8,32').split(',').map(Number),
    adapters: Number(option('adapters', '100')),
    promptTokens: Number(option('prompt-tokens', '32')),
    maxTokens: Number(option('max-tokens', '64')),
    reps: Number(option('reps', '3')),
    json: option('json', path.join(root, '.bench-out', 'serve.json')),
  };
  const pkg = findNodeLlamaCpp(option('llama-cpp', process.env.NODE_LLAMA_CPP_DIR ?? path.resolve(root, '..', 'benchref')));
  console.log(`peft-native serving benchmark: CPU ${os.cpus()[0]?.model}, ${os.cpus().length} threads, ISA ${lib.runtime.getIsa()}`);
  const models = [];
  if (opts.models.includes('stories')) models.push(['stories260K', STORIES]);
  if (opts.models.includes('smollm')) {
    const file = defaultPath('F32');
    if (!fs.existsSync(file)) makeSmollmGguf({ out: file, dtype: 'F32' });
    models.push(['SmolLM-135M shapes (random, 30 layers, f32)', file]);
  }
  const results = [];
  for (const [label, file] of models) results.push(await benchModel(label, file, opts, pkg));
  print(results, opts);
  fs.mkdirSync(path.dirname(opts.json), { recursive: true });
  fs.writeFileSync(opts.json, JSON.stringify({ date: new Date().toISOString(), cpu: os.cpus()[0]?.model, opts, results }, null, 2));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
