'use strict';
// The training benchmark's summary (per case: throughput, ratios, memory, GFLOP/s, phase shares)
// and its markdown tables.
const { renderMarkdown, num, pct, ratio } = require('./table');
const { median } = require('./timing');
const { stepFlops } = require('./train-flops');
const { SHAPE, RUN } = require('./train-model');

const PHASES = [
  ['gemm', 'GEMM (blocks)'], ['head', 'GEMM (head)'], ['attention', 'attention'], ['normAct', 'norms + act.'],
  ['loss', 'loss'], ['embedding', 'embedding'], ['optimizer', 'optimizer'],
];
const MiB = 2 ** 20;

/** One implementation's runs (all rounds) → { median, best, steps, peakRss, loss0 } or { error }. */
function timesOf(runs) {
  const ok = runs.filter((r) => r && !r.error);
  if (!ok.length) {
    const failed = runs.find((r) => r && r.error);
    return { error: failed?.error ?? 'not run', ...(failed?.stopped ? { stopped: true } : {}) };
  }
  const times = ok.flatMap((r) => r.times);
  const warm = ok.map((r) => r.peakAfterWarmup).filter((x) => x !== undefined);
  // CPU seconds over wall seconds: the cores the process kept busy (spinning waits count too).
  const cpu = ok.flatMap((r) => r.cpuTimes ?? []);
  const busyCores = cpu.length === times.length ? median(cpu.map((c, i) => c / times[i])) : null;
  return {
    median: median(times), best: Math.min(...times), steps: times.length, peakRss: Math.max(...ok.map((r) => r.peakRss)),
    peakAfterWarmup: warm.length ? Math.max(...warm) : null, busyCores, loss0: ok[0].loss0,
  };
}

/**
 * @param c the case; ours: our runs; torch: { fp32: runs, bf16: runs }; peaks: { f32, bf16 } GFLOP/s yardsticks;
 *   run: { shape, batch, seq } of the run (default: the configured one)
 * @returns the case's summary (also the JSON's)
 */
function summarize(c, ours, torch, peaks, run = { shape: SHAPE, batch: RUN.batch, seq: RUN.seq }) {
  const flops = stepFlops(run.shape, run.batch, run.seq, c);
  const tokens = run.batch * run.seq;
  const o = timesOf(ours);
  const refs = Object.fromEntries(Object.entries(torch).map(([mode, runs]) => [mode, timesOf(runs)]));
  const rate = (t) => (t.error ? null : tokens / t.median);
  const s = {
    id: c.id, title: c.title, flops, ours: { ...o, tokensPerSecond: rate(o), bestTokensPerSecond: o.error ? null : tokens / o.best }, torch: {},
  };
  for (const [mode, t] of Object.entries(refs)) {
    s.torch[mode] = { ...t, tokensPerSecond: rate(t), gflops: t.error ? null : flops.total / t.median / 1e9 };
    s.torch[mode].oursRatio = rate(o) && rate(t) ? rate(o) / rate(t) : null;
    s.torch[mode].memoryRatio = !o.error && !t.error ? o.peakRss / t.peakRss : null;
  }
  if (!o.error) {
    s.ours.gflops = flops.total / o.median / 1e9;
    s.ours.ofF32Peak = peaks.f32 ? s.ours.gflops / peaks.f32 : null;
    s.ours.ofBf16Peak = peaks.bf16 ? s.ours.gflops / peaks.bf16 : null;
    // Phase shares over every profiled (timed) step of every round.
    const ok = ours.filter((r) => r && !r.error);
    const total = ok.reduce((sum, r) => sum + r.times.reduce((a, b) => a + b, 0), 0);
    const shares = {};
    for (const [key] of PHASES) shares[key] = ok.reduce((sum, r) => sum + (r.phases[key] ?? 0), 0) / total;
    shares.other = 1 - Object.values(shares).reduce((a, b) => a + b, 0);
    s.ours.phaseShares = shares;
    s.ours.phaseSeconds = Object.fromEntries(Object.entries(shares).map(([k, v]) => [k, v * o.median]));
  }
  return s;
}

const pct1 = (x) => (x === null || x === undefined ? '-' : `${(100 * x).toFixed(1)}%`);
const cell = (t, f) => (t && !t.error ? f(t) : '-');

