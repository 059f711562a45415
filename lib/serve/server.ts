/**
 * An OpenAI-compatible HTTP server over the serving engine: /v1/completions and
 * /v1/chat/completions (streamed as server-sent events or whole), /v1/models (the base model and
 * its adapters; a request's `model` picks one), admin endpoints that load, unload and reload
 * adapters while serving, /health and Prometheus /metrics. An optional API key (Bearer); a full
 * queue answers 429, a draining server 503; a client that disconnects cancels its request.
 * `server.handler` mounts on any Node HTTP stack (http.createServer, Express, Fastify's raw server).
 * @module
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { randomUUID } from 'node:crypto';

import type { Model } from '../models/model';
import { Engine, type EngineOptions } from './engine';
import { HttpError, readJsonBody, sendError, sendEvent, sendJson, startEvents } from './http-io';
import { ServerMetrics } from './metrics';
import {
  chatBody,
  chatChunk,
  completionBody,
  completionChunk,
  OPENAI_FIELDS,
  OPENAI_NAMES_FOR_CHAT,
  parseChat,
  parseCompletion,
  usageChunk,
  type ParsedRequest,
} from './openai-api';
import type { CompletionResult } from './sequence';

/** Options of {@link createServer}. */
export interface ServerOptions extends EngineOptions {
  /** The base model's id in /v1/models and in requests' `model`. Default: its directory's name. */
  modelName?: string;
  /** Requests to /v1 and /admin must send `Authorization: Bearer <apiKey>`. Default: none. */
  apiKey?: string;
  /** The largest request body in bytes. Default 1 MiB. */
  bodyLimit?: number;
}

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

export class PeftServer {
  readonly engine: Engine;
  /** The request handler: `http.createServer(server.handler)`, `app.use(server.handler)`, ... */
  readonly handler: Handler;
  readonly modelName: string;
  private readonly metrics = new ServerMetrics();
  private readonly apiKey: string | undefined;
  private readonly bodyLimit: number;
  private readonly created = Math.floor(Date.now() / 1000);
  private http: http.Server | undefined;
  private draining = false;

  constructor(model: Model, options: ServerOptions = {}) {
    this.engine = new Engine(model, options);
    this.modelName = options.modelName ?? path.basename(model.nameOrPath ?? 'base');
    this.apiKey = options.apiKey;
    this.bodyLimit = options.bodyLimit ?? 1 << 20;
    this.handler = (req, res) => void this.handle(req, res);
  }

  /** Listens on host:port (default 127.0.0.1, a free port) and resolves with the address. */
  async listen(port = 0, host = '127.0.0.1'): Promise<{ port: number; host: string; url: string }> {
    const server = http.createServer(this.handler);
    this.http = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    const address = server.address() as AddressInfo;
    return { port: address.port, host, url: `http://${host.includes(':') ? `[${host}]` : host}:${address.port}` };
  }

  /** Drains: new requests get 503, requests in flight finish; then the listener and the engine close. */
  async close(): Promise<void> {
    this.draining = true;
    await this.engine.dispose();
    const server = this.http;
    if (server) {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections?.();
    }
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const route = `${req.method} ${url.pathname.replace(/\/+$/, '') || '/'}`;
    let endpoint = 'other';
    try {
      if (route === 'GET /health') {
        endpoint = '/health';
        const s = this.engine.stats();
        return sendJson(res, this.draining ? 503 : 200, { status: this.draining ? 'draining' : 'ok', running: s.running, waiting: s.waiting });
      }
      if (route === 'GET /metrics') {
        endpoint = '/metrics';
        const text = this.metrics.render(this.engine.stats(), this.engine.adapters.stats());
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
        return void res.end(text);
      }
      if (url.pathname.startsWith('/v1/') || url.pathname.startsWith('/admin/')) this.authorize(req);
      switch (route) {
        case 'GET /v1/models':
          endpoint = '/v1/models';
          return sendJson(res, 200, { object: 'list', data: [this.modelName, ...this.engine.adapters.availableNames()].map((id) => ({ id, object: 'model', created: this.created, owned_by: 'peft-native' })) });
        case 'POST /v1/completions':
          endpoint = '/v1/completions';
          return await this.complete(req, res, 'text');
        case 'POST /v1/chat/completions':
          endpoint = '/v1/chat/completions';
          return await this.complete(req, res, 'chat');
        case 'GET /admin/adapters':
          endpoint = '/admin/adapters';
          return sendJson(res, 200, { loaded: this.engine.adapters.loadedNames(), available: this.engine.adapters.availableNames(), stats: this.engine.adapters.stats() });
        case 'POST /admin/adapters/load': // { name, path? }: a directory or hf:owner/name
        case 'POST /admin/adapters/reload':
        case 'POST /admin/adapters/unload':
          endpoint = url.pathname;
          return await this.admin(req, res, url.pathname.split('/').pop()!);
        default:
          throw new HttpError(404, `There is no ${req.method} ${url.pathname}`, 'invalid_request_error', 'not_found');
      }
    } catch (err) {
      sendError(res, err);
    } finally {
      this.metrics.count(endpoint, res.statusCode);
    }
  }

