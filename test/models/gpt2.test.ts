// GPT-2: a Hugging Face directory written in the test (Conv1D weights [in, out], keys without the
// transformer. prefix, the causal-mask buffers) loads and gives the logits of a float64 reference
// written here from the published architecture; gradients match finite differences; LoRA on the
// fused c_attn works and saves under PEFT's keys; cached generation equals recomputation; activation
// checkpointing and 4-bit projections work as they do for the Llama family.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { getPeftModel, loadModel, tensor } from '../../lib';
import { checkGradients, checkModelGradients } from '../helpers/finite-diff';
import { rng } from '../helpers/random';
import { gpt2Weights } from '../helpers/tiny-gpt2';
import { f32Bytes, parseSafetensors, writeSafetensorsJs, type JsTensor } from '../helpers/safetensors-js';

const H = 8, L = 2, HEADS = 2, V = 13, NPOS = 16, INNER = 4 * H;
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

/** HF-layout weights: name → [shape, values]. */
function makeWeights(seed: number): Map<string, [number[], Float32Array]> {
  return gpt2Weights(rng(seed), { hidden: H, layers: L, inner: INNER, vocab: V, positions: NPOS });
}

function writeModelDir(weights: Map<string, [number[], Float32Array]>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-'));
  dirs.push(dir);
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({
    model_type: 'gpt2', architectures: ['GPT2LMHeadModel'], n_embd: H, n_layer: L, n_head: HEADS, n_inner: null,
    vocab_size: V, n_positions: NPOS, layer_norm_epsilon: 1e-5, activation_function: 'gelu_new', bos_token_id: 0, eos_token_id: 0,
  }));
  const entries: [string, JsTensor][] = [...weights].map(([k, [shape, v]]) => [k, { dtype: 'F32', shape, bytes: f32Bytes([...v]) }]);
  // The causal-mask buffer older checkpoints carry: ignored.
  entries.push(['h.0.attn.bias', { dtype: 'F32', shape: [1, 1, NPOS, NPOS], bytes: f32Bytes(new Array(NPOS * NPOS).fill(1)) }]);
  writeSafetensorsJs(path.join(dir, 'model.safetensors'), entries);
  return dir;
}

/** Float64 GPT-2 forward from the HF-layout weights: logits [T, V] for one sequence. */
function reference(w: Map<string, [number[], Float32Array]>, ids: number[]): number[][] {
  const get = (k: string) => Array.from(w.get(k)![1]);
  const T = ids.length, D = H / HEADS;
  const ln = (x: number[], g: number[], b: number[]) => {
    const mean = x.reduce((a, v) => a + v, 0) / x.length;
    const variance = x.reduce((a, v) => a + (v - mean) ** 2, 0) / x.length;
    return x.map((v, i) => ((v - mean) / Math.sqrt(variance + 1e-5)) * g[i] + b[i]);
  };
  // Conv1D: y = x·W + b with W [in, out]
  const conv = (x: number[], wk: string, bk: string, out: number) => {
    const W = get(wk), B = get(bk);
    return Array.from({ length: out }, (_, o) => B[o] + x.reduce((a, v, i) => a + v * W[i * out + o], 0));
  };
  const gelu = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
  const wte = get('wte.weight'), wpe = get('wpe.weight');
  let xs = ids.map((id, t) => Array.from({ length: H }, (_, i) => wte[id * H + i] + wpe[t * H + i]));
  for (let l = 0; l < L; l++) {
    const p = `h.${l}.`;
    const qkv = xs.map((x) => conv(ln(x, get(p + 'ln_1.weight'), get(p + 'ln_1.bias')), p + 'attn.c_attn.weight', p + 'attn.c_attn.bias', 3 * H));
    const attn = qkv.map((_, t) => {
      const out = new Array(H).fill(0);
      for (let h = 0; h < HEADS; h++) {
        const scores = Array.from({ length: t + 1 }, (_, s) => {
          let dot = 0;
          for (let d = 0; d < D; d++) dot += qkv[t][h * D + d] * qkv[s][H + h * D + d];
          return dot / Math.sqrt(D);
        });
        const m = Math.max(...scores);
        const e = scores.map((v) => Math.exp(v - m));
        const z = e.reduce((a, v) => a + v, 0);
        for (let s = 0; s <= t; s++) for (let d = 0; d < D; d++) out[h * D + d] += (e[s] / z) * qkv[s][2 * H + h * D + d];
      }
      return out;
    });
    xs = xs.map((x, t) => conv(attn[t], p + 'attn.c_proj.weight', p + 'attn.c_proj.bias', H).map((v, i) => v + x[i]));
    xs = xs.map((x) => {
      const hidden = conv(ln(x, get(p + 'ln_2.weight'), get(p + 'ln_2.bias')), p + 'mlp.c_fc.weight', p + 'mlp.c_fc.bias', INNER).map(gelu);
      return conv(hidden, p + 'mlp.c_proj.weight', p + 'mlp.c_proj.bias', H).map((v, i) => v + x[i]);
    });
  }
  return xs.map((x) => {
    const n = ln(x, get('ln_f.weight'), get('ln_f.bias'));
    return Array.from({ length: V }, (_, v) => n.reduce((a, val, i) => a + val * wte[v * H + i], 0));
  });
}

