/**
 * Transformer-layer kernels (RMSNorm, LayerNorm, RoPE, SwiGLU, GELU, cross-entropy, embedding):
 * forwards against float64 references written from the math (Hugging Face semantics), backwards
 * against central finite differences and the analytic float64 gradients, every supported
 * instruction set against scalar, on odd sizes.
 */
import { ops, PeftError, tensor } from '../../lib';
import { SUPPORTED_ISAS, reportUnsupported, withIsa } from '../helpers/isa';
import { randomArray, rng } from '../helpers/random';
import { maxRelativeError } from '../helpers/reference';

const DIMS = [1, 3, 65, 576];

function rand(seed: number, n: number, scale = 1): Float32Array {
  return randomArray(rng(seed), n, scale);
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** Runs fn on every supported ISA; checks each against the f64 references and against scalar. */
function onEveryIsa(fn: () => Float32Array[], refs: ArrayLike<number>[], tol: number, isaTol = tol): void {
  const scalar = withIsa('scalar', fn);
  scalar.forEach((out, i) => expect(maxRelativeError(out, refs[i])).toBeLessThan(tol));
  for (const isa of SUPPORTED_ISAS) {
    const outs = withIsa(isa, fn);
    outs.forEach((out, i) => {
      expect([isa, i, maxRelativeError(out, refs[i]) < tol]).toEqual([isa, i, true]);
      expect([isa, i, maxRelativeError(out, scalar[i]) < isaTol]).toEqual([isa, i, true]);
    });
  }
}

/**
 * Central differences of loss(values) at up to `samples` coordinates against analytic[i].
 * loss takes the perturbed f32 values; h is large enough for f32 forwards.
 */
function finiteDifferences(
  loss: (values: Float32Array) => number,
  base: Float32Array,
  analytic: ArrayLike<number>,
  { h = 1e-2, tol = 3e-3, samples = 12 } = {},
): void {
  const step = Math.max(1, Math.floor(base.length / samples));
  for (let i = 0; i < base.length; i += step) {
    const plus = base.slice();
    plus[i] += h;
    const minus = base.slice();
    minus[i] -= h;
    const numeric = (loss(plus) - loss(minus)) / (2 * h);
    expect([i, Math.abs(numeric - analytic[i]) < tol * (1 + Math.abs(analytic[i]))]).toEqual([i, true]);
  }
}

function expectCode(fn: () => unknown, code: string, message?: RegExp): void {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(PeftError);
    expect((e as PeftError).code).toBe(code);
    if (message) expect((e as PeftError).message).toMatch(message);
    return;
  }
  throw new Error(`expected a PeftError with code ${code}`);
}

// ---------------------------------------------------------------- RMSNorm

function rmsRef(x: Float32Array, w: Float32Array, dy: Float32Array, rows: number, dim: number, eps: number) {
  const y = new Float64Array(rows * dim), dx = new Float64Array(rows * dim), dw = new Float64Array(dim);
  for (let r = 0; r < rows; r++) {
    let ss = 0, gx = 0;
    for (let j = 0; j < dim; j++) ss += x[r * dim + j] ** 2;
    const rs = 1 / Math.sqrt(ss / dim + eps);
    for (let j = 0; j < dim; j++) gx += w[j] * dy[r * dim + j] * x[r * dim + j];
    for (let j = 0; j < dim; j++) {
      const i = r * dim + j;
      y[i] = x[i] * rs * w[j];
      dx[i] = rs * w[j] * dy[i] - (x[i] * rs ** 3 * gx) / dim;
      dw[j] += dy[i] * x[i] * rs;
    }
  }
  return { y, dx, dw };
}

