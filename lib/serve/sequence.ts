/**
 * One request being served: its tokens (prompt, then what was generated), how many of them are in
 * its KV cache slot, its sampler, and the text handed out so far. The engine feeds its pending
 * tokens to a step and gives it the logits of the last one; the sequence picks the next token and
 * decides whether it is finished (an end token, a stop string, its token limit).
 * @internal
 * @module
 */
import type { Tokenizer } from '../models/tokenizer';
import { Sampler, type SamplingOptions } from '../models/sampling';
import type { AdapterLease } from './adapter-pool';
import { PushQueue } from './push-queue';

/** A completion request to the {@link Engine}. */
export interface CompletionRequest extends SamplingOptions {
  /** Text (needs the model's tokenizer) or token ids. */
  prompt: string | number[];
  /** A LoRA adapter of the engine's pool by name; omitted or null: the base model. */
  adapter?: string | null;
  /** The most new tokens. Default 16 (as OpenAI's completions). */
  maxTokens?: number;
  /** Stop before the first of these strings in the new text (it is not returned). */
  stop?: string[];
  /** Stop after one of these tokens (the end-of-sequence token always stops, unless ignoreEos). */
  stopTokens?: number[];
  /** Keep going past the end-of-sequence token (benchmarks). */
  ignoreEos?: boolean;
  /** Aborting cancels the request: it ends with finishReason 'cancelled' at the next step. */
  signal?: AbortSignal;
}

/** Why a completion ended. */
export type FinishReason = 'stop' | 'length' | 'cancelled';

/** A piece of a streamed completion: the new text and the tokens that made it. */
export interface CompletionChunk {
  text: string;
  tokens: number[];
}

/** A finished completion. */
export interface CompletionResult {
  /** The new text (stop string excluded). */
  text: string;
  /** The new tokens (a stop token included). */
  tokens: number[];
  finishReason: FinishReason;
  promptTokens: number;
  completionTokens: number;
  adapter: string | null;
  /** Milliseconds from submission: to the first step, to the first new token, to the end. */
  timings: { queuedMs: number; firstTokenMs: number; totalMs: number };
}

/** Prompt tokens decoded in front of the first new ones, so that a word's leading space survives decoding. */
const CONTEXT_TOKENS = 4;

export class Sequence {
  /** Prompt tokens, then each new token. */
  readonly tokens: number[];
  readonly promptLength: number;
  readonly maxTokens: number;
  readonly adapter: string | null;
  readonly lease: AdapterLease | undefined;
  readonly queue: PushQueue<CompletionChunk>;
  readonly result: Promise<CompletionResult>;
  /** Tokens already in the slot. */
  fed = 0;
  slot = 0;
  /** The native id of its adapter (0: none), set when it is admitted. */
  adapterId = 0;
  finish: FinishReason | undefined;
  cancelled = false;

  private readonly sampler: Sampler;
  private readonly stopTokens: Set<number>;
  private readonly stops: string[];
  /** The new text decoded so far (complete characters only). */
  private text = '';
  /** Incremental decoding: tokens [prefixAt, readAt) are already text; a new token's text is what
   *  decoding [prefixAt, end) adds to decoding [prefixAt, readAt). Constant work per token. */
  private prefixAt: number;
  private readAt: number;
  private emitted = '';
  private pendingTokens: number[] = [];
  private readonly started = Date.now();
  private admittedAt = 0;
  private firstAt = 0;
  private settle!: { resolve: (r: CompletionResult) => void; reject: (e: unknown) => void };

  constructor(
    ids: number[],
    request: CompletionRequest,
    maxTokens: number,
    private readonly tokenizer: Tokenizer | undefined,
    eos: number | undefined,
    lease: AdapterLease | undefined,
    onCancel: () => void,
  ) {
    this.tokens = [...ids];
    this.promptLength = ids.length;
    this.maxTokens = maxTokens;
    this.adapter = request.adapter ?? null;
    this.lease = lease;
    this.sampler = new Sampler(request);
    this.stopTokens = new Set([...(request.stopTokens ?? []), ...(eos === undefined || request.ignoreEos ? [] : [eos])]);
    this.stops = request.stop ?? [];
    this.prefixAt = Math.max(0, ids.length - CONTEXT_TOKENS);
    this.readAt = ids.length;
    this.queue = new PushQueue(onCancel);
    this.result = new Promise((resolve, reject) => (this.settle = { resolve, reject }));
    this.result.catch(() => undefined); // a stream consumer gets the error from the queue instead
  }

