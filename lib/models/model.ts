/**
 * Loading and running models: a Hugging Face directory (config.json, safetensors, tokenizer files),
 * a GGUF file, or an `hf:` reference; forward passes to logits, the language-model loss with the
 * gradient of every parameter, and greedy or sampled generation.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { PeftError, withCallSite } from '../errors';
import { readGguf } from '../io/gguf';
import { readSafetensorsModel } from '../io/safetensors';
import { native, type NativeLlama } from '../native';
import { dtypeSize } from '../dtype';
import { checkpointComputeDtype, computeDtypeOf, quantSettings, type BitsAndBytesConfig, type ComputeDType } from '../quant/bnb-config';
import { nativeQuantWeight, quantizeBlockLinears, quantizedFromNative, readQuantizedWeights, type ModelQuantizedTensor } from '../quant/model-weights';
import { dequantizeGgml, GgmlTensor } from '../quant/ggml-tensor';
import { dequantize } from '../quant/quantize';
import { QuantizedTensor } from '../quant/quantized-tensor';
import { handleOf, tensor, Tensor } from '../tensor';
import { fail } from '../validate';
import { configFromGguf, configFromHf, ropeScalingFactors, type LlamaConfig } from './config';
import { assertFiniteTensors, quantizedScales } from './finite-weights';
import { tokenizerFromGguf } from './gguf-tokenizer';
import { llamaWeightsFromGguf } from './gguf-weights';
import { bertWeights, gpt2Weights } from './gpt2-weights';
import { resolveModel, type ResolveOptions } from './hub';
import { Sampler, type SamplingOptions } from './sampling';
import { loadTokenizer, type Tokenizer } from './tokenizer';
import { ModelLock } from './model-lock';

/** Token ids: one sequence, a batch of equal-length sequences, or an i32 Tensor [batch, seq]. */
export type TokenIds = number[] | number[][] | Tensor;

/** Result of {@link Model.loss}. */
export interface LossResult {
  /** Mean next-token cross-entropy over labels that are not -100. */
  loss: number;
  /** d loss / d parameter for every parameter, by Hugging Face name. */
  grads: Record<string, Tensor>;
}

/** Options of {@link Model.loss}. */
export interface LossOptions {
  /** [batch, seq] u8: 1 for tokens, 0 for padding (keys that no query attends to). */
  attentionMask?: Tensor;
  /** Add the gradients to those of the previous call instead of replacing them (gradient accumulation). */
  accumulate?: boolean;
}

/** Options of {@link Model.generate} and {@link Model.stream}. */
export interface GenerateOptions extends SamplingOptions {
  /** Default 32. */
  maxNewTokens?: number;
  /** Stop when the text produced contains one of these (the stop string is not returned). */
  stop?: string[];
  /** Stop after one of these tokens (the end-of-sequence token always stops). */
  stopTokens?: number[];
}

function idsTensor(ids: TokenIds, argument: string): Tensor {
  if (ids instanceof Tensor) return ids;
  const rows = Array.isArray(ids) && ids.length > 0 && Array.isArray(ids[0]) ? (ids as number[][]) : [ids as number[]];
  if (!rows.length || !rows[0].length) fail(argument, 'a non-empty array of token ids', ids);
  const width = rows[0].length;
  const nested = rows === ids;
  rows.forEach((r, i) => {
    if (!Array.isArray(r) || r.length !== width) fail(`${argument}[${i}]`, `a sequence of ${width} ids (sequences in a batch have equal lengths)`, r, 'E_SHAPE');
    // Name the row and position of a bad id (NaN or a fraction would otherwise surface as a flat index).
    r.forEach((v, j) => {
      if (typeof v === 'number' && !Number.isInteger(v)) {
        fail(nested ? `${argument}[${i}][${j}]` : `${argument}[${j}]`, 'an integer token id', v, Number.isFinite(v) ? 'E_RANGE' : 'E_NONFINITE');
      }
    });
  });
  return tensor(rows, undefined, 'i32');
}