describe('ops.rmsnormForward / rmsnormBackward', () => {
  DIMS.forEach((dim, k) => {
    it(`dim ${dim}: forward and analytic backward against float64, every ISA`, () => {
      const rows = 5, eps = 1e-6;
      const xa = rand(10 + k, rows * dim, 2), wa = rand(20 + k, dim), dya = rand(30 + k, rows * dim);
      const x = tensor(xa, [1, rows, dim]), w = tensor(wa, [dim]), dy = tensor(dya, [1, rows, dim]);
      const ref = rmsRef(xa, wa, dya, rows, dim, eps);
      onEveryIsa(() => {
        const f = ops.rmsnormForward(x, w, { eps });
        expect(f.rstd.shape).toEqual([1, rows]);
        const b = ops.rmsnormBackward(dy, x, w, f.rstd);
        return [f.y.toFloat32Array(), b.dx!.toFloat32Array(), b.gradWeight.toFloat32Array()];
      }, [ref.y, ref.dx, ref.dw], 2e-5);
    });
  });
  reportUnsupported('rmsnorm');

  it('backward matches central finite differences of Σ y ⊙ dy', () => {
    const rows = 3, dim = 7, eps = 1e-5;
    const xa = rand(1, rows * dim, 2), wa = rand(2, dim), dya = rand(3, rows * dim);
    const w = tensor(wa, [dim]), dy = tensor(dya, [rows, dim]), x = tensor(xa, [rows, dim]);
    const f = ops.rmsnormForward(x, w, { eps });
    const g = ops.rmsnormBackward(dy, x, w, f.rstd);
    const lossX = (v: Float32Array) => dot(ops.rmsnormForward(tensor(v, [rows, dim]), w, { eps }).y.toFloat32Array(), dya);
    const lossW = (v: Float32Array) => dot(ops.rmsnormForward(x, tensor(v, [dim]), { eps }).y.toFloat32Array(), dya);
    finiteDifferences(lossX, xa, g.dx!.toFloat32Array(), { samples: 30 });
    finiteDifferences(lossW, wa, g.gradWeight.toFloat32Array(), { samples: 30 });
  });

  it('accumulates into gradWeight and skips dx when not needed', () => {
    const x = tensor(rand(4, 6), [2, 3]), w = tensor(rand(5, 3), [3]), dy = tensor(rand(6, 6), [2, 3]);
    const { rstd } = ops.rmsnormForward(x, w);
    const once = ops.rmsnormBackward(dy, x, w, rstd).gradWeight.toFloat32Array();
    const gradWeight = tensor(new Float32Array([1, 1, 1]), [3]);
    const r = ops.rmsnormBackward(dy, x, w, rstd, { gradWeight, accumulate: true, needDx: false });
    expect(r.dx).toBeNull();
    expect(r.gradWeight).toBe(gradWeight);
    expect(maxRelativeError(gradWeight.toFloat32Array(), Array.from(once, (v) => v + 1))).toBeLessThan(1e-6);
  });
});

// ---------------------------------------------------------------- LayerNorm

function lnRef(x: Float32Array, w: Float32Array, b: Float32Array, dy: Float32Array, rows: number, dim: number, eps: number) {
  const y = new Float64Array(rows * dim), dx = new Float64Array(rows * dim), dw = new Float64Array(dim), db = new Float64Array(dim);
  for (let r = 0; r < rows; r++) {
    let mu = 0, v = 0, sg = 0, sgx = 0;
    for (let j = 0; j < dim; j++) mu += x[r * dim + j] / dim;
    for (let j = 0; j < dim; j++) v += (x[r * dim + j] - mu) ** 2 / dim;
    const rs = 1 / Math.sqrt(v + eps);
    const xh = (j: number) => (x[r * dim + j] - mu) * rs;
    for (let j = 0; j < dim; j++) {
      sg += w[j] * dy[r * dim + j];
      sgx += w[j] * dy[r * dim + j] * xh(j);
    }
    for (let j = 0; j < dim; j++) {
      const i = r * dim + j;
      y[i] = xh(j) * w[j] + b[j];
      dx[i] = rs * (w[j] * dy[i] - sg / dim - (xh(j) * sgx) / dim);
      dw[j] += dy[i] * xh(j);
      db[j] += dy[i];
    }
  }
  return { y, dx, dw, db };
}

