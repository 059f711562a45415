/** The fused low-rank (LoRA) linear layer: forward and backward without forming B·A. */
import { PeftError, withCallSite } from '../errors';
import { native, type NativeLowRankBackwardOptions, type NativeTensor } from '../native';
import { handleOf, Tensor } from '../tensor';
import { fail, optionalBoolean, optionalNumber, optionsObject } from '../validate';
import { expectDType, expectMatrix, expectShape, shapeString } from './checks';

/** Options of {@link lowrankForward}. */
export interface LowRankForwardOptions {
  /** The LoRA scaling s (lora_alpha / r, or lora_alpha / √r with rsLoRA). Default 1. */
  scale?: number;
}

/** Result of {@link lowrankForward}. */
export interface LowRankForwardResult {
  /** y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ, [M, N] f32. */
  y: Tensor;
  /** x·Aᵀ, [M, r] f32: keep it for {@link lowrankBackward}. */
  xa: Tensor;
}

/** Options of {@link lowrankBackward}. */
export interface LowRankBackwardOptions {
  /** The same scaling as the forward. Default 1. */
  scale?: number;
  /** Compute dx (false for the first layer, whose input needs no gradient). Default true. */
  needDx?: boolean;
  /** Write (or, with accumulate, add) dA into this f32 [r, K] tensor. */
  gradA?: Tensor;
  /** Write (or, with accumulate, add) dB into this f32 [N, r] tensor. */
  gradB?: Tensor;
  /** Add into gradA / gradB (gradient accumulation). Needs both. */
  accumulate?: boolean;
}

/** Result of {@link lowrankBackward}. */
export interface LowRankBackwardResult {
  /** dy·W + s·(dy·B)·A, [M, K] f32; null when needDx is false. */
  dx: Tensor | null;
  /** [r, K] f32 */
  gradA: Tensor;
  /** [N, r] f32 */
  gradB: Tensor;
}

type ForwardArgs = [NativeTensor, NativeTensor, NativeTensor, NativeTensor, number];

function forwardArgs(x: Tensor, weight: Tensor, loraA: Tensor, loraB: Tensor, options?: LowRankForwardOptions): ForwardArgs {
  const o = optionsObject(options);
  const args: ForwardArgs = [
    handleOf(x, 'x'),
    handleOf(weight, 'weight'),
    handleOf(loraA, 'loraA'),
    handleOf(loraB, 'loraB'),
    optionalNumber(o, 'scale', 1),
  ];
  checkLowRank(args[0], args[1], args[2], args[3]);
  return args;
}

/** Shapes of the low-rank linear: x [M, K], weight [N, K], loraA [r, K], loraB [N, r], r ≥ 1. */
interface LowRankShape {
  m: number;
  n: number;
  k: number;
  r: number;
}

function checkLowRank(x: NativeTensor, weight: NativeTensor, loraA: NativeTensor, loraB: NativeTensor): LowRankShape {
  const [m, k] = expectMatrix(x, 'x', ['f32', 'bf16']);
  const [n] = expectMatrix(weight, 'weight', ['f32', 'bf16']);
  const [r] = expectMatrix(loraA, 'loraA', ['f32']);
  expectMatrix(loraB, 'loraB', ['f32']);
  expectShape(weight, [n, k], 'weight');
  expectShape(loraA, [r, k], 'loraA');
  expectShape(loraB, [n, r], 'loraB');
  if (r < 1) {
    throw new PeftError(
      `Expected a rank of at least 1 for loraA but received shape ${shapeString(loraA.shape())}`,
      'E_SHAPE',
    );
  }
  return { m, n, k, r };
}

/**
 * LoRA linear forward: y = x·Wᵀ + scale·(x·Aᵀ)·Bᵀ.
 * @param x [M, K] f32 or bf16
 * @param weight W, [N, K] f32 or bf16 (frozen)
 * @param loraA A, [r, K] f32
 * @param loraB B, [N, r] f32
 */
export function lowrankForward(
  x: Tensor,
  weight: Tensor,
  loraA: Tensor,
  loraB: Tensor,
  options?: LowRankForwardOptions,
): LowRankForwardResult {
  const r = native.lowrankForward(...forwardArgs(x, weight, loraA, loraB, options));
  return { y: new Tensor(r.y), xa: new Tensor(r.xa) };
}

