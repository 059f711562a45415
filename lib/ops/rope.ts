/**
 * Rotary position embedding in Hugging Face's layout (rotate_half): dimension i of a head pairs
 * with i + head_dim/2. inv_freq and the angles are computed in f64 and cos/sin rounded to f32
 * (HF uses f32 angles, so results differ from HF by up to ~1e-4 relative at positions in the thousands).
 */
import { ropeScalingFactors } from '../models/config';
import { withCallSite } from '../errors';
import { native, type NativeRopeOptions, type NativeTensor } from '../native';
import { handleOf, Tensor, tensor } from '../tensor';
import { expectNumber, fail, optionalBoolean, optionalNumber, optionsObject } from '../validate';
import { expectDType, expectRank, expectShape } from './checks';

/** Options of {@link rope} and {@link ropeBackward}. */
export interface RopeOptions {
  /** rope_theta. Default 10000. */
  theta?: number;
  /** Per-frequency factors of inv_freq, f32 [head_dim / 2] (see {@link ropeFrequencyScale}). Default all 1. */
  freqScale?: Tensor;
  /** Rotate x itself and return it. Default false. */
  inPlace?: boolean;
}

/** Hugging Face's rope_scaling entries that change inv_freq ('linear' and 'llama3'). */
export type RopeScaling =
  | { rope_type: 'linear'; factor: number }
  | {
      rope_type: 'llama3';
      factor: number;
      low_freq_factor: number;
      high_freq_factor: number;
      original_max_position_embeddings: number;
    };

/**
 * The per-frequency factors of a rope_scaling config, as Hugging Face's _compute_linear_scaling_rope_parameters
 * and _compute_llama3_parameters apply them to inv_freq. Returns f32 [head_dim / 2].
 */
export function ropeFrequencyScale(headDim: number, theta: number, scaling: RopeScaling): Tensor {
  expectNumber(headDim, 'headDim', { min: 2, integer: true });
  expectNumber(theta, 'theta', { min: 1, exclusiveMin: true });
  const half = headDim / 2;
  if (!Number.isInteger(half)) fail('headDim', 'an even number', headDim, 'E_RANGE');
  const factor = expectNumber(scaling?.factor, 'rope_scaling.factor', { min: 0, exclusiveMin: true });
  if (scaling.rope_type === 'linear') return tensor(ropeScalingFactors(headDim, theta, { type: 'linear', factor }), [half]);
  if (scaling.rope_type !== 'llama3') fail('rope_scaling.rope_type', "'linear' or 'llama3'", (scaling as { rope_type: unknown }).rope_type);
  const low = expectNumber(scaling.low_freq_factor, 'rope_scaling.low_freq_factor', { min: 0, exclusiveMin: true });
  const high = expectNumber(scaling.high_freq_factor, 'rope_scaling.high_freq_factor', { min: low, exclusiveMin: true });
  const original = expectNumber(scaling.original_max_position_embeddings, 'rope_scaling.original_max_position_embeddings', { min: 1 });
  const factors = ropeScalingFactors(headDim, theta, {
    type: 'llama3',
    factor,
    lowFreqFactor: low,
    highFreqFactor: high,
    originalMaxPositionEmbeddings: original,
  });
  return tensor(factors, [half]);
}

function ropeArgs(x: Tensor, positions: Tensor, options: RopeOptions | undefined, inverse: boolean): [NativeTensor, NativeTensor, NativeRopeOptions] {
  const o = optionsObject(options);
  const xh = handleOf(x, 'x');
  const ph = handleOf(positions, 'positions');
  const [batch, seq, , headDim] = expectRank(xh, 4, 'x', ['f32']);
  if (headDim % 2 !== 0 || headDim > 2048) fail('x', 'an even head_dim of at most 2048', headDim, 'E_SHAPE');
  expectDType(ph, ['i32'], 'positions');
  expectShape(ph, [batch, seq], 'positions');
  const n: NativeRopeOptions = {
    theta: optionalNumber(o, 'theta', 10000, { min: 1, exclusiveMin: true }),
    inverse,
    inPlace: optionalBoolean(o, 'inPlace', false),
  };
  if (o.freqScale !== undefined) {
    n.freqScale = handleOf(o.freqScale, 'options.freqScale');
    expectDType(n.freqScale, ['f32'], 'options.freqScale');
    expectShape(n.freqScale, [headDim / 2], 'options.freqScale');
  }
  return [xh, ph, n];
}

function ropeResult(r: NativeTensor, x: Tensor, options?: RopeOptions): Tensor {
  return options?.inPlace ? x : new Tensor(r);
}

/**
 * Applies RoPE to queries or keys: y[i] = x[i]·cos − x[i+h]·sin, y[i+h] = x[i+h]·cos + x[i]·sin with
 * h = head_dim/2 and angle = position · freqScale[i] · theta^(−2i/head_dim).
 * @param x [batch, seq, heads, head_dim] f32
 * @param positions [batch, seq] i32 (position_ids)
 */
export function rope(x: Tensor, positions: Tensor, options?: RopeOptions): Tensor {
  return ropeResult(native.rope(...ropeArgs(x, positions, options, false)), x, options);
}

/** {@link rope} on a worker thread. */
export function ropeAsync(x: Tensor, positions: Tensor, options?: RopeOptions): Promise<Tensor> {
  return withCallSite(async () => ropeResult(await native.ropeAsync(...ropeArgs(x, positions, options, false)), x, options));
}

/**
 * RoPE backward: the inverse rotation of dy (rotation matrices are orthogonal).
 * @param dy [batch, seq, heads, head_dim] f32
 * @param positions [batch, seq] i32
 */
export function ropeBackward(dy: Tensor, positions: Tensor, options?: RopeOptions): Tensor {
  return ropeResult(native.rope(...ropeArgs(dy, positions, options, true)), dy, options);
}

/** {@link ropeBackward} on a worker thread. */
export function ropeBackwardAsync(dy: Tensor, positions: Tensor, options?: RopeOptions): Promise<Tensor> {
  return withCallSite(async () => ropeResult(await native.ropeAsync(...ropeArgs(dy, positions, options, true)), dy, options));
}
