/**
 * The serving engine: many completion requests on one base model at once, each with its own LoRA
 * adapter (or none), sampling settings, stop strings and token limit. Requests wait in a bounded
 * queue, join the running batch as slots free up and leave it when they finish (continuous
 * batching): every step feeds each running request its pending tokens (a chunk of its prompt, or
 * its last new token) in one forward pass of the native model, which adds each request's adapter
 * with one multi-adapter LoRA call per layer. Embed it in any Node program (see also createServer).
 * @module
 */
import { PeftError } from '../errors';
import type { Model } from '../models/model';
import { handleOf, tensor } from '../tensor';
import { expectNumber } from '../validate';
import { AdapterPool, type AdapterPoolOptions, type PooledAdapter } from './adapter-pool';
import { checkRequest, type FieldNames } from './request-checks';
import { Sequence, type CompletionChunk, type CompletionRequest, type CompletionResult } from './sequence';

export type { CompletionChunk, CompletionRequest, CompletionResult, FinishReason } from './sequence';

/** Options of {@link Engine}. */
export interface EngineOptions {
  /** The adapter pool, or the options to make one (its directory, memory budget). */
  adapters?: AdapterPool | AdapterPoolOptions;
  /** Requests decoded together at most. Default 32. */
  maxBatch?: number;
  /** Requests waiting for a place in the batch at most; more are refused with E_BUSY. Default 256. */
  maxQueue?: number;
  /** Tokens one step feeds at most (decoding rows first, then prompt chunks). Default 512. */
  stepTokens?: number;
}

/** A streamed completion: iterate it for the pieces; `result` resolves when it ends. */
export interface CompletionStream extends AsyncIterableIterator<CompletionChunk> {
  readonly result: Promise<CompletionResult>;
  /** Ends the request at the next step (finishReason 'cancelled'). */
  cancel(): void;
}

/** What {@link Engine.stats} reports. */
export interface EngineStats {
  running: number;
  waiting: number;
  completed: number;
  cancelled: number;
  failed: number;
  promptTokens: number;
  generatedTokens: number;
  steps: number;
  /** Rows (tokens) fed over all steps. */
  stepRows: number;
  /** Steps that only decoded (one row per request, no prompt chunk), their rows and their milliseconds. */
  decodeSteps: number;
  decodeRows: number;
  decodeMs: number;
  /** Native KV cache slots open now (one per running request). */
  openSlots: number;
  /** Adapters registered with the native model now. */
  nativeAdapters: number;
}

export class Engine {
  readonly model: Model;
  readonly adapters: AdapterPool;
  private readonly ownsPool: boolean;
  private readonly maxBatch: number;
  private readonly maxQueue: number;
  private readonly stepTokens: number;
  private readonly waiting: Sequence[] = [];
  private readonly running: Sequence[] = [];
  /** Native registrations by pooled adapter version. */
  private readonly nativeIds = new Map<PooledAdapter, number>();
  /** Registrations to drop between steps (the pool freed their version). */
  private readonly removals: number[] = [];
  private loop: Promise<void> | undefined;
  private closed = false;
  private disposed = false;
  private counts = { completed: 0, cancelled: 0, failed: 0, promptTokens: 0, generatedTokens: 0, steps: 0, stepRows: 0, decodeSteps: 0, decodeRows: 0, decodeMs: 0 };

  constructor(model: Model, options: EngineOptions = {}) {
    if (model.config.architecture === 'bert') throw new PeftError('A sequence classifier (BERT) does not generate text, so it cannot be served', 'E_UNSUPPORTED');
    this.model = model;
    const integer = (key: 'maxBatch' | 'maxQueue' | 'stepTokens', fallback: number, min: number) =>
      options[key] === undefined ? fallback : expectNumber(options[key], `options.${key}`, { min, integer: true });
    this.maxBatch = integer('maxBatch', 32, 1);
    this.maxQueue = integer('maxQueue', 256, 0);
    this.stepTokens = integer('stepTokens', 512, 1);
    const onFree = (a: PooledAdapter) => this.forget(a);
    if (options.adapters instanceof AdapterPool) {
      this.adapters = options.adapters;
      this.ownsPool = false;
      this.adapters.addFreeListener(onFree);
    } else {
      this.adapters = new AdapterPool(model, { ...(options.adapters ?? {}), onFree });
      this.ownsPool = true;
    }
  }

