/**
 * Checks a completion request before it is queued, naming the field that is wrong. `names` maps the
 * engine's field names to the caller's (the server reports OpenAI's: max_tokens, top_p, ...); the
 * thrown PeftError carries that name as `param`.
 * @internal
 * @module
 */
import { PeftError, type PeftErrorCode } from '../errors';
import type { Model } from '../models/model';
import { describe } from '../validate';
import type { CompletionRequest } from './sequence';

/** A PeftError about one request field. */
export interface FieldError extends PeftError {
  param: string;
}

export type FieldNames = Partial<Record<keyof CompletionRequest, string>>;

function fieldError(param: string, expected: string, received: unknown, code: PeftErrorCode = 'E_ARGUMENT'): FieldError {
  return Object.assign(new PeftError(`Expected ${expected} for ${param} but received ${describe(received)}`, code), { param });
}

/** The prompt's token ids and the token limit of a valid request; throws a FieldError otherwise. */
export function checkRequest(request: CompletionRequest, model: Model, names: FieldNames = {}): { ids: number[]; maxTokens: number } {
  const name = (key: keyof CompletionRequest) => names[key] ?? key;
  if (typeof request !== 'object' || request === null) throw fieldError('request', 'an object', request);
  const vocab = model.config.vocabSize;
  const tokenId = (v: unknown) => Number.isInteger(v) && (v as number) >= 0 && (v as number) < vocab;
  let ids: number[];
  const prompt = request.prompt as unknown;
  if (typeof prompt === 'string') {
    if (!model.tokenizer) throw fieldError(name('prompt'), 'token ids (the model has no tokenizer)', 'a string');
    ids = model.tokenizer.encode(prompt);
    if (!ids.length) throw fieldError(name('prompt'), 'a prompt of at least one token', prompt);
  } else if (Array.isArray(prompt) && prompt.length && prompt.every(tokenId)) {
    ids = prompt as number[];
  } else {
    throw fieldError(name('prompt'), `a string or a non-empty array of token ids in [0, ${vocab})`, prompt);
  }
  const number = (key: keyof CompletionRequest, fallback: number, check: (v: number) => boolean, expected: string) => {
    const v = request[key] as unknown;
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || !check(v)) throw fieldError(name(key), expected, v, typeof v === 'number' ? 'E_RANGE' : 'E_ARGUMENT');
    return v;
  };
  const context = model.config.maxPositionEmbeddings;
  const room = context - ids.length;
  if (room < 0) throw fieldError(name('prompt'), `a prompt of at most ${context} tokens (the model's context)`, `${ids.length} tokens`, 'E_RANGE');
  const maxTokens = number('maxTokens', Math.min(16, room), (v) => Number.isInteger(v) && v >= 0 && v <= room,
    `an integer in [0, ${room}] (the model's context of ${context} tokens less the prompt's ${ids.length})`);
  number('temperature', 0, (v) => v >= 0 && v <= 100, 'a number in [0, 100]');
  number('topK', 0, (v) => Number.isInteger(v) && v >= 0, 'a non-negative integer');
  number('topP', 1, (v) => v > 0 && v <= 1, 'a number in (0, 1]');
  number('repetitionPenalty', 1, (v) => v > 0, 'a positive number');
  number('seed', 0, (v) => Number.isInteger(v), 'an integer');
  const stop = request.stop as unknown;
  if (stop !== undefined && stop !== null && !(Array.isArray(stop) && stop.length <= 16 && stop.every((s) => typeof s === 'string' && s.length > 0))) {
    throw fieldError(name('stop'), 'up to 16 non-empty strings', stop);
  }
  const stopTokens = request.stopTokens as unknown;
  if (stopTokens !== undefined && stopTokens !== null && !(Array.isArray(stopTokens) && stopTokens.every(tokenId))) {
    throw fieldError(name('stopTokens'), `an array of token ids in [0, ${vocab})`, stopTokens);
  }
  const adapter = request.adapter as unknown;
  if (adapter !== undefined && adapter !== null && (typeof adapter !== 'string' || !adapter)) throw fieldError(name('adapter'), 'an adapter name', adapter);
  if (request.ignoreEos !== undefined && typeof request.ignoreEos !== 'boolean') throw fieldError(name('ignoreEos'), 'a boolean', request.ignoreEos);
  if (request.signal !== undefined && !(request.signal instanceof AbortSignal)) throw fieldError(name('signal'), 'an AbortSignal', request.signal);
  return { ids, maxTokens };
}
