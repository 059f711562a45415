// QuantLinear (a 4-bit base weight in the linear layers) and QLoRA on small random Llamas: forward
// and backward against the same model with the 4-bit weights dequantized by the facade and held
// dense; LoRA / DoRA / IA3 gradients against finite differences and against that reference;
// frozen 4-bit weights; bad 4-bit weights.
import { getPeftModel, PeftError, quantize, runtime, tensor } from '../../lib';
import { Model } from '../../lib/models/model';
import { native, type NativeBnbWeight } from '../../lib/native';
import { nativeQuantWeight } from '../../lib/quant/model-weights';
import { handleOf } from '../../lib/tensor';
import { checkGradients } from '../helpers/finite-diff';
import { tinyLlama, TINY_IDS, TINY_LABELS } from '../helpers/tiny-llama';
import { maxAbsDiff, relativeError, tinyQuantPair, wideQuantPair, type QuantPair } from './qlora-helpers';

// The multi-panel paths on test-sized weights: panels of 2^18 floats (the default is 2^22).
let panelFloats = 0;
beforeAll(() => {
  panelFloats = runtime.setPanelFloats(1 << 18);
});
afterAll(() => runtime.setPanelFloats(panelFloats));

/** Logits and the gradients of the dense parameters (norms, embeddings, head, biases) of both models. */
async function compare(pair: QuantPair, ids: number[][], labels: number[][]) {
  const logits = (await pair.quantized.forward(ids)).toFloat32Array();
  const expected = (await pair.reference.forward(ids)).toFloat32Array();
  const q = await pair.quantized.loss(ids, labels);
  const r = await pair.reference.loss(ids, labels);
  return { logits, expected, q, r };
}

