// Export: the merged model as a Hugging Face directory (read back by loadModel and by an independent
// safetensors reader), and LoRA adapters as GGUF LoRA files laid out as llama.cpp's converter writes
// them (checked with an independent GGUF parser, against llama.cpp's own row order in the
// stories260K GGUF, and, when node-llama-cpp is installed beside the checkout, by llama.cpp itself).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { configFromHf, exportGgufLora, exportMerged, getPeftModel, loadModel, readGguf, readSafetensors, tensor, Tensor, writeGguf, type PeftModel } from '../../lib';
import { Model } from '../../lib/models/model';
import { bf16ToNumber, f16ToNumber, parseGguf } from '../helpers/gguf';
import { STORIES_GGUF, STORIES_HF_DIR } from '../helpers/models';
import { f32Bytes, parseSafetensors, writeSafetensorsJs, type JsTensor } from '../helpers/safetensors-js';
import { randomArray, rng } from '../helpers/random';
import { hfConfigJson } from '../../lib/models/hf-config';
import { tinyLlama, TINY_IDS } from '../helpers/tiny-llama';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'peft-export-'));

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

const LORA = { peft_type: 'LORA', r: 2, lora_alpha: 4, target_modules: ['q_proj', 'v_proj', 'down_proj'], init_lora_weights: false } as const;

function adapterFactor(peft: PeftModel, module: string, which: 'A' | 'B', adapter = 'default'): Float32Array {
  const p = peft.base.nativeModel.parameters().find((x) => x.name === `${module}.lora_${which}.${adapter}.weight`)!;
  return new Tensor(p.tensor).toFloat32Array();
}

/** Every base parameter's values, to check that exporting leaves the model as it was. */
function baseValues(peft: PeftModel): Map<string, Float32Array> {
  return new Map(peft.base.parameterNames().map((n) => [n, peft.base.parameterLive(n).toFloat32Array().slice()]));
}

const f32Of = (bytes: Uint8Array) => new Float32Array(bytes.slice().buffer);

