/**
 * A new LoRA adapter from a weighted combination of existing ones, with the semantics of Hugging
 * Face PEFT's `LoraModel.add_weighted_adapter` (sᵢ = each source's scaling on the module, wᵢ its
 * weight):
 * - 'linear', 'ties', 'dare_linear', 'dare_ties', 'magnitude_prune' combine the A's and the B's
 *   separately (equal ranks needed): A = rule(Aᵢ; sign(wᵢsᵢ)·√|wᵢsᵢ|), B = rule(Bᵢ; √|wᵢsᵢ|).
 *   For 'linear' this is (Σ√|wᵢsᵢ|·Bᵢ)(Σ±√|wᵢsᵢ|·Aᵢ), which has cross terms between adapters: it
 *   equals Σ wᵢsᵢBᵢAᵢ only for one adapter, or adapters whose products annihilate.
 * - 'cat' stacks wᵢsᵢ·Aᵢ and Bᵢ along the rank: exactly Σ wᵢsᵢBᵢAᵢ, rank Σ rᵢ.
 * - 'svd' and the '<rule>_svd' types combine the delta weights sᵢBᵢAᵢ with weights wᵢ and factor the
 *   result by a truncated SVD (B = U·S, A = Vᵀ) to svd_rank (default: the largest source rank),
 *   values optionally clamped to the svd_clamp quantile.
 * The new adapter's config is the first source's with r = lora_alpha = new rank (scaling 1), the
 * union of the target modules, no rank/alpha patterns and use_rslora off; it does not train.
 * @internal (public entry: PeftModel.addWeightedAdapter)
 */
import { PeftError } from '../errors';
import type { Model } from '../models/model';
import { tensor, Tensor } from '../tensor';
import { describe, fail } from '../validate';
import type { AdapterTensors } from './attach';
import type { LoraConfig, PeftConfig, TargetModules } from './config';
import { qrReduced, truncatedSvd } from './linalg';
import { mergeTensors, type MergeParams, type MergeRule } from './merge-rules';
import { loraSites } from './lora-factors';
import { checkAdapterName } from './names';
import { SeededRandom } from './random';
import { patternValue, selectModules } from './targets';

/** PEFT's combination types (see the README for what each computes). */
export type CombinationType =
  | 'svd' | 'linear' | 'cat' | 'ties' | 'ties_svd' | 'dare_ties' | 'dare_linear' | 'dare_ties_svd' | 'dare_linear_svd'
  | 'magnitude_prune' | 'magnitude_prune_svd';

const COMBINATION_TYPES: readonly CombinationType[] = [
  'svd', 'linear', 'cat', 'ties', 'ties_svd', 'dare_ties', 'dare_linear', 'dare_ties_svd', 'dare_linear_svd',
  'magnitude_prune', 'magnitude_prune_svd',
];

/** Options of {@link PeftModel.addWeightedAdapter}, with PEFT's names. */
export interface WeightedAdapterOptions {
  /** How to combine (default 'svd', as PEFT). With one source adapter PEFT always uses 'linear'. */
  combination_type?: CombinationType;
  /** Fraction of entries kept by trimming (ties, magnitude_prune) or random dropping (dare_*), in [0, 1]. */
  density?: number;
  /** How TIES elects each entry's sign: 'total' (sign of the sum, default) or 'frequency' (majority). */
  majority_sign_method?: 'total' | 'frequency';
  /** Rank of the result of an SVD-based combination (default: the largest source rank). */
  svd_rank?: number;
  /** Quantile in [0, 1]: the SVD factors are clamped to ±(that quantile of their values). */
  svd_clamp?: number;
  /** Seed of DARE's random drops (default 0); PEFT draws from torch's global generator instead. */
  seed?: number;
}

/** One source adapter on one module: A [r, in], B [out, r] (row-major float64) and its scaling. */
interface Factors {
  a: Float64Array;
  b: Float64Array;
  r: number;
  scaling: number;
}

