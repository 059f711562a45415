'use strict';
// Runs the measurements: ours (GEMM and LoRA forward, one shape's tensors alive at a time), then
// each reference. Results are keyed by caseKey(shape, case, dtype).
const { CASES, shapeName, gemmOf } = require('./cases');
const { layerTensors, timeGemm, timeLowrankSweep } = require('./ours');
const { openblasReference } = require('./openblas');
const { findTorch, runTorch } = require('./torch_ref');

const progress = (text) => process.stderr.write(`  ${text}\n`);
const caseKey = (shape, caseId, dtype) => `${shapeName(shape)}/${caseId}/${dtype}`;
const caseById = (id) => CASES.find((c) => c.id === id);

/** Our GEMM and LoRA forward: { gemm: Map(key -> timing), lowrank: rows }. */
function measureOurs(opts, timing) {
  const gemm = new Map();
  const lowrank = [];
  for (const shape of opts.shapes) {
    progress(`ours ${shapeName(shape)}`);
    const tensors = layerTensors(shape, opts.dtypes);
    try {
      for (const caseId of opts.cases) {
        for (const dtype of opts.dtypes) {
          gemm.set(caseKey(shape, caseId, dtype), timeGemm(caseById(caseId), shape, dtype, tensors, timing));
        }
      }
      if (!opts.lowrankShapes.includes(shape) || opts.ranks.length === 0) continue;
      for (const dtype of opts.dtypes) {
        progress(`lowrank ${shapeName(shape)} ${dtype}`);
        const sweep = timeLowrankSweep(shape, opts.ranks, dtype, tensors, timing);
        for (const { r, seconds, ratio: measured } of sweep.ranks) {
          const ideal = 1 + (r * (shape.k + shape.n)) / (shape.n * shape.k);
          lowrank.push({ shape: shapeName(shape), dtype, r, linearMs: sweep.linear * 1e3, lowrankMs: seconds * 1e3, ratio: measured, flopRatio: ideal });
        }
      }
    } finally {
      tensors.dispose();
    }
  }
  return { gemm, lowrank };
}

function measureOpenblas(opts, timing, threads) {
  const ref = openblasReference(threads);
  const results = new Map();
  if (!ref.available) return { info: { available: false, reason: ref.reason }, results };
  let core = null;
  const errors = [];
  for (const shape of opts.shapes) {
    progress(`OpenBLAS ${shapeName(shape)}`);
    for (const caseId of opts.cases) {
      for (const dtype of opts.dtypes) {
        try {
          const r = ref.time(gemmOf(caseById(caseId), shape), dtype, timing);
          if (!r) continue;
          results.set(caseKey(shape, caseId, dtype), r);
          core = r.core;
        } catch (e) {
          // A reference that fails on one case leaves a gap in the table, not a failed benchmark.
          errors.push(`${caseKey(shape, caseId, dtype)}: ${e.message}`);
        }
      }
    }
  }
  const info = { available: true, sbgemm: ref.bf16, core, threads, errors };
  const notes = [];
  if (!ref.bf16) notes.push('bf16: this OpenBLAS has no cblas_sbgemm');
  if (errors.length > 0) notes.push(`${errors.length} cases failed (see the JSON)`);
  if (notes.length > 0) info.note = notes.join('; ');
  return { info, results };
}

function measureTorch(opts, timing, threads) {
  const found = findTorch();
  if (!found.available) return { info: { available: false, reason: found.reason }, results: new Map() };
  progress(`PyTorch (${found.python})`);
  const cases = [];
  for (const shape of opts.shapes) {
    for (const caseId of opts.cases) {
      const o = caseById(caseId).operands(shape);
      for (const dtype of opts.dtypes) {
        cases.push({ id: caseKey(shape, caseId, dtype), a: o.a.shape, b: o.b.shape, transA: o.transA, transB: o.transB, dtype });
      }
    }
  }
  let out;
  try {
    out = runTorch(found.python, cases, { threads, timing, maxRunSeconds: opts.quick ? 1.5 : 4 });
  } catch (e) {
    return { info: { available: false, reason: `failed (${e.message})` }, results: new Map() };
  }
  return { info: { available: true, python: found.python, version: out.version, blas: out.blas, threads: out.threads }, results: out.results };
}

module.exports = { measureOurs, measureOpenblas, measureTorch, caseKey, progress };
