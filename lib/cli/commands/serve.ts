/**
 * `peft-native serve`: an OpenAI-compatible HTTP server for a base model and a directory of LoRA
 * adapters (see lib/serve/server.ts). SIGTERM / SIGINT drain: requests in flight finish, new ones
 * get 503, then the process exits.
 */
import { PeftError } from '../../errors';
import { defineCommand, type CommandSpec } from '../command';
import type { ConfigOf } from '../config';
import { MODEL_FIELD, TOKENIZER_FIELD } from '../fields';

export const SERVE_SCHEMA = {
  model: MODEL_FIELD,
  tokenizer: TOKENIZER_FIELD,
  adapters: { type: 'string', description: 'a directory of LoRA adapters (<dir>/<name>/adapter_config.json), served as models by name', placeholder: 'dir' },
  adapter: { type: 'string[]', description: 'more adapters as name=path pairs (a directory or hf:owner/name)', placeholder: 'name=dir,...' },
  host: { type: 'string', description: 'the address to listen on', default: '127.0.0.1' },
  port: { type: 'integer', description: 'the port to listen on (0: any free port)', default: 8000, min: 0, max: 65535 },
  model_name: { type: 'string', description: "the base model's id in /v1/models (default: its directory's name)" },
  api_key: { type: 'string', description: 'require Authorization: Bearer <key> (default: $PEFT_API_KEY, else none)' },
  max_batch: { type: 'integer', description: 'requests decoded together at most', default: 32, min: 1 },
  max_queue: { type: 'integer', description: 'requests waiting at most; more get 429', default: 256, min: 0 },
  step_tokens: { type: 'integer', description: 'tokens one forward pass feeds at most (prompt chunks and decoding rows)', default: 512, min: 1 },
  adapter_budget_mb: { type: 'number', description: 'memory for loaded adapters, least recently used evicted first', default: 1024, min: 0, exclusiveMin: true },
} as const;

/** The resolved configuration of `peft-native serve`. */
export type ServeConfig = ConfigOf<typeof SERVE_SCHEMA>;

/** name=path pairs → [name, path]. */
function adapterPairs(pairs: readonly string[] | undefined): [string, string][] {
  return (pairs ?? []).map((pair) => {
    const at = pair.indexOf('=');
    if (at <= 0 || at === pair.length - 1) throw new PeftError(`Expected --adapter as name=path but received ${JSON.stringify(pair)}`, 'E_CONFIG');
    return [pair.slice(0, at), pair.slice(at + 1)];
  });
}

export async function runServe(config: ServeConfig): Promise<void> {
  const { loadModel } = await import('../../models/model');
  const { createServer } = await import('../../serve/server');
  const pairs = adapterPairs(config.adapter);
  const model = await loadModel(config.model, { tokenizer: config.tokenizer });
  const server = createServer(model, {
    adapters: { dir: config.adapters, budgetBytes: config.adapter_budget_mb * 2 ** 20, warn: (m) => process.stderr.write(`warning: ${m}\n`) },
    modelName: config.model_name,
    apiKey: config.api_key ?? (process.env.PEFT_API_KEY || undefined),
    maxBatch: config.max_batch,
    maxQueue: config.max_queue,
    stepTokens: config.step_tokens,
  });
  for (const [name, source] of pairs) await server.engine.adapters.fetch(name, source);
  const { url } = await server.listen(config.port, config.host);
  const names = server.engine.adapters.availableNames();
  process.stderr.write(`peft-native serve: ${server.modelName}${names.length ? ` + ${names.length} adapter(s): ${names.join(', ')}` : ''}\n`);
  process.stdout.write(`listening on ${url}\n`);
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      process.stderr.write(`${signal}: draining ${server.engine.stats().running + server.engine.stats().waiting} request(s)\n`);
      void server.close().then(() => {
        model.dispose();
        resolve();
      });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}

export const serveCommand: CommandSpec<typeof SERVE_SCHEMA> = defineCommand({
  name: 'serve',
  summary: 'serve a model and its LoRA adapters over an OpenAI-compatible HTTP API',
  description:
    'Serves /v1/completions, /v1/chat/completions (streaming with server-sent events), /v1/models, /health, /metrics and ' +
    '/admin/adapters/{load,reload,unload}. A request\'s "model" picks the base model or an adapter; requests on different adapters ' +
    'are decoded together in one batch.',
  schema: SERVE_SCHEMA,
  examples: [
    'peft-native serve --model ./stories260K-hf --adapters ./adapters --port 8000',
    'peft-native serve -m model.gguf --adapter poet=./out/poet --api-key sk-local',
  ],
  run: runServe,
});
