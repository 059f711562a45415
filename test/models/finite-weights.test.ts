// NaN and infinity in weights: the native scan (ops.findNonFinite) against a reference written here
// from the IEEE formats (every dtype, sizes across its 65536-element chunks), and loadModel refusing a
// Hugging Face directory or a GGUF file whose weights hold NaN / Inf, naming the tensor and position.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { bnbTensors, loadModel, ops, quantize, readSafetensors, tensor, writeSafetensors, type Tensor } from '../../lib';
import { f16ToNumber, parseGguf } from '../helpers/gguf';
import { STORIES_GGUF, STORIES_HF_DIR } from '../helpers/models';
import { rng } from '../helpers/random';
import { parseSafetensors, writeSafetensorsJs, type JsTensor } from '../helpers/safetensors-js';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));
function tmpDir(prefix: string): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  dirs.push(d);
  return d;
}

/** bfloat16 bits to a number: the top half of a float32. */
const wide = new Uint32Array(1);
const asFloat = new Float32Array(wide.buffer);
function bf16ToNumber(h: number): number {
  wide[0] = h << 16;
  return asFloat[0];
}

describe('ops.findNonFinite', () => {
  const sizes = [0, 1, 7, 65536, 2 * 65536 + 3]; // across the scan's 65536-element chunks
  const reference = (values: number[]) => {
    const bad = values.map((v, i) => (Number.isFinite(v) ? -1 : i)).filter((i) => i >= 0);
    return { count: bad.length, first: bad.length ? bad[0] : -1, value: bad.length ? values[bad[0]] : NaN };
  };

  it.each(['f32', 'bf16', 'f16'] as const)('counts NaN and infinities and finds the first, as the IEEE definition says (%s)', (dtype) => {
    const random = rng(dtype.length + 11);
    for (const n of sizes) {
      for (const bad of [0, 2e-5, 0.3]) {
        // Random bit patterns: those whose exponent is all ones are made finite (one exponent bit
        // cleared), then a fraction `bad` gets the all-ones exponent (NaN payloads and ±Inf).
        const wide = dtype === 'f32';
        const exponent = wide ? 0x7f800000 : dtype === 'bf16' ? 0x7f80 : 0x7c00;
        const lowExponentBit = wide ? 0x00800000 : dtype === 'bf16' ? 0x0080 : 0x0400;
        const bits = wide ? new Uint32Array(n) : new Uint16Array(n);
        for (let i = 0; i < n; i++) {
          let u = Math.floor(random() * (wide ? 2 ** 32 : 65536));
          if ((u & exponent) === exponent) u &= ~lowExponentBit;
          if (random() < bad) u |= exponent;
          bits[i] = u >>> 0;
        }
        const values = wide ? Array.from(new Float32Array(bits.buffer)) : Array.from(bits, dtype === 'bf16' ? bf16ToNumber : f16ToNumber);
        const t = wide ? tensor(new Float32Array(bits.buffer), [n]) : tensor(bits as Uint16Array, [n], dtype);
        const [r] = ops.findNonFinite([t]);
        const want = reference(values);
        expect({ n, bad, count: r.count, first: r.first }).toEqual({ n, bad, count: want.count, first: want.first });
        expect(Object.is(r.value, want.value) || (Number.isNaN(r.value) && Number.isNaN(want.value))).toBe(true);
      }
    }
  });

  it('reports the sign of an infinity, several tensors at once, and nothing for integer tensors', async () => {
    const r = await ops.findNonFiniteAsync([tensor([1, -Infinity, NaN]), tensor([Infinity]), tensor([1, 2], undefined, 'i32'), tensor([3, 4])]);
    expect(r).toEqual([
      { count: 2, first: 1, value: -Infinity },
      { count: 1, first: 0, value: Infinity },
      { count: 0, first: -1, value: NaN },
      { count: 0, first: -1, value: NaN },
    ]);
  });
});

/** A copy of stories260K-hf whose safetensors have `edit` applied to the tensors (as f32 values). */
function storiesCopy(edit: (name: string, values: Float32Array) => void, dtype: 'F32' | 'BF16' = 'F32'): string {
  const dir = tmpDir('nan-model-');
  for (const f of fs.readdirSync(STORIES_HF_DIR)) if (f !== 'model.safetensors') fs.copyFileSync(path.join(STORIES_HF_DIR, f), path.join(dir, f));
  const { tensors } = parseSafetensors(path.join(STORIES_HF_DIR, 'model.safetensors'));
  const entries: [string, JsTensor][] = [...tensors].map(([name, t]) => {
    const values = new Float32Array(t.bytes.slice().buffer);
    edit(name, values);
    if (dtype === 'F32') return [name, { ...t, bytes: new Uint8Array(values.buffer) }];
    // bf16: the top half of each f32 (truncation keeps NaN and Inf as they are).
    const half = new Uint16Array(values.length);
    const u32 = new Uint32Array(values.buffer);
    for (let i = 0; i < u32.length; i++) half[i] = u32[i] >>> 16;
    return [name, { dtype: 'BF16', shape: t.shape, bytes: new Uint8Array(half.buffer) }];
  });
  writeSafetensorsJs(path.join(dir, 'model.safetensors'), entries);
  return dir;
}

