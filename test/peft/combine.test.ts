// Weighted combination of LoRA adapters (PEFT's add_weighted_adapter): every combination type
// against a reference written here from the published algorithms and PEFT's documented formulas
// (linear: A = Σ ±√|wᵢsᵢ|·Aᵢ, B = Σ √|wᵢsᵢ|·Bᵢ; cat: exact Σ wᵢsᵢBᵢAᵢ; svd: best rank-k
// approximation of Σ wᵢsᵢBᵢAᵢ; TIES: trim, elect sign, disjoint mean; DARE: drop and rescale).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { getPeftModel, loadAdapter, Tensor, tensor, type PeftModel } from '../../lib';
import { Model } from '../../lib/models/model';
import { SeededRandom } from '../../lib/peft/random';
import { tinyLlama, TINY_IDS } from '../helpers/tiny-llama';

const LAYERS = [0, 1];
const Q = (l: number) => `model.layers.${l}.self_attn.q_proj`;
const V = (l: number) => `model.layers.${l}.self_attn.v_proj`;
const O = (l: number) => `model.layers.${l}.self_attn.o_proj`;
const UP = (l: number) => `model.layers.${l}.mlp.up_proj`;
const SHAPES: Record<string, [number, number]> = { q_proj: [16, 8], v_proj: [8, 8], o_proj: [8, 16], up_proj: [12, 8] };
const shapeOf = (module: string) => SHAPES[module.slice(module.lastIndexOf('.') + 1)];

// Scalings: alpha / r (or alpha / √r with rslora), computed here from the configs.
const CFG_A = { peft_type: 'LORA', r: 2, lora_alpha: 4, target_modules: ['q_proj', 'v_proj'], init_lora_weights: false } as const; // s = 2
const CFG_A2 = { peft_type: 'LORA', r: 2, lora_alpha: 3, target_modules: ['v_proj', 'o_proj'], init_lora_weights: false } as const; // s = 1.5
const CFG_A3 = { peft_type: 'LORA', r: 2, lora_alpha: 1, target_modules: ['q_proj', 'v_proj'], init_lora_weights: false } as const; // s = 0.5
const CFG_B = { peft_type: 'LORA', r: 3, lora_alpha: 3, target_modules: ['v_proj', 'up_proj'], init_lora_weights: false } as const; // s = 1
const CFG_RS = { peft_type: 'LORA', r: 4, lora_alpha: 8, use_rslora: true, target_modules: ['q_proj'], init_lora_weights: false } as const; // s = 4

function factor(peft: PeftModel, module: string, adapter: string, which: 'A' | 'B'): Float64Array {
  const p = peft.base.nativeModel.parameters().find((x) => x.name === `${module}.lora_${which}.${adapter}.weight`);
  if (!p) throw new Error(`no lora_${which} for ${adapter} on ${module}`);
  return Float64Array.from(new Tensor(p.tensor).toFloat32Array());
}

/** b [out, r] · a [r, in] */
function mm(b: Float64Array, a: Float64Array, out: number, r: number, inF: number): Float64Array {
  const c = new Float64Array(out * inF);
  for (let o = 0; o < out; o++) for (let j = 0; j < r; j++) for (let i = 0; i < inF; i++) c[o * inF + i] += b[o * r + j] * a[j * inF + i];
  return c;
}

const add = (x: Float64Array, y: Float64Array, s = 1) => x.map((v, i) => v + s * y[i]);
const scale = (x: Float64Array, s: number) => x.map((v) => v * s);

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

/** s·B·A of one adapter on one module. */
function delta(peft: PeftModel, module: string, adapter: string, r: number, s: number): Float64Array {
  const [out, inF] = shapeOf(module);
  return scale(mm(factor(peft, module, adapter, 'B'), factor(peft, module, adapter, 'A'), out, r, inF), s);
}

