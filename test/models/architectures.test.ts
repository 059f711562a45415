// Architectures that are specs of the shared decoder (native/model/specs/): Qwen3 (RMSNorm of each
// query and key head before RoPE) from a Hugging Face directory and from GGUF, Mistral with a
// sliding window, Phi-3 (fused qkv_proj and gate_up_proj) and Mixtral (a sparse mixture of experts). Each is checked against the float64 reference written from the published
// architecture (test/helpers/llama-reference.ts), by finite differences of every parameter's
// gradient, and by cached generation against recomputation.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { getPeftModel, loadAdapter, loadModel, ropeInverseFrequencies, type Model } from '../../lib';
import { checkGradients, checkModelGradients } from '../helpers/finite-diff';
import { GGML, writeGguf, bytesOf, type MetaValue } from '../helpers/gguf';
import { llamaReferenceLogits } from '../helpers/llama-reference';
import { STORIES_HF_DIR } from '../helpers/models';
import { randomArray, rng } from '../helpers/random';
import { f32Bytes, parseSafetensors, writeSafetensorsJs, type JsTensor } from '../helpers/safetensors-js';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

interface Sizes {
  hidden: number;
  inter: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  vocab: number;
  qkNorm: boolean;
}

type Weights = Map<string, [number[], Float32Array]>;

/** Random Llama-layout weights (norm weights 1 ± 0.3, the rest ± 0.5); q_norm / k_norm with qkNorm. */
function makeWeights(s: Sizes, seed: number): Weights {
  const random = rng(seed);
  const w: Weights = new Map();
  const add = (name: string, shape: number[], scale = 0.5, offset = 0) =>
    w.set(name, [shape, randomArray(random, shape.reduce((a, b) => a * b, 1), scale).map((v) => v + offset)]);
  const qd = s.heads * s.headDim, kd = s.kvHeads * s.headDim;
  add('model.embed_tokens.weight', [s.vocab, s.hidden]);
  for (let l = 0; l < s.layers; l++) {
    const p = `model.layers.${l}.`;
    add(p + 'input_layernorm.weight', [s.hidden], 0.3, 1);
    add(p + 'self_attn.q_proj.weight', [qd, s.hidden]);
    add(p + 'self_attn.k_proj.weight', [kd, s.hidden]);
    add(p + 'self_attn.v_proj.weight', [kd, s.hidden]);
    add(p + 'self_attn.o_proj.weight', [s.hidden, qd]);
    if (s.qkNorm) {
      add(p + 'self_attn.q_norm.weight', [s.headDim], 0.3, 1);
      add(p + 'self_attn.k_norm.weight', [s.headDim], 0.3, 1);
    }
    add(p + 'post_attention_layernorm.weight', [s.hidden], 0.3, 1);
    add(p + 'mlp.gate_proj.weight', [s.inter, s.hidden]);
    add(p + 'mlp.up_proj.weight', [s.inter, s.hidden]);
    add(p + 'mlp.down_proj.weight', [s.hidden, s.inter]);
  }
  add('model.norm.weight', [s.hidden], 0.3, 1);
  add('lm_head.weight', [s.vocab, s.hidden]);
  return w;
}

function writeHfDir(config: Record<string, unknown>, weights: Weights): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'arch-'));
  dirs.push(dir);
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
  const entries: [string, JsTensor][] = [...weights].map(([k, [shape, v]]) => [k, { dtype: 'F32', shape, bytes: f32Bytes([...v]) }]);
  writeSafetensorsJs(path.join(dir, 'model.safetensors'), entries);
  return dir;
}

function hfConfig(modelType: string, s: Sizes, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    model_type: modelType, hidden_size: s.hidden, intermediate_size: s.inter, num_hidden_layers: s.layers,
    num_attention_heads: s.heads, num_key_value_heads: s.kvHeads, head_dim: s.headDim, vocab_size: s.vocab,
    rms_norm_eps: 1e-6, rope_theta: 10000, max_position_embeddings: 64, tie_word_embeddings: false, hidden_act: 'silu',
    ...extra,
  };
}

async function expectReferenceLogits(model: Model, weights: Weights, ids: number[]): Promise<number[]> {
  const get = (name: string) => {
    const t = weights.get(name);
    if (!t) throw new Error(`no ${name}`);
    return t[1];
  };
  const ref = llamaReferenceLogits(model.config, get, ids, ropeInverseFrequencies(model.config)).flatMap((r) => Array.from(r));
  const logits = Array.from((await model.forward([ids])).toFloat32Array());
  const scale = Math.max(...ref.map(Math.abs));
  expect(Math.max(...ref.map((r, i) => Math.abs(r - logits[i])))).toBeLessThan(2e-5 * scale);
  return ref;
}