describe('QuantLinear: a 4-bit base weight in nn::Linear', () => {
  const cases: [string, () => QuantPair][] = [
    ['nf4, blocksize 32, tiny Llama with q/k/v biases', () => tinyQuantPair({ tie: false, bias: true, seed: 3 })],
    ['fp4, double-quantized, blocksize 64', () => tinyQuantPair({ tie: true, seed: 5 }, { quantType: 'fp4', doubleQuant: true, blocksize: 64 })],
    ['nf4 with bf16 compute dtype', () => tinyQuantPair({ tie: false, seed: 2 }, { computeDtype: 'bf16' })],
    ['nf4, double-quantized, layers of several dequantized panels (FFN 6600), blocks across rows', () => wideQuantPair({ doubleQuant: true, blocksize: 64 })],
  ];
  it.each(cases)('%s: logits and dx (gradients below every 4-bit layer) equal the dequantized f32 model', async (_, make) => {
    const pair = make();
    const { logits, expected, q, r } = await compare(pair, TINY_IDS, TINY_LABELS);
    expect(relativeError(logits, expected)).toBeLessThan(2e-6);
    expect(Math.abs(q.loss - r.loss)).toBeLessThan(1e-5);
    // The 4-bit weights get no gradient; every other parameter's equals the reference's.
    const names = Object.keys(q.grads).sort();
    expect(names).toEqual(Object.keys(r.grads).filter((n) => !pair.weights.has(n)).sort());
    expect(names).toContain('model.embed_tokens.weight');  // reached only through dx of every layer
    for (const name of names) {
      const err = relativeError(q.grads[name].toFloat32Array(), r.grads[name].toFloat32Array());
      expect([name, err < 1e-4]).toEqual([name, true]);
    }
  });

  it('generation with the KV cache runs on the 4-bit weights and matches the reference', async () => {
    const pair = tinyQuantPair({ tie: false, seed: 4 });
    const a = await pair.quantized.generate([1, 5, 7], { maxNewTokens: 6 });
    const b = await pair.reference.generate([1, 5, 7], { maxNewTokens: 6 });
    expect(a.tokens).toEqual(b.tokens);
  });

  it('reports the 4-bit weights: info() bytes, quantizedWeight(), parameter() dequantized, PEFT-style counts', async () => {
    const pair = tinyQuantPair({ tie: false, seed: 3 }, { doubleQuant: true, blocksize: 32 });
    const info = pair.quantized.info();
    const reference = pair.reference.info();
    expect(info.parameters).toBe(reference.parameters);
    let expectedBytes = 0, count = 0;
    for (const q of pair.weights.values()) {
      // codes: 4 bits each; scales: one u8 per block of 32; nested scales: one f32 per 256 blocks; tables.
      const blocks = Math.ceil(q.size / 32);
      expectedBytes += Math.ceil(q.size / 2) + blocks + 4 * Math.ceil(blocks / 256) + 16 * 4 + 256 * 4;
      count += q.size;
    }
    expect(info.byDtype.nf4).toEqual({ parameters: count, bytes: expectedBytes });
    expect(info.bytes).toBe(reference.bytes - 4 * count + expectedBytes);
    const name = 'model.layers.1.mlp.down_proj.weight';
    const live = pair.quantized.quantizedWeight(name)!;
    expect(live.shape).toEqual([8, 12]);
    expect(live.data.toTypedArray()).toEqual(pair.weights.get(name)!.data.toTypedArray());
    expect(pair.quantized.parameter(name).toFloat32Array()).toEqual(pair.reference.parameter(name).toFloat32Array());
    expect(pair.quantized.quantizedWeight('model.norm.weight')).toBeUndefined();
    const peft = getPeftModel(pair.quantized, { peft_type: 'LORA', r: 2, target_modules: ['q_proj'] });
    const refPeft = getPeftModel(pair.reference, { peft_type: 'LORA', r: 2, target_modules: ['q_proj'] });
    expect(peft.getNbTrainableParameters()).toEqual(refPeft.getNbTrainableParameters());
  });

  it('4-bit weights are frozen: training one is E_DTYPE, replacing one too; bad 4-bit weights are refused', () => {
    const pair = tinyQuantPair({ seed: 3 });
    const name = 'model.layers.0.self_attn.q_proj.weight';
    const code = (fn: () => unknown) => {
      try {
        fn();
      } catch (err) {
        expect(err).toBeInstanceOf(PeftError);
        return [(err as PeftError).code, (err as Error).message];
      }
      return ['no error', ''];
    };
    const [trainCode, trainMessage] = code(() => pair.quantized.nativeModel.setTrainable(name, true));
    expect(trainCode).toBe('E_DTYPE');
    expect(trainMessage).toMatch(/4-bit/);
    expect(code(() => pair.quantized.nativeModel.setParameterValue(name, handleOf(tensor(new Float32Array(128), [16, 8]), 'v')))[0]).toBe('E_DTYPE');
    // PiSSA would rewrite the 4-bit weight with its residual.
    expect(code(() => getPeftModel(pair.quantized, { peft_type: 'LORA', r: 2, target_modules: ['q_proj'], init_lora_weights: 'pissa' }))[0]).toBe('E_DTYPE');
    // modules_to_save on a 4-bit layer would train it.
    expect(code(() => getPeftModel(pair.quantized, { peft_type: 'LORA', r: 2, target_modules: ['k_proj'], modules_to_save: ['q_proj'] }))[0]).toBe('E_DTYPE');

    const { config, weights } = tinyLlama({ seed: 3 });
    const q = pair.weights.get(name)!;
    const build = (quantized: Record<string, unknown>, dense = weights) =>
      code(() => new native.NativeLlama(config, [...dense.keys()], [...dense.values()].map((t) => handleOf(t, 't')), quantized as never));
    const good = nativeQuantWeight(q, 'f32', name) as NativeBnbWeight;
    expect(build({ [name]: { ...good, shape: [8, 16] } })[0]).toBe('E_CONFIG');  // the config's shape is [16, 8]
    expect(build({ [name]: { ...good, shape: [16, 9] } })[0]).toBe('E_SHAPE');  // not the number of codes stored
    expect(build({ [name]: { ...good, computeDtype: 'f16' } })[0]).toBe('E_DTYPE');
    expect(build({ [name]: { ...good, blocksize: 48 } })[0]).toBe('E_RANGE');
    expect(build({ [name]: { ...good, absmax: good.quantMap } })[0]).toBe('E_SHAPE');
    expect(build({ 'model.embed_tokens.weight': nativeQuantWeight(q, 'f32', 'e') })[0]).toBe('E_CONFIG');
    expect(() => new Model(config, weights, undefined, undefined, { weights: new Map([[name, q]]), computeDtype: 'f32' })).not.toThrow();
  });
});

