/**
 * Reparameterisations of virtual tokens, as Hugging Face PEFT trains them: prefix tuning's
 * projection (embedding → Linear → tanh → Linear to every layer's keys and values) and P-tuning's
 * prompt encoders (MLP, or a bidirectional LSTM followed by an MLP). The native model computes the
 * gradient of its virtual tokens; these small networks run in float64 JavaScript (P rows only) and
 * carry that gradient back to their own weights. What is saved is their output, as PEFT does.
 * @internal
 */
import { tensor, type Tensor } from '../tensor';
import { SeededRandom } from './random';

type Vec = Float64Array<ArrayBuffer>;

/** y[n, out] = x[n, in]·Wᵀ + b */
function affine(x: Vec, n: number, inF: number, w: Vec, b: Vec, out: number): Vec {
  const y = new Float64Array(n * out);
  for (let i = 0; i < n; i++) {
    for (let o = 0; o < out; o++) {
      let s = b[o];
      for (let k = 0; k < inF; k++) s += x[i * inF + k] * w[o * inF + k];
      y[i * out + o] = s;
    }
  }
  return y;
}

/** Gradients of y = x·Wᵀ + b: adds into dw [out, in] and db [out]; returns dx [n, in]. */
function affineBackward(dy: Vec, x: Vec, n: number, inF: number, w: Vec, out: number, dw: Vec, db: Vec): Vec {
  const dx = new Float64Array(n * inF);
  for (let i = 0; i < n; i++) {
    for (let o = 0; o < out; o++) {
      const g = dy[i * out + o];
      if (g === 0) continue;
      db[o] += g;
      for (let k = 0; k < inF; k++) {
        dw[o * inF + k] += g * x[i * inF + k];
        dx[i * inF + k] += g * w[o * inF + k];
      }
    }
  }
  return dx;
}

/** A named parameter of an encoder: JS-owned f32 storage shared with the optimizer. */
export interface EncoderParam {
  name: string;
  tensor: Tensor;
  shape: number[];
}

export abstract class PromptEncoder {
  readonly params: EncoderParam[] = [];
  protected readonly rng: SeededRandom;

  constructor(seed: number) {
    this.rng = new SeededRandom(seed);
  }

  protected param(name: string, shape: number[], init: (i: number) => number): EncoderParam {
    const n = shape.reduce((a, b) => a * b, 1);
    const p = { name, shape, tensor: tensor(Float32Array.from({ length: n }, (_, i) => init(i)), shape) };
    this.params.push(p);
    return p;
  }

  /** PyTorch's nn.Linear initialisation: U(±1/√in) for weight and bias. */
  protected linear(prefix: string, inF: number, out: number): [EncoderParam, EncoderParam] {
    const bound = 1 / Math.sqrt(inF);
    return [
      this.param(`${prefix}.weight`, [out, inF], () => this.rng.uniform(-bound, bound)),
      this.param(`${prefix}.bias`, [out], () => this.rng.uniform(-bound, bound)),
    ];
  }

  protected values(p: EncoderParam): Vec {
    return Float64Array.from(p.tensor.toFloat32Array());
  }

  /** The virtual tokens (prompt tuning) or keys and values (prefix tuning): [P, width]. */
  abstract forward(): Float32Array;
  /** Given d output [P, width] (of the last forward), the gradient of every parameter, by name. */
  abstract backward(dOut: Float32Array): Map<string, Tensor>;
}

function toGrads(params: EncoderParam[], grads: Vec[]): Map<string, Tensor> {
  return new Map(params.map((p, i) => [p.name, tensor(Float32Array.from(grads[i]), p.shape)]));
}

/** Prefix tuning with prefix_projection: embedding [P, d] → Linear(d, h) → tanh → Linear(h, width). */
export class PrefixProjection extends PromptEncoder {
  private cache?: { e: Vec; h: Vec; w1: Vec; w2: Vec };

  constructor(prefix: string, private readonly P: number, private readonly d: number, private readonly hidden: number, private readonly width: number, seed: number) {
    super(seed);
    this.param(`${prefix}.embedding.weight`, [P, d], () => this.rng.normal());
    this.linear(`${prefix}.transform.0`, d, hidden);
    this.linear(`${prefix}.transform.2`, hidden, width);
  }

  forward(): Float32Array {
    const [emb, w1, b1, w2, b2] = this.params.map((p) => this.values(p));
    const h = affine(emb, this.P, this.d, w1, b1, this.hidden).map(Math.tanh);
    this.cache = { e: emb, h, w1, w2 };
    return Float32Array.from(affine(h, this.P, this.hidden, w2, b2, this.width));
  }

  backward(dOut: Float32Array): Map<string, Tensor> {
    const { e, h, w1, w2 } = this.cache!;
    const g: Vec[] = this.params.map((p) => new Float64Array(p.tensor.size));
    const dh = affineBackward(Float64Array.from(dOut), h, this.P, this.hidden, w2, this.width, g[3], g[4]);
    const dpre = dh.map((v, i) => v * (1 - h[i] * h[i]));
    g[0] = affineBackward(dpre, e, this.P, this.d, w1, this.hidden, g[1], g[2]);
    return toGrads(this.params, g);
  }
}

/** P-tuning's MLP encoder: embedding [P, d] → Linear(d, h) → ReLU → Linear(h, h) → ReLU → Linear(h, d). */
export class MlpPromptEncoder extends PromptEncoder {
  private cache?: { e: Vec; a1: Vec; a2: Vec; w: Vec[] };

  constructor(prefix: string, private readonly P: number, private readonly d: number, private readonly hidden: number, seed: number) {
    super(seed);
    this.param(`${prefix}.embedding.weight`, [P, d], () => this.rng.normal());
    this.linear(`${prefix}.mlp_head.0`, d, hidden);
    this.linear(`${prefix}.mlp_head.2`, hidden, hidden);
    this.linear(`${prefix}.mlp_head.4`, hidden, d);
  }

  forward(): Float32Array {
    const [e, w1, b1, w2, b2, w3, b3] = this.params.map((p) => this.values(p));
    const a1 = affine(e, this.P, this.d, w1, b1, this.hidden).map((v) => Math.max(v, 0));
    const a2 = affine(a1, this.P, this.hidden, w2, b2, this.hidden).map((v) => Math.max(v, 0));
    this.cache = { e, a1, a2, w: [w1, w2, w3] };
    return Float32Array.from(affine(a2, this.P, this.hidden, w3, b3, this.d));
  }

  backward(dOut: Float32Array): Map<string, Tensor> {
    const { e, a1, a2, w } = this.cache!;
    const g: Vec[] = this.params.map((p) => new Float64Array(p.tensor.size));
    const da2 = affineBackward(Float64Array.from(dOut), a2, this.P, this.hidden, w[2], this.d, g[5], g[6]).map((v, i) => (a2[i] > 0 ? v : 0));
    const da1 = affineBackward(da2, a1, this.P, this.hidden, w[1], this.hidden, g[3], g[4]).map((v, i) => (a1[i] > 0 ? v : 0));
    g[0] = affineBackward(da1, e, this.P, this.d, w[0], this.hidden, g[1], g[2]);
    return toGrads(this.params, g);
  }
}
