'use strict';
// Turns the measurements into table rows (also the JSON's) and prints the three tables.
const { CASES, shapeName, gemmOf } = require('./cases');
const { caseKey } = require('./measure');
const { renderTable, num, pct, ratio } = require('./table');

function printPeaks(peaks, threads) {
  const rows = Object.entries(peaks.variants).map(([name, v]) =>
    v.missing ? [name, v.what, '-', '-', v.missing] : [name, v.what, num(v.single), num(v.all), ''],
  );
  const cols = [
    { title: 'variant' }, { title: 'instructions' }, { title: '1 thread', right: true },
    { title: `${threads} threads`, right: true }, { title: '' },
  ];
  console.log('\nMeasured peak (GFLOP/s, the better of a run before and after the GEMMs; FMA lane = 2 flops,');
  console.log('dpbf16ps f32 lane = 2 bf16 products + 2 adds = 4 flops)');
  console.log(renderTable(cols, rows).join('\n'));
  console.log(`"% of peak" uses ${num(peaks.f32.all)} GFLOP/s for f32 operands and ${num(peaks.bf16.all)} (${peaks.bf16.via}) for bf16 operands.`);
}

function gemmRows(opts, peaks, ours, openblas, torch) {
  const rows = [];
  for (const shape of opts.shapes) {
    for (const caseId of opts.cases) {
      const c = CASES.find((x) => x.id === caseId);
      const g = gemmOf(c, shape);
      for (const dtype of opts.dtypes) {
        const k = caseKey(shape, caseId, dtype);
        const mine = ours.get(k);
        const peak = dtype === 'bf16' ? peaks.bf16.all : peaks.f32.all;
        const ob = openblas.get(k);
        const th = torch.get(k);
        rows.push({
          id: caseId,
          case: c.label,
          shape: shapeName(shape),
          gemm: `${g.m}x${g.n}x${g.k}`,
          dtype,
          gflops: mine.gflops,
          bestGflops: mine.bestGflops,
          ms: mine.median * 1e3,
          reps: mine.reps,
          fractionOfPeak: mine.gflops / peak,
          openblas: ob ? ob.gflops : null,
          vsOpenblas: ob ? (mine.vsOpenblas ?? mine.gflops / ob.gflops) : null,
          rounds: mine.rounds ?? 1,
          torch: th && th.gflops !== undefined ? th.gflops : null,
          torchProbe: Boolean(th && th.probe),
          vsTorch: th && th.gflops ? mine.gflops / th.gflops : null,
        });
      }
    }
  }
  return rows;
}

function printGemm(rows, threads) {
  const cols = [
    { title: 'case' }, { title: 'shape MxNxK' }, { title: 'GEMM mxnxk' }, { title: 'dtype' },
    { title: 'ours GFLOP/s', right: true }, { title: 'best', right: true }, { title: '% peak', right: true },
    { title: 'OpenBLAS', right: true }, { title: 'ours/OB', right: true },
    { title: 'torch', right: true }, { title: 'ours/torch', right: true },
  ];
  const cells = rows.map((r) => [
    r.case, r.shape, r.gemm, r.dtype, num(r.gflops), num(r.bestGflops), pct(r.fractionOfPeak),
    num(r.openblas), ratio(r.vsOpenblas),
    r.torch === null ? '-' : `${r.torchProbe ? '~' : ''}${num(r.torch)}`, ratio(r.vsTorch),
  ]);
  console.log(`\nGEMM, ${threads} threads (GFLOP/s = 2·M·N·K / median time, best = fastest run; % peak of the median;`);
  console.log('shape = tokens M x out N x in K, GEMM = the m x n x k the kernel sees; references give medians;');
  console.log(`ours and OpenBLAS take turns over ${rows[0]?.rounds ?? 1} rounds per case: GFLOP/s = median over rounds, ours/OB = median of per-round ratios)`);
  console.log(renderTable(cols, cells).join('\n'));
}

function printReferences(openblas, torch) {
  const describe = (name, info, text) => console.log(`${name}: ${info.available ? text() : info.reason}`);
  describe('OpenBLAS', openblas, () => `core ${openblas.core}, ${openblas.threads} threads${openblas.note ? `; ${openblas.note}` : ''}`);
  describe('PyTorch', torch, () => `${torch.version} (BLAS ${torch.blas}, ${torch.threads} threads, ${torch.python}); ~ = estimated on a slice of rows (a full call would take too long)`);
}

function printLowrank(rows) {
  const cols = [
    { title: 'shape MxNxK' }, { title: 'dtype' }, { title: 'r', right: true },
    { title: 'x·Wᵀ ms', right: true }, { title: 'lowrank ms', right: true }, { title: 'ratio', right: true },
    { title: 'flop ratio', right: true }, { title: '≤1.15x?' },
  ];
  const cells = rows.map((r) => [
    r.shape, r.dtype, String(r.r), num(r.linearMs, 2), num(r.lowrankMs, 2), ratio(r.ratio), ratio(r.flopRatio),
    Math.round(r.ratio * 100) / 100 <= 1.15 ? 'yes' : 'no', // judged as printed
  ]);
  console.log('\nFused LoRA forward: ops.lowrankForward(x, W, A, B) vs ops.matmul(x, W, {transB}), timed in alternation');
  console.log('(ratio = median of per-round ratios; both allocate y, under fixed glibc malloc thresholds (see gemm.js);');
  console.log('A, B are f32; flop ratio = 1 + r·(K+N)/(N·K), the least extra work the LoRA branch can cost, so a ratio');
  console.log('near it is as good as the GEMM allows)');
  console.log(renderTable(cols, cells).join('\n'));
}

module.exports = { printPeaks, gemmRows, printGemm, printReferences, printLowrank };
