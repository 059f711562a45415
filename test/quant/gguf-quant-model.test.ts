// A GGUF whose linear layers are K-quants (and Q5_0 / Q6_K / Q8_0) loads as a frozen quantized
// base: the blocks stay as the file stores them, the logits and LoRA / DoRA / IA3 gradients equal
// those of the same model with the weights dequantized to f32, and merging requantizes with
// llama.cpp's quantizer.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { dequantizeGgml, getPeftModel, loadModel, quantizeGgml, readGguf, tensor, type Model, type PeftConfig } from '../../lib';
import { parseGguf } from '../helpers/gguf';
import { randomizeAdapter, writeQuantGguf, type TypeOf } from '../helpers/quant-gguf';

// The mix of a Q4_K_M file: Q4_K, with Q6_K for attn_v and the head, Q5_0 where a tensor's rows
// are not whole 256-blocks in real models (here: ffn_down, to cover a 32-block type too).
const MIX: TypeOf = (name) =>
  name === 'output.weight' ? 'Q6_K' : name.includes('attn_v') ? 'Q6_K' : name.includes('ffn_down') ? 'Q5_0' : name.includes('attn_output') ? 'Q8_0' : 'Q4_K';

let dir: string;
let file: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-ggml-model-'));
  file = path.join(dir, 'q4km.gguf');
  writeQuantGguf(file, MIX);
});

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const IDS = [
  [1, 45, 300, 12, 77, 410, 9, 33, 128, 256, 7, 501],
  [1, 98, 99, 100, 3, 20, 30, 40, 50, 60, 70, 80],
];

