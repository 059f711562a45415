/**
 * One call at a time per model. The native model refuses a second native call while one runs, but
 * the facade's calls are made of several native calls (loss = forward + backward; generate = reset
 * the KV cache + one step per token; a training run = thousands of these), and another call slipped
 * in between them would silently read or overwrite the first one's activations, cache or adapter
 * selection. So each of these holds the model's lock for its whole duration, and any other call on
 * the model meanwhile fails with `E_BUSY`. Calls made from inside the holder's own flow (the
 * Trainer's steps, its callbacks, PeftModel.loss calling Model.loss) share the lock: the holder is
 * tracked through AsyncLocalStorage, which follows awaits.
 * @internal
 * @module
 */
import { AsyncLocalStorage } from 'node:async_hooks';

import { PeftError } from '../errors';

/** The locks held by the current asynchronous flow. */
const held = new AsyncLocalStorage<ReadonlySet<ModelLock>>();

/** @internal */
export class ModelLock {
  /** The call that holds the lock, for the E_BUSY message; undefined when free. */
  private holder: string | undefined;

  /** Whether the current flow holds this lock (calls from it pass). */
  private ownedHere(): boolean {
    return held.getStore()?.has(this) ?? false;
  }

  /** Throws E_BUSY when another flow holds the lock; `what` names the refused call. */
  check(what: string): void {
    if (this.holder !== undefined && !this.ownedHere()) {
      throw new PeftError(`The model is busy with ${this.holder}; await it before calling ${what} (one call at a time per model)`, 'E_BUSY');
    }
  }

  /** Runs `fn` holding the lock (E_BUSY at once if another flow holds it). */
  async run<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (this.ownedHere()) return fn();
    this.check(what);
    this.holder = what;
    try {
      return await held.run(new Set([...(held.getStore() ?? []), this]), fn);
    } finally {
      this.holder = undefined;
    }
  }

  /**
   * Holds the lock from the first next() until the iterator ends, throws or is returned (a
   * `break` out of for-await returns it). An iterator dropped half-way keeps the model busy until
   * its return() is called.
   */
  async *iterate<T>(what: string, make: () => AsyncIterableIterator<T>): AsyncIterableIterator<T> {
    if (this.ownedHere()) {
      yield* make();
      return;
    }
    this.check(what);
    this.holder = what;
    try {
      yield* make();
    } finally {
      this.holder = undefined;
    }
  }
}