describe('QLoRA: adapters on a 4-bit base', () => {
  it('LoRA (all linear layers): gradients of A and B match finite differences and the dequantized model', async () => {
    const pair = tinyQuantPair({ tie: true, seed: 7 }, { doubleQuant: true });
    const config = { peft_type: 'LORA', r: 2, lora_alpha: 3, target_modules: 'all-linear', init_lora_weights: false };
    const peft = getPeftModel(pair.quantized, config, { seed: 3 });
    const { names } = await checkGradients(peft, TINY_IDS, TINY_LABELS);
    expect(names.length).toBe(2 * 7 * 2);
    const ref = getPeftModel(pair.reference, config, { seed: 3 });
    const [a, b] = [await peft.loss(TINY_IDS, TINY_LABELS), await ref.loss(TINY_IDS, TINY_LABELS)];
    expect(Object.keys(a.grads).sort()).toEqual(Object.keys(b.grads).sort());
    for (const n of Object.keys(a.grads)) expect([n, relativeError(a.grads[n].toFloat32Array(), b.grads[n].toFloat32Array()) < 1e-4]).toEqual([n, true]);
  });

  it('LoRA with dropout in training: the same gradients as on the dequantized model (same dropout masks)', async () => {
    const pair = tinyQuantPair({ tie: false, seed: 8 });
    const config = { peft_type: 'LORA', r: 2, lora_alpha: 4, lora_dropout: 0.3, target_modules: ['q_proj', 'down_proj'], init_lora_weights: false };
    const peft = getPeftModel(pair.quantized, config, { seed: 1 });
    const ref = getPeftModel(pair.reference, config, { seed: 1 });
    const [a, b] = [await peft.loss(TINY_IDS, TINY_LABELS), await ref.loss(TINY_IDS, TINY_LABELS)];
    expect(Math.abs(a.loss - b.loss)).toBeLessThan(1e-5);
    for (const n of Object.keys(b.grads)) expect([n, relativeError(a.grads[n].toFloat32Array(), b.grads[n].toFloat32Array()) < 1e-4]).toEqual([n, true]);
  });

  it('DoRA: the magnitude matches finite differences; every gradient and the norms ‖W + s·B·A‖ (from 4-bit row blocks) match the dequantized model', async () => {
    const pair = tinyQuantPair({ tie: false, seed: 4 }, { quantType: 'fp4' });
    const config = { peft_type: 'LORA', r: 2, lora_alpha: 2, use_dora: true, target_modules: ['q_proj', 'v_proj', 'up_proj'], init_lora_weights: false };
    const peft = getPeftModel(pair.quantized, config, { seed: 2 });
    const ref = getPeftModel(pair.reference, config, { seed: 2 });
    const pm = peft.trainableParameters(), rm = ref.trainableParameters();
    for (const n of Object.keys(rm).filter((k) => k.includes('magnitude'))) {
      expect([n, relativeError(pm[n].toFloat32Array(), rm[n].toFloat32Array()) < 1e-6]).toEqual([n, true]);
      // Move the magnitudes off the norms so that the rescaling matters (the same in both models).
      const moved = tensor(pm[n].toFloat32Array().map((v, i) => v * (1.2 + 0.1 * (i % 3))), pm[n].shape);
      peft.setParameterValue(n, moved);
      ref.setParameterValue(n, tensor(moved.toFloat32Array(), moved.shape));
    }
    await checkGradients(peft, TINY_IDS, TINY_LABELS, { only: (n) => n.includes('lora_magnitude_vector') });
    const [a, b] = [await peft.loss(TINY_IDS, TINY_LABELS), await ref.loss(TINY_IDS, TINY_LABELS)];
    expect(Object.keys(a.grads).length).toBe(3 * 3 * 2);
    for (const n of Object.keys(b.grads)) expect([n, relativeError(a.grads[n].toFloat32Array(), b.grads[n].toFloat32Array()) < 1e-4]).toEqual([n, true]);
    peft.eval();
    ref.eval();
    expect(relativeError((await peft.forward(TINY_IDS)).toFloat32Array(), (await ref.forward(TINY_IDS)).toFloat32Array())).toBeLessThan(2e-6);
  });

  it('IA3 (output- and input-scaled layers): gradients match finite differences and the dequantized model', async () => {
    const pair = tinyQuantPair({ tie: false, bias: true, seed: 6 }, { doubleQuant: true, computeDtype: 'bf16' });
    const peft = getPeftModel(pair.quantized, { peft_type: 'IA3', init_ia3_weights: false });
    const { names } = await checkGradients(peft, TINY_IDS, TINY_LABELS);
    expect(names.length).toBe(6);
    const ref = getPeftModel(pair.reference, { peft_type: 'IA3', init_ia3_weights: false });
    const [a, b] = [await peft.loss(TINY_IDS, TINY_LABELS), await ref.loss(TINY_IDS, TINY_LABELS)];
    for (const n of Object.keys(b.grads)) expect([n, relativeError(a.grads[n].toFloat32Array(), b.grads[n].toFloat32Array()) < 1e-4]).toEqual([n, true]);
  });

  it('generation with a LoRA adapter on the 4-bit base equals the reference', async () => {
    const pair = tinyQuantPair({ tie: false, seed: 9 });
    const config = { peft_type: 'LORA', r: 2, lora_alpha: 8, target_modules: 'all-linear', init_lora_weights: false };
    const a = await getPeftModel(pair.quantized, config, { seed: 4 }).generate([3, 1, 4], { maxNewTokens: 5 });
    const b = await getPeftModel(pair.reference, config, { seed: 4 }).generate([3, 1, 4], { maxNewTokens: 5 });
    expect(a.tokens).toEqual(b.tokens);
  });
});

