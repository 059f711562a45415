// QLoRA on the real model (stories260K): quantize-on-load keeps the logits and perplexity close to
// the f32 model's; QLoRA fine-tuning reaches a held-out loss within 2% of plain LoRA's; a 4-bit
// checkpoint saved in bitsandbytes' format is read back (by an independent parser and by
// loadModel) exactly; bad quantization options are refused.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { getPeftModel, loadAdapter, loadModel, ops, PeftError, saveQuantizedModel, zeros, type BitsAndBytesConfig, type Model } from '../../lib';
import { STORIES_GGUF, STORIES_HF_DIR } from '../helpers/models';
import { parseSafetensors } from '../helpers/safetensors-js';
import { dequantize4Ref, dequantizeNestedRef } from './bnb-reference';
import { maxAbsDiff, relativeError } from './qlora-helpers';

// "The Fox and the Grapes" (Aesop, public domain): training text, then two held-out sentences.
const TRAIN = `A fox one day spied a beautiful bunch of ripe grapes hanging from a vine trained along the branches of a tree.
The grapes seemed ready to burst with juice, and the fox's mouth watered as he gazed longingly at them.
The bunch hung from a high branch, and the fox had to jump for it. The first time he jumped he missed it by a long way.
So he walked off a short distance and took a running leap at it, only to fall short once more.
Again and again he tried, but in vain. Now he sat down and looked at the grapes in disgust.`;
const HELD_OUT = [
  'What a fool I am, said the fox. Here I am wearing myself out to get a bunch of sour grapes that are not worth gaping for.',
  'And off he walked very, very scornfully. There are many who pretend to despise and belittle that which is beyond their reach.',
];
// TinyStories-like text written for these tests (not from the model's training set).
const STORY =
  'Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her dog, Max. ' +
  'One day, Lily saw a big red ball under a tree. She ran to get it, but Max got there first. ' +
  'Lily laughed and said, "Max, you are so fast!" They played with the ball all day and had a lot of fun.';

const NF4: BitsAndBytesConfig = { load_in_4bit: true, bnb_4bit_quant_type: 'nf4', bnb_4bit_use_double_quant: true, bnb_4bit_compute_dtype: 'bf16' };

/** Mean next-token loss over several texts, weighted by their predicted tokens. */
async function meanLoss(model: { loss(ids: number[][]): Promise<{ loss: number }> }, texts: number[][]): Promise<number> {
  let sum = 0, count = 0;
  for (const ids of texts) {
    sum += (await model.loss([ids])).loss * (ids.length - 1);
    count += ids.length - 1;
  }
  return sum / count;
}

/** stories.test.ts's LoRA run: r 8, alpha 16, dropout 0.05, all linear layers, 20 AdamW steps at 1e-3. */
async function fineTune(model: Model, seed: number): Promise<{ before: number; after: number }> {
  const tok = model.tokenizer!;
  const train = tok.encode(TRAIN);
  const held = HELD_OUT.map((t) => tok.encode(t));
  const windows: number[][] = [];
  for (let i = 0; i + 32 <= train.length; i += 16) windows.push(train.slice(i, i + 32));
  const peft = getPeftModel(model, { peft_type: 'LORA', r: 8, lora_alpha: 16, lora_dropout: 0.05, target_modules: 'all-linear' }, { seed });
  const heldLoss = async () => {
    peft.eval();
    const loss = await meanLoss(peft, held);
    peft.train();
    return loss;
  };
  const before = await heldLoss();
  const params = peft.trainableParameters();
  const names = Object.keys(params);
  const state = { expAvg: names.map((n) => zeros(params[n].shape)), expAvgSq: names.map((n) => zeros(params[n].shape)) };
  for (let step = 1; step <= 20; step++) {
    const batch = [windows[step % windows.length], windows[(step + 3) % windows.length]];
    const { grads } = await peft.loss(batch);
    await ops.adamwAsync(names.map((n) => params[n]), names.map((n) => grads[n]), state, { lr: 1e-3, weightDecay: 0, step });
  }
  return { before, after: await heldLoss() };
}

function errorCode(fn: () => unknown): Promise<string> {
  return Promise.resolve()
    .then(fn)
    .then(() => 'no error', (err) => (err instanceof PeftError ? err.code : `not a PeftError: ${err}`));
}

