/** Fused optimizer steps over many tensors in one native call, with PyTorch's semantics. */
import { PeftError, withCallSite } from '../errors';
import { native, type NativeAdamWOptions, type NativeSgdOptions, type NativeTensor } from '../native';
import { handleOf, type Tensor } from '../tensor';
import { expectArray, expectObject, fail, optionalBoolean, optionalNumber } from '../validate';

/** Hyper-parameters of {@link adamw}; defaults are torch.optim.AdamW's. */
export interface AdamWOptions {
  /** Learning rate. Default 1e-3. */
  lr?: number;
  /** Default 0.9. */
  beta1?: number;
  /** Default 0.999. */
  beta2?: number;
  /** Default 1e-8. */
  eps?: number;
  /** Decoupled weight decay. Default 0.01. */
  weightDecay?: number;
  /** The step number, 1 on the first step (for the bias corrections). */
  step: number;
}

/** AdamW's per-parameter state: first and second moments, f32, shaped like the parameters. */
export interface AdamWState {
  expAvg: Tensor[];
  expAvgSq: Tensor[];
}

/** Hyper-parameters of {@link sgd}; defaults are torch.optim.SGD's. */
export interface SgdOptions {
  lr?: number;
  momentum?: number;
  dampening?: number;
  /** L2 penalty added to the gradient. */
  weightDecay?: number;
  nesterov?: boolean;
  /** The step number, 1 on the first step (initialises the momentum buffers). Default 1. */
  step?: number;
}

function handles(list: unknown, argument: string): NativeTensor[] {
  return expectArray(list, argument).map((t, i) => handleOf(t, `${argument}[${i}]`));
}

function sameLength(list: NativeTensor[], params: NativeTensor[], argument: string): NativeTensor[] {
  if (list.length !== params.length) {
    throw new PeftError(
      `Expected ${params.length} tensors in ${argument} (one per parameter) but received ${list.length}`,
      'E_ARGUMENT',
    );
  }
  return list;
}

function adamwArgs(params: Tensor[], grads: Tensor[], state: AdamWState, options: AdamWOptions) {
  const o = expectObject(options, 'options');
  const s = expectObject(state, 'state');
  const p = handles(params, 'params');
  if (o.step === undefined) fail('options.step', 'the step number (1 on the first step)', undefined);
  const h: NativeAdamWOptions = {
    lr: optionalNumber(o, 'lr', 1e-3, { min: 0 }),
    beta1: optionalNumber(o, 'beta1', 0.9, { min: 0, max: 0.999999999 }),
    beta2: optionalNumber(o, 'beta2', 0.999, { min: 0, max: 0.999999999 }),
    eps: optionalNumber(o, 'eps', 1e-8, { min: 0 }),
    weightDecay: optionalNumber(o, 'weightDecay', 0.01, { min: 0 }),
    step: optionalNumber(o, 'step', 1, { min: 1, integer: true }),
  };
  return [
    p,
    sameLength(handles(grads, 'grads'), p, 'grads'),
    sameLength(handles(s.expAvg, 'state.expAvg'), p, 'state.expAvg'),
    sameLength(handles(s.expAvgSq, 'state.expAvgSq'), p, 'state.expAvgSq'),
    h,
  ] as const;
}

/**
 * One AdamW step over all `params` (in place), as torch.optim.AdamW: p ← p·(1 − lr·wd), then
 * m ← β1·m + (1−β1)·g, v ← β2·v + (1−β2)·g², p ← p − lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + eps).
 * @param params f32 tensors, updated in place
 * @param grads f32, one per parameter and of its shape
 * @param state moments, f32 zeros before the first step, updated in place
 */
export function adamw(params: Tensor[], grads: Tensor[], state: AdamWState, options: AdamWOptions): void {
  native.adamw(...adamwArgs(params, grads, state, options));
}

/** {@link adamw} on a worker thread. */
export function adamwAsync(params: Tensor[], grads: Tensor[], state: AdamWState, options: AdamWOptions): Promise<void> {
  return withCallSite(() => native.adamwAsync(...adamwArgs(params, grads, state, options)));
}

function sgdArgs(params: Tensor[], grads: Tensor[], momentumBuffers: Tensor[] | null, options: SgdOptions) {
  const o = expectObject(options, 'options');
  const p = handles(params, 'params');
  const h: NativeSgdOptions = {
    lr: optionalNumber(o, 'lr', 1e-3, { min: 0 }),
    momentum: optionalNumber(o, 'momentum', 0, { min: 0, max: 1 }),
    dampening: optionalNumber(o, 'dampening', 0, { min: 0, max: 1 }),
    weightDecay: optionalNumber(o, 'weightDecay', 0, { min: 0 }),
    nesterov: optionalBoolean(o, 'nesterov', false),
    step: optionalNumber(o, 'step', 1, { min: 1, integer: true }),
  };
  const bufs = momentumBuffers === null || momentumBuffers === undefined ? null : sameLength(handles(momentumBuffers, 'momentumBuffers'), p, 'momentumBuffers');
  return [p, sameLength(handles(grads, 'grads'), p, 'grads'), bufs, h] as const;
}

/**
 * One SGD step (in place), as torch.optim.SGD: d = g + wd·p; with momentum, buf ← μ·buf + (1−τ)·d
 * (buf ← d on the first step) and d ← d + μ·buf (Nesterov) or buf; then p ← p − lr·d.
 * @param momentumBuffers f32, one per parameter; needed when momentum > 0, else null
 */
export function sgd(params: Tensor[], grads: Tensor[], momentumBuffers: Tensor[] | null, options: SgdOptions): void {
  native.sgd(...sgdArgs(params, grads, momentumBuffers, options));
}

/** {@link sgd} on a worker thread. */
export function sgdAsync(params: Tensor[], grads: Tensor[], momentumBuffers: Tensor[] | null, options: SgdOptions): Promise<void> {
  return withCallSite(() => native.sgdAsync(...sgdArgs(params, grads, momentumBuffers, options)));
}

function clipArgs(grads: Tensor[], maxNorm: number) {
  if (typeof maxNorm !== 'number' || !(maxNorm > 0) || !Number.isFinite(maxNorm)) {
    fail('maxNorm', 'a finite number > 0', maxNorm, 'E_RANGE');
  }
  return [handles(grads, 'grads'), maxNorm] as const;
}

/**
 * Clips the global L2 norm of all gradients to maxNorm (in place), as
 * torch.nn.utils.clip_grad_norm_: scales by maxNorm / (norm + 1e-6) when that is below 1.
 * @returns the total norm before clipping
 */
export function clipGradNorm(grads: Tensor[], maxNorm: number): number {
  return native.clipGradNorm(...clipArgs(grads, maxNorm));
}

/** {@link clipGradNorm} on a worker thread. */
export function clipGradNormAsync(grads: Tensor[], maxNorm: number): Promise<number> {
  return withCallSite(() => native.clipGradNormAsync(...clipArgs(grads, maxNorm)));
}
