/**
 * bitsandbytes' safetensors serialization of 4-bit weights: our writer's keys, dtypes, shapes and
 * JSON checked by an independent safetensors reader; a file built by hand from the published key
 * layout (not with our writer) loads and dequantizes to the reference; every malformed part is
 * E_FORMAT naming its key.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import {
  bnbQuantizedNames,
  bnbTensors,
  dequantize,
  PeftError,
  quantize,
  readBnbQuantized,
  readSafetensors,
  tensor,
  writeSafetensors,
  type Tensor,
} from '../../lib';
import { pythonFloatRepr } from '../../lib/quant/python-json';
import { rng } from '../helpers/random';
import { f32Bytes, parseSafetensors, writeSafetensorsJs, type JsTensor } from '../helpers/safetensors-js';
import {
  createDynamicMap,
  dequantize4Ref,
  dequantizeNestedRef,
  FP4_CODE,
  gaussianArray,
  NF4_CODE,
  quantize4Ref,
  quantizeNestedRef,
} from './bnb-reference';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-bnb-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function sameValues(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

describe('writing (bnbTensors + writeSafetensors)', () => {
  it('writes bitsandbytes keys, dtypes, shapes and quant_state JSON; reads back to the same values', async () => {
    const x = gaussianArray(rng(1), 48 * 100, 0.02);
    const q = quantize(tensor(x, [48, 100], 'bf16'), { quant_type: 'nf4', blocksize: 64, double_quant: true });
    const prefix = 'model.layers.0.mlp.down_proj.weight';
    const file = path.join(dir, 'written.safetensors');
    await writeSafetensors(file, bnbTensors(q, prefix));

    const { tensors } = parseSafetensors(file);
    const layout = [...tensors].map(([name, t]) => [name.slice(prefix.length), t.dtype, t.shape]);
    expect(layout).toEqual([
      ['', 'U8', [2400, 1]],
      ['.absmax', 'U8', [75]],
      ['.quant_map', 'F32', [16]],
      ['.nested_absmax', 'F32', [1]],
      ['.nested_quant_map', 'F32', [256]],
      ['.quant_state.bitsandbytes__nf4', 'U8', [expect.any(Number)]],
    ]);
    const json = Buffer.from(tensors.get(`${prefix}.quant_state.bitsandbytes__nf4`)!.bytes).toString('utf8');
    // Python's json.dumps of QuantState.as_dict(packed=True)'s non-tensor entries.
    expect(json).toBe(
      `{"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", "shape": [48, 100], "nested_blocksize": 256, ` +
        `"nested_dtype": "float32", "nested_offset": ${pythonFloatRepr(q.nested!.offset)}}`,
    );
    expect(JSON.parse(json).nested_offset).toBe(q.nested!.offset);

    const back = readBnbQuantized(readSafetensors(file), prefix);
    expect([back.quant_type, back.blocksize, back.dtype, back.shape, back.nested!.blocksize]).toEqual(['nf4', 64, 'bf16', [48, 100], 256]);
    expect(sameValues(dequantize(back).toFloat32Array(), dequantize(q).toFloat32Array())).toBe(true);
    expect(bnbQuantizedNames(readSafetensors(file))).toEqual([prefix]);
  });

  it('FP4 without double quantization: f32 absmax, no nested keys', async () => {
    const q = quantize(tensor(gaussianArray(rng(2), 999)), { quant_type: 'fp4', blocksize: 128 });
    const file = path.join(dir, 'fp4.safetensors');
    await writeSafetensors(file, bnbTensors(q));
    const { tensors } = parseSafetensors(file);
    expect([...tensors.keys()]).toEqual(['weight', 'weight.absmax', 'weight.quant_map', 'weight.quant_state.bitsandbytes__fp4']);
    expect([tensors.get('weight')!.shape, tensors.get('weight.absmax')!.dtype]).toEqual([[500, 1], 'F32']);
    expect(Buffer.from(tensors.get('weight.quant_state.bitsandbytes__fp4')!.bytes).toString()).toBe(
      '{"quant_type": "fp4", "blocksize": 128, "dtype": "float32", "shape": [999]}',
    );
    const back = readBnbQuantized(readSafetensors(file));
    expect(back.nested).toBeNull();
    expect(sameValues(dequantize(back).toFloat32Array(), dequantize(q).toFloat32Array())).toBe(true);
  });
});

/** The parts of a bitsandbytes 4-bit weight, built with the reference implementation. */
function handBuilt(type: 'nf4' | 'fp4', nested: boolean, rows: number, cols: number) {
  const n = rows * cols;
  const x = gaussianArray(rng(rows), n, 0.04);
  const ref = quantize4Ref(x, 64, type);
  const code = type === 'nf4' ? NF4_CODE : FP4_CODE;
  const entries: [string, JsTensor][] = [
    ['lm.weight', { dtype: 'U8', shape: [Math.ceil(n / 2), 1], bytes: ref.packed }],
  ];
  let scales = ref.absmax;
  let json = `{"quant_type": "${type}", "blocksize": 64, "dtype": "float16", "shape": [${rows}, ${cols}]`;
  if (nested) {
    const map = createDynamicMap();
    const r = quantizeNestedRef(ref.absmax, 256, map);
    scales = dequantizeNestedRef(r.codes, r.nestedAbsmax, map, r.offset, 256);
    entries.push(['lm.weight.absmax', { dtype: 'U8', shape: [ref.absmax.length], bytes: r.codes }]);
    entries.push(['lm.weight.quant_map', { dtype: 'F32', shape: [16], bytes: f32Bytes(code) }]);
    entries.push(['lm.weight.nested_absmax', { dtype: 'F32', shape: [r.nestedAbsmax.length], bytes: new Uint8Array(r.nestedAbsmax.buffer) }]);
    entries.push(['lm.weight.nested_quant_map', { dtype: 'F32', shape: [256], bytes: f32Bytes(map) }]);
    json += `, "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": ${r.offset}`;
  } else {
    entries.push(['lm.weight.absmax', { dtype: 'F32', shape: [ref.absmax.length], bytes: new Uint8Array(ref.absmax.buffer) }]);
    entries.push(['lm.weight.quant_map', { dtype: 'F32', shape: [16], bytes: f32Bytes(code) }]);
  }
  json += '}';
  entries.push([`lm.weight.quant_state.bitsandbytes__${type}`, { dtype: 'U8', shape: [Buffer.byteLength(json)], bytes: new Uint8Array(Buffer.from(json)) }]);
  entries.push(['lm.bias', { dtype: 'F32', shape: [rows], bytes: f32Bytes(new Array(rows).fill(0.5)) }]);
  return { entries, expected: dequantize4Ref(ref.packed, scales, code, 64, n) };
}