/** Greedy tokens of generate() (KV cache) equal the argmax of full recomputation at each step. */
async function expectCachedGreedy(model: Model | ReturnType<typeof getPeftModel>, prompt: number[], steps: number, vocab: number): Promise<void> {
  const { tokens } = await model.generate(prompt, { maxNewTokens: steps, temperature: 0 });
  expect(tokens.length).toBe(steps);
  const seq = [...prompt];
  for (const t of tokens) {
    const logits = (await model.forward([seq])).toFloat32Array();
    const last = Array.from(logits.subarray((seq.length - 1) * vocab, seq.length * vocab));
    expect(t).toBe(last.indexOf(Math.max(...last)));
    seq.push(t);
  }
}

describe('Qwen3 (per-head q/k RMSNorm)', () => {
  // head_dim 6 is not hidden / heads (8 / 4): Qwen3 sets it on its own.
  const sizes: Sizes = { hidden: 8, inter: 12, layers: 2, heads: 4, kvHeads: 2, headDim: 6, vocab: 13, qkNorm: true };
  const weights = makeWeights(sizes, 7);
  const ids = [1, 5, 7, 2, 12, 3, 9];

  it('a Hugging Face directory gives the float64 reference logits, and the head norms matter', async () => {
    const model = await loadModel(writeHfDir(hfConfig('qwen3', sizes), weights));
    expect(model.config.qkNorm).toBe(true);
    expect(model.parameterNames()).toContain('model.layers.1.self_attn.k_norm.weight');
    const ref = await expectReferenceLogits(model, weights, ids);
    // Without the head norms the reference differs clearly: they are really applied.
    const plain = llamaReferenceLogits({ ...model.config, qkNorm: false }, (n) => weights.get(n)![1], ids, ropeInverseFrequencies(model.config)).flatMap((r) => Array.from(r));
    expect(Math.max(...plain.map((v, i) => Math.abs(v - ref[i])))).toBeGreaterThan(1e-2);
  });

  it('gradients of every parameter (the head norms too) match finite differences', async () => {
    const model = await loadModel(writeHfDir(hfConfig('qwen3', sizes), weights));
    const checked = await checkModelGradients(model, [ids, ids.slice().reverse()], [ids, [-100, ...ids.slice(1)]]);
    expect(checked).toBe(3 * model.parameterNames().length);
  });

  it('LoRA on q/k (under the head norms) and cached generation equals recomputation', async () => {
    const model = await loadModel(writeHfDir(hfConfig('qwen3', sizes), weights));
    const peft = getPeftModel(model, { peft_type: 'LORA', r: 2, target_modules: ['q_proj', 'k_proj'], init_lora_weights: false }, { seed: 3 });
    const { grads } = await peft.loss([ids]);
    expect(Object.keys(grads).length).toBe(2 * 2 * 2);
    await expectCachedGreedy(peft, [1, 5, 7], 6, sizes.vocab);
  });

  it('a GGUF file (qwen3 architecture, attn_q_norm / attn_k_norm) gives the same logits', async () => {
    const toGguf: Record<string, string> = {
      input_layernorm: 'attn_norm', 'self_attn.q_proj': 'attn_q', 'self_attn.k_proj': 'attn_k', 'self_attn.v_proj': 'attn_v',
      'self_attn.o_proj': 'attn_output', 'self_attn.q_norm': 'attn_q_norm', 'self_attn.k_norm': 'attn_k_norm',
      post_attention_layernorm: 'ffn_norm', 'mlp.gate_proj': 'ffn_gate', 'mlp.up_proj': 'ffn_up', 'mlp.down_proj': 'ffn_down',
    };
    const ggufName = (hf: string) => {
      if (hf === 'model.embed_tokens.weight') return 'token_embd.weight';
      if (hf === 'model.norm.weight') return 'output_norm.weight';
      if (hf === 'lm_head.weight') return 'output.weight';
      const m = /^model\.layers\.(\d+)\.(.+)\.weight$/.exec(hf)!;
      return `blk.${m[1]}.${toGguf[m[2]]}.weight`;
    };
    const u32 = (value: number): MetaValue => ({ type: 'u32', value });
    const f32 = (value: number): MetaValue => ({ type: 'f32', value });
    const metadata: [string, MetaValue][] = [
      ['general.architecture', { type: 'string', value: 'qwen3' }],
      ['qwen3.embedding_length', u32(sizes.hidden)], ['qwen3.feed_forward_length', u32(sizes.inter)],
      ['qwen3.block_count', u32(sizes.layers)], ['qwen3.attention.head_count', u32(sizes.heads)],
      ['qwen3.attention.head_count_kv', u32(sizes.kvHeads)], ['qwen3.attention.key_length', u32(sizes.headDim)],
      ['qwen3.attention.layer_norm_rms_epsilon', f32(1e-6)], ['qwen3.rope.freq_base', f32(10000)], ['qwen3.context_length', u32(64)],
      ['tokenizer.ggml.model', { type: 'string', value: 'llama' }],
      ['tokenizer.ggml.tokens', { type: 'array', elem: 'string', value: Array.from({ length: sizes.vocab }, (_, i) => `t${i}`) }],
    ];
    const tensors = [...weights].map(([name, [shape, values]]) => ({ name: ggufName(name), shape, type: GGML.F32.id, data: bytesOf(values) }));
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'qwen3-gguf-')), 'model.gguf');
    dirs.push(path.dirname(file));
    fs.writeFileSync(file, writeGguf({ metadata, tensors }).bytes);
    const model = await loadModel(file, { tokenizer: STORIES_HF_DIR });
    expect(model.config.modelType).toBe('qwen3');
    expect(model.config.qkNorm).toBe(true);
    await expectReferenceLogits(model, weights, ids);

    // llama.cpp's rope_freqs tensor (Llama 3's scaling as written by its converter): frequency i turns at
    // inv_freq_i / rope_freqs_i. The float64 reference gets those frequencies computed here.
    const freqs = [1, 2.5, 8];
    const withFreqs = path.join(path.dirname(file), 'freqs.gguf');
    fs.writeFileSync(withFreqs, writeGguf({ metadata, tensors: [...tensors, { name: 'rope_freqs.weight', shape: [sizes.headDim / 2], type: GGML.F32.id, data: bytesOf(Float32Array.from(freqs)) }] }).bytes);
    const scaled = await loadModel(withFreqs, { tokenizer: STORIES_HF_DIR });
    const invFreq = Float32Array.from(freqs, (f, i) => 1 / (10000 ** ((2 * i) / sizes.headDim) * f));
    const ref = llamaReferenceLogits(scaled.config, (n) => weights.get(n)![1], ids, invFreq).flatMap((r) => Array.from(r));
    const got = Array.from((await scaled.forward([ids])).toFloat32Array());
    const scale = Math.max(...ref.map(Math.abs));
    expect(Math.max(...ref.map((r, i) => Math.abs(r - got[i])))).toBeLessThan(2e-5 * scale);
    const plain = Array.from((await model.forward([ids])).toFloat32Array());
    expect(Math.max(...plain.map((v, i) => Math.abs(v - got[i])))).toBeGreaterThan(1e-3 * scale);  // the factors apply
    const bad = path.join(path.dirname(file), 'bad-freqs.gguf');
    fs.writeFileSync(bad, writeGguf({ metadata, tensors: [...tensors, { name: 'rope_freqs.weight', shape: [2], type: GGML.F32.id, data: bytesOf(Float32Array.from([1, 2])) }] }).bytes);
    await expect(loadModel(bad, { tokenizer: STORIES_HF_DIR })).rejects.toMatchObject({ code: 'E_FORMAT', message: expect.stringContaining('rope_freqs.weight') });
  });
});