/** A sequence classifier's labels: class ids (i32), or targets (f32) for regression (one label). */
function classLabels(labels: TokenIds | undefined, numLabels: number): Tensor {
  if (labels instanceof Tensor) return labels;
  const flat = Array.isArray(labels) ? (labels as (number | number[])[]).flat() : labels;
  if (!Array.isArray(flat) || !flat.length || flat.some((v) => typeof v !== 'number')) fail('labels', 'one class id (or regression target) per sequence', labels);
  // Int32Array.from would turn NaN into class 0 and 1.5 into 1 without a word: name the row instead.
  (flat as number[]).forEach((v, i) => {
    if (!Number.isFinite(v)) fail(`labels[${i}]`, numLabels === 1 ? 'a finite regression target' : 'a class id', v, 'E_NONFINITE');
    if (numLabels !== 1 && !(Number.isInteger(v) && v >= 0 && v < numLabels)) fail(`labels[${i}]`, `a class id in [0, ${numLabels})`, v, 'E_RANGE');
  });
  return numLabels === 1 ? tensor(Float32Array.from(flat), [flat.length]) : tensor(Int32Array.from(flat), [flat.length], 'i32');
}

/** Labels [B, T] → [B, P + T] with -100 for the P virtual tokens of a prompt adapter. */
function prefixIgnored(labels: Tensor, virtual: number): Tensor {
  const [batch, seq] = labels.shape;
  const src = labels.toTypedArray() as Int32Array;
  const out = new Int32Array(batch * (virtual + seq)).fill(-100);
  for (let b = 0; b < batch; b++) out.set(src.subarray(b * seq, (b + 1) * seq), b * (virtual + seq) + virtual);
  return tensor(out, [batch, virtual + seq], 'i32');
}

/** Logits [B, P + T, V] → [B, T, V]: the positions of the given tokens only. */
function dropVirtualTokens(logits: Tensor, virtual: number): Tensor {
  if (virtual === 0) return logits;
  const [batch, total, vocab] = logits.shape;
  const seq = total - virtual;
  const src = logits.toFloat32Array();
  const out = new Float32Array(batch * seq * vocab);
  for (let b = 0; b < batch; b++) out.set(src.subarray((b * total + virtual) * vocab, (b + 1) * total * vocab), b * seq * vocab);
  logits.dispose();
  return tensor(out, [batch, seq, vocab]);
}

/** 4-bit weights for the {@link Model} constructor. @internal */
export interface ModelQuantizedWeights {
  weights: Map<string, ModelQuantizedTensor>;
  computeDtype: ComputeDType;
}

const disposeSymbol: symbol = (Symbol as { dispose?: symbol }).dispose ?? Symbol.for('nodejs.dispose');

/**
 * A loaded Llama-family model. Create one with {@link loadModel}. Its native memory is freed when
 * the garbage collector takes it, or at once by {@link Model.dispose}.
 */
export class Model {
  readonly config: LlamaConfig;
  /** The model's tokenizer, when its files came with one. */
  readonly tokenizer: Tokenizer | undefined;
  /** Where the model was loaded from (a path or an hf: reference), when known. */
  readonly nameOrPath: string | undefined;
  private readonly native: NativeLlama;
  private readonly weights: Map<string, Tensor>;
  /** @internal One call at a time (see model-lock.ts). */
  readonly lock = new ModelLock();
  /** Names of the weights that were 4-bit at construction (they may turn dense when a merge asks). */
  private readonly quantizedNames: ReadonlySet<string>;

