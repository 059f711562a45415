// Gemma 2 and Gemma 3 (text) as decoder specs, from Hugging Face directories written here: logits
// against the float64 reference written from the published architecture (test/helpers/gemma-reference.ts),
// the training loss (through the blocked, soft-capped head) against the reference's cross-entropy,
// finite differences of every parameter's gradient, LoRA and cached generation against recomputation.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { configFromGguf, configFromHf, getPeftModel, loadModel, readGguf, ropeInverseFrequencies, Tensor, tensor, type Model } from '../../lib';
import { checkModelGradients } from '../helpers/finite-diff';
import { gemmaReferenceLogits } from '../helpers/gemma-reference';
import { GGML, parseGguf } from '../helpers/gguf';
import { randomArray, rng } from '../helpers/random';
import { f32Bytes, writeSafetensorsJs, type JsTensor } from '../helpers/safetensors-js';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { makeSmollmGguf } = require('../../scripts/bench/make-smollm-gguf');

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

const H = 8, F = 12, L = 3, HEADS = 4, KV = 2, D = 4, V = 13;
type Weights = Map<string, [number[], Float32Array]>;

/** Random Gemma weights; norm weights are stored as w − 1 (± 0.3 around 0). */
function makeWeights(gemma3: boolean, seed: number): Weights {
  const random = rng(seed);
  const w: Weights = new Map();
  const add = (name: string, shape: number[], scale = 0.5) =>
    w.set(name, [shape, randomArray(random, shape.reduce((a, b) => a * b, 1), scale)]);
  add('model.embed_tokens.weight', [V, H]);
  for (let l = 0; l < L; l++) {
    const p = `model.layers.${l}.`;
    for (const n of ['input_layernorm', 'post_attention_layernorm', 'pre_feedforward_layernorm', 'post_feedforward_layernorm']) add(`${p}${n}.weight`, [H], 0.3);
    add(p + 'self_attn.q_proj.weight', [HEADS * D, H]);
    add(p + 'self_attn.k_proj.weight', [KV * D, H]);
    add(p + 'self_attn.v_proj.weight', [KV * D, H]);
    add(p + 'self_attn.o_proj.weight', [H, HEADS * D]);
    if (gemma3) {
      add(p + 'self_attn.q_norm.weight', [D], 0.3);
      add(p + 'self_attn.k_norm.weight', [D], 0.3);
    }
    add(p + 'mlp.gate_proj.weight', [F, H]);
    add(p + 'mlp.up_proj.weight', [F, H]);
    add(p + 'mlp.down_proj.weight', [H, F]);
  }
  add('model.norm.weight', [H], 0.3);
  return w;
}

function writeDir(config: Record<string, unknown>, weights: Weights): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gemma-'));
  dirs.push(dir);
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
  writeSafetensorsJs(path.join(dir, 'model.safetensors'), [...weights].map(([k, [shape, v]]): [string, JsTensor] => [k, { dtype: 'F32', shape, bytes: f32Bytes([...v]) }]));
  return dir;
}

const common = {
  hidden_size: H, intermediate_size: F, num_hidden_layers: L, num_attention_heads: HEADS, num_key_value_heads: KV,
  head_dim: D, vocab_size: V, rms_norm_eps: 1e-6, hidden_activation: 'gelu_pytorch_tanh', max_position_embeddings: 64,
};
const GEMMA2 = { ...common, model_type: 'gemma2', query_pre_attn_scalar: 6, sliding_window: 3, attn_logit_softcapping: 1.5, final_logit_softcapping: 2.5, rope_theta: 10000 };
const GEMMA3 = { ...common, model_type: 'gemma3_text', query_pre_attn_scalar: 6, sliding_window: 3, sliding_window_pattern: 3, rope_theta: 1e6, rope_local_base_freq: 100, rope_scaling: { rope_type: 'linear', factor: 2 } };

function referenceOf(model: Model, weights: Weights, ids: number[]): number[][] {
  return gemmaReferenceLogits(model.config, (n) => weights.get(n)![1], ids, ropeInverseFrequencies(model.config)).map((r) => Array.from(r));
}

/** Mean next-token cross-entropy of reference logits [T][V] against ids. */
function referenceLoss(logits: number[][], ids: number[]): number {
  let sum = 0;
  for (let t = 0; t + 1 < ids.length; t++) {
    const row = logits[t], max = Math.max(...row);
    sum += Math.log(row.reduce((a, v) => a + Math.exp(v - max), 0)) + max - row[ids[t + 1]];
  }
  return sum / (ids.length - 1);
}