describe('ops.layernormForward / layernormBackward', () => {
  DIMS.forEach((dim, k) => {
    it(`dim ${dim}: forward and analytic backward against float64`, () => {
      const rows = 4, eps = 1e-5;
      // A large mean: the two-pass variance must not cancel.
      const xa = rand(40 + k, rows * dim, 2).map((v) => v + 30), wa = rand(50 + k, dim), ba = rand(60 + k, dim), dya = rand(70 + k, rows * dim);
      const x = tensor(xa, [rows, dim]), w = tensor(wa, [dim]), b = tensor(ba, [dim]), dy = tensor(dya, [rows, dim]);
      const ref = lnRef(xa, wa, ba, dya, rows, dim, eps);
      onEveryIsa(() => {
        const f = ops.layernormForward(x, w, b, { eps });
        const g = ops.layernormBackward(dy, x, w, f.mean, f.rstd);
        return [f.y.toFloat32Array(), g.dx!.toFloat32Array(), g.gradWeight.toFloat32Array(), g.gradBias.toFloat32Array()];
      }, [ref.y, ref.dx, ref.dw, ref.db], dim === 1 ? 1e-3 : 3e-5);
    });
  });

  it('backward matches central finite differences, and works without a bias', () => {
    const rows = 3, dim = 6, eps = 1e-5;
    const xa = rand(7, rows * dim, 2), wa = rand(8, dim), ba = rand(9, dim), dya = rand(10, rows * dim);
    const x = tensor(xa, [rows, dim]), w = tensor(wa, [dim]), b = tensor(ba, [dim]);
    const f = ops.layernormForward(x, w, b, { eps });
    const g = ops.layernormBackward(tensor(dya, [rows, dim]), x, w, f.mean, f.rstd);
    const y = (xv: Float32Array, wv: Float32Array, bv: Float32Array) =>
      dot(ops.layernormForward(tensor(xv, [rows, dim]), tensor(wv, [dim]), tensor(bv, [dim]), { eps }).y.toFloat32Array(), dya);
    finiteDifferences((v) => y(v, wa, ba), xa, g.dx!.toFloat32Array(), { samples: 30 });
    finiteDifferences((v) => y(xa, v, ba), wa, g.gradWeight.toFloat32Array());
    finiteDifferences((v) => y(xa, wa, v), ba, g.gradBias.toFloat32Array());
    const noBias = ops.layernormForward(x, w, null, { eps }).y.toFloat32Array();
    const withBias = f.y.toFloat32Array();
    expect(maxRelativeError(noBias, Array.from(withBias, (v, i) => v - ba[i % dim]))).toBeLessThan(1e-6);
  });
});

// ---------------------------------------------------------------- RoPE

function ropeRef(x: Float32Array, pos: Int32Array, [b, s, h, d]: number[], theta: number, scale: Float32Array | null, inverse = false) {
  const half = d / 2, y = new Float64Array(x.length);
  for (let t = 0; t < b * s; t++) {
    for (let i = 0; i < half; i++) {
      const angle = pos[t] * (scale ? scale[i] : 1) * Math.pow(theta, (-2 * i) / d);
      const c = Math.cos(angle), sn = inverse ? -Math.sin(angle) : Math.sin(angle);
      for (let head = 0; head < h; head++) {
        const o = (t * h + head) * d;
        y[o + i] = x[o + i] * c - x[o + i + half] * sn;
        y[o + i + half] = x[o + i + half] * c + x[o + i] * sn;
      }
    }
  }
  return y;
}