describe('stories260K quantized on load (NF4, double quantization, bf16 compute)', () => {
  it('keeps embeddings, norms and the head in f32, stores 4.13 bits per linear weight, and stays close to the f32 model', async () => {
    const f32 = await loadModel(STORIES_HF_DIR);
    const nf4 = await loadModel(STORIES_HF_DIR, { quantization: NF4 });
    expect(nf4.quantizedWeightNames().sort()).toEqual(f32.parameterNames().filter((n) => /_proj\.weight$/.test(n)).sort());
    expect(nf4.quantizedWeightNames()).toHaveLength(5 * 7);
    expect(nf4.parameter('model.embed_tokens.weight').dtype).toBe('f32');
    const info = nf4.info();
    const quantParams = info.byDtype.nf4.parameters;
    const bits = (8 * info.byDtype.nf4.bytes) / quantParams;
    // Resident bytes: exactly the 4-bit parts plus the f32 layers (here ~5.5 bits: the 35 small
    // weights each carry their 16 + 256 float code tables; 4.127 without them, as bitsandbytes).
    expect(info.bytes).toBe(info.byDtype.nf4.bytes + info.byDtype.f32.bytes);
    expect(info.byDtype.f32.parameters + quantParams).toBe(f32.info().parameters);
    const tablesBits = (35 * (16 + 256) * 4 * 8) / quantParams;
    expect(bits - tablesBits).toBeLessThan(4.13);

    const tok = f32.tokenizer!;
    const story = tok.encode(STORY);
    const a = (await f32.forward([story])).toFloat32Array();
    const b = (await nf4.forward([story])).toFloat32Array();
    const rms = (x: Float32Array) => Math.sqrt(x.reduce((s, v) => s + v * v, 0) / x.length);
    const relRms = rms(a.map((v, i) => v - b[i])) / rms(a);
    const pplF32 = Math.exp((await f32.loss([story])).loss);
    const pplNf4 = Math.exp((await nf4.loss([story])).loss);
    console.log(`stories260K NF4 (double quant, bf16 compute): logits relative error ${relRms.toFixed(4)} (RMS), ` +
      `${relativeError(b, a).toFixed(4)} (max); perplexity on held-out text ${pplNf4.toFixed(3)} vs f32 ${pplF32.toFixed(3)}; ` +
      `${(bits - tablesBits).toFixed(3)} bits per weight (${bits.toFixed(3)} with code tables)`);
    expect(relRms).toBeLessThan(0.15);  // 0.12 when written
    expect(pplNf4 / pplF32).toBeLessThan(1.15);  // 2.57 vs 2.35 when written
    // Greedy generation still tells a story.
    expect((await nf4.generate('Once upon a time', { maxNewTokens: 12 })).text).toMatch(/^Once upon a time, there was a/);
  });

  it('quantizes a GGUF file on load to exactly the same 4-bit weights and logits', async () => {
    const hf = await loadModel(STORIES_HF_DIR, { quantization: NF4 });
    const gguf = await loadModel(STORIES_GGUF, { quantization: NF4 });
    const ids = [[1, 403, 407, 261, 300, 5, 77]];
    expect(maxAbsDiff((await gguf.forward(ids)).toFloat32Array(), (await hf.forward(ids)).toFloat32Array())).toBe(0);
  });
});

describe('QLoRA fine-tuning of stories260K', () => {
  it('reaches a held-out loss within 2% of plain LoRA with the same settings and seed', async () => {
    const lines: string[] = [];
    const lora = await fineTune(await loadModel(STORIES_HF_DIR), 1);
    // Blocks of 32: stories260K is 64 wide, so 64-element blocks would give each row a single scale.
    const qlora = await fineTune(await loadModel(STORIES_HF_DIR, { quantization: { ...NF4, bnb_4bit_blocksize: 32 } }), 1);
    const qlora64 = await fineTune(await loadModel(STORIES_HF_DIR, { quantization: NF4 }), 1);
    lines.push(`LoRA held-out loss ${lora.before.toFixed(4)} → ${lora.after.toFixed(4)}`);
    lines.push(`QLoRA (NF4, blocks of 32) ${qlora.before.toFixed(4)} → ${qlora.after.toFixed(4)}: ${(100 * (qlora.after / lora.after - 1)).toFixed(2)}% from LoRA`);
    lines.push(`QLoRA (NF4, blocks of 64) ${qlora64.before.toFixed(4)} → ${qlora64.after.toFixed(4)}: ${(100 * (qlora64.after / lora.after - 1)).toFixed(2)}% from LoRA`);
    console.log(lines.join('\n'));
    expect(qlora.after).toBeLessThan(qlora.before - 0.1);
    expect(Math.abs(qlora.after / lora.after - 1)).toBeLessThan(0.02);
    expect(Math.abs(qlora64.after / lora.after - 1)).toBeLessThan(0.06);  // 4.7% when written
  });
});