  get generated(): number[] {
    return this.tokens.slice(this.promptLength);
  }

  /** Tokens not yet in the slot. */
  get pending(): number {
    return this.tokens.length - this.fed;
  }

  admitted(): void {
    this.admittedAt = Date.now();
  }

  /** Takes the next token from the logits [vocab] of its last fed token; true when the sequence is done. */
  accept(logits: Float32Array): boolean {
    const token = this.sampler.next(logits, this.tokens);
    if (!this.firstAt) this.firstAt = Date.now();
    this.tokens.push(token);
    this.pendingTokens.push(token);
    const count = this.tokens.length - this.promptLength;
    let done = this.stopTokens.has(token);
    if (this.tokenizer) {
      const final = done || count >= this.maxTokens;
      const before = this.text.length;
      this.decodeNew(final);
      let text = this.text;
      // A stop string can only end in what was just added: search from where it could start.
      const from = Math.max(0, before - this.longestStop + 1);
      const hit = this.stops.map((s) => text.indexOf(s, from)).filter((i) => i >= 0);
      if (hit.length) {
        text = text.slice(0, Math.min(...hit));
        this.text = text;
        done = true;
      }
      // Hold back a tail that may be the start of a stop string.
      if (done || final) this.emit(text);
      else this.emit(text.slice(0, text.length - this.stopPrefixLength(text)));
    } else {
      this.emit('');
    }
    if (done) this.finish = 'stop';
    else if (count >= this.maxTokens) this.finish = 'length';
    return this.finish !== undefined;
  }

  /** Ends it: the stream closes and the result resolves (or rejects with `error`). */
  end(reason: FinishReason, error?: unknown): void {
    this.finish ??= reason;
    if (error !== undefined) {
      this.queue.end(error);
      this.settle.reject(error);
      return;
    }
    if (this.pendingTokens.length) this.queue.push({ text: '', tokens: this.pendingTokens.splice(0) });
    this.queue.end();
    const now = Date.now();
    const generated = this.generated;
    this.settle.resolve({
      text: this.emitted,
      tokens: generated,
      finishReason: this.finish,
      promptTokens: this.promptLength,
      completionTokens: generated.length,
      adapter: this.adapter,
      timings: { queuedMs: (this.admittedAt || now) - this.started, firstTokenMs: (this.firstAt || now) - this.started, totalMs: now - this.started },
    });
  }

  private get longestStop(): number {
    return this.stops.reduce((n, s) => Math.max(n, s.length), 0);
  }

  /** Appends the text of the tokens not yet decoded; an incomplete UTF-8 character (U+FFFD) waits for its other bytes unless `final`. */
  private decodeNew(final: boolean): void {
    const tok = this.tokenizer!;
    const window = this.tokens.slice(this.prefixAt);
    const known = tok.decode(this.tokens.slice(this.prefixAt, this.readAt));
    const all = tok.decode(window);
    if (!final && (all.length <= known.length || all.endsWith('\uFFFD'))) return;
    this.text += all.startsWith(known) ? all.slice(known.length) : all.slice(Math.min(known.length, all.length));
    this.prefixAt = this.readAt;
    this.readAt = this.tokens.length;
  }

  /** The length of the longest tail of `text` that begins some stop string. */
  private stopPrefixLength(text: string): number {
    let longest = 0;
    for (const stop of this.stops) {
      for (let n = Math.min(stop.length - 1, text.length); n > longest; n--) {
        if (text.endsWith(stop.slice(0, n))) {
          longest = n;
          break;
        }
      }
    }
    return longest;
  }

  private emit(text: string): void {
    // Hand out what is new; a stop string that appeared may shorten the text, never what was sent.
    const piece = text.length > this.emitted.length && text.startsWith(this.emitted) ? text.slice(this.emitted.length) : '';
    if (piece || !this.tokenizer) {
      this.queue.push({ text: piece, tokens: this.pendingTokens.splice(0) });
      this.emitted += piece;
    }
  }
}
