/**
 * The task-arithmetic rules that combine several tensors of one shape into one, as Hugging Face
 * PEFT's merge_utils applies them to LoRA factors or delta weights:
 * - linear (task arithmetic, Ilharco et al. 2023): Σ wᵢ·tᵢ.
 * - magnitude_prune: Σ wᵢ·trim(tᵢ), trim keeping the ⌊density·n⌋ entries of largest magnitude.
 * - ties (Yadav et al. 2023): trim, elect a sign per entry from the trimmed tensors ('total': the
 *   sign of their sum; 'frequency': the sign held by more of them; ties go to +), then average the
 *   weighted entries that agree with it (disjoint merge).
 * - dare_linear / dare_ties (Yu et al. 2024): drop each entry with probability 1 − density and
 *   scale the kept ones by 1/density, then sum (linear) or elect and average (ties).
 * Random drops draw from the given generator, one number per entry in row-major order.
 * @internal
 */
import { SeededRandom } from './random';

export type MergeRule = 'linear' | 'magnitude_prune' | 'ties' | 'dare_linear' | 'dare_ties';
export type SignMethod = 'total' | 'frequency';

export interface MergeParams {
  /** Fraction of entries kept by trimming or dropping, in [0, 1]; 1 keeps everything. */
  density: number;
  majoritySignMethod: SignMethod;
  rng: SeededRandom;
}

/** Keeps the ⌊density·n⌋ entries of largest magnitude (earlier index first among equals). */
export function trimByMagnitude(t: Float64Array, density: number): Float64Array {
  if (density >= 1) return t;
  const keep = Math.floor(density * t.length);
  const order = Array.from(t.keys()).sort((i, j) => Math.abs(t[j]) - Math.abs(t[i]) || i - j);
  const out = new Float64Array(t.length);
  for (let n = 0; n < keep; n++) out[order[n]] = t[order[n]];
  return out;
}

/** DARE: keeps each entry with probability `density`, scaled by 1/density; drops the rest. */
export function dropAndRescale(t: Float64Array, density: number, rng: SeededRandom): Float64Array {
  if (density >= 1) return t;
  const out = new Float64Array(t.length);
  // density 0 drops everything (no 0/0).
  for (let i = 0; i < t.length; i++) if (rng.next() < density) out[i] = t[i] / density;
  return out;
}

/** Per entry, +1 or −1: the sign the tensors elect (ties go to +1). */
export function electSigns(tensors: Float64Array[], method: SignMethod): Int8Array {
  const n = tensors[0].length;
  const out = new Int8Array(n);
  for (let i = 0; i < n; i++) {
    let score = 0;
    for (const t of tensors) score += method === 'total' ? t[i] : Math.sign(t[i]);
    out[i] = score >= 0 ? 1 : -1;
  }
  return out;
}

/** Mean over tensors of wₖ·tₖ, counting only those whose (unweighted) sign agrees with the elected one. */
function disjointMerge(tensors: Float64Array[], weights: number[], signs: Int8Array): Float64Array {
  const out = new Float64Array(signs.length);
  for (let i = 0; i < signs.length; i++) {
    let sum = 0, count = 0;
    tensors.forEach((t, k) => {
      if (Math.sign(t[i]) === signs[i]) {
        sum += weights[k] * t[i];
        count++;
      }
    });
    out[i] = sum / Math.max(count, 1);
  }
  return out;
}

function weightedSum(tensors: Float64Array[], weights: number[]): Float64Array {
  const out = new Float64Array(tensors[0].length);
  tensors.forEach((t, k) => {
    for (let i = 0; i < t.length; i++) out[i] += weights[k] * t[i];
  });
  return out;
}

/** Combines same-shape tensors (flat, row-major) with one weight each by `rule`. */
export function mergeTensors(rule: MergeRule, tensors: Float64Array[], weights: number[], p: MergeParams): Float64Array {
  switch (rule) {
    case 'linear':
      return weightedSum(tensors, weights);
    case 'magnitude_prune':
      return weightedSum(tensors.map((t) => trimByMagnitude(t, p.density)), weights);
    case 'dare_linear':
      return weightedSum(tensors.map((t) => dropAndRescale(t, p.density, p.rng)), weights);
    case 'ties':
    case 'dare_ties': {
      const kept = tensors.map((t) => (rule === 'ties' ? trimByMagnitude(t, p.density) : dropAndRescale(t, p.density, p.rng)));
      return disjointMerge(kept, weights, electSigns(kept, p.majoritySignMethod));
    }
  }
}
