/**
 * Hostile inputs, built by hand from the published formats: file headers claiming huge sizes, tensor
 * offsets past the end of the file, negative or overflowing shapes, NaN and Inf in weights, adapter
 * names with ".." or "/", a symlink planted where an adapter is saved, deep nesting, prototype names.
 * Each is refused with the PeftError code and message listed here. docs/hostile-inputs.md is this
 * table; PEFT_HOSTILE_TABLE=1 prints its rows from the messages actually raised.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { getPeftModel, loadAdapter, loadDataset, loadModel, loadTokenizer, PeftError, readGguf, readSafetensors, tensor, type Model } from '../../lib';
import { resolveConfig } from '../../lib/cli/config';
import { TRAIN_SCHEMA } from '../../lib/cli/commands/train';
import { assertFiniteTensors, quantizedScales } from '../../lib/models/finite-weights';
import { readBnbQuantized } from '../../lib/quant/bnb-format';
import { bytesOf, GGML, writeGguf } from '../helpers/gguf';
import { STORIES_HF_DIR } from '../helpers/models';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-hostile-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
let counter = 0;
const file = (name: string, bytes: Uint8Array | string): string => {
  const p = path.join(tmp, `${counter++}-${name}`);
  fs.writeFileSync(p, bytes);
  return p;
};
const dirWith = (files: Record<string, Uint8Array | string>): string => {
  const d = path.join(tmp, `dir-${counter++}`);
  fs.mkdirSync(d);
  for (const [n, b] of Object.entries(files)) fs.writeFileSync(path.join(d, n), b);
  return d;
};

// ---- safetensors: u64 header length, JSON header, data -------------------------------------------
function st(header: string | Record<string, unknown>, data: Uint8Array = new Uint8Array(0), claimedLength?: bigint): Uint8Array {
  const text = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(claimedLength ?? BigInt(text.length));
  return Buffer.concat([len, text, data]);
}
const f32 = (shape: number[], offsets: [number, number]) => ({ dtype: 'F32', shape, data_offsets: offsets });
const readAllSafetensors = async (p: string) => {
  const f = readSafetensors(p);
  for (const k of f.keys()) f.tensor(k);
};

// ---- GGUF ---------------------------------------------------------------------------------------
function gguf(edit?: (view: DataView, layout: ReturnType<typeof writeGguf>['layout']) => void, spec: Parameters<typeof writeGguf>[0] = {}): Uint8Array {
  const { bytes, layout } = writeGguf({
    metadata: [['general.architecture', { type: 'string', value: 'llama' }]],
    tensors: [{ name: 'w', shape: [2, 32], type: GGML.F32.id, data: bytesOf(new Float32Array(64).fill(1)) }],
    ...spec,
  });
  edit?.(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), layout);
  return bytes;
}
const readAllGguf = async (p: string) => {
  const g = readGguf(p);
  try {
    for (const t of g.tensorInfos) g.tensor(t.name).dispose();
  } finally {
    g.dispose();
  }
};

// ---- adapters on the real model ---------------------------------------------------------------------
let model: Model;
let lora: { config: string; weights: Uint8Array };
beforeAll(async () => {
  model = await loadModel(STORIES_HF_DIR);
  const d = path.join(tmp, 'lora-src');
  const peft = getPeftModel(model, { peft_type: 'LORA', r: 2, target_modules: ['q_proj'] });
  await peft.saveAdapter(d);
  peft.deleteAdapter('default');
  lora = { config: fs.readFileSync(path.join(d, 'adapter_config.json'), 'utf8'), weights: new Uint8Array(fs.readFileSync(path.join(d, 'adapter_model.safetensors'))) };
});
const adapter = (config: Record<string, unknown> | string, weights?: Uint8Array) =>
  dirWith({ 'adapter_config.json': typeof config === 'string' ? config : JSON.stringify({ ...JSON.parse(lora.config), ...config }), 'adapter_model.safetensors': weights ?? lora.weights });
const loadOnModel = async (dir: string, name = 'hostile') => (await loadAdapter(model, dir, { adapterName: name, warn: () => {} })).deleteAdapter(name);
/** The LoRA file with the first value of its first tensor replaced. */
function poisonedLora(value: number): Uint8Array {
  const out = lora.weights.slice();
  const headerLen = Number(new DataView(out.buffer).getBigUint64(0, true));
  new DataView(out.buffer).setFloat32(8 + headerLen, value, true);
  return out;
}