  /** @internal Use {@link loadModel}. `quantized`: 4-bit weights, by name (not also in `weights`). */
  constructor(config: LlamaConfig, weights: Map<string, Tensor>, tokenizer?: Tokenizer, nameOrPath?: string, quantized?: ModelQuantizedWeights) {
    this.config = config;
    this.nameOrPath = nameOrPath;
    this.tokenizer = tokenizer;
    this.weights = weights;
    this.quantizedNames = new Set(quantized?.weights.keys() ?? []);
    const names = [...weights.keys()];
    const quantWeights = quantized
      ? Object.fromEntries([...quantized.weights].map(([n, q]) => [n, nativeQuantWeight(q, quantized.computeDtype, n)]))
      : undefined;
    this.native = new native.NativeLlama(
      {
        ...config,
        ropeFreqScale: config.ropeScaling ? ropeScalingFactors(config.headDim, config.ropeTheta, config.ropeScaling) : undefined,
        slidingLayerFlags: config.slidingLayers ? Uint8Array.from(config.slidingLayers, Number) : undefined,
      },
      names,
      names.map((n) => handleOf(weights.get(n), n)),
      quantWeights,
    );
  }

  /** @internal The native model object, for the PEFT layer. */
  get nativeModel(): NativeLlama {
    return this.native;
  }

  /**
   * Frees the model's native memory now: its weights (a mapped file is unmapped once no tensor views
   * it), activations, gradients and KV cache. Later calls throw `E_DISPOSED`; `E_BUSY` while an
   * asynchronous call (forward, loss, generate) runs. Safe to call twice.
   */
  dispose(): void {
    this.lock.check('dispose()');
    this.native.dispose();
    for (const t of this.weights.values()) t.dispose();
    this.weights.clear();
  }

  [disposeSymbol](): void {
    this.dispose();
  }

  /** Parameter names, in a fixed order. */
  parameterNames(): string[] {
    return this.native.parameterNames();
  }

  /**
   * A parameter tensor by Hugging Face name. A 4-bit weight comes back dequantized (a new f32
   * tensor of its shape); {@link Model.quantizedWeight} gives its stored form.
   */
  parameter(name: string): Tensor {
    const dense = this.weights.get(name);
    if (dense) return dense;
    if (!this.quantizedNames.has(name)) return fail('name', `a parameter name such as ${this.parameterNames()[0]}`, name);
    const q = this.heldQuantized(name);
    if (!q) return this.parameterLive(name);  // dense again after a merge that kept it so
    return q instanceof GgmlTensor ? dequantizeGgml(q) : dequantize(q);
  }

  /**
   * Activation checkpointing for training: each layer keeps only its input and the backward pass
   * recomputes it (an extra forward's compute for most of the activations' memory). Decoder
   * architectures (Llama family, GPT-2); E_UNSUPPORTED for BERT.
   */
  setGradientCheckpointing(on = true): void {
    this.lock.check('setGradientCheckpointing()');
    this.native.setCheckpointing(on);
  }

  /**
   * A 4-bit weight as the model holds it now (bitsandbytes' layout, sharing the model's memory),
   * or undefined when `name` is not 4-bit. See {@link loadModel}'s `quantization` option.
   */
  quantizedWeight(name: string): QuantizedTensor | undefined {
    const q = this.heldQuantized(name);
    return q instanceof QuantizedTensor ? q : undefined;
  }

  /** Every weight that is 4-bit now, by name (see {@link Model.quantizedWeight}). */
  quantizedWeights(): Map<string, QuantizedTensor> {
    return new Map([...this.allQuantized()].filter((e): e is [string, QuantizedTensor] => e[1] instanceof QuantizedTensor));
  }

  /**
   * A weight held in a ggml block format (a GGUF file's Q4_K, Q6_K, ...; see {@link loadModel}'s
   * `keepQuantized`), sharing the model's memory, or undefined when `name` is not.
   */
  ggmlWeight(name: string): GgmlTensor | undefined {
    const q = this.heldQuantized(name);
    return q instanceof GgmlTensor ? q : undefined;
  }

  /** Every weight held in a ggml block format now, by name (see {@link Model.ggmlWeight}). */
  ggmlWeights(): Map<string, GgmlTensor> {
    return new Map([...this.allQuantized()].filter((e): e is [string, GgmlTensor] => e[1] instanceof GgmlTensor));
  }

