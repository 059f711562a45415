// exportGguf: a model (and a PeftModel with its adapter folded in) as a GGUF file of any llama.cpp
// file type. The reference is llama.cpp itself: llama_model_quantize (the llama-quantize tool, from
// the libllama node-llama-cpp ships) run on the f32 file; every tensor must get the same type and the
// same bytes, on stories260K (whose 64- and 172-wide rows exercise every fallback type) and on a
// model whose rows are whole K-quant blocks. Without node-llama-cpp's libraries those comparisons
// are skipped; the rest runs everywhere.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { exportGguf, getPeftModel, GGUF_FILE_TYPES, loadModel, PeftError, readGguf, type GgufFile, type GgufFileType, type Model } from '../../lib';
import { llamaCppToolsMissing, llamaQuantize } from '../helpers/llama-cpp-tools';
import { STORIES_GGUF, STORIES_HF_DIR } from '../helpers/models';
import { randomizeAdapter, writeQuantGguf } from '../helpers/quant-gguf';

const missing = llamaCppToolsMissing();
const withLlamaCpp = missing ? it.skip : it;
if (missing) it.skip(`compares with llama.cpp's quantizer (${missing})`, () => undefined);

let dir: string;
let wide: string;  // f32, hidden 256, FFN 512, 8 layers: K-quants apply to every matrix

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-export-gguf-'));
  wide = path.join(dir, 'wide-f32.gguf');
  writeQuantGguf(wide, () => undefined);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const FILE_TYPES = Object.keys(GGUF_FILE_TYPES) as GgufFileType[];
const IDS = [[1, 45, 300, 12, 77, 410, 9, 33, 128, 256, 7, 501]];

function storedBytes(file: GgufFile, name: string, type: string): Uint8Array {
  const t = ['F32', 'F16', 'BF16'].includes(type) ? file.tensor(name) : file.blocks(name);
  const raw = t.toTypedArray();
  return new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength);
}

/** Tensors whose type or bytes differ between two GGUF files of the same tensors, and metadata that differs. */
function differences(oursPath: string, refPath: string): string[] {
  const ours = readGguf(oursPath), ref = readGguf(refPath);
  const out: string[] = [];
  try {
    expect(ours.tensorInfos.map((t) => t.name).sort()).toEqual(ref.tensorInfos.map((t) => t.name).sort());
    for (const r of ref.tensorInfos) {
      const o = ours.tensorInfos.find((t) => t.name === r.name)!;
      if (o.type !== r.type) out.push(`${r.name}: ${o.type}, llama.cpp ${r.type}`);
      else if (Buffer.compare(Buffer.from(storedBytes(ours, o.name, o.type)), Buffer.from(storedBytes(ref, r.name, r.type))) !== 0) out.push(`${r.name} (${r.type}): bytes differ`);
    }
    for (const key of new Set([...Object.keys(ours.metadata), ...Object.keys(ref.metadata)])) {
      if (JSON.stringify(ours.metadata[key], (_, v) => (typeof v === 'bigint' ? String(v) : v)) !== JSON.stringify(ref.metadata[key], (_, v) => (typeof v === 'bigint' ? String(v) : v))) out.push(`metadata ${key}`);
    }
  } finally {
    ours.dispose();
    ref.dispose();
  }
  return out;
}

function logits(model: Model | { forward: Model['forward'] }): Promise<Float32Array> {
  return model.forward(IDS).then((t) => t.toFloat32Array());
}

function relativeDiff(a: Float32Array, b: Float32Array): number {
  let d = 0, m = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    m = Math.max(m, Math.abs(b[i]));
  }
  return d / m;
}

