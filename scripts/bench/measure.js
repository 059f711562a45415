'use strict';
// Runs the measurements: ours (GEMM and LoRA forward, one shape's tensors alive at a time) with
// OpenBLAS in the same rounds, then PyTorch. Results are keyed by caseKey(shape, case, dtype).
const { CASES, shapeName, gemmOf } = require('./cases');
const { layerTensors, timeGemm, timeLowrankSweep } = require('./ours');
const { pairedRounds } = require('./timing');
const { openblasReference } = require('./openblas');
const { findTorch, runTorch } = require('./torch_ref');

const progress = (text) => process.stderr.write(`  ${text}\n`);
const caseKey = (shape, caseId, dtype) => `${shapeName(shape)}/${caseId}/${dtype}`;
const caseById = (id) => CASES.find((c) => c.id === id);

/**
 * Our GEMM and LoRA forward, with OpenBLAS timed case by case in the same rounds (pairedRounds) when
 * opts.refs: { gemm: Map(key -> timing, with vsOpenblas), lowrank: rows, openblas: { info, results } }.
 */
function measureOurs(opts, timing, threads) {
  const gemm = new Map();
  const lowrank = [];
  const ref = opts.refs ? openblasReference(threads) : { available: false, reason: 'skipped (--no-refs)' };
  const openblas = new Map();
  const errors = [];
  let core = null;
  for (const shape of opts.shapes) {
    progress(`ours${ref.available ? ' and OpenBLAS' : ''} ${shapeName(shape)}`);
    const tensors = layerTensors(shape, opts.dtypes);
    try {
      for (const caseId of opts.cases) {
        for (const dtype of opts.dtypes) {
          const key = caseKey(shape, caseId, dtype);
          const c = caseById(caseId);
          // bf16 without cblas_sbgemm: ref.time returns null, so no reference and no error.
          const refTime = ref.available && (dtype !== 'bf16' || ref.bf16) ? () => ref.time(gemmOf(c, shape), dtype, timing) : null;
          const r = pairedRounds(opts.rounds, () => timeGemm(c, shape, dtype, tensors, timing), refTime);
          gemm.set(key, { ...r.ours, vsOpenblas: r.ratio });
          if (r.ref) {
            openblas.set(key, r.ref);
            core = r.ref.core;
          }
          // A reference that fails on one case leaves a gap in the table, not a failed benchmark.
          if (r.error) errors.push(`${key}: ${r.error}`);
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
  return { gemm, lowrank, openblas: { info: openblasInfo(ref, core, threads, errors), results: openblas } };
}

function openblasInfo(ref, core, threads, errors) {
  if (!ref.available) return { available: false, reason: ref.reason };
  const info = { available: true, sbgemm: ref.bf16, core, threads, errors };
  const notes = [];
  if (!ref.bf16) notes.push('bf16: this OpenBLAS has no cblas_sbgemm');
  if (errors.length > 0) notes.push(`${errors.length} cases failed (see the JSON)`);
  if (notes.length > 0) info.note = notes.join('; ');
  return info;
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

module.exports = { measureOurs, measureTorch, caseKey, progress };
