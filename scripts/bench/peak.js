'use strict';
// This machine's measured arithmetic peak, per instruction-set variant, single-threaded and with
// one thread per physical core: the yardstick for "% of peak" in the GEMM table.
const path = require('node:path');
const { scratchDir, compile, runJson } = require('./toolchain');

// Each variant is compiled with only its own -m flags; `needs` are runtime.cpuFeatures() keys, the
// variant's defining feature last (the one named when missing).
const VARIANTS = [
  { name: 'avx2', flags: ['-mavx2', '-mfma'], needs: ['fma', 'avx2'], what: 'f32 FMA, 256-bit' },
  { name: 'avx512', flags: ['-mavx512f'], needs: ['avx512f'], what: 'f32 FMA, 512-bit' },
  { name: 'avx512bf16', flags: ['-mavx512f', '-mavx512bf16'], needs: ['avx512f', 'avx512bf16'], what: 'bf16 dot product (dpbf16ps)' },
];

/**
 * Measures every variant the CPU has.
 * @param features runtime.cpuFeatures()
 * @param cpus logical CPU ids, one per physical core (null: unpinned, features.physicalCores threads)
 * @returns { variants: { [name]: { what, single, all, threads } | { what, missing } }, f32, bf16 }
 */
function measurePeaks(features, cpus, { seconds = 0.3 } = {}) {
  const source = path.join(__dirname, 'peak.cpp');
  const allCpus = cpus ? cpus.join(',') : `x${features.physicalCores}`;
  const oneCpu = cpus ? String(cpus[0]) : 'x1';
  const variants = {};
  for (const v of VARIANTS) {
    const lacking = v.needs.filter((f) => !features[f]);
    if (lacking.length > 0) {
      variants[v.name] = { what: v.what, missing: `n/a (CPU lacks ${lacking[lacking.length - 1]})` };
      continue;
    }
    const bin = path.join(scratchDir(), `peak-${v.name}`);
    const c = compile('g++', ['-O2', '-std=c++17', '-pthread', ...v.flags, source, '-o', bin]);
    if (!c.ok) {
      variants[v.name] = { what: v.what, missing: `n/a (g++ could not build it: ${c.output.split('\n')[0]})` };
      continue;
    }
    const single = runJson(bin, [v.name, oneCpu, String(seconds)]);
    const all = runJson(bin, [v.name, allCpus, String(seconds)]);
    variants[v.name] = { what: v.what, single: single.gflops, all: all.gflops, threads: all.threads, flopsPerInstr: all.flopsPerInstr };
  }
  return withYardsticks(variants);
}

/**
 * The better of two measurements, variant by variant: on a shared machine a slow spell can catch
 * one of them, and a peak measured low would flatter every "% of peak".
 */
function maxPeaks(a, b, isa) {
  const variants = {};
  for (const [name, v] of Object.entries(a.variants)) {
    const w = b.variants[name];
    variants[name] = v.missing || !w || w.missing ? v : { ...v, single: Math.max(v.single, w.single), all: Math.max(v.all, w.all) };
  }
  return withYardsticks(variants, isa);
}

// The f32 FMA variants our kernels may run, widest last, and the one each kernel set multiplies with.
const F32_ORDER = ['avx2', 'avx512'];
const F32_OF_ISA = { avx2: 'avx2', avx512: 'avx512', avx512bf16: 'avx512' };

/**
 * The yardsticks. Without `isa`: the widest FMA the CPU runs for f32, and for bf16 x bf16 GEMMs the
 * dpbf16ps peak where the CPU has it, else the f32 one (bf16 operands are then widened to f32 and
 * multiplied with f32 FMAs). With `isa` (runtime.getIsa(), e.g. a run under PEFT_ISA=avx2): the
 * peak of the instructions that kernel set uses, so a forced AVX2 run is measured against AVX2's
 * peak, not AVX-512's. The scalar set has no vector peak of its own; it gets the default.
 */
function withYardsticks(variants, isa) {
  const measured = (n) => (variants[n] && variants[n].all !== undefined ? variants[n] : null);
  const widest = [...F32_ORDER].reverse().map(measured).find(Boolean) || null;
  const f32 = (isa && F32_OF_ISA[isa] && measured(F32_OF_ISA[isa])) || widest;
  const dot = (!isa || isa === 'avx512bf16' || !F32_OF_ISA[isa]) && measured('avx512bf16');
  const bf16 = dot || f32;
  return {
    variants,
    isa: isa || null,
    f32: f32 && { single: f32.single, all: f32.all },
    bf16: bf16 && { single: bf16.single, all: bf16.all, via: dot ? 'avx512bf16' : 'f32 FMA' },
  };
}

module.exports = { measurePeaks, maxPeaks, withYardsticks, VARIANTS };
