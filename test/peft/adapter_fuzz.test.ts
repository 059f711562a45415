/**
 * Bounded fuzzing of adapter loading: real adapters of the stories260K model (LoRA with DoRA and a
 * saved module, IA3, prompt tuning, LayerNorm tuning), saved by this library in Hugging Face PEFT's
 * format, are mutated a few thousand times (adapter_config.json values swapped for wrong types, huge,
 * negative or non-finite numbers, prototype names, deep nesting, long strings, keys removed or added;
 * broken JSON text; safetensors header values and bytes) and loaded onto the model.
 *
 * Every load must give a working adapter (finite logits, unless a finite weight is huge enough to overflow) or a PeftError, and either way the base
 * model must be left exactly as it was: same logits, and the adapter's name free for the next load.
 * Seeded; see test/helpers/fuzz-loop.ts for replaying a case.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { getPeftModel, loadAdapter, loadModel, PeftError, Tensor, type Model, type PeftModel } from '../../lib';
import { countOf, fuzzLoop, peftOutcome, type FuzzCase } from '../helpers/fuzz-loop';
import { STORIES_HF_DIR } from '../helpers/models';
import { jsonText, mutateJsonText, mutateJsonValue, mutateSafetensors, pick, strangeJsonValue, type Random } from '../helpers/mutate';

const IDS = [[1, 403, 407, 285, 261]];
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-adapter-fuzz-src-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const CONFIGS: Record<string, Record<string, unknown>> = {
  lora: { peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj', 'down_proj'], use_dora: true, init_lora_weights: 'gaussian',
    modules_to_save: ['model.norm'], layers_to_transform: [0, 1, 2], rank_pattern: { v_proj: 2 }, alpha_pattern: { down_proj: 3 } },
  ia3: { peft_type: 'IA3', target_modules: ['k_proj', 'v_proj', 'down_proj'], feedforward_modules: ['down_proj'], init_ia3_weights: true },
  prompt: { peft_type: 'PROMPT_TUNING', num_virtual_tokens: 3, task_type: 'CAUSAL_LM' },
  ln: { peft_type: 'LN_TUNING', target_modules: ['input_layernorm'] },
};
// Keys the mutation may add: fields of any PEFT method, so a config gains one that is not its own.
const CONFIG_KEYS = ['peft_type', 'r', 'lora_alpha', 'target_modules', 'use_dora', 'modules_to_save', 'layers_to_transform', 'layers_pattern',
  'rank_pattern', 'alpha_pattern', 'num_virtual_tokens', 'feedforward_modules', 'task_type', 'bias', 'init_lora_weights', 'fan_in_fan_out',
  'prompt_tuning_init', 'prompt_tuning_init_text', 'exclude_modules', 'token_dim', 'inference_mode'];

interface Pristine {
  config: Record<string, unknown>;
  configText: string;
  weights: Uint8Array;
}

let model: Model;
let baseLogits: Float32Array;
let baseParameters: Set<string>;
const pristine = new Map<string, Pristine>();

async function logitsOf(m: { forward(ids: number[][]): Promise<{ toFloat32Array(): Float32Array }> }): Promise<Float32Array> {
  return (await m.forward(IDS)).toFloat32Array();
}

beforeAll(async () => {
  model = await loadModel(STORIES_HF_DIR);
  baseLogits = await logitsOf(model);
  baseParameters = new Set(model.nativeModel.parameters().map((p) => p.name));
  for (const [kind, config] of Object.entries(CONFIGS)) {
    const peft = getPeftModel(model, config, { seed: 3 });
    const dir = path.join(tmp, kind);
    await peft.saveAdapter(dir);
    peft.deleteAdapter('default');
    const configText = fs.readFileSync(path.join(dir, 'adapter_config.json'), 'utf8');
    pristine.set(kind, { config: JSON.parse(configText), configText, weights: new Uint8Array(fs.readFileSync(path.join(dir, 'adapter_model.safetensors'))) });
  }
});

interface AdapterCase extends FuzzCase {
  dir: string;
  name: string;
}

function makeCase(i: number, random: Random, dir: string): AdapterCase {
  const kind = pick(random, [...pristine.keys()]);
  const p = pristine.get(kind)!;
  let config = p.configText;
  let weights = p.weights;
  const r = random();
  let what: string;
  if (r < 0.6) {
    what = 'adapter_config.json values';
    config = jsonText(random() < 0.05 ? strangeJsonValue(random) : mutateJsonValue(p.config as never, random, () => false, CONFIG_KEYS));
  } else if (r < 0.75) {
    what = 'adapter_config.json text';
    config = mutateJsonText(p.configText, random);
  } else {
    what = 'adapter_model.safetensors';
    weights = mutateSafetensors(p.weights, random);
  }
  fs.writeFileSync(path.join(dir, 'adapter_config.json'), config);
  fs.writeFileSync(path.join(dir, 'adapter_model.safetensors'), weights);
  return { description: `${kind} adapter, ${what} mutated`, dir, name: `fz${i}` };
}

/** Whether every parameter the adapter added to the model holds only finite numbers. */
function adapterWeightsAreFinite(): boolean {
  return model.nativeModel.parameters()
    .filter((p) => !baseParameters.has(p.name) && !p.quantized)
    .every((p) => new Tensor(p.tensor).toFloat32Array().every(Number.isFinite));
}

function sameLogits(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && a.every((v, i) => Object.is(v, b[i]));
}

async function exercise(c: AdapterCase): Promise<string> {
  let outcome: string;
  let peft: PeftModel | undefined;
  try {
    peft = await loadAdapter(model, c.dir, { adapterName: c.name, warn: () => {} });
  } catch (e) {
    outcome = peftOutcome(e, 'load');
  }
  if (peft) {
    try {
      const logits = await logitsOf(peft);
      if (logits.every(Number.isFinite)) outcome = 'loaded';
      else if (adapterWeightsAreFinite()) outcome = 'loaded, overflows'; // a finite weight like 1e29 may overflow: true float arithmetic
      else throw new Error('an adapter that loaded gives non-finite logits (NaN or Inf weights were not refused)');
    } catch (e) {
      outcome = peftOutcome(e, 'use');
    } finally {
      peft.deleteAdapter(c.name);
    }
  }
  if (!sameLogits(await logitsOf(model), baseLogits)) throw new Error(`the base model's logits changed after the case (${outcome!})`);
  const left = model.nativeModel.parameters().map((p) => p.name).filter((n) => !baseParameters.has(n));
  if (left.length) throw new Error(`the case (${outcome!}) left parameters behind: ${left.slice(0, 3).join(', ')}`);
  return outcome!;
}

describe('loading mutated adapters', () => {
  it('answers every mutation with a working adapter or a PeftError, and leaves the base model as it was', async () => {
    const run = await fuzzLoop({ name: 'adapter', seed: 8, budgetMs: 15000, maxCases: 3000, minCases: 301 }, makeCase, exercise);
    // The name of a refused adapter is free again: the pristine adapter loads under it.
    const again = await loadAdapter(model, path.join(tmp, 'lora'), { adapterName: 'fz0' }).catch((e: PeftError) => e);
    expect(again).not.toBeInstanceOf(Error);
    if (run.replay) return;
    expect(run.cases).toBeGreaterThan(300);
    expect(countOf(run, 'loaded')).toBeGreaterThan(0);
    expect(countOf(run, 'load E_CONFIG')).toBeGreaterThan(0);
    expect(countOf(run, 'load E_FORMAT')).toBeGreaterThan(0);
  }, Number(process.env.PEFT_FUZZ_MS ?? 15000) + 60000);
});