  private heldQuantized(name: string): ModelQuantizedTensor | undefined {
    if (!this.quantizedNames.has(name)) return undefined;
    const n = this.native.quantizedWeights()[name];
    return n ? quantizedFromNative(n) : undefined;
  }

  private allQuantized(): Map<string, ModelQuantizedTensor> {
    if (!this.quantizedNames.size) return new Map();
    return new Map(Object.entries(this.native.quantizedWeights()).map(([n, q]) => [n, quantizedFromNative(q)]));
  }

  /** The names of the weights that are quantized now (4-bit, or a GGUF block format). */
  quantizedWeightNames(): string[] {
    return this.quantizedNames.size ? Object.keys(this.native.quantizedWeights()) : [];
  }

  /** The dtype the 4-bit layers' products compute in, or undefined without 4-bit layers. */
  quantizedComputeDtype(): ComputeDType | undefined {
    if (!this.quantizedNames.size) return undefined;
    return Object.values(this.native.quantizedWeights())[0]?.computeDtype;
  }

  /**
   * Parameter counts and the bytes the base weights occupy, by dtype; 4-bit weights count under
   * 'nf4' / 'fp4' with every stored part (codes, scales, nested scales, code tables), GGUF block
   * weights under their type ('Q4_K', 'Q6_K', ...).
   */
  info(): ModelInfo {
    const byDtype: ModelInfo['byDtype'] = {};
    let parameters = 0, bytes = 0;
    const add = (key: string, count: number, b: number) => {
      parameters += count;
      bytes += b;
      const entry = (byDtype[key] ??= { parameters: 0, bytes: 0 });
      entry.parameters += count;
      entry.bytes += b;
    };
    const quantized = this.quantizedNames.size ? this.native.quantizedWeights() : {};
    for (const name of this.parameterNames()) {
      const n = quantized[name];
      if (n) {
        const q = quantizedFromNative(n);
        add(q instanceof GgmlTensor ? q.type : q.quant_type, q.size, q.nbytes);
        continue;
      }
      const t = this.weights.get(name) ?? this.parameterLive(name);
      add(t.dtype, t.size, t.size * dtypeSize(t.dtype));
    }
    return { architecture: this.config.architecture, parameters, bytes, byDtype };
  }

  /** @internal The native model's current storage of a base parameter. */
  parameterLive(name: string): Tensor {
    const found = this.native.parameters().find((p) => p.name === name);
    if (!found) return fail('name', `a parameter name such as ${this.parameterNames()[0]}`, name);
    return new Tensor(found.tensor);
  }

  /** @internal Makes `value` (same shape and dtype) the storage of a base parameter. */
  replaceParameter(name: string, value: Tensor): void {
    this.lock.check('replaceParameter()');
    this.native.setParameterValue(name, handleOf(value, 'value'));
    this.weights.set(name, value);
  }

  /** Logits [batch, seq, vocab] for token ids, on a worker thread. */
  forward(ids: TokenIds, options: { attentionMask?: Tensor } = {}): Promise<Tensor> {
    return withCallSite(() => this.lock.run('forward()', async () => {
      const mask = options.attentionMask ? handleOf(options.attentionMask, 'options.attentionMask') : null;
      const idTensor = this.checkedIds(ids);
      const logits = new Tensor(await this.native.forwardAsync(handleOf(idTensor, 'ids'), mask, false));
      return dropVirtualTokens(logits, this.native.promptLength());
    }));
  }

