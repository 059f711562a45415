/**
 * Whole-loader fuzzing: the real stories260K files (GGUF, and config.json + model.safetensors +
 * tokenizer.json) are mutated a few thousand times within a time budget (bit flips, truncation,
 * extreme length and count fields, broken JSON, JSON members replaced by extreme or wrongly typed
 * values, GGUF metadata and tensors removed, retyped or reshaped) and each is given to `loadModel`.
 * Every load must succeed or reject with a PeftError; a model that loads must then encode text and
 * run a forward pass, again with a result or a PeftError. Never another error, a crash or a hang.
 *
 * Seeded: PEFT_FUZZ_SEED picks the run (the failure message names it and the case), PEFT_FUZZ_CASE
 * replays one case, PEFT_FUZZ_MS sets the budget (default 30 s). The case being run is written to
 * `<tmpdir>/peft-loader-fuzz-current.json` before it runs, so a crash leaves its seed behind.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { loadModel, PeftError } from '../../lib';
import { parseGguf, writeGguf, type MetaValue, type ParsedGguf, type TensorSpec } from '../helpers/gguf';
import { STORIES_GGUF, STORIES_HF_DIR } from '../helpers/models';
import { INTERESTING_U32, mutateBytes, mutateJsonText, mutateJsonValue, pick, strangeJsonValue, type Random } from '../helpers/mutate';
import { rng } from '../helpers/random';

const SEED = Number(process.env.PEFT_FUZZ_SEED ?? 260);
const ONLY_CASE = process.env.PEFT_FUZZ_CASE === undefined ? undefined : Number(process.env.PEFT_FUZZ_CASE);
const BUDGET_MS = Number(process.env.PEFT_FUZZ_MS ?? 30000);
/** A single load slower than this counts as a hang. */
const SLOW_MS = 10000;
const BREADCRUMB = path.join(os.tmpdir(), 'peft-loader-fuzz-current.json');

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-loader-fuzz-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

// Pristine copies in the temporary folder (the shared files are read-only and never touched).
const HF_FILES = ['config.json', 'model.safetensors', 'tokenizer.json'] as const;
const pristine = path.join(tmp, 'pristine');
fs.mkdirSync(pristine);
fs.copyFileSync(STORIES_GGUF, path.join(pristine, 'model.gguf'));
for (const f of HF_FILES) fs.copyFileSync(path.join(STORIES_HF_DIR, f), path.join(pristine, f));
const GGUF = new Uint8Array(fs.readFileSync(path.join(pristine, 'model.gguf')));
const GGUF_PARSED = parseGguf(GGUF);
const SAFETENSORS = new Uint8Array(fs.readFileSync(path.join(pristine, 'model.safetensors')));
const CONFIG = fs.readFileSync(path.join(pristine, 'config.json'), 'utf8');
const TOKENIZER = fs.readFileSync(path.join(pristine, 'tokenizer.json'), 'utf8');

// ---- GGUF: byte mutations and structured ones (metadata and tensor infos rewritten) -------------

function metaValue(type: string, value: unknown): MetaValue {
  if (type !== 'array') return { type, value } as MetaValue;
  const items = value as unknown[];
  const elem = items.every((v) => typeof v === 'string') ? 'string' : items.every((v) => Number.isInteger(v)) ? 'i32' : 'f32';
  return { type: 'array', elem, value: items };
}

/** Tensor specs of the parsed file; each tensor keeps the bytes up to the next one. */
function tensorsOf(parsed: ParsedGguf, bytes: Uint8Array): TensorSpec[] {
  const starts = parsed.tensors.map((t) => parsed.dataStart + t.offset);
  return parsed.tensors.map((t, k) => ({
    name: t.name,
    shape: [...t.shape],
    type: t.type,
    data: bytes.subarray(starts[k], k + 1 < starts.length ? starts[k + 1] : bytes.length),
  }));
}

function strangeMeta(random: Random, current: MetaValue): MetaValue {
  const r = random();
  if (r < 0.35 && current.type === 'u32') return { type: 'u32', value: pick(random, INTERESTING_U32) };
  if (r < 0.35 && current.type === 'f32') return { type: 'f32', value: pick(random, [0, -1, 1e-30, 1e30, NaN, Infinity, -Infinity]) };
  if (r < 0.35 && current.type === 'string') return { type: 'string', value: pick(random, ['', 'gpt2', 'llama', 'qwen2', 'mistral', 'bert', 'rwkv', 'falcon', 'x'.repeat(300)]) };
  if (r < 0.35 && current.type === 'array') {
    const items = current.value.slice(0, Math.floor(random() * current.value.length));
    if (random() < 0.5) return { ...current, value: items };
    const elem = pick(random, ['u8', 'i32', 'f32', 'string', 'bool'] as const); // same length, another element type
    return { type: 'array', elem, value: items.map((_, j) => (elem === 'string' ? String(j) : elem === 'bool' ? j % 2 === 0 : j % 200)) };
  }
  return pick(random, [
    { type: 'u64', value: 1n << 40n },
    { type: 'i32', value: -1 },
    { type: 'f64', value: 2.5 },
    { type: 'bool', value: true },
    { type: 'string', value: '7' },
    { type: 'array', elem: 'u32', value: [1, 2] },
    { type: 'array', elem: 'string', value: [] },
  ] as MetaValue[]);
}