describe('GPT-2', () => {
  const weights = makeWeights(31);
  const ids = [0, 5, 7, 2, 12, 3, 9];

  it('a Hugging Face directory loads and gives the float64 reference logits', async () => {
    const model = await loadModel(writeModelDir(weights));
    expect(model.config.architecture).toBe('gpt2');
    expect(model.info().parameters).toBe([...weights.values()].reduce((a, [s]) => a + s.reduce((x, y) => x * y, 1), 0));
    const logits = (await model.forward([ids])).toFloat32Array();
    const ref = reference(weights, ids).flat();
    const scale = Math.max(...ref.map(Math.abs));
    expect(Math.max(...ref.map((r, i) => Math.abs(r - logits[i])))).toBeLessThan(1e-5 * scale);
  });

  it('gradients of every parameter match finite differences (full fine-tuning)', async () => {
    const model = await loadModel(writeModelDir(weights));
    const checked = await checkModelGradients(model, [ids, ids.slice().reverse()], [ids, [-100, ...ids.slice(1)]]);
    expect(checked).toBe(3 * model.parameterNames().length);
  });

  it('LoRA on the fused c_attn (the default target) trains, saves under PEFT keys, and generation with the cache equals recomputation', async () => {
    const model = await loadModel(writeModelDir(weights));
    const peft = getPeftModel(model, { peft_type: 'LORA', r: 2, lora_alpha: 4, fan_in_fan_out: true, init_lora_weights: false }, { seed: 2 });
    const { names } = await checkGradients(peft, [ids], [ids]);
    expect(names.sort()).toEqual([0, 1].flatMap((l) => ['A', 'B'].map((x) => `transformer.h.${l}.attn.c_attn.lora_${x}.default.weight`)).sort());
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-lora-'));
    dirs.push(dir);
    await peft.saveAdapter(dir);
    const saved = [...parseSafetensors(path.join(dir, 'adapter_model.safetensors')).tensors].map(([k, t]) => [k, t.shape]);
    expect(saved).toContainEqual(['base_model.model.transformer.h.0.attn.c_attn.lora_A.weight', [2, H]]);
    expect(saved).toContainEqual(['base_model.model.transformer.h.1.attn.c_attn.lora_B.weight', [3 * H, 2]]);
    const { tokens } = await peft.generate([0, 5, 7], { maxNewTokens: 5 });
    const seq = [0, 5, 7];
    for (const t of tokens) {
      const logits = (await peft.forward([seq])).toFloat32Array();
      const last = Array.from(logits.subarray((seq.length - 1) * V, seq.length * V));
      expect(t).toBe(last.indexOf(Math.max(...last)));
      seq.push(t);
    }
    void tensor;
  });

  it('in evaluation mode the loss runs no LoRA dropout: equal bit for bit to lora_dropout 0', async () => {
    const lora = { peft_type: 'LORA', r: 2, lora_alpha: 4, fan_in_fan_out: true, init_lora_weights: false } as const;
    const noisy = getPeftModel(await loadModel(writeModelDir(weights)), { ...lora, lora_dropout: 0.5 }, { seed: 5 });
    const clean = getPeftModel(await loadModel(writeModelDir(weights)), { ...lora, lora_dropout: 0 }, { seed: 5 });
    const reference = (await clean.loss([ids])).loss;
    expect((await noisy.loss([ids])).loss).not.toBe(reference);
    noisy.eval();
    expect((await noisy.loss([ids])).loss).toBe(reference);
  });

  it('activation checkpointing gives exactly the loss and gradients of a normal backward', async () => {
    const grads = async (checkpoint: boolean) => {
      const model = await loadModel(writeModelDir(weights));
      if (checkpoint) model.setGradientCheckpointing(true);
      const lora = { peft_type: 'LORA', r: 2, lora_dropout: 0.3, target_modules: ['c_attn', 'c_proj', 'c_fc'], fan_in_fan_out: true, init_lora_weights: false } as const;
      const peft = getPeftModel(model, lora, { seed: 4 });
      const r = await peft.loss([ids, ids.slice().reverse()]);
      return { loss: r.loss, grads: Object.fromEntries(Object.entries(r.grads).map(([k, v]) => [k, Array.from(v.toFloat32Array())])) };
    };
    const plain = await grads(false), checkpointed = await grads(true);
    expect(Object.keys(plain.grads).length).toBe(L * 4 * 2);  // c_attn, attn.c_proj, c_fc, mlp.c_proj: A and B
    expect(checkpointed.loss).toBe(plain.loss);
    expect(checkpointed.grads).toEqual(plain.grads);
  });

  it('4-bit (NF4) block projections: LoRA gradients equal a dense model on the dequantized weights', async () => {
    const dir = writeModelDir(weights);
    const quant = await loadModel(dir, { quantization: { load_in_4bit: true, bnb_4bit_blocksize: 32 } });
    const names = quant.quantizedWeightNames().sort();
    expect(names).toEqual([0, 1].flatMap((l) => ['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj'].map((m) => `transformer.h.${l}.${m}.weight`)).sort());
    const dense = await loadModel(dir);
    for (const n of names) {
      const q = quant.parameter(n).toFloat32Array(), d = dense.parameter(n).toFloat32Array();
      expect(Math.max(...q.map((v, i) => Math.abs(v - d[i])))).toBeGreaterThan(0);  // really quantized
      dense.replaceParameter(n, quant.parameter(n));
    }
    const lora = { peft_type: 'LORA', r: 2, lora_alpha: 4, target_modules: ['c_attn', 'c_fc'], fan_in_fan_out: true, init_lora_weights: false } as const;
    const a = await getPeftModel(quant, lora, { seed: 3 }).loss([ids]);
    const b = await getPeftModel(dense, lora, { seed: 3 }).loss([ids]);
    expect(Math.abs(a.loss - b.loss)).toBeLessThan(1e-6 * Math.abs(b.loss));
    expect(Object.keys(a.grads).sort()).toEqual(Object.keys(b.grads).sort());
    for (const [k, g] of Object.entries(a.grads)) {
      const x = g.toFloat32Array(), y = b.grads[k].toFloat32Array();
      const scale = Math.max(...y.map(Math.abs));
      expect(Math.max(...x.map((v, i) => Math.abs(v - y[i])))).toBeLessThan(1e-5 * scale);
    }
  });

  it('sequences beyond n_positions are refused', async () => {
    const model = await loadModel(writeModelDir(weights));
    await expect(model.forward([new Array(NPOS + 1).fill(1)])).rejects.toMatchObject({ code: 'E_RANGE' });
  });
});
