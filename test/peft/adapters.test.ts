// Adapters on disk in Hugging Face PEFT's format: files built by hand from the published layout load
// and give the logits of hand-merged weights; what we save has PEFT's keys, shapes and config, and
// loads back to the same logits; bad files and names are refused with the tensor or field named.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { getPeftModel, loadAdapter, tensor, type Tensor } from '../../lib';
import { Model } from '../../lib/models/model';
import { f32Bytes, parseSafetensors, writeSafetensorsJs, type JsTensor } from '../helpers/safetensors-js';
import { randomArray, rng } from '../helpers/random';
import { tinyLlama, TINY_IDS } from '../helpers/tiny-llama';

const created: string[] = [];
const tmp = () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-adapter-'));
  created.push(dir);
  return dir;
};
afterAll(() => created.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

const logitsOf = async (m: { forward(ids: number[][]): Promise<Tensor> }) => (await m.forward(TINY_IDS)).toFloat32Array();

/** bf16 bytes of f32 values, rounding to nearest even (an independent conversion). */
function bf16Bytes(values: Float32Array): Uint8Array {
  const u32 = new Uint32Array(values.buffer.slice(0));
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = (u32[i] + 0x7fff + ((u32[i] >>> 16) & 1)) >>> 16;
  return new Uint8Array(out.buffer);
}
const bf16Value = (bits: number) => new Float32Array(new Uint32Array([bits << 16]).buffer)[0];

interface Fixture {
  dir: string;
  a: Map<string, Float32Array>;
  b: Map<string, Float32Array>;
}

/** A LoRA adapter for q_proj and v_proj (r = 2, alpha = 6) as Python PEFT writes it (bf16 tensors). */
function peftFixture(options: { dropKey?: string; extraModule?: string; badShape?: string; unknownKey?: boolean } = {}): Fixture {
  const dir = tmp();
  const random = rng(21);
  const a = new Map<string, Float32Array>(), b = new Map<string, Float32Array>();
  const entries: [string, JsTensor][] = [];
  const modules = [0, 1].flatMap((l) => [`model.layers.${l}.self_attn.q_proj`, `model.layers.${l}.self_attn.v_proj`]);
  if (options.extraModule) modules.push(options.extraModule);
  for (const m of modules) {
    const out = m.includes('q_proj') ? 16 : 8;
    const av = randomArray(random, 2 * 8, 0.5), bv = randomArray(random, out * 2, 0.5);
    // What PEFT computes with is the bf16 value.
    const round = (v: Float32Array) => { const bytes = new Uint16Array(bf16Bytes(v).buffer); return Float32Array.from(bytes, bf16Value); };
    a.set(m, round(av));
    b.set(m, round(bv));
    const aShape = options.badShape === m ? [3, 8] : [2, 8];
    entries.push([`base_model.model.${m}.lora_A.weight`, { dtype: 'BF16', shape: aShape, bytes: bf16Bytes(options.badShape === m ? randomArray(random, 24) : av) }]);
    entries.push([`base_model.model.${m}.lora_B.weight`, { dtype: 'BF16', shape: [out, 2], bytes: bf16Bytes(bv) }]);
  }
  writeSafetensorsJs(path.join(dir, 'adapter_model.safetensors'), entries.filter(([k]) => k !== options.dropKey), { format: 'pt' });
  const config: Record<string, unknown> = {
    alpha_pattern: {}, auto_mapping: null, base_model_name_or_path: 'tiny-llama', bias: 'none', eva_config: null,
    exclude_modules: null, fan_in_fan_out: false, inference_mode: true, init_lora_weights: true, layer_replication: null,
    layers_pattern: null, layers_to_transform: null, loftq_config: {}, lora_alpha: 6, lora_bias: false, lora_dropout: 0.05,
    megatron_config: null, megatron_core: 'megatron.core', modules_to_save: null, peft_type: 'LORA', r: 2, rank_pattern: {},
    revision: null, target_modules: ['v_proj', 'q_proj'], task_type: 'CAUSAL_LM', use_dora: false, use_rslora: false,
  };
  if (options.unknownKey) config.some_future_option = 1;
  fs.writeFileSync(path.join(dir, 'adapter_config.json'), JSON.stringify(config, null, 2));
  return { dir, a, b };
}

describe('loading adapters written by Python PEFT', () => {
  it('a hand-built LoRA adapter (bf16) loads and gives the logits of W + (alpha / r)·B·A', async () => {
    const fixture = peftFixture();
    const { model, config, weights } = tinyLlama({ tie: false });
    const peft = await loadAdapter(model, fixture.dir);
    const merged = new Map(weights);
    for (const [m, av] of fixture.a) {
      const bv = fixture.b.get(m)!;
      const w = weights.get(`${m}.weight`)!;
      const [out, inF] = w.shape;
      const wf = w.toFloat32Array().slice();
      for (let o = 0; o < out; o++) for (let i = 0; i < inF; i++) for (let j = 0; j < 2; j++) wf[o * inF + i] += 3 * bv[o * 2 + j] * av[j * inF + i];
      merged.set(`${m}.weight`, tensor(wf, w.shape));
    }
    expect(maxAbsDiff(await logitsOf(peft), await logitsOf(new Model(config, merged)))).toBeLessThan(1e-5);
    expect(Object.keys(peft.trainableParameters())).toEqual([]);  // loaded for inference unless isTrainable
  });

  it('unknown config keys warn; known keys of other PEFT versions do not', async () => {
    const warnings: string[] = [];
    await loadAdapter(tinyLlama().model, peftFixture({ unknownKey: true }).dir, { warn: (m) => warnings.push(m) });
    expect(warnings).toEqual(['Unknown key some_future_option in the LORA config is ignored']);
  });

  it('a missing tensor, a shape mismatch and an adapter for another base model are refused, naming the tensor', async () => {
    const missing = peftFixture({ dropKey: 'base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight' });
    await expect(loadAdapter(tinyLlama().model, missing.dir)).rejects.toMatchObject({
      code: 'E_FORMAT', message: expect.stringContaining('base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight'),
    });
    const shape = peftFixture({ badShape: 'model.layers.0.self_attn.q_proj' });
    await expect(loadAdapter(tinyLlama().model, shape.dir)).rejects.toMatchObject({
      code: 'E_SHAPE', message: expect.stringMatching(/\[2,8\].*model\.layers\.0\.self_attn\.q_proj\.lora_A\.weight.*\[3,8\]/),
    });
    const other = peftFixture({ extraModule: 'model.layers.7.self_attn.q_proj' });
    await expect(loadAdapter(tinyLlama().model, other.dir)).rejects.toMatchObject({ code: 'E_CONFIG', message: expect.stringContaining('another base model') });
  });

  it('a directory without the files, or with a pickle only, is refused', async () => {
    const empty = tmp();
    await expect(loadAdapter(tinyLlama().model, empty)).rejects.toMatchObject({ code: 'E_IO' });
    const pickle = peftFixture();
    fs.renameSync(path.join(pickle.dir, 'adapter_model.safetensors'), path.join(pickle.dir, 'adapter_model.bin'));
    await expect(loadAdapter(tinyLlama().model, pickle.dir)).rejects.toMatchObject({ code: 'E_UNSUPPORTED' });
  });
});

describe('saving adapters', () => {
  it("writes PEFT's keys, shapes and config, and loads back to exactly the same logits", async () => {
    const { model } = tinyLlama({ tie: false, seed: 3 });
    const peft = getPeftModel(model, { peft_type: 'LORA', r: 2, lora_alpha: 4, target_modules: ['q_proj', 'down_proj'], init_lora_weights: false }, { seed: 9 });
    const dir = tmp();
    await peft.saveAdapter(dir);
    const { header, tensors } = parseSafetensors(path.join(dir, 'adapter_model.safetensors'));
    expect(header.__metadata__).toEqual({ format: 'pt' });
    const expected = [0, 1].flatMap((l) => [
      [`base_model.model.model.layers.${l}.self_attn.q_proj.lora_A.weight`, [2, 8]],
      [`base_model.model.model.layers.${l}.self_attn.q_proj.lora_B.weight`, [16, 2]],
      [`base_model.model.model.layers.${l}.mlp.down_proj.lora_A.weight`, [2, 12]],
      [`base_model.model.model.layers.${l}.mlp.down_proj.lora_B.weight`, [8, 2]],
    ]);
    expect([...tensors].map(([k, t]) => [k, t.shape]).sort()).toEqual(expected.sort());
    const config = JSON.parse(fs.readFileSync(path.join(dir, 'adapter_config.json'), 'utf8'));
    expect(config).toMatchObject({ peft_type: 'LORA', r: 2, lora_alpha: 4, target_modules: ['q_proj', 'down_proj'], inference_mode: true, bias: 'none', use_dora: false });
    const reloaded = await loadAdapter(tinyLlama({ tie: false, seed: 3 }).model, dir);
    expect(maxAbsDiff(await logitsOf(reloaded), await logitsOf(peft))).toBe(0);
  });

  it('DoRA magnitudes, IA3 vectors, prompt embeddings and LayerNorm tuning use their PEFT keys and shapes', async () => {
    const cases: [Record<string, unknown>, (keys: Map<string, number[]>) => void][] = [
      [{ peft_type: 'LORA', use_dora: true, target_modules: ['k_proj'] }, (k) => expect(k.get('base_model.model.model.layers.0.self_attn.k_proj.lora_magnitude_vector')).toEqual([8])],
      [{ peft_type: 'IA3' }, (k) => {
        expect(k.get('base_model.model.model.layers.1.self_attn.k_proj.ia3_l')).toEqual([8, 1]);
        expect(k.get('base_model.model.model.layers.1.mlp.down_proj.ia3_l')).toEqual([1, 12]);
      }],
      [{ peft_type: 'PROMPT_TUNING', num_virtual_tokens: 4 }, (k) => expect([...k]).toEqual([['prompt_embeddings', [4, 8]]])],
      [{ peft_type: 'LN_TUNING' }, (k) => expect(k.get('base_model.model.model.layers.0.input_layernorm.ln_tuning_layers.weight')).toEqual([8])],
      [{ peft_type: 'BOTTLENECK', bottleneck_type: 'houlsby', reduction_factor: 4 }, (k) => {
        expect(k.get('base_model.model.model.layers.1.attn_adapter.adapter_down.weight')).toEqual([2, 8]);
        expect(k.get('base_model.model.model.layers.0.mlp_adapter.adapter_up.bias')).toEqual([8]);
        expect(k.size).toBe(16);
      }],
    ];
    for (const [config, check] of cases) {
      const peft = getPeftModel(tinyLlama({ tie: false }).model, config, { seed: 2 });
      // Change the trained values so that a reload must read them.
      for (const [name, t] of Object.entries(peft.trainableParameters())) {
        peft.base.nativeModel.setParameterValue(name, (await import('../../lib/tensor')).handleOf(tensor(t.toFloat32Array().map((v, i) => v + 0.01 * (i % 5)), t.shape), name));
      }
      const dir = tmp();
      await peft.saveAdapter(dir);
      check(new Map([...parseSafetensors(path.join(dir, 'adapter_model.safetensors')).tensors].map(([k, t]) => [k, t.shape])));
      const reloaded = await loadAdapter(tinyLlama({ tie: false }).model, dir);
      expect([config.peft_type, maxAbsDiff(await logitsOf(reloaded), await logitsOf(peft))]).toEqual([config.peft_type, 0]);
    }
  });

  it("puts adapters other than 'default' in a sub-folder named after them", async () => {
    const peft = getPeftModel(tinyLlama().model, { peft_type: 'LORA', r: 2 });
    peft.addAdapter('second', { peft_type: 'LORA', r: 4, target_modules: ['k_proj'] });
    const dir = tmp();
    await peft.saveAdapter(dir);
    expect(fs.existsSync(path.join(dir, 'adapter_model.safetensors'))).toBe(true);
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'second', 'adapter_config.json'), 'utf8')).r).toBe(4);
  });

  it('adapter names that could leave the directory are refused', () => {
    const peft = getPeftModel(tinyLlama().model, { peft_type: 'LORA', r: 2 });
    for (const name of ['..', '../x', 'a/b', '/abs', '', '.hidden', 'a\\b', '__base__']) {
      expect(() => peft.addAdapter(name, { peft_type: 'LORA', r: 2 })).toThrow(expect.objectContaining({ code: 'E_ARGUMENT' }));
    }
  });
});