  /**
   * The language-model loss (each position predicts the next label; -100 is ignored) and the
   * gradient of every parameter. `labels` default to the ids.
   */
  loss(ids: TokenIds, labels?: TokenIds, options: LossOptions = {}): Promise<LossResult> {
    return withCallSite(() => this.lock.run('loss()', async () => {
      const idTensor = this.checkedIds(ids);
      let labelTensor = this.config.architecture === 'bert' ? classLabels(labels, this.config.numLabels ?? 2) : labels === undefined ? idTensor : idsTensor(labels, 'labels');
      const virtual = this.native.promptLength();
      if (virtual > 0) labelTensor = prefixIgnored(labelTensor, virtual);
      const mask = options.attentionMask ? handleOf(options.attentionMask, 'options.attentionMask') : null;
      // One native call: the forward, the loss and the backward, without the whole logits in between.
      const r = await this.native.trainLossAsync(handleOf(idTensor, 'ids'), mask, handleOf(labelTensor, 'labels'), options.accumulate ?? false);
      return { loss: r.loss, grads: Object.fromEntries(Object.entries(r.grads).map(([k, v]) => [k, new Tensor(v)])) };
    }));
  }

  /**
   * Continues a prompt (text needs a tokenizer; or give token ids) with a KV cache, on a worker
   * thread: greedy by default, sampled with `temperature` / `topK` / `topP` / `repetitionPenalty` /
   * `seed`. Returns the whole text (prompt included) and the new tokens.
   */
  generate(prompt: string | number[], options: GenerateOptions = {}): Promise<{ text: string; tokens: number[] }> {
    return this.lock.run('generate()', async () => {
      let text = '';
      const tokens: number[] = [];
      for await (const piece of this.pieces(prompt, options, tokens)) text += piece;
      const ids = typeof prompt === 'string' ? this.requireTokenizer().encode(prompt) : prompt;
      return { text: this.tokenizer ? this.tokenizer.decode(ids) + text : '', tokens };
    });
  }

  /**
   * Like {@link Model.generate}, as an async iterator of the new text, piece by piece. The model is
   * busy from the first next() until the iteration ends: finish it, or leave the loop (`break`
   * returns the iterator), before the next call on the model.
   */
  stream(prompt: string | number[], options: GenerateOptions = {}): AsyncIterableIterator<string> {
    return this.lock.iterate('stream()', () => this.pieces(prompt, options, []));
  }

  /** @internal {@link Model.stream} without taking the lock (PeftModel.stream holds it). */
  streamHeld(prompt: string | number[], options: GenerateOptions = {}): AsyncIterableIterator<string> {
    return this.pieces(prompt, options, []);
  }

  private async *pieces(prompt: string | number[], options: GenerateOptions, tokens: number[]): AsyncIterableIterator<string> {
    if (this.config.architecture === 'bert') throw new PeftError('A sequence classifier (BERT) does not generate text; use forward() for its logits', 'E_UNSUPPORTED');
    const ids = typeof prompt === 'string' ? this.requireTokenizer().encode(prompt) : [...prompt];
    if (!ids.length) fail('prompt', 'at least one token', prompt);
    ids.forEach((id, i) => {
      if (!Number.isInteger(id) || id < 0 || id >= this.config.vocabSize) fail(`prompt[${i}]`, `a token id in [0, ${this.config.vocabSize})`, id, 'E_RANGE');
    });
    const maxNew = options.maxNewTokens ?? 32;
    if (!Number.isInteger(maxNew) || maxNew < 0) fail('option maxNewTokens', 'a non-negative integer', maxNew, 'E_RANGE');
    const limit = this.config.maxPositionEmbeddings;
    const virtual = this.native.promptLength() + this.native.prefixLength();
    if (virtual + ids.length + maxNew > limit) {
      const extra = virtual ? ` after ${virtual} virtual tokens` : '';
      throw new PeftError(`Expected at most ${limit} tokens (the model's context) but the prompt has ${ids.length}${extra} and maxNewTokens is ${maxNew}`, 'E_RANGE');
    }
    const sampler = new Sampler(options);
    const eos = this.tokenizer?.eosId ?? (typeof this.config.eosTokenId === 'number' ? this.config.eosTokenId : undefined);
    const stopTokens = new Set([...(options.stopTokens ?? []), ...(eos === undefined ? [] : [eos])]);
    const stops = options.stop ?? [];
    this.native.resetCache(ids.length + maxNew);
    const all = [...ids];
    let emitted = '';
    // New text = decode(prompt + new) minus decode(prompt): decoding the new tokens alone would drop
    // the space a SentencePiece word marker stands for at the start.
    const promptText = this.tokenizer ? this.tokenizer.decode(ids) : '';
    let next = tensor([ids], undefined, 'i32');
    for (let step = 0; step < maxNew; step++) {
      const logits = await this.native.stepAsync(handleOf(next, 'ids'));
      const token = sampler.next(logits.toFloat32Array(), all);
      logits.dispose();
      next.dispose();
      all.push(token);
      tokens.push(token);
      if (!this.tokenizer) {
        if (stopTokens.has(token)) return;
        next = tensor([[token]], undefined, 'i32');
        continue;
      }
      // Decode everything new so far and hand out what was not handed out yet; hold back a
      // trailing incomplete UTF-8 sequence (decoded as U+FFFD) until its other bytes arrive.
      let text = this.tokenizer.decode(all).slice(promptText.length);
      const hit = stops.map((s) => text.indexOf(s)).filter((i) => i >= 0);
      const done = stopTokens.has(token) || hit.length > 0;
      if (hit.length) text = text.slice(0, Math.min(...hit));
      if (!done && text.endsWith('\uFFFD')) {
        next = tensor([[token]], undefined, 'i32');
        continue;
      }
      if (text.length > emitted.length && text.startsWith(emitted)) {
        yield text.slice(emitted.length);
        emitted = text;
      }
      if (done) return;
      next = tensor([[token]], undefined, 'i32');
    }
  }