/** The change `adapter` makes to each module's weight, read by merging it (then unmerging). */
function mergedDeltas(peft: PeftModel, adapter: string, modules: string[]): Map<string, Float64Array> {
  const before = new Map(modules.map((m) => [m, Float64Array.from(peft.base.parameter(`${m}.weight`).toFloat32Array())]));
  const previous = peft.activeAdapter;
  peft.setAdapter(adapter);
  peft.merge();
  const out = new Map(modules.map((m) => [m, add(Float64Array.from(peft.base.parameter(`${m}.weight`).toFloat32Array()), before.get(m)!, -1)]));
  peft.unmerge();
  peft.setAdapter(previous);
  return out;
}

/** Logits of a plain model whose weights are the tiny model's plus `deltas`. */
async function handMergedLogits(deltas: Map<string, Float64Array>): Promise<Float32Array> {
  const { config, weights } = tinyLlama({ tie: false });
  const merged = new Map(weights);
  for (const [m, d] of deltas) {
    const w = weights.get(`${m}.weight`)!;
    merged.set(`${m}.weight`, tensor(Float32Array.from(w.toFloat32Array(), (v, i) => v + d[i]), w.shape));
  }
  return (await new Model(config, merged).forward(TINY_IDS)).toFloat32Array();
}

function twoAdapters(first: Record<string, unknown>, second: Record<string, unknown>): PeftModel {
  const peft = getPeftModel(tinyLlama({ tie: false }).model, first, { seed: 3 });
  peft.addAdapter('b', second, { seed: 4 });
  return peft;
}

