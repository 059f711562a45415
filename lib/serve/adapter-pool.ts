/**
 * The adapters a server has at hand: LoRA adapters in Hugging Face PEFT's format, loaded on demand
 * from a directory (`<dir>/<name>`) or an explicit path, checked against the base model, kept in an
 * LRU cache under a memory budget, and reloaded atomically: a request holds a lease on the version
 * it started with, which stays valid (and is not evicted) until the lease is released, while new
 * requests get the reloaded one. A corrupt or incompatible adapter is refused with a PeftError and
 * leaves the pool as it was.
 * @module
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { PeftError } from '../errors';
import { resolveAdapter, type ResolveOptions } from '../models/hub';
import type { Model } from '../models/model';
import { readAdapter } from '../peft/adapter-io';
import type { LoraConfig } from '../peft/config';
import { checkAdapterName } from '../peft/names';
import { patternValue } from '../peft/targets';
import { tensor, type Tensor } from '../tensor';
import { fail } from '../validate';

/** An owned copy of a tensor. */
function owned(t: Tensor): Tensor {
  return tensor(Float32Array.from(t.toFloat32Array()), [...t.shape]);
}

/** One linear layer's factors in a pooled adapter. */
export interface PooledLoraModule {
  /** lora_A [r, in] f32 */
  a: Tensor;
  /** lora_B [out, r] f32 */
  b: Tensor;
  /** lora_alpha / r (or / √r with rsLoRA), with rank and alpha patterns applied */
  scale: number;
}

/** A loaded adapter, as a lease hands it out. */
export interface PooledAdapter {
  readonly name: string;
  /** Its adapter_config.json, normalized. */
  readonly config: LoraConfig;
  /** By module name (model.layers.0.self_attn.q_proj, ...). */
  readonly modules: ReadonlyMap<string, PooledLoraModule>;
  /** Bytes of its tensors. */
  readonly bytes: number;
  /** 1 for the first load, then one more per reload. */
  readonly version: number;
}

/** A request's hold on one version of an adapter; release() it when the request ends. */
export interface AdapterLease {
  readonly adapter: PooledAdapter;
  release(): void;
}

/** Options of {@link AdapterPool}. */
export interface AdapterPoolOptions {
  /** Where adapters are found by name: `<dir>/<name>/adapter_config.json`. */
  dir?: string;
  /** The most bytes of adapter tensors kept loaded (leased adapters can exceed it). Default 1 GiB. */
  budgetBytes?: number;
  /** Receives warnings of adapter configs (unknown keys). Default: none. */
  warn?: (message: string) => void;
  /** Called when a version's tensors are freed (evicted, unloaded or replaced, and no longer leased). */
  onFree?: (adapter: PooledAdapter) => void;
}

/** What {@link AdapterPool.stats} reports. */
export interface AdapterPoolStats {
  loaded: number;
  bytes: number;
  budgetBytes: number;
  hits: number;
  misses: number;
  evictions: number;
  /** hits / (hits + misses), 0 before the first request */
  hitRate: number;
}

interface Entry {
  adapter: PooledAdapter;
  source: string;
  leases: number;
  /** A reload replaced it: free it when its last lease goes. */
  retired: boolean;
}


/** The LoRA adapters of one base model. */
export class AdapterPool {
  private readonly model: Model;
  private readonly dir: string | undefined;
  private readonly budget: number;
  private readonly warn: (message: string) => void;
  private readonly freeListeners = new Set<(adapter: PooledAdapter) => void>();
  /** Current versions by name, least recently used first (Map keeps insertion order). */
  private readonly entries = new Map<string, Entry>();
  /** Explicit sources registered with load(name, path). */
  private readonly sources = new Map<string, string>();
  private readonly linears: Map<string, { in: number; out: number }>;
  private counts = { hits: 0, misses: 0, evictions: 0 };

  constructor(model: Model, options: AdapterPoolOptions = {}) {
    if (options.dir !== undefined && (typeof options.dir !== 'string' || !options.dir)) fail('options.dir', 'a directory path', options.dir);
    const budget = options.budgetBytes ?? 2 ** 30;
    if (typeof budget !== 'number' || !(budget > 0)) fail('options.budgetBytes', 'a positive number of bytes', budget, 'E_RANGE');
    this.model = model;
    this.dir = options.dir;
    this.budget = budget;
    this.warn = options.warn ?? (() => undefined);
    if (options.onFree) this.freeListeners.add(options.onFree);
    this.linears = new Map(model.nativeModel.linearModules().map((l) => [l.name, { in: l.inFeatures, out: l.outFeatures }]));
  }

