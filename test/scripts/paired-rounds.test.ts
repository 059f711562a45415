/**
 * `npm run bench` times ours and OpenBLAS in turn, round by round (scripts/bench/timing.js
 * pairedRounds), and reports the median of the per-round ratios, which a slow spell on a shared
 * machine moves far less than the ratio of the two medians.
 */
const timing = require('../../scripts/bench/timing.js') as {
  pairedRounds(
    rounds: number,
    ours: () => Record<string, number>,
    ref: (() => Record<string, number> | null) | null,
  ): { ours: Record<string, number>; ref: Record<string, number> | null; ratio: number | null; error: string | null };
};
const args = require('../../scripts/bench/args.js') as { parseArgs(argv: string[]): { rounds: number } };

// Each call returns the next of the given GFLOP/s figures, as timeMedian's result.
function sequence(gflops: number[], extra: Record<string, number> = {}) {
  let i = 0;
  return () => {
    const g = gflops[i++];
    return { gflops: g, median: 1 / g, best: 0.9 / g, bestGflops: g / 0.9, reps: 5, ...extra };
  };
}

it('takes the median of the per-round ratios, not the ratio of the medians', () => {
  // Round 2 ran on a slow machine for both; round 3 slowed only the reference a little.
  const r = timing.pairedRounds(3, sequence([200, 100, 190]), sequence([200, 100, 200]));
  expect(r.ratio).toBeCloseTo(1, 12); // per-round ratios 1, 1, 0.95
  expect(r.ours.gflops / r.ref!.gflops).toBeCloseTo(0.95, 12); // what separate medians would say
  expect(r.ours.gflops).toBe(190);
  expect(r.ours.reps).toBe(15);
  expect(r.ours.bestGflops).toBeCloseTo(200 / 0.9, 12);
  expect(r.ref!.rounds).toBe(3);
  expect(r.error).toBeNull();
});

it('alternates ours and the reference within each round', () => {
  const calls: string[] = [];
  timing.pairedRounds(2, () => (calls.push('ours'), sequence([1])()), () => (calls.push('ref'), sequence([1])()));
  expect(calls).toEqual(['ours', 'ref', 'ours', 'ref']);
});

it('keeps ours when there is no reference or it fails part-way', () => {
  const alone = timing.pairedRounds(2, sequence([10, 30]), null);
  expect(alone.ratio).toBeNull();
  expect(alone.ref).toBeNull();
  expect(alone.ours.gflops).toBe(20);

  let n = 0;
  const flaky = () => {
    if (n++ === 1) throw new Error('openblas exited 1');
    return sequence([50])();
  };
  const r = timing.pairedRounds(3, sequence([100, 100, 100]), flaky);
  expect(r.error).toBe('openblas exited 1');
  expect(r.ref!.rounds).toBe(1); // dropped after the failure
  expect(r.ratio).toBe(2);
  expect(r.ours.rounds).toBe(3);
});

it('parses --rounds and rejects a bad count', () => {
  expect(args.parseArgs([]).rounds).toBe(3);
  expect(args.parseArgs(['--rounds=5']).rounds).toBe(5);
  expect(() => args.parseArgs(['--rounds=0'])).toThrow(/--rounds/);
  expect(() => args.parseArgs(['--rounds=two'])).toThrow(/--rounds/);
});
