'use strict';
// One timing policy for every measurement we take in Node (openblas.c and torch_ref.py follow the
// same one): a warm-up call, then as many timed calls as fit the budget within minReps..maxReps,
// and the median, which shrugs off the odd slow run on a shared machine.

const NORMAL = { minReps: 3, maxReps: 15, budget: 1.0 };
const QUICK = { minReps: 1, maxReps: 3, budget: 0.2 }; // a smoke run: one timed call for big shapes

function median(values) {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : 0.5 * (s[mid - 1] + s[mid]);
}

function seconds(fn) {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/** Times fn(); returns { median, best, reps } in seconds (best: the fastest run, a hint of noise). */
function timeMedian(fn, { minReps, maxReps, budget }) {
  const first = seconds(fn);
  const reps = Math.max(minReps, Math.min(maxReps, Math.floor(budget / Math.max(first, 1e-9))));
  const times = [];
  for (let i = 0; i < reps; i++) times.push(seconds(fn));
  return { median: median(times), best: Math.min(...times), reps };
}

/**
 * Times several functions in rounds (each runs once per round, in turn), so that a slow spell on a
 * shared machine hits all of them alike and per-round ratios stay meaningful. The budget is per
 * function. Returns { reps, results }, with { median, times } per function (times[i] from round i).
 */
function timeInterleaved(fns, { minReps, maxReps, budget }) {
  const round = fns.reduce((sum, fn) => sum + seconds(fn), 0); // the warm-up round
  const reps = Math.max(minReps, Math.min(maxReps, Math.floor((budget * fns.length) / Math.max(round, 1e-9))));
  const times = fns.map(() => []);
  for (let i = 0; i < reps; i++) fns.forEach((fn, j) => times[j].push(seconds(fn)));
  return { reps, results: times.map((t) => ({ median: median(t), times: t })) };
}

/**
 * Times one case against a reference in rounds, `ours()` then `ref()` in each, so that a slow spell
 * on a shared machine lands on both sides of a round's ratio. Each returns { gflops, median, ... }
 * (a whole timeMedian); `ref` may be null, and a ref that throws or returns null is dropped for the
 * remaining rounds (its error kept). Returns { ours, ref, ratio, error }: ours and ref carry the
 * median GFLOP/s and seconds over rounds (ours also the best run and all reps), ratio is the median
 * of the per-round ours/ref ratios (null without a reference).
 */
function pairedRounds(rounds, ours, ref) {
  const mine = [];
  const theirs = [];
  const ratios = [];
  let error = null;
  for (let i = 0; i < rounds; i++) {
    const a = ours();
    mine.push(a);
    if (!ref || error) continue;
    let b = null;
    try {
      b = ref();
    } catch (e) {
      error = e instanceof Error ? e.message : String(e);
    }
    if (!b) {
      error = error ?? 'no result';
      continue;
    }
    theirs.push(b);
    ratios.push(a.gflops / b.gflops);
  }
  const summary = (runs) => ({
    ...runs[runs.length - 1],
    gflops: median(runs.map((r) => r.gflops)),
    median: median(runs.map((r) => r.median)),
    rounds: runs.length,
  });
  const oursSummary = {
    ...summary(mine),
    best: Math.min(...mine.map((r) => r.best)),
    bestGflops: Math.max(...mine.map((r) => r.bestGflops)),
    reps: mine.reduce((n, r) => n + r.reps, 0),
  };
  // A reference that failed part-way has fewer rounds than ours; its ratio uses the rounds it has.
  return { ours: oursSummary, ref: theirs.length ? summary(theirs) : null, ratio: ratios.length ? median(ratios) : null, error };
}

module.exports = { NORMAL, QUICK, median, timeMedian, timeInterleaved, pairedRounds };
