// GGUF files of the decoder specs that llama.cpp also reads (Llama, Qwen3 with its per-head q/k norms,
// Phi-3 with its fused projections, Gemma 2 with its sandwich norms, soft-caps and alternating window,
// Mixtral with its stacked experts),
// written with random weights and a byte-level BPE vocabulary llama.cpp accepts
// (scripts/bench/make-smollm-gguf.js): our greedy continuation of a prompt equals llama.cpp's
// (node-llama-cpp, prebuilt, CPU), and so do our next-token distributions at every step (llama.cpp's
// are the softmax of its logits; test/helpers/llama-cpp-greedy.mjs). Runs when node-llama-cpp is
// installed beside the checkout (../benchref/node_modules/node-llama-cpp, as for the forward
// benchmark); skipped otherwise.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { loadModel, type Model } from '../../lib';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { makeSmollmGguf } = require('../../scripts/bench/make-smollm-gguf');

const NODE_LLAMA_CPP = path.resolve(__dirname, '..', '..', '..', 'benchref', 'node_modules', 'node-llama-cpp');
const installed = fs.existsSync(path.join(NODE_LLAMA_CPP, 'package.json'));
const HELPER = path.join(__dirname, '..', 'helpers', 'llama-cpp-greedy.mjs');
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

const SHAPES = { hidden: 64, layers: 2, heads: 4, kvHeads: 2, headDim: 16, ffn: 96, vocab: 320, context: 128 };
const PROMPT = [5, 17, 42, 99, 7, 200, 31];  // longer than Gemma 2's window of 4
const STEPS = 16;
const TOP = 10;

// Mixtral is a llama-architecture file with stacked experts.
const CASES = [['llama', 0], ['qwen3', 0], ['phi3', 0], ['gemma2', 0], ['llama', 4]] as const;

interface LlamaCppRun {
  tokens: number[];
  /** [STEPS][vocab]: the distribution each token was chosen from. */
  probabilities: number[][];
}

function runLlamaCpp(file: string, prompt: number[], steps: number): LlamaCppRun {
  const out = execFileSync(process.execPath, [HELPER, NODE_LLAMA_CPP, file, '', JSON.stringify(prompt), String(steps), 'probabilities'], { encoding: 'utf8', timeout: 120_000, maxBuffer: 1 << 28 });
  return JSON.parse(out) as LlamaCppRun;
}

/** log-softmax in f64 (the logits are f32; f64 keeps the normalizer exact to far below the tolerances). */
function logSoftmax(row: ArrayLike<number>): Float64Array {
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
async function ourLogProbs(model: Model, prompt: number[], generated: number[]): Promise<Float64Array[]> {
  const ids = [...prompt, ...generated.slice(0, -1)];
  const logits = (await model.forward([ids])).toFloat32Array();
  const V = model.config.vocabSize;
  return generated.map((_, i) => logSoftmax(logits.subarray((prompt.length - 1 + i) * V, (prompt.length + i) * V)));
}

interface StepDifference {
  /** max over the vocabulary of |p_ours − p_llama.cpp|. */
  prob: number;
  /** max over llama.cpp's top TOP tokens of |log p_ours − log p_llama.cpp|. */
  topLog: number;
}

function stepDifference(ours: Float64Array, theirs: number[]): StepDifference {
  let prob = 0;
  for (let t = 0; t < theirs.length; t++) prob = Math.max(prob, Math.abs(Math.exp(ours[t]) - theirs[t]));
  const top = theirs.map((p, t) => [p, t]).sort((a, b) => b[0] - a[0]).slice(0, TOP).map(([, t]) => t);
  const topLog = Math.max(...top.map((t) => Math.abs(ours[t] - Math.log(theirs[t]))));
  return { prob, topLog };
}

function worst(diffs: StepDifference[]): StepDifference {
  return { prob: Math.max(...diffs.map((d) => d.prob)), topLog: Math.max(...diffs.map((d) => d.topLog)) };
}

(installed ? describe : describe.skip).each(CASES)('%s GGUF (%i experts) in llama.cpp', (arch, experts) => {
  it(`greedy decoding gives llama.cpp's ${STEPS} tokens, and every step's distribution is llama.cpp's`, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `interop-${arch}-${experts}-`));
    dirs.push(dir);
    const file = path.join(dir, 'model.gguf');
    makeSmollmGguf({ out: file, shapes: SHAPES, arch, std: 0.3, seed: 7, experts });
    const model = await loadModel(file);
    expect(model.config.modelType).toBe(arch);
    expect(model.config.qkNorm).toBe(arch === 'qwen3');
    expect(model.config.fusedProjections).toBe(arch === 'phi3');
    expect(model.config.numExperts ?? 0).toBe(experts);
    const ours = (await model.generate(PROMPT, { maxNewTokens: STEPS, temperature: 0 })).tokens;
    const theirs = runLlamaCpp(file, PROMPT, STEPS);
    expect(ours).toEqual(theirs.tokens);
    const logProbs = await ourLogProbs(model, PROMPT, theirs.tokens);
    const diffs = logProbs.map((lp, i) => stepDifference(lp, theirs.probabilities[i]));
    console.log(arch, experts, JSON.stringify(worst(diffs)), JSON.stringify(diffs.map((d) => [d.prob.toExponential(1), d.topLog.toExponential(1)])));
    // Perturbations: a different prompt on our side, and a wrong RoPE base.
    const other = await ourLogProbs(model, [6, ...PROMPT.slice(1)], theirs.tokens);
    console.log('  other prompt', JSON.stringify(worst(other.map((lp, i) => stepDifference(lp, theirs.probabilities[i])))));
    for (const ropeBase of [20000, 11000]) {
      const pfile = path.join(dir, `rope-${ropeBase}.gguf`);
      makeSmollmGguf({ out: pfile, shapes: SHAPES, arch, std: 0.3, seed: 7, experts, ropeBase });
      const perturbed = await ourLogProbs(await loadModel(pfile), PROMPT, theirs.tokens);
      console.log('  rope', ropeBase, JSON.stringify(worst(perturbed.map((lp, i) => stepDifference(lp, theirs.probabilities[i])))));
    }
  }, 180_000);
});

if (!installed) it.skip('llama.cpp interop (node-llama-cpp is not installed beside the checkout)', () => undefined);
