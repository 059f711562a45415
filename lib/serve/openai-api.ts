/**
 * OpenAI's completions and chat completions, translated: a request body becomes an engine request
 * (its fields checked under OpenAI's names), and results become OpenAI's response and stream chunk
 * objects. Extensions that vLLM and llama.cpp's server also take: top_k, repetition_penalty,
 * ignore_eos.
 * @internal
 * @module
 */
import type { Model } from '../models/model';
import type { ChatMessage } from '../models/tokenizer';
import { describe } from '../validate';
import { HttpError } from './http-io';
import type { FieldNames } from './request-checks';
import type { CompletionRequest, CompletionResult, FinishReason } from './sequence';

/** The engine field → the body field it came from, for error messages. */
export const OPENAI_FIELDS: FieldNames = {
  prompt: 'prompt',
  maxTokens: 'max_tokens',
  temperature: 'temperature',
  topP: 'top_p',
  topK: 'top_k',
  repetitionPenalty: 'repetition_penalty',
  seed: 'seed',
  stop: 'stop',
  ignoreEos: 'ignore_eos',
};

function invalid(param: string, expected: string, received: unknown): HttpError {
  return new HttpError(400, `Expected ${expected} for ${param} but received ${describe(received)}`, 'invalid_request_error', 'invalid_value', param);
}

/** The sampling and limit fields shared by both endpoints. */
function common(body: Record<string, unknown>, maxTokensField: unknown): Omit<CompletionRequest, 'prompt'> {
  const n = body.n;
  if (n !== undefined && n !== null && n !== 1) throw invalid('n', '1 (one choice per request)', n);
  if (body.logprobs !== undefined && body.logprobs !== null && body.logprobs !== false) throw invalid('logprobs', 'null (log-probabilities are not returned)', body.logprobs);
  for (const key of ['frequency_penalty', 'presence_penalty'] as const) {
    if (body[key] !== undefined && body[key] !== null && body[key] !== 0) throw invalid(key, '0 (use repetition_penalty)', body[key]);
  }
  const stop = body.stop;
  return {
    maxTokens: maxTokensField as number,
    temperature: body.temperature as number,
    topP: body.top_p as number,
    topK: body.top_k as number,
    repetitionPenalty: body.repetition_penalty as number,
    seed: body.seed as number,
    stop: typeof stop === 'string' ? [stop] : (stop as string[]),
    ignoreEos: body.ignore_eos as boolean,
  };
}

function streamFlag(body: Record<string, unknown>): boolean {
  if (body.stream !== undefined && body.stream !== null && typeof body.stream !== 'boolean') throw invalid('stream', 'a boolean', body.stream);
  return body.stream === true;
}

function modelField(body: Record<string, unknown>): string | undefined {
  if (body.model === undefined || body.model === null) return undefined;
  if (typeof body.model !== 'string' || !body.model) throw invalid('model', 'a model id (see /v1/models)', body.model);
  return body.model;
}

export interface ParsedRequest {
  model: string | undefined;
  stream: boolean;
  includeUsage: boolean;
  request: CompletionRequest;
}

function includeUsage(body: Record<string, unknown>): boolean {
  const o = body.stream_options as { include_usage?: unknown } | undefined;
  return typeof o === 'object' && o !== null && o.include_usage === true;
}

export function parseCompletion(body: Record<string, unknown>): ParsedRequest {
  let prompt = body.prompt;
  if (Array.isArray(prompt) && prompt.length === 1 && (typeof prompt[0] === 'string' || Array.isArray(prompt[0]))) prompt = prompt[0];
  if (!(typeof prompt === 'string' || (Array.isArray(prompt) && prompt.every((t) => typeof t === 'number')))) {
    throw invalid('prompt', 'a string or an array of token ids (one prompt per request)', prompt);
  }
  return { model: modelField(body), stream: streamFlag(body), includeUsage: includeUsage(body), request: { prompt: prompt as string | number[], ...common(body, body.max_tokens) } };
}