describe('Mistral (sliding window)', () => {
  const sizes: Sizes = { hidden: 8, inter: 12, layers: 2, heads: 4, kvHeads: 2, headDim: 2, vocab: 11, qkNorm: false };
  const weights = makeWeights(sizes, 9);
  const ids = [1, 5, 7, 2, 9, 3, 4, 10, 0];

  it('a window of 3 gives the windowed float64 reference, which differs from full attention', async () => {
    const model = await loadModel(writeHfDir(hfConfig('mistral', sizes, { sliding_window: 3 }), weights));
    expect(model.config.slidingWindow).toBe(3);
    const ref = await expectReferenceLogits(model, weights, ids);
    const full = llamaReferenceLogits({ ...model.config, slidingWindow: undefined }, (n) => weights.get(n)![1], ids, ropeInverseFrequencies(model.config)).flatMap((r) => Array.from(r));
    const V = sizes.vocab;
    // Positions 0-2 see the same keys either way; later ones do not.
    expect(Math.max(...full.slice(0, 3 * V).map((v, i) => Math.abs(v - ref[i])))).toBeLessThan(1e-9);
    expect(Math.max(...full.slice(3 * V).map((v, i) => Math.abs(v - ref[3 * V + i])))).toBeGreaterThan(1e-3);
  });

  it('sliding_window null means full attention; gradients match finite differences with the window', async () => {
    const open = await loadModel(writeHfDir(hfConfig('mistral', sizes, { sliding_window: null }), weights));
    expect(open.config.slidingWindow).toBeUndefined();
    await expectReferenceLogits(open, weights, ids);
    const windowed = await loadModel(writeHfDir(hfConfig('mistral', sizes, { sliding_window: 3 }), weights));
    const checked = await checkModelGradients(windowed, [ids.slice(0, 7), ids.slice(2)], [ids.slice(0, 7), ids.slice(2)]);
    expect(checked).toBe(3 * windowed.parameterNames().length);
  });

  it('cached generation past the window equals recomputation', async () => {
    const model = await loadModel(writeHfDir(hfConfig('mistral', sizes, { sliding_window: 3 }), weights));
    await expectCachedGreedy(model, [1, 5, 7, 2], 6, sizes.vocab);
  });

  it('Qwen2 / Qwen3 use_sliding_window (per-layer windows) is refused with E_UNSUPPORTED', async () => {
    const dir = writeHfDir(hfConfig('qwen3', { ...sizes, qkNorm: true }, { use_sliding_window: true, sliding_window: 4 }), makeWeights({ ...sizes, qkNorm: true }, 1));
    await expect(loadModel(dir)).rejects.toMatchObject({ code: 'E_UNSUPPORTED', message: expect.stringContaining('use_sliding_window') });
  });
});

