/**
 * Bounded fuzzing of 4-bit checkpoints in bitsandbytes' format: the stories260K model quantized on
 * load (NF4 with double quantization, and FP4 without) and saved with saveQuantizedModel, then
 * mutated a few thousand times: the `weight.quant_state.bitsandbytes__nf4` u8 JSON tensor (values
 * swapped for wrong types, huge, negative or non-finite numbers, prototype names, deep nesting, long
 * strings, keys removed or added; broken text and bytes, invalid UTF-8), the safetensors header
 * entries of the 4-bit parts (dtype, shape, offsets), NaN and Inf in absmax and the code tables, and
 * config.json's quantization_config.
 *
 * Most cases read the 4-bit weights straight from the file (readQuantizedWeights, then dequantize);
 * some load the whole checkpoint with loadModel and run a forward pass. Either must work (finite
 * values) or raise a PeftError. Seeded; see test/helpers/fuzz-loop.ts for replaying a case.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { dequantize, loadModel, readSafetensors, saveQuantizedModel, type BitsAndBytesConfig } from '../../lib';
import { assertFiniteTensors, quantizedScales } from '../../lib/models/finite-weights';
import { readQuantizedWeights } from '../../lib/quant/model-weights';
import { countOf, fuzzLoop, peftOutcome, type FuzzCase } from '../helpers/fuzz-loop';
import { STORIES_HF_DIR } from '../helpers/models';
import { jsonText, mutateBytes, mutateJsonText, mutateJsonValue, mutateSafetensors, pick, strangeJsonValue, type Random } from '../helpers/mutate';
import { parseSafetensors, writeSafetensorsJs, type JsTensor } from '../helpers/safetensors-js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-bnb-fuzz-src-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const VARIANTS: Record<string, BitsAndBytesConfig> = {
  nf4: { load_in_4bit: true, bnb_4bit_quant_type: 'nf4', bnb_4bit_use_double_quant: true },
  fp4: { load_in_4bit: true, bnb_4bit_quant_type: 'fp4', bnb_4bit_blocksize: 128 },
};
const QUANT_STATE_KEYS = ['quant_type', 'blocksize', 'dtype', 'shape', 'nested_blocksize', 'nested_dtype', 'nested_offset'];
const QUANT_CONFIG_KEYS = ['bnb_4bit_compute_dtype', 'bnb_4bit_quant_type', 'load_in_4bit', 'quant_method', 'bnb_4bit_quant_storage'];
const LINKED = ['tokenizer.json', 'tokenizer_config.json'];

interface Checkpoint {
  dir: string;
  config: Record<string, unknown>;
  tensors: Map<string, JsTensor>;
  metadata?: Record<string, string>;
  /** The weights stored in 4 bits (the names before `.quant_state.`). */
  quantized: string[];
}
const checkpoints = new Map<string, Checkpoint>();

beforeAll(async () => {
  for (const [name, quantization] of Object.entries(VARIANTS)) {
    const dir = path.join(tmp, name);
    await saveQuantizedModel(await loadModel(STORIES_HF_DIR, { quantization }), dir);
    const file = path.join(dir, 'model.safetensors');
    const { header, tensors } = parseSafetensors(file);
    const quantized = [...tensors.keys()].filter((k) => k.includes('.quant_state.')).map((k) => k.slice(0, k.indexOf('.quant_state.')));
    checkpoints.set(name, { dir, config: JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')), tensors, metadata: header.__metadata__,
      quantized });
  }
});

interface BnbCase extends FuzzCase {
  dir: string;
  /** Load the whole checkpoint (else only its 4-bit weights). */
  whole: boolean;
}

/** The quant_state JSON bytes of one weight, mutated as JSON values, as text or as bytes. */
function mutateQuantState(bytes: Uint8Array, random: Random): Uint8Array {
  const text = Buffer.from(bytes).toString('utf8');
  const r = random();
  if (r < 0.1) {
    // The shape of another weight with as many elements: every size check passes.
    const state = JSON.parse(text);
    return Buffer.from(JSON.stringify({ ...state, shape: [...state.shape].reverse() }));
  }
  if (r < 0.6) return Buffer.from(jsonText(random() < 0.05 ? strangeJsonValue(random) : mutateJsonValue(JSON.parse(text), random, () => false, QUANT_STATE_KEYS)));
  if (r < 0.8) return Buffer.from(mutateJsonText(text, random), 'utf8');
  return mutateBytes(bytes, random, { hot: bytes.length });
}

