/**
 * The loop of a bounded fuzz test: seeded cases within a time budget, each in its own folder, each
 * answered by an outcome label or a failure that names the seed and case (and keeps its files).
 *
 * PEFT_FUZZ_SEED picks the run, PEFT_FUZZ_CASE replays one case, PEFT_FUZZ_MS overrides the time
 * budget (longer runs), PEFT_FUZZ_VERBOSE prints the outcome counts.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { PeftError } from '../../lib/errors';
import { rng } from './random';
import type { Random } from './mutate';

export interface FuzzLoopOptions {
  /** Names the run in messages and kept folders, e.g. 'adapter'. */
  name: string;
  seed: number;
  budgetMs: number;
  maxCases: number;
  /** Cases run even past the budget, so a slow or loaded machine still meets the test's minimum count. */
  minCases?: number;
  /** A case slower than this counts as a hang. */
  slowMs?: number;
}

export interface FuzzCase {
  /** What was mutated, for the failure message. */
  description: string;
}

export interface FuzzRun {
  cases: number;
  counts: Map<string, number>;
  /** True when PEFT_FUZZ_CASE replayed a single case (then counts hold just that one). */
  replay: boolean;
}

let lastMessage = '';

/** The outcome label of a PeftError: its code (and `stage` when given); anything else is rethrown. */
export function peftOutcome(e: unknown, stage = ''): string {
  if (e instanceof PeftError) {
    lastMessage = e.message;
    return `${stage ? `${stage} ` : ''}${e.code}`;
  }
  throw e;
}

/**
 * Runs cases 0, 1, ... until the budget or maxCases is reached. `make` writes case i into `dir` from
 * its own random stream (so one case replays alone); `exercise` returns the outcome's label and
 * throws only for a finding (a non-PeftError, a broken invariant).
 */
export async function fuzzLoop<C extends FuzzCase>(
  options: FuzzLoopOptions,
  make: (i: number, random: Random, dir: string) => C,
  exercise: (c: C, dir: string) => Promise<string>,
): Promise<FuzzRun> {
  const seed = Number(process.env.PEFT_FUZZ_SEED ?? options.seed);
  const only = process.env.PEFT_FUZZ_CASE === undefined ? undefined : Number(process.env.PEFT_FUZZ_CASE);
  const budget = Number(process.env.PEFT_FUZZ_MS ?? options.budgetMs);
  const maxCases = process.env.PEFT_FUZZ_MS ? Infinity : options.maxCases;
  const minCases = options.minCases ?? 0;
  const slowMs = options.slowMs ?? 10000;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `peft-${options.name}-fuzz-`));
  const counts = new Map<string, number>();
  const examples = new Map<string, string>();
  const start = Date.now();
  let cases = 0;
  try {
    for (let i = only ?? 0; only === undefined ? cases < maxCases && (cases < minCases || Date.now() - start < budget) : i === only; i++) {
      const random = rng((Math.imul(seed, 0x9e3779b1) ^ Math.imul(i + 1, 0x85ebca6b)) >>> 0);
      const dir = path.join(tmp, `case-${i}`);
      fs.mkdirSync(dir);
      const c = make(i, random, dir);
      const failure = (what: string) => {
        const kept = path.join(os.tmpdir(), `peft-${options.name}-fuzz-seed${seed}-case${i}`);
        fs.cpSync(dir, kept, { recursive: true, dereference: true });
        return new Error(`${options.name} fuzz: PEFT_FUZZ_SEED=${seed} PEFT_FUZZ_CASE=${i} (${c.description}; files kept in ${kept}) ${what}`);
      };
      const t0 = Date.now();
      let outcome: string;
      lastMessage = '';
      try {
        outcome = await exercise(c, dir);
      } catch (e) {
        throw failure(`failed: ${e instanceof Error ? e.stack : String(e)}`);
      }
      const ms = Date.now() - t0;
      if (ms > slowMs) throw failure(`took ${ms} ms`);
      counts.set(outcome, (counts.get(outcome) ?? 0) + 1);
      if (lastMessage && process.env.PEFT_FUZZ_VERBOSE === '2') {
        const key = `${outcome}: ${lastMessage.replace(/[\d.]+/g, 'N').slice(0, 100)}`;
        if (!examples.has(key)) examples.set(key, `case ${i}, ${c.description}: ${lastMessage.slice(0, 300)}`);
      }
      fs.rmSync(dir, { recursive: true, force: true });
      cases++;
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  if (process.env.PEFT_FUZZ_VERBOSE) console.log(`${options.name}: ${cases} cases in ${Date.now() - start} ms`, Object.fromEntries(counts));
  if (examples.size) console.log([...examples.values()].join('\n'));
  return { cases, counts, replay: only !== undefined };
}

/** The number of cases whose label starts with `prefix`. */
export function countOf(run: FuzzRun, prefix: string): number {
  let n = 0;
  for (const [k, v] of run.counts) if (k.startsWith(prefix)) n += v;
  return n;
}
