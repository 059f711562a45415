/**
 * Choosing the next token from logits, as transformers' generation does: repetition penalty, then
 * temperature, top-k and top-p (nucleus) filtering, then sampling with a seeded generator; a
 * temperature of 0 is greedy decoding.
 */
import { fail, optionalNumber, optionsObject } from '../validate';

/** Sampling settings (see {@link GenerateOptions}). */
export interface SamplingOptions {
  /** 0 (default) picks the most likely token; above 0 samples from softmax(logits / temperature). */
  temperature?: number;
  /** Keep only the k most likely tokens (0 = all). */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches p (1 = all). */
  topP?: number;
  /** > 1 makes tokens already in the sequence less likely (transformers' rule). Default 1. */
  repetitionPenalty?: number;
  /** Seed of the sampler, for reproducible samples. */
  seed?: number;
}

/** A seeded generator of uniform numbers in [0, 1) (mulberry32). */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Picks next tokens for one sequence. */
export class Sampler {
  private readonly temperature: number;
  private readonly topK: number;
  private readonly topP: number;
  private readonly penalty: number;
  private readonly random: () => number;

  constructor(options?: SamplingOptions) {
    const o = optionsObject(options);
    this.temperature = optionalNumber(o, 'temperature', 0, { min: 0 });
    this.topK = optionalNumber(o, 'topK', 0, { min: 0, integer: true });
    this.topP = optionalNumber(o, 'topP', 1, { min: 0, max: 1 });
    this.penalty = optionalNumber(o, 'repetitionPenalty', 1, { min: 0 });
    if (this.penalty === 0) fail('option repetitionPenalty', 'a number > 0', 0, 'E_RANGE');
    this.random = seeded(optionalNumber(o, 'seed', Date.now() % 2 ** 32, { integer: true }));
  }

  /** The next token given the logits [vocab] and the tokens so far. */
  next(logits: Float32Array, previous: readonly number[]): number {
    const scores = Float64Array.from(logits);
    if (this.penalty !== 1) {
      for (const id of new Set(previous)) scores[id] = scores[id] > 0 ? scores[id] / this.penalty : scores[id] * this.penalty;
    }
    if (this.temperature === 0) {
      let best = 0;
      for (let i = 1; i < scores.length; i++) if (scores[i] > scores[best]) best = i;
      return best;
    }
    // Candidates by descending score, cut by top-k, then softmax, then cut by top-p.
    let order = Array.from(scores.keys()).sort((a, b) => scores[b] - scores[a]);
    if (this.topK > 0) order = order.slice(0, this.topK);
    const max = scores[order[0]];
    const weights = order.map((id) => Math.exp((scores[id] - max) / this.temperature));
    const total = weights.reduce((a, b) => a + b, 0);
    let keep = order.length;
    if (this.topP < 1) {
      let cumulative = 0;
      for (let i = 0; i < order.length; i++) {
        cumulative += weights[i] / total;
        if (cumulative >= this.topP) {
          keep = i + 1;
          break;
        }
      }
    }
    const kept = weights.slice(0, keep);
    let u = this.random() * kept.reduce((a, b) => a + b, 0);
    for (let i = 0; i < keep; i++) {
      u -= kept[i];
      if (u <= 0) return order[i];
    }
    return order[keep - 1];
  }
}