describe('addWeightedAdapter: linear and cat', () => {
  it("linear combines A's and B's with ±√|w·s| (PEFT's formula) and makes an r = lora_alpha adapter on the union of targets", async () => {
    const peft = twoAdapters(CFG_A, CFG_A2);
    const [wa, wb] = [0.7, -0.4];
    const [sa, sb] = [2, 1.5];
    peft.addWeightedAdapter(['default', 'b'], [wa, wb], 'mix', { combination_type: 'linear' });
    const config = peft.peftConfig.mix as unknown as Record<string, unknown>;
    expect([config.r, config.lora_alpha, config.use_rslora]).toEqual([2, 2, false]);
    expect(config.target_modules).toEqual(['q_proj', 'v_proj', 'o_proj']);
    expect(peft.activeAdapter).toBe('default');
    const modules = LAYERS.flatMap((l) => [Q(l), V(l), O(l)]);
    const merged = mergedDeltas(peft, 'mix', modules);
    const ka = Math.sqrt(wa * sa), kb = Math.sqrt(Math.abs(wb) * sb); // sign of wb goes on A only
    for (const m of modules) {
      const [out, inF] = shapeOf(m);
      const inA = !m.endsWith('o_proj'), inB = !m.endsWith('q_proj');
      let a = new Float64Array(2 * inF), b = new Float64Array(out * 2);
      if (inA) { a = add(a, factor(peft, m, 'default', 'A'), ka); b = add(b, factor(peft, m, 'default', 'B'), ka); }
      if (inB) { a = add(a, factor(peft, m, 'b', 'A'), -kb); b = add(b, factor(peft, m, 'b', 'B'), kb); }
      expect([m, maxAbsDiff(factor(peft, m, 'mix', 'A'), a) < 1e-6]).toEqual([m, true]);
      expect([m, maxAbsDiff(factor(peft, m, 'mix', 'B'), b) < 1e-6]).toEqual([m, true]);
      expect([m, maxAbsDiff(merged.get(m)!, mm(b, a, out, 2, inF)) < 1e-5]).toEqual([m, true]);
    }
    // On a module only one adapter holds, that is exactly w·s·B·A.
    expect(maxAbsDiff(merged.get(Q(0))!, delta(peft, Q(0), 'default', 2, sa * wa))).toBeLessThan(1e-5);
    expect(maxAbsDiff(merged.get(O(1))!, delta(peft, O(1), 'b', 2, sb * wb))).toBeLessThan(1e-5);
  });

  it('one adapter with weight 1 reproduces it exactly, rslora scaling included (any requested type becomes linear)', async () => {
    const peft = getPeftModel(tinyLlama({ tie: false }).model, CFG_RS, { seed: 5 });
    const original = (await peft.forward(TINY_IDS)).toFloat32Array();
    peft.addWeightedAdapter(['default'], [1], 'copy', { combination_type: 'svd' });
    const config = peft.peftConfig.copy as unknown as Record<string, unknown>;
    expect([config.r, config.lora_alpha, config.use_rslora]).toEqual([4, 4, false]);
    const merged = mergedDeltas(peft, 'copy', [Q(0), Q(1)]);
    for (const l of LAYERS) expect(maxAbsDiff(merged.get(Q(l))!, delta(peft, Q(l), 'default', 4, 8 / Math.sqrt(4)))).toBeLessThan(1e-5);
    peft.setAdapter('copy');
    expect(maxAbsDiff((await peft.forward(TINY_IDS)).toFloat32Array(), original)).toBeLessThan(1e-5);
  });

  it('cat stacks w·s·A and B along the rank: exactly Σ w·s·B·A, r = Σ r; logits equal a hand-merged model', async () => {
    const peft = twoAdapters(CFG_A, CFG_B);
    const [wa, wb] = [0.5, 2];
    peft.addWeightedAdapter(['default', 'b'], [wa, wb], 'cat', { combination_type: 'cat' });
    expect((peft.peftConfig.cat as { r: number }).r).toBe(5);
    const modules = LAYERS.flatMap((l) => [Q(l), V(l), UP(l)]);
    const deltas = new Map<string, Float64Array>();
    for (const m of modules) {
      const [out, inF] = shapeOf(m);
      let d = new Float64Array(out * inF);
      if (!m.endsWith('up_proj')) d = add(d, delta(peft, m, 'default', 2, 2 * wa));
      if (!m.endsWith('q_proj')) d = add(d, delta(peft, m, 'b', 3, 1 * wb));
      deltas.set(m, d);
      const a = factor(peft, m, 'cat', 'A');
      expect([m, maxAbsDiff(mm(factor(peft, m, 'cat', 'B'), a, out, 5, inF), d) < 1e-5]).toEqual([m, true]);
    }
    // Layout as PEFT: the sources' rows first, in order, zero rows after.
    const [, inQ] = shapeOf(Q(0));
    expect(maxAbsDiff(factor(peft, Q(0), 'cat', 'A').subarray(0, 2 * inQ), scale(factor(peft, Q(0), 'default', 'A'), 2 * wa))).toBeLessThan(1e-6);
    expect(Math.max(...factor(peft, Q(0), 'cat', 'A').subarray(2 * inQ).map(Math.abs))).toBe(0);
    peft.setAdapter('cat');
    expect(maxAbsDiff((await peft.forward(TINY_IDS)).toFloat32Array(), await handMergedLogits(deltas))).toBeLessThan(2e-5);
  });
});