  /**
   * Starts a completion and returns it as a stream of pieces (with `result`). Throws at once for a
   * bad request (E_ARGUMENT / E_RANGE naming the field), an unknown or unusable adapter (the pool's
   * errors), a full queue (E_BUSY) or a closed engine (E_DISPOSED).
   */
  stream(request: CompletionRequest, /** @internal the caller's field names for errors */ names?: FieldNames): CompletionStream {
    if (this.closed) throw new PeftError('The engine is shutting down and takes no new requests', 'E_DISPOSED');
    const { ids, maxTokens } = checkRequest(request, this.model, names);
    if (this.waiting.length >= this.maxQueue) {
      throw new PeftError(`The engine's queue is full (${this.maxQueue} requests waiting); try again later`, 'E_BUSY');
    }
    const lease = request.adapter == null ? undefined : this.adapters.acquire(request.adapter);
    const eos = this.model.tokenizer?.eosId ?? (typeof this.model.config.eosTokenId === 'number' ? this.model.config.eosTokenId : undefined);
    let seq: Sequence;
    try {
      seq = new Sequence(ids, request, maxTokens, this.model.tokenizer, eos, lease, () => this.cancel(seq));
    } catch (err) {
      lease?.release();
      throw err;
    }
    this.counts.promptTokens += ids.length;
    if (request.signal) {
      if (request.signal.aborted) seq.cancelled = true;
      else request.signal.addEventListener('abort', () => this.cancel(seq), { once: true });
    }
    if (maxTokens === 0) {
      this.finish(seq, 'length');
    } else {
      this.waiting.push(seq);
      this.wake();
    }
    const stream = seq.queue as unknown as CompletionStream;
    Object.defineProperty(stream, 'result', { value: seq.result });
    Object.defineProperty(stream, 'cancel', { value: () => this.cancel(seq) });
    return stream;
  }

  /** Runs a completion to its end. */
  async complete(request: CompletionRequest): Promise<CompletionResult> {
    const stream = this.stream(request);
    for await (const piece of stream) void piece;
    return stream.result;
  }

  stats(): EngineStats {
    return { running: this.running.length, waiting: this.waiting.length, ...this.counts, openSlots: this.running.filter((s) => s.slot).length, nativeAdapters: this.nativeIds.size };
  }

  /** Takes no new requests and resolves when every running and waiting one has finished. */
  async close(): Promise<void> {
    this.closed = true;
    while (this.loop) await this.loop;
  }

  /** close(), then frees the native registrations (and the pool, when the engine made it). */
  async dispose(): Promise<void> {
    await this.close();
    if (this.disposed) return;
    this.disposed = true;
    if (this.ownsPool) this.adapters.dispose();
    else this.adapters.removeFreeListener(this.forget);
    for (const id of this.nativeIds.values()) this.removals.push(id);
    this.nativeIds.clear();
    this.flushRemovals();
  }

  private cancel(seq: Sequence): void {
    if (seq.finish) return;
    seq.cancelled = true;
    const i = this.waiting.indexOf(seq);
    if (i >= 0) {
      this.waiting.splice(i, 1);
      this.finish(seq, 'cancelled');
    }
  }

  private forget = (adapter: PooledAdapter): void => {
    const id = this.nativeIds.get(adapter);
    if (id === undefined) return;
    this.nativeIds.delete(adapter);
    this.removals.push(id);
    if (!this.loop) this.flushRemovals();
  };

  /** Drops the queued registrations; one the model refuses now (busy with another call) waits for the next step. */
  private flushRemovals(): void {
    const native = this.model.nativeModel;
    while (this.removals.length) {
      try {
        native.serveRemoveAdapter(this.removals[0]);
      } catch (err) {
        if (err instanceof PeftError && err.code === 'E_BUSY') return;
        // E_DISPOSED: the model and its registrations are gone
      }
      this.removals.shift();
    }
  }

  private wake(): void {
    if (this.loop) return;
    this.loop = this.run().finally(() => {
      this.loop = undefined;
      if (this.waiting.length || this.running.length) this.wake();
    });
  }