interface Hostile {
  area: string;
  input: string;
  code: string;
  message: string;
  run: () => Promise<unknown>;
}

const HUGE = (1n << 64n) - 1n;
const CASES: Hostile[] = [
  // safetensors
  { area: 'safetensors', input: 'header length 2^64-1', code: 'E_FORMAT', message: 'exceeds the 100 MiB limit', run: () => readAllSafetensors(file('a.safetensors', st({}, undefined, HUGE))) },
  { area: 'safetensors', input: 'header length past the end of the file', code: 'E_FORMAT', message: 'exceeds the file size', run: () => readAllSafetensors(file('a.safetensors', st({}, undefined, 4096n))) },
  { area: 'safetensors', input: 'a file of 5 bytes', code: 'E_FORMAT', message: 'truncated while reading the header length', run: () => readAllSafetensors(file('a.safetensors', new Uint8Array(5))) },
  { area: 'safetensors', input: 'data_offsets ending past the end of the file', code: 'E_FORMAT', message: 'outside the 16-byte data section', run: () => readAllSafetensors(file('a.safetensors', st({ w: f32([1024], [0, 4096]) }, new Uint8Array(16)))) },
  { area: 'safetensors', input: 'data_offsets [8, 4] (begin after end)', code: 'E_FORMAT', message: 'outside the', run: () => readAllSafetensors(file('a.safetensors', st({ w: f32([1], [8, 4]) }, new Uint8Array(16)))) },
  { area: 'safetensors', input: 'data offset 2^64 (past int64)', code: 'E_FORMAT', message: 'data offset that is not a non-negative integer', run: () => readAllSafetensors(file('a.safetensors', st('{"w":{"dtype":"F32","shape":[1],"data_offsets":[18446744073709551616,4]}}'))) },
  { area: 'safetensors', input: 'negative dimension [-1, 4]', code: 'E_FORMAT', message: 'shape entry that is not a non-negative integer', run: () => readAllSafetensors(file('a.safetensors', st({ w: f32([-1, 4], [0, 16]) }, new Uint8Array(16)))) },
  { area: 'safetensors', input: 'shape [2^62, 2^62] (element count overflows)', code: 'E_FORMAT', message: 'oversized shape', run: () => readAllSafetensors(file('a.safetensors', st(`{"w":{"dtype":"F32","shape":[${2n ** 62n},${2n ** 62n}],"data_offsets":[0,16]}}`, new Uint8Array(16)))) },
  { area: 'safetensors', input: 'shape x dtype not matching the byte range', code: 'E_FORMAT', message: 'needs 64 bytes but its data_offsets span 16', run: () => readAllSafetensors(file('a.safetensors', st({ w: f32([16], [0, 16]) }, new Uint8Array(16)))) },
  { area: 'safetensors', input: 'two tensors over the same bytes', code: 'E_FORMAT', message: 'overlap', run: () => readAllSafetensors(file('a.safetensors', st({ a: f32([4], [0, 16]), b: f32([2], [8, 16]) }, new Uint8Array(16)))) },
  { area: 'safetensors', input: 'the same tensor name twice', code: 'E_FORMAT', message: 'appears twice', run: () => readAllSafetensors(file('a.safetensors', st('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', new Uint8Array(8)))) },
  { area: 'safetensors', input: 'a tensor name with invalid UTF-8', code: 'E_FORMAT', message: 'invalid UTF-8', run: () => readAllSafetensors(file('a.safetensors', Buffer.concat([Buffer.from(st('{"w\u0001":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', new Uint8Array(4))).map((b) => (b === 1 ? 0xff : b))]))) },
  { area: 'safetensors', input: 'header nested 100 levels deep', code: 'E_FORMAT', message: 'nesting deeper than 64 levels', run: () => readAllSafetensors(file('a.safetensors', st(`{"__metadata__":{"a":"b"},"w":${'['.repeat(100)}${']'.repeat(100)}}`))) },
  { area: 'safetensors', input: 'a shape of 4,194,305 zeros (8 MiB of "0,")', code: 'E_FORMAT', message: 'more than 4194304 values', run: () => readAllSafetensors(file('a.safetensors', st(`{"w":{"dtype":"F32","shape":[${'0,'.repeat(4194304)}0],"data_offsets":[0,0]}}`))) },
  { area: 'safetensors', input: 'dtype "F128"', code: 'E_FORMAT', message: 'unknown dtype "F128"', run: () => readAllSafetensors(file('a.safetensors', st({ w: { dtype: 'F128', shape: [1], data_offsets: [0, 16] } }, new Uint8Array(16)))) },
  { area: 'safetensors', input: 'an I64 tensor (listed, not loadable)', code: 'E_UNSUPPORTED', message: 'I64, which is not supported', run: () => readAllSafetensors(file('a.safetensors', st({ w: { dtype: 'I64', shape: [1], data_offsets: [0, 8] } }, new Uint8Array(8)))) },
  { area: 'safetensors', input: 'a directory instead of a file', code: 'E_IO', message: 'it is a directory', run: () => readAllSafetensors(dirWith({})) },
  // GGUF
  { area: 'GGUF', input: 'magic "GGML"', code: 'E_FORMAT', message: 'Expected the magic "GGUF"', run: () => readAllGguf(file('a.gguf', gguf((v) => v.setUint8(3, 0x4c)))) },
  { area: 'GGUF', input: 'version 3 written big-endian', code: 'E_FORMAT', message: 'a big-endian file', run: () => readAllGguf(file('a.gguf', gguf((v) => v.setUint32(4, 3, false)))) },
  { area: 'GGUF', input: 'tensor count 2^63', code: 'E_FORMAT', message: 'Expected a tensor count that fits', run: () => readAllGguf(file('a.gguf', gguf((v, l) => v.setBigUint64(l.tensorCount, 1n << 63n, true)))) },
  { area: 'GGUF', input: 'metadata count 2^64-1', code: 'E_FORMAT', message: 'Expected a metadata count that fits', run: () => readAllGguf(file('a.gguf', gguf((v, l) => v.setBigUint64(l.kvCount, HUGE, true)))) },
  { area: 'GGUF', input: 'string length 2^64-1', code: 'E_FORMAT', message: 'Expected a string length within', run: () => readAllGguf(file('a.gguf', gguf((v, l) => v.setBigUint64(l.kv[0].value, HUGE, true)))) },
  { area: 'GGUF', input: 'array of 2^62 u32 in a small file', code: 'E_FORMAT', message: 'Expected an array length that fits', run: () => readAllGguf(file('a.gguf', gguf((v, l) => v.setBigUint64(l.kv[0].value + 4, 1n << 62n, true), { metadata: [['a', { type: 'array', elem: 'u32', value: [1, 2] }]] }))) },
  { area: 'GGUF', input: 'arrays nested 9 deep', code: 'E_FORMAT', message: 'nested at most 8 deep', run: () => readAllGguf(file('a.gguf', gguf(undefined, { metadata: [['a', { type: 'array', elem: 'array', value: [nestedArrays(8)] }]] }))) },
  { area: 'GGUF', input: '1,048,577 empty arrays inside an array (12 MiB)', code: 'E_FORMAT', message: 'elements in arrays of arrays', run: () => readAllGguf(file('a.gguf', manyNestedArrays((1 << 20) + 1))) },
  { area: 'GGUF', input: 'a tensor with 5 dimensions', code: 'E_FORMAT', message: 'at most 4 dimensions', run: () => readAllGguf(file('a.gguf', gguf((v, l) => v.setUint32(l.tensors[0].nDims, 5, true)))) },
  { area: 'GGUF', input: 'dimension 2^60', code: 'E_FORMAT', message: 'dimensions below 2^53', run: () => readAllGguf(file('a.gguf', gguf((v, l) => v.setBigUint64(l.tensors[0].dims + 8, 1n << 60n, true)))) },
  { area: 'GGUF', input: 'dimensions [2^40, 2^40, 0, 1] (the non-zero product overflows)', code: 'E_FORMAT', message: 'product fits in 63 bits', run: () => readAllGguf(file('a.gguf', gguf(undefined, { tensors: [{ name: 'w', shape: [1, 0, 2 ** 40, 2 ** 40], type: GGML.F32.id, data: new Uint8Array(0) }] }))) },
  { area: 'GGUF', input: 'ggml type 99', code: 'E_UNSUPPORTED', message: 'received type 99', run: () => readAllGguf(file('a.gguf', gguf((v, l) => v.setUint32(l.tensors[0].type, 99, true)))) },
  { area: 'GGUF', input: 'tensor data offset past the end of the file', code: 'E_FORMAT', message: 'runs past the end of the file', run: () => readAllGguf(file('a.gguf', gguf((v, l) => v.setBigUint64(l.tensors[0].offset, 1n << 40n, true)))) },
  { area: 'GGUF', input: 'tensor data offset not a multiple of the alignment', code: 'E_FORMAT', message: 'multiple of the alignment 32', run: () => readAllGguf(file('a.gguf', gguf((v, l) => v.setBigUint64(l.tensors[0].offset, 4n, true)))) },
  { area: 'GGUF', input: 'two tensors over the same bytes', code: 'E_FORMAT', message: 'do not overlap', run: () => readAllGguf(file('a.gguf', gguf((v, l) => v.setBigUint64(l.tensors[1].offset, 0n, true), { tensors: [{ name: 'a', shape: [32], type: GGML.F32.id, data: new Uint8Array(128) }, { name: 'b', shape: [32], type: GGML.F32.id, data: new Uint8Array(128) }] }))) },
  { area: 'GGUF', input: 'general.alignment 3', code: 'E_FORMAT', message: 'power of two', run: () => readAllGguf(file('a.gguf', gguf(undefined, { metadata: [['general.alignment', { type: 'u32', value: 3 }]] }))) },
  { area: 'GGUF', input: 'a file cut inside the padding before the data', code: 'E_FORMAT', message: 'to start within the file', run: () => readAllGguf(file('a.gguf', gguf(undefined, { tensors: [{ name: 'w', shape: [0], type: GGML.F32.id, data: new Uint8Array(0) }] }).slice(0, -4))) },
  { area: 'GGUF', input: 'an IQ2_XXS tensor (listed, not loadable)', code: 'E_UNSUPPORTED', message: 'received IQ2_XXS', run: () => readAllGguf(file('a.gguf', gguf(undefined, { tensors: [{ name: 'w', shape: [256], type: GGML.IQ2_XXS.id, data: new Uint8Array(66) }] }))) },
  // adapters
  { area: 'adapter', input: 'adapter name "../x"', code: 'E_ARGUMENT', message: 'Expected an adapter name', run: () => loadOnModel(adapter({}), '../x') },
  { area: 'adapter', input: 'adapter name "a/b"', code: 'E_ARGUMENT', message: 'Expected an adapter name', run: () => loadOnModel(adapter({}), 'a/b') },
  { area: 'adapter', input: 'peft_type "__proto__"', code: 'E_CONFIG', message: 'for peft_type', run: () => loadOnModel(adapter({ peft_type: '__proto__' })) },
  { area: 'adapter', input: 'r = -1', code: 'E_CONFIG', message: 'an integer ≥ 1 for r', run: () => loadOnModel(adapter({ r: -1 })) },
  { area: 'adapter', input: 'lora_alpha "NaN" (a string)', code: 'E_CONFIG', message: 'a positive number for lora_alpha', run: () => loadOnModel(adapter({ lora_alpha: 'NaN' })) },
  { area: 'adapter', input: 'lora_alpha 1e999 (Infinity after JSON.parse)', code: 'E_CONFIG', message: 'a positive number for lora_alpha', run: () => loadOnModel(adapter(lora.config.replace(/"lora_alpha": [0-9.]+/, '"lora_alpha": 1e999'))) },
  { area: 'adapter', input: 'target_modules "(.*)*X" (exponential matching)', code: 'E_CONFIG', message: 'repeated group', run: () => loadOnModel(adapter({ target_modules: '(.*)*X' })) },
  { area: 'adapter', input: 'adapter_config.json nested 100000 deep', code: 'E_CONFIG', message: 'a PEFT config object', run: () => loadOnModel(adapter(`${'['.repeat(100000)}${']'.repeat(100000)}`)) },
  { area: 'adapter', input: 'a NaN in lora_A', code: 'E_NONFINITE', message: 'holds NaN at element 0', run: () => loadOnModel(adapter({}, poisonedLora(NaN))) },
  { area: 'adapter', input: 'an Inf in lora_A', code: 'E_NONFINITE', message: 'holds Infinity at element 0', run: () => loadOnModel(adapter({}, poisonedLora(Infinity))) },
  { area: 'adapter', input: 'lora_A of the wrong rank', code: 'E_SHAPE', message: 'Expected shape [4,64]', run: () => loadOnModel(adapter({ r: 4 })) },
  { area: 'adapter', input: 'only adapter_model.bin (a pickle)', code: 'E_UNSUPPORTED', message: 'not read for safety', run: () => loadOnModel(dirWith({ 'adapter_config.json': lora.config, 'adapter_model.bin': 'x' })) },
  // bitsandbytes
  ...bnbCases(),
  // JSONL data
  { area: 'JSONL', input: 'invalid UTF-8 in a record', code: 'E_FORMAT', message: 'line 2 but it holds invalid bytes', run: () => loadDataset(file('a.jsonl', Buffer.concat([Buffer.from('{"text":"a"}\n{"text":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}\n')])), loadTokenizer(STORIES_HF_DIR)) },
  { area: 'JSONL', input: 'a line that is not JSON', code: 'E_FORMAT', message: 'line 1 but received invalid JSON', run: () => loadDataset(file('a.jsonl', '{"text": "a"\n'), loadTokenizer(STORIES_HF_DIR)) },
  { area: 'JSONL', input: 'label 2^32 (would wrap to class 0 as int32)', code: 'E_FORMAT', message: 'an integer in [0, 2^31)', run: () => loadDataset(file('a.jsonl', '{"text":"a","label":0}\n{"text":"b","label":4294967296}\n'), loadTokenizer(STORIES_HF_DIR)) },
  { area: 'JSONL', input: '"prompt" that is a number', code: 'E_FORMAT', message: 'for "prompt" on', run: () => loadDataset(file('a.jsonl', '{"prompt":5,"completion":"x"}\n'), loadTokenizer(STORIES_HF_DIR)) },
  // YAML configs
  { area: 'YAML config', input: 'alias bomb (9 levels of 10 aliases)', code: 'E_FORMAT', message: 'resource exhaustion', run: async () => resolveConfig(TRAIN_SCHEMA, { file: file('c.yaml', aliasBomb()) }) },
  { area: 'YAML config', input: 'flow collections nested 20000 deep', code: 'E_FORMAT', message: 'nests deeper than 64 levels', run: async () => resolveConfig(TRAIN_SCHEMA, { file: file('c.yaml', `peft: ${'['.repeat(20000)}${']'.repeat(20000)}\n`) }) },
  { area: 'YAML config', input: 'key "__proto__"', code: 'E_CONFIG', message: 'Unknown config key "__proto__"', run: async () => resolveConfig(TRAIN_SCHEMA, { file: file('c.yaml', 'model: m\ntrain_file: t\n__proto__:\n  polluted: 1\n') }) },
  { area: 'YAML config', input: 'key "constructor"', code: 'E_CONFIG', message: 'Unknown config key "constructor"', run: async () => resolveConfig(TRAIN_SCHEMA, { file: file('c.yaml', 'model: m\ntrain_file: t\nconstructor: 1\n') }) },
  { area: 'YAML config', input: 'learning_rate .nan', code: 'E_CONFIG', message: 'a finite number for learning_rate', run: async () => resolveConfig(TRAIN_SCHEMA, { file: file('c.yaml', 'model: m\ntrain_file: t\nlearning_rate: .nan\n') }) },
  { area: 'YAML config', input: 'the same key twice', code: 'E_FORMAT', message: 'Map keys must be unique', run: async () => resolveConfig(TRAIN_SCHEMA, { file: file('c.yaml', 'model: a\nmodel: b\n') }) },
  { area: 'YAML config', input: 'invalid UTF-8', code: 'E_FORMAT', message: 'not UTF-8 text', run: async () => resolveConfig(TRAIN_SCHEMA, { file: file('c.yaml', Buffer.from([0x6d, 0x3a, 0x20, 0xff, 0x0a])) }) },
  // writing
  { area: 'writing', input: 'adapter_config.json in the output folder a symlink to a file outside it', code: 'E_IO', message: 'Refusing to write through', run: () => saveOverPlantedLink() },
];