describe('exportGguf against llama-quantize', () => {
  for (const [label, source] of [['stories260K (fallback types)', () => STORIES_GGUF], ['a model of whole K-quant blocks', () => wide]] as const) {
    withLlamaCpp(`${label}: every file type gives llama.cpp's tensor types and bytes`, async () => {
      const model = await loadModel(source());
      try {
        for (const type of FILE_TYPES) {
          const ours = path.join(dir, `ours-${type}.gguf`), ref = path.join(dir, `ref-${type}.gguf`);
          await exportGguf(model, ours, { type });
          llamaQuantize(source(), ref, GGUF_FILE_TYPES[type]);
          expect([type, differences(ours, ref)]).toEqual([type, []]);
        }
      } finally {
        model.dispose();
      }
    }, 120_000);
  }

  withLlamaCpp('a LoRA folded in: the Q4_K_M file is llama-quantize of the merged f32 file, and runs as the adapted model', async () => {
    const peft = getPeftModel(await loadModel(wide), { peft_type: 'LORA', r: 8, lora_alpha: 16, target_modules: 'all-linear' }, { seed: 5 });
    randomizeAdapter(peft, 5);
    try {
      const adapted = await logits(peft);
      const merged = path.join(dir, 'merged-f32.gguf'), q = path.join(dir, 'merged-q4km.gguf'), ref = path.join(dir, 'merged-ref.gguf');
      await exportGguf(peft, merged, { type: 'F32' });
      await exportGguf(peft, q, { type: 'Q4_K_M' });
      expect(await logits(peft)).toEqual(adapted); // the PeftModel is as it was
      llamaQuantize(merged, ref, GGUF_FILE_TYPES.Q4_K_M);
      expect(differences(q, ref)).toEqual([]);
      const m32 = await loadModel(merged);
      expect(relativeDiff(await logits(m32), adapted)).toBeLessThan(1e-5);
      // A Q8_0 export runs as the adapted model: its quantization moves the logits by a small part of
      // what the adapter does (this random 8-layer model amplifies 4-bit errors too much for Q4_K_M to
      // show the same; its bytes are llama.cpp's, above).
      const q8 = path.join(dir, 'merged-q8.gguf');
      await exportGguf(peft, q8, { type: 'Q8_0' });
      const m8 = await loadModel(q8);
      const base = await loadModel(wide);
      const quantError = relativeDiff(await logits(m8), adapted);
      const adapterEffect = relativeDiff(await logits(base), adapted);
      expect(quantError).toBeLessThan(0.1 * adapterEffect);
      for (const m of [m32, m8, base]) m.dispose();
    } finally {
      peft.dispose();
    }
  }, 120_000);
});

describe('exportGguf', () => {
  it('from a quantized base: weights the adapter leaves alone and that keep their type are copied block for block', async () => {
    const src = path.join(dir, 'mixed.gguf');
    writeQuantGguf(src, (name) => (name.includes('ffn_') ? 'Q4_K' : name.includes('attn_v') ? 'Q6_K' : name === 'output.weight' ? 'Q6_K' : 'Q8_0'), undefined, 2);
    const peft = getPeftModel(await loadModel(src), { peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'] }, { seed: 1 });
    randomizeAdapter(peft, 1);
    const out = path.join(dir, 'mixed-out.gguf');
    try {
      await exportGguf(peft, out, { type: 'Q4_K_M' });
      const a = readGguf(src), b = readGguf(out);
      for (const name of ['blk.2.ffn_gate.weight', 'blk.2.ffn_up.weight', 'blk.6.ffn_up.weight', 'output.weight']) {
        const info = b.tensorInfos.find((t) => t.name === name)!;
        expect(info.type).toBe(a.tensorInfos.find((t) => t.name === name)!.type);
        expect(Buffer.compare(Buffer.from(storedBytes(a, name, info.type)), Buffer.from(storedBytes(b, name, info.type)))).toBe(0);
      }
      // q_proj changed (the adapter) and goes Q8_0 → Q4_K: requantized, so its bytes are new.
      expect(b.tensorInfos.find((t) => t.name === 'blk.2.attn_q.weight')!.type).toBe('Q4_K');
      a.dispose();
      b.dispose();
      // Requantizing the Q8_0 attention weights to Q4_K moves this random model's logits by ~0.2 of their range.
      const reloaded = await loadModel(out);
      expect(relativeDiff(await logits(reloaded), await logits(peft))).toBeLessThan(0.5);
      reloaded.dispose();
    } finally {
      peft.dispose();
    }
  });

  it('refuses a model without a GGUF source, an unknown file type, and leaves no file behind', async () => {
    const hf = await loadModel(STORIES_HF_DIR);
    const out = path.join(dir, 'refused.gguf');
    await expect(exportGguf(hf, out)).rejects.toMatchObject({ code: 'E_UNSUPPORTED', message: expect.stringMatching(/models loaded from a GGUF file/) });
    const g = await loadModel(STORIES_GGUF);
    await expect(exportGguf(g, out, { type: 'Q4_K_X' as GgufFileType })).rejects.toMatchObject({ code: 'E_ARGUMENT', message: expect.stringMatching(/Q4_K_X/) });
    await expect(exportGguf(g, '')).rejects.toBeInstanceOf(PeftError);
    expect(fs.existsSync(out)).toBe(false);
    expect(fs.readdirSync(dir).filter((f) => f.includes('refused'))).toEqual([]);
    hf.dispose();
    g.dispose();
  });
});
