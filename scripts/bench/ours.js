'use strict';
// Times peft-native's own kernels through the public API: ops.matmul for the GEMM table, and
// ops.lowrankForward against a plain ops.matmul for the LoRA table.
const { tensor, zeros, ops } = require('../../dist');
const { median, timeMedian, timeInterleaved } = require('./timing');

/** Uniform values in [-0.5, 0.5) from a fixed-seed LCG: the data is irrelevant to speed, NaNs and
 * denormals are not, and Math.random over 100M elements is needlessly slow. */
function randomData(size, seed) {
  const out = new Float32Array(size);
  let s = seed >>> 0;
  for (let i = 0; i < size; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s >>> 8) / 16777216 - 0.5;
  }
  return out;
}

/** The layer's tensors x [M,K], W [N,K], dy [M,N], in every requested dtype (same values). */
function layerTensors({ m, n, k }, dtypes) {
  const shapes = { x: [m, k], W: [n, k], dy: [m, n] };
  const byDtype = Object.fromEntries(dtypes.map((d) => [d, {}]));
  let seed = 1;
  for (const [name, shape] of Object.entries(shapes)) {
    const data = randomData(shape[0] * shape[1], seed++);
    for (const d of dtypes) byDtype[d][name] = tensor(data, shape, d);
  }
  return {
    get: (dtype, name) => byDtype[dtype][name],
    dispose: () => Object.values(byDtype).forEach((set) => Object.values(set).forEach((t) => t.dispose())),
  };
}

/** ops.matmul into a preallocated output, so the time is the kernel's and not page faults'. */
function timeGemm(caseDef, shape, dtype, tensors, timing) {
  const o = caseDef.operands(shape);
  const a = tensors.get(dtype, o.a.name);
  const b = tensors.get(dtype, o.b.name);
  const out = zeros([o.gemm.m, o.gemm.n]);
  try {
    const t = timeMedian(() => ops.matmul(a, b, { transA: o.transA, transB: o.transB, out }), timing);
    const flops = 2 * shape.m * shape.n * shape.k;
    return { ...t, gflops: flops / t.median / 1e9, bestGflops: flops / t.best / 1e9 };
  } finally {
    out.dispose();
  }
}

/**
 * The fused LoRA forward at each rank r (A [r,K], B [N,r] f32, as trainable parameters are) against
 * the plain y = x·Wᵀ it extends, interleaved round by round; both allocate their outputs, as a
 * real forward does. Returns { linear: seconds, ranks: [{ r, seconds, ratio }] }, where ratio is the
 * median of the per-round ratios.
 */
function timeLowrankSweep(shape, ranks, dtype, tensors, timing) {
  const x = tensors.get(dtype, 'x');
  const W = tensors.get(dtype, 'W');
  const adapters = ranks.map((r) => ({
    A: tensor(randomData(r * shape.k, 11), [r, shape.k]),
    B: tensor(randomData(shape.n * r, 12), [shape.n, r]),
  }));
  try {
    const linear = () => ops.matmul(x, W, { transB: true }).dispose();
    const fused = adapters.map(({ A, B }) => () => {
      const { y, xa } = ops.lowrankForward(x, W, A, B, { scale: 2 });
      y.dispose();
      xa.dispose();
    });
    const { results } = timeInterleaved([linear, ...fused], timing);
    const base = results[0];
    return {
      linear: base.median,
      ranks: ranks.map((r, i) => {
        const t = results[i + 1];
        return { r, seconds: t.median, ratio: median(t.times.map((v, round) => v / base.times[round])) };
      }),
    };
  } finally {
    adapters.forEach(({ A, B }) => {
      A.dispose();
      B.dispose();
    });
  }
}

module.exports = { layerTensors, timeGemm, timeLowrankSweep };
