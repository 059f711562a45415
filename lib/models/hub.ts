/**
 * Where models come from: a local path (always offline), or `hf:owner/name[/file][@revision]`
 * resolved through a cache directory and downloaded from the Hugging Face hub only for files that
 * are missing, checked against the sha256 the hub reports, and written atomically.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { SingleBar } from 'cli-progress';

import { PeftError } from '../errors';
import { fsyncDir, tempPath } from '../io/atomic';
import { fail, preview } from '../validate';

/** Options of {@link resolveModel}. */
export interface ResolveOptions {
  /** Cache directory. Default: PEFT_NATIVE_CACHE, else $XDG_CACHE_HOME/peft-native, else ~/.cache/peft-native. */
  cacheDir?: string;
  /** Hub address. Default: HF_ENDPOINT, else https://huggingface.co. */
  endpoint?: string;
  /** Never download (also HF_HUB_OFFLINE=1): a missing file is an error. */
  offline?: boolean;
  /** Show a progress bar on stderr. Default: when stderr is a terminal. */
  progress?: boolean;
  /** Sent as a bearer token (default HF_TOKEN), for gated or private repositories. */
  token?: string;
}

/** A parsed `hf:` model reference. */
export interface HubReference {
  repo: string;
  file?: string;
  revision: string;
}

const REPO_FILES = ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'];
const OPTIONAL_FILES = new Set(['generation_config.json', 'special_tokens_map.json', 'tokenizer_config.json']);

/** Parses `hf:owner/name[/path/to/file][@revision]`. */
export function parseHubReference(spec: string): HubReference {
  const m = /^hf:([A-Za-z0-9][\w.-]*\/[\w.-]+)((?:\/[\w.\-]+)*)(?:@([\w.\-/]+))?$/.exec(spec);
  if (!m) fail('model', 'a reference like hf:owner/name or hf:owner/name/file.gguf (optionally @revision)', spec);
  const file = m[2] ? m[2].slice(1) : undefined;
  if (file && file.split('/').some((part) => part === '..' || part === '.')) fail('model', 'a file path inside the repository', spec);
  return { repo: m[1], file, revision: m[3] ?? 'main' };
}

export function defaultCacheDir(): string {
  if (process.env.PEFT_NATIVE_CACHE) return process.env.PEFT_NATIVE_CACHE;
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'peft-native');
}