describe('loadModel refuses weights with NaN or infinity', () => {
  const DOWN = 'model.layers.1.mlp.down_proj.weight'; // [64, 172]
  const UP = 'model.layers.0.mlp.up_proj.weight'; // [172, 64]

  it('names the tensor, the count and the position of the first, and the other tensors; checkFinite: false loads it', async () => {
    const dir = storiesCopy((name, v) => {
      if (name === DOWN) {
        v[5 * 172 + 17] = NaN;
        v[9 * 172 + 3] = Infinity;
      }
      if (name === UP) v[100] = -Infinity;
    });
    const err = await loadModel(dir).catch((e) => e);
    expect(err).toMatchObject({ code: 'E_NONFINITE' });
    // The first tensor in the file's order: layer 0's up_proj comes before layer 1's down_proj.
    expect(err.message).toBe(
      `loadModel(${dir}): ${UP} holds 1 NaN or infinite value of ${172 * 64} (the first, -Infinity, at [1, 36]); 1 other tensor too (${DOWN}). ` +
        'The file is damaged or was saved from a diverged run; loadModel(path, { checkFinite: false }) loads it anyway.',
    );
    const model = await loadModel(dir, { checkFinite: false });
    const logits = (await model.forward([[1, 2, 3]])).toFloat32Array();
    expect(logits.some((v) => !Number.isFinite(v))).toBe(true); // what the check spares a user from
    await expect(loadModel(dir, { checkFinite: 'no' as unknown as boolean })).rejects.toMatchObject({ code: 'E_ARGUMENT' });
  });

  it('finds them in a bf16 file and with dtype bf16', async () => {
    const dir = storiesCopy((name, v) => {
      if (name === DOWN) v[2 * 172 + 1] = NaN;
    }, 'BF16');
    await expect(loadModel(dir)).rejects.toMatchObject({ code: 'E_NONFINITE', message: expect.stringContaining(`${DOWN} holds 1 NaN or infinite value of ${64 * 172} (the first, NaN, at [2, 1])`) });
    await expect(loadModel(dir, { dtype: 'bf16' })).rejects.toMatchObject({ code: 'E_NONFINITE' });
    expect((await loadModel(STORIES_HF_DIR, { dtype: 'bf16' })).config.numLayers).toBeGreaterThan(0); // a clean file loads
  });

  it('checks before quantizing on load, and checks the scales of a stored 4-bit weight', async () => {
    const dir = storiesCopy((name, v) => {
      if (name === UP) v[64 * 3] = NaN;
    });
    // Named as a weight (not the quantizer's complaint about its input).
    await expect(loadModel(dir, { quantization: { load_in_4bit: true } })).rejects.toMatchObject({ code: 'E_NONFINITE', message: expect.stringContaining(`${UP} holds 1 NaN or infinite value`) });
    // A bitsandbytes checkpoint whose up_proj scales hold an infinity.
    const clean = readSafetensors(path.join(STORIES_HF_DIR, 'model.safetensors'));
    const tensors: Record<string, Tensor> = {};
    for (const k of clean.keys()) if (k !== UP) tensors[k] = clean.tensor(k);
    const parts = bnbTensors(quantize(clean.tensor(UP), { quant_type: 'nf4', blocksize: 64, double_quant: false }), UP);
    const absmax = parts[`${UP}.absmax`].toFloat32Array();
    absmax[5] = Infinity;
    parts[`${UP}.absmax`] = tensor(absmax, [absmax.length]);
    const qdir = tmpDir('nan-bnb-');
    for (const f of fs.readdirSync(STORIES_HF_DIR)) if (f !== 'model.safetensors') fs.copyFileSync(path.join(STORIES_HF_DIR, f), path.join(qdir, f));
    await writeSafetensors(path.join(qdir, 'model.safetensors'), { ...tensors, ...parts });
    await expect(loadModel(qdir)).rejects.toMatchObject({ code: 'E_NONFINITE', message: expect.stringContaining(`${UP} (absmax) holds 1 NaN or infinite value of ${absmax.length} (the first, Infinity, at [5])`) });
  });

  it('finds them in a GGUF file (named by the Hugging Face name)', async () => {
    const bytes = new Uint8Array(fs.readFileSync(STORIES_GGUF));
    const g = parseGguf(bytes);
    const t = g.tensors.find((x) => x.name === 'blk.0.ffn_up.weight')!;
    expect(t.type).toBe(0); // F32
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    view.setFloat32(g.dataStart + t.offset + 4 * (7 * 64 + 9), Infinity, true);
    const file = path.join(tmpDir('nan-gguf-'), 'nan.gguf');
    fs.writeFileSync(file, bytes);
    await expect(loadModel(file)).rejects.toMatchObject({ code: 'E_NONFINITE', message: expect.stringContaining(`${UP} holds 1 NaN or infinite value of ${172 * 64} (the first, Infinity, at [7, 9])`) });
  });
});