describe('ops.rope / ropeBackward (Hugging Face rotate_half layout)', () => {
  const cases: [number[], number][] = [
    [[1, 1, 1, 2], 10000],
    [[2, 3, 3, 6], 10000],
    [[2, 5, 2, 64], 500000],
  ];
  cases.forEach(([shape, theta]) => {
    it(`shape [${shape.join(', ')}] theta ${theta}: forward against float64; backward is the inverse rotation`, () => {
      const n = shape.reduce((a, b) => a * b);
      const xa = rand(80, n);
      const pos = Int32Array.from({ length: shape[0] * shape[1] }, (_, i) => (i * 977) % 4099);
      const x = tensor(xa, shape), p = tensor(pos, [shape[0], shape[1]]);
      const ref = ropeRef(xa, pos, shape, theta, null);
      // cos/sin are rounded to f32 once per angle: about 1e-7 relative, far tighter than HF's f32 angles.
      onEveryIsa(() => [ops.rope(x, p, { theta }).toFloat32Array()], [ref], 1e-6, 1e-12);
      const y = ops.rope(x, p, { theta });
      const back = ops.ropeBackward(y, p, { theta }).toFloat32Array();
      expect(maxRelativeError(back, xa)).toBeLessThan(1e-6);
      // The backward is the adjoint: <rope(x), dy> = <x, ropeBackward(dy)>.
      const dya = rand(81, n);
      const lhs = dot(y.toFloat32Array(), dya), rhs = dot(xa, ops.ropeBackward(tensor(dya, shape), p, { theta }).toFloat32Array());
      expect(Math.abs(lhs - rhs)).toBeLessThan(1e-4 * (1 + Math.abs(lhs)));
    });
  });

  it('applies linear and llama3 frequency scaling as Hugging Face computes inv_freq', () => {
    const shape = [1, 4, 2, 16], theta = 500000;
    const xa = rand(82, 128), pos = Int32Array.from([0, 1, 2000, 8191]);
    const x = tensor(xa, shape), p = tensor(pos, [1, 4]);
    const linear = ops.ropeFrequencyScale(16, theta, { rope_type: 'linear', factor: 4 });
    expect(Array.from(linear.toFloat32Array())).toEqual(new Array(8).fill(0.25));
    const llama3 = { rope_type: 'llama3' as const, factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 };
    const scale = ops.ropeFrequencyScale(16, theta, llama3);
    // HF: high frequencies (short wavelengths) unchanged, low ones divided by factor, smooth in between.
    const sv = scale.toFloat32Array();
    expect(sv[0]).toBe(1);
    expect(sv[7]).toBeCloseTo(1 / 8, 7);
    for (const freqScale of [linear, scale]) {
      const ref = ropeRef(xa, pos, shape, theta, freqScale.toFloat32Array());
      expect(maxRelativeError(ops.rope(x, p, { theta, freqScale }).toFloat32Array(), ref)).toBeLessThan(1e-6);
    }
  });

  it('rotates in place when asked', () => {
    const x = tensor(rand(83, 24), [1, 2, 3, 4]), p = tensor(Int32Array.from([3, 7]), [1, 2]);
    const expected = ops.rope(x, p).toFloat32Array();
    expect(ops.rope(x, p, { inPlace: true })).toBe(x);
    expect(Array.from(x.toFloat32Array())).toEqual(Array.from(expected));
  });
});

// ---------------------------------------------------------------- SwiGLU and GELU

const sigmoid = (g: number) => 1 / (1 + Math.exp(-g));

describe('ops.swigluForward / swigluBackward', () => {
  [1, 3, 65, 1536 + 7].forEach((n, k) => {
    it(`n ${n}: forward and backward against float64, every ISA`, () => {
      const ga = rand(90 + k, n, 6), ua = rand(100 + k, n, 2), da = rand(110 + k, n);
      if (n > 3) ga.set([-100, 100, -20, 20, 0], 0); // the tails of σ
      const gate = tensor(ga, [n]), up = tensor(ua, [n]), dh = tensor(da, [n]);
      const h = Array.from(ga, (g, i) => g * sigmoid(g) * ua[i]);
      const dg = Array.from(ga, (g, i) => da[i] * ua[i] * sigmoid(g) * (1 + g * (1 - sigmoid(g))));
      const du = Array.from(ga, (g, i) => da[i] * g * sigmoid(g));
      onEveryIsa(() => {
        const b = ops.swigluBackward(dh, gate, up);
        return [ops.swigluForward(gate, up).toFloat32Array(), b.dGate.toFloat32Array(), b.dUp.toFloat32Array()];
      }, [h, dg, du], 1e-6);
    });
  });
  reportUnsupported('swiglu');

  it('backward matches central finite differences', () => {
    const n = 9, ga = rand(120, n, 4), ua = rand(121, n), da = rand(122, n);
    const b = ops.swigluBackward(tensor(da, [n]), tensor(ga, [n]), tensor(ua, [n]));
    const loss = (g: Float32Array, u: Float32Array) => dot(ops.swigluForward(tensor(g, [n]), tensor(u, [n])).toFloat32Array(), da);
    finiteDifferences((v) => loss(v, ua), ga, b.dGate.toFloat32Array(), { h: 1e-3, samples: n });
    finiteDifferences((v) => loss(ga, v), ua, b.dUp.toFloat32Array(), { samples: n });
  });
});