  private async run(): Promise<void> {
    while (this.running.length || this.waiting.length) {
      this.flushRemovals();
      for (const seq of this.running.filter((s) => s.cancelled)) this.finish(seq, 'cancelled');
      this.admit();
      if (!this.running.length) return;
      try {
        await this.step();
      } catch (err) {
        // A failed step (E_BUSY from another call on the model, out of memory, ...) fails the
        // requests in it; the others keep waiting.
        for (const seq of [...this.running]) this.finish(seq, 'stop', err);
      }
    }
  }

  /** Moves waiting requests into the batch while there is room: a slot and the adapter's registration. */
  private admit(): void {
    const native = this.model.nativeModel;
    while (this.waiting.length && this.running.length < this.maxBatch) {
      const seq = this.waiting.shift()!;
      if (seq.cancelled) {
        this.finish(seq, 'cancelled');
        continue;
      }
      try {
        this.model.lock.check('a serving step');
        if (seq.lease) seq.adapterId = this.register(seq.lease.adapter);
        seq.slot = native.serveOpen(seq.promptLength + seq.maxTokens);
      } catch (err) {
        this.finish(seq, 'stop', err);
        continue;
      }
      seq.admitted();
      this.running.push(seq);
    }
  }

  private register(adapter: PooledAdapter): number {
    let id = this.nativeIds.get(adapter);
    if (id === undefined) {
      const modules = [...adapter.modules];
      id = this.model.nativeModel.serveAddAdapter(
        modules.map(([name]) => name),
        modules.map(([, m]) => handleOf(m.a, `${adapter.name} ${m.a}`)),
        modules.map(([, m]) => handleOf(m.b, `${adapter.name} ${m.b}`)),
        modules.map(([, m]) => m.scale),
      );
      this.nativeIds.set(adapter, id);
    }
    return id;
  }

  /** One forward pass over every running request's pending tokens, within the step's token budget. */
  private async step(): Promise<void> {
    let budget = this.stepTokens;
    const fed: { seq: Sequence; rows: number }[] = [];
    // Decoding rows first (one token each), then prompt chunks with what is left.
    for (const seq of this.running) if (seq.pending === 1 && budget > 0) (fed.push({ seq, rows: 1 }), budget--);
    for (const seq of this.running) {
      if (seq.pending > 1 && budget > 0) {
        const rows = Math.min(seq.pending, budget);
        fed.push({ seq, rows });
        budget -= rows;
      }
    }
    const ids = new Int32Array(this.stepTokens - budget);
    const segments: number[] = [];
    let at = 0;
    for (const { seq, rows } of fed) {
      ids.set(seq.tokens.slice(seq.fed, seq.fed + rows), at);
      at += rows;
      segments.push(seq.slot, rows, seq.adapterId);
    }
    const input = tensor(ids, [ids.length], 'i32');
    const started = performance.now();
    let logits: Float32Array;
    try {
      const out = await this.model.lock.run('a serving step', () => this.model.nativeModel.serveStepAsync(handleOf(input, 'ids'), segments));
      logits = out.toFloat32Array();
      out.dispose();
    } finally {
      input.dispose();
    }
    this.counts.steps++;
    this.counts.stepRows += ids.length;
    if (fed.length === ids.length) {
      this.counts.decodeSteps++;
      this.counts.decodeRows += ids.length;
      this.counts.decodeMs += performance.now() - started;
    }
    const vocab = logits.length / fed.length;
    fed.forEach(({ seq, rows }, i) => {
      seq.fed += rows;
      if (seq.pending > 0 || seq.finish) return; // the prompt goes on in the next step
      let done: boolean;
      try {
        done = seq.accept(logits.subarray(i * vocab, (i + 1) * vocab));
      } catch (err) {
        this.finish(seq, 'stop', err);
        return;
      }
      this.counts.generatedTokens++;
      if (done) this.finish(seq, seq.finish!);
    });
  }

  private finish(seq: Sequence, reason: 'stop' | 'length' | 'cancelled', error?: unknown): void {
    const i = this.running.indexOf(seq);
    if (i >= 0) this.running.splice(i, 1);
    if (seq.slot) {
      try {
        this.model.nativeModel.serveClose(seq.slot);
      } catch {
        // the model was disposed: its slots went with it
      }
      seq.slot = 0;
    }
    seq.lease?.release();
    if (error !== undefined) this.counts.failed++;
    else if (reason === 'cancelled' || seq.cancelled) this.counts.cancelled++;
    else this.counts.completed++;
    seq.end(seq.cancelled ? 'cancelled' : reason, error);
  }
}