describe('config validation', () => {
  const cases: [Record<string, unknown>, string][] = [
    [{ peft_type: 'LORA', r: 0 }, 'for r'],
    [{ peft_type: 'LORA', lora_dropout: -0.1 }, 'for lora_dropout'],
    [{ peft_type: 'LORA', lora_alpha: 'x' }, 'for lora_alpha'],
    [{ peft_type: 'LORA', bias: 'some' }, 'for bias'],
    [{ peft_type: 'LORA', init_lora_weights: 'magic' }, 'for init_lora_weights'],
    [{ peft_type: 'NOPE' }, 'for peft_type'],
    [{ peft_type: 'LORA', target_modules: ['nothing_like_this'] }, 'nothing_like_this'],
    [{ peft_type: 'LORA', target_modules: '(' }, 'regular expression'],
    [{ peft_type: 'PROMPT_TUNING' }, 'for num_virtual_tokens'],
    [{ peft_type: 'PROMPT_TUNING', num_virtual_tokens: 2, prompt_tuning_init: 'TEXT' }, 'for prompt_tuning_init_text'],
  ];
  for (const [config, needle] of cases) {
    it(`refuses ${JSON.stringify(config)}`, () => {
      expect(() => getPeftModel(tinyLlama().model, config)).toThrow(expect.objectContaining({ code: 'E_CONFIG', message: expect.stringContaining(needle) }));
    });
  }

  it('a target that matches nothing lists the model modules', () => {
    expect(() => getPeftModel(tinyLlama().model, { peft_type: 'LORA', target_modules: ['qq_proj'] })).toThrow(/model\.layers\.N\.self_attn\.q_proj/);
  });

  it('a prefix longer than the context is refused at generation', async () => {
    const { model } = tinyLlama();
    const peft = getPeftModel(model, { peft_type: 'PROMPT_TUNING', num_virtual_tokens: model.config.maxPositionEmbeddings });
    await expect(peft.generate([1, 2], { maxNewTokens: 1 })).rejects.toMatchObject({ code: 'E_RANGE' });
  });
});