/** The chat messages rendered as the prompt, with the tokenizer's chat template (or ChatML without one). */
export function parseChat(body: Record<string, unknown>, model: Model): ParsedRequest {
  const messages = body.messages;
  if (!Array.isArray(messages) || !messages.length) throw invalid('messages', 'a non-empty array of { role, content }', messages);
  const plain: ChatMessage[] = messages.map((m, i) => {
    const content = (m as { content?: unknown })?.content;
    const role = (m as { role?: unknown })?.role;
    const text = Array.isArray(content) ? content.map((p) => (p as { type?: unknown; text?: unknown })?.type === 'text' ? (p as { text: unknown }).text : undefined) : [content];
    if (typeof role !== 'string' || !text.every((t) => typeof t === 'string')) throw invalid(`messages[${i}]`, 'an object { role: string, content: string or text parts }', m);
    return { role, content: (text as string[]).join('') };
  });
  const tokenizer = model.tokenizer;
  if (!tokenizer) throw new HttpError(400, 'This model has no tokenizer, so it cannot render chat messages; use /v1/completions with token ids', 'invalid_request_error', 'no_tokenizer', 'messages');
  const text = tokenizer.hasChatTemplate
    ? tokenizer.applyChatTemplate(plain, { addGenerationPrompt: true })
    : plain.map((m) => `<|im_start|>${m.role}\n${m.content}<|im_end|>\n`).join('') + '<|im_start|>assistant\n';
  // A template that writes the BOS token itself must not get a second one from the tokenizer.
  const bos = tokenizer.bosId === undefined ? undefined : tokenizer.idToToken(tokenizer.bosId);
  const ids = tokenizer.encode(text, { addSpecialTokens: !(bos && text.startsWith(bos)) });
  const max = body.max_completion_tokens ?? body.max_tokens;
  const request = { prompt: ids, ...common(body, max) };
  // The ChatML fallback ends a turn with <|im_end|>: stop there too.
  if (!tokenizer.hasChatTemplate) request.stop = [...(request.stop ?? []), '<|im_end|>'];
  return { model: modelField(body), stream: streamFlag(body), includeUsage: includeUsage(body), request };
}

export const OPENAI_NAMES_FOR_CHAT: FieldNames = { ...OPENAI_FIELDS, prompt: 'messages' };

function finish(reason: FinishReason): 'stop' | 'length' {
  return reason === 'length' ? 'length' : 'stop';
}

function usage(r: CompletionResult): Record<string, number> {
  return { prompt_tokens: r.promptTokens, completion_tokens: r.completionTokens, total_tokens: r.promptTokens + r.completionTokens };
}

export function completionBody(id: string, created: number, model: string, r: CompletionResult): unknown {
  return { id, object: 'text_completion', created, model, choices: [{ index: 0, text: r.text, logprobs: null, finish_reason: finish(r.finishReason) }], usage: usage(r) };
}

export function completionChunk(id: string, created: number, model: string, text: string, reason: FinishReason | null): unknown {
  return { id, object: 'text_completion', created, model, choices: [{ index: 0, text, logprobs: null, finish_reason: reason && finish(reason) }] };
}

export function chatBody(id: string, created: number, model: string, r: CompletionResult): unknown {
  return {
    id,
    object: 'chat.completion',
    created,
    model,
    choices: [{ index: 0, message: { role: 'assistant', content: r.text }, logprobs: null, finish_reason: finish(r.finishReason) }],
    usage: usage(r),
  };
}

export function chatChunk(id: string, created: number, model: string, delta: Record<string, string>, reason: FinishReason | null): unknown {
  return { id, object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta, logprobs: null, finish_reason: reason && finish(reason) }] };
}

export function usageChunk(id: string, created: number, model: string, object: string, r: CompletionResult): unknown {
  return { id, object, created, model, choices: [], usage: usage(r) };
}
