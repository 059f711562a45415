/** RMSNorm (Llama) and LayerNorm (GPT-2, BERT) over the last dimension, forward and backward. */
import { withCallSite } from '../errors';
import { native, type NativeNormBackwardOptions, type NativeTensor } from '../native';
import { handleOf, Tensor } from '../tensor';
import { fail, optionalBoolean, optionalNumber, optionsObject } from '../validate';
import { expectDType, expectFeatures, expectShape } from './checks';

/** Options of {@link rmsnormForward} and {@link layernormForward}. */
export interface NormOptions {
  /** Added to the mean square (variance) before the square root. Default 1e-6 (RMSNorm), 1e-5 (LayerNorm). */
  eps?: number;
}

/** Result of {@link rmsnormForward}. */
export interface RmsNormForwardResult {
  /** x / sqrt(mean(x²) + eps) · weight, [..., dim] f32. */
  y: Tensor;
  /** 1 / sqrt(mean(x²) + eps) per row, [...] f32: keep it for {@link rmsnormBackward}. */
  rstd: Tensor;
}

/** Result of {@link layernormForward}. */
export interface LayerNormForwardResult {
  /** (x − mean) · rstd · weight + bias, [..., dim] f32. */
  y: Tensor;
  /** Per row, [...] f32: keep it for {@link layernormBackward}. */
  mean: Tensor;
  /** 1 / sqrt(var(x) + eps) per row (biased variance, as PyTorch), [...] f32. */
  rstd: Tensor;
}

/** Options of {@link rmsnormBackward} and {@link layernormBackward}. */
export interface NormBackwardOptions {
  /** Compute dx. Default true. */
  needDx?: boolean;
  /** Write (or, with accumulate, add) the weight gradient into this f32 [dim] tensor. */
  gradWeight?: Tensor;
  /** LayerNorm only: write (or add) the bias gradient into this f32 [dim] tensor. */
  gradBias?: Tensor;
  /** Add into gradWeight (and gradBias) instead of overwriting (gradient accumulation). */
  accumulate?: boolean;
}

/** Result of {@link rmsnormBackward}. */
export interface RmsNormBackwardResult {
  /** [..., dim] f32, or null when needDx is false. */
  dx: Tensor | null;
  /** Σ over rows of dy · x · rstd, [dim] f32. */
  gradWeight: Tensor;
}

/** Result of {@link layernormBackward}. */
export interface LayerNormBackwardResult extends RmsNormBackwardResult {
  /** Σ over rows of dy, [dim] f32. */
  gradBias: Tensor;
}

function eps(options: unknown, fallback: number): number {
  return optionalNumber(optionsObject(options), 'eps', fallback, { min: 0, max: 1 });
}

/** x [..., dim] f32 and a [dim] f32 parameter; returns the row shape. */
function checkInput(x: NativeTensor, w: NativeTensor): number[] {
  const dim = expectFeatures(x, 'x', ['f32']);
  expectDType(w, ['f32'], 'weight');
  expectShape(w, [dim], 'weight');
  return x.shape().slice(0, -1);
}

function backwardOptions(options: unknown, layerNorm: boolean, dim: number): NativeNormBackwardOptions {
  const o = optionsObject(options);
  const out: NativeNormBackwardOptions = {
    needDx: optionalBoolean(o, 'needDx', true),
    accumulate: optionalBoolean(o, 'accumulate', false),
  };
  const keys = layerNorm ? (['gradWeight', 'gradBias'] as const) : (['gradWeight'] as const);
  for (const key of keys) {
    if (o[key] === undefined) {
      if (out.accumulate) fail(`options.${key}`, 'a Tensor to accumulate into (option accumulate is true)', o[key]);
      continue;
    }
    const t = handleOf(o[key], `options.${key}`);
    expectDType(t, ['f32'], `options.${key}`);
    expectShape(t, [dim], `options.${key}`);
    out[key] = t;
  }
  return out;
}