describe('ops.geluForward / geluBackward (tanh approximation)', () => {
  it('forward and backward against float64 and finite differences', () => {
    const n = 67, xa = rand(130, n, 6), da = rand(131, n);
    const k = Math.sqrt(2 / Math.PI), c = 0.044715;
    const y = Array.from(xa, (x) => 0.5 * x * (1 + Math.tanh(k * (x + c * x ** 3))));
    const dx = Array.from(xa, (x, i) => {
      const t = Math.tanh(k * (x + c * x ** 3));
      return da[i] * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * c * x * x));
    });
    const x = tensor(xa, [n]);
    onEveryIsa(() => [ops.geluForward(x).toFloat32Array(), ops.geluBackward(tensor(da, [n]), x).toFloat32Array()], [y, dx], 1e-6);
    finiteDifferences((v) => dot(ops.geluForward(tensor(v, [n])).toFloat32Array(), da), xa, ops.geluBackward(tensor(da, [n]), x).toFloat32Array(), {
      h: 1e-3,
      samples: 20,
    });
  });
});

// ---------------------------------------------------------------- cross-entropy

function ceRef(logits: Float32Array, labels: Int32Array, rows: number, vocab: number, normalizer?: number) {
  let loss = 0, count = 0;
  for (const l of labels) if (l !== -100) count++;
  const norm = normalizer ?? count;
  const grad = new Float64Array(rows * vocab);
  for (let r = 0; r < rows; r++) {
    if (labels[r] === -100) continue;
    const row = logits.subarray(r * vocab, (r + 1) * vocab);
    const m = Math.max(...row);
    let s = 0;
    for (const v of row) s += Math.exp(v - m);
    loss += Math.log(s) + m - row[labels[r]];
    for (let j = 0; j < vocab; j++) grad[r * vocab + j] = (Math.exp(row[j] - m) / s - (j === labels[r] ? 1 : 0)) / norm;
  }
  return { loss: loss / norm, grad, count };
}

