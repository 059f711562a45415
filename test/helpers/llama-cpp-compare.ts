/**
 * Running a GGUF in llama.cpp (node-llama-cpp, prebuilt, CPU; test/helpers/llama-cpp-greedy.mjs) and
 * comparing its next-token distributions with ours. node-llama-cpp is looked for beside the checkout
 * (../benchref/node_modules/node-llama-cpp, as for the forward benchmark).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import type { Model } from '../../lib';

export const NODE_LLAMA_CPP = path.resolve(__dirname, '..', '..', '..', 'benchref', 'node_modules', 'node-llama-cpp');
export const nodeLlamaCppInstalled = fs.existsSync(path.join(NODE_LLAMA_CPP, 'package.json'));
const HELPER = path.join(__dirname, 'llama-cpp-greedy.mjs');
/** Tokens compared by log-probability: llama.cpp's most likely ones at each step. */
export const TOP = 10;

export interface LlamaCppRun {
  /** Greedy tokens with llama.cpp's default context (f16 KV cache, flash attention "auto"). */
  tokens: number[];
  /** The same with an f32 KV cache and no flash attention, and each token's distribution, [steps][vocab]. */
  f32: { tokens: number[]; probabilities: number[][] };
}

/** llama.cpp's greedy continuation of `prompt` (token ids) by `steps` tokens, with a GGUF LoRA when given. */
export function runLlamaCpp(file: string, prompt: number[], steps: number, lora = ''): LlamaCppRun {
  const out = execFileSync(process.execPath, [HELPER, NODE_LLAMA_CPP, file, lora, JSON.stringify(prompt), String(steps), 'probabilities'], { encoding: 'utf8', timeout: 120_000, maxBuffer: 1 << 28 });
  return JSON.parse(out) as LlamaCppRun;
}

/** log-softmax in f64 (the logits are f32; f64 keeps the normalizer exact to far below the tolerances). */
export function logSoftmax(row: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) max = Math.max(max, row[i]);
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i] - max);
  const lse = max + Math.log(sum);
  return Float64Array.from(row, (v) => v - lse);
}

/**
 * Our next-token log-probabilities at the positions llama.cpp sampled from: one forward over the
 * prompt and the generated tokens but the last, rows prompt.length − 1 onwards.
 */
export async function ourLogProbs(model: Pick<Model, 'forward' | 'config'>, prompt: number[], generated: number[]): Promise<Float64Array[]> {
  const ids = [...prompt, ...generated.slice(0, -1)];
  const logits = (await model.forward([ids])).toFloat32Array();
  const V = model.config.vocabSize;
  return generated.map((_, i) => logSoftmax(logits.subarray((prompt.length - 1 + i) * V, (prompt.length + i) * V)));
}

/** How far one next-token distribution is from another (llama.cpp's). */
export interface Difference {
  /** max over the vocabulary of |p_ours − p_llama.cpp|. */
  prob: number;
  /** max over llama.cpp's top TOP tokens of |log p_ours − log p_llama.cpp|. */
  topLog: number;
}

export function stepDifference(ours: Float64Array, theirs: ArrayLike<number>): Difference {
  let prob = 0;
  for (let t = 0; t < theirs.length; t++) prob = Math.max(prob, Math.abs(Math.exp(ours[t]) - theirs[t]));
  const top = Array.from(theirs, (p, t) => [p, t]).sort((a, b) => b[0] - a[0]).slice(0, TOP).map(([, t]) => t);
  const topLog = Math.max(...top.map((t) => Math.abs(ours[t] - Math.log(theirs[t]))));
  return { prob, topLog };
}

/** The largest difference over all steps. */
export function worstDifference(ours: Float64Array[], theirs: ArrayLike<number>[]): Difference {
  const d = ours.map((lp, i) => stepDifference(lp, theirs[i]));
  return { prob: Math.max(...d.map((x) => x.prob)), topLog: Math.max(...d.map((x) => x.topLog)) };
}
