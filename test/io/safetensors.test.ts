import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { PeftError, readSafetensors, readSafetensorsModel, runtime, tensor, writeSafetensors, writeSafetensorsSync } from '../../lib';
import { randomArray, rng } from '../helpers/random';
import { f32Bytes, parseSafetensors, writeSafetensorsJs } from '../helpers/safetensors-js';
import { STORIES_HF_DIR } from '../helpers/models';

const HF_DIR = STORIES_HF_DIR;
const REAL_FILE = path.join(HF_DIR, 'model.safetensors');

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-st-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return e instanceof PeftError ? e.code : `not a PeftError: ${String(e)}`;
  }
  return 'no error';
}

describe('reading the real model (stories260K-hf)', () => {
  it('lists every tensor with the dtype and shape an independent parser finds', () => {
    const ours = readSafetensors(REAL_FILE);
    const js = parseSafetensors(REAL_FILE);
    expect(ours.keys().sort()).toEqual([...js.tensors.keys()].sort());
    expect(ours.keys()).toHaveLength(47); // embeddings, final norm and 9 tensors in each of 5 layers
    for (const [name, t] of js.tensors) {
      expect(ours.info(name)).toMatchObject({ name, dtype: t.dtype, shape: t.shape });
    }
    expect(ours.info('model.embed_tokens.weight').shape).toEqual([512, 64]);
    expect(ours.metadata).toEqual(js.header.__metadata__ ?? {});
  });

  it('gives the stored values, as views of the mapped file (no copy, no memory reported)', () => {
    const file = readSafetensorsModel(HF_DIR);
    const js = parseSafetensors(REAL_FILE);
    const before = runtime.externalMemory();
    const views = file.keys().map((name) => file.tensor(name));
    expect(runtime.externalMemory()).toBe(before);
    for (const [i, name] of file.keys().entries()) {
      const expected = new Float32Array(js.tensors.get(name)!.bytes.slice().buffer);
      expect(Buffer.from(views[i].toFloat32Array().buffer).equals(Buffer.from(expected.buffer))).toBe(true);
    }
  });

  it('names the available tensors when asked for a missing one', () => {
    const file = readSafetensors(REAL_FILE);
    expect(() => file.tensor('model.nope')).toThrow(/Expected a tensor name .* "model.nope"; it has: model.embed_tokens.weight/);
  });
});

describe('writing', () => {
  it('writes what an independent parser reads back exactly, for every dtype and odd shapes', async () => {
    const random = rng(5);
    const tensors = {
      'w.f32': tensor(randomArray(random, 3 * 7), [3, 7]),
      'w.bf16': tensor(randomArray(random, 5), [5], 'bf16'),
      'w.f16': tensor(randomArray(random, 2 * 3 * 2), [2, 3, 2], 'f16'),
      'ids.i32': tensor(new Int32Array([1, -2, 3])),
      'mask.u8': tensor(new Uint8Array([0, 1, 255, 7])),
      scalar: tensor(new Float32Array([4.5]), []),
      empty: tensor(new Float32Array(0), [0, 3]),
      'ünïcode/name': tensor([1, 2]),
    };
    const file = path.join(dir, 'out.safetensors');
    await writeSafetensors(file, tensors, { format: 'pt', note: 'quote " and \\ and\nnewline' });
    const js = parseSafetensors(file);
    expect(js.header.__metadata__).toEqual({ format: 'pt', note: 'quote " and \\ and\nnewline' });
    const dtypeName: Record<string, string> = { f32: 'F32', bf16: 'BF16', f16: 'F16', i32: 'I32', u8: 'U8' };
    for (const [name, t] of Object.entries(tensors)) {
      const got = js.tensors.get(name)!;
      expect([name, got.dtype, got.shape]).toEqual([name, dtypeName[t.dtype], t.shape]);
      expect(Buffer.from(got.bytes).equals(Buffer.from(t.toTypedArray().buffer))).toBe(true);
    }
    // The data section starts 8-byte aligned, as the format recommends.
    const n = Number(fs.readFileSync(file).readBigUInt64LE(0));
    expect((8 + n) % 8).toBe(0);
    // And our reader agrees.
    const back = readSafetensors(file);
    expect(Array.from(back.tensor('w.f32').toFloat32Array())).toEqual(Array.from(tensors['w.f32'].toFloat32Array()));
    expect(Array.from(back.tensor('ids.i32').toTypedArray())).toEqual([1, -2, 3]);
    expect(back.tensor('empty').shape).toEqual([0, 3]);
  });

  it('is atomic: a failed write leaves nothing, a rewrite replaces the whole file', () => {
    const missingDir = path.join(dir, 'no', 'such', 'dir', 'x.safetensors');
    expect(codeOf(() => writeSafetensorsSync(missingDir, { a: tensor([1]) }))).toBe('E_IO');
    const file = path.join(dir, 'replace.safetensors');
    writeSafetensorsSync(file, { big: tensor(new Float32Array(1000), [1000]) });
    writeSafetensorsSync(file, { small: tensor([1, 2, 3]) });
    expect(readSafetensors(file).keys()).toEqual(['small']);
    expect(fs.readdirSync(dir).filter((f) => f.includes('.tmp-') || f.includes('.part-'))).toEqual([]);
  });
});