function mutateGgufStructure(random: Random): Uint8Array {
  const metadata: [string, MetaValue][] = [...GGUF_PARSED.metadata].map(([k, v]) => [k, metaValue(v.type, v.value)]);
  const tensors = tensorsOf(GGUF_PARSED, GGUF);
  for (let k = 1 + Math.floor(random() * 2); k > 0; k--) {
    const r = random();
    if (r < 0.15) {
      metadata.splice(Math.floor(random() * metadata.length), 1); // a key missing
    } else if (r < 0.6) {
      const i = Math.floor(random() * metadata.length);
      metadata[i] = [metadata[i][0], strangeMeta(random, metadata[i][1])];
    } else if (r < 0.7) {
      tensors.splice(Math.floor(random() * tensors.length), 1); // a tensor missing
    } else if (r < 0.8) {
      const t = pick(random, tensors); // renamed, perhaps to another layer's slot
      t.name = random() < 0.5 ? t.name.replace(/\d+/, String(pick(random, [0, 4, 5, 99]))) : pick(random, ['output.weight', 'token_embd.weight', 'blk.0.attn_q.weight', 'x']);
    } else if (r < 0.92) {
      const t = pick(random, tensors); // reshaped: fewer, more or swapped dimensions
      const d = Math.floor(random() * t.shape.length);
      t.shape = pick(random, [[...t.shape].reverse(), [...t.shape, 1], t.shape.slice(1), t.shape.map((n, j) => (j === d ? Math.max(1, n >> 1) : n)), t.shape.map((n, j) => (j === d ? n + 1 : n))]);
    } else if (r < 0.96) {
      pick(random, tensors).type = pick(random, [1, 2, 3, 6, 7, 8, 10, 12, 14, 20, 23, 26, 30]); // F16, the block types, I32, BF16 (sizes now wrong)
    } else {
      // A matrix re-stored in a 32-block type with random bytes of the right size: random scales
      // (NaN, infinities, subnormals) in a weight the model keeps quantized.
      const t = pick(random, tensors.filter((x) => x.shape.length === 2));
      const [type, bytes] = pick(random, [[2, 18], [3, 20], [6, 22], [7, 24], [8, 34], [20, 18]] as const);
      t.type = type;
      t.data = Uint8Array.from({ length: (t.shape[0] * t.shape[1] / 32) * bytes }, () => Math.floor(random() * 256));
    }
  }
  return writeGguf({ version: GGUF_PARSED.version, metadata, tensors }).bytes;
}

// ---- safetensors: byte mutations and header JSON rewritten -----------------------------------

const ST_HEADER_LEN = Number(new DataView(SAFETENSORS.buffer).getBigUint64(0, true));
const ST_HEADER = JSON.parse(Buffer.from(SAFETENSORS.subarray(8, 8 + ST_HEADER_LEN)).toString('utf8'));

function mutateSafetensorsHeader(random: Random): Uint8Array {
  const header = mutateJsonValue(ST_HEADER, random, (p) => p.length >= 2 && (p[1] === 'shape' || p[1] === 'data_offsets' || p[1] === 'dtype'));
  let text = JSON.stringify(header);
  if (random() < 0.3) text = mutateJsonText(text, random);
  const bytes = Buffer.from(text, 'utf8');
  const out = new Uint8Array(8 + bytes.length + SAFETENSORS.length - 8 - ST_HEADER_LEN);
  new DataView(out.buffer).setBigUint64(0, BigInt(bytes.length), true);
  out.set(bytes, 8);
  out.set(SAFETENSORS.subarray(8 + ST_HEADER_LEN), 8 + bytes.length);
  return out;
}

// ---- one case ----------------------------------------------------------------------------------

interface Case {
  description: string;
  /** What loadModel is given. */
  location: string;
}

