'use strict';
// `npm run bench:qlora`: QLoRA against LoRA on a random-weight model with SmolLM-135M's shapes
// (hidden 576, 9 heads / 3 KV heads of 64, FFN 1536, vocabulary 49152, tied embeddings) cut to 4
// layers: LoRA r=16 on all linear layers over an f32 and a bf16 base, and QLoRA (NF4, double
// quantization, bf16 compute) r=16 on all linear layers; AdamW; batch 4 x 256 tokens. Each case runs
// in its own process for its memory, so its peak RSS is its own; the step times come from one process
// running the cases in interleaved rounds. Reports the resident bytes of the base weights
// (model.info()), RSS after building the model, peak RSS, the training-step time, and each one's
// ratio to LoRA on the f32 base; then one layer's frozen-weight products (forward and dx over 2048
// tokens) with an NF4 weight against a bf16 one. Writes .bench-out/qlora.json.
//
//   npm run bench:qlora -- [--steps=N] [--cases=lora-f32,lora-bf16,qlora] [--json=PATH]
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const { renderTable, num, ratio } = require('./table');
const { median } = require('./timing');

const root = path.resolve(__dirname, '..', '..');
const SHAPE = { hidden: 576, layers: 4, heads: 9, kvHeads: 3, headDim: 64, ffn: 1536, vocab: 49152 };
const BATCH = 4, SEQ = 256, RANK = 16;
const CASES = {
  'lora-f32': { title: 'LoRA r16, f32 base', dtype: 'f32' },
  'lora-bf16': { title: 'LoRA r16, bf16 base', dtype: 'bf16' },
  qlora: { title: 'QLoRA r16, NF4 base', dtype: 'f32', quantization: { load_in_4bit: true, bnb_4bit_quant_type: 'nf4', bnb_4bit_use_double_quant: true, bnb_4bit_compute_dtype: 'bf16' } },
};

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

/** A case's model with its LoRA adapter and AdamW state; step() runs one training step. */
async function buildCase(id) {
  const { tensor, zeros, ops, getPeftModel, quantizeAsync, Model, configFromHf } = require(path.join(root, 'dist'));
  const spec = CASES[id];
  const { hidden: H, ffn: F, vocab: V, heads, kvHeads, headDim: D } = SHAPE;
  const config = configFromHf({
    model_type: 'llama', hidden_size: H, intermediate_size: F, num_hidden_layers: SHAPE.layers, num_attention_heads: heads,
    num_key_value_heads: kvHeads, head_dim: D, vocab_size: V, max_position_embeddings: 2048, rms_norm_eps: 1e-5, tie_word_embeddings: true,
  });
  // The weights one at a time, each quantized (QLoRA) or cast (bf16) as it is made, as loadModel does.
  const dense = new Map();
  const quantized = new Map();
  let seed = 1;
  const add = async (name, shape, scale) => {
    const t = tensor(randomData(shape.reduce((a, b) => a * b, 1), seed++, scale), shape);
    const linear = /_proj\.weight$/.test(name);
    if (linear && spec.quantization) {
      quantized.set(name, await quantizeAsync(t, { quant_type: 'nf4', blocksize: 64, double_quant: true }));
      t.dispose();
    } else if (spec.dtype === 'bf16' && shape.length === 2) {
      dense.set(name, t.to('bf16'));
      t.dispose();
    } else {
      dense.set(name, t);
    }
  };
  await add('model.embed_tokens.weight', [V, H], 0.02);
  await add('model.norm.weight', [H], 1);
  for (let l = 0; l < SHAPE.layers; l++) {
    const p = `model.layers.${l}.`;
    await add(p + 'input_layernorm.weight', [H], 1);
    await add(p + 'post_attention_layernorm.weight', [H], 1);
    await add(p + 'self_attn.q_proj.weight', [heads * D, H], 0.04);
    await add(p + 'self_attn.k_proj.weight', [kvHeads * D, H], 0.04);
    await add(p + 'self_attn.v_proj.weight', [kvHeads * D, H], 0.04);
    await add(p + 'self_attn.o_proj.weight', [H, heads * D], 0.04);
    await add(p + 'mlp.gate_proj.weight', [F, H], 0.04);
    await add(p + 'mlp.up_proj.weight', [F, H], 0.04);
    await add(p + 'mlp.down_proj.weight', [H, F], 0.025);
  }
  const model = new Model(config, dense, undefined, 'random SmolLM-135M (4 layers)', quantized.size ? { weights: quantized, computeDtype: 'bf16' } : undefined);
  const peft = getPeftModel(model, { peft_type: 'LORA', r: RANK, lora_alpha: 32, target_modules: 'all-linear' }, { seed: 1 });
  const params = peft.trainableParameters();
  const names = Object.keys(params);
  const state = { expAvg: names.map((n) => zeros(params[n].shape)), expAvgSq: names.map((n) => zeros(params[n].shape)) };
  const ids = Array.from({ length: BATCH }, (_, b) => Array.from({ length: SEQ }, (_, t) => (b * 7919 + t * 104729) % V));
  let count = 0;
  const step = async () => {
    const t0 = process.hrtime.bigint();
    const { grads, loss } = await peft.loss(ids);
    await ops.adamwAsync(names.map((n) => params[n]), names.map((n) => grads[n]), state, { lr: 1e-4, weightDecay: 0, step: ++count });
    if (!Number.isFinite(loss)) throw new Error(`loss ${loss}`);
    return Number(process.hrtime.bigint() - t0) / 1e9;
  };
  const q = [...quantized.values()];
  const bits = q.length ? q.reduce((sum, t) => sum + t.bitsPerParameter * t.size, 0) / q.reduce((sum, t) => sum + t.size, 0) : null;
  return { id, model, step, bits };
}