  /** Ids as a tensor, refusing sequences longer than the context (virtual tokens included). */
  private checkedIds(ids: TokenIds): Tensor {
    const t = idsTensor(ids, 'ids');
    const virtual = this.native.promptLength() + this.native.prefixLength();
    const limit = this.config.maxPositionEmbeddings;
    const seq = t.shape[t.shape.length - 1];
    if (seq + virtual > limit) {
      const extra = virtual ? ` plus ${virtual} virtual tokens` : '';
      throw new PeftError(`Expected at most ${limit} positions (the model's context) but the sequence has ${seq}${extra}`, 'E_RANGE');
    }
    return t;
  }

  private requireTokenizer(): Tokenizer {
    if (!this.tokenizer) throw new PeftError('This model was loaded without a tokenizer; pass token ids instead of text', 'E_CONFIG');
    return this.tokenizer;
  }
}

/** Options of {@link loadModel}. */
export interface LoadModelOptions extends ResolveOptions {
  /** For a GGUF file: a directory with tokenizer.json to use instead of the file's own vocabulary. */
  tokenizer?: string;
  /**
   * 'f32' (default): every weight in f32 (an f32 file's tensors stay memory-mapped, not copied).
   * 'bf16': the matrices (linear layers, embeddings) in bf16, 2 bytes per parameter, frozen;
   * norms and biases stay f32.
   */
  dtype?: 'f32' | 'bf16';
  /**
   * 4-bit loading (QLoRA's base), with transformers' BitsAndBytesConfig names: the linear layers of
   * the blocks are quantized to NF4 / FP4 in bitsandbytes' layout and stay frozen; embeddings,
   * norms and the output head keep `dtype`. A checkpoint saved in bitsandbytes' 4-bit format loads
   * as it is stored, with or without this option (which then only sets the compute dtype).
   * @example await loadModel(dir, { quantization: { load_in_4bit: true, bnb_4bit_quant_type: 'nf4', bnb_4bit_use_double_quant: true, bnb_4bit_compute_dtype: 'bf16' } })
   */
  quantization?: BitsAndBytesConfig;
  /**
   * For a GGUF file: keep the linear layers stored in a ggml block format (Q4_0 … Q8_0, Q2_K … Q6_K,
   * IQ4_NL, IQ4_XS) in it, frozen, dequantized a panel at a time inside the products, as a 4-bit
   * base is (default true: a Q4_K_M 7B model needs ~4 GB instead of ~28 GB). false expands them to
   * `dtype`. Embeddings and norms are always dense.
   */
  keepQuantized?: boolean;
  /**
   * Refuse weights that hold NaN or infinities (`E_NONFINITE`, naming the tensor), as a file saved from
   * a diverged run or a damaged download does. One multi-threaded scan of the weights, memory-bandwidth
   * bound (0.2 s for 135M f32 parameters on two busy cores). Default true.
   */
  checkFinite?: boolean;
}