describe('Phi-3 (fused qkv_proj and gate_up_proj)', () => {
  const sizes: Sizes = { hidden: 8, inter: 10, layers: 2, heads: 4, kvHeads: 2, headDim: 2, vocab: 11, qkNorm: false };
  const separate = makeWeights(sizes, 13);
  const ids = [1, 5, 7, 2, 9, 3];
  /** The checkpoint's layout: q, k, v rows stacked in qkv_proj; gate then up rows in gate_up_proj. */
  function fused(): Weights {
    const out: Weights = new Map();
    const stack = (names: string[]): [number[], Float32Array] => {
      const parts = names.map((n) => separate.get(n)!);
      const rows = parts.reduce((a, [shape]) => a + shape[0], 0);
      const values = new Float32Array(parts.reduce((a, [, v]) => a + v.length, 0));
      let at = 0;
      for (const [, v] of parts) {
        values.set(v, at);
        at += v.length;
      }
      return [[rows, parts[0][0][1]], values];
    };
    for (const [name, t] of separate) if (!/(q|k|v|gate|up)_proj/.test(name)) out.set(name, t);
    for (let l = 0; l < sizes.layers; l++) {
      const p = `model.layers.${l}.`;
      out.set(p + 'self_attn.qkv_proj.weight', stack(['q', 'k', 'v'].map((x) => `${p}self_attn.${x}_proj.weight`)));
      out.set(p + 'mlp.gate_up_proj.weight', stack([`${p}mlp.gate_proj.weight`, `${p}mlp.up_proj.weight`]));
    }
    return out;
  }
  const load = () => loadModel(writeHfDir(hfConfig('phi3', sizes, { sliding_window: 4 }), fused()));

  it('gives the float64 reference logits of the same model with separate projections', async () => {
    const model = await load();
    expect(model.parameterNames()).toContain('model.layers.0.mlp.gate_up_proj.weight');
    expect(model.parameterNames()).not.toContain('model.layers.0.self_attn.q_proj.weight');
    await expectReferenceLogits(model, separate, ids);
  });

  it('gradients of every parameter match finite differences', async () => {
    const model = await load();
    const checked = await checkModelGradients(model, [ids, ids.slice().reverse()], [ids, ids.slice().reverse()]);
    expect(checked).toBe(3 * model.parameterNames().length);
  });

  it('LoRA defaults to qkv_proj, also trains on gate_up_proj, and cached generation equals recomputation', async () => {
    const peft = getPeftModel(await load(), { peft_type: 'LORA', r: 2, init_lora_weights: false }, { seed: 5 });
    expect(Object.keys((await peft.loss([ids])).grads).sort()).toEqual(
      [0, 1].flatMap((l) => ['A', 'B'].map((x) => `model.layers.${l}.self_attn.qkv_proj.lora_${x}.default.weight`)).sort(),
    );
    const mlp = getPeftModel(await load(), { peft_type: 'LORA', r: 2, target_modules: ['gate_up_proj'], init_lora_weights: false }, { seed: 5 });
    expect(Object.keys((await mlp.loss([ids])).grads).length).toBe(4);
    await expectCachedGreedy(peft, [1, 5, 7], 6, sizes.vocab);
  });
});