/** Saves an adapter into a folder whose adapter_config.json links outside it; the linked file must stay as it was. */
async function saveOverPlantedLink(): Promise<void> {
  const dir = dirWith({});
  fs.mkdirSync(path.join(dir, 'sym'));
  const victim = plant(path.join(dir, 'sym', 'adapter_config.json'));
  const peft = getPeftModel(model, { peft_type: 'LORA', r: 2, target_modules: ['q_proj'] }, { adapterName: 'sym' });
  try {
    await peft.saveAdapter(dir, { adapterNames: ['sym'] });
  } finally {
    peft.deleteAdapter('sym');
    expect(fs.readFileSync(victim, 'utf8')).toBe('precious');
  }
}

function nestedArrays(depth: number): { elem: 'array' | 'u8'; value: unknown[] } {
  return depth === 0 ? { elem: 'u8', value: [1] } : { elem: 'array', value: [nestedArrays(depth - 1)] };
}

/** GGUF with one metadata value: an array of `n` empty u8 arrays. */
function manyNestedArrays(n: number): Uint8Array {
  const head = Buffer.alloc(24 + 8 + 1 + 4 + 4 + 8);
  head.write('GGUF', 0, 'latin1');
  head.writeUInt32LE(3, 4);
  head.writeBigUInt64LE(0n, 8);
  head.writeBigUInt64LE(1n, 16);
  head.writeBigUInt64LE(1n, 24);
  head.write('a', 32, 'latin1');
  head.writeUInt32LE(9, 33); // array
  head.writeUInt32LE(9, 37); // of arrays
  head.writeBigUInt64LE(BigInt(n), 41);
  const item = Buffer.alloc(12); // element type u8, length 0
  return Buffer.concat([head, Buffer.alloc(12 * n, item)]);
}