/** Weights in the dtypes the model computes with: see {@link LoadModelOptions.dtype}. */
function castWeights(weights: Map<string, Tensor>, dtype: 'f32' | 'bf16'): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [name, t] of weights) {
    const want = dtype === 'bf16' && t.shape.length === 2 ? 'bf16' : 'f32';
    out.set(name, t.dtype === want ? t : t.to(want));
  }
  return out;
}

/** What {@link Model.info} reports. */
export interface ModelInfo {
  architecture: 'llama' | 'gpt2' | 'bert';
  /** Parameters of the base model (a tied head counted once). */
  parameters: number;
  /** Bytes the base weights occupy. */
  bytes: number;
  byDtype: Record<string, { parameters: number; bytes: number }>;
}

function loadDtype(options: LoadModelOptions): 'f32' | 'bf16' {
  const d = options.dtype ?? 'f32';
  if (d !== 'f32' && d !== 'bf16') fail('option dtype', '"f32" or "bf16"', d, 'E_DTYPE');
  return d;
}

/**
 * The 4-bit weights of a model being loaded: those stored so (`stored`), plus the block linears of
 * `weights` quantized now when options.quantization asks; `weights` keeps the rest.
 */
async function quantizedOnLoad(
  weights: Map<string, Tensor>,
  options: LoadModelOptions,
  stored: Map<string, ModelQuantizedTensor>,
  json?: Record<string, unknown>,
): Promise<ModelQuantizedWeights | undefined> {
  const settings = quantSettings(options.quantization);
  if (!settings && !stored.size) return undefined;
  const asked = (options.quantization as { bnb_4bit_compute_dtype?: unknown } | undefined)?.bnb_4bit_compute_dtype;
  const computeDtype = asked !== undefined ? computeDtypeOf(asked, 'option quantization.bnb_4bit_compute_dtype') : checkpointComputeDtype(json) ?? 'f32';
  const made = settings ? await quantizeBlockLinears(weights, settings) : new Map<string, QuantizedTensor>();
  return { weights: new Map<string, ModelQuantizedTensor>([...stored, ...made]), computeDtype };
}

/** With options.checkFinite (default), refuses weights holding NaN or infinities, naming the first. */
async function checkFiniteWeights(location: string, weights: ReadonlyMap<string, Tensor>, options: LoadModelOptions, quantized = new Map<string, QuantizedTensor>()): Promise<void> {
  const check = options.checkFinite ?? true;
  if (typeof check !== 'boolean') fail('option checkFinite', 'a boolean', check, 'E_ARGUMENT');
  if (!check) return;
  await assertFiniteTensors(
    [...weights, ...quantizedScales(quantized)],
    `loadModel(${location})`,
    'The file is damaged or was saved from a diverged run; loadModel(path, { checkFinite: false }) loads it anyway.',
  );
}

/**
 * llama.cpp stores Llama 3's RoPE scaling (and LongRoPE-style factors) as a `rope_freqs.weight` tensor
 * [headDim / 2]: frequency i turns at inv_freq_i / rope_freqs_i (times a linear scaling's 1 / factor).
 */