/** A case's memory, in this (child) process of its own: prints a JSON line. */
async function measureMemory(id) {
  const c = await buildCase(id);
  global.gc?.();
  const info = c.model.info();
  const rssAfterLoad = process.memoryUsage().rss;
  await c.step();
  process.stdout.write(JSON.stringify({
    id, weightBytes: info.bytes, byDtype: info.byDtype, bitsPerParameter: c.bits, rssAfterLoad, peakRss: process.resourceUsage().maxRSS * 1024,
  }) + '\n');
}

/** Step times of every case in one process, in rounds (one step of each per round): a slow spell on a shared machine hits all alike. */
async function timeSteps(ids, steps) {
  const cases = [];
  for (const id of ids) cases.push(await buildCase(id));
  for (const c of cases) await c.step();  // warm-up
  const times = cases.map(() => []);
  for (let r = 0; r < steps; r++) for (let i = 0; i < cases.length; i++) times[i].push(await cases[i].step());
  return times;
}

/**
 * One linear layer's frozen-weight products, forward y = x·Wᵀ and dx = dy·W, over 2048 tokens:
 * a 4-bit W (quantMatmul, dequantized panel by panel) against a bf16 W (ops.matmul).
 */
function layerTimes() {
  const { tensor, ops, quantize, quantMatmul } = require(path.join(root, 'dist'));
  const { timeMedian, NORMAL } = require('./timing');
  const M = 2048;
  const rows = [];
  for (const [name, n, k] of [['q_proj', 576, 576], ['gate_proj', 1536, 576], ['down_proj', 576, 1536]]) {
    const w = tensor(randomData(n * k, 3, 0.04), [n, k]);
    const wb = w.to('bf16');
    const q = quantize(w, { quant_type: 'nf4', blocksize: 64, double_quant: true });
    const x = tensor(randomData(M * k, 4, 1), [M, k]);
    const dy = tensor(randomData(M * n, 5, 1), [M, n]);
    const bf16 = timeMedian(() => {
      ops.matmul(x, wb, { transB: true }).dispose();
      ops.matmul(dy, wb).dispose();
    }, NORMAL).median;
    const nf4 = timeMedian(() => {
      quantMatmul(x, q, { transB: true }).dispose();
      quantMatmul(dy, q).dispose();
    }, NORMAL).median;
    rows.push([`${name} [${n}, ${k}]`, num(bf16 * 1e3, 1), num(nf4 * 1e3, 1), ratio(nf4 / bf16)]);
    for (const t of [w, wb, x, dy]) t.dispose();
    q.dispose();
  }
  return rows;
}