interface Source {
  name: string;
  weight: number;
  config: LoraConfig;
  modules: Map<string, Factors>;
}

const PRUNING: readonly string[] = ['ties', 'dare_linear', 'dare_ties', 'magnitude_prune'];

function checkOptions(options: WeightedAdapterOptions, single: boolean) {
  if (typeof options !== 'object' || options === null) fail('options', 'an object', options);
  const requested = options.combination_type ?? 'svd';
  if (!COMBINATION_TYPES.includes(requested)) fail('options.combination_type', `one of ${COMBINATION_TYPES.join(', ')}`, requested);
  // As PEFT: a single adapter can only be combined linearly.
  const type: CombinationType = single ? 'linear' : requested;
  const rule = (type === 'svd' ? 'linear' : type.replace(/_svd$/, '')) as MergeRule | 'cat';
  const density = options.density;
  if (PRUNING.includes(rule)) {
    if (typeof density !== 'number' || !(density >= 0 && density <= 1)) fail('options.density', `a number in [0, 1] (combination_type ${type})`, density);
  }
  const method = options.majority_sign_method ?? 'total';
  if (method !== 'total' && method !== 'frequency') fail('options.majority_sign_method', '"total" or "frequency"', method);
  const svdRank = options.svd_rank;
  if (svdRank !== undefined && !(Number.isInteger(svdRank) && svdRank >= 1)) fail('options.svd_rank', 'an integer ≥ 1', svdRank);
  const clamp = options.svd_clamp;
  if (clamp !== undefined && clamp !== null && !(typeof clamp === 'number' && clamp >= 0 && clamp <= 1)) fail('options.svd_clamp', 'a quantile in [0, 1]', clamp);
  const seed = options.seed ?? 0;
  if (!Number.isInteger(seed) || seed < 0) fail('options.seed', 'an integer ≥ 0', seed);
  return { type, rule, svd: type === 'svd' || type.endsWith('_svd'), density: density ?? 1, method, svdRank, clamp: clamp ?? undefined, seed };
}

/** The sources' factors, read from the model's adapter parameters. */
function readSources(model: Model, configs: Record<string, PeftConfig>, adapters: string[], weights: number[]): Source[] {
  const params = new Map(model.nativeModel.parameters().map((p) => [p.name, p.tensor]));
  return adapters.map((name, i) => {
    const config = configs[name] as LoraConfig;
    const modules = new Map<string, Factors>();
    for (const site of loraSites(model, name)) {
      const { module, inFeatures } = site;
      const a = params.get(site.a);
      if (!a) continue;
      const aValues = Float64Array.from(new Tensor(a).toFloat32Array());
      const r = aValues.length / inFeatures;
      const alpha = patternValue(module, config.alpha_pattern ?? {}, config.lora_alpha!);
      modules.set(module, {
        a: aValues,
        b: Float64Array.from(new Tensor(params.get(site.b)!).toFloat32Array()),
        r,
        scaling: config.use_rslora ? alpha / Math.sqrt(r) : alpha / r,
      });
    }
    return { name, weight: weights[i], config, modules };
  });
}

function checkSources(configs: Record<string, PeftConfig>, adapters: unknown, weights: unknown, adapterName: string): { adapters: string[]; weights: number[] } {
  checkAdapterName(adapterName, 'adapterName');
  if (adapterName in configs) throw new PeftError(`The model already has an adapter named ${adapterName}`, 'E_CONFIG');
  if (!Array.isArray(adapters) || !adapters.length) fail('adapters', 'a non-empty array of adapter names', adapters);
  if (!Array.isArray(weights) || weights.length !== adapters.length || weights.some((w) => typeof w !== 'number' || !Number.isFinite(w))) {
    fail('weights', `an array of ${adapters.length} finite numbers (one per adapter)`, weights);
  }
  adapters.forEach((name, i) => {
    const config = configs[name as string];
    if (typeof name !== 'string' || !config) fail(`adapters[${i}]`, `the name of an adapter of this model (${Object.keys(configs).join(', ')})`, name);
    if (config.peft_type !== 'LORA') throw new PeftError(`Weighted combination needs LoRA adapters, but ${name} is ${config.peft_type}`, 'E_UNSUPPORTED');
    if (config.use_dora) throw new PeftError(`Cannot combine the DoRA adapter ${name}: a weighted combination of LoRA factors has no magnitude vector`, 'E_UNSUPPORTED');
  });
  return { adapters: adapters as string[], weights: weights as number[] };
}