/** The cache folder of one repository revision: <cache>/<owner>--<name>/<revision>. */
function repoDir(cacheDir: string, ref: HubReference): string {
  return path.join(cacheDir, ref.repo.replace('/', '--'), ref.revision.replace(/\//g, '--'));
}

interface FetchContext {
  endpoint: string;
  offline: boolean;
  progress: boolean;
  token?: string;
}

/** Downloads one file of the repo into `target` unless it is already there. Returns false on 404 for optional files. */
async function ensureFile(ctx: FetchContext, ref: HubReference, file: string, target: string, optional: boolean): Promise<boolean> {
  if (fs.existsSync(target)) return true;
  const url = `${ctx.endpoint.replace(/\/$/, '')}/${ref.repo}/resolve/${encodeURIComponent(ref.revision)}/${file.split('/').map(encodeURIComponent).join('/')}`;
  if (ctx.offline) {
    if (optional) return false;
    throw new PeftError(`${file} of ${ref.repo} is not in the cache (${target}) and downloads are off (offline mode)`, 'E_IO');
  }
  let response: Response;
  try {
    response = await fetch(url, { headers: ctx.token ? { authorization: `Bearer ${ctx.token}` } : {}, redirect: 'follow' });
  } catch (err) {
    throw new PeftError(`Could not download ${url}: ${(err as Error).message}; use a local path to work offline`, 'E_IO');
  }
  if (response.status === 404 && optional) return false;
  if (!response.ok || !response.body) {
    throw new PeftError(`Could not download ${url}: HTTP ${response.status} ${response.statusText}`, 'E_IO');
  }
  // LFS files carry their sha256 as the (linked) ETag.
  const etag = (response.headers.get('x-linked-etag') ?? response.headers.get('etag') ?? '').replace(/^W\//, '').replace(/"/g, '');
  const expectedSha = /^[0-9a-f]{64}$/.test(etag) ? etag : undefined;
  const total = Number(response.headers.get('content-length') ?? 0);
  fs.mkdirSync(path.dirname(target), { recursive: true });
  // A fresh hidden name, created exclusively: two downloads of one file (two loadModel calls) never share it.
  const part = tempPath(target);
  // Plain synchronous writes to a descriptor: simple to reason about on every failure path.
  const fd = fs.openSync(part, 'wx', 0o644);
  const hash = createHash('sha256');
  const bar = ctx.progress ? new SingleBar({ format: `${file} [{bar}] {percentage}% {value}/{total} bytes`, stream: process.stderr }) : undefined;
  bar?.start(total || 1, 0);
  let received = 0;
  try {
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      hash.update(chunk);
      received += chunk.length;
      bar?.update(received);
      for (let written = 0; written < chunk.length; ) written += fs.writeSync(fd, chunk, written);
    }
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    const actual = hash.digest('hex');
    if (expectedSha && actual !== expectedSha) {
      throw new PeftError(`Downloaded ${url} has sha256 ${actual} but the hub reports ${expectedSha}; the file was discarded`, 'E_IO');
    }
    if (total && received !== total) {
      throw new PeftError(`Downloaded ${received} of ${total} bytes of ${url}; the file was discarded`, 'E_IO');
    }
    fs.renameSync(part, target);
    fsyncDir(path.dirname(target));
  } catch (err) {
    try {
      fs.closeSync(fd);
    } catch {
      // already closed
    }
    fs.rmSync(part, { force: true });
    if (err instanceof PeftError) throw err;
    throw new PeftError(`Could not download ${url}: ${(err as Error).message}`, 'E_IO');
  } finally {
    bar?.stop();
  }
  return true;
}

function fetchContext(options: ResolveOptions): FetchContext {
  return {
    endpoint: options.endpoint ?? process.env.HF_ENDPOINT ?? 'https://huggingface.co',
    offline: options.offline ?? process.env.HF_HUB_OFFLINE === '1',
    progress: options.progress ?? Boolean(process.stderr.isTTY),
    token: options.token ?? process.env.HF_TOKEN,
  };
}

/**
 * The local directory of a PEFT adapter: a local directory as it is, or for `hf:owner/name` (or
 * `hf:owner/name/subfolder`, as a repository holding several adapters) the cached copy of its
 * adapter_config.json and adapter_model.safetensors, downloading what is missing.
 */
export async function resolveAdapter(spec: string, options: ResolveOptions = {}): Promise<string> {
  if (typeof spec !== 'string' || spec === '') fail('adapter', 'a directory or hf:owner/name', spec);
  if (!spec.startsWith('hf:')) {
    if (!fs.existsSync(spec)) throw new PeftError(`Could not find the adapter at ${spec}`, 'E_IO');
    return path.resolve(spec);
  }
  const ref = parseHubReference(spec);
  const ctx = fetchContext(options);
  const dir = path.join(repoDir(options.cacheDir ?? defaultCacheDir(), ref), ...(ref.file ? ref.file.split('/') : []));
  for (const file of ['adapter_config.json', 'adapter_model.safetensors']) {
    await ensureFile(ctx, ref, ref.file ? `${ref.file}/${file}` : file, path.join(dir, file), false);
  }
  return dir;
}

/**
 * The local path of a model: a local file or directory as it is, or for `hf:` references the cached
 * copy (a GGUF file, or a directory with config.json, tokenizer files and safetensors weights,
 * sharded or not), downloading what is missing.
 */
export async function resolveModel(spec: string, options: ResolveOptions = {}): Promise<string> {
  if (typeof spec !== 'string' || spec === '') fail('model', 'a path or hf:owner/name', spec);
  if (!spec.startsWith('hf:')) {
    if (!fs.existsSync(spec)) throw new PeftError(`Could not find the model at ${spec}`, 'E_IO');
    return path.resolve(spec);
  }
  const ref = parseHubReference(spec);
  const ctx = fetchContext(options);
  const dir = repoDir(options.cacheDir ?? defaultCacheDir(), ref);
  if (ref.file) {
    const target = path.join(dir, ...ref.file.split('/'));
    await ensureFile(ctx, ref, ref.file, target, false);
    return target;
  }
  for (const file of REPO_FILES) await ensureFile(ctx, ref, file, path.join(dir, file), OPTIONAL_FILES.has(file));
  const index = 'model.safetensors.index.json';
  if (await ensureFile(ctx, ref, index, path.join(dir, index), true)) {
    let weightMap: Record<string, string>;
    try {
      weightMap = JSON.parse(fs.readFileSync(path.join(dir, index), 'utf8')).weight_map;
    } catch (err) {
      throw new PeftError(`${path.join(dir, index)} is not valid JSON: ${(err as Error).message}`, 'E_FORMAT');
    }
    for (const shard of new Set(Object.values(weightMap ?? {}))) {
      if (typeof shard !== 'string' || !/^[\w.\-]+$/.test(shard)) {
        throw new PeftError(`${index} of ${ref.repo} names a shard ${preview(shard)} that is not a plain file name`, 'E_FORMAT');
      }
      await ensureFile(ctx, ref, shard, path.join(dir, shard), false);
    }
  } else {
    await ensureFile(ctx, ref, 'model.safetensors', path.join(dir, 'model.safetensors'), false);
  }
  return dir;
}