  /** Names of the adapters loaded now, least recently used first. */
  loadedNames(): string[] {
    return [...this.entries.keys()];
  }

  /** Names of the adapters in the pool's directory (those with an adapter_config.json). */
  availableNames(): string[] {
    if (!this.dir || !fs.existsSync(this.dir)) return [...this.sources.keys()];
    const inDir = fs.readdirSync(this.dir).filter((n) => fs.existsSync(path.join(this.dir!, n, 'adapter_config.json')));
    return [...new Set([...inDir, ...this.sources.keys()])].sort();
  }

  /**
   * The adapter `name`, loaded now if it is not (from `<dir>/<name>`, or the path given to load()),
   * with a lease that keeps this version alive until released. E_CONFIG for an unknown name, the
   * reader's errors for a damaged adapter, E_CONFIG / E_SHAPE / E_UNSUPPORTED for one that does not
   * fit the base model or cannot be served.
   */
  acquire(name: string): AdapterLease {
    checkAdapterName(name, 'adapter name');
    let entry = this.entries.get(name);
    if (entry) {
      this.counts.hits++;
      this.entries.delete(name); // most recently used goes last
      this.entries.set(name, entry);
    } else {
      this.counts.misses++;
      entry = this.insert(name, this.read(name, this.sourceOf(name), 1));
    }
    return this.lease(entry);
  }

  /**
   * Loads (or replaces) adapter `name` from `source` (default: `<dir>/<name>`). A replacement is
   * atomic: leases on the old version keep it until they are released; the next acquire() gets the
   * new one. A refused adapter leaves the old version in place.
   */
  load(name: string, source?: string): PooledAdapter {
    checkAdapterName(name, 'adapter name');
    if (source !== undefined && (typeof source !== 'string' || !source)) fail('source', 'an adapter directory path', source);
    const from = source ?? this.sourceOf(name);
    const old = this.entries.get(name);
    const adapter = this.read(name, from, (old?.adapter.version ?? 0) + 1);
    if (source !== undefined) this.sources.set(name, source);
    if (old) this.retire(name, old);
    return this.insert(name, adapter).adapter;
  }

  /**
   * load(), with `source` a directory or an `hf:owner/name[/subfolder]` reference resolved through
   * the model cache (downloaded when missing unless offline; see resolveAdapter).
   */
  async fetch(name: string, source: string, options: ResolveOptions = {}): Promise<PooledAdapter> {
    checkAdapterName(name, 'adapter name');
    return this.load(name, await resolveAdapter(source, options));
  }

  /** The same as load(name) with the source it was loaded from. E_CONFIG when it is not loaded. */
  reload(name: string): PooledAdapter {
    const entry = this.entries.get(name);
    if (!entry) throw new PeftError(`Adapter ${name} is not loaded, so it cannot be reloaded`, 'E_CONFIG');
    return this.load(name, entry.source);
  }

  /** Drops adapter `name` (freed once its leases are released); false when it was not loaded. */
  unload(name: string): boolean {
    const entry = this.entries.get(name);
    if (!entry) return false;
    this.retire(name, entry);
    return true;
  }

  stats(): AdapterPoolStats {
    const { hits, misses, evictions } = this.counts;
    return { loaded: this.entries.size, bytes: this.bytes(), budgetBytes: this.budget, hits, misses, evictions, hitRate: hits + misses ? hits / (hits + misses) : 0 };
  }

  /** Frees every adapter that no lease holds (leased ones go when released). */
  dispose(): void {
    for (const [name, entry] of [...this.entries]) this.retire(name, entry);
  }

  private free(a: PooledAdapter): void {
    for (const m of a.modules.values()) {
      m.a.dispose();
      m.b.dispose();
    }
    for (const listener of this.freeListeners) listener(a);
  }

  /** Calls `listener` with each version whose tensors are freed from now on (as options.onFree). */
  addFreeListener(listener: (adapter: PooledAdapter) => void): void {
    this.freeListeners.add(listener);
  }

  removeFreeListener(listener: (adapter: PooledAdapter) => void): void {
    this.freeListeners.delete(listener);
  }

  private bytes(): number {
    let total = 0;
    for (const e of this.entries.values()) total += e.adapter.bytes;
    return total;
  }

  private sourceOf(name: string): string {
    const explicit = this.sources.get(name);
    if (explicit) return explicit;
    if (this.dir && fs.existsSync(path.join(this.dir, name, 'adapter_config.json'))) return path.join(this.dir, name);
    throw new PeftError(`Unknown adapter ${JSON.stringify(name)}: expected one of ${this.availableNames().join(', ') || '(none)'}${this.dir ? ` in ${this.dir}` : ''}`, 'E_CONFIG');
  }