/** The new adapter's target_modules as PEFT forms them: regexes joined with '|', or the union of name lists. */
function combinedTargets(sources: Source[]): TargetModules {
  const isRegex = (t: TargetModules | null | undefined) => typeof t === 'string' && t !== 'all-linear';
  const kinds = new Set(sources.map((s) => isRegex(s.config.target_modules)));
  if (kinds.size > 1) {
    throw new PeftError('Cannot combine adapters whose target_modules mix regular expressions and lists of names', 'E_CONFIG');
  }
  if (kinds.has(true)) return sources.map((s) => `(${s.config.target_modules})`).join('|');
  const names: string[] = [];
  for (const s of sources) {
    // PEFT stores a default or 'all-linear' target as the set of module names it expanded to.
    const list = Array.isArray(s.config.target_modules) ? s.config.target_modules : [...s.modules.keys()].map((m) => m.slice(m.lastIndexOf('.') + 1));
    for (const n of list) if (!names.includes(n)) names.push(n);
  }
  return names;
}

function newRank(type: CombinationType, sources: Source[], svdRank: number | undefined): number {
  const ranks = sources.map((s) => s.config.r!);
  if (type === 'cat') return ranks.reduce((a, b) => a + b, 0);
  if (type === 'svd' || type.endsWith('_svd')) return svdRank ?? Math.max(...ranks);
  if (new Set(ranks).size !== 1) {
    throw new PeftError(`All adapters must have the same r for combination_type ${type} (they have ${ranks.join(', ')}); use 'cat' or 'svd'`, 'E_CONFIG');
  }
  return ranks[0];
}