describe('modules_to_save', () => {
  it('trains a copy of the module, saves it under its own path, reloads it, and disabling adapters restores the original', async () => {
    const { model } = tinyLlama({ tie: false, seed: 17 });
    const base = await logitsOf(model);
    const peft = getPeftModel(model, { peft_type: 'LORA', r: 2, target_modules: ['q_proj'], modules_to_save: ['lm_head'], init_lora_weights: false }, { seed: 1 });
    expect(Object.keys(peft.trainableParameters())).toContain('lm_head.weight');
    const { checkGradients } = await import('../helpers/finite-diff');
    await checkGradients(peft, TINY_IDS, [[1, 5, 7, 2, 9, 3], [4, 4, -100, 0, 6, 8]], { only: (n) => n === 'lm_head.weight' });
    const head = peft.trainableParameters()['lm_head.weight'];
    peft.setParameterValue('lm_head.weight', tensor(head.toFloat32Array().map((v) => v * 1.5), head.shape));
    const trained = await logitsOf(peft);
    const dir = tmp();
    await peft.saveAdapter(dir);
    const keys = [...parseSafetensors(path.join(dir, 'adapter_model.safetensors')).tensors.keys()];
    expect(keys).toContain('base_model.model.lm_head.weight');
    expect(maxAbsDiff(await peft.withAdaptersDisabled(() => logitsOf(peft)), base)).toBe(0);
    const reloaded = await loadAdapter(tinyLlama({ tie: false, seed: 17 }).model, dir);
    expect(maxAbsDiff(await logitsOf(reloaded), trained)).toBe(0);
  });

  it('a tied output head cannot be saved separately', () => {
    expect(() => getPeftModel(tinyLlama({ tie: true }).model, { peft_type: 'LORA', modules_to_save: ['lm_head'] })).toThrow(expect.objectContaining({ code: 'E_CONFIG' }));
  });
});