/** A float tensor's bytes with a NaN, an infinity or a huge value written over one element. */
function poisonFloats(t: JsTensor, random: Random): JsTensor {
  const bytes = t.bytes.slice();
  if (t.dtype !== 'F32' || bytes.length < 4) return { ...t, bytes: mutateBytes(bytes, random, { hot: bytes.length }) };
  new DataView(bytes.buffer).setFloat32(4 * Math.floor(random() * (bytes.length / 4)), pick(random, [NaN, Infinity, -Infinity, 3e38, -0, 1e-45]), true);
  return { ...t, bytes };
}

function makeCase(i: number, random: Random, dir: string): BnbCase {
  const kind = pick(random, [...checkpoints.keys()]);
  const c = checkpoints.get(kind)!;
  // Most cases write only the parts of one 4-bit weight (a small file, read fast); some the whole checkpoint.
  const whole = random() < 0.12;
  const weight = pick(random, c.quantized);
  const tensors = new Map([...c.tensors].filter(([k]) => whole || k === weight || k.startsWith(`${weight}.`)));
  let config = jsonText(c.config);
  const r = random();
  let what: string;
  if (r < 0.55) {
    what = `the quant_state of ${weight}`;
    const key = [...tensors.keys()].find((k) => k.startsWith(`${weight}.quant_state.`))!;
    const t = tensors.get(key)!;
    const bytes = mutateQuantState(t.bytes, random);
    tensors.set(key, { ...t, shape: [bytes.length], bytes });
  } else if (r < 0.85) {
    const part = pick(random, ['', '.absmax', '.quant_map', '.nested_absmax', '.nested_quant_map'].map((s) => `${weight}${s}`).filter((k) => tensors.has(k)));
    what = `the values of ${part}`;
    tensors.set(part, poisonFloats(tensors.get(part)!, random));
  } else if (r < 0.95 || !whole) {
    what = 'the safetensors header or bytes';
  } else {
    what = 'quantization_config in config.json';
    const q = mutateJsonValue(c.config.quantization_config as never, random, () => false, QUANT_CONFIG_KEYS);
    config = jsonText({ ...c.config, quantization_config: q });
  }
  const file = path.join(dir, 'model.safetensors');
  writeSafetensorsJs(file, [...tensors], c.metadata);
  if (what === 'the safetensors header or bytes') fs.writeFileSync(file, mutateSafetensors(new Uint8Array(fs.readFileSync(file)), random));
  fs.writeFileSync(path.join(dir, 'config.json'), config);
  for (const f of LINKED) fs.symlinkSync(path.join(c.dir, f), path.join(dir, f));
  return { description: `${kind} checkpoint${whole ? '' : ` (${weight} alone)`}, ${what} mutated`, dir, whole };
}

function expectFinite(values: Float32Array, what: string): void {
  const bad = values.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) throw new Error(`${what} holds ${values[bad]} at ${bad}, but the checkpoint was accepted`);
}

async function exercise(c: BnbCase): Promise<string> {
  try {
    if (c.whole) {
      const model = await loadModel(c.dir);
      for (const [name, q] of model.quantizedWeights()) expectFinite(dequantize(q).toFloat32Array(), name);
      const logits = await model.forward([[1, 403, 407]]);
      if (logits.shape.join() !== [1, 3, model.config.vocabSize].join()) throw new Error(`logits of shape [${logits.shape}]`);
      return 'model loaded';
    }
    const { weights } = readQuantizedWeights(readSafetensors(path.join(c.dir, 'model.safetensors')));
    // NaN or infinite scales pass the format checks and are loadModel's weight check's to refuse.
    await assertFiniteTensors(quantizedScales(weights), 'loadModel', '');
    for (const [name, q] of weights) expectFinite(dequantize(q).toFloat32Array(), name);
    return 'weights read';
  } catch (e) {
    return peftOutcome(e, c.whole ? 'model' : 'weights');
  }
}

describe('reading mutated bitsandbytes checkpoints', () => {
  it('answers every mutation with finite weights or a PeftError', async () => {
    const run = await fuzzLoop({ name: 'bnb', seed: 4, budgetMs: 15000, maxCases: 3000, minCases: 101 }, makeCase, exercise);
    if (run.replay) return;
    expect(run.cases).toBeGreaterThan(100); // about 1000 on an idle 2-core machine
    expect(countOf(run, 'weights read')).toBeGreaterThan(0);
    expect(countOf(run, 'model loaded')).toBeGreaterThan(0);
    expect(countOf(run, 'weights E_FORMAT')).toBeGreaterThan(0);
    expect(countOf(run, 'weights E_NONFINITE')).toBeGreaterThan(0);
  }, Number(process.env.PEFT_FUZZ_MS ?? 15000) + 60000);
});
