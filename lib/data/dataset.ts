/** A tokenized data set and the batches a trainer draws from it, in a reproducible, resumable order. */
import { PeftError } from '../errors';
import { expectNumber, optionalBoolean, optionalNumber, optionsObject } from '../validate';
import { padBatch } from './batch';
import { deriveSeed, permutation } from './random';
import type { Batch, ClassLabel, DataFormat, DataPosition, DatasetStats, Example } from './types';

/** Options of {@link Dataset.batches}. */
export interface BatchOptions {
  /** Visit the examples in a seeded random order, different each epoch. Default true. */
  shuffle?: boolean;
  /** The seed of the order (any safe integer). Default 0. */
  seed?: number;
  /** The epoch, which picks the order when shuffling. Default 0. */
  epoch?: number;
  /** The first batch to give (to resume within an epoch). Default 0. */
  start?: number;
  /** Leave out a last batch smaller than `batchSize`. Default false. */
  dropLast?: boolean;
  /** The padding id. Default the data set's {@link Dataset.padId}. */
  padId?: number;
}

/** Options of {@link Dataset.iterate}. */
export interface IterateOptions extends Omit<BatchOptions, 'epoch' | 'start'> {
  /** Where to start: a {@link Batch.next} saved in a checkpoint. Default `{ epoch: 0, index: 0 }`. */
  from?: DataPosition;
}

const SHUFFLE_SALT = 0x5348; // 'SH': keeps the batch order apart from the split order of the same seed.

/**
 * Tokenized examples with their statistics. Create it with {@link loadDataset} or {@link loadDatasets}.
 *
 * Batches are deterministic: the same seed, epoch and batch size give the same batches on any machine,
 * and a {@link DataPosition} (`batch.next`) is all a checkpoint needs to resume exactly.
 */
export class Dataset {
  /** The tokenized sequences, in file order (packed ones when packing). */
  readonly examples: readonly Example[];
  /** The record format. */
  readonly format: DataFormat;
  /** The id that pads batches: the tokenizer's pad token, else its EOS, else 0. */
  readonly padId: number;
  private readonly statistics: DatasetStats;

  /** @internal Use {@link loadDataset} or {@link loadDatasets}. */
  constructor(examples: Example[], stats: DatasetStats, padId: number) {
    this.examples = examples;
    this.format = stats.format;
    this.padId = padId;
    this.statistics = stats;
  }

  /** Number of sequences. */
  get length(): number {
    return this.examples.length;
  }

  /** Classification only: the labels, index = class id for string labels (integer labels are their own ids). */
  get labelSet(): ClassLabel[] | undefined {
    return this.statistics.labelSet?.slice();
  }

  /** Counts and lengths: records, sequences, tokens, loss tokens, truncated and dropped records, labels. */
  stats(): DatasetStats {
    const stats = { ...this.statistics };
    if (stats.labelSet) stats.labelSet = stats.labelSet.slice();
    return stats;
  }

  /** Number of batches in one epoch. */
  numBatches(batchSize: number, options?: { dropLast?: boolean }): number {
    expectNumber(batchSize, 'batchSize', { min: 1, integer: true });
    const dropLast = optionalBoolean(optionsObject(options), 'dropLast', false);
    return dropLast ? Math.floor(this.length / batchSize) : Math.ceil(this.length / batchSize);
  }

  /** The order of the examples in `epoch`: file order, or a permutation fixed by (seed, epoch). */
  order(epoch: number, options?: { shuffle?: boolean; seed?: number }): number[] {
    expectNumber(epoch, 'epoch', { min: 0, integer: true });
    const o = optionsObject(options);
    const seed = optionalNumber(o, 'seed', 0, { integer: true, min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER });
    if (!optionalBoolean(o, 'shuffle', true)) return Array.from({ length: this.length }, (_, i) => i);
    return permutation(this.length, deriveSeed(seed, SHUFFLE_SALT, epoch));
  }

  /** The batches of one epoch, from `start` on. */
  *batches(batchSize: number, options?: BatchOptions): Generator<Batch> {
    const o = optionsObject(options);
    const epoch = optionalNumber(o, 'epoch', 0, { min: 0, integer: true });
    const count = this.numBatches(batchSize, { dropLast: optionalBoolean(o, 'dropLast', false) });
    const start = optionalNumber(o, 'start', 0, { min: 0, integer: true });
    const padId = optionalNumber(o, 'padId', this.padId, { min: 0, integer: true });
    const order = this.order(epoch, { shuffle: o.shuffle as boolean | undefined, seed: o.seed as number | undefined });
    for (let index = start; index < count; index++) {
      const indices = order.slice(index * batchSize, (index + 1) * batchSize);
      const next = index + 1 < count ? { epoch, index: index + 1 } : { epoch: epoch + 1, index: 0 };
      yield padBatch(this.examples, indices, padId, { epoch, index }, next);
    }
  }

  /** Batches epoch after epoch without end, from a saved position: the loop of a step-limited trainer. */
  *iterate(batchSize: number, options?: IterateOptions): Generator<Batch> {
    const o = optionsObject(options);
    const from = o.from === undefined ? { epoch: 0, index: 0 } : (optionsObject(o.from, 'option from') as unknown as DataPosition);
    let epoch = expectNumber(from.epoch, 'option from.epoch', { min: 0, integer: true });
    let start = expectNumber(from.index, 'option from.index', { min: 0, integer: true });
    if (this.numBatches(batchSize, { dropLast: o.dropLast as boolean | undefined }) === 0) {
      const expected = `at most ${this.length} (the data set's size) for batchSize with dropLast`;
      throw new PeftError(`Expected ${expected} but received the number ${batchSize}`, 'E_RANGE');
    }
    for (;;) {
      yield* this.batches(batchSize, { ...(o as BatchOptions), epoch, start });
      epoch++;
      start = 0;
    }
  }
}