/** torch.quantile's default (linear interpolation between the closest ranks). */
function quantile(values: Float64Array, q: number): number {
  const sorted = Float64Array.from(values).sort();
  const pos = q * (sorted.length - 1);
  const lo = Math.floor(pos), hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

interface Factored {
  a: Float64Array; // [rank, in]
  b: Float64Array; // [out, rank]
}

/** B = U·S [out, rank], A = Vᵀ [rank, in] from SVD factors of k ≤ rank triplets; zero beyond k. */
function svdFactors(u: Float64Array, s: Float64Array, vt: Float64Array, k: number, out: number, inF: number, rank: number, clamp: number | undefined): Factored {
  const a = new Float64Array(rank * inF), b = new Float64Array(out * rank);
  for (let j = 0; j < Math.min(k, rank); j++) {
    for (let i = 0; i < inF; i++) a[j * inF + i] = vt[j * inF + i];
    for (let o = 0; o < out; o++) b[o * rank + j] = u[o * k + j] * s[j];
  }
  if (clamp !== undefined) {
    const all = new Float64Array(a.length + b.length);
    all.set(b);
    all.set(a, b.length);
    const hi = quantile(all, clamp);
    // torch.clamp(x, -hi, hi) = min(max(x, -hi), hi)
    for (const t of [a, b]) for (let i = 0; i < t.length; i++) t[i] = Math.min(Math.max(t[i], -hi), hi);
  }
  return { a, b };
}

/** Σ Bᵢ·Aᵢ factored by SVD without forming it: QR of the stacked B's and A's, then the SVD of a small core. */
function lowRankSvd(bs: Float64Array[], as: Float64Array[], ranks: number[], out: number, inF: number, rank: number, clamp: number | undefined): Factored {
  const total = ranks.reduce((x, y) => x + y, 0);
  const bCat = new Float64Array(out * total); // [out, total]
  const aCatT = new Float64Array(inF * total); // [in, total]
  let offset = 0;
  bs.forEach((b, k) => {
    const r = ranks[k];
    for (let o = 0; o < out; o++) for (let j = 0; j < r; j++) bCat[o * total + offset + j] = b[o * r + j];
    for (let j = 0; j < r; j++) for (let i = 0; i < inF; i++) aCatT[i * total + offset + j] = as[k][j * inF + i];
    offset += r;
  });
  const qb = qrReduced(bCat, out, total); // q [out, k1], r [k1, total]
  const qa = qrReduced(aCatT, inF, total); // q [in, k2], r [k2, total]
  const core = new Float64Array(qb.k * qa.k); // R_b · R_aᵀ [k1, k2]
  for (let x = 0; x < qb.k; x++) {
    for (let y = 0; y < qa.k; y++) {
      let sum = 0;
      for (let t = 0; t < total; t++) sum += qb.r[x * total + t] * qa.r[y * total + t];
      core[x * qa.k + y] = sum;
    }
  }
  const { u, s, vt } = truncatedSvd(core, qb.k, qa.k, rank);
  const k = s.length;
  const uFull = new Float64Array(out * k), vtFull = new Float64Array(k * inF);
  for (let o = 0; o < out; o++) {
    for (let j = 0; j < k; j++) {
      let sum = 0;
      for (let x = 0; x < qb.k; x++) sum += qb.q[o * qb.k + x] * u[x * k + j];
      uFull[o * k + j] = sum;
    }
  }
  for (let j = 0; j < k; j++) {
    for (let i = 0; i < inF; i++) {
      let sum = 0;
      for (let y = 0; y < qa.k; y++) sum += vt[j * qa.k + y] * qa.q[i * qa.k + y];
      vtFull[j * inF + i] = sum;
    }
  }
  return svdFactors(uFull, s, vtFull, k, out, inF, rank, clamp);
}

/** s·B·A [out, in]. */
function deltaOf(f: Factors, out: number, inF: number): Float64Array {
  const d = new Float64Array(out * inF);
  for (let o = 0; o < out; o++) {
    for (let j = 0; j < f.r; j++) {
      const bj = f.scaling * f.b[o * f.r + j];
      if (bj === 0) continue;
      for (let i = 0; i < inF; i++) d[o * inF + i] += bj * f.a[j * inF + i];
    }
  }
  return d;
}

type Plan = ReturnType<typeof checkOptions>;

function combineModule(module: string, parts: { f: Factors; weight: number }[], out: number, inF: number, rank: number, plan: Plan, params: MergeParams): Factored {
  if (plan.type === 'cat') {
    const used = parts.reduce((n, p) => n + p.f.r, 0);
    if (used > rank) throw new PeftError(`The sources' ranks on ${module} add up to ${used}, more than r = ${rank} (rank_pattern differs between adapters)`, 'E_CONFIG');
    const a = new Float64Array(rank * inF), b = new Float64Array(out * rank);
    let row = 0;
    for (const { f, weight } of parts) {
      for (let j = 0; j < f.r; j++) {
        for (let i = 0; i < inF; i++) a[(row + j) * inF + i] = weight * f.scaling * f.a[j * inF + i];
        for (let o = 0; o < out; o++) b[o * rank + row + j] = f.b[o * f.r + j];
      }
      row += f.r;
    }
    return { a, b };
  }
  if (plan.svd) {
    if (plan.rule === 'linear') {
      return lowRankSvd(parts.map((p) => p.f.b.map((v) => v * p.weight * p.f.scaling)), parts.map((p) => p.f.a), parts.map((p) => p.f.r), out, inF, rank, plan.clamp);
    }
    const delta = mergeTensors(plan.rule as MergeRule, parts.map((p) => deltaOf(p.f, out, inF)), parts.map((p) => p.weight), params);
    const { u, s, vt } = truncatedSvd(delta, out, inF, rank);
    return svdFactors(u, s, vt, s.length, out, inF, rank, plan.clamp);
  }
  const odd = parts.find((p) => p.f.r !== rank);
  if (odd) throw new PeftError(`Expected rank ${rank} on ${module} for combination_type ${plan.type} but an adapter has ${odd.f.r} there (rank_pattern)`, 'E_CONFIG');
  const ws = parts.map((p) => p.weight * p.f.scaling);
  // The sign goes on A only, so that a negative weight negates the product once.
  const a = mergeTensors(plan.rule as MergeRule, parts.map((p) => p.f.a), ws.map((w) => Math.sign(w) * Math.sqrt(Math.abs(w))), params);
  const b = mergeTensors(plan.rule as MergeRule, parts.map((p) => p.f.b), ws.map((w) => Math.sqrt(Math.abs(w))), params);
  return { a, b };
}

/**
 * The config and weights of a LoRA adapter combining `adapters` with `weights` (see the file
 * comment), for attaching as `adapterName`.
 */
export function combineLoraAdapters(
  model: Model,
  configs: Record<string, PeftConfig>,
  adapterList: string[],
  weightList: number[],
  adapterName: string,
  options: WeightedAdapterOptions = {},
): { config: LoraConfig; tensors: AdapterTensors } {
  const { adapters, weights } = checkSources(configs, adapterList, weightList, adapterName);
  const fused = adapters.find((a) => (configs[a] as LoraConfig).target_parameters?.length);
  if (fused) throw new PeftError(`Cannot combine adapter ${fused}: combining adapters of fused expert parameters (target_parameters) is not supported`, 'E_UNSUPPORTED');
  const plan = checkOptions(options, adapters.length === 1);
  const sources = readSources(model, configs, adapters, weights);
  const first = sources[0].config;
  if (first.bias !== 'none') {
    throw new PeftError(`Cannot add a combined adapter: the first adapter (${adapters[0]}) has bias "${first.bias}", and only one adapter of a model may train biases`, 'E_CONFIG');
  }
  const saving = sources.filter((s) => s.config.modules_to_save?.length);
  const shared = saving.flatMap((s) => s.config.modules_to_save!).find((m, i, all) => all.indexOf(m) !== i);
  if (shared) throw new PeftError(`Cannot combine adapters that both train ${shared} (modules_to_save)`, 'E_CONFIG');
  const rank = newRank(plan.type, sources, plan.svdRank);
  const config: LoraConfig = {
    ...first,
    r: rank,
    lora_alpha: rank,
    target_modules: combinedTargets(sources),
    rank_pattern: {},
    alpha_pattern: {},
    use_rslora: false,
  };
  const shapes = new Map(loraSites(model, adapterName).map((m) => [m.module, m]));
  const modules = selectModules([...shapes.keys()], {
    targets: config.target_modules!,
    exclude: config.exclude_modules,
    layersToTransform: config.layers_to_transform,
    layersPattern: config.layers_pattern,
  });
  const params: MergeParams = { density: plan.density, majoritySignMethod: plan.method, rng: new SeededRandom(plan.seed) };
  const lora: AdapterTensors['lora'] = new Map();
  for (const module of modules) {
    const { outFeatures: out, inFeatures: inF } = shapes.get(module)!;
    const parts = sources.flatMap((s) => (s.modules.has(module) ? [{ f: s.modules.get(module)!, weight: s.weight }] : []));
    if (!parts.length) {
      throw new PeftError(`The combined adapter targets ${module}, where none of ${describe(adapters)} has LoRA weights`, 'E_CONFIG');
    }
    const { a, b } = combineModule(module, parts, out, inF, rank, plan, params);
    lora.set(module, { a: tensor(Float32Array.from(a), [rank, inF]), b: tensor(Float32Array.from(b), [out, rank]) });
  }
  return { config, tensors: { lora, ia3: new Map(), bottleneck: new Map(), copies: new Map() } };
}
