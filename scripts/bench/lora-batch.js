'use strict';
// `npm run bench:lora-batch`: the multi-adapter LoRA kernel (ops.loraBatchForward) on a decode batch
// (one token per request) and a prefill batch: every request on the same adapter against every request
// on its own adapter (100 adapters of rank 16, S-LoRA's setting), and against the loop a model
// without the kernel would run: each adapter's two rank-r products over its rows, one op call each.
//
//   node scripts/bench/lora-batch.js [--json=PATH]
const fs = require('node:fs');
const path = require('node:path');

const { renderMarkdown, num, ratio } = require('./table');
const { timeInterleaved, NORMAL } = require('./timing');

const root = path.resolve(__dirname, '..', '..');
const { tensor, zeros, ops } = require(path.join(root, 'dist'));

function randomData(size, seed, scale) {
  const out = new Float32Array(size);
  let s = seed >>> 0;
  for (let i = 0; i < size; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = ((s >>> 8) / 16777216 - 0.5) * 2 * scale;
  }
  return out;
}

const ADAPTERS = 100, RANK = 16;

function bench(label, m, n, k, rowsPerRequest) {
  const adapters = Array.from({ length: ADAPTERS }, (_, i) => ({
    a: tensor(randomData(RANK * k, 2 * i + 1, 0.05), [RANK, k]), b: tensor(randomData(n * RANK, 2 * i + 2, 0.05), [n, RANK]), scale: 2,
  }));
  const x = tensor(randomData(m * k, 7, 1), [m, k]);
  const out = zeros([m, n]);
  const requests = m / rowsPerRequest;
  const same = Array.from({ length: m }, () => 0);
  const distinct = Array.from({ length: m }, (_, i) => Math.floor(i / rowsPerRequest) % ADAPTERS);
  // Without the kernel: per adapter, its rows' two rank-r products (x_s·Aᵀ, then ·Bᵀ), one op each.
  const xs = x.toFloat32Array();
  const slices = Array.from({ length: Math.min(requests, ADAPTERS) }, (_, r) => tensor(xs.slice(r * rowsPerRequest * k, (r + 1) * rowsPerRequest * k), [rowsPerRequest, k]));
  const perAdapter = () => {
    slices.forEach((rowsOfR, r) => {
      const xa = ops.matmul(rowsOfR, adapters[r].a, { transB: true });
      ops.matmul(xa, adapters[r].b, { transB: true, alpha: 2 }).dispose();
      xa.dispose();
    });
  };
  const { results } = timeInterleaved([
    () => ops.loraBatchForward(x, adapters, same, { out }),
    () => ops.loraBatchForward(x, adapters, distinct, { out }),
    perAdapter,
  ], { ...NORMAL, budget: 1 });
  const [s, d, loop] = results.map((r) => r.median);
  return { label, m, n, k, sameMs: s * 1e3, distinctMs: d * 1e3, loopMs: loop * 1e3, distinctOverSame: s / d, kernelOverLoop: loop / d };
}

const rows = [
  bench('decode, 32 requests, SmolLM-135M q_proj', 32, 576, 576, 1),
  bench('decode, 32 requests, 7B q_proj', 32, 4096, 4096, 1),
  bench('prefill, 8 requests x 64 tokens, SmolLM-135M q_proj', 512, 576, 576, 64),
];
const lines = [
  `Multi-adapter LoRA (rank ${RANK}, ${ADAPTERS} adapters), one call per batch:`,
  '',
  ...renderMarkdown(['batch', 'same adapter', 'distinct adapters', 'distinct / same speed', 'per-adapter loop', 'kernel speed-up over the loop'].map((title, i) => ({ title, right: i > 0 })),
    rows.map((r) => [r.label, `${num(r.sameMs, 3)} ms`, `${num(r.distinctMs, 3)} ms`, ratio(r.distinctOverSame), `${num(r.loopMs, 3)} ms`, ratio(r.kernelOverLoop)])),
];
console.log(lines.join('\n'));
const json = process.argv.find((a) => a.startsWith('--json='))?.slice(7) ?? path.join(root, '.bench-out', 'lora-batch.json');
fs.mkdirSync(path.dirname(json), { recursive: true });
fs.writeFileSync(json, JSON.stringify(rows, null, 2));