describe('merging into a 4-bit base', () => {
  const lora = { peft_type: 'LORA', r: 2, lora_alpha: 4, target_modules: ['q_proj', 'down_proj'], init_lora_weights: false };

  it('requantizing (the default, as PEFT): the merged layers stay 4-bit, equal to quantize(dequant(W) + s·B·A), with a warning; unmerge warns too', async () => {
    const pair = tinyQuantPair({ tie: false, seed: 12 }, { doubleQuant: true });
    const peft = getPeftModel(pair.quantized, lora, { seed: 5 });
    const params = peft.trainableParameters();
    peft.eval();
    const unmerged = (await peft.forward(TINY_IDS)).toFloat32Array();
    const warnings: string[] = [];
    peft.merge(undefined, { warn: (m) => warnings.push(m) });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/4-bit.*rounding/);
    const name = 'model.layers.1.mlp.down_proj';
    const q = pair.quantized.quantizedWeight(`${name}.weight`)!;
    expect(q.double_quant).toBe(true);
    // Independent: merge by hand in f32 from the facade's dequantization, quantize with the facade.
    const a = params[`${name}.lora_A.default.weight`].toFloat32Array(), b = params[`${name}.lora_B.default.weight`].toFloat32Array();
    const w = pair.reference.parameter(`${name}.weight`).toFloat32Array();
    const merged = w.map((v, k) => {
      const o = Math.floor(k / 12), i = k % 12;
      return v + 2 * (b[o * 2] * a[i] + b[o * 2 + 1] * a[12 + i]);
    });
    const expected = quantize(tensor(merged, [8, 12]), { quant_type: 'nf4', blocksize: 32, double_quant: true });
    // The same codes (f32 sums that round differently could move a value across a threshold: allow 2 of 96).
    const got = q.data.toTypedArray() as Uint8Array, want = expected.data.toTypedArray() as Uint8Array;
    let differ = 0;
    for (let i = 0; i < 96; i++) differ += Number(got[i >> 1] !== want[i >> 1] && ((got[i >> 1] >> (i & 1 ? 0 : 4)) & 15) !== ((want[i >> 1] >> (i & 1 ? 0 : 4)) & 15));
    expect(differ).toBeLessThanOrEqual(2);
    const after = (await peft.forward(TINY_IDS)).toFloat32Array();
    const err = relativeError(after, unmerged);
    expect(err).toBeGreaterThan(0);
    expect(err).toBeLessThan(0.2);  // 4-bit rounding of the merged weights
    const unwarn: string[] = [];
    peft.unmerge({ warn: (m) => unwarn.push(m) });
    expect(unwarn).toHaveLength(1);
    expect(pair.quantized.quantizedWeightNames()).toHaveLength(14);
  });

  it('keeping the merged weights dense: the forward equals the unmerged one to float rounding, unmerge restores the 4-bit weights exactly', async () => {
    const pair = tinyQuantPair({ tie: false, seed: 13 });
    const peft = getPeftModel(pair.quantized, lora, { seed: 5 });
    peft.eval();
    const before = new Map([...pair.quantized.quantizedWeights()].map(([n, q]) => [n, q.data.toTypedArray().slice()]));
    const unmerged = (await peft.forward(TINY_IDS)).toFloat32Array();
    const warnings: string[] = [];
    peft.merge(undefined, { requantize: false, warn: (m) => warnings.push(m) });
    expect(warnings).toHaveLength(0);
    expect(pair.quantized.quantizedWeightNames()).toHaveLength(14 - 4);
    expect(pair.quantized.parameter('model.layers.0.self_attn.q_proj.weight').dtype).toBe('f32');
    expect(relativeError((await peft.forward(TINY_IDS)).toFloat32Array(), unmerged)).toBeLessThan(1e-5);
    peft.unmerge({ warn: (m) => warnings.push(m) });
    expect(warnings).toHaveLength(0);
    const again = pair.quantized.quantizedWeights();
    expect(again.size).toBe(14);
    for (const [n, data] of before) expect([n, maxAbsDiff(again.get(n)!.data.toTypedArray() as Uint8Array, data as Uint8Array)]).toEqual([n, 0]);
    expect(maxAbsDiff((await peft.forward(TINY_IDS)).toFloat32Array(), unmerged)).toBe(0);
  });

  it('mergeAndUnload on a 4-bit base gives a 4-bit model (requantized) with nothing trainable among its 4-bit weights', async () => {
    const pair = tinyQuantPair({ tie: false, seed: 14 });
    const peft = getPeftModel(pair.quantized, { peft_type: 'IA3', init_ia3_weights: false }, { seed: 1 });
    const warnings: string[] = [];
    const origWarn = process.emitWarning;
    process.emitWarning = ((m: string) => warnings.push(m)) as typeof process.emitWarning;
    try {
      const model = peft.mergeAndUnload();
      expect(model.quantizedWeightNames()).toHaveLength(14);
      expect(warnings.length).toBe(1);
      const trainable = model.nativeModel.parameters().filter((p) => p.trainable).map((p) => p.name);
      expect(trainable.some((n) => n.endsWith('_proj.weight'))).toBe(false);
      expect(trainable).toContain('model.norm.weight');
    } finally {
      process.emitWarning = origWarn;
    }
  });
});