describe('exportMerged', () => {
  it('writes a Hugging Face directory holding W + s·B·A that loadModel reads to the same logits; the PeftModel is unchanged', async () => {
    const { model, config, weights } = tinyLlama({ tie: false, bias: true });
    const peft = getPeftModel(model, LORA, { seed: 7 });
    const logits = (await peft.forward(TINY_IDS)).toFloat32Array();
    const before = baseValues(peft);
    const dir = tmp();
    await exportMerged(peft, dir);
    expect(fs.readdirSync(dir).sort()).toEqual(['config.json', 'model.safetensors']);
    // config.json: transformers' names, and the same config back.
    const json = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    expect(json).toMatchObject({ architectures: ['LlamaForCausalLM'], model_type: 'llama', num_key_value_heads: 2, head_dim: 4, tie_word_embeddings: false, torch_dtype: 'float32' });
    expect(configFromHf(json)).toEqual(config);
    // The weights, read by an independent reader, against W + (alpha / r)·B·A computed here.
    const file = parseSafetensors(path.join(dir, 'model.safetensors'));
    expect([...file.tensors.keys()].sort()).toEqual([...weights.keys()].sort());
    for (const m of ['model.layers.0.self_attn.q_proj', 'model.layers.1.mlp.down_proj']) {
      const w = weights.get(`${m}.weight`)!;
      const [out, inF] = w.shape;
      const a = adapterFactor(peft, m, 'A'), b = adapterFactor(peft, m, 'B');
      const expected = w.toFloat32Array().map((v, k) => v + 2 * (b[Math.floor(k / inF) * 2] * a[k % inF] + b[Math.floor(k / inF) * 2 + 1] * a[inF + (k % inF)]));
      expect(file.tensors.get(`${m}.weight`)!.shape).toEqual([out, inF]);
      expect(maxAbsDiff(f32Of(file.tensors.get(`${m}.weight`)!.bytes), expected)).toBeLessThan(1e-6);
    }
    expect(maxAbsDiff(f32Of(file.tensors.get('model.layers.0.self_attn.k_proj.weight')!.bytes), weights.get('model.layers.0.self_attn.k_proj.weight')!.toFloat32Array())).toBe(0);
    const reloaded = await loadModel(dir);
    expect(maxAbsDiff((await reloaded.forward(TINY_IDS)).toFloat32Array(), logits)).toBeLessThan(1e-5);
    // Nothing changed: not merged, same base values bit for bit, same logits.
    expect(peft.mergedAdapters()).toEqual([]);
    for (const [n, v] of baseValues(peft)) expect([n, maxAbsDiff(v, before.get(n)!)]).toEqual([n, 0]);
    expect(maxAbsDiff((await peft.forward(TINY_IDS)).toFloat32Array(), logits)).toBe(0);
  });

  for (const [label, cfg] of [
    ['DoRA', { ...LORA, use_dora: true }],
    ['IA3', { peft_type: 'IA3', init_ia3_weights: false }],
    ['BitFit', { peft_type: 'BITFIT' }],
    ['LoRA on the embeddings', { ...LORA, target_modules: ['embed_tokens', 'v_proj'] }],
  ] as const) {
    it(`${label}: the exported model computes the adapted logits, and the base is restored exactly`, async () => {
      const peft = getPeftModel(tinyLlama({ tie: false, bias: true }).model, cfg, { seed: 8 });
      if (label === 'BitFit') {
        const bias = peft.trainableParameters()['model.layers.0.self_attn.q_proj.bias'];
        expect(bias).toBeDefined();
      }
      const logits = (await peft.forward(TINY_IDS)).toFloat32Array();
      const before = baseValues(peft);
      const dir = tmp();
      await exportMerged(peft, dir);
      expect(maxAbsDiff((await (await loadModel(dir)).forward(TINY_IDS)).toFloat32Array(), logits)).toBeLessThan(1e-5);
      for (const [n, v] of baseValues(peft)) expect([n, maxAbsDiff(v, before.get(n)!)]).toEqual([n, 0]);
    });
  }

  it('a bf16 base: the exported f32 weights are W + s·B·A from the bf16 W, and the base is restored bit for bit', async () => {
    const { config, weights } = tinyLlama({ tie: false });
    const bf16 = new Map([...weights].map(([k, v]) => [k, /proj\.weight$/.test(k) ? v.to('bf16') : v]));
    const peft = getPeftModel(new Model(config, bf16), LORA, { seed: 9 });
    const raw = () => new Map(peft.base.parameterNames().map((n) => [n, Array.from(peft.base.parameterLive(n).toTypedArray())]));
    const before = raw();
    const dir = tmp();
    await exportMerged(peft, dir);
    for (const [n, v] of raw()) expect([n, v]).toEqual([n, before.get(n)]);
    const m = 'model.layers.1.self_attn.v_proj';
    const w = bf16.get(`${m}.weight`)!.toFloat32Array(), a = adapterFactor(peft, m, 'A'), b = adapterFactor(peft, m, 'B');
    const expected = w.map((v, k) => v + 2 * (b[Math.floor(k / 8) * 2] * a[k % 8] + b[Math.floor(k / 8) * 2 + 1] * a[8 + (k % 8)]));
    // The native merge rounds W + s·B·A back to bf16 (the weight's dtype): within half a bf16 unit.
    const got = f32Of(parseSafetensors(path.join(dir, 'model.safetensors')).tensors.get(`${m}.weight`)!.bytes);
    for (let i = 0; i < got.length; i++) expect(Math.abs(got[i] - expected[i])).toBeLessThanOrEqual(Math.abs(expected[i]) * 2 ** -8 + 1e-7);
  });

  it('refuses to fold a LoRA on a tied lm_head or tied embeddings (it would change both)', async () => {
    for (const target of ['lm_head', 'embed_tokens']) {
      const peft = getPeftModel(tinyLlama({ tie: true }).model, { ...LORA, target_modules: [target] });
      await expect(exportMerged(peft, tmp())).rejects.toMatchObject({ code: 'E_UNSUPPORTED' });
      await expect(exportGgufLora(peft, path.join(tmp(), 'x.gguf'))).rejects.toMatchObject({ code: 'E_UNSUPPORTED' });
    }
  });

  it('stories260K (HF directory): copies the tokenizer files, keeps config.json, and bf16 export holds the f32 values rounded to bf16', async () => {
    const peft = getPeftModel(await loadModel(STORIES_HF_DIR), { peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: 'all-linear', init_lora_weights: false }, { seed: 1 });
    peft.eval();
    const f32Dir = tmp(), bf16Dir = tmp();
    await exportMerged(peft, f32Dir);
    await exportMerged(peft, bf16Dir, { dtype: 'bf16' });
    for (const name of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json']) {
      expect(fs.readFileSync(path.join(bf16Dir, name))).toEqual(fs.readFileSync(path.join(STORIES_HF_DIR, name)));
    }
    const original = JSON.parse(fs.readFileSync(path.join(STORIES_HF_DIR, 'config.json'), 'utf8'));
    expect(JSON.parse(fs.readFileSync(path.join(bf16Dir, 'config.json'), 'utf8'))).toEqual({ ...original, torch_dtype: 'bfloat16' });
    const f32 = parseSafetensors(path.join(f32Dir, 'model.safetensors')), bf16 = parseSafetensors(path.join(bf16Dir, 'model.safetensors'));
    for (const [name, t] of f32.tensors) {
      const b = bf16.tensors.get(name)!;
      expect([name, b.dtype]).toEqual([name, 'BF16']);
      const values = f32Of(t.bytes), halves = new Uint16Array(b.bytes.slice().buffer);
      // bf16 keeps 8 significant bits: round to nearest is within half a unit in the last place.
      for (let i = 0; i < values.length; i += 7) {
        const ulp = 2 ** (Math.floor(Math.log2(Math.abs(values[i]) || 1e-30)) - 7);
        expect(Math.abs(bf16ToNumber(halves[i]) - values[i])).toBeLessThanOrEqual(ulp / 2 + 1e-30);
      }
    }
    const reloaded = await loadModel(f32Dir);
    const prompt = 'Once upon a time';
    const ours = await peft.generate(prompt, { maxNewTokens: 12 });
    expect((await reloaded.generate(prompt, { maxNewTokens: 12 })).tokens).toEqual(ours.tokens);
    const adapted = (await peft.forward([[1, 403, 407]])).toFloat32Array();
    // Merged weights round differently from the unmerged sum: compare relative to the logits' size.
    const scale = Math.max(...adapted.map(Math.abs));
    expect(maxAbsDiff((await reloaded.forward([[1, 403, 407]])).toFloat32Array(), adapted) / scale).toBeLessThan(1e-5);
  });

  it('stories260K (GGUF): writes config.json from the GGUF metadata and a tokenizer.json built from its vocabulary', async () => {
    const model = await loadModel(STORIES_GGUF);
    const dir = tmp();
    await exportMerged(model, dir);
    const json = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    const hf = JSON.parse(fs.readFileSync(path.join(STORIES_HF_DIR, 'config.json'), 'utf8'));
    for (const key of ['model_type', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads', 'head_dim', 'vocab_size', 'bos_token_id', 'eos_token_id']) {
      expect([key, json[key]]).toEqual([key, hf[key]]);
    }
    // This GGUF file has its own output.weight, so the exported model has an untied lm_head.
    expect(json.tie_word_embeddings).toBe(model.config.tieWordEmbeddings);
    expect(parseSafetensors(path.join(dir, 'model.safetensors')).tensors.has('lm_head.weight')).toBe(!model.config.tieWordEmbeddings);
    const reloaded = await loadModel(dir);
    const text = 'Once upon a time, a little girl named Lily saw a big dog.';
    expect(reloaded.tokenizer!.encode(text)).toEqual(model.tokenizer!.encode(text));
    expect(maxAbsDiff((await reloaded.forward([[1, 403, 407, 261]])).toFloat32Array(), (await model.forward([[1, 403, 407, 261]])).toFloat32Array())).toBeLessThan(1e-5);
  });

  it('GPT-2: Conv1D weights go back to [in, out]; the directory reloads to the adapted logits; config.json round-trips', async () => {
    const H = 8, V = 13, random = rng(4);
    const dir = tmp();
    const entries: [string, JsTensor][] = [];
    const add = (name: string, shape: number[], offset = 0) =>
      entries.push([name, { dtype: 'F32', shape, bytes: f32Bytes([...randomArray(random, shape.reduce((a, b) => a * b, 1), 0.4)].map((v) => v + offset)) }]);
    add('wte.weight', [V, H]);
    add('wpe.weight', [16, H]);
    for (const l of [0, 1]) {
      for (const ln of ['ln_1', 'ln_2']) { add(`h.${l}.${ln}.weight`, [H], 1); add(`h.${l}.${ln}.bias`, [H]); }
      for (const [m, inF, out] of [['attn.c_attn', H, 3 * H], ['attn.c_proj', H, H], ['mlp.c_fc', H, 4 * H], ['mlp.c_proj', 4 * H, H]] as const) {
        add(`h.${l}.${m}.weight`, [inF, out]);
        add(`h.${l}.${m}.bias`, [out]);
      }
    }
    add('ln_f.weight', [H], 1);
    add('ln_f.bias', [H]);
    writeSafetensorsJs(path.join(dir, 'model.safetensors'), entries);
    const sourceConfig = { model_type: 'gpt2', architectures: ['GPT2LMHeadModel'], n_embd: H, n_layer: 2, n_head: 2, n_inner: null, vocab_size: V, n_positions: 16, layer_norm_epsilon: 1e-5, activation_function: 'gelu_new' };
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(sourceConfig));
    const model = await loadModel(dir);
    expect(configFromHf(hfConfigJson(model.config, 'f32'))).toEqual(model.config);
    const peft = getPeftModel(model, { peft_type: 'LORA', r: 2, lora_alpha: 4, target_modules: ['c_attn', 'c_fc'], init_lora_weights: false }, { seed: 2 });
    const ids = [[1, 5, 7, 2, 9, 3]];
    const logits = (await peft.forward(ids)).toFloat32Array();
    const out = tmp();
    await exportMerged(peft, out);
    expect(JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'))).toEqual({ ...sourceConfig, torch_dtype: 'float32' });
    const file = parseSafetensors(path.join(out, 'model.safetensors'));
    expect(file.tensors.get('transformer.h.0.attn.c_attn.weight')!.shape).toEqual([H, 3 * H]);
    // Untouched Conv1D weights come back exactly as they were written.
    const original = entries.find(([k]) => k === 'h.1.attn.c_proj.weight')![1];
    expect(file.tensors.get('transformer.h.1.attn.c_proj.weight')!.bytes).toEqual(original.bytes);
    expect(maxAbsDiff((await (await loadModel(out)).forward(ids)).toFloat32Array(), logits)).toBeLessThan(1e-5);
    await expect(exportGgufLora(peft, path.join(tmp(), 'x.gguf'))).rejects.toMatchObject({ code: 'E_UNSUPPORTED' });
  });

  it('a 4-bit base (NF4): the exported weights are dequant(W) + s·B·A, the directory reloads to the adapted logits, and the 4-bit codes are untouched', async () => {
    const model = await loadModel(STORIES_HF_DIR, { quantization: { load_in_4bit: true, bnb_4bit_quant_type: 'nf4', bnb_4bit_use_double_quant: true, bnb_4bit_compute_dtype: 'f32' } });
    const peft = getPeftModel(model, LORA, { seed: 3 });
    const ids = [1, 400, 56, 90, 12, 7];
    const logits = (await peft.forward(ids)).toFloat32Array();
    const codesBefore = new Map([...model.quantizedWeights()].map(([n, q]) => [n, Buffer.from(q.data.toTypedArray() as Uint8Array).toString('hex')]));
    expect(codesBefore.size).toBeGreaterThan(0);
    const module = 'model.layers.1.mlp.down_proj';
    const dense = model.parameter(`${module}.weight`).toFloat32Array();
    const [out, inF] = model.parameter(`${module}.weight`).shape;
    const a = adapterFactor(peft, module, 'A'), b = adapterFactor(peft, module, 'B');
    const dir = tmp();
    try {
      await exportMerged(peft, dir);
      const file = parseSafetensors(path.join(dir, 'model.safetensors'));
      const got = f32Of(file.tensors.get(`${module}.weight`)!.bytes);
      const expected = new Float32Array(out * inF);
      for (let o = 0; o < out; o++) {
        for (let i = 0; i < inF; i++) {
          let d = 0;
          for (let k = 0; k < LORA.r; k++) d += b[o * LORA.r + k] * a[k * inF + i];
          expected[o * inF + i] = dense[o * inF + i] + (LORA.lora_alpha / LORA.r) * d;
        }
      }
      expect(maxAbsDiff(got, expected)).toBeLessThan(1e-5);
      // An unadapted 4-bit layer is written dequantized.
      const plain = 'model.layers.0.self_attn.o_proj.weight';
      expect(maxAbsDiff(f32Of(file.tensors.get(plain)!.bytes), model.parameter(plain).toFloat32Array())).toBe(0);
      const reloaded = await loadModel(dir);
      expect(maxAbsDiff((await reloaded.forward(ids)).toFloat32Array(), logits)).toBeLessThan(1e-3);
      const codesAfter = new Map([...model.quantizedWeights()].map(([n, q]) => [n, Buffer.from(q.data.toTypedArray() as Uint8Array).toString('hex')]));
      expect(codesAfter).toEqual(codesBefore);
      expect(maxAbsDiff((await peft.forward(ids)).toFloat32Array(), logits)).toBe(0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses what cannot be merged and bad options', async () => {
    const prompt = getPeftModel(tinyLlama().model, { peft_type: 'PROMPT_TUNING', num_virtual_tokens: 2 });
    await expect(exportMerged(prompt, tmp())).rejects.toMatchObject({ code: 'E_UNSUPPORTED' });
    await expect(exportMerged(tinyLlama().model, tmp(), { dtype: 'f64' as never })).rejects.toMatchObject({ code: 'E_DTYPE' });
    const dir = tmp();
    fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), '{}');
    await expect(exportMerged(tinyLlama().model, dir)).rejects.toMatchObject({ code: 'E_IO' });
  });
});

describe('writeGguf', () => {
  it('writes metadata of every type and aligned tensors that an independent parser and readGguf both read back', () => {
    const file = path.join(tmp(), 'x.gguf');
    const a = tensor(Float32Array.from({ length: 15 }, (_, i) => i - 7.5), [3, 5]);
    const h = tensor(Float32Array.from([0.5, -2, 3.25]), [3], 'f16');
    writeGguf(file, {
      'general.architecture': { type: 'string', value: 'llama' },
      'general.alignment': { type: 'u32', value: 64 },
      'x.u8': { type: 'u8', value: 250 },
      'x.i16': { type: 'i16', value: -300 },
      'x.f32': { type: 'f32', value: 1.5 },
      'x.f64': { type: 'f64', value: Math.PI },
      'x.u64': { type: 'u64', value: 2n ** 40n },
      'x.bool': { type: 'bool', value: true },
      'x.list': { type: 'array', itemType: 'i32', value: [1, -2, 3] },
      'x.names': { type: 'array', itemType: 'string', value: ['a', 'bé'] },
    }, { 'w.weight': a, 'h': h });
    const bytes = new Uint8Array(fs.readFileSync(file));
    const parsed = parseGguf(bytes);
    expect(parsed.version).toBe(3);
    expect(Object.fromEntries([...parsed.metadata].map(([k, v]) => [k, [v.type, v.value]]))).toEqual({
      'general.architecture': ['string', 'llama'], 'general.alignment': ['u32', 64], 'x.u8': ['u8', 250], 'x.i16': ['i16', -300],
      'x.f32': ['f32', 1.5], 'x.f64': ['f64', Math.PI], 'x.u64': ['u64', 2n ** 40n], 'x.bool': ['bool', true],
      'x.list': ['array', [1, -2, 3]], 'x.names': ['array', ['a', 'bé']],
    });
    expect(parsed.tensors.map((t) => [t.name, t.shape, t.type, t.offset])).toEqual([['w.weight', [3, 5], 0, 0], ['h', [3], 1, 64]]);
    expect(parsed.dataStart % 64).toBe(0);
    expect(Array.from(f32Of(bytes.subarray(parsed.dataStart, parsed.dataStart + 60)))).toEqual(Array.from(a.toFloat32Array()));
    const halves = new Uint16Array(bytes.slice(parsed.dataStart + 64, parsed.dataStart + 70).buffer);
    expect(Array.from(halves, f16ToNumber)).toEqual([0.5, -2, 3.25]);
    const native = readGguf(file);
    expect(native.tensor('h').toFloat32Array()).toEqual(Float32Array.from([0.5, -2, 3.25]));
    native.dispose();
    expect(fs.readdirSync(path.dirname(file))).toEqual(['x.gguf']); // no temporary left
  });
});

/** The row permutation llama.cpp applied to a q/k weight: GGUF row k holds Hugging Face row perm[k]. */
function rowPermutation(gguf: Float32Array, hf: Float32Array, rows: number, cols: number): number[] {
  return Array.from({ length: rows }, (_, k) => {
    let best = -1, bestDist = Infinity;
    for (let j = 0; j < rows; j++) {
      let d = 0;
      for (let c = 0; c < cols; c++) d += Math.abs(gguf[k * cols + c] - hf[j * cols + c]);
      if (d < bestDist) [best, bestDist] = [j, d];
    }
    expect(bestDist).toBeLessThan(1e-4 * cols);
    return best;
  });
}

const NODE_LLAMA_CPP = path.resolve(__dirname, '..', '..', '..', 'benchref', 'node_modules', 'node-llama-cpp');

describe('exportGgufLora', () => {
  let peft: PeftModel;
  let file: string;
  beforeAll(async () => {
    peft = getPeftModel(await loadModel(STORIES_GGUF), { peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: 'all-linear', init_lora_weights: false }, { seed: 3 });
    peft.eval();
    file = path.join(tmp(), 'stories-lora.gguf');
    await exportGgufLora(peft, file);
  });

  it("has llama.cpp's adapter metadata and tensor names, lora_a [r, in] and lora_b [out, r] in F32", () => {
    const parsed = parseGguf(new Uint8Array(fs.readFileSync(file)));
    const meta = Object.fromEntries([...parsed.metadata].map(([k, v]) => [k, [v.type, v.value]]));
    expect(meta).toMatchObject({
      'general.architecture': ['string', 'llama'], 'general.type': ['string', 'adapter'],
      'adapter.type': ['string', 'lora'], 'adapter.lora.alpha': ['f32', 8],
    });
    const expected: [string, number[]][] = [];
    const dims: Record<string, [number, number]> = { attn_q: [64, 64], attn_k: [32, 64], attn_v: [32, 64], attn_output: [64, 64], ffn_gate: [172, 64], ffn_up: [172, 64], ffn_down: [64, 172] };
    for (let l = 0; l < 5; l++) {
      for (const [n, [out, inF]] of Object.entries(dims)) expected.push([`blk.${l}.${n}.weight.lora_a`, [4, inF]], [`blk.${l}.${n}.weight.lora_b`, [out, 4]]);
    }
    expect(parsed.tensors.map((t) => [t.name, t.shape]).sort()).toEqual(expected.sort());
    expect(new Set(parsed.tensors.map((t) => t.type))).toEqual(new Set([0]));
  });

  it("lora_a is A; lora_b is B, with q/k rows in the order llama.cpp's converter gave the base q/k weights", () => {
    const lora = readGguf(file), base = readGguf(STORIES_GGUF), hf = readSafetensors(path.join(STORIES_HF_DIR, 'model.safetensors'));
    for (const [proj, ggufName, rows] of [['q_proj', 'attn_q', 64], ['k_proj', 'attn_k', 32], ['v_proj', 'attn_v', 32]] as const) {
      for (const l of [0, 4]) {
        const module = `model.layers.${l}.self_attn.${proj}`;
        const perm = rowPermutation(base.tensor(`blk.${l}.${ggufName}.weight`).toFloat32Array(), hf.tensor(`${module}.weight`).toFloat32Array(), rows, 64);
        if (proj === 'v_proj') expect(perm).toEqual([...perm.keys()]);
        else expect(perm).not.toEqual([...perm.keys()]);
        const a = adapterFactor(peft, module, 'A'), b = adapterFactor(peft, module, 'B');
        expect(lora.tensor(`blk.${l}.${ggufName}.weight.lora_a`).toFloat32Array()).toEqual(a);
        const gotB = lora.tensor(`blk.${l}.${ggufName}.weight.lora_b`).toFloat32Array();
        const expectedB = Float32Array.from({ length: rows * 4 }, (_, k) => b[perm[Math.floor(k / 4)] * 4 + (k % 4)]);
        expect(gotB).toEqual(expectedB);
      }
    }
    lora.dispose();
    base.dispose();
  });

  it('folds scalings llama.cpp cannot express (rslora) into lora_b, and writes F16 on request', async () => {
    peft.addAdapter('rs', { peft_type: 'LORA', r: 4, lora_alpha: 8, use_rslora: true, target_modules: ['v_proj'], init_lora_weights: false }, { seed: 5 });
    const out = path.join(tmp(), 'rs.gguf');
    await exportGgufLora(peft, out, { adapterName: 'rs', dtype: 'f16' });
    const parsed = parseGguf(new Uint8Array(fs.readFileSync(out)));
    expect(new Set(parsed.tensors.map((t) => t.type))).toEqual(new Set([1]));
    const lora = readGguf(out);
    const b = adapterFactor(peft, 'model.layers.2.self_attn.v_proj', 'B', 'rs');
    // llama.cpp applies alpha / r = 2; rslora means alpha / √r = 4: lora_b carries the factor 2 = √r.
    const got = lora.tensor('blk.2.attn_v.weight.lora_b').toFloat32Array();
    for (let i = 0; i < b.length; i++) expect(Math.abs(got[i] - 2 * b[i])).toBeLessThanOrEqual(Math.abs(2 * b[i]) * 2 ** -11 + 1e-7);
    lora.dispose();
    peft.deleteAdapter('rs');
  });

  it('an embedding LoRA becomes token_embd.weight.lora_a = Aᵀ [vocab, r] and .lora_b = B [hidden, r]', async () => {
    peft.addAdapter('emb', { peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: ['embed_tokens', 'q_proj'], init_lora_weights: false }, { seed: 6 });
    const out = path.join(tmp(), 'emb.gguf');
    await exportGgufLora(peft, out, { adapterName: 'emb' });
    const parsed = parseGguf(new Uint8Array(fs.readFileSync(out)));
    const shapes = Object.fromEntries(parsed.tensors.map((t) => [t.name, t.shape]));
    expect(shapes['token_embd.weight.lora_a']).toEqual([512, 4]);
    expect(shapes['token_embd.weight.lora_b']).toEqual([64, 4]);
    const lora = readGguf(out);
    const param = (n: string) => new Tensor(peft.base.nativeModel.parameters().find((p) => p.name === n)!.tensor).toFloat32Array();
    const a = param('model.embed_tokens.lora_embedding_A.emb'), b = param('model.embed_tokens.lora_embedding_B.emb');
    const gotA = lora.tensor('token_embd.weight.lora_a').toFloat32Array();
    for (let v = 0; v < 512; v += 37) for (let j = 0; j < 4; j++) expect(gotA[v * 4 + j]).toBe(a[j * 512 + v]);
    expect(lora.tensor('token_embd.weight.lora_b').toFloat32Array()).toEqual(b);
    lora.dispose();
    peft.deleteAdapter('emb');
  });

  it('refuses DoRA, non-LoRA adapters and unknown adapter names', async () => {
    const dora = getPeftModel(tinyLlama().model, { ...LORA, use_dora: true });
    await expect(exportGgufLora(dora, path.join(tmp(), 'x.gguf'))).rejects.toMatchObject({ code: 'E_UNSUPPORTED' });
    const ia3 = getPeftModel(tinyLlama().model, { peft_type: 'IA3' });
    await expect(exportGgufLora(ia3, path.join(tmp(), 'x.gguf'))).rejects.toMatchObject({ code: 'E_UNSUPPORTED' });
    await expect(exportGgufLora(peft, path.join(tmp(), 'x.gguf'), { adapterName: 'nope' })).rejects.toMatchObject({ code: 'E_ARGUMENT' });
  });

  (fs.existsSync(path.join(NODE_LLAMA_CPP, 'package.json')) ? it : it.skip)(
    'llama.cpp (node-llama-cpp) with the exported LoRA continues a prompt greedily with our tokens',
    async () => {
      const prompt = [1, 403, 407, 261, 378];
      const run = (lora: string) => JSON.parse(execFileSync(process.execPath, [path.join(__dirname, '..', 'helpers', 'llama-cpp-greedy.mjs'), NODE_LLAMA_CPP, STORIES_GGUF, lora, JSON.stringify(prompt), '16'], { encoding: 'utf8', timeout: 60000 })).tokens as number[];
      const ours = (await peft.generate(prompt, { maxNewTokens: 16 })).tokens;
      const base = (await peft.withAdaptersDisabled(() => peft.generate(prompt, { maxNewTokens: 16 }))).tokens;
      expect(ours).not.toEqual(base); // the adapter changes the continuation
      expect(run('').slice(0, base.length)).toEqual(base);
      expect(run(file).slice(0, ours.length)).toEqual(ours);
      // An adapter on the embeddings (scaled down so that the text stays plausible) and q/k.
      peft.addAdapter('emb', { peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: ['embed_tokens', 'q_proj', 'k_proj'], init_lora_weights: false }, { seed: 6 });
      const bName = 'model.embed_tokens.lora_embedding_B.emb';
      const b = new Tensor(peft.base.nativeModel.parameters().find((p) => p.name === bName)!.tensor);
      peft.setParameterValue(bName, tensor(b.toFloat32Array().map((v) => v * 0.05), b.shape));
      peft.setAdapter('emb');
      const withEmb = (await peft.generate(prompt, { maxNewTokens: 16 })).tokens;
      expect(withEmb).not.toEqual(base);
      const embFile = path.join(tmp(), 'emb.gguf');
      await exportGgufLora(peft, embFile);
      expect(run(embFile).slice(0, withEmb.length)).toEqual(withEmb);
      peft.setAdapter('default');
      peft.deleteAdapter('emb');
    },
  );
});
