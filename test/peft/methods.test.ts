// Every PEFT method's forward and backward on a small random Llama: gradients against central
// finite differences, frozen parameters without gradients, and forward passes against the base
// model with the adapter folded into its weights by hand.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { getPeftModel, loadAdapter, tensor, type Tensor } from '../../lib';
import { parseSafetensors } from '../helpers/safetensors-js';
import { Model } from '../../lib/models/model';
import { handleOf } from '../../lib/tensor';
import { checkGradients } from '../helpers/finite-diff';
import { tinyLlama, TINY_IDS, TINY_LABELS } from '../helpers/tiny-llama';

async function logitsOf(model: { forward(ids: number[][]): Promise<Tensor> }): Promise<Float32Array> {
  return (await model.forward(TINY_IDS)).toFloat32Array();
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

/** y = (W + s·B·A) as f64 row-major [out, in], from f32 arrays. */
function mergedLora(w: Float32Array, a: Float32Array, b: Float32Array, out: number, inF: number, r: number, s: number): Float32Array {
  const merged = new Float32Array(out * inF);
  for (let o = 0; o < out; o++) {
    for (let i = 0; i < inF; i++) {
      let ba = 0;
      for (let j = 0; j < r; j++) ba += b[o * r + j] * a[j * inF + i];
      merged[o * inF + i] = w[o * inF + i] + s * ba;
    }
  }
  return merged;
}

describe('LoRA', () => {
  it('gradients of A and B in every linear layer match finite differences; nothing else gets a gradient', async () => {
    const { model } = tinyLlama({ tie: true });
    const peft = getPeftModel(model, { peft_type: 'LORA', r: 2, lora_alpha: 3, target_modules: 'all-linear', init_lora_weights: false }, { seed: 3 });
    const { names } = await checkGradients(peft, TINY_IDS, TINY_LABELS);
    expect(names.length).toBe(2 * 7 * 2);
    expect(names.every((n) => /\.lora_[AB]\.default\.weight$/.test(n))).toBe(true);
    const { grads } = await peft.loss(TINY_IDS, TINY_LABELS);
    expect(Object.keys(grads).sort()).toEqual(names.sort());
  });

  it('its forward equals the base model with W + (alpha / r)·B·A, and rank_pattern / alpha_pattern / rsLoRA set r and the scale per module', async () => {
    const { model, config, weights } = tinyLlama({ tie: false });
    const peft = getPeftModel(model, {
      peft_type: 'LORA', r: 2, lora_alpha: 4, use_rslora: true, target_modules: ['q_proj', 'down_proj'],
      rank_pattern: { 'layers.1.mlp.down_proj': 3 }, alpha_pattern: { q_proj: 6 }, init_lora_weights: false,
    }, { seed: 5 });
    const params = peft.trainableParameters();
    const merged = new Map(weights);
    for (const module of peft.base.nativeModel.linearModules().map((m) => m.name)) {
      const a = params[`${module}.lora_A.default.weight`];
      if (!a) continue;
      const b = params[`${module}.lora_B.default.weight`];
      const r = a.shape[0];
      expect(r).toBe(module === 'model.layers.1.mlp.down_proj' ? 3 : 2);
      const alpha = module.endsWith('q_proj') ? 6 : 4;
      const w = weights.get(`${module}.weight`)!;
      merged.set(`${module}.weight`, tensor(mergedLora(w.toFloat32Array(), a.toFloat32Array(), b.toFloat32Array(), w.shape[0], w.shape[1], r, alpha / Math.sqrt(r)), w.shape));
    }
    const reference = new Model(config, merged);
    expect(maxAbsDiff(await logitsOf(peft), await logitsOf(reference))).toBeLessThan(1e-5);
  });

  it('with init_lora_weights true the adapted model starts equal to the base (B = 0, A kaiming-uniform)', async () => {
    const { model } = tinyLlama();
    const before = await logitsOf(model);
    const peft = getPeftModel(model, { peft_type: 'LORA', r: 4, target_modules: ['v_proj'] });
    expect(maxAbsDiff(await logitsOf(peft), before)).toBe(0);
    const a = peft.trainableParameters()['model.layers.0.self_attn.v_proj.lora_A.default.weight'].toFloat32Array();
    const bound = 1 / Math.sqrt(8);
    expect(Math.max(...a.map(Math.abs))).toBeLessThanOrEqual(bound);
    expect(Math.max(...a.map(Math.abs))).toBeGreaterThan(bound / 2);
  });

  it('pissa and olora initialisation keep the layer unchanged (residual base + s·B·A = W)', async () => {
    for (const init of ['pissa', 'olora'] as const) {
      const { model } = tinyLlama({ seed: 7 });
      const before = await logitsOf(model);
      const peft = getPeftModel(model, { peft_type: 'LORA', r: 3, lora_alpha: 6, target_modules: ['q_proj', 'o_proj'], init_lora_weights: init });
      expect([init, maxAbsDiff(await logitsOf(peft), before) < 1e-5]).toEqual([init, true]);
      const base = await peft.withAdaptersDisabled(() => logitsOf(peft));
      expect(maxAbsDiff(base, before)).toBeGreaterThan(1e-3);  // the base now holds the residual
    }
  });

  it("bias 'all' trains the biases too (Qwen2-style q/k/v biases), and their gradients are right", async () => {
    const { model } = tinyLlama({ tie: false, bias: true });
    const peft = getPeftModel(model, { peft_type: 'LORA', r: 2, target_modules: ['o_proj'], bias: 'all', init_lora_weights: false });
    const { names } = await checkGradients(peft, TINY_IDS, TINY_LABELS);
    expect(names.filter((n) => n.endsWith('.bias')).length).toBe(6);
  });
});

describe('DoRA', () => {
  it("the magnitude's gradient matches finite differences; A's and B's equal plain LoRA's on W and B rescaled by m / ‖W + s·B·A‖ (the norm is a constant, as in the paper)", async () => {
    const targets = ['q_proj', 'v_proj', 'up_proj'];
    const { model } = tinyLlama({ tie: false, seed: 4 });
    const peft = getPeftModel(model, { peft_type: 'LORA', r: 2, lora_alpha: 2, use_dora: true, target_modules: targets, init_lora_weights: false });
    // Move the magnitudes away from the norms so that the rescaling matters.
    for (const [name, t] of Object.entries(peft.trainableParameters())) {
      if (name.includes('magnitude')) peft.base.nativeModel.setParameterValue(name, handleOf(tensor(t.toFloat32Array().map((v, i) => v * (1.2 + 0.1 * (i % 3))), t.shape), name));
    }
    const { names } = await checkGradients(peft, TINY_IDS, TINY_LABELS, { only: (n) => n.includes('lora_magnitude_vector') });
    expect(names.filter((n) => n.includes('lora_magnitude_vector')).length).toBe(6);
    const params = peft.trainableParameters();
    const { grads } = await peft.loss(TINY_IDS, TINY_LABELS);
    // The same function with the norm held fixed: LoRA on W' = g ⊙ W with B' = g ⊙ B, g = m / ‖W + s·B·A‖.
    const { model: reference, weights: live } = tinyLlama({ tie: false, seed: 4 });
    const weights = new Map(live);  // the reference model's map changes as its weights are replaced
    const lora = getPeftModel(reference, { peft_type: 'LORA', r: 2, lora_alpha: 2, target_modules: targets, init_lora_weights: false });
    for (const module of peft.base.nativeModel.linearModules().map((m) => m.name).filter((m) => params[`${m}.lora_A.default.weight`])) {
      const w = weights.get(`${module}.weight`)!;
      const [out, inF] = w.shape;
      const a = params[`${module}.lora_A.default.weight`].toFloat32Array();
      const b = params[`${module}.lora_B.default.weight`].toFloat32Array();
      const m = params[`${module}.lora_magnitude_vector.default.weight`].toFloat32Array();
      const full = mergedLora(w.toFloat32Array(), a, b, out, inF, 2, 1);
      const g = Array.from({ length: out }, (_, o) => m[o] / Math.hypot(...full.subarray(o * inF, (o + 1) * inF)));
      const wf = w.toFloat32Array().map((v, k) => v * g[Math.floor(k / inF)]);
      const bf = b.map((v, k) => v * g[Math.floor(k / 2)]);
      reference.replaceParameter(`${module}.weight`, tensor(wf, w.shape));
      reference.nativeModel.setParameterValue(`${module}.lora_A.default.weight`, handleOf(tensor(a, [2, inF]), 'A'));
      reference.nativeModel.setParameterValue(`${module}.lora_B.default.weight`, handleOf(tensor(bf, [out, 2]), 'B'));
    }
    expect(maxAbsDiff(await logitsOf(peft), await logitsOf(lora))).toBeLessThan(1e-5);
    const { grads: ref } = await lora.loss(TINY_IDS, TINY_LABELS);
    for (const name of Object.keys(ref)) {
      const expected = ref[name].toFloat32Array();
      const module = name.replace(/\.lora_[AB]\.default\.weight$/, '');
      let got = grads[name].toFloat32Array();
      if (name.includes('lora_B')) {
        // dB = g ⊙ dB'
        const full = mergedLora(weights.get(`${module}.weight`)!.toFloat32Array(), params[`${module}.lora_A.default.weight`].toFloat32Array(),
          params[`${module}.lora_B.default.weight`].toFloat32Array(), expected.length / 2, 8, 2, 1);
        const m = params[`${module}.lora_magnitude_vector.default.weight`].toFloat32Array();
        got = got.map((v, k) => v / (m[Math.floor(k / 2)] / Math.hypot(...full.subarray(Math.floor(k / 2) * 8, Math.floor(k / 2) * 8 + 8))));
      }
      expect([name, maxAbsDiff(got, expected) < 1e-5]).toEqual([name, true]);
    }
  });

  it('its forward equals the base with W′ = m / ‖W + s·B·A‖ · (W + s·B·A) per output row; the magnitude starts at ‖W‖', async () => {
    const { model, config, weights } = tinyLlama({ tie: false, seed: 9 });
    const peft = getPeftModel(model, { peft_type: 'LORA', r: 2, lora_alpha: 4, use_dora: true, target_modules: ['k_proj'], init_lora_weights: false });
    const params = peft.trainableParameters();
    const merged = new Map(weights);
    for (const l of [0, 1]) {
      const module = `model.layers.${l}.self_attn.k_proj`;
      const w = weights.get(`${module}.weight`)!;
      const [out, inF] = w.shape;
      const full = mergedLora(w.toFloat32Array(), params[`${module}.lora_A.default.weight`].toFloat32Array(),
        params[`${module}.lora_B.default.weight`].toFloat32Array(), out, inF, 2, 2);
      const m = params[`${module}.lora_magnitude_vector.default.weight`].toFloat32Array();
      const wf = w.toFloat32Array();
      for (let o = 0; o < out; o++) {
        let norm = 0, baseNorm = 0;
        for (let i = 0; i < inF; i++) {
          norm += full[o * inF + i] ** 2;
          baseNorm += wf[o * inF + i] ** 2;
        }
        expect(m[o]).toBeCloseTo(Math.sqrt(norm), 5);  // initialised from ‖W + s·B·A‖
        for (let i = 0; i < inF; i++) full[o * inF + i] *= m[o] / Math.sqrt(norm);
        void baseNorm;
      }
      merged.set(`${module}.weight`, tensor(full, w.shape));
    }
    expect(maxAbsDiff(await logitsOf(peft), await logitsOf(new Model(config, merged)))).toBeLessThan(1e-5);
  });
});

describe('IA3', () => {
  it('gradients of the scaling vectors (output-scaled k/v, input-scaled down_proj) match finite differences', async () => {
    const { model } = tinyLlama({ tie: false, bias: true, seed: 6 });
    const peft = getPeftModel(model, { peft_type: 'IA3', init_ia3_weights: false });
    const { names } = await checkGradients(peft, TINY_IDS, TINY_LABELS);
    expect(names.sort()).toEqual(
      [0, 1].flatMap((l) => ['self_attn.k_proj', 'self_attn.v_proj', 'mlp.down_proj'].map((m) => `model.layers.${l}.${m}.ia3_l.default`)).sort(),
    );
  });

  it('its forward equals the base with W rows (and bias) scaled by l, or columns for feed-forward layers', async () => {
    const { model, config, weights } = tinyLlama({ tie: false, bias: true, seed: 8 });
    const peft = getPeftModel(model, { peft_type: 'IA3', target_modules: ['v_proj', 'up_proj'], feedforward_modules: ['up_proj'], init_ia3_weights: false });
    const params = peft.trainableParameters();
    const merged = new Map(weights);
    for (const [name, vec] of Object.entries(params)) {
      const module = name.replace('.ia3_l.default', '');
      const l = vec.toFloat32Array();
      const w = weights.get(`${module}.weight`)!;
      const [out, inF] = w.shape;
      const wf = w.toFloat32Array().slice();
      const ff = module.endsWith('up_proj');
      for (let o = 0; o < out; o++) for (let i = 0; i < inF; i++) wf[o * inF + i] *= ff ? l[i] : l[o];
      merged.set(`${module}.weight`, tensor(wf, w.shape));
      const bias = weights.get(`${module}.bias`);
      if (bias && !ff) merged.set(`${module}.bias`, tensor(bias.toFloat32Array().map((b, o) => b * l[o]), bias.shape));
    }
    expect(maxAbsDiff(await logitsOf(peft), await logitsOf(new Model(config, merged)))).toBeLessThan(1e-5);
  });
});

describe('prompt tuning', () => {
  it('gradients of the virtual token embeddings match finite differences; logits cover the given tokens only', async () => {
    const { model } = tinyLlama({ seed: 2 });
    const before = await logitsOf(model);
    const peft = getPeftModel(model, { peft_type: 'PROMPT_TUNING', num_virtual_tokens: 3 }, { seed: 1 });
    const { names } = await checkGradients(peft, TINY_IDS, TINY_LABELS);
    expect(names).toEqual(['prompt_embeddings.default']);
    expect((await peft.forward(TINY_IDS)).shape).toEqual([2, 6, 11]);
    const base = await peft.withAdaptersDisabled(() => logitsOf(peft));
    expect(maxAbsDiff(base, before)).toBe(0);
    expect(maxAbsDiff(await logitsOf(peft), base)).toBeGreaterThan(1e-3);
  });

  it("TEXT initialisation copies the embeddings of the text's tokens, repeated to the length", async () => {
    const { model } = tinyLlama();
    const fake = { encode: () => [3, 7], bosId: undefined, eosId: undefined } as unknown as NonNullable<Model['tokenizer']>;
    Object.defineProperty(model, 'tokenizer', { value: fake });
    const peft = getPeftModel(model, { peft_type: 'PROMPT_TUNING', num_virtual_tokens: 5, prompt_tuning_init: 'TEXT', prompt_tuning_init_text: 'x' });
    const prompt = peft.trainableParameters()['prompt_embeddings.default'].toFloat32Array();
    const table = model.parameter('model.embed_tokens.weight').toFloat32Array();
    [3, 7, 3, 7, 3].forEach((id, i) => expect(Array.from(prompt.subarray(i * 8, i * 8 + 8))).toEqual(Array.from(table.subarray(id * 8, id * 8 + 8))));
  });
});

describe('LayerNorm tuning and BitFit', () => {
  it('LayerNorm tuning trains the norm weights only, with correct gradients, and disabling restores the base', async () => {
    const { model } = tinyLlama({ seed: 11 });
    const before = await logitsOf(model);
    const peft = getPeftModel(model, { peft_type: 'LN_TUNING' });
    const { names } = await checkGradients(peft, TINY_IDS, TINY_LABELS);
    expect(names.sort()).toEqual(['model.layers.0.input_layernorm.weight', 'model.layers.0.post_attention_layernorm.weight',
      'model.layers.1.input_layernorm.weight', 'model.layers.1.post_attention_layernorm.weight', 'model.norm.weight']);
    expect(maxAbsDiff(await peft.withAdaptersDisabled(() => logitsOf(peft)), before)).toBe(0);
  });

  it('BitFit trains the biases only', async () => {
    const { model } = tinyLlama({ tie: false, bias: true, seed: 12 });
    const peft = getPeftModel(model, { peft_type: 'BITFIT' });
    const { names } = await checkGradients(peft, TINY_IDS, TINY_LABELS);
    expect(names.length).toBe(6);
    expect(names.every((n) => n.endsWith('.bias'))).toBe(true);
  });

  it('BitFit on a model without biases is refused', () => {
    const { model } = tinyLlama();
    expect(() => getPeftModel(model, { peft_type: 'BITFIT' })).toThrow(expect.objectContaining({ code: 'E_CONFIG' }));
  });
});

describe('printTrainableParameters', () => {
  it('prints the counts as PEFT does', () => {
    const { model } = tinyLlama();
    const peft = getPeftModel(model, { peft_type: 'LORA', r: 2, target_modules: ['q_proj', 'v_proj'] });
    const lines: string[] = [];
    peft.printTrainableParameters((l) => lines.push(l));
    // Base: embeddings 11·8, final norm 8, per layer 2 norms, q 16·8, k/v 8·8, o 8·16, gate/up 12·8, down 8·12.
    const base = 11 * 8 + 8 + 2 * (2 * 8 + 16 * 8 + 2 * 8 * 8 + 8 * 16 + 3 * 12 * 8);
    const lora = 2 * (2 * 8 + 16 * 2 + 2 * 8 + 8 * 2);
    const pct = ((100 * lora) / (base + lora)).toFixed(4);
    expect(lines).toEqual([`trainable params: ${lora.toLocaleString('en-US')} || all params: ${(base + lora).toLocaleString('en-US')} || trainable%: ${pct}`]);
  });
});

describe('bottleneck adapters', () => {
  for (const [kind, mode, act] of [['houlsby', 'sequential', 'swish'], ['pfeiffer', 'parallel', 'relu'], ['houlsby', 'parallel', 'gelu'], ['pfeiffer', 'sequential', 'tanh']] as const) {
    it(`${kind} (${mode}, ${act}): gradients match finite differences, and the model starts unchanged`, async () => {
      const { model } = tinyLlama({ seed: 13 });
      const before = await logitsOf(model);
      const peft = getPeftModel(model, { peft_type: 'BOTTLENECK', bottleneck_type: kind, mode, non_linearity: act, reduction_factor: 4, scaling: 2 }, { seed: 3 });
      expect(maxAbsDiff(await logitsOf(peft), before)).toBe(0);
      // Move the zero-initialised up-projections so that every gradient is non-trivial.
      for (const [name, t] of Object.entries(peft.trainableParameters())) {
        peft.base.nativeModel.setParameterValue(name, handleOf(tensor(t.toFloat32Array().map((v, i) => v + 0.3 * Math.sin(i + name.length)), t.shape), name));
      }
      const { names } = await checkGradients(peft, TINY_IDS, TINY_LABELS);
      expect(names.length).toBe(2 * (kind === 'houlsby' ? 2 : 1) * 4);
      expect(maxAbsDiff(await peft.withAdaptersDisabled(() => logitsOf(peft)), before)).toBe(0);
    });
  }
});

describe('prefix tuning and P-tuning', () => {
  it('prefix tuning: gradients of the virtual keys and values match finite differences; generation with the cache equals recomputation', async () => {
    const { model } = tinyLlama({ seed: 14 });
    const before = await logitsOf(model);
    const peft = getPeftModel(model, { peft_type: 'PREFIX_TUNING', num_virtual_tokens: 3 }, { seed: 2 });
    const { names } = await checkGradients(peft, TINY_IDS, TINY_LABELS);
    expect(names).toEqual(['prefix_kv.default']);
    expect(peft.trainableParameters()['prefix_kv.default'].shape).toEqual([3, 2 * 2 * 2 * 4]);  // layers · 2 · kv heads · head dim
    expect((await peft.forward(TINY_IDS)).shape).toEqual([2, 6, 11]);
    expect(maxAbsDiff(await peft.withAdaptersDisabled(() => logitsOf(peft)), before)).toBe(0);
    // Greedy tokens from the KV cache (prefix preloaded) equal the argmax of full forwards.
    const { tokens } = await peft.generate([1, 5, 7], { maxNewTokens: 4 });
    const seq = [1, 5, 7];
    for (const t of tokens) {
      const logits = (await peft.forward([seq])).toFloat32Array();
      const last = logits.subarray((seq.length - 1) * 11, seq.length * 11);
      expect(t).toBe(last.indexOf(Math.max(...last)));
      seq.push(t);
    }
  });

  it('prefix tuning with prefix_projection: gradients of the embedding and both projections match finite differences', async () => {
    const { model } = tinyLlama({ seed: 15 });
    const peft = getPeftModel(model, { peft_type: 'PREFIX_TUNING', num_virtual_tokens: 2, prefix_projection: true, encoder_hidden_size: 5 }, { seed: 2 });
    const { names } = await checkGradients(peft, TINY_IDS, TINY_LABELS);
    expect(names.sort()).toEqual(['prompt_encoder.default.embedding.weight', 'prompt_encoder.default.transform.0.bias', 'prompt_encoder.default.transform.0.weight',
      'prompt_encoder.default.transform.2.bias', 'prompt_encoder.default.transform.2.weight']);
  });

  it('P-tuning (MLP encoder): gradients of the encoder match finite differences', async () => {
    const { model } = tinyLlama({ seed: 16 });
    const peft = getPeftModel(model, { peft_type: 'P_TUNING', num_virtual_tokens: 2, encoder_hidden_size: 6 }, { seed: 4 });
    const { names } = await checkGradients(peft, TINY_IDS, TINY_LABELS);
    expect(names.length).toBe(7);
    expect((await peft.forward(TINY_IDS)).shape).toEqual([2, 6, 11]);
  });
});

describe('P-tuning with an LSTM encoder', () => {
  it('gradients of the bidirectional LSTM and its MLP head match finite differences', async () => {
    const { model } = tinyLlama({ seed: 18 });
    const peft = getPeftModel(model, { peft_type: 'P_TUNING', num_virtual_tokens: 3, encoder_reparameterization_type: 'LSTM', encoder_hidden_size: 3, encoder_num_layers: 2 }, { seed: 5 });
    const { names } = await checkGradients(peft, TINY_IDS, TINY_LABELS, { h: 1e-2 });
    expect(names.length).toBe(1 + 2 * 2 * 4 + 4);
    expect(names).toContain('prompt_encoder.default.lstm_head.weight_hh_l1_reverse');
  });
});

describe('LoRA on the token embeddings', () => {
  it('gradients of lora_embedding_A and lora_embedding_B match finite differences; the forward equals E + s·(B·A)ᵀ; saved under PEFT keys; merges', async () => {
    const { model, config, weights } = tinyLlama({ tie: false, seed: 19 });
    const peft = getPeftModel(model, { peft_type: 'LORA', r: 2, lora_alpha: 6, target_modules: ['embed_tokens', 'q_proj'], init_lora_weights: false }, { seed: 3 });
    const { names } = await checkGradients(peft, TINY_IDS, TINY_LABELS);
    expect(names).toContain('model.embed_tokens.lora_embedding_A.default');
    const params = peft.trainableParameters();
    const a = params['model.embed_tokens.lora_embedding_A.default'].toFloat32Array();  // [2, 11]
    const b = params['model.embed_tokens.lora_embedding_B.default'].toFloat32Array();  // [8, 2]
    const merged = new Map(weights);
    const e = weights.get('model.embed_tokens.weight')!.toFloat32Array().slice();
    for (let v = 0; v < 11; v++) for (let h = 0; h < 8; h++) e[v * 8 + h] += 3 * (b[h * 2] * a[v] + b[h * 2 + 1] * a[11 + v]);
    merged.set('model.embed_tokens.weight', tensor(e, [11, 8]));
    const q = params['model.layers.0.self_attn.q_proj.lora_A.default.weight'];
    void q;
    // Compare with LoRA on q_proj alone on the hand-merged embedding table.
    const reference = getPeftModel(new Model(config, merged), { peft_type: 'LORA', r: 2, lora_alpha: 6, target_modules: ['q_proj'], init_lora_weights: false }, { seed: 3 });
    for (const [n, t] of Object.entries(reference.trainableParameters())) reference.setParameterValue(n, params[n] ?? t);
    expect(maxAbsDiff(await logitsOf(peft), await logitsOf(reference))).toBeLessThan(1e-5);
    const unmerged = await logitsOf(peft);
    peft.merge();
    expect(maxAbsDiff(await logitsOf(peft), unmerged)).toBeLessThan(1e-5);
    peft.unmerge();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-embed-'));
    await peft.saveAdapter(dir);
    const keys = [...parseSafetensors(path.join(dir, 'adapter_model.safetensors')).tensors].map(([k, t]) => [k, t.shape]);
    expect(keys).toContainEqual(['base_model.model.model.embed_tokens.lora_embedding_A', [2, 11]]);
    expect(keys).toContainEqual(['base_model.model.model.embed_tokens.lora_embedding_B', [8, 2]]);
    const reloaded = await loadAdapter(tinyLlama({ tie: false, seed: 19 }).model, dir);
    expect(maxAbsDiff(await logitsOf(reloaded), unmerged)).toBeLessThan(1e-6);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('activation checkpointing', () => {
  it('gives exactly the gradients of a normal backward (dropout masks recomputed identically)', async () => {
    const grads = async (checkpoint: boolean) => {
      const { model } = tinyLlama({ tie: false, bias: true, seed: 21 });
      if (checkpoint) model.setGradientCheckpointing(true);
      const peft = getPeftModel(model, { peft_type: 'LORA', r: 2, lora_dropout: 0.3, target_modules: 'all-linear', init_lora_weights: false }, { seed: 4 });
      const r = await peft.loss(TINY_IDS, TINY_LABELS);
      return { loss: r.loss, grads: Object.fromEntries(Object.entries(r.grads).map(([k, v]) => [k, Array.from(v.toFloat32Array())])) };
    };
    const plain = await grads(false), checkpointed = await grads(true);
    expect(checkpointed.loss).toBe(plain.loss);
    expect(Object.keys(checkpointed.grads).length).toBe(28);
    expect(checkpointed.grads).toEqual(plain.grads);
  });
});