function rmsArgs(x: Tensor, weight: Tensor, options?: NormOptions): [NativeTensor, NativeTensor, number] {
  const args: [NativeTensor, NativeTensor, number] = [handleOf(x, 'x'), handleOf(weight, 'weight'), eps(options, 1e-6)];
  checkInput(args[0], args[1]);
  return args;
}

/**
 * RMSNorm forward, as Hugging Face's LlamaRMSNorm: y = (x · rsqrt(mean(x²) + eps)) · weight.
 * @param x [..., dim] f32
 * @param weight [dim] f32
 */
export function rmsnormForward(x: Tensor, weight: Tensor, options?: NormOptions): RmsNormForwardResult {
  const r = native.rmsnormForward(...rmsArgs(x, weight, options));
  return { y: new Tensor(r.y), rstd: new Tensor(r.rstd) };
}

/** {@link rmsnormForward} on a worker thread. */
export function rmsnormForwardAsync(x: Tensor, weight: Tensor, options?: NormOptions): Promise<RmsNormForwardResult> {
  return withCallSite(async () => {
    const r = await native.rmsnormForwardAsync(...rmsArgs(x, weight, options));
    return { y: new Tensor(r.y), rstd: new Tensor(r.rstd) };
  });
}

type RmsBackwardArgs = [NativeTensor, NativeTensor, NativeTensor, NativeTensor, NativeNormBackwardOptions];

function rmsBackwardArgs(dy: Tensor, x: Tensor, weight: Tensor, rstd: Tensor, options?: NormBackwardOptions): RmsBackwardArgs {
  const args: RmsBackwardArgs = [handleOf(dy, 'dy'), handleOf(x, 'x'), handleOf(weight, 'weight'), handleOf(rstd, 'rstd'), {}];
  const rows = checkInput(args[1], args[2]);
  expectDType(args[0], ['f32'], 'dy');
  expectShape(args[0], args[1].shape(), 'dy');
  expectDType(args[3], ['f32'], 'rstd');
  expectShape(args[3], rows, 'rstd');
  args[4] = backwardOptions(options, false, args[2].shape()[0]);
  return args;
}

function rmsBackwardResult(r: { dx: NativeTensor | null; gradWeight: NativeTensor }, options?: NormBackwardOptions): RmsNormBackwardResult {
  return { dx: r.dx ? new Tensor(r.dx) : null, gradWeight: options?.gradWeight ?? new Tensor(r.gradWeight) };
}

/**
 * RMSNorm backward. With g = weight ⊙ dy: dx = rstd · g − x · rstd³ · mean(g ⊙ x); dweight = Σ_rows dy ⊙ x · rstd.
 * @param dy [..., dim] f32
 * @param x [..., dim] f32, the forward's input
 * @param weight [dim] f32
 * @param rstd [...] f32, from {@link rmsnormForward}
 */
export function rmsnormBackward(dy: Tensor, x: Tensor, weight: Tensor, rstd: Tensor, options?: NormBackwardOptions): RmsNormBackwardResult {
  return rmsBackwardResult(native.rmsnormBackward(...rmsBackwardArgs(dy, x, weight, rstd, options)), options);
}

/** {@link rmsnormBackward} on a worker thread. */
export function rmsnormBackwardAsync(
  dy: Tensor,
  x: Tensor,
  weight: Tensor,
  rstd: Tensor,
  options?: NormBackwardOptions,
): Promise<RmsNormBackwardResult> {
  return withCallSite(async () =>
    rmsBackwardResult(await native.rmsnormBackwardAsync(...rmsBackwardArgs(dy, x, weight, rstd, options)), options),
  );
}

type LnArgs = [NativeTensor, NativeTensor, NativeTensor | null, number];

function lnArgs(x: Tensor, weight: Tensor, bias: Tensor | null, options?: NormOptions): LnArgs {
  const args: LnArgs = [handleOf(x, 'x'), handleOf(weight, 'weight'), bias === null ? null : handleOf(bias, 'bias'), eps(options, 1e-5)];
  checkInput(args[0], args[1]);
  if (args[2]) {
    expectDType(args[2], ['f32'], 'bias');
    expectShape(args[2], args[1].shape(), 'bias');
  }
  return args;
}

