/**
 * The HTTP plumbing of the server: reading a bounded JSON body, JSON responses, OpenAI-style error
 * bodies, and server-sent events.
 * @internal
 * @module
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

import { PeftError } from '../errors';

/** An error with the HTTP status and OpenAI error fields to answer with. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string,
    readonly code: string | null = null,
    readonly param: string | null = null,
  ) {
    super(message);
  }
}

/** The status and OpenAI error type of a PeftError raised while handling a request. */
export function httpErrorOf(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  if (err instanceof PeftError) {
    const param = (err as PeftError & { param?: string }).param ?? null;
    switch (err.code) {
      case 'E_BUSY':
        return new HttpError(429, err.message, 'rate_limit_error', 'queue_full', param);
      case 'E_DISPOSED':
        return new HttpError(503, err.message, 'server_error', 'shutting_down', param);
      case 'E_ARGUMENT':
      case 'E_RANGE':
      case 'E_SHAPE':
      case 'E_NONFINITE':
        return new HttpError(400, err.message, 'invalid_request_error', err.code, param);
      case 'E_CONFIG':
      case 'E_UNSUPPORTED':
      case 'E_FORMAT':
      case 'E_DTYPE':
      case 'E_IO':
        // An adapter that is unknown, damaged or unfit for the base model.
        return new HttpError(/Unknown adapter/.test(err.message) ? 404 : 422, err.message, 'invalid_request_error', /Unknown adapter/.test(err.message) ? 'model_not_found' : err.code, param);
      default:
        return new HttpError(500, err.message, 'server_error', err.code, param);
    }
  }
  return new HttpError(500, err instanceof Error ? err.message : String(err), 'server_error');
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

export function sendError(res: ServerResponse, err: unknown): void {
  const e = httpErrorOf(err);
  if (res.headersSent) {
    // Mid-stream: the status is gone; tell the client in the stream and end it.
    if (!res.writableEnded) {
      res.write(`data: ${JSON.stringify({ error: { message: e.message, type: e.type, param: e.param, code: e.code } })}\n\n`);
      res.end();
    }
    return;
  }
  sendJson(res, e.status, { error: { message: e.message, type: e.type, param: e.param, code: e.code } });
}

/** The request's JSON body (an object), at most `limit` bytes. */
export async function readJsonBody(req: IncomingMessage, limit: number): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new HttpError(413, `The request body is larger than ${limit} bytes`, 'invalid_request_error', 'body_too_large');
    chunks.push(chunk as Buffer);
  }
  let body: unknown;
  try {
    body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (err) {
    throw new HttpError(400, `The request body is not valid JSON: ${(err as Error).message}`, 'invalid_request_error', 'invalid_json');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new HttpError(400, 'Expected a JSON object as the request body', 'invalid_request_error', 'invalid_json');
  }
  return body as Record<string, unknown>;
}

/** Starts a server-sent event stream. */
export function startEvents(res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
  res.flushHeaders();
}

export function sendEvent(res: ServerResponse, data: unknown): void {
  if (!res.writableEnded) res.write(`data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`);
}