function writeCase(i: number, random: Random): Case {
  const dir = path.join(tmp, `case-${i}`);
  fs.mkdirSync(dir);
  const target = random();
  if (target < 0.45) {
    const file = path.join(dir, 'model.gguf');
    const structured = random() < 0.4;
    fs.writeFileSync(file, structured ? mutateGgufStructure(random) : mutateBytes(GGUF, random, { hot: GGUF_PARSED.dataStart, ...GGUF_PARSED.fields }));
    return { description: structured ? 'GGUF metadata / tensor infos rewritten' : 'GGUF bytes', location: file };
  }
  // A Hugging Face directory with one file mutated and the others linked to the pristine copies.
  let which: (typeof HF_FILES)[number];
  let bytes: Uint8Array | string;
  if (target < 0.7) {
    which = 'model.safetensors';
    bytes = random() < 0.5 ? mutateSafetensorsHeader(random) : mutateBytes(SAFETENSORS, random, { hot: 8 + ST_HEADER_LEN, u64: [0] });
  } else if (target < 0.88) {
    which = 'config.json';
    bytes = random() < 0.3 ? mutateJsonText(CONFIG, random) : JSON.stringify(random() < 0.1 ? strangeJsonValue(random) : mutateJsonValue(JSON.parse(CONFIG), random));
  } else {
    which = 'tokenizer.json';
    bytes = random() < 0.3 ? mutateJsonText(TOKENIZER, random) : JSON.stringify(mutateJsonValue(JSON.parse(TOKENIZER), random, (p) => p[0] !== 'model' || p.length <= 3));
  }
  for (const f of HF_FILES) {
    if (f === which) fs.writeFileSync(path.join(dir, f), bytes);
    else fs.symlinkSync(path.join(pristine, f), path.join(dir, f));
  }
  return { description: `Hugging Face directory, ${which} mutated`, location: dir };
}

/** Loads, and if that works encodes and runs a forward pass; returns the outcome's label. */
async function exercise(c: Case): Promise<string> {
  let stage = 'load';
  try {
    const model = await loadModel(c.location);
    stage = 'use';
    const ids = model.tokenizer ? model.tokenizer.encode('Once upon a time') : [1, 2, 3];
    await model.forward([ids.slice(0, 8)]);
    return 'loaded and ran';
  } catch (e) {
    if (e instanceof PeftError) return `${stage} ${e.code}`;
    throw e;
  }
}

describe('loading mutated real model files', () => {
  it(`answers every mutation with a model or a PeftError (seed ${SEED})`, async () => {
    const counts = new Map<string, number>();
    const start = Date.now();
    let cases = 0;
    const first = ONLY_CASE ?? 0;
    // At least 301 cases however long they take, so a loaded machine still meets the count below.
    for (let i = first; ONLY_CASE === undefined ? cases <= 300 || Date.now() - start < BUDGET_MS : i === ONLY_CASE; i++) {
      // Each case draws from its own stream, so PEFT_FUZZ_CASE replays it alone.
      const random = rng((Math.imul(SEED, 0x9e3779b1) ^ Math.imul(i + 1, 0x85ebca6b)) >>> 0);
      fs.writeFileSync(BREADCRUMB, JSON.stringify({ seed: SEED, case: i }));
      const c = writeCase(i, random);
      const t0 = Date.now();
      const failure = (what: string) => {
        const kept = path.join(os.tmpdir(), `peft-loader-fuzz-seed${SEED}-case${i}`);
        fs.cpSync(path.join(tmp, `case-${i}`), kept, { recursive: true, dereference: true });
        return new Error(`loader fuzz: PEFT_FUZZ_SEED=${SEED} PEFT_FUZZ_CASE=${i} (${c.description}, files kept in ${kept}) ${what}`);
      };
      let outcome: string;
      try {
        outcome = await exercise(c);
      } catch (e) {
        throw failure(`raised something other than a PeftError: ${e instanceof Error ? e.stack : String(e)}`);
      }
      const ms = Date.now() - t0;
      if (ms > SLOW_MS) throw failure(`took ${ms} ms`);
      counts.set(outcome, (counts.get(outcome) ?? 0) + 1);
      fs.rmSync(path.join(tmp, `case-${i}`), { recursive: true, force: true });
      cases++;
    }
    fs.rmSync(BREADCRUMB, { force: true });
    if (process.env.PEFT_FUZZ_VERBOSE) console.log(cases, 'cases', Object.fromEntries(counts));
    if (ONLY_CASE !== undefined) return;
    expect(cases).toBeGreaterThan(300); // about 2000 on an idle 2-core machine
    // The mix reaches both ends: files that still load and files that are refused.
    expect(counts.get('loaded and ran')).toBeGreaterThan(0);
    expect(counts.get('load E_FORMAT')).toBeGreaterThan(0);
    expect(counts.get('load E_CONFIG')).toBeGreaterThan(0);
  }, BUDGET_MS + 60000);
});