function maxAbs(a: Float32Array): number {
  return a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

describe('a GGUF with block-quantized linear layers', () => {
  let quantized: Model;
  let dense: Model;

  beforeAll(async () => {
    quantized = await loadModel(file);
    dense = await loadModel(file, { keepQuantized: false });
  });

  it('keeps every linear weight in the type the file stores, sharing the file bytes (q/k rows reordered)', () => {
    const g = readGguf(file);
    const held = quantized.ggmlWeights();
    expect(held.size).toBe(8 * 7 + 1); // 7 linears per block and the head; the embeddings are dense
    expect(held.get('lm_head.weight')!.type).toBe('Q6_K');
    expect(held.get('model.layers.3.self_attn.v_proj.weight')!.type).toBe('Q6_K');
    expect(held.get('model.layers.3.mlp.down_proj.weight')!.type).toBe('Q5_0');
    expect(held.get('model.layers.3.self_attn.q_proj.weight')!.type).toBe('Q4_K');
    // v_proj is not permuted: the very bytes of the file.
    const v = held.get('model.layers.5.self_attn.v_proj.weight')!;
    expect(Array.from(v.data.toTypedArray() as Uint8Array)).toEqual(Array.from(g.blocks('blk.5.attn_v.weight').toTypedArray() as Uint8Array));
    expect(quantized.ggmlWeight('model.embed_tokens.weight')).toBeUndefined();
    expect(quantized.quantizedWeight('model.layers.0.self_attn.q_proj.weight')).toBeUndefined(); // not a bitsandbytes weight
    const info = quantized.info();
    expect(info.byDtype.Q4_K.bytes).toBe((info.byDtype.Q4_K.parameters / 256) * 144);
    expect(info.byDtype.Q6_K.bytes).toBe((info.byDtype.Q6_K.parameters / 256) * 210);
    expect(info.bytes).toBeLessThan(dense.info().bytes / 3);
    // parameter() of a block weight is its dequantized f32 value, equal to the dense model's.
    const q = quantized.parameter('model.layers.2.self_attn.k_proj.weight');
    expect(maxDiff(q.toFloat32Array(), dense.parameter('model.layers.2.self_attn.k_proj.weight').toFloat32Array())).toBe(0);
    g.dispose();
  });

  it('gives the logits of the dequantized f32 model', async () => {
    const lq = (await quantized.forward(IDS)).toFloat32Array();
    const ld = (await dense.forward(IDS)).toFloat32Array();
    expect(maxDiff(lq, ld)).toBeLessThan(2e-5 * maxAbs(ld));
  });

  const METHODS: [string, PeftConfig][] = [
    ['LoRA on all linear layers', { peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: 'all-linear' }],
    ['DoRA on q, v', { peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'], use_dora: true }],
    ['IA3', { peft_type: 'IA3', target_modules: ['k_proj', 'v_proj', 'down_proj'], feedforward_modules: ['down_proj'] }],
  ];

  it.each(METHODS)('%s: loss and every gradient equal the dense model on the dequantized weights', async (_, config) => {
    const pq = getPeftModel(await loadModel(file), config, { seed: 7 });
    const pd = getPeftModel(await loadModel(file, { keepQuantized: false }), config, { seed: 7 });
    try {
      // LoRA's B starts at 0 and IA3 at 1: random values make every gradient involve W.
      randomizeAdapter(pq, 11);
      randomizeAdapter(pd, 11);
      const rq = await pq.loss(IDS);
      const rd = await pd.loss(IDS);
      expect(Math.abs(rq.loss - rd.loss)).toBeLessThan(1e-5 * Math.abs(rd.loss));
      const names = Object.keys(rd.grads);
      expect(Object.keys(rq.grads).sort()).toEqual(names.sort());
      for (const n of names) {
        const gd = rd.grads[n].toFloat32Array();
        expect(maxDiff(rq.grads[n].toFloat32Array(), gd)).toBeLessThan(1e-4 * maxAbs(gd) + 1e-12);
      }
    } finally {
      pq.dispose();
      pd.dispose();
    }
  });

  it('merges a LoRA into a Q4_K weight by requantizing W + ΔW with llama.cpp\'s quantizer, and unmerges', async () => {
    const name = 'model.layers.1.self_attn.o_proj.weight';
    const qname = 'model.layers.1.self_attn.q_proj.weight';
    const base = await loadModel(file);
    const peft = getPeftModel(base, { peft_type: 'LORA', r: 4, lora_alpha: 4, target_modules: ['q_proj'] }, { seed: 3 });
    randomizeAdapter(peft, 3);
    try {
      const before = base.ggmlWeight(qname)!;
      const w = dequantizeGgml(before).toFloat32Array();
      const params = Object.entries(peft.trainableParameters());
      const a = params.find(([n]) => /layers\.1\.self_attn\.q_proj\.lora_A/.test(n))![1].toFloat32Array();
      const b = params.find(([n]) => /layers\.1\.self_attn\.q_proj\.lora_B/.test(n))![1].toFloat32Array();
      const [out, inn] = before.shape;
      const merged = new Float32Array(out * inn);
      for (let o = 0; o < out; o++) {
        for (let i = 0; i < inn; i++) {
          let s = 0;
          for (let k = 0; k < 4; k++) s += b[o * 4 + k] * a[k * inn + i];
          merged[o * inn + i] = Math.fround(w[o * inn + i] + Math.fround(s));
        }
      }
      peft.merge(undefined, { requantize: true, warn: () => undefined });
      const after = base.ggmlWeight(qname)!;
      expect(after.type).toBe('Q4_K');
      const want = quantizeGgml(tensor(merged, [out, inn]), 'Q4_K');
      // Each block follows from its 256 merged values; a rare last-bit difference in a sum may flip one block.
      const got = after.data.toTypedArray() as Uint8Array, exp = want.data.toTypedArray() as Uint8Array;
      let differing = 0;
      for (let blk = 0; blk < got.length / 144; blk++) if (got.subarray(blk * 144, (blk + 1) * 144).some((v, i) => v !== exp[blk * 144 + i])) differing++;
      expect(differing).toBeLessThanOrEqual(1);
      expect(base.ggmlWeight(name)!.type).toBe('Q8_0'); // untouched
      peft.unmerge({ warn: () => undefined });
      expect(base.ggmlWeight(qname)!.type).toBe('Q4_K');
    } finally {
      peft.dispose();
    }
  });
});

describe('a damaged quantized GGUF', () => {
  /** A copy of the test file with `patch` applied to tensor `name`'s bytes (offset within the tensor). */
  function patched(name: string, patch: (bytes: Uint8Array, at: number) => void, suffix: string): string {
    const bytes = new Uint8Array(fs.readFileSync(file));
    const layout = parseGguf(bytes);
    const t = layout.tensors.find((x) => x.name === name)!;
    patch(bytes, layout.dataStart + Number(t.offset));
    const out = path.join(dir, `damaged-${suffix}.gguf`);
    fs.writeFileSync(out, bytes);
    return out;
  }

  it('a NaN block scale in a kept linear weight is E_NONFINITE naming the tensor; checkFinite: false loads it', async () => {
    // blk.2.attn_k.weight is Q4_K: block 3's d (bytes 0-1 of the block) becomes f16 NaN 0x7e00.
    const bad = patched('blk.2.attn_k.weight', (b, at) => {
      b[at + 3 * 144] = 0x00;
      b[at + 3 * 144 + 1] = 0x7e;
    }, 'nan');
    await expect(loadModel(bad)).rejects.toMatchObject({ code: 'E_NONFINITE', message: expect.stringMatching(/tensor "blk\.2\.attn_k\.weight" has a NaN or infinite Q4_K block scale \(block 3 of/) });
    const loaded = await loadModel(bad, { checkFinite: false });
    expect(loaded.ggmlWeight('model.layers.2.self_attn.k_proj.weight')!.type).toBe('Q4_K');
    loaded.dispose();
  });

  it('a file cut inside the blocks is E_FORMAT; a type without kernels is E_UNSUPPORTED naming the tensor', async () => {
    const cut = path.join(dir, 'cut.gguf');
    const bytes = fs.readFileSync(file);
    fs.writeFileSync(cut, bytes.subarray(0, bytes.length - 1000));
    await expect(loadModel(cut)).rejects.toMatchObject({ code: 'E_FORMAT', message: expect.stringMatching(/output\.weight|past the end|truncated/) });
    // IQ3_S has Q3_K's block (256 elements in 110 bytes), so relabelling a Q3_K tensor keeps every size
    // right: the reader lists the tensor, and loadModel refuses the type it has no kernels for.
    const q3 = path.join(dir, 'q3.gguf');
    writeQuantGguf(q3, (name) => (name === 'blk.1.ffn_gate.weight' ? 'Q3_K' : 'Q8_0'), undefined, 9);
    const raw = new Uint8Array(fs.readFileSync(q3));
    const name = Buffer.from('blk.1.ffn_gate.weight');
    const at = Buffer.from(raw).indexOf(name) + name.length; // then u32 n_dims, u64 ne[n_dims], u32 type
    const typeAt = at + 4 + 8 * new DataView(raw.buffer).getUint32(at, true);
    expect(new DataView(raw.buffer).getUint32(typeAt, true)).toBe(11); // Q3_K
    new DataView(raw.buffer).setUint32(typeAt, 21, true); // IQ3_S
    const relabelled = path.join(dir, 'iq3s.gguf');
    fs.writeFileSync(relabelled, raw);
    await expect(loadModel(relabelled)).rejects.toMatchObject({ code: 'E_UNSUPPORTED', message: expect.stringMatching(/"blk\.1\.ffn_gate\.weight".*IQ3_S/) });
  });
});