describe('addWeightedAdapter: token embeddings', () => {
  const E1 = { peft_type: 'LORA', r: 2, lora_alpha: 4, target_modules: ['embed_tokens', 'q_proj'], init_lora_weights: false }; // s = 2
  const E2 = { peft_type: 'LORA', r: 3, lora_alpha: 3, target_modules: ['embed_tokens'], init_lora_weights: false }; // s = 1
  const EMB = 'model.embed_tokens';
  const embFactor = (peft: PeftModel, adapter: string, which: 'A' | 'B') => {
    const p = peft.base.nativeModel.parameters().find((x) => x.name === `${EMB}.lora_embedding_${which}.${adapter}`)!;
    return Float64Array.from(new Tensor(p.tensor).toFloat32Array());
  };
  /** s·(B·A)ᵀ: [vocab 11, hidden 8], as PEFT's embedding LoRA adds it to the table. */
  const embDelta = (peft: PeftModel, adapter: string, r: number, s: number) => {
    const ba = mm(embFactor(peft, adapter, 'B'), embFactor(peft, adapter, 'A'), 8, r, 11); // [8, 11]
    return Float64Array.from({ length: 88 }, (_, k) => s * ba[(k % 8) * 11 + Math.floor(k / 8)]);
  };

  for (const type of ['cat', 'svd'] as const) {
    it(`${type}: the embedding delta is Σ w·s·(B·A)ᵀ, so the logits equal a hand-merged model`, async () => {
      const peft = twoAdapters(E1, E2);
      peft.addWeightedAdapter(['default', 'b'], [0.5, 2], 'mix', { combination_type: type, svd_rank: 5 });
      expect((peft.peftConfig.mix as { target_modules: string[] }).target_modules).toEqual(['embed_tokens', 'q_proj']);
      const deltas = new Map<string, Float64Array>([[EMB, add(embDelta(peft, 'default', 2, 2 * 0.5), embDelta(peft, 'b', 3, 2))]]);
      for (const l of LAYERS) deltas.set(Q(l), delta(peft, Q(l), 'default', 2, 2 * 0.5));
      peft.setAdapter('mix');
      expect(maxAbsDiff((await peft.forward(TINY_IDS)).toFloat32Array(), await handMergedLogits(deltas))).toBeLessThan(2e-5);
    });
  }
});

/** Eigen-decomposition of a symmetric n×n matrix by orthogonal (subspace) iteration, largest first. */
function topEigen(m: Float64Array, n: number, k: number): { values: number[]; vectors: Float64Array[] } {
  const random = new SeededRandom(11);
  let basis = Array.from({ length: k }, () => Float64Array.from({ length: n }, () => random.normal()));
  for (let iter = 0; iter < 3000; iter++) {
    basis = basis.map((v) => {
      const w = new Float64Array(n);
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) w[i] += m[i * n + j] * v[j];
      return w;
    });
    for (let c = 0; c < k; c++) { // Gram–Schmidt
      for (let p = 0; p < c; p++) {
        let dot = 0;
        for (let i = 0; i < n; i++) dot += basis[c][i] * basis[p][i];
        for (let i = 0; i < n; i++) basis[c][i] -= dot * basis[p][i];
      }
      const norm = Math.hypot(...basis[c]);
      for (let i = 0; i < n; i++) basis[c][i] /= norm;
    }
  }
  const values = basis.map((v) => {
    let q = 0;
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) q += v[i] * m[i * n + j] * v[j];
    return q;
  });
  return { values, vectors: basis };
}

