/**
 * A model with PEFT adapters: one or several named adapters on a frozen base, one active at a
 * time (or one per batch row), with training, generation, merging and saving in Hugging Face
 * PEFT's format. Create one with {@link getPeftModel} or {@link loadAdapter}.
 */
import * as path from 'node:path';

import { PeftError, withCallSite } from '../errors';
import type { GenerateOptions, LossOptions, LossResult, Model, TokenIds } from '../models/model';
import { handleOf, tensor, Tensor } from '../tensor';
import { attachAdapter, type AdapterState, type AdapterTensors } from './attach';
import { checkInsideOutput } from '../io/output-path';
import { readAdapter, writeAdapter } from './adapter-io';
import { combineLoraAdapters, type WeightedAdapterOptions } from './combine';
import { normalizeConfig, type PeftConfig } from './config';
import { BASE_ROWS, checkAdapterName, DEFAULT_ADAPTER, isAdapterParameter } from './names';

/** Options of {@link getPeftModel} and {@link PeftModel.addAdapter}. */
export interface AdapterOptions {
  /** Seed of the adapter's random initialisation (default 0). */
  seed?: number;
  /** Receives warnings (unknown config keys, merges that round); default process.emitWarning. */
  warn?: (message: string) => void;
}

/** Options of {@link PeftModel.merge}. */
export interface MergeOptions {
  /**
   * For adapters on 4-bit layers: requantize the merged weights (default, as PEFT), or keep them
   * dense in the compute dtype (false; more exact, and unmerging restores the 4-bit weights).
   */
  requantize?: boolean;
  /** Receives the rounding warning of a requantizing merge; default process.emitWarning. */
  warn?: (message: string) => void;
}

const emitWarning = (message: string): void => process.emitWarning(message);

/** Options of {@link PeftModel.forward} and {@link PeftModel.loss}. */
export interface AdapterRowOptions {
  /** A mixed batch: the adapter for each batch row, or '__base__' for none. */
  adapterNames?: string[];
}

const disposeSymbol: symbol = (Symbol as { dispose?: symbol }).dispose ?? Symbol.for('nodejs.dispose');

export class PeftModel {
  /** The base model, whose parameters the adapters' layers share. */
  readonly base: Model;
  /** Set by mergeAndUnload: the base is the caller's plain model again, and dispose() leaves it alone. */
  private unloaded = false;
  private readonly adapters = new Map<string, AdapterState>();
  private active: string;
  private disabled = false;
  private training = true;
  private readonly merged: string[] = [];
  /** Adapter → whether merging it requantizes 4-bit layers (the last choice, reused by re-merges). */
  private readonly mergeRequantize = new Map<string, boolean>();
  private dropoutStep = 0;
  /** Base parameter name → the base's own value, while copies are swapped in. */
  private readonly originals = new Map<string, Tensor>();
  private encoderGrads?: Map<string, Tensor>;

  /** @internal Use {@link getPeftModel} or {@link loadAdapter}. */
  constructor(base: Model, name: string, config: PeftConfig, options: AdapterOptions = {}, loaded?: { tensors: AdapterTensors; trainable: boolean }) {
    this.base = base;
    this.active = name;
    if (loaded) this.attachLoaded(name, config, loaded.tensors, loaded.trainable);
    else this.addAdapter(name, config, options);
  }

  /** The active adapter's name. */
  get activeAdapter(): string {
    return this.active;
  }

  /** Every adapter's config, by name. */
  get peftConfig(): Record<string, PeftConfig> {
    return Object.fromEntries([...this.adapters].map(([n, s]) => [n, s.config]));
  }

  /** Adapter names, in the order they were added. */
  adapterNames(): string[] {
    return [...this.adapters.keys()];
  }

  /** Adds another adapter (of the same PEFT type); it does not become active. */
  addAdapter(name: string, config: PeftConfig | Record<string, unknown>, options: AdapterOptions = {}): void {
    this.idle('addAdapter()');
    checkAdapterName(name);
    if (this.adapters.has(name)) throw new PeftError(`The model already has an adapter named ${name}`, 'E_CONFIG');
    const normalized = normalizeConfig(config, options.warn);
    const first = this.adapters.values().next().value as AdapterState | undefined;
    if (first && first.config.peft_type !== normalized.peft_type) {
      throw new PeftError(`Expected a ${first.config.peft_type} config for adapter ${name} (a model holds adapters of one PEFT type) but received ${normalized.peft_type}`, 'E_CONFIG');
    }
    if (['PROMPT_TUNING', 'PREFIX_TUNING', 'P_TUNING'].includes(normalized.peft_type) && this.adapters.size) {
      throw new PeftError('Prompt tuning holds one adapter per model', 'E_CONFIG');
    }
    this.restoreOriginals();
    try {
      this.adapters.set(name, this.attach(name, normalized, options.seed ?? 0));
    } finally {
      this.applyState();
    }
  }