describe('Mixtral (sparse mixture of experts)', () => {
  const sizes: Sizes = { hidden: 8, inter: 6, layers: 2, heads: 4, kvHeads: 2, headDim: 2, vocab: 11, qkNorm: false };
  const EXPERTS = 4, TOP = 2;
  /** The Llama weights with each layer's MLP replaced by a router and EXPERTS SwiGLU experts. */
  function moeWeights(seed: number): Weights {
    const base = makeWeights(sizes, seed);
    const random = rng(seed + 100);
    const out: Weights = new Map([...base].filter(([n]) => !n.includes('.mlp.')));
    const add = (name: string, shape: number[], scale = 0.5) => out.set(name, [shape, randomArray(random, shape[0] * shape[1], scale)]);
    for (let l = 0; l < sizes.layers; l++) {
      const p = `model.layers.${l}.block_sparse_moe.`;
      add(p + 'gate.weight', [EXPERTS, sizes.hidden], 1.5);
      for (let e = 0; e < EXPERTS; e++) {
        add(`${p}experts.${e}.w1.weight`, [sizes.inter, sizes.hidden]);
        add(`${p}experts.${e}.w3.weight`, [sizes.inter, sizes.hidden]);
        add(`${p}experts.${e}.w2.weight`, [sizes.hidden, sizes.inter]);
      }
    }
    return out;
  }
  const weights = moeWeights(21);
  const ids = [1, 5, 7, 2, 9, 3, 4];
  const config = hfConfig('mixtral', sizes, { num_local_experts: EXPERTS, num_experts_per_tok: TOP, sliding_window: null });
  const load = () => loadModel(writeHfDir(config, weights));

  it('gives the float64 reference logits (router softmax, top 2 renormalized, experts summed)', async () => {
    const model = await load();
    expect([model.config.numExperts, model.config.numExpertsPerTok]).toEqual([EXPERTS, TOP]);
    expect(model.parameterNames()).toContain('model.layers.1.block_sparse_moe.experts.3.w2.weight');
    const ref = await expectReferenceLogits(model, weights, ids);
    // Routing to every expert (k = 4) gives other logits: the top-k choice really applies.
    const dense = llamaReferenceLogits({ ...model.config, numExpertsPerTok: EXPERTS }, (n) => weights.get(n)![1], ids, ropeInverseFrequencies(model.config)).flatMap((r) => Array.from(r));
    expect(Math.max(...dense.map((v, i) => Math.abs(v - ref[i])))).toBeGreaterThan(1e-3);
  });

  it('gradients of every parameter (router and experts too) match finite differences', async () => {
    const model = await load();
    const checked = await checkModelGradients(model, [ids, ids.slice().reverse()], [ids, ids.slice().reverse()], { h: 3e-3 });
    expect(checked).toBe(3 * model.parameterNames().length);
  });

  it('LoRA on the experts and the router (by module name) trains, with checkpointing too, and cached generation equals recomputation', async () => {
    const lora = { peft_type: 'LORA', r: 2, target_modules: ['w1', 'w2', 'w3', 'gate'], init_lora_weights: false } as const;
    const peft = getPeftModel(await load(), lora, { seed: 6 });
    const { grads, loss } = await peft.loss([ids]);
    const base = await load();
    base.setGradientCheckpointing(true);
    const checkpointed = await getPeftModel(base, lora, { seed: 6 }).loss([ids]);
    expect(checkpointed.loss).toBe(loss);
    for (const [k, g] of Object.entries(grads)) expect(Array.from(checkpointed.grads[k].toFloat32Array())).toEqual(Array.from(g.toFloat32Array()));
    expect(Object.keys(grads).length).toBe(sizes.layers * (EXPERTS * 3 + 1) * 2);
    expect(Object.keys(grads)).toContain('model.layers.0.block_sparse_moe.experts.2.w3.lora_B.default.weight');
    await expectCachedGreedy(peft, [1, 5, 7], 6, sizes.vocab);
  });

  describe("PEFT's target_parameters on the fused expert tensors (experts.gate_up_proj [E, 2I, H], experts.down_proj [E, H, I])", () => {
    const R = 2, ALPHA = 3, SCALE = ALPHA / R;
    const H = sizes.hidden, I = sizes.inter;
    const TARGETS = ['mlp.experts.gate_up_proj', 'mlp.experts.down_proj'];
    // PEFT's ParamWrapper layout: A [r·E, in], B [out, r·E]; gate_up_proj, listed first, is the inner wrapper.
    const fileKey = (l: number, p: 'gate_up_proj' | 'down_proj', f: 'A' | 'B') =>
      `base_model.model.model.layers.${l}.mlp.experts.${p === 'gate_up_proj' ? 'base_layer.' : ''}lora_${f}.weight`;
    function adapterTensors(seed: number): Map<string, [number[], Float32Array]> {
      const random = rng(seed);
      const out = new Map<string, [number[], Float32Array]>();
      for (let l = 0; l < sizes.layers; l++) {
        for (const [p, rows, cols] of [['gate_up_proj', 2 * I, H], ['down_proj', H, I]] as const) {
          out.set(fileKey(l, p, 'A'), [[R * EXPERTS, cols], randomArray(random, R * EXPERTS * cols, 0.5)]);
          out.set(fileKey(l, p, 'B'), [[rows, R * EXPERTS], randomArray(random, rows * R * EXPERTS, 0.5)]);
        }
      }
      return out;
    }
    /** delta_e = s · einsum("o r e, e r i -> e o i", B.reshape(out, r, E), A.reshape(E, r, in)), from PEFT's get_delta_weight. */
    function delta(a: [number[], Float32Array], b: [number[], Float32Array], e: number): Float32Array {
      const cols = a[0][1], rows = b[0][0];
      const d = new Float32Array(rows * cols);
      for (let o = 0; o < rows; o++) {
        for (let i = 0; i < cols; i++) {
          let sum = 0;
          for (let k = 0; k < R; k++) sum += b[1][o * R * EXPERTS + k * EXPERTS + e] * a[1][(e * R + k) * cols + i];
          d[o * cols + i] = SCALE * sum;
        }
      }
      return d;
    }
    function writeAdapterDir(tensors: Map<string, [number[], Float32Array]>): string {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'moe-adapter-'));
      dirs.push(dir);
      fs.writeFileSync(path.join(dir, 'adapter_config.json'), JSON.stringify({
        peft_type: 'LORA', r: R, lora_alpha: ALPHA, lora_dropout: 0, target_modules: null, target_parameters: TARGETS, bias: 'none',
      }));
      writeSafetensorsJs(path.join(dir, 'adapter_model.safetensors'), [...tensors].map(([k, [shape, v]]) => [k, { dtype: 'F32', shape, bytes: f32Bytes([...v]) }]));
      return dir;
    }

    it('an adapter in PEFT\'s layout gives the logits of the base with its einsum delta added to every expert', async () => {
      const tensors = adapterTensors(31);
      const merged: Weights = new Map(weights);
      const add = (name: string, d: Float32Array, rowOffset: number) => {
        const [shape, w] = merged.get(name)!;
        merged.set(name, [shape, w.map((v, j) => v + d[rowOffset * shape[1] + j])]);
      };
      for (let l = 0; l < sizes.layers; l++) {
        for (let e = 0; e < EXPERTS; e++) {
          const p = `model.layers.${l}.block_sparse_moe.experts.${e}.`;
          const gateUp = delta(tensors.get(fileKey(l, 'gate_up_proj', 'A'))!, tensors.get(fileKey(l, 'gate_up_proj', 'B'))!, e);
          add(p + 'w1.weight', gateUp, 0);  // the gate's rows first ...
          add(p + 'w3.weight', gateUp, I);  // ... then the up projection's
          add(p + 'w2.weight', delta(tensors.get(fileKey(l, 'down_proj', 'A'))!, tensors.get(fileKey(l, 'down_proj', 'B'))!, e), 0);
        }
      }
      const peft = await loadAdapter(await load(), writeAdapterDir(tensors));
      const ref = llamaReferenceLogits(peft.base.config, (n) => merged.get(n)![1], ids, ropeInverseFrequencies(peft.base.config)).flatMap((r) => Array.from(r));
      const logits = Array.from((await peft.forward([ids])).toFloat32Array());
      const scale = Math.max(...ref.map(Math.abs));
      expect(Math.max(...ref.map((r, i) => Math.abs(r - logits[i])))).toBeLessThan(2e-5 * scale);
      // The adapter changes the logits: the deltas are really applied.
      const base = Array.from((await (await load()).forward([ids])).toFloat32Array());
      expect(Math.max(...base.map((v, i) => Math.abs(v - logits[i])))).toBeGreaterThan(1e-2 * scale);
      // Merged into the experts' weights (w3 through the shared A), the plain model gives the same logits.
      const plain = Array.from((await peft.mergeAndUnload().forward([ids])).toFloat32Array());
      expect(Math.max(...ref.map((r, i) => Math.abs(r - plain[i])))).toBeLessThan(2e-5 * scale);
    });

    it('saves back to the same keys and values, bit for bit', async () => {
      const tensors = adapterTensors(32);
      const peft = await loadAdapter(await load(), writeAdapterDir(tensors));
      const out = fs.mkdtempSync(path.join(os.tmpdir(), 'moe-saved-'));
      dirs.push(out);
      await peft.saveAdapter(out);
      const saved = parseSafetensors(path.join(out, 'adapter_model.safetensors')).tensors;
      expect([...saved.keys()].sort()).toEqual([...tensors.keys()].sort());
      for (const [k, [shape, v]] of tensors) {
        expect(saved.get(k)!.shape).toEqual(shape);
        expect(Buffer.from(saved.get(k)!.bytes).equals(Buffer.from(f32Bytes([...v])))).toBe(true);
      }
      const config = JSON.parse(fs.readFileSync(path.join(out, 'adapter_config.json'), 'utf8'));
      expect([config.target_parameters, config.target_modules]).toEqual([TARGETS, null]);
    });

    it('a new adapter trains one A per expert shared by the gate and up rows, and its gradients match finite differences', async () => {
      const peft = getPeftModel(await load(), { peft_type: 'LORA', r: R, lora_alpha: ALPHA, target_parameters: TARGETS, init_lora_weights: false }, { seed: 3 });
      const names = Object.keys(peft.trainableParameters());
      // Per layer and expert: w1's A (shared with w3), w1's and w3's halves of B, and down_proj's A and B: as many values as PEFT's.
      expect(names.length).toBe(sizes.layers * EXPERTS * 5);
      expect(names).not.toContain('model.layers.0.block_sparse_moe.experts.0.w3.lora_A.default.weight');
      const values = Object.values(peft.trainableParameters()).reduce((n, t) => n + t.size, 0);
      expect(values).toBe(sizes.layers * (R * EXPERTS * H + 2 * I * R * EXPERTS + R * EXPERTS * I + H * R * EXPERTS));
      const { checked } = await checkGradients(peft, [ids], [ids], { h: 3e-3, only: (n) => n.includes('.experts.1.') && n.includes('layers.0') });
      expect(checked).toBe(5 * 3);
    });

    it('refuses DoRA, dropout and parameters the model does not have', async () => {
      const model = await load();
      const make = (extra: Record<string, unknown>) => () => getPeftModel(model, { peft_type: 'LORA', r: R, target_parameters: TARGETS, ...extra } as never);
      expect(make({ use_dora: true })).toThrow(expect.objectContaining({ code: 'E_UNSUPPORTED' }));
      expect(make({ lora_dropout: 0.1 })).toThrow(expect.objectContaining({ code: 'E_UNSUPPORTED' }));
      expect(make({ target_parameters: ['mlp.experts.up_proj'] })).toThrow(/names no fused expert parameter/);
      const dense = await loadModel(STORIES_HF_DIR);
      expect(() => getPeftModel(dense, { peft_type: 'LORA', r: R, target_parameters: TARGETS })).toThrow(/no mixture-of-experts/);
    });
  });

  it('router_jitter_noise is refused with E_UNSUPPORTED', async () => {
    await expect(loadModel(writeHfDir({ ...config, router_jitter_noise: 0.1 }, weights))).rejects.toMatchObject({ code: 'E_UNSUPPORTED' });
  });
});
