// GGUF files of the decoder specs that llama.cpp also reads (Llama, Qwen3 with its per-head q/k norms,
// Phi-3 with its fused projections, Gemma 2 with its sandwich norms, soft-caps and alternating window,
// Mixtral with its stacked experts),
// written with random weights and a byte-level BPE vocabulary llama.cpp accepts
// (scripts/bench/make-smollm-gguf.js): our greedy continuation of a prompt equals llama.cpp's
// (node-llama-cpp, prebuilt, CPU). Runs when node-llama-cpp is installed beside the checkout
// (../benchref/node_modules/node-llama-cpp, as for the forward benchmark); skipped otherwise.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { loadModel } from '../../lib';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { makeSmollmGguf } = require('../../scripts/bench/make-smollm-gguf');

const NODE_LLAMA_CPP = path.resolve(__dirname, '..', '..', '..', 'benchref', 'node_modules', 'node-llama-cpp');
const installed = fs.existsSync(path.join(NODE_LLAMA_CPP, 'package.json'));
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

const SHAPES = { hidden: 64, layers: 2, heads: 4, kvHeads: 2, headDim: 16, ffn: 96, vocab: 320, context: 128 };
const PROMPT = [5, 17, 42, 99, 7, 200, 31];  // longer than Gemma 2's window of 4
const STEPS = 16;

// Mixtral is a llama-architecture file with stacked experts.
const CASES = [['llama', 0], ['qwen3', 0], ['phi3', 0], ['gemma2', 0], ['llama', 4]] as const;

(installed ? describe : describe.skip).each(CASES)('%s GGUF (%i experts) in llama.cpp', (arch, experts) => {
  it(`greedy decoding gives llama.cpp's ${STEPS} tokens`, async () => {
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
    const helper = path.join(__dirname, '..', 'helpers', 'llama-cpp-greedy.mjs');
    const theirs = JSON.parse(execFileSync(process.execPath, [helper, NODE_LLAMA_CPP, file, '', JSON.stringify(PROMPT), String(STEPS)], { encoding: 'utf8', timeout: 120_000 })).tokens as number[];
    expect(ours).toEqual(theirs);
  }, 180_000);
});

if (!installed) it.skip('llama.cpp interop (node-llama-cpp is not installed beside the checkout)', () => undefined);
