/** Embedding lookup (gather of table rows by token id) and its scatter-add backward. */
import { PeftError, withCallSite } from '../errors';
import { native, type NativeTensor } from '../native';
import { handleOf, Tensor } from '../tensor';
import { expectNumber, fail, optionalBoolean, optionsObject } from '../validate';
import { expectDType, expectMatrix, expectShape, shapeString } from './checks';

/** Options of {@link embeddingBackward}: give gradTable, or vocabSize for a new one. */
export interface EmbeddingBackwardOptions {
  /** Write (or, with accumulate, add) into this f32 [vocab, dim] tensor. */
  gradTable?: Tensor;
  /** The vocabulary size of a new gradient table (when gradTable is not given). */
  vocabSize?: number;
  /** Add into gradTable instead of overwriting it. Default false. */
  accumulate?: boolean;
}

function forwardArgs(ids: Tensor, table: Tensor): [NativeTensor, NativeTensor] {
  const ih = handleOf(ids, 'ids');
  expectDType(ih, ['i32'], 'ids');
  const th = handleOf(table, 'table');
  expectMatrix(th, 'table', ['f32']);
  return [ih, th];
}

/**
 * Looks up rows of table: out[..., :] = table[ids[...], :]. An id outside [0, vocab) → E_RANGE.
 * @param ids [...] i32 token ids
 * @param table [vocab, dim] f32
 * @returns [...ids.shape, dim] f32
 */
export function embeddingForward(ids: Tensor, table: Tensor): Tensor {
  return new Tensor(native.embeddingForward(...forwardArgs(ids, table)));
}

/** {@link embeddingForward} on a worker thread. */
export function embeddingForwardAsync(ids: Tensor, table: Tensor): Promise<Tensor> {
  return withCallSite(async () => new Tensor(await native.embeddingForwardAsync(...forwardArgs(ids, table))));
}

type BackwardArgs = [NativeTensor, NativeTensor, NativeTensor | null, number, boolean];

function backwardArgs(dout: Tensor, ids: Tensor, options?: EmbeddingBackwardOptions): BackwardArgs {
  const o = optionsObject(options);
  const dh = handleOf(dout, 'dout');
  const ih = handleOf(ids, 'ids');
  expectDType(ih, ['i32'], 'ids');
  expectDType(dh, ['f32'], 'dout');
  const idShape = ih.shape();
  const dshape = dh.shape();
  if (dshape.length !== idShape.length + 1 || idShape.some((d, i) => d !== dshape[i])) {
    throw new PeftError(
      `Expected shape [${[...idShape, 'dim'].join(', ')}] for dout but received ${shapeString(dshape)}`,
      'E_SHAPE',
    );
  }
  const dim = dshape[dshape.length - 1];
  const accumulate = optionalBoolean(o, 'accumulate', false);
  if (o.gradTable !== undefined) {
    const g = handleOf(o.gradTable, 'options.gradTable');
    const [vocab] = expectMatrix(g, 'options.gradTable', ['f32']);
    expectShape(g, [vocab, dim], 'options.gradTable');
    return [dh, ih, g, vocab, accumulate];
  }
  if (accumulate) fail('options.gradTable', 'a Tensor to accumulate into (option accumulate is true)', undefined);
  if (o.vocabSize === undefined) fail('options.vocabSize', 'the vocabulary size (or options.gradTable)', undefined);
  const vocab = expectNumber(o.vocabSize, 'options.vocabSize', { min: 1, integer: true });
  return [dh, ih, null, vocab, false];
}

/**
 * Embedding backward: gradTable[ids[i], :] += dout[i, :] (repeated ids add up).
 * @param dout [...ids.shape, dim] f32
 * @param ids [...] i32, the forward's ids
 * @returns gradTable, [vocab, dim] f32 (options.gradTable itself when given)
 */
export function embeddingBackward(dout: Tensor, ids: Tensor, options?: EmbeddingBackwardOptions): Tensor {
  const r = native.embeddingBackward(...backwardArgs(dout, ids, options));
  return options?.gradTable ?? new Tensor(r);
}

/** {@link embeddingBackward} on a worker thread. */
export function embeddingBackwardAsync(dout: Tensor, ids: Tensor, options?: EmbeddingBackwardOptions): Promise<Tensor> {
  return withCallSite(async () => {
    const r = await native.embeddingBackwardAsync(...backwardArgs(dout, ids, options));
    return options?.gradTable ?? new Tensor(r);
  });
}