describe('addWeightedAdapter: svd', () => {
  const weights = [0.5, 2];
  function reference(peft: PeftModel, m: string): Float64Array {
    const [out, inF] = shapeOf(m);
    let d = new Float64Array(out * inF);
    if (!m.endsWith('up_proj')) d = add(d, delta(peft, m, 'default', 2, 2 * weights[0]));
    if (!m.endsWith('q_proj')) d = add(d, delta(peft, m, 'b', 3, weights[1]));
    return d;
  }

  it('with svd_rank at least the rank of Σ w·s·B·A the combined delta equals it', () => {
    const peft = twoAdapters(CFG_A, CFG_B);
    peft.addWeightedAdapter(['default', 'b'], weights, 'full', { combination_type: 'svd', svd_rank: 5 });
    for (const m of LAYERS.flatMap((l) => [Q(l), V(l), UP(l)])) {
      const [out, inF] = shapeOf(m);
      const got = mm(factor(peft, m, 'full', 'B'), factor(peft, m, 'full', 'A'), out, 5, inF);
      expect([m, maxAbsDiff(got, reference(peft, m)) < 1e-5]).toEqual([m, true]);
    }
  });

  it('by default (rank = the largest source rank) it is the best rank-3 approximation: B = U·S, A = Vᵀ with orthonormal rows', () => {
    const peft = twoAdapters(CFG_A, CFG_B);
    peft.addWeightedAdapter(['default', 'b'], weights, 'low');
    expect((peft.peftConfig.low as { r: number }).r).toBe(3);
    for (const m of [V(0), UP(1)]) {
      const [out, inF] = shapeOf(m);
      const d = reference(peft, m);
      const gram = new Float64Array(inF * inF); // dᵀd
      for (let i = 0; i < inF; i++) for (let j = 0; j < inF; j++) for (let o = 0; o < out; o++) gram[i * inF + j] += d[o * inF + i] * d[o * inF + j];
      const { values, vectors } = topEigen(gram, inF, 3);
      const a = factor(peft, m, 'low', 'A'), b = factor(peft, m, 'low', 'B');
      for (let j = 0; j < 3; j++) {
        const norm = Math.hypot(...Array.from({ length: out }, (_, o) => b[o * 3 + j]));
        expect(Math.abs(norm - Math.sqrt(values[j]))).toBeLessThan(1e-5 * Math.sqrt(values[0]));
        for (let k = 0; k < 3; k++) {
          let dot = 0;
          for (let i = 0; i < inF; i++) dot += a[j * inF + i] * a[k * inF + i];
          expect(Math.abs(dot - (j === k ? 1 : 0))).toBeLessThan(1e-5);
        }
      }
      // Σ_j d·v_j·v_jᵀ: the projection of d on its top right singular vectors.
      const best = new Float64Array(out * inF);
      for (const v of vectors) {
        for (let o = 0; o < out; o++) {
          let dv = 0;
          for (let i = 0; i < inF; i++) dv += d[o * inF + i] * v[i];
          for (let i = 0; i < inF; i++) best[o * inF + i] += dv * v[i];
        }
      }
      expect(maxAbsDiff(mm(b, a, out, 3, inF), best)).toBeLessThan(1e-5);
    }
  });

  it('svd_clamp clamps the factors to ± the quantile of their values (linear interpolation, as torch.quantile)', () => {
    const peft = twoAdapters(CFG_A, CFG_B);
    peft.addWeightedAdapter(['default', 'b'], weights, 'plain', { svd_rank: 3 });
    peft.addWeightedAdapter(['default', 'b'], weights, 'clamped', { svd_rank: 3, svd_clamp: 0.8 });
    for (const m of [Q(0), V(1), UP(0)]) {
      const a = factor(peft, m, 'plain', 'A'), b = factor(peft, m, 'plain', 'B');
      const sorted = [...b, ...a].sort((x, y) => x - y);
      const pos = 0.8 * (sorted.length - 1);
      const hi = sorted[Math.floor(pos)] + (sorted[Math.ceil(pos)] - sorted[Math.floor(pos)]) * (pos - Math.floor(pos));
      const clamp = (t: Float64Array) => t.map((x) => Math.min(Math.max(x, -hi), hi));
      expect(maxAbsDiff(factor(peft, m, 'clamped', 'A'), clamp(a))).toBeLessThan(1e-6);
      expect(maxAbsDiff(factor(peft, m, 'clamped', 'B'), clamp(b))).toBeLessThan(1e-6);
      expect(b.some((x) => Math.abs(x) > hi + 1e-6)).toBe(true);
    }
  });
});

// --- reference task-arithmetic rules, from the TIES and DARE papers ---

function trim(t: Float64Array, density: number): Float64Array {
  const k = Math.floor(density * t.length);
  const threshold = [...t].map(Math.abs).sort((x, y) => y - x)[k - 1] ?? Infinity;
  return t.map((v) => (k > 0 && Math.abs(v) >= threshold ? v : 0));
}

function dare(t: Float64Array, density: number, rng: SeededRandom): Float64Array {
  return t.map((v) => (rng.next() < density ? v / density : 0));
}

function ties(ts: Float64Array[], ws: number[], method: 'total' | 'frequency'): Float64Array {
  return ts[0].map((_, i) => {
    const elected = ts.reduce((sum, t) => sum + (method === 'total' ? t[i] : Math.sign(t[i])), 0) >= 0 ? 1 : -1;
    const agree = ts.map((t, k) => [t[i], ws[k]]).filter(([v]) => Math.sign(v) === elected);
    return agree.reduce((sum, [v, w]) => sum + v * w, 0) / Math.max(agree.length, 1);
  });
}