describe('ops.crossEntropy', () => {
  [1, 3, 65, 4099].forEach((vocab, k) => {
    it(`vocab ${vocab} with ignored rows: loss and dlogits against float64, every ISA`, () => {
      const rows = 6;
      const la = rand(140 + k, rows * vocab, 8);
      const labels = Int32Array.from({ length: rows }, (_, r) => (r === 2 || r === 4 ? -100 : (r * 7919) % vocab));
      const logits = tensor(la, [rows, vocab]), y = tensor(labels, [rows]);
      const ref = ceRef(la, labels, rows, vocab);
      onEveryIsa(() => {
        const r = ops.crossEntropy(logits, y, { grad: true });
        expect(r.count).toBe(4);
        expect(Math.abs(r.loss - ref.loss)).toBeLessThan(1e-5 * (1 + ref.loss));
        return [r.dlogits!.toFloat32Array()];
      }, [ref.grad], 1e-6);
    });
  });
  reportUnsupported('crossEntropy');

  it('dlogits match central finite differences of the loss', () => {
    const rows = 3, vocab = 5, la = rand(150, rows * vocab, 3), labels = Int32Array.from([1, -100, 4]);
    const y = tensor(labels, [rows]);
    const g = ops.crossEntropy(tensor(la, [rows, vocab]), y, { grad: true }).dlogits!.toFloat32Array();
    finiteDifferences((v) => ops.crossEntropy(tensor(v, [rows, vocab]), y).loss, la, g, { h: 1e-3, samples: 15 });
  });

  it('stays finite for logits of 1e4 and matches float64', () => {
    const rows = 4, vocab = 33;
    const la = rand(160, rows * vocab).map((v) => v * 1e4);
    const labels = Int32Array.from([0, 5, 32, 17]);
    const ref = ceRef(la, labels, rows, vocab);
    for (const isa of SUPPORTED_ISAS) {
      withIsa(isa, () => {
        const r = ops.crossEntropy(tensor(la, [rows, vocab]), tensor(labels, [rows]), { grad: true });
        expect(Number.isFinite(r.loss)).toBe(true);
        expect(Math.abs(r.loss - ref.loss)).toBeLessThan(1e-6 * ref.loss + 1e-3);
        expect(r.dlogits!.toFloat32Array().every(Number.isFinite)).toBe(true);
        expect(maxRelativeError(r.dlogits!.toFloat32Array(), ref.grad)).toBeLessThan(1e-6);
      });
    }
  });

  it('an all-ignored batch gives NaN (PyTorch mean over zero elements) and zero gradients', () => {
    const logits = tensor(rand(170, 6), [2, 3]), labels = tensor(Int32Array.from([-100, -100]), [2]);
    const r = ops.crossEntropy(logits, labels, { grad: true });
    expect(r.loss).toBeNaN();
    expect(r.count).toBe(0);
    expect(Array.from(r.dlogits!.toFloat32Array())).toEqual([0, 0, 0, 0, 0, 0]);
    // With the whole batch's normalizer, an all-ignored block adds 0.
    expect(ops.crossEntropy(logits, labels, { normalizer: 5 }).loss).toBe(0);
  });

  it('row blocks with the batch normalizer add up to the whole batch; dlogits can overwrite logits', () => {
    const rows = 5, vocab = 40, la = rand(180, rows * vocab, 4), labels = Int32Array.from([3, -100, 39, 0, 12]);
    const whole = ops.crossEntropy(tensor(la, [rows, vocab]), tensor(labels, [rows]), { grad: true });
    const first = tensor(la.slice(0, 2 * vocab), [2, vocab]);
    const a = ops.crossEntropy(first, tensor(labels.slice(0, 2), [2]), { normalizer: 4, dlogits: first });
    const b = ops.crossEntropy(tensor(la.slice(2 * vocab), [3, vocab]), tensor(labels.slice(2), [3]), { normalizer: 4, grad: true });
    expect(a.dlogits).toBe(first);
    expect(Math.abs(a.loss + b.loss - whole.loss)).toBeLessThan(1e-6);
    const blocks = [...first.toFloat32Array(), ...b.dlogits!.toFloat32Array()];
    expect(maxRelativeError(blocks, whole.dlogits!.toFloat32Array())).toBe(0);
  });

  it('runs off the event loop with crossEntropyAsync', async () => {
    const logits = tensor(rand(190, 12), [3, 4]), labels = tensor(Int32Array.from([0, 1, 2]), [3]);
    const r = await ops.crossEntropyAsync(logits, labels, { grad: true });
    expect(r.loss).toBeCloseTo(ops.crossEntropy(logits, labels).loss, 6);
  });
});

// ---------------------------------------------------------------- embedding

describe('ops.embeddingForward / embeddingBackward', () => {
  it('gathers rows and scatter-adds gradients (repeated ids add up)', () => {
    const vocab = 7, dim = 65, ta = rand(200, vocab * dim);
    const ids = Int32Array.from([3, 0, 6, 3, 3, 1]);
    const table = tensor(ta, [vocab, dim]), idt = tensor(ids, [2, 3]);
    const out = ops.embeddingForward(idt, table);
    expect(out.shape).toEqual([2, 3, dim]);
    const ov = out.toFloat32Array();
    ids.forEach((id, i) => expect(Array.from(ov.subarray(i * dim, (i + 1) * dim))).toEqual(Array.from(ta.subarray(id * dim, (id + 1) * dim))));
    const da = rand(201, ids.length * dim);
    const ref = new Float64Array(vocab * dim);
    ids.forEach((id, i) => {
      for (let j = 0; j < dim; j++) ref[id * dim + j] += da[i * dim + j];
    });
    const grad = ops.embeddingBackward(tensor(da, [2, 3, dim]), idt, { vocabSize: vocab });
    expect(grad.shape).toEqual([vocab, dim]);
    expect(maxRelativeError(grad.toFloat32Array(), ref)).toBeLessThan(1e-6);
    // Accumulating into a given table doubles it; without accumulate it is overwritten.
    ops.embeddingBackward(tensor(da, [2, 3, dim]), idt, { gradTable: grad, accumulate: true });
    expect(maxRelativeError(grad.toFloat32Array(), ref.map((v) => 2 * v))).toBeLessThan(1e-6);
    expect(ops.embeddingBackward(tensor(da, [2, 3, dim]), idt, { gradTable: grad })).toBe(grad);
    expect(maxRelativeError(grad.toFloat32Array(), ref)).toBeLessThan(1e-6);
  });

  it('rejects ids outside the vocabulary with E_RANGE naming the id and the size, writing nothing', () => {
    const table = tensor(rand(210, 12), [4, 3]);
    expectCode(() => ops.embeddingForward(tensor(Int32Array.from([1, 4]), [2]), table), 'E_RANGE', /ids\[1\].*\b4\b|vocabulary size is 4/);
    expectCode(() => ops.embeddingForward(tensor(Int32Array.from([-1]), [1]), table), 'E_RANGE', /received -1/);
    const grad = tensor(new Float32Array(12).fill(5), [4, 3]);
    expectCode(() => ops.embeddingBackward(tensor(rand(211, 3), [1, 3]), tensor(Int32Array.from([9]), [1]), { gradTable: grad }), 'E_RANGE', /9/);
    expect(grad.toFloat32Array().every((v) => v === 5)).toBe(true);
  });
});