function aliasBomb(): string {
  const lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]'];
  for (let i = 1; i < 10; i++) lines.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(10).fill(`*${String.fromCharCode(96 + i)}`).join(',')}]`);
  return lines.join('\n') + '\n';
}

/** A symlink to `victim` planted at `link`. */
function plant(link: string): string {
  const victim = file('victim.txt', 'precious');
  fs.symlinkSync(victim, link);
  return victim;
}

function bnbCases(): Hostile[] {
  const weight = () => {
    const q = new Uint8Array(32).fill(0x77);
    return {
      w: tensor(q, [32, 1], 'u8'),
      'w.absmax': tensor(new Float32Array([1]), [1]),
      'w.quant_map': tensor(new Float32Array(16).map((_, i) => (i - 7.5) / 7.5), [16]),
    } as Record<string, ReturnType<typeof tensor>>;
  };
  const state = (json: string) => ({ ...weight(), 'w.quant_state.bitsandbytes__nf4': tensor(Buffer.from(json), [Buffer.byteLength(json)], 'u8') });
  const good = '{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [8, 8]}';
  // As loadModel reads a 4-bit weight: its parts, then the finite check of its scales.
  const read = (record: Record<string, ReturnType<typeof tensor>>) => async () => assertFiniteTensors(quantizedScales(new Map([['w', readBnbQuantized(record, 'w')]])), 'loadModel', '');
  return [
    { area: 'bitsandbytes', input: 'quant_state shape [-1, 8]', code: 'E_FORMAT', message: 'non-negative integers for shape', run: read(state('{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [-1, 8]}')) },
    { area: 'bitsandbytes', input: 'quant_state shape [2^40, 2^40] (absmax would need 2^74 blocks)', code: 'E_FORMAT', message: 'at most 2^53 elements', run: read(state('{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [1099511627776, 1099511627776]}')) },
    { area: 'bitsandbytes', input: 'blocksize 3', code: 'E_FORMAT', message: 'power of two in [32, 4096] for blocksize', run: read(state('{"quant_type": "nf4", "blocksize": 3, "dtype": "float32", "shape": [8, 8]}')) },
    { area: 'bitsandbytes', input: 'quant_state key "__proto__"', code: 'E_FORMAT', message: 'unknown entry "__proto__"', run: read(state('{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [8, 8], "__proto__": 1}')) },
    { area: 'bitsandbytes', input: 'quant_state that is not UTF-8', code: 'E_FORMAT', message: 'does not hold UTF-8 JSON', run: read({ ...weight(), 'w.quant_state.bitsandbytes__nf4': tensor(new Uint8Array([0x7b, 0xff, 0x7d]), [3], 'u8') }) },
    { area: 'bitsandbytes', input: 'absmax NaN', code: 'E_NONFINITE', message: 'w (absmax) holds 1 NaN or infinite value', run: read({ ...state(good), 'w.absmax': tensor(new Float32Array([NaN]), [1]) }) },
    { area: 'bitsandbytes', input: 'quant_map code 3e38 with block scale 2', code: 'E_FORMAT', message: 'overflow float32', run: read({ ...state(good), 'w.absmax': tensor(new Float32Array([2]), [1]), 'w.quant_map': tensor(new Float32Array(16).fill(3e38), [16]) }) },
  ];
}

describe('hostile inputs', () => {
  const rows: string[] = [];
  afterAll(() => {
    if (process.env.PEFT_HOSTILE_TABLE) console.log(rows.join('\n'));
  });
  it.each(CASES.map((c) => [`${c.area}: ${c.input}`, c] as const))('%s', async (_, c) => {
    const error = await c.run().then(() => undefined, (e: unknown) => e);
    if (!(error instanceof PeftError)) throw new Error(`not refused with a PeftError: ${error instanceof Error ? error.stack : String(error)}`);
    rows.push(`| ${c.area} | ${c.input} | \`${error.code}\` | ${error.message.replaceAll(tmp, '…').replace(/\|/g, '\\|').slice(0, 220)} |`);
    expect(error).toMatchObject({ code: c.code, message: expect.stringContaining(c.message) });
  });
});