  /** @internal Adds an adapter from tensors read from disk. */
  attachLoaded(name: string, config: PeftConfig, tensors: AdapterTensors, trainable: boolean): void {
    this.idle('loadAdapter()');
    checkAdapterName(name);
    if (this.adapters.has(name)) throw new PeftError(`The model already has an adapter named ${name}`, 'E_CONFIG');
    this.restoreOriginals();
    try {
      const state = this.attach(name, config, 0, tensors);
      state.trainable = trainable;
      this.adapters.set(name, state);
    } finally {
      this.applyState();
    }
  }

  /** Makes `name` the active adapter: the one forward passes apply and training updates. */
  setAdapter(name: string): void {
    this.idle('setAdapter()');
    this.state(name);
    if (this.merged.length) throw new PeftError(`Unmerge adapters (${this.merged.join(', ')}) before switching the active adapter`, 'E_CONFIG');
    this.active = name;
    this.applyState();
  }

  /** Removes an adapter and its weights. The active adapter cannot be deleted while others exist unless another is set first. */
  deleteAdapter(name: string): void {
    this.idle('deleteAdapter()');
    const s = this.state(name);
    if (this.merged.includes(name)) throw new PeftError(`Unmerge adapter ${name} before deleting it`, 'E_CONFIG');
    this.restoreOriginals();
    // LayerNorm tuning and BitFit hold only copies of base parameters: nothing native to delete.
    if (s.paramNames.size > 0) this.base.nativeModel.deleteAdapter(name);
    this.adapters.delete(name);
    if (this.active === name) this.active = this.adapters.keys().next().value ?? DEFAULT_ADAPTER;
    this.applyState();
  }

  /** Runs `fn` with every adapter switched off (the base model alone), then switches them back on. */
  withAdaptersDisabled<T>(fn: () => Promise<T> | T): Promise<T> {
    return this.base.lock.run('withAdaptersDisabled()', () => this.adaptersDisabled(fn));
  }

  private async adaptersDisabled<T>(fn: () => Promise<T> | T): Promise<T> {
    if (this.disabled) return fn();
    const remerge = [...this.merged];
    if (remerge.length) this.unmerge();
    this.disabled = true;
    this.applyState();
    try {
      return await fn();
    } finally {
      this.disabled = false;
      this.applyState();
      if (remerge.length) this.merge(remerge);
    }
  }