  private authorize(req: http.IncomingMessage): void {
    if (this.apiKey === undefined) return;
    if (req.headers.authorization !== `Bearer ${this.apiKey}`) {
      throw new HttpError(401, 'Expected an Authorization: Bearer header with the server\'s API key', 'invalid_request_error', 'invalid_api_key');
    }
  }

  /** The adapter a request's `model` names: null for the base model. */
  private adapterOf(model: string | undefined): string | null {
    if (model === undefined || model === this.modelName) return null;
    if (!this.engine.adapters.availableNames().includes(model) && !this.engine.adapters.loadedNames().includes(model)) {
      throw new HttpError(404, `The model ${JSON.stringify(model)} does not exist: expected ${this.modelName} or one of its adapters (see /v1/models)`, 'invalid_request_error', 'model_not_found', 'model');
    }
    return model;
  }

  private async complete(req: http.IncomingMessage, res: http.ServerResponse, kind: 'text' | 'chat'): Promise<void> {
    if (this.draining) throw new HttpError(503, 'The server is shutting down', 'server_error', 'shutting_down');
    const body = await readJsonBody(req, this.bodyLimit);
    const parsed: ParsedRequest = kind === 'chat' ? parseChat(body, this.engine.model) : parseCompletion(body);
    const adapter = this.adapterOf(parsed.model);
    const model = parsed.model ?? this.modelName;
    const controller = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) controller.abort();
    });
    const stream = this.engine.stream({ ...parsed.request, adapter, signal: controller.signal }, kind === 'chat' ? OPENAI_NAMES_FOR_CHAT : OPENAI_FIELDS);
    const id = `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomUUID()}`;
    const created = Math.floor(Date.now() / 1000);
    let result: CompletionResult;
    if (parsed.stream) {
      startEvents(res);
      if (kind === 'chat') sendEvent(res, chatChunk(id, created, model, { role: 'assistant', content: '' }, null));
      for await (const piece of stream) {
        if (!piece.text) continue;
        sendEvent(res, kind === 'chat' ? chatChunk(id, created, model, { content: piece.text }, null) : completionChunk(id, created, model, piece.text, null));
      }
      result = await stream.result;
      sendEvent(res, kind === 'chat' ? chatChunk(id, created, model, {}, result.finishReason) : completionChunk(id, created, model, '', result.finishReason));
      if (parsed.includeUsage) sendEvent(res, usageChunk(id, created, model, kind === 'chat' ? 'chat.completion.chunk' : 'text_completion', result));
      sendEvent(res, '[DONE]');
      res.end();
    } else {
      for await (const piece of stream) void piece;
      result = await stream.result;
      sendJson(res, 200, kind === 'chat' ? chatBody(id, created, model, result) : completionBody(id, created, model, result));
    }
    if (result.finishReason !== 'cancelled') this.metrics.observe(result.timings.totalMs, result.timings.firstTokenMs);
  }

  private async admin(req: http.IncomingMessage, res: http.ServerResponse, action: string): Promise<void> {
    const body = await readJsonBody(req, this.bodyLimit);
    const name = body.name;
    if (typeof name !== 'string' || !name) throw new HttpError(400, 'Expected the adapter\'s name as "name"', 'invalid_request_error', 'invalid_value', 'name');
    const pool = this.engine.adapters;
    if (action === 'unload') return sendJson(res, 200, { name, unloaded: pool.unload(name) });
    if (body.path !== undefined && (typeof body.path !== 'string' || !body.path)) throw new HttpError(400, 'Expected an adapter directory as "path"', 'invalid_request_error', 'invalid_value', 'path');
    const source = body.path as string | undefined;
    const adapter = action === 'reload' ? pool.reload(name) : source?.startsWith('hf:') ? await pool.fetch(name, source) : pool.load(name, source);
    sendJson(res, 200, { name, version: adapter.version, bytes: adapter.bytes });
  }
}

/** An OpenAI-compatible server for `model` and the adapters of `options.adapters`. */
export function createServer(model: Model, options: ServerOptions = {}): PeftServer {
  return new PeftServer(model, options);
}
