// GGUF files of the decoder specs that llama.cpp also reads (Llama, Qwen3 with its per-head q/k norms,
// Phi-3 with its fused projections, Gemma 2 with its sandwich norms, soft-caps and alternating window,
// Mixtral with its stacked experts, Gemma 3 with its q/k norms, local and global layers and two RoPE bases),
// written with random weights and a byte-level BPE vocabulary llama.cpp accepts
// (scripts/bench/make-smollm-gguf.js): our greedy continuation of a prompt equals llama.cpp's
// (node-llama-cpp, prebuilt, CPU), and so do our next-token distributions at every step (llama.cpp's
// are the softmax of its logits; test/helpers/llama-cpp-greedy.mjs). Runs when node-llama-cpp is
// installed beside the checkout (../benchref/node_modules/node-llama-cpp, as for the forward
// benchmark); skipped otherwise.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { loadModel, readGguf } from '../../lib';
import { nodeLlamaCppInstalled, ourLogProbs, runLlamaCpp, worstDifference, type Difference } from '../helpers/llama-cpp-compare';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { makeSmollmGguf } = require('../../scripts/bench/make-smollm-gguf');

const installed = nodeLlamaCppInstalled;
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

const SHAPES = { hidden: 64, layers: 2, heads: 4, kvHeads: 2, headDim: 16, ffn: 96, vocab: 320, context: 128 };
const PROMPT = [5, 17, 42, 99, 7, 200, 31];  // longer than Gemma 2's and Gemma 3's window of 4
const STEPS = 16;

interface Case {
  arch: string;
  experts: number;
  layers: number;
  std: number;
  /** Largest allowed difference of our distributions from llama.cpp's (f32 context), any step. */
  tolerance: Difference;
  /** The RoPE base that the 10% perturbation below changes: that of the layers where positions matter most. */
  ropeKey: string;
}

/*
 * Tolerances, from measurement (worst step of 16; the numbers are deterministic for these seeds, so
 * the margin covers other instruction-set variants of our kernels and of llama.cpp's, ~1e-6):
 * - SwiGLU models: llama.cpp's f32 context is f32 throughout, as ours is; measured ≤ 2.0e-6 in
 *   probability and ≤ 2.4e-5 in top-10 log-probability (Mixtral; Llama 6e-6, Qwen3 3e-6, Phi-3 8e-6):
 *   2e-5 and 2e-4 leave 8-10×.
 * - GeGLU (Gemma) models: ggml's CPU GELU looks its value up in an f16 table (input and output rounded
 *   to f16, GGML_GELU_FP16 in ggml-cpu/vec.h); emulating that table in the float64 reference of
 *   test/helpers/gemma-reference.ts brings it from 1.0e-4 to 1.9e-5 of llama.cpp on Gemma 2 and from
 *   1.5e-3 to 9e-5 on Gemma 3, while ours is within 1e-6 of the plain reference. Measured: Gemma 2
 *   (2 layers) 4.2e-6 / 1.0e-4 → 3e-5 / 5e-4; Gemma 3 (7 layers) 9.2e-5 / 1.5e-3 → 3e-4 / 5e-3.
 * For scale, a 10% change of the RoPE base on our side alone moves the top-10 log-probabilities by
 * 1.4e-1 to 2.0 (SwiGLU models), 5.9e-3 (Gemma 2) and 1.2e-2 (Gemma 3's local base); asserted below.
 */
const SWIGLU = { prob: 2e-5, topLog: 2e-4 };

// Mixtral is a llama-architecture file with stacked experts. Gemma 3 has 7 layers so that both kinds
// come in (its window is on all but every sixth: layers 0-4 and 6 local, 5 global), and a smaller std:
// with the tied head and the √hidden-scaled embeddings, 0.3 makes it repeat the last prompt token.
const CASES: Case[] = [
  { arch: 'llama', experts: 0, layers: 2, std: 0.3, tolerance: SWIGLU, ropeKey: 'rope.freq_base' },
  { arch: 'qwen3', experts: 0, layers: 2, std: 0.3, tolerance: SWIGLU, ropeKey: 'rope.freq_base' },
  { arch: 'phi3', experts: 0, layers: 2, std: 0.3, tolerance: SWIGLU, ropeKey: 'rope.freq_base' },
  { arch: 'gemma2', experts: 0, layers: 2, std: 0.3, tolerance: { prob: 3e-5, topLog: 5e-4 }, ropeKey: 'rope.freq_base' },
  { arch: 'llama', experts: 4, layers: 2, std: 0.3, tolerance: SWIGLU, ropeKey: 'rope.freq_base' },
  { arch: 'gemma3', experts: 0, layers: 7, std: 0.15, tolerance: { prob: 3e-4, topLog: 5e-3 }, ropeKey: 'rope.freq_base_swa' },
];

function writeModel(c: Case, overrides: Record<string, number> = {}): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `interop-${c.arch}-${c.experts}-`));
  dirs.push(dir);
  return makeSmollmGguf({ out: path.join(dir, 'model.gguf'), shapes: { ...SHAPES, layers: c.layers }, arch: c.arch, std: c.std, seed: 7, experts: c.experts, overrides });
}

(installed ? describe : describe.skip).each(CASES)('$arch GGUF ($experts experts) in llama.cpp', (c) => {
  it(`greedy decoding gives llama.cpp's ${STEPS} tokens, and every step's distribution is llama.cpp's`, async () => {
    const file = writeModel(c);
    const model = await loadModel(file);
    expect(model.config.modelType).toBe(c.arch === 'gemma3' ? 'gemma3_text' : c.arch);
    expect(model.config.qkNorm).toBe(c.arch === 'qwen3' || c.arch === 'gemma3');
    expect(model.config.fusedProjections).toBe(c.arch === 'phi3');
    expect(model.config.numExperts ?? 0).toBe(c.experts);
    const ours = (await model.generate(PROMPT, { maxNewTokens: STEPS, temperature: 0 })).tokens;
    const theirs = runLlamaCpp(file, PROMPT, STEPS);
    expect(ours).toEqual(theirs.tokens);
    expect(theirs.f32.tokens).toEqual(theirs.tokens);
    const logProbs = await ourLogProbs(model, PROMPT, theirs.f32.tokens);
    const diff = worstDifference(logProbs, theirs.f32.probabilities);
    expect(diff.prob).toBeLessThan(c.tolerance.prob);
    expect(diff.topLog).toBeLessThan(c.tolerance.topLog);
    // The comparison can fail: our model of the same weights with a RoPE base 10% off is outside
    // the tolerance of llama.cpp's distributions for the original file.
    const gguf = readGguf(file);
    const base = gguf.metadata[`${c.arch}.${c.ropeKey}`] as number;
    gguf.dispose();
    const perturbed = await loadModel(writeModel(c, { [c.ropeKey]: 1.1 * base }));
    expect(worstDifference(await ourLogProbs(perturbed, PROMPT, theirs.f32.tokens), theirs.f32.probabilities).topLog).toBeGreaterThan(c.tolerance.topLog);
  }, 180_000);
});

if (!installed) it.skip('llama.cpp interop (node-llama-cpp is not installed beside the checkout)', () => undefined);