describe.each([
  ['Gemma 2', GEMMA2, false],
  ['Gemma 3', GEMMA3, true],
] as const)('%s', (_name, config, gemma3) => {
  const weights = makeWeights(gemma3, gemma3 ? 23 : 17);
  const ids = [1, 5, 7, 2, 12, 3, 9, 4];
  const load = () => loadModel(writeDir(config, weights));

  it('gives the float64 reference logits, and its loss is the reference cross-entropy', async () => {
    const model = await load();
    expect(model.config.slidingLayers).toEqual(gemma3 ? [true, true, false] : [true, false, true]);
    const ref = referenceOf(model, weights, ids);
    const logits = Array.from((await model.forward([ids])).toFloat32Array());
    const flat = ref.flat(), scale = Math.max(...flat.map(Math.abs));
    expect(Math.max(...flat.map((r, i) => Math.abs(r - logits[i])))).toBeLessThan(2e-5 * scale);
    if (!gemma3) expect(scale).toBeLessThan(2.5);  // the final soft-cap bounds every logit
    const { loss } = await model.loss([ids]);
    expect(Math.abs(loss - referenceLoss(ref, ids))).toBeLessThan(1e-5);
  });

  it('the reference depends on every Gemma-specific part (the test could fail)', async () => {
    const model = await load();
    const ref = referenceOf(model, weights, ids).flat();
    const variants: Partial<typeof model.config>[] = [{ slidingWindow: undefined }, { queryPreAttnScalar: D }];
    if (gemma3) variants.push({ ropeLocalTheta: 1e6 });
    else variants.push({ attnLogitSoftcapping: undefined }, { finalLogitSoftcapping: undefined });
    for (const change of variants) {
      const other = gemmaReferenceLogits({ ...model.config, ...change }, (n) => weights.get(n)![1], ids, ropeInverseFrequencies(model.config)).flatMap((r) => Array.from(r));
      expect([change, Math.max(...other.map((v, i) => Math.abs(v - ref[i]))) > 1e-4]).toEqual([change, true]);
    }
  });

  it('the whole-logits path (forward, then lossBackward, through the soft-cap) gives the blocked path\'s loss and gradients', async () => {
    const model = await load();
    const blocked = await model.loss([ids]);
    const idTensor = tensor(Int32Array.from(ids), [1, ids.length], 'i32');
    const logits = model.nativeModel.forward(idTensor.handle, null, true);
    const whole = model.nativeModel.lossBackward(logits, idTensor.handle, false);
    expect(Math.abs(whole.loss - blocked.loss)).toBeLessThan(1e-6);
    for (const [k, g] of Object.entries(blocked.grads)) {
      const a = g.toFloat32Array(), b = new Tensor(whole.grads[k]).toFloat32Array();
      const scale = Math.max(...a.map(Math.abs));
      expect([k, Math.max(...a.map((v, i) => Math.abs(v - b[i]))) <= 1e-5 * scale]).toEqual([k, true]);
    }
  });

  it('gradients of every parameter match finite differences', async () => {
    const model = await load();
    // A smaller step than the default: the √hidden-scaled embeddings under the (1 + w) norms curve
    // enough for h = 1e-2 to miss by 15% on some entries (it converges to the analytic value as h shrinks).
    const checked = await checkModelGradients(model, [ids, ids.slice().reverse()], [ids, [-100, ...ids.slice(1)]], { h: 3e-3 });
    expect(checked).toBe(3 * model.parameterNames().length);
  });

  it('LoRA trains with activation checkpointing (same gradients) and cached generation equals recomputation', async () => {
    const lora = { peft_type: 'LORA', r: 2, target_modules: 'all-linear', init_lora_weights: false } as const;
    const plain = getPeftModel(await load(), lora, { seed: 2 });
    const checkpointedBase = await load();
    checkpointedBase.setGradientCheckpointing(true);
    const checkpointed = getPeftModel(checkpointedBase, lora, { seed: 2 });
    const a = await plain.loss([ids]), b = await checkpointed.loss([ids]);
    expect(b.loss).toBe(a.loss);
    for (const [k, g] of Object.entries(a.grads)) expect(Array.from(b.grads[k].toFloat32Array())).toEqual(Array.from(g.toFloat32Array()));
    const { tokens } = await plain.generate([1, 5, 7], { maxNewTokens: 6, temperature: 0 });
    const seq = [1, 5, 7];
    for (const t of tokens) {
      const logits = (await plain.forward([seq])).toFloat32Array();
      const last = Array.from(logits.subarray((seq.length - 1) * V, seq.length * V));
      expect(t).toBe(last.indexOf(Math.max(...last)));
      seq.push(t);
    }
  });
});

