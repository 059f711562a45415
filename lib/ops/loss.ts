/** Softmax cross-entropy over a vocabulary with PyTorch's ignore_index, loss and gradient in one pass. */
import { withCallSite } from '../errors';
import { native, type NativeCrossEntropyOptions, type NativeTensor } from '../native';
import { handleOf, Tensor } from '../tensor';
import { fail, optionalBoolean, optionalNumber, optionsObject } from '../validate';
import { expectDType, expectMatrix, expectShape } from './checks';

/** Options of {@link crossEntropy}. */
export interface CrossEntropyOptions {
  /** Rows with this label are skipped. Default -100. */
  ignoreIndex?: number;
  /** Also compute dlogits = (softmax − onehot) / normalizer, 0 on ignored rows. Default false. */
  grad?: boolean;
  /**
   * Write dlogits into this f32 [rows, vocab] tensor (implies grad). Pass `logits` itself to overwrite
   * the logits in place, which saves a second [rows, vocab] buffer.
   */
  dlogits?: Tensor;
  /**
   * Divide by this instead of this call's count of non-ignored rows: when a batch's logits are processed
   * one block of rows at a time, pass the whole batch's count so the block losses add up to the batch mean.
   */
  normalizer?: number;
}

/** Result of {@link crossEntropy}. */
export interface CrossEntropyResult {
  /**
   * Σ of the non-ignored rows' −log softmax(logits)[label], divided by the normalizer. As PyTorch's mean
   * reduction, NaN when every row is ignored and no normalizer was given.
   */
  loss: number;
  /** Non-ignored rows in this call. */
  count: number;
  /** [rows, vocab] f32 when asked for, else null. */
  dlogits: Tensor | null;
}

function ceArgs(logits: Tensor, labels: Tensor, options?: CrossEntropyOptions): [NativeTensor, NativeTensor, NativeCrossEntropyOptions] {
  const o = optionsObject(options);
  const lh = handleOf(logits, 'logits');
  const [rows, vocab] = expectMatrix(lh, 'logits', ['f32']);
  if (vocab < 1) fail('logits', 'at least one class', vocab, 'E_SHAPE');
  const yh = handleOf(labels, 'labels');
  expectDType(yh, ['i32'], 'labels');
  expectShape(yh, [rows], 'labels');
  const n: NativeCrossEntropyOptions = {
    ignoreIndex: optionalNumber(o, 'ignoreIndex', -100, { min: -(2 ** 31), max: 2 ** 31 - 1, integer: true }),
    normalizer: optionalNumber(o, 'normalizer', 0, { min: 0 }),
    grad: optionalBoolean(o, 'grad', false),
  };
  if (o.dlogits !== undefined) {
    n.dlogits = handleOf(o.dlogits, 'options.dlogits');
    expectDType(n.dlogits, ['f32'], 'options.dlogits');
    expectShape(n.dlogits, [rows, vocab], 'options.dlogits');
  }
  return [lh, yh, n];
}

function ceResult(r: { loss: number; count: number; dlogits: NativeTensor | null }, options?: CrossEntropyOptions): CrossEntropyResult {
  const dlogits = options?.dlogits ?? (r.dlogits ? new Tensor(r.dlogits) : null);
  return { loss: r.loss, count: r.count, dlogits };
}

/**
 * Cross-entropy of softmax(logits) against integer labels, with max-subtraction and an f64 sum over the
 * vocabulary (finite for logits of any size). Labels other than ignoreIndex outside [0, vocab) → E_RANGE.
 * @param logits [rows, vocab] f32
 * @param labels [rows] i32 (already shifted for causal language modelling)
 */
export function crossEntropy(logits: Tensor, labels: Tensor, options?: CrossEntropyOptions): CrossEntropyResult {
  return ceResult(native.crossEntropy(...ceArgs(logits, labels, options)), options);
}

/** {@link crossEntropy} on a worker thread. */
export function crossEntropyAsync(logits: Tensor, labels: Tensor, options?: CrossEntropyOptions): Promise<CrossEntropyResult> {
  return withCallSite(async () => ceResult(await native.crossEntropyAsync(...ceArgs(logits, labels, options)), options));
}