/** {@link lowrankForward} on a worker thread. */
export function lowrankForwardAsync(
  x: Tensor,
  weight: Tensor,
  loraA: Tensor,
  loraB: Tensor,
  options?: LowRankForwardOptions,
): Promise<LowRankForwardResult> {
  return withCallSite(async () => {
    const r = await native.lowrankForwardAsync(...forwardArgs(x, weight, loraA, loraB, options));
    return { y: new Tensor(r.y), xa: new Tensor(r.xa) };
  });
}

type BackwardArgs = [NativeTensor, NativeTensor, NativeTensor, NativeTensor, NativeTensor, NativeTensor, number, NativeLowRankBackwardOptions];

function backwardArgs(
  dy: Tensor,
  x: Tensor,
  xa: Tensor,
  weight: Tensor,
  loraA: Tensor,
  loraB: Tensor,
  options?: LowRankBackwardOptions,
): BackwardArgs {
  const o = optionsObject(options);
  const nativeOptions: NativeLowRankBackwardOptions = {
    needDx: optionalBoolean(o, 'needDx', true),
    accumulate: optionalBoolean(o, 'accumulate', false),
  };
  if (o.gradA !== undefined) nativeOptions.gradA = handleOf(o.gradA, 'options.gradA');
  if (o.gradB !== undefined) nativeOptions.gradB = handleOf(o.gradB, 'options.gradB');
  const args: BackwardArgs = [
    handleOf(dy, 'dy'),
    handleOf(x, 'x'),
    handleOf(xa, 'xa'),
    handleOf(weight, 'weight'),
    handleOf(loraA, 'loraA'),
    handleOf(loraB, 'loraB'),
    optionalNumber(o, 'scale', 1),
    nativeOptions,
  ];
  const { m, n, k, r } = checkLowRank(args[1], args[3], args[4], args[5]);
  expectDType(args[0], ['f32'], 'dy');
  expectShape(args[0], [m, n], 'dy');
  expectDType(args[2], ['f32'], 'xa');
  expectShape(args[2], [m, r], 'xa');
  if (nativeOptions.gradA) {
    expectDType(nativeOptions.gradA, ['f32'], 'options.gradA');
    expectShape(nativeOptions.gradA, [r, k], 'options.gradA');
  }
  if (nativeOptions.gradB) {
    expectDType(nativeOptions.gradB, ['f32'], 'options.gradB');
    expectShape(nativeOptions.gradB, [n, r], 'options.gradB');
  }
  if (nativeOptions.accumulate) {
    if (!nativeOptions.gradA) fail('options.gradA', 'a Tensor to accumulate into (option accumulate is true)', o.gradA);
    if (!nativeOptions.gradB) fail('options.gradB', 'a Tensor to accumulate into (option accumulate is true)', o.gradB);
  }
  return args;
}

function backwardResult(
  r: { dx: NativeTensor | null; gradA: NativeTensor; gradB: NativeTensor },
  options?: LowRankBackwardOptions,
): LowRankBackwardResult {
  return {
    dx: r.dx ? new Tensor(r.dx) : null,
    gradA: options?.gradA ?? new Tensor(r.gradA),
    gradB: options?.gradB ?? new Tensor(r.gradB),
  };
}

/**
 * LoRA linear backward. With g = scale·dy·B: dB = scale·dyᵀ·xa, dA = gᵀ·x, dx = dy·W + g·A.
 * @param dy [M, N] f32
 * @param x [M, K], the forward's input
 * @param xa [M, r], the forward's x·Aᵀ
 * @param weight [N, K]
 * @param loraA [r, K]
 * @param loraB [N, r]
 */
export function lowrankBackward(
  dy: Tensor,
  x: Tensor,
  xa: Tensor,
  weight: Tensor,
  loraA: Tensor,
  loraB: Tensor,
  options?: LowRankBackwardOptions,
): LowRankBackwardResult {
  return backwardResult(native.lowrankBackward(...backwardArgs(dy, x, xa, weight, loraA, loraB, options)), options);
}

/** {@link lowrankBackward} on a worker thread. */
export function lowrankBackwardAsync(
  dy: Tensor,
  x: Tensor,
  xa: Tensor,
  weight: Tensor,
  loraA: Tensor,
  loraB: Tensor,
  options?: LowRankBackwardOptions,
): Promise<LowRankBackwardResult> {
  return withCallSite(async () =>
    backwardResult(await native.lowrankBackwardAsync(...backwardArgs(dy, x, xa, weight, loraA, loraB, options)), options),
  );
}
