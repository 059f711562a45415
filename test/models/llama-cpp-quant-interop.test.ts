// Quantized GGUF files between us and llama.cpp (node-llama-cpp, prebuilt, CPU): a Q4_K_M-style base
// that we load quantized gives llama.cpp's next-token distributions within a small part of the
// quantization's own error (llama.cpp also rounds the activations to 8 bits in its quantized
// products; we keep them f32); the files exportGguf writes (Q8_0, Q4_K_M) run in llama.cpp the same
// way; and a LoRA trained on the quantized base, exported as a GGUF LoRA, gives our greedy text on
// top of the quantized base in llama.cpp. Skipped without node-llama-cpp beside the checkout.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { exportGguf, exportGgufLora, getPeftModel, loadModel, type Model } from '../../lib';
import { nodeLlamaCppInstalled, ourLogProbs, runLlamaCpp, worstDifference, type Difference } from '../helpers/llama-cpp-compare';
import { randomizeAdapter, writeQuantGguf, type TypeOf } from '../helpers/quant-gguf';

const PROMPT = [1, 45, 300, 12, 77, 410, 9];
const STEPS = 12;
const SEED = 4;

// What llama-quantize's Q4_K_M gives this shape: Q4_K, Q6_K for the head and some attn_v / ffn_down.
const Q4_K_M: TypeOf = (name) => {
  const layer = Number(/^blk\.(\d+)\./.exec(name)?.[1] ?? -1);
  const moreBits = layer === 0 || layer === 7 || layer === 3 || layer === 6;
  if (name === 'output.weight') return 'Q6_K';
  if ((name.includes('attn_v') || name.includes('ffn_down')) && moreBits) return 'Q6_K';
  return 'Q4_K';
};

let dir: string;
let f32File: string;
let q4File: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-quant-interop-'));
  f32File = path.join(dir, 'f32.gguf');
  q4File = path.join(dir, 'q4km.gguf');
  // The same seed gives the same values: the Q4_K_M file is the f32 one quantized.
  writeQuantGguf(f32File, () => undefined, undefined, SEED);
  writeQuantGguf(q4File, Q4_K_M, undefined, SEED);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** How far two of our models' distributions are apart along llama.cpp's continuation. */
async function ourDifference(a: Model, b: Model, tokens: number[]): Promise<Difference> {
  const pb = await ourLogProbs(b, PROMPT, tokens);
  return worstDifference(await ourLogProbs(a, PROMPT, tokens), pb.map((lp) => Array.from(lp, Math.exp)));
}

(nodeLlamaCppInstalled ? describe : describe.skip)('quantized GGUF files in llama.cpp', () => {
  // Measured: top-10 log-probabilities 0.144 apart, where quantizing moved ours by 0.919 (0.16x);
  // probabilities 0.0022 apart against 0.019 (0.12x).
  it('a Q4_K_M base: llama.cpp\'s distributions are ours within 0.3 of what quantizing moves them', async () => {
    const quantized = await loadModel(q4File);
    const dense = await loadModel(f32File);
    expect(quantized.ggmlWeights().size).toBe(8 * 7 + 1);
    const theirs = runLlamaCpp(q4File, PROMPT, STEPS);
    const ours = worstDifference(await ourLogProbs(quantized, PROMPT, theirs.f32.tokens), theirs.f32.probabilities);
    const quantization = await ourDifference(quantized, dense, theirs.f32.tokens);
    expect(ours.topLog).toBeLessThan(0.3 * quantization.topLog);
    expect(ours.prob).toBeLessThan(0.3 * quantization.prob);
  }, 180_000);

  // llama.cpp rounds the activations to 8 bits (blocks of 32 for Q8_0 weights, 256 for K-quants):
  // next to 8-bit weights that is an error of the same order as the weights' own, next to 4-bit
  // weights a small part of theirs. Measured (top-10 log-probabilities, worst of 12 steps): Q8_0
  // 0.073 against the quantization's 0.126 (0.58x); Q4_K_M 0.144 against 0.919 (0.16x).
  it.each([['Q8_0', 1], ['Q4_K_M', 0.3]] as const)('exportGguf %s from the f32 model runs in llama.cpp as in our loader', async (type, share) => {
    const file = path.join(dir, `export-${type}.gguf`);
    const source = await loadModel(f32File);
    await exportGguf(source, file, { type });
    const exported = await loadModel(file);
    const theirs = runLlamaCpp(file, PROMPT, STEPS);
    const ours = worstDifference(await ourLogProbs(exported, PROMPT, theirs.f32.tokens), theirs.f32.probabilities);
    const quantization = await ourDifference(exported, source, theirs.f32.tokens);
    expect(ours.topLog).toBeLessThan(share * quantization.topLog);
  }, 180_000);

  it('a LoRA on the quantized base, exported as a GGUF LoRA, gives our greedy tokens in llama.cpp', async () => {
    const peft = getPeftModel(await loadModel(q4File), { peft_type: 'LORA', r: 8, lora_alpha: 16, target_modules: ['q_proj', 'v_proj', 'down_proj'] }, { seed: 2 });
    randomizeAdapter(peft, 2, 0.08);
    const lora = path.join(dir, 'adapter.gguf');
    await exportGgufLora(peft, lora);
    const ours = (await peft.generate(PROMPT, { maxNewTokens: STEPS, temperature: 0 })).tokens;
    const plain = await loadModel(q4File);
    expect(ours).not.toEqual((await plain.generate(PROMPT, { maxNewTokens: STEPS, temperature: 0 })).tokens); // the adapter changes the text
    plain.dispose();
    const theirs = runLlamaCpp(q4File, PROMPT, STEPS, lora);
    expect(theirs.f32.tokens).toEqual(ours);
    peft.dispose();
  }, 180_000);
});

if (!nodeLlamaCppInstalled) it.skip('quantized GGUF interop (node-llama-cpp is not installed beside the checkout)', () => undefined);