function withRopeFreqs(config: LlamaConfig, file: ReturnType<typeof readGguf>, source: string): LlamaConfig {
  if (!file.tensorInfos.some((t) => t.name === 'rope_freqs.weight')) return config;
  const t = file.tensor('rope_freqs.weight');
  const freqs = t.to('f32').toFloat32Array();
  t.dispose();
  if (freqs.length !== config.headDim / 2 || freqs.some((f) => !Number.isFinite(f) || f <= 0)) {
    throw new PeftError(`Expected rope_freqs.weight in ${source} to hold ${config.headDim / 2} positive finite factors (head_dim / 2) but it has ${freqs.length} values${freqs.length === config.headDim / 2 ? ', not all positive and finite' : ''}`, 'E_FORMAT');
  }
  const linear = config.ropeScaling?.type === 'linear' ? 1 / config.ropeScaling.factor : 1;
  return { ...config, ropeScaling: { type: 'factors', factors: Array.from(freqs, (f) => linear / f) } };
}

/** Loads a Hugging Face model directory, a GGUF file, or an `hf:owner/name[/file]` reference. */
export async function loadModel(location: string, options: LoadModelOptions = {}): Promise<Model> {
  const resolved = await resolveModel(location, options);
  quantSettings(options.quantization);  // bad options fail before any file is read
  if (resolved.endsWith('.gguf')) {
    const file = readGguf(resolved);
    const hasOutput = file.tensorInfos.some((t) => t.name === 'output.weight');
    const config = withRopeFreqs(configFromGguf(file.metadata as Record<string, unknown>, hasOutput, resolved), file, resolved);
    const keepQuantized = options.keepQuantized ?? true;
    if (typeof keepQuantized !== 'boolean') fail('option keepQuantized', 'a boolean', keepQuantized, 'E_ARGUMENT');
    const checkFinite = options.checkFinite ?? true;
    if (typeof checkFinite !== 'boolean') fail('option checkFinite', 'a boolean', checkFinite, 'E_ARGUMENT');
    const raw = llamaWeightsFromGguf(file, config, { keepQuantized, checkFinite });
    await checkFiniteWeights(location, raw.dense, options);
    const weights = castWeights(raw.dense, loadDtype(options));
    const quantized = await quantizedOnLoad(weights, options, raw.quantized);
    return new Model(config, weights, options.tokenizer ? loadTokenizer(options.tokenizer) : tokenizerFromGguf(file.metadata as Record<string, unknown>), location, quantized);
  }
  const configPath = path.join(resolved, 'config.json');
  if (!fs.existsSync(configPath)) throw new PeftError(`Expected a config.json in ${resolved} but found none`, 'E_IO');
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(fs.readFileSync(configPath, 'utf8'));
  } catch (err) {
    throw new PeftError(`${configPath} is not valid JSON: ${(err as Error).message}`, 'E_FORMAT');
  }
  const config = configFromHf(json, configPath);
  const source = readSafetensorsModel(resolved);
  const stored = readQuantizedWeights(source);  // a checkpoint in bitsandbytes' 4-bit format
  const keys = source.keys().filter((k) => !k.endsWith('rotary_emb.inv_freq') && !stored.keys.has(k));
  const raw = new Map(keys.map((k) => [k, source.tensor(k)]));
  const arch = config.architecture === 'gpt2' ? gpt2Weights(raw) : config.architecture === 'bert' ? bertWeights(raw, config.hiddenSize, config.numLabels ?? 2) : raw;
  await checkFiniteWeights(location, arch, options, stored.weights);
  const weights = castWeights(arch, loadDtype(options));
  if (config.architecture === 'bert' && (options.quantization || stored.weights.size)) {
    throw new PeftError(`4-bit weights are available for the decoder architectures (Llama family, GPT-2), not ${config.architecture}`, 'E_UNSUPPORTED');
  }
  if (config.architecture === 'gpt2' && stored.weights.size) {
    throw new PeftError('4-bit GPT-2 checkpoints are not read yet; load the dense checkpoint with { quantization: { load_in_4bit: true } }', 'E_UNSUPPORTED');
  }
  const quantized = await quantizedOnLoad(weights, options, stored.weights, json);
  const tokenizer = fs.existsSync(path.join(resolved, 'tokenizer.json')) ? loadTokenizer(resolved) : undefined;
  return new Model(config, weights, tokenizer, location, quantized);
}
