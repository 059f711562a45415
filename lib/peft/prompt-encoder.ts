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

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

/** One direction of one LSTM layer over a sequence, with what its backward needs. */
interface LstmRun {
  x: Vec;       // [P, in]
  gates: Vec;   // [P, 4h] after the nonlinearities: i, f, g, o (PyTorch's order)
  c: Vec;       // [P, h] cell states
  h: Vec;       // [P, h] outputs
}

/**
 * P-tuning's LSTM encoder: embedding [P, d] → bidirectional LSTM (encoder_num_layers, hidden h)
 * → Linear(2h, 2h) → ReLU → Linear(2h, d). Parameters as PyTorch names them
 * (lstm_head.weight_ih_l0, ..._reverse; mlp_head.0 / mlp_head.2).
 */
export class LstmPromptEncoder extends PromptEncoder {
  private cache?: { e: Vec; runs: LstmRun[][]; layerOut: Vec[]; m1: Vec; w: Vec[] };

  constructor(prefix: string, private readonly P: number, private readonly d: number, private readonly hidden: number, private readonly layers: number, seed: number) {
    super(seed);
    this.param(`${prefix}.embedding.weight`, [P, d], () => this.rng.normal());
    const bound = 1 / Math.sqrt(hidden);
    const u = () => this.rng.uniform(-bound, bound);
    for (let l = 0; l < layers; l++) {
      const inF = l === 0 ? d : 2 * hidden;
      for (const dir of ['', '_reverse']) {
        this.param(`${prefix}.lstm_head.weight_ih_l${l}${dir}`, [4 * hidden, inF], u);
        this.param(`${prefix}.lstm_head.weight_hh_l${l}${dir}`, [4 * hidden, hidden], u);
        this.param(`${prefix}.lstm_head.bias_ih_l${l}${dir}`, [4 * hidden], u);
        this.param(`${prefix}.lstm_head.bias_hh_l${l}${dir}`, [4 * hidden], u);
      }
    }
    this.linear(`${prefix}.mlp_head.0`, 2 * hidden, 2 * hidden);
    this.linear(`${prefix}.mlp_head.2`, 2 * hidden, d);
  }

  /** Parameter index of (layer, direction, which): 1 + 8·layer + 4·direction + which. */
  private at(layer: number, reverse: boolean, which: number): number {
    return 1 + 8 * layer + 4 * (reverse ? 1 : 0) + which;
  }

  private runDirection(x: Vec, inF: number, w: Vec[], layer: number, reverse: boolean): LstmRun {
    const { P, hidden: h } = this;
    const [wih, whh, bih, bhh] = [0, 1, 2, 3].map((k) => w[this.at(layer, reverse, k)]);
    const gates = new Float64Array(P * 4 * h), c = new Float64Array(P * h), out = new Float64Array(P * h);
    let prevH = new Float64Array(h), prevC = new Float64Array(h);
    for (let s = 0; s < P; s++) {
      const t = reverse ? P - 1 - s : s;
      for (let r = 0; r < 4 * h; r++) {
        let z = bih[r] + bhh[r];
        for (let k = 0; k < inF; k++) z += wih[r * inF + k] * x[t * inF + k];
        for (let k = 0; k < h; k++) z += whh[r * h + k] * prevH[k];
        const gate = Math.floor(r / h);  // 0 i, 1 f, 2 g, 3 o
        gates[t * 4 * h + r] = gate === 2 ? Math.tanh(z) : sigmoid(z);
      }
      const g = gates.subarray(t * 4 * h, (t + 1) * 4 * h);
      for (let k = 0; k < h; k++) {
        c[t * h + k] = g[h + k] * prevC[k] + g[k] * g[2 * h + k];
        out[t * h + k] = g[3 * h + k] * Math.tanh(c[t * h + k]);
      }
      prevH = out.slice(t * h, (t + 1) * h);
      prevC = c.slice(t * h, (t + 1) * h);
    }
    return { x, gates, c, h: out };
  }

  forward(): Float32Array {
    const w = this.params.map((p) => this.values(p));
    const { P, hidden: h } = this;
    let input = w[0], inF = this.d;
    const runs: LstmRun[][] = [], layerOut: Vec[] = [];
    for (let l = 0; l < this.layers; l++) {
      const fwd = this.runDirection(input, inF, w, l, false), bwd = this.runDirection(input, inF, w, l, true);
      const out = new Float64Array(P * 2 * h);
      for (let t = 0; t < P; t++) {
        out.set(fwd.h.subarray(t * h, (t + 1) * h), t * 2 * h);
        out.set(bwd.h.subarray(t * h, (t + 1) * h), t * 2 * h + h);
      }
      runs.push([fwd, bwd]);
      layerOut.push(out);
      input = out;
      inF = 2 * h;
    }
    const m = 1 + 8 * this.layers;
    const m1 = affine(input, P, 2 * h, w[m], w[m + 1], 2 * h).map((v) => Math.max(v, 0));
    this.cache = { e: w[0], runs, layerOut, m1, w };
    return Float32Array.from(affine(m1, P, 2 * h, w[m + 2], w[m + 3], this.d));
  }