/** Markdown lines: the throughput / memory table, the phase table and the step's arithmetic. */
function markdownTables(summaries, modes) {
  const lines = [];
  const cols = [
    { title: 'case' }, { title: 'ours tok/s (best)', right: true },
    ...modes.map((m) => ({ title: `torch ${m} tok/s`, right: true })),
    ...modes.map((m) => ({ title: `ours / ${m}`, right: true })),
    { title: 'peak RSS ours MiB', right: true }, ...modes.map((m) => ({ title: `torch ${m} MiB`, right: true })),
    { title: 'ours GFLOP/s', right: true }, { title: '% f32 peak', right: true }, { title: '% bf16 peak', right: true },
  ];
  const rows = summaries.map((s) => [
    s.title,
    cell(s.ours, (o) => `${num(o.tokensPerSecond, 0)} (${num(o.bestTokensPerSecond, 0)})`),
    ...modes.map((m) => cell(s.torch[m], (t) => num(t.tokensPerSecond, 0))),
    ...modes.map((m) => (s.torch[m] && s.torch[m].oursRatio !== null ? ratio(s.torch[m].oursRatio) : '-')),
    cell(s.ours, (o) => num(o.peakRss / MiB, 0)),
    ...modes.map((m) => cell(s.torch[m], (t) => num(t.peakRss / MiB, 0))),
    cell(s.ours, (o) => num(o.gflops, 1)), cell(s.ours, (o) => pct(o.ofF32Peak)), cell(s.ours, (o) => pct(o.ofBf16Peak)),
  ]);
  lines.push(...renderMarkdown(cols, rows), '');
  if (summaries.some((s) => s.ours.peakAfterWarmup)) {
    const growth = (t) => cell(t, (x) => (x.peakAfterWarmup ? `${num(x.peakAfterWarmup / MiB, 0)} → ${num(x.peakRss / MiB, 0)}` : num(x.peakRss / MiB, 0)));
    const memCols = [{ title: 'case' }, { title: 'ours', right: true }, ...modes.map((m) => ({ title: `torch ${m}`, right: true }))];
    const memRows = summaries.map((s) => [s.title, growth(s.ours), ...modes.map((m) => growth(s.torch[m]))]);
    lines.push('Peak RSS in MiB after the warm-up step → after the timed steps:', '', ...renderMarkdown(memCols, memRows), '');
  }
  const phaseCols = [{ title: 'case' }, ...PHASES.map(([, title]) => ({ title, right: true })), { title: 'other', right: true }];
  const phaseRows = summaries.filter((s) => s.ours.phaseShares).map((s) => [
    s.title, ...PHASES.map(([key]) => pct1(s.ours.phaseShares[key])), pct1(s.ours.phaseShares.other),
  ]);
  lines.push('Share of our step time per phase:', '', ...renderMarkdown(phaseCols, phaseRows), '');
  const rateCols = ['case', 'GEMM (blocks)', 'GEMM (head)', 'attention', 'whole step'].map((title, i) => ({ title, right: i > 0 }));
  const rateRows = summaries.filter((s) => s.ours.phaseSeconds).map((s) => {
    const t = s.ours.phaseSeconds;
    return [s.title, num((s.flops.linear + s.flops.adapter) / t.gemm / 1e9, 1), num(s.flops.head / t.head / 1e9, 1), num(s.flops.attention / t.attention / 1e9, 1), num(s.ours.gflops, 1)];
  });
  lines.push('Our GFLOP/s by phase (the phase\'s counted FLOPs over its median time):', '', ...renderMarkdown(rateCols, rateRows), '');
  if (summaries.some((s) => s.ours.busyCores)) {
    const busy = (t) => cell(t, (x) => num(x.busyCores, 2));
    lines.push(`Cores kept busy during a step (CPU time / wall time, median; ours never spins, torch's OpenMP and OpenBLAS threads do): ${
      summaries.map((s) => `${s.id} ours ${busy(s.ours)}${modes.map((m) => `, ${m} ${busy(s.torch[m])}`).join('')}`).join('; ')}.`,
    `Ours per CPU-second (the step's GFLOP over its CPU time, which a loaded machine inflates less than wall time): ${
      summaries.map((s) => `${s.id} ${cell(s.ours, (o) => (o.busyCores ? num(o.gflops / o.busyCores, 1) : '-'))}`).join('; ')} GFLOP/s per busy core.`, '');
  }
  const G = 1e9;
  const flopCols = ['case', 'linear', 'LoRA/DoRA', 'attention', 'head', 'total'].map((title, i) => ({ title, right: i > 0 }));
  const flopRows = summaries.map((s) => [s.title, ...['linear', 'adapter', 'attention', 'head', 'total'].map((k) => num(s.flops[k] / G, 1))]);
  lines.push('GFLOP per step (forward + backward, counted as in train-flops.js):', '', ...renderMarkdown(flopCols, flopRows));
  return lines;
}

/**
 * One line per case for scripts to compare runs: `case=<id> tok_s=<n> torch_fp32_tok_s=<n>` and more
 * key=value fields (NA where a run failed or was not made). Keys never contain spaces.
 */
function machineLines(summaries) {
  const v = (x, digits = 1) => (x === null || x === undefined || !Number.isFinite(x) ? 'NA' : x.toFixed(digits));
  return summaries.map((s) => {
    const fp32 = s.torch.fp32;
    const fields = {
      case: s.id,
      tok_s: v(s.ours.tokensPerSecond),
      torch_fp32_tok_s: v(fp32?.tokensPerSecond),
      ratio_fp32: v(fp32?.oursRatio, 3),
      gflops: v(s.ours.gflops),
      of_f32_peak: v(s.ours.ofF32Peak, 3),
      peak_rss_mib: v(s.ours.peakRss === undefined || s.ours.error ? null : s.ours.peakRss / 2 ** 20, 0),
    };
    return Object.entries(fields).map(([k, x]) => `${k}=${x}`).join(' ');
  });
}

module.exports = { summarize, markdownTables, machineLines, PHASES };
