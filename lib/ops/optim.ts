/** Fused optimizer steps over many tensors in one native call, with PyTorch's semantics. */
import { PeftError, withCallSite } from '../errors';
import { native, type NativeAdamWOptions, type NativeSgdOptions, type NativeTensor } from '../native';
import { handleOf, type Tensor } from '../tensor';
import { expectArray, expectNumber, expectObject, fail, optionalBoolean, optionalNumber } from '../validate';
import { expectDType, expectShape } from './checks';

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

/** Tensors updated in place must be distinct: a repeat would be updated twice. */
function distinct(list: NativeTensor[], argument: string): NativeTensor[] {
  list.forEach((t, i) => {
    const first = list.indexOf(t);
    if (first !== i) {
      throw new PeftError(
        `Expected distinct tensors in ${argument} but ${argument}[${i}] repeats ${argument}[${first}]`,
        'E_ARGUMENT',
      );
    }
  });
  return list;
}

/** Trainable parameters: distinct f32 tensors. */
function paramHandles(list: unknown): NativeTensor[] {
  const params = handles(list, 'params');
  params.forEach((p, i) => expectDType(p, ['f32'], `params[${i}]`));
  return distinct(params, 'params');
}

/** One f32 tensor per parameter, shaped like it (gradients, optimizer state). */
function likeParams(list: unknown, params: NativeTensor[], argument: string): NativeTensor[] {
  const out = handles(list, argument);
  if (out.length !== params.length) {
    throw new PeftError(
      `Expected ${params.length} tensors in ${argument} (one per parameter) but received ${out.length}`,
      'E_ARGUMENT',
    );
  }
  out.forEach((t, i) => {
    expectDType(t, ['f32'], `${argument}[${i}]`);
    expectShape(t, params[i].shape(), `${argument}[${i}]`);
  });
  return out;
}

// Upper bounds shared with the native backstop (native/binding/ops_optim.cpp).
const MAX_LR = 1e6;
const MAX_WEIGHT_DECAY = 1e6;
const MAX_STEP = Number.MAX_SAFE_INTEGER;

function adamwArgs(params: Tensor[], grads: Tensor[], state: AdamWState, options: AdamWOptions) {
  const o = expectObject(options, 'options');
  const s = expectObject(state, 'state');
  const p = paramHandles(params);
  if (o.step === undefined) fail('option step', 'the step number (1 on the first step)', undefined);
  const h: NativeAdamWOptions = {
    lr: optionalNumber(o, 'lr', 1e-3, { min: 0, max: MAX_LR }),
    beta1: optionalNumber(o, 'beta1', 0.9, { min: 0, max: 0.999999999 }),
    beta2: optionalNumber(o, 'beta2', 0.999, { min: 0, max: 0.999999999 }),
    eps: optionalNumber(o, 'eps', 1e-8, { min: 0, max: 1 }),
    weightDecay: optionalNumber(o, 'weightDecay', 0.01, { min: 0, max: MAX_WEIGHT_DECAY }),
    step: optionalNumber(o, 'step', 1, { min: 1, max: MAX_STEP, integer: true }),
  };
  return [
    p,
    likeParams(grads, p, 'grads'),
    likeParams(s.expAvg, p, 'state.expAvg'),
    likeParams(s.expAvgSq, p, 'state.expAvgSq'),
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
  const p = paramHandles(params);
  const h: NativeSgdOptions = {
    lr: optionalNumber(o, 'lr', 1e-3, { min: 0, max: MAX_LR }),
    momentum: optionalNumber(o, 'momentum', 0, { min: 0, max: 1 }),
    dampening: optionalNumber(o, 'dampening', 0, { min: 0, max: 1 }),
    weightDecay: optionalNumber(o, 'weightDecay', 0, { min: 0, max: MAX_WEIGHT_DECAY }),
    nesterov: optionalBoolean(o, 'nesterov', false),
    step: optionalNumber(o, 'step', 1, { min: 1, max: MAX_STEP, integer: true }),
  };
  if (h.nesterov && !(h.momentum > 0 && h.dampening === 0)) {
    throw new PeftError(
      'Expected momentum > 0 and dampening = 0 for option nesterov but received ' +
        `momentum ${h.momentum} and dampening ${h.dampening}`,
      'E_CONFIG',
    );
  }
  const g = likeParams(grads, p, 'grads');
  let bufs: NativeTensor[] | null = null;
  if (momentumBuffers !== null && momentumBuffers !== undefined) {
    bufs = likeParams(momentumBuffers, p, 'momentumBuffers');
  } else if (h.momentum > 0) {
    fail('momentumBuffers', 'an array of f32 tensors (one per parameter) when option momentum > 0', momentumBuffers);
  }
  return [p, g, bufs, h] as const;
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
  const g = handles(grads, 'grads');
  g.forEach((t, i) => expectDType(t, ['f32'], `grads[${i}]`));
  return [distinct(g, 'grads'), expectNumber(maxNorm, 'maxNorm', { min: 0, exclusiveMin: true })] as const;
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