it('the multimodal Gemma 3 (model_type gemma3) is refused with E_UNSUPPORTED naming the text-only type', async () => {
  const dir = writeDir({ ...GEMMA3, model_type: 'gemma3' }, makeWeights(true, 1));
  await expect(loadModel(dir)).rejects.toMatchObject({ code: 'E_UNSUPPORTED', message: expect.stringContaining('gemma3_text') });
});

// llama.cpp's `gemma3` GGUF architecture (scripts/bench/make-smollm-gguf.js writes it as llama.cpp's
// converter does): its metadata reads to the config of the equivalent config.json, and the file's
// weights, read here by the test's own GGUF parser, renamed and unshifted by llama.cpp's rules, give
// the float64 reference's logits and the HF directory's. node-llama-cpp's tokens and distributions
// for the same kind of file: test/models/llama-cpp-interop.test.ts.
describe('Gemma 3 GGUF (general.architecture gemma3)', () => {
  const SHAPES = { hidden: 16, layers: 7, heads: 4, kvHeads: 2, headDim: 8, ffn: 24, vocab: 300, context: 64 };
  // The config.json llama.cpp's converter would have made the file from (transformers' names and meanings).
  const HF = {
    model_type: 'gemma3_text', hidden_size: 16, intermediate_size: 24, num_hidden_layers: 7, num_attention_heads: 4,
    num_key_value_heads: 2, head_dim: 8, vocab_size: 300, max_position_embeddings: 64, rms_norm_eps: Math.fround(1e-5),
    hidden_activation: 'gelu_pytorch_tanh', query_pre_attn_scalar: 8, sliding_window: 4, sliding_window_pattern: 6,
    rope_theta: 1e6, rope_local_base_freq: 1000, rope_scaling: { rope_type: 'linear', factor: 2 }, bos_token_id: 0, eos_token_id: 0,
  };
  const ids = [1, 200, 37, 5, 299, 12, 64, 3, 150, 9];  // longer than the window of 4
  const file = (() => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gemma3-gguf-'));
    dirs.push(dir);
    return makeSmollmGguf({ out: path.join(dir, 'model.gguf'), shapes: SHAPES, arch: 'gemma3', std: 0.3, seed: 3 }) as string;
  })();
  const metadataOf = () => {
    const g = readGguf(file);
    const m = { ...g.metadata } as Record<string, unknown>;
    g.dispose();
    return m;
  };

  it('reads to the config of the equivalent config.json', () => {
    const config = configFromGguf(metadataOf(), false);
    expect(config).toEqual(configFromHf(HF));
    expect(config.slidingLayers).toEqual([true, true, true, true, true, false, true]);
  });

  it('follows llama.cpp for the keys it may lack or vary: pattern, window, local base, 27B\'s scale', () => {
    const base = metadataOf();
    const read = (change: Record<string, unknown>) => {
      const m = { ...base, ...change };
      for (const [k, v] of Object.entries(change)) if (v === undefined) delete m[k];
      return configFromGguf(m, false);
    };
    expect(read({ 'gemma3.attention.sliding_window_pattern': 3 }).slidingLayers).toEqual([true, true, false, true, true, false, true]);
    expect(read({ 'gemma3.attention.sliding_window_pattern': 0 }).slidingLayers).toEqual(new Array(7).fill(true));
    // llama.cpp reads the pattern as a scalar only; an array leaves its default of 6.
    expect(read({ 'gemma3.attention.sliding_window_pattern': [true, false] }).slidingLayers).toEqual([true, true, true, true, true, false, true]);
    expect(() => read({ 'gemma3.attention.sliding_window_pattern': -1 })).toThrow(/non-negative integer for gemma3.attention.sliding_window_pattern/);
    // No window (or 0): every layer global, with the global RoPE.
    for (const w of [undefined, 0]) {
      const c = read({ 'gemma3.attention.sliding_window': w });
      expect([c.slidingWindow, c.slidingLayers]).toEqual([undefined, new Array(7).fill(false)]);
    }
    expect(read({ 'gemma3.rope.freq_base_swa': undefined }).ropeLocalTheta).toBe(10000);
    expect(read({ 'gemma3.final_logit_softcapping': 30 }).finalLogitSoftcapping).toBe(30);
    // 62 layers is 27B to llama.cpp: queries scale by (hidden / heads)^-½, as its config.json says (168 there).
    expect(read({ 'gemma3.block_count': 62 }).queryPreAttnScalar).toBe(SHAPES.hidden / SHAPES.heads);  // 4, not head_dim 8
  });

  // llama.cpp's names for Gemma 3's block tensors (gguf-py's tensor_mapping.py and constants.py).
  const BLOCK_NAMES: Record<string, string> = {
    attn_norm: 'input_layernorm', attn_q: 'self_attn.q_proj', attn_k: 'self_attn.k_proj', attn_v: 'self_attn.v_proj',
    attn_output: 'self_attn.o_proj', attn_q_norm: 'self_attn.q_norm', attn_k_norm: 'self_attn.k_norm',
    post_attention_norm: 'post_attention_layernorm', ffn_norm: 'pre_feedforward_layernorm', ffn_gate: 'mlp.gate_proj',
    ffn_up: 'mlp.up_proj', ffn_down: 'mlp.down_proj', post_ffw_norm: 'post_feedforward_layernorm',
  };
  function hfName(gguf: string): string {
    if (gguf === 'token_embd.weight') return 'model.embed_tokens.weight';
    if (gguf === 'output_norm.weight') return 'model.norm.weight';
    const m = /^blk\.(\d+)\.(\w+)\.weight$/.exec(gguf);
    if (!m || !BLOCK_NAMES[m[2]]) throw new Error(`unexpected tensor ${gguf}`);
    return `model.layers.${m[1]}.${BLOCK_NAMES[m[2]]}.weight`;
  }

  /** The file's tensors under their HF names, read by the test's own parser; norms back to w (the converter stored 1 + w for every *norm.weight). */
  function hfWeightsOfFile(): Weights {
    const bytes = new Uint8Array(fs.readFileSync(file));
    const parsed = parseGguf(bytes);
    const out: Weights = new Map();
    for (const t of parsed.tensors) {
      if (t.type !== GGML.F32.id) throw new Error(`${t.name} is not F32`);
      const n = t.shape.reduce((a, b) => a * b, 1);
      const start = parsed.dataStart + t.offset;
      const values = new Float32Array(bytes.slice(start, start + 4 * n).buffer);
      const name = hfName(t.name);
      out.set(name, [t.shape, name.endsWith('norm.weight') ? values.map((v) => v - 1) : values]);
    }
    return out;
  }

  it('gives the float64 reference logits of its HF weights, and the equivalent HF directory\'s', async () => {
    const weights = hfWeightsOfFile();
    expect(weights.size).toBe(2 + 13 * SHAPES.layers);
    const model = await loadModel(file);
    const logits = Array.from((await model.forward([ids])).toFloat32Array());
    const ref = gemmaReferenceLogits(configFromHf(HF), (n) => weights.get(n)![1], ids, ropeInverseFrequencies(configFromHf(HF))).flatMap((r) => Array.from(r));
    const scale = Math.max(...ref.map(Math.abs));
    expect(Math.max(...ref.map((r, i) => Math.abs(r - logits[i])))).toBeLessThan(2e-5 * scale);
    const hf = await loadModel(writeDir(HF, weights));
    const hfLogits = (await hf.forward([ids])).toFloat32Array();
    expect(Math.max(...logits.map((v, i) => Math.abs(v - hfLogits[i])))).toBeLessThan(1e-6 * scale);
  });
});