describe('files written elsewhere', () => {
  it('reads a file whose data is not in header order, with metadata', () => {
    const file = path.join(dir, 'foreign.safetensors');
    writeSafetensorsJs(
      file,
      [
        ['a', { dtype: 'F32', shape: [2, 2], bytes: f32Bytes([1, 2, 3, 4]) }],
        ['b', { dtype: 'F32', shape: [3], bytes: f32Bytes([5, 6, 7]) }],
        ['c', { dtype: 'I64', shape: [1], bytes: new Uint8Array(8) }],
      ],
      { format: 'pt' },
      { reverseData: true },
    );
    const f = readSafetensors(file);
    expect(f.tensor('a').toArray()).toEqual([
      [1, 2],
      [3, 4],
    ]);
    expect(Array.from(f.tensor('b').toFloat32Array())).toEqual([5, 6, 7]);
    expect(f.info('c').dtype).toBe('I64');
    expect(codeOf(() => f.tensor('c'))).toBe('E_UNSUPPORTED');
  });

  it('reads sharded checkpoints through model.safetensors.index.json', () => {
    const shardDir = fs.mkdtempSync(path.join(dir, 'sharded-'));
    writeSafetensorsJs(path.join(shardDir, 'model-00001-of-00002.safetensors'), [['x', { dtype: 'F32', shape: [2], bytes: f32Bytes([1, 2]) }]]);
    writeSafetensorsJs(path.join(shardDir, 'model-00002-of-00002.safetensors'), [['y', { dtype: 'F32', shape: [1], bytes: f32Bytes([3]) }]]);
    const index = { metadata: { total_size: 12 }, weight_map: { x: 'model-00001-of-00002.safetensors', y: 'model-00002-of-00002.safetensors' } };
    fs.writeFileSync(path.join(shardDir, 'model.safetensors.index.json'), JSON.stringify(index));
    const model = readSafetensorsModel(shardDir);
    expect(model.keys()).toEqual(['x', 'y']);
    expect(Array.from(model.tensor('y').toFloat32Array())).toEqual([3]);
    expect(model.metadata).toEqual({ total_size: '12' });

    fs.writeFileSync(path.join(shardDir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { x: 'model-00002-of-00002.safetensors' } }));
    expect(() => readSafetensorsModel(shardDir)).toThrow(/tensor "x" is mapped to model-00002-of-00002.safetensors, which does not contain it/);
    fs.writeFileSync(path.join(shardDir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { x: 'missing.safetensors' } }));
    expect(codeOf(() => readSafetensorsModel(shardDir))).toBe('E_IO');
    fs.writeFileSync(path.join(shardDir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { x: '../escape.safetensors' } }));
    expect(codeOf(() => readSafetensorsModel(shardDir))).toBe('E_FORMAT');
    fs.writeFileSync(path.join(shardDir, 'model.safetensors.index.json'), '{ not json');
    expect(codeOf(() => readSafetensorsModel(shardDir))).toBe('E_FORMAT');
  });
});