// ---------------------------------------------------------------- bad input

describe('bad input is a PeftError with a code', () => {
  const x = tensor(rand(220, 6), [2, 3]);
  const w3 = tensor(rand(221, 3), [3]);
  const i32 = (values: number[], shape: number[]) => tensor(Int32Array.from(values), shape);
  const cases: [string, () => unknown, string][] = [
    ['rmsnorm weight of the wrong size', () => ops.rmsnormForward(x, tensor(rand(1, 4), [4])), 'E_SHAPE'],
    ['rmsnorm bf16 x', () => ops.rmsnormForward(x.to('bf16'), w3), 'E_DTYPE'],
    ['rmsnorm negative eps', () => ops.rmsnormForward(x, w3, { eps: -1 }), 'E_RANGE'],
    ['rmsnorm rstd of the wrong shape', () => ops.rmsnormBackward(x, x, w3, tensor(rand(1, 3), [3])), 'E_SHAPE'],
    ['rmsnorm accumulate without gradWeight', () => ops.rmsnormBackward(x, x, w3, ops.rmsnormForward(x, w3).rstd, { accumulate: true }), 'E_ARGUMENT'],
    ['layernorm bias of the wrong size', () => ops.layernormForward(x, w3, tensor(rand(1, 2), [2])), 'E_SHAPE'],
    ['rope on a 2-D tensor', () => ops.rope(x, i32([0, 1], [2, 1])), 'E_SHAPE'],
    ['rope odd head_dim', () => ops.rope(tensor(rand(1, 3), [1, 1, 1, 3]), i32([0], [1, 1])), 'E_SHAPE'],
    ['rope f32 positions', () => ops.rope(tensor(rand(1, 4), [1, 1, 1, 4]), tensor([[0]])), 'E_DTYPE'],
    ['rope positions of the wrong shape', () => ops.rope(tensor(rand(1, 4), [1, 1, 1, 4]), i32([0, 1], [1, 2])), 'E_SHAPE'],
    ['swiglu shapes differ', () => ops.swigluForward(x, w3), 'E_SHAPE'],
    ['gelu i32 input', () => ops.geluForward(i32([1], [1])), 'E_DTYPE'],
    ['cross-entropy f32 labels', () => ops.crossEntropy(x, tensor([0, 1])), 'E_DTYPE'],
    ['cross-entropy labels of the wrong length', () => ops.crossEntropy(x, i32([0], [1])), 'E_SHAPE'],
    ['cross-entropy label out of range', () => ops.crossEntropy(x, i32([0, 3], [2])), 'E_RANGE'],
    ['cross-entropy 3-D logits', () => ops.crossEntropy(tensor(rand(1, 6), [1, 2, 3]), i32([0, 1], [2])), 'E_SHAPE'],
    ['embedding f32 ids', () => ops.embeddingForward(tensor([0]), x), 'E_DTYPE'],
    ['embedding backward without a vocabulary size', () => ops.embeddingBackward(x, i32([0, 1], [2])), 'E_ARGUMENT'],
    ['embedding backward dout of the wrong shape', () => ops.embeddingBackward(x, i32([0], [1]), { vocabSize: 3 }), 'E_SHAPE'],
  ];
  for (const [name, fn, code] of cases) it(`${name} -> ${code}`, () => expectCode(fn, code, /Expected .* for .* but received/));
});