// llama.cpp's `gemma2` GGUF reading (src/models/gemma2.cpp) for the keys a file may lack or vary.
describe('Gemma 2 GGUF metadata (general.architecture gemma2)', () => {
  const SHAPES = { hidden: 16, layers: 5, heads: 4, kvHeads: 2, headDim: 8, ffn: 24, vocab: 300, context: 64 };
  const base = (() => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gemma2-gguf-'));
    dirs.push(dir);
    const file = makeSmollmGguf({ out: path.join(dir, 'model.gguf'), shapes: SHAPES, arch: 'gemma2', std: 0.3, seed: 4 }) as string;
    const g = readGguf(file);
    const m = { ...g.metadata } as Record<string, unknown>;
    g.dispose();
    return m;
  })();
  const read = (change: Record<string, unknown>) => {
    const m = { ...base, ...change };
    for (const [k, v] of Object.entries(change)) if (v === undefined) delete m[k];
    return configFromGguf(m, false);
  };

  it('windows every other layer by default, or by attention.sliding_window_pattern', () => {
    expect(read({}).slidingLayers).toEqual([true, false, true, false, true]);
    expect(read({ 'gemma2.attention.sliding_window_pattern': 3 }).slidingLayers).toEqual([true, true, false, true, true]);
  });

  it('takes a window of 4096 when the file has none, as llama.cpp does', () => {
    expect(read({ 'gemma2.attention.sliding_window': undefined }).slidingWindow).toBe(4096);
  });

  it('scales queries by head_dim^-½, and by (hidden / heads)^-½ at 46 layers (27B)', () => {
    expect(read({}).queryPreAttnScalar).toBe(SHAPES.headDim);
    expect(read({ 'gemma2.block_count': 46 }).queryPreAttnScalar).toBe(SHAPES.hidden / SHAPES.heads);
  });
});