describe('hostile files', () => {
  const good = (): Buffer => {
    const file = path.join(dir, 'good.safetensors');
    writeSafetensorsJs(file, [['t', { dtype: 'F32', shape: [2], bytes: f32Bytes([1, 2]) }]]);
    return fs.readFileSync(file);
  };
  const withHeader = (header: unknown, dataBytes = 8): Buffer => {
    const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    return Buffer.concat([len, json, Buffer.alloc(dataBytes)]);
  };
  const cases: [string, () => Buffer, string, RegExp][] = [
    ['an empty file', () => Buffer.alloc(0), 'E_FORMAT', /truncated while reading the header length/],
    ['a header length past the end', () => { const b = good(); b.writeBigUInt64LE(10n ** 6n); return b; }, 'E_FORMAT', /header length 1000000 exceeds the file size/],
    ['a header length of 2^63', () => { const b = good(); b.writeBigUInt64LE(2n ** 63n); return b; }, 'E_FORMAT', /exceeds the 100 MiB limit/],
    ['a truncated header', () => good().subarray(0, 20), 'E_FORMAT', /header length \d+ exceeds the file size/],
    ['broken JSON', () => withHeader('{"t": {"dtype": "F32", '), 'E_FORMAT', /invalid JSON at byte/],
    ['deeply nested JSON', () => withHeader('['.repeat(1000) + ']'.repeat(1000)), 'E_FORMAT', /nesting deeper than 64/],
    ['a non-object header', () => withHeader([1, 2]), 'E_FORMAT', /header is not a JSON object/],
    ['offsets past the data', () => withHeader({ t: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }), 'E_FORMAT', /outside the 8-byte data section/],
    ['offsets that disagree with the shape', () => withHeader({ t: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }), 'E_FORMAT', /needs 12 bytes but its data_offsets span 8/],
    ['reversed offsets', () => withHeader({ t: { dtype: 'F32', shape: [0], data_offsets: [8, 0] } }), 'E_FORMAT', /outside/],
    ['overlapping tensors', () => withHeader({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }), 'E_FORMAT', /overlap/],
    ['a negative dimension', () => withHeader({ t: { dtype: 'F32', shape: [-1], data_offsets: [0, 0] } }), 'E_FORMAT', /not a non-negative integer/],
    ['a huge shape', () => withHeader({ t: { dtype: 'F32', shape: [2 ** 40, 2 ** 40], data_offsets: [0, 0] } }), 'E_FORMAT', /oversized shape/],
    ['an unknown dtype', () => withHeader({ t: { dtype: 'F128', shape: [1], data_offsets: [0, 8] } }), 'E_FORMAT', /unknown dtype "F128"/],
    ['a missing data_offsets', () => withHeader({ t: { dtype: 'F32', shape: [1] } }), 'E_FORMAT', /data_offsets/],
    ['non-string metadata', () => withHeader({ __metadata__: { a: 1 } }), 'E_FORMAT', /__metadata__ value "a" is not a string/],
  ];
  for (const [name, make, code, message] of cases) {
    it(`refuses ${name}`, () => {
      const file = path.join(dir, 'hostile.safetensors');
      fs.writeFileSync(file, make());
      let error: unknown;
      try {
        readSafetensors(file);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(PeftError);
      expect((error as PeftError).code).toBe(code);
      expect((error as PeftError).message).toMatch(message);
    });
  }

  it('refuses missing files and directories with E_IO', () => {
    expect(codeOf(() => readSafetensors(path.join(dir, 'nope.safetensors')))).toBe('E_IO');
    expect(codeOf(() => readSafetensors(dir))).toBe('E_IO');
    expect(codeOf(() => readSafetensorsModel(path.join(dir, 'nope')))).toBe('E_IO');
  });

  it('survives thousands of mutations of the real file: every load succeeds or raises PeftError', () => {
    const original = fs.readFileSync(REAL_FILE);
    const headerEnd = 8 + Number(original.readBigUInt64LE(0));
    const random = rng(77);
    const file = path.join(dir, 'mutant.safetensors');
    const started = Date.now();
    let loaded = 0;
    let refused = 0;
    for (let i = 0; i < 3000 && Date.now() - started < 15000; i++) {
      let mutant: Buffer;
      const kind = i % 4;
      if (kind === 0) {
        mutant = Buffer.from(original.subarray(0, Math.floor(random() * original.length)));
      } else if (kind === 1) {
        mutant = Buffer.from(original);
        const at = Math.floor(random() * headerEnd);
        mutant[at] ^= 1 << Math.floor(random() * 8);
      } else if (kind === 2) {
        mutant = Buffer.from(original);
        mutant.writeBigUInt64LE(BigInt(Math.floor(random() * 2 ** 32)) * (random() < 0.5 ? 1n : 2n ** 31n), 0);
      } else {
        mutant = Buffer.from(original);
        const at = 8 + Math.floor(random() * (headerEnd - 8));
        const digits = String(Math.floor(random() * 1e12));
        mutant.write(digits, at, 'latin1');
      }
      fs.writeFileSync(file, mutant);
      try {
        const f = readSafetensors(file);
        for (const name of f.keys()) f.tensor(name).toFloat32Array();
        loaded++;
      } catch (e) {
        if (!(e instanceof PeftError)) throw new Error(`mutation ${i} (kind ${kind}) raised a non-PeftError: ${String(e)}`);
        refused++;
      }
    }
    expect(loaded + refused).toBeGreaterThan(500);
    expect(refused).toBeGreaterThan(0);
  });
});