  private insert(name: string, adapter: PooledAdapter): Entry {
    const entry: Entry = { adapter, source: '', leases: 0, retired: false };
    entry.source = this.sources.get(name) ?? (this.dir ? path.join(this.dir, name) : '');
    this.entries.set(name, entry);
    this.evict(name);
    return entry;
  }

  /** Least recently used first, leased ones skipped, never `keep`, until within the budget. */
  private evict(keep: string): void {
    for (const [name, entry] of [...this.entries]) {
      if (this.bytes() <= this.budget) return;
      if (name === keep || entry.leases > 0) continue;
      this.entries.delete(name);
      this.free(entry.adapter);
      this.counts.evictions++;
    }
  }

  private retire(name: string, entry: Entry): void {
    if (this.entries.get(name) === entry) this.entries.delete(name);
    entry.retired = true;
    if (entry.leases === 0) this.free(entry.adapter);
  }

  private lease(entry: Entry): AdapterLease {
    entry.leases++;
    let released = false;
    return {
      adapter: entry.adapter,
      release: () => {
        if (released) return;
        released = true;
        entry.leases--;
        if (entry.leases === 0 && entry.retired) this.free(entry.adapter);
        else if (entry.leases === 0) this.evict('');
      },
    };
  }

  /** Reads and checks one adapter directory against the base model. */
  private read(name: string, dir: string, version: number): PooledAdapter {
    const { config, tensors } = readAdapter(dir, this.warn);
    const modules = new Map<string, PooledLoraModule>();
    const free = () => {
      for (const t of [...[...tensors.lora.values()].flatMap((w) => [w.a, w.b, ...(w.magnitude ? [w.magnitude] : [])]), ...tensors.ia3.values(), ...tensors.copies.values(), ...(tensors.prompt ? [tensors.prompt] : [])]) t.dispose();
    };
    try {
      if (config.peft_type !== 'LORA') throw new PeftError(`Adapter ${name} is ${config.peft_type}; the server batches LoRA adapters only`, 'E_UNSUPPORTED');
      const lora = config as LoraConfig;
      if (lora.use_dora) throw new PeftError(`Adapter ${name} is a DoRA adapter; the server batches plain LoRA adapters only (merge it with exportMerged to serve it)`, 'E_UNSUPPORTED');
      if (tensors.copies.size || tensors.ia3.size || tensors.bottleneck.size) {
        throw new PeftError(`Adapter ${name} trains more than LoRA factors (modules_to_save or biases), which a batch shared with other adapters cannot hold`, 'E_UNSUPPORTED');
      }
      if (!tensors.lora.size) throw new PeftError(`Adapter ${name} in ${dir} has no LoRA weights`, 'E_FORMAT');
      let bytes = 0;
      for (const [module, w] of tensors.lora) {
        const shape = this.linears.get(module);
        if (!shape) throw new PeftError(`Adapter ${name} adapts ${module}, which is not a linear layer of this base model`, 'E_CONFIG');
        const r = w.a.shape[0];
        if (w.a.dtype !== 'f32' || w.b.dtype !== 'f32') throw new PeftError(`Expected f32 LoRA factors for ${module} in adapter ${name} but received ${w.a.dtype} / ${w.b.dtype}`, 'E_DTYPE');
        if (w.a.shape.length !== 2 || w.a.shape[1] !== shape.in || w.b.shape.length !== 2 || w.b.shape[0] !== shape.out || w.b.shape[1] !== r) {
          throw new PeftError(
            `Expected lora_A [r, ${shape.in}] and lora_B [${shape.out}, r] for ${module} (this base model's layer) in adapter ${name} but received [${w.a.shape.join(', ')}] and [${w.b.shape.join(', ')}]`,
            'E_SHAPE',
          );
        }
        const rank = patternValue(module, lora.rank_pattern ?? {}, lora.r!);
        const alpha = patternValue(module, lora.alpha_pattern ?? {}, lora.lora_alpha!);
        if (rank !== r) throw new PeftError(`Adapter ${name}'s config gives ${module} rank ${rank} but its lora_A has ${r} rows`, 'E_CONFIG');
        // Copies, not views of the mapped file: a file rewritten in place under a mapping would fault.
        modules.set(module, { a: owned(w.a), b: owned(w.b), scale: lora.use_rslora ? alpha / Math.sqrt(r) : alpha / r });
        bytes += (w.a.size + w.b.size) * 4;
      }
      return Object.freeze({ name, config: lora, modules, bytes, version });
    } catch (err) {
      for (const m of modules.values()) (m.a.dispose(), m.b.dispose());
      throw err;
    } finally {
      free();
    }
  }
}