  /** Training mode (dropout on; the active adapter's weights train) or evaluation mode. */
  train(on = true): this {
    this.idle(on ? 'train()' : 'eval()');
    this.training = on;
    this.applyState();
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Logits [batch, seq, vocab] with the active adapter (or one adapter per row). */
  forward(ids: TokenIds, options: { attentionMask?: Tensor } & AdapterRowOptions = {}): Promise<Tensor> {
    return withCallSite(() => this.base.lock.run('forward()', async () => {
      this.select(options.adapterNames, false);
      const s = this.activeEncoder();
      if (s) this.refreshEncoderOutput(s);
      return this.base.forward(ids, options);
    }));
  }

  /**
   * The language-model loss and the gradients of the trainable parameters (by native name). In
   * training mode LoRA dropout applies; after {@link PeftModel.eval} it does not (and nothing trains,
   * so no gradients come back): the loss is that of the adapter's weights as they are.
   */
  loss(ids: TokenIds, labels?: TokenIds, options: LossOptions & AdapterRowOptions = {}): Promise<LossResult> {
    return withCallSite(() => this.base.lock.run('loss()', async () => {
      this.select(options.adapterNames, this.training);
      const s = this.activeEncoder();
      if (!s) return this.base.loss(ids, labels, options);
      // The prompt encoder's output goes in as the virtual tokens; their gradient goes back through it.
      this.refreshEncoderOutput(s);
      const result = await this.base.loss(ids, labels, options);
      const out = result.grads[s.encoderOutput!];
      const grads: Record<string, Tensor> = {};
      for (const [k, v] of Object.entries(result.grads)) if (k !== s.encoderOutput) grads[k] = v;
      if (out) {
        const encoderGrads = s.encoder!.backward(out.toFloat32Array());
        if (options.accumulate && this.encoderGrads) {
          for (const [k, g] of encoderGrads) {
            const prev = this.encoderGrads.get(k)!.toFloat32Array();
            encoderGrads.set(k, tensor(g.toFloat32Array().map((v, i) => v + prev[i]), g.shape));
          }
        }
        this.encoderGrads = encoderGrads;
        for (const [k, g] of encoderGrads) grads[k] = g;
      }
      return { loss: result.loss, grads };
    }));
  }

  /** Generation with the active adapter (see {@link Model.generate}). */
  generate(prompt: string | number[], options: GenerateOptions = {}): Promise<{ text: string; tokens: number[] }> {
    return this.base.lock.run('generate()', async () => {
      this.prepareGeneration();
      return this.base.generate(prompt, options);
    });
  }

  /** Streaming generation with the active adapter (see {@link Model.stream}: the model is busy until the iteration ends). */
  stream(prompt: string | number[], options: GenerateOptions = {}): AsyncIterableIterator<string> {
    return this.base.lock.iterate('stream()', () => {
      this.prepareGeneration();
      return this.base.streamHeld(prompt, options);
    });
  }

  private prepareGeneration(): void {
    this.select(undefined, false);
    const s = this.activeEncoder();
    if (s) this.refreshEncoderOutput(s);
  }

  /** The parameters that train, by name (adapter weights by PEFT's module names). Shared with the model. */
  trainableParameters(): Record<string, Tensor> {
    const out: Record<string, Tensor> = {};
    const s = this.activeEncoder();
    for (const p of this.base.nativeModel.parameters()) if (p.trainable && p.name !== s?.encoderOutput) out[p.name] = new Tensor(p.tensor);
    if (s && s.trainable && this.training) for (const p of s.encoder!.params) out[p.name] = p.tensor;
    return out;
  }

  /** Counts as PEFT does: trainable parameters, and all parameters (base, every adapter, trained copies). */
  getNbTrainableParameters(): { trainable: number; all: number } {
    let trainable = 0, all = 0;
    const encoded = this.activeEncoder()?.encoderOutput;
    for (const p of this.base.nativeModel.parameters()) {
      const size = p.numel ?? new Tensor(p.tensor).size;  // a 4-bit weight counts its own elements, as PEFT does
      if (p.name === encoded) continue;  // an encoder's output; its weights count instead
      if (p.trainable) trainable += size;
      all += size;
    }
    for (const s of this.adapters.values()) {
      for (const p of s.encoder?.params ?? []) {
        all += p.tensor.size;
        if (s.name === this.active && !this.disabled && s.trainable && this.training) trainable += p.tensor.size;
      }
    }
    // Trained copies add to the count like PEFT's modules_to_save copies (one per adapter beyond the live one).
    for (const s of this.adapters.values()) {
      for (const [name, t] of s.copies) {
        if (!(s.name === this.active && !this.disabled && this.originals.has(name))) all += t.size;
      }
    }
    return { trainable, all };
  }

  /** Prints "trainable params: N || all params: M || trainable%: P" as PEFT does. */
  printTrainableParameters(log: (line: string) => void = console.log): void {
    const { trainable, all } = this.getNbTrainableParameters();
    const fmt = (n: number) => n.toLocaleString('en-US');
    log(`trainable params: ${fmt(trainable)} || all params: ${fmt(all)} || trainable%: ${((100 * trainable) / all).toFixed(4)}`);
  }

  /**
   * Folds adapters (default: the active one) into the base weights; forward passes then skip them.
   * On a 4-bit base the weights are dequantized, summed and, by default, requantized as PEFT does
   * (with a warning: rounding changes the outputs slightly); `requantize: false` keeps the merged
   * weights dense in the compute dtype instead, and unmerging then restores the 4-bit ones exactly.
   */
  merge(adapterNames: string[] = [this.active], options: MergeOptions = {}): void {
    this.idle('merge()');
    for (const name of adapterNames) {
      const s = this.state(name);
      if (this.merged.includes(name)) throw new PeftError(`Adapter ${name} is already merged`, 'E_CONFIG');
      if (s.config.peft_type !== 'LORA' && s.config.peft_type !== 'IA3') {
        throw new PeftError(`Expected a LoRA or IA3 adapter to merge but ${name} is ${s.config.peft_type}`, 'E_UNSUPPORTED');
      }
      if (this.base.config.tieWordEmbeddings && s.modules.includes('lm_head')) {
        throw new PeftError(`Cannot merge adapter ${name}: it adapts lm_head, whose weight is the embedding table, so merging would change the embeddings too`, 'E_UNSUPPORTED');
      }
      const requantize = options.requantize ?? this.mergeRequantize.get(name) ?? true;
      const quantized = this.quantizedModules(s.modules);
      if (quantized.length && requantize) {
        (options.warn ?? emitWarning)(`Merging adapter ${name} into ${quantized.length} 4-bit layer(s) (${quantized[0]}, ...) and requantizing them: the outputs may differ slightly from the unmerged model's because of rounding.`);
      }
      this.base.nativeModel.mergeAdapter(name, { requantize });
      this.mergeRequantize.set(name, requantize);
      this.merged.push(name);
    }
  }

  /**
   * Takes merged adapters back out of the base weights (to float rounding), last merged first.
   * Layers that were requantized at merge are dequantized, unmerged and requantized (with a warning).
   */
  unmerge(options: { warn?: (message: string) => void } = {}): void {
    this.idle('unmerge()');
    while (this.merged.length) {
      const name = this.merged.pop()!;
      const quantized = this.mergeRequantize.get(name) ? this.quantizedModules(this.state(name).modules) : [];
      if (quantized.length) (options.warn ?? emitWarning)(`Unmerging adapter ${name} from ${quantized.length} 4-bit layer(s) (${quantized[0]}, ...) requantizes them: the weights may differ slightly from the original ones because of rounding.`);
      this.base.nativeModel.unmergeAdapter(name);
    }
  }

  /** The modules among `modules` whose base weight is 4-bit now. */
  private quantizedModules(modules: string[]): string[] {
    const q = new Set(this.base.nativeModel.linearModules().filter((m) => m.quantized).map((m) => m.name));
    return modules.filter((m) => q.has(m));
  }

  /** Names of the adapters merged into the base weights. */
  mergedAdapters(): string[] {
    return [...this.merged];
  }

  /**
   * Merges the active adapter into the base model (its trained copies replace the base parameters),
   * removes every adapter, and returns the base model, now a plain model again.
   */
  mergeAndUnload(): Model {
    this.idle('mergeAndUnload()');
    const s = this.state(this.active);
    if (!this.merged.includes(this.active) && s.modules.length) this.merge([this.active]);
    if (['PROMPT_TUNING', 'PREFIX_TUNING', 'P_TUNING', 'BOTTLENECK'].includes(s.config.peft_type)) {
      throw new PeftError(`${s.config.peft_type} adapters cannot be merged into the weights`, 'E_UNSUPPORTED');
    }
    const keep = new Map(s.copies);
    this.restoreOriginals();
    const merged = [...this.merged];
    this.merged.length = 0;
    for (const name of [...this.adapters.keys()]) {
      // A merged adapter's effect stays in the weights: forget it without unmerging.
      this.base.nativeModel.deleteAdapter(name, merged.includes(name));
      this.adapters.delete(name);
    }
    for (const [param, value] of keep) this.base.replaceParameter(param, value);
    const frozen4bit = new Set(this.base.quantizedWeightNames());
    for (const name of this.base.parameterNames()) if (!frozen4bit.has(name) && this.base.parameter(name).dtype === 'f32') this.base.nativeModel.setTrainable(name, true);
    this.base.nativeModel.setSelection({ enabled: true, active: [], perRow: null, seed: 0 });
    this.unloaded = true;
    return this.base;
  }

  /**
   * Frees the native memory of every adapter and of the base model (which the adapters are woven
   * into) now, instead of when the garbage collector gets to them. After {@link PeftModel.mergeAndUnload}
   * the base model is the caller's again and is left alone. Later calls throw `E_DISPOSED`; `E_BUSY`
   * while an asynchronous call runs. Safe to call twice.
   */
  dispose(): void {
    this.idle('dispose()');
    if (!this.unloaded) this.base.dispose();  // first: refuses (E_BUSY) before anything is freed
    for (const s of this.adapters.values()) {
      for (const t of [...s.copies.values(), ...(s.encoder?.params.map((p) => p.tensor) ?? [])]) t.dispose();
    }
    for (const t of [...this.originals.values(), ...(this.encoderGrads?.values() ?? [])]) t.dispose();
    this.adapters.clear();
    this.originals.clear();
    this.encoderGrads = undefined;
  }

  [disposeSymbol](): void {
    this.dispose();
  }

  /**
   * Saves adapters (default: all) as Hugging Face PEFT does: adapter_config.json and
   * adapter_model.safetensors in `dir` for 'default', in `dir/<name>` for the others.
   */
  async saveAdapter(dir: string, options: { adapterNames?: string[] } = {}): Promise<void> {
    return withCallSite(() => this.base.lock.run('saveAdapter()', async () => {
      for (const name of options.adapterNames ?? this.adapterNames()) {
        const s = this.state(name);
        checkAdapterName(name);
        if (name === this.active && !this.disabled) this.syncCopies(s);
        if (s.encoder) this.refreshEncoderOutput(s);
        const target = name === DEFAULT_ADAPTER ? dir : path.join(dir, name);
        checkInsideOutput(dir, target);  // dir/<name> must not be a link out of dir
        await writeAdapter(this.base, s, target);
      }
    }));
  }

  /** Loads an adapter directory as another adapter of this model. */
  loadAdapter(dir: string, name: string, options: { isTrainable?: boolean; warn?: (m: string) => void } = {}): void {
    const { config, tensors } = readAdapter(dir, options.warn);
    this.attachLoaded(name, config, tensors, options.isTrainable ?? false);
  }

  // --- internals ---

  /**
   * attachAdapter, all or nothing: an adapter refused halfway (a bad tensor in layer 3 of a file)
   * leaves no part of itself on the layers it had reached, so the model is as it was and the name free.
   */
  private attach(name: string, config: PeftConfig, seed: number, tensors?: AdapterTensors): AdapterState {
    const native = this.base.nativeModel;
    const holds = () => native.parameters().some((p) => isAdapterParameter(p.name, name));
    // Another PeftModel of this base may hold the name: refused here, so the cleanup below never removes its weights.
    if (holds()) throw new PeftError(`The model already has an adapter named ${name} (held by another PeftModel of this base model)`, 'E_CONFIG');
    try {
      return attachAdapter(this.base, name, config, seed, tensors);
    } catch (err) {
      if (holds()) native.deleteAdapter(name);
      throw err;
    }
  }

  /** E_BUSY naming `what` while another flow's call runs on this model (see models/model-lock.ts). */
  private idle(what: string): void {
    this.base.lock.check(what);
  }

  private state(name: string): AdapterState {
    const s = this.adapters.get(name);
    if (!s) throw new PeftError(`Expected the name of an adapter of this model (${this.adapterNames().join(', ')}) but received "${name}"`, 'E_ARGUMENT');
    return s;
  }

  /** @internal Replaces a trainable parameter's storage (for tests: finite differences). */
  setParameterValue(name: string, value: Tensor): void {
    this.idle('setParameterValue()');
    const p = this.activeEncoder()?.encoder?.params.find((e) => e.name === name);
    if (p) p.tensor = value;
    else this.base.nativeModel.setParameterValue(name, handleOf(value, name));
  }

  /** The active adapter when it trains through a prompt encoder. */
  private activeEncoder(): AdapterState | undefined {
    const s = this.disabled ? undefined : this.adapters.get(this.active);
    return s?.encoder ? s : undefined;
  }

  /** Runs the prompt encoder and makes its output the native virtual tokens (or keys and values). */
  private refreshEncoderOutput(s: AdapterState): void {
    const out = s.encoder!.forward();
    const tokens = (s.config as { num_virtual_tokens: number }).num_virtual_tokens;
    const value = tensor(out, [tokens, out.length / tokens]);
    this.base.nativeModel.setParameterValue(s.encoderOutput!, handleOf(value, s.encoderOutput!));
  }

  /** The active adapter's copies are the live base parameters: take their current storage. */
  private syncCopies(s: AdapterState): void {
    for (const name of s.copies.keys()) s.copies.set(name, this.base.parameterLive(name));
  }

  /** Chooses the adapters of the next forward and the dropout stream of a training step. */
  private select(adapterNames: string[] | undefined, training: boolean): void {
    let perRow: string[] | null = null;
    if (adapterNames) {
      if (this.merged.length) throw new PeftError('Unmerge adapters before running a mixed-adapter batch', 'E_CONFIG');
      adapterNames.forEach((n, i) => {
        if (n !== BASE_ROWS && !this.adapters.has(n)) {
          throw new PeftError(`Expected an adapter name or "${BASE_ROWS}" for adapterNames[${i}] but received "${n}"`, 'E_ARGUMENT');
        }
      });
      perRow = [...adapterNames];
    }
    this.base.nativeModel.setSelection({
      enabled: !this.disabled,
      active: [this.active],
      perRow,
      seed: training ? ++this.dropoutStep : 0,
      // Evaluation mode: loss() runs the training forward (for its gradients) without dropout.
      dropout: training,
    });
  }

  /** Puts the base parameters back where adapter copies were swapped in. */
  private restoreOriginals(): void {
    for (const [name, value] of this.originals) this.base.replaceParameter(name, value);
    this.originals.clear();
  }

  /** Swaps in the active adapter's copies and sets which parameters train. */
  private applyState(): void {
    this.restoreOriginals();
    const nativeModel = this.base.nativeModel;
    const active = this.disabled ? undefined : this.adapters.get(this.active);
    if (active) {
      for (const [name, copy] of active.copies) {
        this.originals.set(name, this.base.parameter(name));
        this.base.replaceParameter(name, copy);
      }
    }
    const trains = (name: string) => Boolean(active && active.trainable && this.training && (active.paramNames.has(name) || active.copies.has(name)));
    for (const p of nativeModel.parameters()) {
      if (p.trainable !== trains(p.name)) nativeModel.setTrainable(p.name, trains(p.name));
    }
    nativeModel.setSelection({ enabled: !this.disabled, active: [this.active], perRow: null, seed: 0, dropout: this.training });
  }

  /**
   * Adds a LoRA adapter combining existing ones, as Hugging Face PEFT's add_weighted_adapter
   * (combination types linear, cat, svd, ties, dare_linear, dare_ties, magnitude_prune and their
   * `_svd` variants; see the README). The new adapter has r = lora_alpha and does not train or
   * become active.
   * @example peft.addWeightedAdapter(['a', 'b'], [0.7, 0.3], 'ab', { combination_type: 'cat' });
   */
  addWeightedAdapter(adapters: string[], weights: number[], adapterName: string, options: WeightedAdapterOptions = {}): void {
    const { config, tensors } = combineLoraAdapters(this.base, this.peftConfig, adapters, weights, adapterName, options);
    this.attachLoaded(adapterName, config, tensors, false);
  }

  /** @internal The dropout stream's position (training forwards so far): trainer checkpoints save and restore it. */
  get dropoutCounter(): number {
    return this.dropoutStep;
  }

  set dropoutCounter(value: number) {
    this.idle('dropoutCounter');
    if (!Number.isSafeInteger(value) || value < 0) throw new PeftError(`Expected a non-negative integer for dropoutCounter but received ${value}`, 'E_ARGUMENT');
    this.dropoutStep = value;
  }
}

/** Wraps a model with a PEFT method: the base freezes and the adapter ('default') trains. */
export function getPeftModel(model: Model, config: PeftConfig | Record<string, unknown>, options: AdapterOptions & { adapterName?: string } = {}): PeftModel {
  return new PeftModel(model, options.adapterName ?? DEFAULT_ADAPTER, normalizeConfig(config, options.warn), options);
}

/** Loads an adapter directory written by this library or by Hugging Face PEFT onto a model. */
export async function loadAdapter(
  model: Model,
  dir: string,
  options: { adapterName?: string; isTrainable?: boolean; warn?: (m: string) => void } = {},
): Promise<PeftModel> {
  return withCallSite(async () => {
    const name = checkAdapterName(options.adapterName ?? DEFAULT_ADAPTER, 'options.adapterName');
    const { config, tensors } = readAdapter(dir, options.warn);
    return new PeftModel(model, name, config, {}, { tensors, trainable: options.isTrainable ?? false });
  });
}