describe('bitsandbytes 4-bit checkpoints', () => {
  it('saveQuantizedModel writes bitsandbytes tensors and quantization_config; an independent parser and loadModel read them back exactly', async () => {
    const model = await loadModel(STORIES_HF_DIR, { quantization: NF4 });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qlora-save-'));
    try {
      await saveQuantizedModel(model, dir);
      const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
      expect(config.quantization_config).toMatchObject({
        quant_method: 'bitsandbytes', load_in_4bit: true, bnb_4bit_quant_type: 'nf4', bnb_4bit_use_double_quant: true, bnb_4bit_compute_dtype: 'bfloat16',
      });
      expect(config.hidden_size).toBe(64);
      expect(fs.existsSync(path.join(dir, 'tokenizer.json'))).toBe(true);

      // Independently: the safetensors bytes, the quant_state JSON, and dequantization by the published algorithm.
      const { tensors } = parseSafetensors(path.join(dir, 'model.safetensors'));
      const name = 'model.layers.3.mlp.down_proj.weight';  // [64, 172]
      const packed = tensors.get(name)!;
      expect([packed.dtype, packed.shape]).toEqual(['U8', [64 * 172 / 2, 1]]);
      const state = JSON.parse(Buffer.from(tensors.get(`${name}.quant_state.bitsandbytes__nf4`)!.bytes).toString('utf8'));
      expect(state).toMatchObject({ quant_type: 'nf4', blocksize: 64, dtype: 'float32', shape: [64, 172], nested_blocksize: 256, nested_dtype: 'float32' });
      const f32s = (t: { bytes: Uint8Array }) => new Float32Array(t.bytes.slice().buffer);
      const blocks = Math.ceil((64 * 172) / 64);
      expect(tensors.get(`${name}.absmax`)!).toMatchObject({ dtype: 'U8', shape: [blocks] });
      const scales = dequantizeNestedRef(tensors.get(`${name}.absmax`)!.bytes, f32s(tensors.get(`${name}.nested_absmax`)!),
        Array.from(f32s(tensors.get(`${name}.nested_quant_map`)!)), state.nested_offset, 256);
      const values = dequantize4Ref(packed.bytes, scales, Array.from(f32s(tensors.get(`${name}.quant_map`)!)), 64, 64 * 172);
      expect(relativeError(values, model.parameter(name).toFloat32Array())).toBeLessThan(1e-6);
      expect(tensors.get('model.embed_tokens.weight')!.dtype).toBe('F32');

      const again = await loadModel(dir);  // no option: the checkpoint says what it is
      expect(again.quantizedWeightNames().sort()).toEqual(model.quantizedWeightNames().sort());
      expect(again.quantizedComputeDtype()).toBe('bf16');
      for (const n of model.quantizedWeightNames()) {
        const [x, y] = [model.quantizedWeight(n)!, again.quantizedWeight(n)!];
        expect([n, maxAbsDiff(x.data.toTypedArray() as Uint8Array, y.data.toTypedArray() as Uint8Array), x.nested!.offset]).toEqual([n, 0, y.nested!.offset]);
      }
      const ids = [model.tokenizer!.encode(STORY).slice(0, 40)];
      expect(maxAbsDiff((await again.forward(ids)).toFloat32Array(), (await model.forward(ids)).toFloat32Array())).toBe(0);
      // A QLoRA adapter trains on the reloaded 4-bit base too; saved, it loads onto another 4-bit base exactly.
      const peft = getPeftModel(again, { peft_type: 'LORA', r: 4, target_modules: ['q_proj', 'v_proj'], init_lora_weights: false });
      const { grads } = await peft.loss(ids);
      expect(Object.keys(grads)).toHaveLength(5 * 2 * 2);
      peft.eval();
      const adapted = (await peft.forward(ids)).toFloat32Array();
      await peft.saveAdapter(path.join(dir, 'adapter'));
      const reloaded = await loadAdapter(await loadModel(dir), path.join(dir, 'adapter'));
      expect(maxAbsDiff((await reloaded.forward(ids)).toFloat32Array(), adapted)).toBe(0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses bad quantization options and models without 4-bit weights', async () => {
    const load = (quantization: unknown) => errorCode(() => loadModel(STORIES_HF_DIR, { quantization: quantization as BitsAndBytesConfig }));
    expect(await load({ load_in_4bit: true, bnb_4bit_quant_type: 'int4' })).toBe('E_CONFIG');
    expect(await load({ load_in_4bit: 'yes' })).toBe('E_CONFIG');
    expect(await load({ load_in_4bit: true, bnb_4bit_compute_dtype: 'f16' })).toBe('E_DTYPE');
    expect(await load({ load_in_4bit: true, bnb_4bit_blocksize: 48 })).toBe('E_RANGE');
    expect(await load({ load_in_4bit: true, bnb_4bit_quant_typ: 'nf4' })).toBe('E_CONFIG');
    expect(await load({ load_in_8bit: true })).toBe('E_UNSUPPORTED');
    const plain = await loadModel(STORIES_HF_DIR, { quantization: { load_in_4bit: false } });
    expect(plain.quantizedWeightNames()).toEqual([]);
    expect(await errorCode(() => saveQuantizedModel(plain, os.tmpdir()))).toBe('E_CONFIG');
  });
});
