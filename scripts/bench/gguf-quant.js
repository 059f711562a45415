'use strict';
// `npm run bench:gguf`: training on a Q4_K_M GGUF base, as node-llama-cpp and Ollama users hold
// their models. Random-weight llama GGUF files with SmolLM-135M's (all 30 layers), SmolLM-1.7B's and
// Llama-2-7B's shapes are written as llama-quantize's Q4_K_M would (make-smollm-gguf.js, quantized
// by the library; cached in .bench-out/), then each case runs in a process of its own: loadModel
// keeps the linear layers in their block types, LoRA r16 on q,v, activation checkpointing, AdamW,
// batch 1 x SEQ tokens; two steps, the second timed. Reports the base weights' bytes, RSS after
// loading, peak RSS and tokens/s; then the frozen-weight products of one layer (forward y = x·Wᵀ and
// dx = dy·W over 512 tokens) with a Q4_K W against a bf16 W of the same shape (target: >= 0.9x the
// bf16 speed). Writes .bench-out/gguf-quant.{md,json} and a `case=... tok_s=...` line per case.
//
//   npm run bench:gguf -- [--cases=135m,1.7b,7b] [--seq=256] [--json=PATH]   (--cases= : the products only)
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const { makeSmollmGguf } = require('./make-smollm-gguf');
const { renderMarkdown, num, ratio } = require('./table');
const { timeInterleaved, NORMAL } = require('./timing');

const root = path.resolve(__dirname, '..', '..');
const OUT = path.join(root, '.bench-out');
const CASES = {
  '135m': { title: 'SmolLM-135M (30 layers)', shapes: {}, untiedHead: false },
  '1.7b': { title: 'SmolLM-1.7B', shapes: { hidden: 2048, layers: 24, heads: 32, kvHeads: 32, headDim: 64, ffn: 8192, vocab: 49152 }, untiedHead: false },
  '7b': { title: 'Llama-2-7B', shapes: { hidden: 4096, layers: 32, heads: 32, kvHeads: 32, headDim: 128, ffn: 11008, vocab: 32000, context: 4096 }, untiedHead: true },
};
const RANK = 16;

