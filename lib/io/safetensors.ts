/**
 * safetensors files: reading (memory-mapped; tensors kept in their stored dtype are views, not
 * copies), sharded checkpoints through `model.safetensors.index.json`, and atomic writing.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { PeftError, withCallSite } from '../errors';
import { native, type NativeSafetensors } from '../native';
import { handleOf, Tensor } from '../tensor';
import { expectObject, fail, preview } from '../validate';

/** One tensor's entry in a safetensors header. */
export interface SafetensorsTensorInfo {
  name: string;
  /** As stored: 'F32', 'BF16', 'F16', 'I32', 'U8', 'I64', ... */
  dtype: string;
  shape: number[];
  /** The file that holds it (for sharded checkpoints). */
  file: string;
}

/** Tensors by name from one safetensors file or a sharded checkpoint. */
export interface SafetensorsSource {
  /** `__metadata__` of the file (or the index's `metadata`, string values only). */
  readonly metadata: Record<string, string>;
  /** Tensor names in file order. */
  keys(): string[];
  has(name: string): boolean;
  info(name: string): SafetensorsTensorInfo;
  /** The tensor in its stored dtype: a view of the mapped file (writes stay private to this process). */
  tensor(name: string): Tensor;
}

function unknownTensor(name: string, where: string, available: string[]): never {
  const listed = available.slice(0, 8).join(', ') + (available.length > 8 ? `, … (${available.length} in all)` : '');
  throw new PeftError(`Expected a tensor name found in ${where} for name but received "${name}"; it has: ${listed}`, 'E_ARGUMENT');
}

/** A single mapped safetensors file. */
export class SafetensorsFile implements SafetensorsSource {
  readonly path: string;
  readonly metadata: Record<string, string>;
  private readonly handle: NativeSafetensors;
  private readonly infos: Map<string, SafetensorsTensorInfo>;

  /** @internal Use {@link readSafetensors}. */
  constructor(file: string) {
    if (typeof file !== 'string' || file === '') fail('path', 'a path to a .safetensors file', file);
    this.path = path.resolve(file);
    this.handle = new native.NativeSafetensors(this.path);
    this.metadata = this.handle.metadata();
    this.infos = new Map(
      this.handle.entries().map((e) => [e.name, { name: e.name, dtype: e.dtype, shape: e.shape, file: this.path }]),
    );
  }

  keys(): string[] {
    return [...this.infos.keys()];
  }

  has(name: string): boolean {
    return this.infos.has(name);
  }

  info(name: string): SafetensorsTensorInfo {
    return this.infos.get(name) ?? unknownTensor(name, this.path, this.keys());
  }

  tensor(name: string): Tensor {
    this.info(name);
    return new Tensor(this.handle.tensor(name));
  }
}

/** Opens one safetensors file. */
export function readSafetensors(file: string): SafetensorsFile {
  return new SafetensorsFile(file);
}

/** A checkpoint split over several files by `model.safetensors.index.json`. */
class ShardedSafetensors implements SafetensorsSource {
  readonly metadata: Record<string, string>;
  private readonly owner = new Map<string, SafetensorsFile>();
  private readonly order: string[];

  constructor(indexPath: string) {
    let index: { metadata?: Record<string, unknown>; weight_map?: Record<string, unknown> };
    try {
      index = JSON.parse(fs.readFileSync(indexPath, 'utf8'));
    } catch (err) {
      throw new PeftError(`Could not read ${indexPath}: ${(err as Error).message}`, err instanceof SyntaxError ? 'E_FORMAT' : 'E_IO');
    }
    if (typeof index !== 'object' || index === null || typeof index.weight_map !== 'object' || index.weight_map === null) {
      throw new PeftError(`${indexPath}: expected an object with a "weight_map" of tensor names to files`, 'E_FORMAT');
    }
    this.metadata = Object.fromEntries(
      Object.entries(index.metadata ?? {}).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]),
    );
    const dir = path.dirname(indexPath);
    const files = new Map<string, SafetensorsFile>();
    for (const [name, shard] of Object.entries(index.weight_map)) {
      if (typeof shard !== 'string' || shard.includes('/') || shard.includes('\\') || shard.startsWith('.')) {
        throw new PeftError(`${indexPath}: tensor "${name}" maps to ${preview(shard)}, not a file name in ${dir}`, 'E_FORMAT');
      }
      let file = files.get(shard);
      if (!file) {
        file = new SafetensorsFile(path.join(dir, shard));
        files.set(shard, file);
      }
      if (!file.has(name)) {
        throw new PeftError(`${indexPath}: tensor "${name}" is mapped to ${shard}, which does not contain it`, 'E_FORMAT');
      }
      this.owner.set(name, file);
    }
    this.order = [...this.owner.keys()];
  }

  keys(): string[] {
    return [...this.order];
  }

  has(name: string): boolean {
    return this.owner.has(name);
  }

  info(name: string): SafetensorsTensorInfo {
    const file = this.owner.get(name) ?? unknownTensor(name, 'this checkpoint', this.order);
    return file.info(name);
  }

  tensor(name: string): Tensor {
    const file = this.owner.get(name) ?? unknownTensor(name, 'this checkpoint', this.order);
    return file.tensor(name);
  }
}

/**
 * Opens the weights of a Hugging Face model: a `.safetensors` file, or a directory holding
 * `model.safetensors` or a sharded `model.safetensors.index.json`.
 */
export function readSafetensorsModel(location: string): SafetensorsSource {
  if (typeof location !== 'string' || location === '') fail('path', 'a model directory or .safetensors file', location);
  let stat: fs.Stats;
  try {
    stat = fs.statSync(location);
  } catch {
    throw new PeftError(`Could not find ${location}`, 'E_IO');
  }
  if (!stat.isDirectory()) return readSafetensors(location);
  const index = path.join(location, 'model.safetensors.index.json');
  if (fs.existsSync(index)) return new ShardedSafetensors(index);
  const single = path.join(location, 'model.safetensors');
  if (fs.existsSync(single)) return readSafetensors(single);
  throw new PeftError(`Expected model.safetensors or model.safetensors.index.json in ${location} but found neither`, 'E_IO');
}

function writeArgs(file: string, tensors: Record<string, Tensor>, metadata: Record<string, string> | undefined) {
  if (typeof file !== 'string' || file === '') fail('path', 'a file path', file);
  const entries = Object.entries(expectObject(tensors, 'tensors'));
  const meta = metadata === undefined ? {} : expectObject(metadata, 'metadata');
  for (const [k, v] of Object.entries(meta)) if (typeof v !== 'string') fail(`metadata.${k}`, 'a string', v);
  return [
    path.resolve(file),
    entries.map(([name]) => name),
    entries.map(([name, t]) => handleOf(t, `tensors["${name}"]`)),
    meta as Record<string, string>,
  ] as const;
}

/**
 * Writes tensors (in the object's key order) and string metadata as a safetensors file, atomically:
 * a temporary file is written, flushed and renamed, so a failure never leaves a partial file.
 */
export function writeSafetensors(file: string, tensors: Record<string, Tensor>, metadata?: Record<string, string>): Promise<void> {
  return withCallSite(async () => native.writeSafetensorsAsync(...writeArgs(file, tensors, metadata)));
}

/** {@link writeSafetensors}, blocking. */
export function writeSafetensorsSync(file: string, tensors: Record<string, Tensor>, metadata?: Record<string, string>): void {
  native.writeSafetensors(...writeArgs(file, tensors, metadata));
}
