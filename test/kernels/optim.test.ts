import { ops, tensor, zeros, type Tensor } from '../../lib';
import { SUPPORTED_ISAS, reportUnsupported, withIsa } from '../helpers/isa';
import { randomArray, rng } from '../helpers/random';

// Sizes: a scalar, odd sizes, and one past the kernels' 16384-element parallel chunk.
const SIZES: number[][] = [[1], [17], [3, 7], [16384 + 37]];
const STEPS = 100;

function randomTensors(random: () => number, scale = 1): { tensors: Tensor[]; values: Float64Array[] } {
  const values = SIZES.map((shape) => Float64Array.from(randomArray(random, shape.reduce((a, b) => a * b, 1), scale)));
  return { tensors: values.map((v, i) => tensor(Float32Array.from(v), SIZES[i])), values };
}

function expectNear(actual: Float32Array, expected: Float64Array, tolerance: number, label: string): void {
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i] - expected[i]) / (1 + Math.abs(expected[i]));
    if (!(err <= tolerance)) throw new Error(`${label}: element ${i} is ${actual[i]}, reference ${expected[i]}`);
  }
}

/** torch.optim.AdamW's documented algorithm, in float64. */
function adamwReference(p: Float64Array, g: Float64Array, m: Float64Array, v: Float64Array, t: number, h: Required<Omit<ops.AdamWOptions, 'step'>>) {
  for (let i = 0; i < p.length; i++) {
    p[i] -= h.lr * h.weightDecay * p[i];
    m[i] = h.beta1 * m[i] + (1 - h.beta1) * g[i];
    v[i] = h.beta2 * v[i] + (1 - h.beta2) * g[i] * g[i];
    const mHat = m[i] / (1 - h.beta1 ** t);
    const vHat = v[i] / (1 - h.beta2 ** t);
    p[i] -= (h.lr * mHat) / (Math.sqrt(vHat) + h.eps);
  }
}

/** torch.optim.SGD's documented algorithm, in float64. */
function sgdReference(p: Float64Array, g: Float64Array, b: Float64Array, t: number, h: Required<Omit<ops.SgdOptions, 'step'>>) {
  for (let i = 0; i < p.length; i++) {
    let d = g[i] + h.weightDecay * p[i];
    if (h.momentum !== 0) {
      b[i] = t > 1 ? h.momentum * b[i] + (1 - h.dampening) * d : d;
      d = h.nesterov ? d + h.momentum * b[i] : b[i];
    }
    p[i] -= h.lr * d;
  }
}

describe('ops.adamw: 100 steps against a step-by-step float64 reference', () => {
  const configs = [
    { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 },
    { lr: 3e-2, beta1: 0.8, beta2: 0.95, eps: 1e-6, weightDecay: 0 },
  ];
  for (const isa of SUPPORTED_ISAS) {
    configs.forEach((h, ci) => {
      it(`${isa}, config ${ci}`, () => {
        withIsa(isa, () => {
          const random = rng(40 + ci);
          const params = randomTensors(random);
          const m = SIZES.map((s) => zeros(s));
          const v = SIZES.map((s) => zeros(s));
          const refM = params.values.map((x) => new Float64Array(x.length));
          const refV = params.values.map((x) => new Float64Array(x.length));
          for (let t = 1; t <= STEPS; t++) {
            const grads = randomTensors(random, 0.5);
            ops.adamw(params.tensors, grads.tensors, { expAvg: m, expAvgSq: v }, { ...h, step: t });
            params.values.forEach((p, i) => adamwReference(p, grads.values[i], refM[i], refV[i], t, h));
            params.tensors.forEach((p, i) => expectNear(p.toFloat32Array(), params.values[i], 2e-5, `step ${t} tensor ${i}`));
          }
          m.forEach((mt, i) => expectNear(mt.toFloat32Array(), refM[i], 1e-5, `exp_avg ${i}`));
          v.forEach((vt, i) => expectNear(vt.toFloat32Array(), refV[i], 1e-5, `exp_avg_sq ${i}`));
        });
      });
    });
  }
  reportUnsupported('adamw');
});

describe('ops.sgd: 100 steps against a step-by-step float64 reference', () => {
  const configs = [
    { lr: 0.1, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false },
    { lr: 0.05, momentum: 0.9, dampening: 0, weightDecay: 0, nesterov: false },
    { lr: 0.05, momentum: 0.9, dampening: 0.1, weightDecay: 0.01, nesterov: false },
    { lr: 0.02, momentum: 0.9, dampening: 0, weightDecay: 1e-3, nesterov: true },
  ];
  for (const isa of SUPPORTED_ISAS) {
    configs.forEach((h, ci) => {
      it(`${isa}, momentum ${h.momentum}, dampening ${h.dampening}, wd ${h.weightDecay}, nesterov ${h.nesterov}`, () => {
        withIsa(isa, () => {
          const random = rng(70 + ci);
          const params = randomTensors(random);
          const bufs = h.momentum ? SIZES.map((s) => zeros(s)) : null;
          const refB = params.values.map((x) => new Float64Array(x.length));
          for (let t = 1; t <= STEPS; t++) {
            const grads = randomTensors(random, 0.1);
            ops.sgd(params.tensors, grads.tensors, bufs, { ...h, step: t });
            params.values.forEach((p, i) => sgdReference(p, grads.values[i], refB[i], t, h));
            params.tensors.forEach((p, i) => expectNear(p.toFloat32Array(), params.values[i], 2e-5, `step ${t} tensor ${i}`));
          }
        });
      });
    });
  }
  reportUnsupported('sgd');
});

describe('ops.clipGradNorm', () => {
  for (const isa of SUPPORTED_ISAS) {
    it(`${isa}: returns the global L2 norm and scales by maxNorm / (norm + 1e-6) only when above it`, () => {
      withIsa(isa, () => {
        const grads = randomTensors(rng(5));
        const norm = Math.sqrt(grads.values.reduce((s, v) => s + v.reduce((a, x) => a + x * x, 0), 0));
        // Below the threshold: untouched.
        expect(ops.clipGradNorm(grads.tensors, norm * 2)).toBeCloseTo(norm, 6);
        grads.tensors.forEach((t, i) => expectNear(t.toFloat32Array(), grads.values[i], 1e-7, 'unclipped'));
        // Above: scaled.
        const maxNorm = norm / 4;
        expect(Math.abs(ops.clipGradNorm(grads.tensors, maxNorm) - norm) / norm).toBeLessThan(1e-7);
        const coef = maxNorm / (norm + 1e-6);
        grads.tensors.forEach((t, i) => expectNear(t.toFloat32Array(), grads.values[i].map((x) => x * coef), 1e-6, 'clipped'));
        const after = grads.tensors.reduce((s, t) => s + t.toFloat32Array().reduce((a, x) => a + x * x, 0), 0);
        expect(Math.sqrt(after)).toBeCloseTo(maxNorm, 4);
      });
    });
  }
  reportUnsupported('clipGradNorm');
});