  /** Backpropagation through time for one direction; adds parameter gradients, returns d input [P, in]. */
  private backDirection(run: LstmRun, dOut: Vec, inF: number, w: Vec[], g: Vec[], layer: number, reverse: boolean): Vec {
    const { P, hidden: h } = this;
    const [wih, whh] = [w[this.at(layer, reverse, 0)], w[this.at(layer, reverse, 1)]];
    const [gih, ghh, gbih, gbhh] = [0, 1, 2, 3].map((k) => g[this.at(layer, reverse, k)]);
    const dx = new Float64Array(P * inF);
    let dhNext = new Float64Array(h), dcNext = new Float64Array(h);
    for (let s = P - 1; s >= 0; s--) {
      const t = reverse ? P - 1 - s : s;
      const prev = reverse ? t + 1 : t - 1;  // the step before t in this direction's order
      const hasPrev = s > 0;
      const gt = run.gates.subarray(t * 4 * h, (t + 1) * 4 * h);
      const dz = new Float64Array(4 * h);
      const dcPrev = new Float64Array(h);
      for (let k = 0; k < h; k++) {
        const dh = dOut[t * h + k] + dhNext[k];
        const tc = Math.tanh(run.c[t * h + k]);
        const dc = dcNext[k] + dh * gt[3 * h + k] * (1 - tc * tc);
        const cPrev = hasPrev ? run.c[prev * h + k] : 0;
        dz[k] = dc * gt[2 * h + k] * gt[k] * (1 - gt[k]);                 // i
        dz[h + k] = dc * cPrev * gt[h + k] * (1 - gt[h + k]);             // f
        dz[2 * h + k] = dc * gt[k] * (1 - gt[2 * h + k] * gt[2 * h + k]); // g
        dz[3 * h + k] = dh * tc * gt[3 * h + k] * (1 - gt[3 * h + k]);    // o
        dcPrev[k] = dc * gt[h + k];
      }
      const dhPrev = new Float64Array(h);
      for (let r = 0; r < 4 * h; r++) {
        const z = dz[r];
        gbih[r] += z;
        gbhh[r] += z;
        for (let k = 0; k < inF; k++) {
          gih[r * inF + k] += z * run.x[t * inF + k];
          dx[t * inF + k] += z * wih[r * inF + k];
        }
        if (hasPrev) for (let k = 0; k < h; k++) {
          ghh[r * h + k] += z * run.h[prev * h + k];
          dhPrev[k] += z * whh[r * h + k];
        }
      }
      dhNext = dhPrev;
      dcNext = dcPrev;
    }
    return dx;
  }

  backward(dOut: Float32Array): Map<string, Tensor> {
    const { runs, layerOut, m1, w } = this.cache!;
    const { P, hidden: h } = this;
    const g: Vec[] = this.params.map((p) => new Float64Array(p.tensor.size));
    const m = 1 + 8 * this.layers;
    const top = layerOut[this.layers - 1];
    const dm1 = affineBackward(Float64Array.from(dOut), m1, P, 2 * h, w[m + 2], this.d, g[m + 2], g[m + 3]).map((v, i) => (m1[i] > 0 ? v : 0));
    let dLayer = affineBackward(dm1, top, P, 2 * h, w[m], 2 * h, g[m], g[m + 1]);
    for (let l = this.layers - 1; l >= 0; l--) {
      const inF = l === 0 ? this.d : 2 * h;
      const dF = new Float64Array(P * h), dB = new Float64Array(P * h);
      for (let t = 0; t < P; t++) {
        dF.set(dLayer.subarray(t * 2 * h, t * 2 * h + h), t * h);
        dB.set(dLayer.subarray(t * 2 * h + h, (t + 1) * 2 * h), t * h);
      }
      const dx1 = this.backDirection(runs[l][0], dF, inF, w, g, l, false);
      const dx2 = this.backDirection(runs[l][1], dB, inF, w, g, l, true);
      dLayer = dx1.map((v, i) => v + dx2[i]);
    }
    g[0] = dLayer;
    return toGrads(this.params, g);
  }
}
