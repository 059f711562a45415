/**
 * Initial LoRA weights, as PEFT's init_lora_weights chooses them:
 * - true: A kaiming-uniform (a = √5, so U(±1/√in)), B zero: the adapted layer starts equal to the base.
 * - 'gaussian': A ~ N(0, (1/r)²), B zero.
 * - false: A and B both kaiming-uniform (the adapter changes the layer from the start; for tests).
 * - 'pissa': A, B from the r principal singular triplets of W (W = U·S·Vᵀ): B = U_r·√(S_r/s),
 *   A = √(S_r/s)·V_rᵀ; the base keeps the residual W − s·B·A.
 * - 'olora': A, B from W's QR: B = Q_r, A = R_r; the base keeps W − s·B·A.
 * @internal
 */
import { PeftError } from '../errors';
import { tensor, type Tensor } from '../tensor';
import { qrReduced, truncatedSvd } from './linalg';
import { SeededRandom } from './random';

export type LoraInit = boolean | 'gaussian' | 'pissa' | 'olora';

export interface LoraInitResult {
  a: Tensor;  // [r, in] f32
  b: Tensor;  // [out, r] f32
  /** 'pissa' / 'olora': the new base weight [out, in] (W − s·B·A), else undefined. */
  residual?: Float32Array;
}

function kaimingUniform(n: number, fanIn: number, rng: SeededRandom): Float32Array {
  const bound = 1 / Math.sqrt(fanIn);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.uniform(-bound, bound);
  return out;
}

/** weight: the base weight [out, in] as f32 values (needed for 'pissa' and 'olora'). */
export function initLora(
  init: LoraInit,
  shape: { out: number; in: number; r: number },
  scaling: number,
  rng: SeededRandom,
  weight: () => Float32Array,
  module: string,
): LoraInitResult {
  const { out, in: inF, r } = shape;
  if (init === true || init === 'gaussian') {
    const a = init === true ? kaimingUniform(r * inF, inF, rng) : Float32Array.from({ length: r * inF }, () => rng.normal() / r);
    return { a: tensor(a, [r, inF]), b: tensor(new Float32Array(out * r), [out, r]) };
  }
  if (init === false) {
    return { a: tensor(kaimingUniform(r * inF, inF, rng), [r, inF]), b: tensor(kaimingUniform(out * r, r, rng), [out, r]) };
  }
  if (r > Math.min(out, inF)) {
    throw new PeftError(`Expected r ≤ ${Math.min(out, inF)} for ${init} initialisation of ${module} ([${out}, ${inF}]) but received ${r}`, 'E_CONFIG');
  }
  const w = Float64Array.from(weight());
  const a = new Float32Array(r * inF), b = new Float32Array(out * r);
  if (init === 'pissa') {
    const { u, s, vt } = truncatedSvd(w, out, inF, r);
    for (let j = 0; j < r; j++) {
      const root = Math.sqrt(s[j] / scaling);
      for (let i = 0; i < inF; i++) a[j * inF + i] = root * vt[j * inF + i];
      for (let o = 0; o < out; o++) b[o * r + j] = u[o * r + j] * root;
    }
  } else {
    const { q, r: rr, k } = qrReduced(w, out, inF);
    for (let j = 0; j < r; j++) for (let i = 0; i < inF; i++) a[j * inF + i] = rr[j * inF + i];
    for (let o = 0; o < out; o++) for (let j = 0; j < r; j++) b[o * r + j] = q[o * k + j];
  }
  const residual = new Float32Array(out * inF);
  for (let o = 0; o < out; o++) {
    for (let i = 0; i < inF; i++) {
      let ba = 0;
      for (let j = 0; j < r; j++) ba += b[o * r + j] * a[j * inF + i];
      residual[o * inF + i] = w[o * inF + i] - scaling * ba;
    }
  }
  return { a: tensor(a, [r, inF]), b: tensor(b, [out, r]), residual };
}
