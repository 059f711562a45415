'use strict';
// 4-bit (NF4) dequantization throughput, in bytes of f32 output per second, against this machine's
// copy bandwidth measured here (memcpy of the same number of bytes between preallocated buffers),
// per instruction-set variant and thread count; plus quantization speed and stored bits per
// parameter. Needs `npm run build`. Usage: node scripts/bench/nf4.js [--elements=33554432]
const { tensor, zeros, quantize, dequantize, runtime } = require('../../dist');
const { timeMedian, NORMAL } = require('./timing');

const arg = process.argv.find((a) => a.startsWith('--elements='));
const n = arg ? Number(arg.split('=')[1]) : 1 << 25; // 128 MiB of f32 output: far beyond the caches

const values = new Float32Array(n);
for (let i = 0, s = 1; i < n; i++) {
  s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
  values[i] = (s >>> 8) / 16777216 - 0.5;
}
const gbps = (seconds) => (n * 4) / seconds / 1e9;

const src = new Float32Array(values);
const dst = new Float32Array(n);
const copy = gbps(timeMedian(() => dst.set(src), NORMAL).median);

const x = tensor(values, [n / 4096, 4096]);
const q = quantize(x, { quant_type: 'nf4', blocksize: 64, double_quant: true });
const out = zeros([n / 4096, 4096]);
const threads = runtime.numThreads();
const initialIsa = runtime.getIsa();

const rows = [];
for (const isa of runtime.supportedIsas().filter((i) => i !== 'avx512bf16')) {
  runtime.setIsa(isa);
  for (const t of [...new Set([1, threads])]) {
    runtime.setNumThreads(t);
    const deq = gbps(timeMedian(() => dequantize(q, { out }), NORMAL).median);
    const quant = gbps(timeMedian(() => quantize(x, { quant_type: 'nf4', blocksize: 64 }).dispose(), NORMAL).median);
    rows.push({ isa, threads: t, 'dequantize GB/s': deq.toFixed(2), 'vs copy': `${((100 * deq) / copy).toFixed(0)}%`, 'quantize GB/s (f32 in)': quant.toFixed(2) });
  }
}
runtime.setNumThreads(threads);
runtime.setIsa(initialIsa);

console.log(`${n} elements; copy bandwidth (memcpy, 1 thread): ${copy.toFixed(2)} GB/s`);
console.log(`stored bits per parameter (NF4, blocksize 64, double quantization): ${q.bitsPerParameter.toFixed(4)}`);
console.table(rows);