const weightedSum = (ts: Float64Array[], ws: number[]) => ts.reduce((acc, t, k) => add(acc, t, ws[k]), new Float64Array(ts[0].length));

type Rule = 'ties' | 'dare_linear' | 'dare_ties' | 'magnitude_prune';
function applyRule(rule: Rule, ts: Float64Array[], ws: number[], density: number, rng: SeededRandom, method: 'total' | 'frequency'): Float64Array {
  if (rule === 'magnitude_prune') return weightedSum(ts.map((t) => trim(t, density)), ws);
  if (rule === 'ties') return ties(ts.map((t) => trim(t, density)), ws, method);
  const dropped = ts.map((t) => dare(t, density, rng));
  return rule === 'dare_linear' ? weightedSum(dropped, ws) : ties(dropped, ws, method);
}

describe('addWeightedAdapter: TIES, DARE and magnitude pruning', () => {
  const weights = [0.6, -0.9];
  const scalings = [2, 0.5];
  const modules = LAYERS.flatMap((l) => [Q(l), V(l)]);

  for (const [rule, method] of [['ties', 'total'], ['ties', 'frequency'], ['dare_linear', 'total'], ['dare_ties', 'total'], ['magnitude_prune', 'total']] as const) {
    it(`${rule} (${method}) on the A's and B's with ±√|w·s| matches the reference`, () => {
      const peft = twoAdapters(CFG_A, CFG_A3);
      peft.addWeightedAdapter(['default', 'b'], weights, 'mix', { combination_type: rule, density: 0.5, majority_sign_method: method, seed: 9 });
      const rng = new SeededRandom(9);
      const ws = weights.map((w, k) => w * scalings[k]);
      for (const m of modules) { // modules in model order; per module the A's, then the B's
        const a = applyRule(rule, ['default', 'b'].map((n) => factor(peft, m, n, 'A')), ws.map((w) => Math.sign(w) * Math.sqrt(Math.abs(w))), 0.5, rng, method);
        const b = applyRule(rule, ['default', 'b'].map((n) => factor(peft, m, n, 'B')), ws.map((w) => Math.sqrt(Math.abs(w))), 0.5, rng, method);
        expect([m, maxAbsDiff(factor(peft, m, 'mix', 'A'), a) < 1e-6]).toEqual([m, true]);
        expect([m, maxAbsDiff(factor(peft, m, 'mix', 'B'), b) < 1e-6]).toEqual([m, true]);
      }
    });
  }

  for (const rule of ['ties', 'dare_linear', 'dare_ties', 'magnitude_prune'] as const) {
    it(`${rule}_svd applies the rule to the delta weights s·B·A and, at full rank, reproduces the result`, () => {
      const peft = twoAdapters(CFG_A, CFG_A3);
      peft.addWeightedAdapter(['default', 'b'], weights, 'mix', { combination_type: `${rule}_svd`, density: 0.4, svd_rank: 8, seed: 2 });
      const rng = new SeededRandom(2);
      for (const m of modules) {
        const [out, inF] = shapeOf(m);
        const deltas = ['default', 'b'].map((n, k) => delta(peft, m, n, 2, scalings[k]));
        const expected = applyRule(rule, deltas, weights, 0.4, rng, 'total');
        const got = mm(factor(peft, m, 'mix', 'B'), factor(peft, m, 'mix', 'A'), out, 8, inF);
        expect([m, maxAbsDiff(got, expected) < 1e-5]).toEqual([m, true]);
      }
    });
  }

  it('DARE keeps about `density` of the entries, each scaled by 1/density', () => {
    const peft = twoAdapters(CFG_A, CFG_A3);
    peft.addWeightedAdapter(['default', 'b'], [1, 0], 'only', { combination_type: 'dare_linear_svd', density: 0.25, svd_rank: 8, seed: 4 });
    let kept = 0, total = 0;
    for (const m of modules) {
      const [out, inF] = shapeOf(m);
      const d = delta(peft, m, 'default', 2, 2);
      const got = mm(factor(peft, m, 'only', 'B'), factor(peft, m, 'only', 'A'), out, 8, inF);
      for (let i = 0; i < d.length; i++) {
        total++;
        if (Math.abs(got[i]) > 1e-6) {
          kept++;
          expect(Math.abs(got[i] - d[i] / 0.25)).toBeLessThan(1e-5);
        }
      }
    }
    expect(Math.abs(kept / total - 0.25)).toBeLessThan(0.05);
  });
});