describe('reading a hand-built bitsandbytes file', () => {
  for (const [type, nested] of [['nf4', true], ['fp4', false], ['nf4', false]] as const) {
    it(`${type}${nested ? ' with double quantization (300 blocks: two nested blocks)' : ''}`, () => {
      const { entries, expected } = handBuilt(type, nested, 160, 120);
      const file = path.join(dir, `hand-${type}-${nested}.safetensors`);
      writeSafetensorsJs(file, entries, { format: 'pt' });
      const source = readSafetensors(file);
      expect(bnbQuantizedNames(source)).toEqual(['lm.weight']);
      const q = readBnbQuantized(source, 'lm.weight');
      expect([q.quant_type, q.dtype, q.shape, q.double_quant]).toEqual([type, 'f16', [160, 120], nested]);
      expect(q.data.shape).toEqual([9600, 1]);
      expect(sameValues(dequantize(q).toFloat32Array(), expected)).toBe(true);
      expect(dequantize(q, { dtype: q.dtype }).dtype).toBe('f16');
    });
  }
});

describe('malformed files are E_FORMAT naming the key', () => {
  function loadWith(edit: (entries: Map<string, JsTensor>) => void): PeftError {
    const { entries } = handBuilt('nf4', true, 40, 64);
    const map = new Map(entries);
    edit(map);
    const file = path.join(dir, `bad-${Math.random().toString(36).slice(2)}.safetensors`);
    writeSafetensorsJs(file, [...map]);
    try {
      readBnbQuantized(readSafetensors(file), 'lm.weight');
    } catch (err) {
      return err as PeftError;
    }
    throw new Error('no error');
  }
  const json = (text: string): JsTensor => ({ dtype: 'U8', shape: [Buffer.byteLength(text)], bytes: new Uint8Array(Buffer.from(text)) });
  const stateKey = 'lm.weight.quant_state.bitsandbytes__nf4';
  const goodJson = (extra = '') =>
    `{"quant_type": "nf4", "blocksize": 64, "dtype": "float16", "shape": [40, 64], "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0.01${extra}}`;

  const cases: [string, (m: Map<string, JsTensor>) => void, string][] = [
    ['no quant_state', (m) => m.delete(stateKey), stateKey],
    ['bad JSON', (m) => m.set(stateKey, json('{"quant_type": "nf4", ')), stateKey],
    ['invalid UTF-8', (m) => m.set(stateKey, { dtype: 'U8', shape: [2], bytes: new Uint8Array([0xff, 0xfe]) }), stateKey],
    ['a JSON array', (m) => m.set(stateKey, json('[1, 2]')), stateKey],
    ['quant_type not matching the key', (m) => m.set(stateKey, json(goodJson().replace('"nf4"', '"fp4"'))), stateKey],
    ['blocksize 48', (m) => m.set(stateKey, json(goodJson().replace('"blocksize": 64', '"blocksize": 48'))), stateKey],
    ['unknown dtype', (m) => m.set(stateKey, json(goodJson().replace('float16', 'int8'))), stateKey],
    ['bad shape', (m) => m.set(stateKey, json(goodJson().replace('[40, 64]', '[40, -64]'))), stateKey],
    ['unknown entry', (m) => m.set(stateKey, json(goodJson(', "extra": 1'))), stateKey],
    ['nested_offset missing', (m) => m.set(stateKey, json(goodJson().replace(', "nested_offset": 0.01', ''))), stateKey],
    ['nested_absmax missing', (m) => m.delete('lm.weight.nested_absmax'), stateKey],
    ['shape disagreeing with the data', (m) => m.set(stateKey, json(goodJson().replace('[40, 64]', '[41, 64]'))), 'lm.weight'],
    ['weight missing', (m) => m.delete('lm.weight'), 'lm.weight'],
    ['weight in bf16 storage', (m) => m.set('lm.weight', { dtype: 'BF16', shape: [640, 1], bytes: new Uint8Array(1280) }), 'lm.weight'],
    ['absmax of the wrong size', (m) => m.set('lm.weight.absmax', { dtype: 'U8', shape: [39], bytes: new Uint8Array(39) }), 'lm.weight.absmax'],
    ['absmax in f32 while nested', (m) => m.set('lm.weight.absmax', { dtype: 'F32', shape: [40], bytes: new Uint8Array(160) }), 'lm.weight.absmax'],
    ['quant_map of 15 values', (m) => m.set('lm.weight.quant_map', { dtype: 'F32', shape: [15], bytes: new Uint8Array(60) }), 'lm.weight.quant_map'],
    ['quant_map holding NaN', (m) => m.set('lm.weight.quant_map', { dtype: 'F32', shape: [16], bytes: f32Bytes(new Array(16).fill(NaN)) }), 'lm.weight.quant_map'],
    ['nested_quant_map of 255', (m) => m.set('lm.weight.nested_quant_map', { dtype: 'F32', shape: [255], bytes: new Uint8Array(1020) }), 'lm.weight.nested_quant_map'],
    ['nested_absmax of 2', (m) => m.set('lm.weight.nested_absmax', { dtype: 'F32', shape: [2], bytes: new Uint8Array(8) }), 'lm.weight.nested_absmax'],
  ];
  for (const [what, edit, key] of cases) {
    it(what, () => {
      const err = loadWith(edit);
      expect(err).toBeInstanceOf(PeftError);
      expect([err.code, err.message.includes(`${key}:`)]).toEqual(['E_FORMAT', true]);
    });
  }

  it('a plain record of tensors works as a source too', () => {
    const q = quantize(tensor(gaussianArray(rng(4), 256)), { quant_type: 'fp4' });
    const record: Record<string, Tensor> = bnbTensors(q, 'w');
    expect(sameValues(dequantize(readBnbQuantized(record, 'w')).toFloat32Array(), dequantize(q).toFloat32Array())).toBe(true);
    delete record['w.quant_map'];
    expect(() => readBnbQuantized(record, 'w')).toThrow('w.quant_map: missing');
  });
});

describe("Python's float repr for nested_offset", () => {
  it('matches repr() on documented cases', () => {
    const cases: [number, string][] = [
      [0.1, '0.1'],
      [1, '1.0'],
      [123, '123.0'],
      [0.0001, '0.0001'],
      [0.00001, '1e-05'],
      [-2.5e-7, '-2.5e-07'],
      [12345.678, '12345.678'],
      [1e16, '1e+16'],
      [1.5e16, '1.5e+16'],
      [1234567890123456, '1234567890123456.0'],
      [0.012345678918063641, '0.012345678918063641'],
    ];
    for (const [x, text] of cases) expect([x, pythonFloatRepr(x)]).toEqual([x, text]);
  });
});