function parseArgs(argv) {
  const opts = { steps: 3, cases: Object.keys(CASES), json: path.join(root, '.bench-out', 'qlora.json') };
  for (const a of argv) {
    const [k, v] = a.replace(/^--/, '').split('=');
    if (k === 'steps') opts.steps = Math.max(1, Number(v));
    else if (k === 'cases') opts.cases = v.split(',');
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
    console.log('usage: npm run bench:qlora -- [--steps=N (default 3)] [--cases=lora-f32,lora-bf16,qlora] [--json=PATH]');
    return;
  }
  if (opts.child) return measureMemory(opts.child);
  const results = [];
  for (const id of opts.cases) {
    process.stderr.write(`  memory: ${CASES[id].title} ...\n`);
    const out = execFileSync(process.execPath, ['--expose-gc', __filename, `--case=${id}`], { encoding: 'utf8', maxBuffer: 1 << 20 });
    results.push(JSON.parse(out.trim().split('\n').pop()));
  }
  process.stderr.write(`  step times: ${opts.steps} rounds ...\n`);
  const times = await timeSteps(opts.cases, opts.steps);
  const baseIndex = Math.max(0, opts.cases.indexOf('lora-f32'));
  results.forEach((r, i) => {
    r.times = times[i];
    r.stepSeconds = median(times[i]);
    r.stepRatio = median(times[i].map((t, k) => t / times[baseIndex][k]));  // per round
  });
  const base = results[baseIndex];
  const MB = 2 ** 20;
  const rows = results.map((r) => [
    CASES[r.id].title, num(r.weightBytes / MB), ratio(r.weightBytes / base.weightBytes), num(r.rssAfterLoad / MB), num(r.peakRss / MB),
    ratio(r.peakRss / base.peakRss), num(r.stepSeconds, 2), ratio(r.stepRatio), num((BATCH * SEQ) / r.stepSeconds, 0),
  ]);
  console.log(`\nSmolLM-135M shapes, ${SHAPE.layers} layers, batch ${BATCH} x ${SEQ}, AdamW; ratios to ${CASES[base.id].title}` +
    ` (memory: one process per case; step time: median of ${opts.steps} interleaved rounds, ratio per round)\n`);
  const columns = ['case', 'weights MiB', 'ratio', 'RSS loaded MiB', 'peak RSS MiB', 'ratio', 'step s', 'ratio', 'tokens/s'].map((title, i) => ({ title, right: i > 0 }));
  for (const line of renderTable(columns, rows)) console.log(line);
  const q = results.find((r) => r.id === 'qlora');
  if (q) {
    const quantBytes = q.byDtype.nf4.bytes, rest = q.weightBytes - quantBytes;
    console.log(`\nQLoRA base: ${q.bitsPerParameter.toFixed(3)} stored bits per 4-bit parameter (code tables aside); ` +
      `4-bit weights ${num(quantBytes / MB)} MiB + full-precision layers ${num(rest / MB)} MiB`);
  }
  process.stderr.write('  layer products ...\n');
  const layers = layerTimes();
  console.log(`\nFrozen-weight products of one layer (y = x·Wᵀ and dx = dy·W), ${2048} tokens, median ms\n`);
  const layerColumns = ['layer', 'bf16 W', 'NF4 W', 'ratio'].map((title, i) => ({ title, right: i > 0 }));
  for (const line of renderTable(layerColumns, layers)) console.log(line);
  fs.mkdirSync(path.dirname(opts.json), { recursive: true });
  fs.writeFileSync(opts.json, JSON.stringify({ shape: SHAPE, batch: BATCH, seq: SEQ, rank: RANK, steps: opts.steps, results, layers }, null, 2));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