describe('addWeightedAdapter: files and refusals', () => {
  it('the combined adapter saves with r = lora_alpha and loads back to the same logits', async () => {
    const peft = twoAdapters(CFG_A, CFG_B);
    peft.addWeightedAdapter(['default', 'b'], [1, 1], 'mix', { combination_type: 'cat' });
    peft.setAdapter('mix');
    const logits = (await peft.forward(TINY_IDS)).toFloat32Array();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-combine-'));
    await peft.saveAdapter(dir, { adapterNames: ['mix'] });
    const json = JSON.parse(fs.readFileSync(path.join(dir, 'mix', 'adapter_config.json'), 'utf8'));
    expect([json.r, json.lora_alpha, json.target_modules]).toEqual([5, 5, ['q_proj', 'v_proj', 'up_proj']]);
    const again = await loadAdapter(tinyLlama({ tie: false }).model, path.join(dir, 'mix'));
    expect(maxAbsDiff((await again.forward(TINY_IDS)).toFloat32Array(), logits)).toBe(0);
  });

  it('refuses bad requests with the field named', () => {
    const peft = twoAdapters(CFG_A, CFG_B);
    const code = (fn: () => void) => {
      try {
        fn();
      } catch (err) {
        return (err as { code: string }).code;
      }
      return 'none';
    };
    expect(code(() => peft.addWeightedAdapter(['default', 'nope'], [1, 1], 'x'))).toBe('E_ARGUMENT');
    expect(code(() => peft.addWeightedAdapter(['default', 'b'], [1], 'x'))).toBe('E_ARGUMENT');
    expect(code(() => peft.addWeightedAdapter(['default', 'b'], [1, 1], 'x', { combination_type: 'linear' }))).toBe('E_CONFIG'); // ranks 2 and 3
    expect(code(() => peft.addWeightedAdapter(['default', 'b'], [1, 1], 'x', { combination_type: 'ties_svd' }))).toBe('E_ARGUMENT'); // no density
    expect(code(() => peft.addWeightedAdapter(['default', 'b'], [1, 1], 'x', { combination_type: 'bogus' as never }))).toBe('E_ARGUMENT');
    expect(code(() => peft.addWeightedAdapter(['default', 'b'], [1, 1], 'b'))).toBe('E_CONFIG'); // name taken
    expect(code(() => peft.addWeightedAdapter(['default', 'b'], [1, 1], '../up'))).toBe('E_ARGUMENT');
    expect(() => peft.addWeightedAdapter(['default', 'b'], [1, 1], 'x', { combination_type: 'linear' })).toThrow(/same r/);
    const dora = getPeftModel(tinyLlama().model, { ...CFG_A, use_dora: true });
    expect(code(() => dora.addWeightedAdapter(['default'], [1], 'x'))).toBe('E_UNSUPPORTED');
    const mixed = getPeftModel(tinyLlama().model, { ...CFG_A, target_modules: '.*q_proj' });
    mixed.addAdapter('b', CFG_B);
    expect(code(() => mixed.addWeightedAdapter(['default', 'b'], [1, 1], 'x', { combination_type: 'cat' }))).toBe('E_CONFIG');
    expect(peft.adapterNames()).toEqual(['default', 'b']);
  });
});