function modelFile(id) {
  const file = path.join(OUT, `gguf-${id}-q4km.gguf`);
  if (!fs.existsSync(file)) {
    const t0 = Date.now();
    process.stderr.write(`writing ${file} ...`);
    makeSmollmGguf({ out: file, shapes: CASES[id].shapes, quant: 'Q4_K_M', untiedHead: CASES[id].untiedHead, std: 0.02, seed: 7 });
    process.stderr.write(` ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);
  }
  return file;
}

/** Child: one case's load and two training steps; prints one JSON line. */
async function runCase(id, seq) {
  const { loadModel, getPeftModel, ops, zeros } = require(path.join(root, 'dist'));
  const model = await loadModel(modelFile(id));
  const info = model.info();
  global.gc?.();
  const rssAfterLoad = process.memoryUsage().rss;
  model.setGradientCheckpointing(true);
  const peft = getPeftModel(model, { peft_type: 'LORA', r: RANK, lora_alpha: 2 * RANK, target_modules: ['q_proj', 'v_proj'] }, { seed: 1 });
  const params = peft.trainableParameters();
  const names = Object.keys(params);
  const state = { expAvg: names.map((n) => zeros(params[n].shape)), expAvgSq: names.map((n) => zeros(params[n].shape)) };
  const ids = [Array.from({ length: seq }, (_, i) => (i * 7919 + 13) % model.config.vocabSize)];
  const times = [];
  for (let step = 1; step <= 2; step++) {
    const t0 = process.hrtime.bigint();
    const { grads } = await peft.loss(ids);
    await ops.adamwAsync(names.map((n) => params[n]), names.map((n) => grads[n]), state, { lr: 1e-4, weightDecay: 0, step });
    times.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  const byType = Object.fromEntries(Object.entries(info.byDtype).map(([k, v]) => [k, v.bytes]));
  process.stdout.write(JSON.stringify({
    id, weightBytes: info.bytes, byType, rssAfterLoad, peakRss: process.resourceUsage().maxRSS * 1024, stepSeconds: times, tokensPerSecond: seq / times[1],
  }) + '\n');
}

/** Uniform values in [-scale, scale) from a fixed-seed LCG. */
function randomData(size, seed, scale) {
  const out = new Float32Array(size);
  let s = seed >>> 0;
  for (let i = 0; i < size; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = ((s >>> 8) / 16777216 - 0.5) * 2 * scale;
  }
  return out;
}

/** One layer's frozen-weight products with a Q4_K W against a bf16 W, interleaved. */
function productRows() {
  const { tensor, ops, quantizeGgml, ggmlMatmul } = require(path.join(root, 'dist'));
  const M = 512;
  const rows = [];
  for (const [name, n, k] of [['7B q_proj', 4096, 4096], ['7B up_proj', 11008, 4096], ['7B down_proj', 4096, 11008], ['1.7B up_proj', 8192, 2048]]) {
    const w = tensor(randomData(n * k, 3, 0.04), [n, k]);
    const wb = w.to('bf16');
    const q = quantizeGgml(w, 'Q4_K');
    w.dispose();
    const x = tensor(randomData(M * k, 4, 1), [M, k]);
    const dy = tensor(randomData(M * n, 5, 1), [M, n]);
    const { results } = timeInterleaved([
      () => {
        ops.matmul(x, wb, { transB: true }).dispose();
        ops.matmul(dy, wb).dispose();
      },
      () => {
        ggmlMatmul(x, q, { transB: true }).dispose();
        ggmlMatmul(dy, q).dispose();
      },
    ], { ...NORMAL, budget: 3 });
    const [bf16, q4k] = results.map((r) => r.median);
    const gflops = (4 * M * n * k) / 1e9;
    rows.push({ name: `${name} [${n}, ${k}]`, bf16Ms: bf16 * 1e3, q4kMs: q4k * 1e3, bf16Gflops: gflops / bf16, q4kGflops: gflops / q4k, speedRatio: bf16 / q4k });
    for (const t of [wb, x, dy]) t.dispose();
    q.dispose();
  }
  return rows;
}

function parseArgs(argv) {
  const opts = { cases: Object.keys(CASES), seq: 256, json: path.join(OUT, 'gguf-quant.json') };
  for (const a of argv) {
    const [k, v] = a.replace(/^--/, '').split('=');
    if (k === 'cases') opts.cases = v ? v.split(',') : []; // --cases= : the products only
    else if (k === 'seq') opts.seq = Math.max(8, Number(v));
    else if (k === 'json') opts.json = path.resolve(v);
    else if (k === 'case') opts.child = v;
    else if (k === 'help') opts.help = true;
    else throw new Error(`unknown option ${a} (see --help)`);
  }
  for (const c of opts.cases) if (!CASES[c]) throw new Error(`unknown case ${c}: ${Object.keys(CASES).join(', ')}`);
  return opts;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.help) {
    console.log('usage: npm run bench:gguf -- [--cases=135m,1.7b,7b] [--seq=256] [--json=PATH]');
    return;
  }
  if (opts.child) return runCase(opts.child, opts.seq);
  fs.mkdirSync(OUT, { recursive: true });
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  const results = [];
  for (const id of opts.cases) {
    modelFile(id);
    let r;
    try {
      const out = execFileSync(process.execPath, ['--expose-gc', __filename, `--case=${id}`, `--seq=${opts.seq}`], { encoding: 'utf8', maxBuffer: 1 << 26, stdio: ['ignore', 'pipe', 'inherit'] });
      r = JSON.parse(out.trim().split('\n').pop());
    } catch (err) {
      r = { id, error: String(err.message).split('\n')[0] };
    }
    results.push(r);
    process.stderr.write(`${id}: ${r.error ?? `${num(r.tokensPerSecond, 1)} tok/s, peak RSS ${num(r.peakRss / 2 ** 30, 2)} GiB`}\n`);
  }
  const products = productRows();
  const MiB = 2 ** 20;
  const lines = [
    `Machine: ${cpu}, ${os.cpus().length} logical CPUs, ${num(os.totalmem() / 2 ** 30, 1)} GiB; batch 1 x ${opts.seq} tokens, LoRA r${RANK} on q,v, activation checkpointing, AdamW.`,
    '',
    ...renderMarkdown(
      ['model (Q4_K_M GGUF, random weights)', 'base weights', 'RSS after load', 'peak RSS', 'step (s)', 'tok/s'].map((title, i) => ({ title, right: i > 0 })),
      results.map((r) => [CASES[r.id].title, ...(r.error ? ['failed: ' + r.error, '', '', '', ''] : [`${num(r.weightBytes / MiB, 0)} MiB`, `${num(r.rssAfterLoad / MiB, 0)} MiB`, `${num(r.peakRss / MiB, 0)} MiB`, num(r.stepSeconds[1], 1), num(r.tokensPerSecond, 1)])]),
    ),
    '',
    `Frozen-weight products over 512 tokens (forward and dx), Q4_K W against bf16 W:`,
    '',
    ...renderMarkdown(
      ['layer', 'bf16 ms', 'Q4_K ms', 'bf16 GFLOP/s', 'Q4_K GFLOP/s', 'Q4_K speed / bf16'].map((title, i) => ({ title, right: i > 0 })),
      products.map((p) => [p.name, num(p.bf16Ms, 1), num(p.q4kMs, 1), num(p.bf16Gflops, 1), num(p.q4kGflops, 1), ratio(p.speedRatio)]),
    ),
  ];
  const machine = results.map((r) => `case=gguf-${r.id} tok_s=${r.error ? 'NA' : r.tokensPerSecond.toFixed(1)} peak_rss_mib=${r.error ? 'NA' : (r.peakRss / MiB).toFixed(0)}`);
  console.log([...lines, '', ...machine].join('\n'));
  fs.writeFileSync(opts.json, JSON.stringify({ cpu, seq: opts.seq, results, products }, null, 2));
  fs.writeFileSync(opts.json.replace(/\.json$/, '.md'), lines.join('\n') + '\n');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
