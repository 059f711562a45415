// Several adapters on one base: switching, deleting, disabling, mixed-adapter batches, merging.
import { getPeftModel, tensor, type Tensor } from '../../lib';
import { tinyLlama, TINY_IDS } from '../helpers/tiny-llama';

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}
const logitsOf = async (m: { forward(ids: number[][], o?: object): Promise<Tensor> }, o?: object) => (await m.forward(TINY_IDS, o)).toFloat32Array();

const A = { peft_type: 'LORA', r: 2, lora_alpha: 4, target_modules: ['q_proj', 'v_proj'], init_lora_weights: false } as const;
const B = { peft_type: 'LORA', r: 3, lora_alpha: 3, target_modules: ['o_proj', 'up_proj'], init_lora_weights: false } as const;

/** Logits of a fresh tiny model with only `config` as its adapter (same seeds). */
async function single(config: Record<string, unknown>, seed: number): Promise<Float32Array> {
  return logitsOf(getPeftModel(tinyLlama({ tie: false }).model, config, { seed }));
}

describe('several adapters', () => {
  it('each adapter, when active, gives the logits of a model holding it alone; disabled gives the base', async () => {
    const { model } = tinyLlama({ tie: false });
    const base = await logitsOf(model);
    const peft = getPeftModel(model, A, { seed: 1 });
    peft.addAdapter('b', B, { seed: 2 });
    expect(peft.activeAdapter).toBe('default');
    expect(maxAbsDiff(await logitsOf(peft), await single(A, 1))).toBe(0);
    peft.setAdapter('b');
    expect(maxAbsDiff(await logitsOf(peft), await single(B, 2))).toBe(0);
    expect(Object.keys(peft.trainableParameters()).every((n) => n.includes('.b.weight'))).toBe(true);
    expect(maxAbsDiff(await peft.withAdaptersDisabled(() => logitsOf(peft)), base)).toBe(0);
    peft.deleteAdapter('default');
    expect(peft.adapterNames()).toEqual(['b']);
    expect(maxAbsDiff(await logitsOf(peft), await single(B, 2))).toBe(0);
  });

  it('a mixed batch applies a different adapter to each row in one forward pass', async () => {
    const { model } = tinyLlama({ tie: false });
    const base = await logitsOf(model);
    const peft = getPeftModel(model, A, { seed: 1 });
    peft.addAdapter('b', B, { seed: 2 });
    const mixed = await logitsOf(peft, { adapterNames: ['b', '__base__'] });
    const rowSize = mixed.length / 2;
    expect(maxAbsDiff(mixed.subarray(0, rowSize), (await single(B, 2)).subarray(0, rowSize))).toBe(0);
    expect(maxAbsDiff(mixed.subarray(rowSize), base.subarray(rowSize))).toBe(0);
    await expect(peft.forward(TINY_IDS, { adapterNames: ['nope', 'b'] })).rejects.toMatchObject({ code: 'E_ARGUMENT' });
  });

  it('adapters of another PEFT type cannot be added to the same model', () => {
    const peft = getPeftModel(tinyLlama().model, A);
    expect(() => peft.addAdapter('ia3', { peft_type: 'IA3' })).toThrow(expect.objectContaining({ code: 'E_CONFIG' }));
  });
});

describe('merging', () => {
  for (const [label, config] of [
    ['LoRA', A],
    ['DoRA', { ...A, use_dora: true }],
    ['IA3', { peft_type: 'IA3', init_ia3_weights: false }],
  ] as const) {
    it(`${label}: merged logits equal unmerged ones, and unmerge restores the base weights`, async () => {
      const { model, weights } = tinyLlama({ tie: false, bias: true });
      const originals = new Map([...weights].map(([k, v]) => [k, v.toFloat32Array().slice()]));
      const peft = getPeftModel(model, config, { seed: 4 });
      const unmerged = await logitsOf(peft);
      peft.merge();
      expect(peft.mergedAdapters()).toEqual(['default']);
      expect(maxAbsDiff(await logitsOf(peft), unmerged)).toBeLessThan(1e-5);
      peft.unmerge();
      for (const name of model.parameterNames()) {
        expect([name, maxAbsDiff(model.parameter(name).toFloat32Array(), originals.get(name)!) < 1e-5]).toEqual([name, true]);
      }
      expect(maxAbsDiff(await logitsOf(peft), unmerged)).toBeLessThan(1e-5);
    });
  }

  it('mergeAndUnload gives a plain model with the merged weights', async () => {
    const { model } = tinyLlama({ tie: false });
    const peft = getPeftModel(model, A, { seed: 4 });
    const adapted = await logitsOf(peft);
    const plain = peft.mergeAndUnload();
    expect(maxAbsDiff(await logitsOf(plain), adapted)).toBeLessThan(1e-5);
    expect(plain.nativeModel.parameters().some((p) => p.name.includes('lora'))).toBe(false);
  });

  it('disabling adapters while merged runs the base, then merges back', async () => {
    const { model } = tinyLlama({ tie: false });
    const base = await logitsOf(model);
    const peft = getPeftModel(model, A, { seed: 4 });
    const adapted = await logitsOf(peft);
    peft.merge();
    expect(maxAbsDiff(await peft.withAdaptersDisabled(() => logitsOf(peft)), base)).toBeLessThan(1e-5);
    expect(peft.mergedAdapters()).toEqual(['default']);
    expect(maxAbsDiff(await logitsOf(peft), adapted)).toBeLessThan(1e-5);
  });

  it('merging into a bf16 base rounds to bf16, and unmerge restores it to bf16 rounding', async () => {
    const { model, config, weights } = tinyLlama({ tie: false });
    const bf16 = new Map([...weights].map(([k, v]) => [k, /proj\.weight$/.test(k) ? v.to('bf16') : v]));
    const { Model } = await import('../../lib/models/model');
    const m = new Model(config, bf16);
    const peft = getPeftModel(m, A, { seed: 4 });
    const before = m.parameter('model.layers.0.self_attn.q_proj.weight').toFloat32Array().slice();
    peft.merge();
    peft.unmerge();
    const after = m.parameter('model.layers.0.self_attn.q_proj.weight').toFloat32Array();
    // Two roundings to bf16 (8 significant bits): of W + s·B·A at merge, of W at unmerge.
    const params = peft.trainableParameters();
    const a = params['model.layers.0.self_attn.q_proj.lora_A.default.weight'].toFloat32Array();
    const b = params['model.layers.0.self_attn.q_proj.lora_B.default.weight'].toFloat32Array();
    for (let o = 0; o < 16; o++) {
      for (let i = 0; i < 8; i++) {
        const delta = 2 * (b[o * 2] * a[i] + b[o * 2 + 1] * a[8 + i]);
        const k = o * 8 + i;
        const bound = (Math.abs(before[k] + delta) + Math.abs(before[k])) * 2 ** -8 + 1e-7;
        expect(Math.abs(after[k] - before[k])).toBeLessThanOrEqual(bound);
      }
    }
    void tensor;
  });
});