function lnResult(r: { y: NativeTensor; mean: NativeTensor; rstd: NativeTensor }): LayerNormForwardResult {
  return { y: new Tensor(r.y), mean: new Tensor(r.mean), rstd: new Tensor(r.rstd) };
}

/**
 * LayerNorm forward, as torch.nn.LayerNorm over the last dimension.
 * @param x [..., dim] f32
 * @param weight [dim] f32
 * @param bias [dim] f32, or null for none
 */
export function layernormForward(x: Tensor, weight: Tensor, bias: Tensor | null, options?: NormOptions): LayerNormForwardResult {
  return lnResult(native.layernormForward(...lnArgs(x, weight, bias, options)));
}

/** {@link layernormForward} on a worker thread. */
export function layernormForwardAsync(
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null,
  options?: NormOptions,
): Promise<LayerNormForwardResult> {
  return withCallSite(async () => lnResult(await native.layernormForwardAsync(...lnArgs(x, weight, bias, options))));
}

type LnBackwardArgs = [NativeTensor, NativeTensor, NativeTensor, NativeTensor, NativeTensor, NativeNormBackwardOptions];

function lnBackwardArgs(dy: Tensor, x: Tensor, weight: Tensor, mean: Tensor, rstd: Tensor, options?: NormBackwardOptions): LnBackwardArgs {
  const args: LnBackwardArgs = [
    handleOf(dy, 'dy'),
    handleOf(x, 'x'),
    handleOf(weight, 'weight'),
    handleOf(mean, 'mean'),
    handleOf(rstd, 'rstd'),
    {},
  ];
  const rows = checkInput(args[1], args[2]);
  expectDType(args[0], ['f32'], 'dy');
  expectShape(args[0], args[1].shape(), 'dy');
  for (const [t, name] of [[args[3], 'mean'], [args[4], 'rstd']] as const) {
    expectDType(t, ['f32'], name);
    expectShape(t, rows, name);
  }
  args[5] = backwardOptions(options, true, args[2].shape()[0]);
  return args;
}

function lnBackwardResult(
  r: { dx: NativeTensor | null; gradWeight: NativeTensor; gradBias: NativeTensor },
  options?: NormBackwardOptions,
): LayerNormBackwardResult {
  return {
    dx: r.dx ? new Tensor(r.dx) : null,
    gradWeight: options?.gradWeight ?? new Tensor(r.gradWeight),
    gradBias: options?.gradBias ?? new Tensor(r.gradBias),
  };
}

/**
 * LayerNorm backward. With x̂ = (x − mean)·rstd and g = weight ⊙ dy: dx = rstd·(g − mean(g) − x̂·mean(g ⊙ x̂));
 * dweight = Σ_rows dy ⊙ x̂; dbias = Σ_rows dy.
 * @param dy [..., dim] f32
 * @param x [..., dim] f32, the forward's input
 * @param weight [dim] f32
 * @param mean [...] f32, from {@link layernormForward}
 * @param rstd [...] f32, from {@link layernormForward}
 */
export function layernormBackward(
  dy: Tensor,
  x: Tensor,
  weight: Tensor,
  mean: Tensor,
  rstd: Tensor,
  options?: NormBackwardOptions,
): LayerNormBackwardResult {
  return lnBackwardResult(native.layernormBackward(...lnBackwardArgs(dy, x, weight, mean, rstd, options)), options);
}

/** {@link layernormBackward} on a worker thread. */
export function layernormBackwardAsync(
  dy: Tensor,
  x: Tensor,
  weight: Tensor,
  mean: Tensor,
  rstd: Tensor,
  options?: NormBackwardOptions,
): Promise<LayerNormBackwardResult> {
  return withCallSite(async () =>
    lnBackwardResult(await native.layernormBackwardAsync(...lnBackwardArgs(dy, x, weight, mean, rstd, options)), options),
  );
}
