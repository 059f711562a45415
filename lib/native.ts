/**
 * The only module that touches the compiled addon: loads it (a prebuilt binary from prebuilds/
 * when one matches, else build/Release) and declares its surface. Everything here is internal.
 * @internal
 * @module
 */
import * as path from 'node:path';

import { PeftError } from './errors';
import type { DType } from './dtype';
import type { LlamaConfig } from './models/config';

/** @internal A native tensor object (native/binding/tensor_wrap.h). */
/** One op of a backend against the CPU backend's scalar kernels (native/kernels/backend_compare.h). */
export interface OpComparison {
  /** The op-table entry, with its case after a slash when it has several (`gemm/bf16_nt`). */
  op: string;
  /** Largest absolute difference from the reference over the op's outputs. */
  maxAbs: number;
  /** Largest absolute reference value. */
  refScale: number;
  /** Values compared. */
  outputs: number;
}

export interface BackendComparison {
  /** Entries in the backend op table: every one should have at least one case. */
  ops: number;
  results: OpComparison[];
}

export interface NativeTensor {
  shape(): number[];
  dtype(): DType;
  disposed(): boolean;
  toFloat32Array(): Float32Array;
  toTypedArray(): Float32Array | Uint16Array | Int32Array | Uint8Array;
  to(dtype: DType): NativeTensor;
  dispose(): void;
}

/** @internal */
export interface NativeTensorClass {
  new (data: ArrayBufferView | null, sourceDtype: DType, shape: number[], dtype: DType): NativeTensor;
}

/** @internal Options of the native matmul. */
export interface NativeMatmulOptions {
  transA?: boolean;
  transB?: boolean;
  alpha?: number;
  accumulate?: boolean;
}

/** @internal */
export interface NativeLowRankBackwardOptions {
  needDx?: boolean;
  gradA?: NativeTensor;
  gradB?: NativeTensor;
  accumulate?: boolean;
}

/** @internal */
export interface NativeAdamWOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  step: number;
}

/** @internal */
export interface NativeSgdOptions {
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
  step: number;
}

/** @internal A metadata value of a GGUF file (native/binding/gguf_values.h). */
export type NativeGgufValue = number | bigint | boolean | string | NativeGgufValue[];

/** @internal What GgufReader.info() returns (native/binding/io_gguf.cpp). */
export interface NativeGgufInfo {
  version: number;
  alignment: number;
  /** Absolute byte offset of the data section. */
  dataOffset: number;
  metadata: Record<string, NativeGgufValue>;
  /** Each key's value type: 'u32', 'string', 'array<f32>', 'array<array<u8>>', ... */
  types: Record<string, string>;
  tensors: { name: string; shape: number[]; type: string; offset: number; nbytes: number }[];
}

/** @internal A parsed, memory-mapped GGUF file (native/binding/io_gguf.cpp). */
export interface NativeGgufReader {
  info(): NativeGgufInfo;
  load(name: string): NativeTensor;
  loadAsync(name: string): Promise<NativeTensor>;
  /** u8 [nbytes]: a ggml block-type tensor's bytes as stored (a view of the file); checkFinite (default true): E_NONFINITE for a NaN / Inf block scale. */
  loadBlocks(name: string, checkFinite?: boolean): NativeTensor;
  /** Whether the tensor's bytes are this file's mapped bytes (a zero-copy view). */
  isView(tensor: NativeTensor): boolean;
  close(): void;
}

/** @internal */
export interface NativeGgufReaderClass {
  new (path: string): NativeGgufReader;
}

type Sync<A extends unknown[], R> = (...args: A) => R;
type Async<A extends unknown[], R> = (...args: A) => Promise<R>;
type LowRankForwardArgs = [x: NativeTensor, w: NativeTensor, a: NativeTensor, b: NativeTensor, scale: number];
type LowRankForwardResult = { y: NativeTensor; xa: NativeTensor };
type LowRankBackwardArgs = [
  dy: NativeTensor,
  x: NativeTensor,
  xa: NativeTensor,
  w: NativeTensor,
  a: NativeTensor,
  b: NativeTensor,
  scale: number,
  options: NativeLowRankBackwardOptions,
];
type LowRankBackwardResult = { dx: NativeTensor | null; gradA: NativeTensor; gradB: NativeTensor };
type MatmulArgs = [a: NativeTensor, b: NativeTensor, out: NativeTensor | null, options: NativeMatmulOptions];
type AdamWArgs = [params: NativeTensor[], grads: NativeTensor[], m: NativeTensor[], v: NativeTensor[], options: NativeAdamWOptions];
type SgdArgs = [params: NativeTensor[], grads: NativeTensor[], buffers: NativeTensor[] | null, options: NativeSgdOptions];
type ClipArgs = [grads: NativeTensor[], maxNorm: number];

/** @internal Options of the native norm backwards (native/binding/ops_norm.cpp). */
export interface NativeNormBackwardOptions {
  needDx?: boolean;
  gradWeight?: NativeTensor;
  gradBias?: NativeTensor;
  accumulate?: boolean;
}

/** @internal */
export interface NativeRopeOptions {
  theta: number;
  freqScale?: NativeTensor;
  inverse: boolean;
  inPlace: boolean;
}

/** @internal */
export interface NativeCrossEntropyOptions {
  ignoreIndex: number;
  normalizer: number;
  grad: boolean;
  dlogits?: NativeTensor;
}

type RmsNormForwardArgs = [x: NativeTensor, w: NativeTensor, eps: number];
type RmsNormForwardResult = { y: NativeTensor; rstd: NativeTensor };
type RmsNormBackwardArgs = [dy: NativeTensor, x: NativeTensor, w: NativeTensor, rstd: NativeTensor, options: NativeNormBackwardOptions];
type RmsNormBackwardResult = { dx: NativeTensor | null; gradWeight: NativeTensor };
type LayerNormForwardArgs = [x: NativeTensor, w: NativeTensor, b: NativeTensor | null, eps: number];
type LayerNormForwardResult = { y: NativeTensor; mean: NativeTensor; rstd: NativeTensor };
type LayerNormBackwardArgs = [
  dy: NativeTensor,
  x: NativeTensor,
  w: NativeTensor,
  mean: NativeTensor,
  rstd: NativeTensor,
  options: NativeNormBackwardOptions,
];
type LayerNormBackwardResult = { dx: NativeTensor | null; gradWeight: NativeTensor; gradBias: NativeTensor };
type RopeArgs = [x: NativeTensor, positions: NativeTensor, options: NativeRopeOptions];
type SwiGluBackwardResult = { dGate: NativeTensor; dUp: NativeTensor };
type CrossEntropyArgs = [logits: NativeTensor, labels: NativeTensor, options: NativeCrossEntropyOptions];
type CrossEntropyResult = { loss: number; count: number; dlogits: NativeTensor | null };
type EmbeddingBackwardArgs = [dout: NativeTensor, ids: NativeTensor, gradTable: NativeTensor | null, vocab: number, accumulate: boolean];

/** @internal One tensor's entry in a safetensors header. */
export interface NativeSafetensorsEntry {
  name: string;
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}

/** @internal A mapped safetensors file (native/binding/io_safetensors.cpp). */
export interface NativeSafetensors {
  entries(): NativeSafetensorsEntry[];
  metadata(): Record<string, string>;
  tensor(name: string): NativeTensor;
}

/** @internal */
export interface NativeAttentionOptions {
  causal?: boolean;
  scale?: number;
  keyMask?: NativeTensor;
}
type AttentionArgs = [q: NativeTensor, k: NativeTensor, v: NativeTensor, options: NativeAttentionOptions];
type AttentionResult = { out: NativeTensor; lse: NativeTensor };
type AttentionBackwardArgs = [
  dout: NativeTensor,
  q: NativeTensor,
  k: NativeTensor,
  v: NativeTensor,
  out: NativeTensor,
  lse: NativeTensor,
  options: NativeAttentionOptions,
];
type AttentionBackwardResult = { dq: NativeTensor; dk: NativeTensor; dv: NativeTensor };

type WriteSafetensorsArgs = [path: string, names: string[], tensors: NativeTensor[], metadata: Record<string, string>];

/** @internal The config the native Llama model reads: the model config plus RoPE frequency factors. */
export type NativeLlamaConfig = Pick<
  LlamaConfig,
  | 'hiddenSize'
  | 'intermediateSize'
  | 'numLayers'
  | 'numHeads'
  | 'numKvHeads'
  | 'headDim'
  | 'vocabSize'
  | 'rmsNormEps'
  | 'ropeTheta'
  | 'tieWordEmbeddings'
  | 'attentionBias'
  | 'qkNorm'
  | 'slidingWindow'
  | 'fusedProjections'
  | 'numExperts'
  | 'numExpertsPerTok'
  | 'modelType'
  | 'queryPreAttnScalar'
  | 'attnLogitSoftcapping'
  | 'finalLogitSoftcapping'
  | 'ropeLocalTheta'
  | 'architecture'
  | 'maxPositionEmbeddings'
> & { ropeFreqScale?: Float32Array; slidingLayerFlags?: Uint8Array; layerNormEps?: number; typeVocabSize?: number; numLabels?: number };

/** @internal Which adapters a forward applies (native/nn/adapter_selection.h). */
export interface NativeAdapterSelection {
  enabled: boolean;
  active: string[];
  /** One adapter name (or '__base__') per batch row, or null. */
  perRow: string[] | null;
  /** Dropout stream of the next training forward. */
  seed: number;
  /** Training mode: a training forward applies LoRA dropout. Default true; false in evaluation mode. */
  dropout?: boolean;
}

/** @internal A linear layer adapters can attach to. */
export interface NativeLinearModule {
  name: string;
  inFeatures: number;
  outFeatures: number;
  bias: boolean;
  /** The base weight is 4-bit (native/nn/quant_weight.h). */
  quantized: boolean;
}

type GgmlMatmulArgs = [a: NativeTensor, data: NativeTensor, type: string, shape: number[], options: { transB: boolean; computeDtype: 'f32' | 'bf16' }];

/** @internal One ggml block format with kernels (native/kernels/ggml_quant.h). */
export interface NativeGgmlFormat {
  name: string;
  /** ggml's type id */
  id: number;
  /** elements per block */
  block: number;
  /** bytes per block */
  bytes: number;
  /** llama.cpp's reference quantizer is available */
  quantizer: boolean;
}

/** @internal A model's weight in a ggml block format: its bytes, row after row. */
export interface NativeGgmlWeight {
  data: NativeTensor;
  /** [out, in] */
  shape: number[];
  quantType: 'ggml';
  /** 'Q4_K', ... */
  ggmlType: string;
  computeDtype: 'f32' | 'bf16';
}

/** @internal A model's quantized weight (native/binding/model_quant.h). */
export type NativeQuantWeight = NativeBnbWeight | NativeGgmlWeight;

/** @internal A model's 4-bit weight in bitsandbytes' layout: the parts plus what they stand for. */
export interface NativeBnbWeight extends NativeQuant4 {
  /** [out, in] */
  shape: number[];
  quantType: 'nf4' | 'fp4';
  /** The dtype it was quantized from. */
  dtype: 'f32' | 'bf16' | 'f16';
  /** The dtype the products see the dequantized values in. */
  computeDtype: 'f32' | 'bf16';
}

/** @internal The native Llama model (native/binding/model_llama.cpp). */
export interface NativeLlama {
  forward(ids: NativeTensor, mask: NativeTensor | null, train: boolean): NativeTensor;
  forwardAsync(ids: NativeTensor, mask: NativeTensor | null, train: boolean): Promise<NativeTensor>;
  lossBackward(logits: NativeTensor, labels: NativeTensor, accumulate?: boolean): { loss: number; grads: Record<string, NativeTensor> };
  lossBackwardAsync(
    logits: NativeTensor,
    labels: NativeTensor,
    accumulate?: boolean,
  ): Promise<{ loss: number; grads: Record<string, NativeTensor> }>;
  /** forward(train) + lossBackward in one call, without handing the logits over (the head and the loss run in row blocks). */
  trainLoss(ids: NativeTensor, mask: NativeTensor | null, labels: NativeTensor, accumulate?: boolean): { loss: number; grads: Record<string, NativeTensor> };
  trainLossAsync(
    ids: NativeTensor,
    mask: NativeTensor | null,
    labels: NativeTensor,
    accumulate?: boolean,
  ): Promise<{ loss: number; grads: Record<string, NativeTensor> }>;
  parameterNames(): string[];
  promptLength(): number;
  addLora(
    module: string,
    adapter: string,
    /** lora_A [r, in]; null with options.shareA. */
    a: NativeTensor | null,
    b: NativeTensor,
    magnitude: NativeTensor | null,
    /** shareA: a module whose A (of this adapter) this one uses as the same parameter. */
    options: { scaling: number; dropout: number; useDora: boolean; shareA?: string },
  ): void;
  addIa3(module: string, adapter: string, vector: NativeTensor, feedforward: boolean): void;
  addEmbeddingLora(adapter: string, a: NativeTensor, b: NativeTensor, scaling: number): void;
  addPrompt(adapter: string, embeddings: NativeTensor): void;
  addPrefix(adapter: string, kv: NativeTensor): void;
  prefixLength(): number;
  addBottleneck(
    layer: number,
    site: 'attn' | 'mlp',
    adapter: string,
    downWeight: NativeTensor,
    downBias: NativeTensor,
    upWeight: NativeTensor,
    upBias: NativeTensor,
    options: { nonLinearity: string; scaling: number; parallel: boolean },
  ): void;
  /** keepMerged: forget a merged adapter, leaving its effect in the weights. */
  deleteAdapter(adapter: string, keepMerged?: boolean): void;
  setSelection(selection: NativeAdapterSelection): void;
  setTrainable(name: string, trainable: boolean): void;
  /** A 4-bit weight's tensor is its packed codes; `numel` then counts the weight's own elements. */
  parameters(): { name: string; tensor: NativeTensor; trainable: boolean; quantized?: boolean; numel?: number }[];
  /** The parameters that are 4-bit now, by name. */
  quantizedWeights(): Record<string, NativeQuantWeight>;
  setParameterValue(name: string, value: NativeTensor): void;
  grads(): Record<string, NativeTensor>;
  linearModules(): NativeLinearModule[];
  setCheckpointing(on: boolean): void;
  /** requantize (default true): a 4-bit weight stays 4-bit; false: it becomes dense in its compute dtype. */
  mergeAdapter(adapter: string, options?: { requantize: boolean }): number;
  unmergeAdapter(adapter: string): number;
  resetCache(maxLength: number): void;
  step(ids: NativeTensor): NativeTensor;
  stepAsync(ids: NativeTensor): Promise<NativeTensor>;
  /** Serving (native/model/decoder_serve.cpp): a KV cache slot for up to `capacity` positions; returns its id. */
  serveOpen(capacity: number): number;
  serveClose(slot: number): void;
  /** Positions a slot holds now. */
  serveLength(slot: number): number;
  /** Registers LoRA factors (lora_A [r, in], lora_B [out, r], scale) by module name; returns the id segments use. */
  serveAddAdapter(modules: string[], a: NativeTensor[], b: NativeTensor[], scales: number[]): number;
  serveRemoveAdapter(id: number): void;
  /** ids [M] i32: the segments' new tokens in order; segments: [slot, rows, adapter id or 0] triples. Logits [segments, vocab] of each segment's last token. */
  serveStepAsync(ids: NativeTensor, segments: number[]): Promise<NativeTensor>;
  /** Frees the native model (E_BUSY while a call runs); later calls throw E_DISPOSED. */
  dispose(): void;
}

/** @internal A 4-bit tensor's parts as the native quantization ops take and return them (native/binding/ops_quant.cpp). */
export interface NativeQuant4 {
  data: NativeTensor;
  absmax: NativeTensor;
  quantMap: NativeTensor;
  blocksize: number;
  nestedAbsmax?: NativeTensor;
  nestedQuantMap?: NativeTensor;
  nestedBlocksize?: number;
  offset?: number;
}

/** @internal */
export interface NativeQuantize4Options {
  quantType: 'nf4' | 'fp4';
  blocksize: number;
  doubleQuant: boolean;
}

type Quantize4Args = [x: NativeTensor, options: NativeQuantize4Options];
type Dequantize4Args = [q: NativeQuant4, shape: number[], out: NativeTensor | null];
type Quant4MatmulArgs = [a: NativeTensor, q: NativeQuant4, weightShape: number[], options: { transB: boolean }];

/** @internal The phases of a training step that native/core/profile.h times. */
export type NativeProfilePhase = 'gemm' | 'head' | 'attention' | 'normAct' | 'loss' | 'embedding' | 'optimizer';

/** @internal The addon's exports (native/binding/addon.cpp). */
export interface NativeAddon {
  NativeTensor: NativeTensorClass;
  NativeSafetensors: new (path: string) => NativeSafetensors;
  writeSafetensors: Sync<WriteSafetensorsArgs, void>;
  writeSafetensorsAsync: Async<WriteSafetensorsArgs, void>;
  GgufReader: NativeGgufReaderClass;
  NativeLlama: new (
    config: NativeLlamaConfig,
    names: string[],
    tensors: NativeTensor[],
    quantized?: Record<string, NativeQuantWeight>,
  ) => NativeLlama;
  init(errorClass: typeof PeftError): void;
  getIsa(): string;
  setIsa(isa: string): void;
  supportedIsas(): string[];
  backends(): string[];
  compareBackendOps(backend: string, isa: string, seed: number): BackendComparison;
  cpuFeatures(): Record<string, boolean | number>;
  numThreads(): number;
  externalMemory(): number;
  liveStorages(): { storages: number; bytes: number; views: number };
  setNumThreads(n: number): void;
  /** Turns the per-phase timers (native/core/profile.h) on or off; PEFT_PROFILE=1 turns them on at start-up. */
  setProfiling(on: boolean): void;
  /** Wall time and calls per phase since the last resetProfile(), summed over the process. */
  profile(): Record<NativeProfilePhase, { ns: number; calls: number }>;
  resetProfile(): void;
  matmul: Sync<MatmulArgs, NativeTensor>;
  matmulAsync: Async<MatmulArgs, NativeTensor>;
  loraBatchForward: Sync<[x: NativeTensor, adapters: { a: NativeTensor; b: NativeTensor; scale: number }[], rowAdapter: NativeTensor, y: NativeTensor], NativeTensor>;
  loraBatchForwardAsync: Async<[x: NativeTensor, adapters: { a: NativeTensor; b: NativeTensor; scale: number }[], rowAdapter: NativeTensor, y: NativeTensor], NativeTensor>;
  lowrankForward: Sync<LowRankForwardArgs, LowRankForwardResult>;
  lowrankForwardAsync: Async<LowRankForwardArgs, LowRankForwardResult>;
  lowrankBackward: Sync<LowRankBackwardArgs, LowRankBackwardResult>;
  lowrankBackwardAsync: Async<LowRankBackwardArgs, LowRankBackwardResult>;
  adamw: Sync<AdamWArgs, void>;
  adamwAsync: Async<AdamWArgs, void>;
  sgd: Sync<SgdArgs, void>;
  sgdAsync: Async<SgdArgs, void>;
  attention: Sync<AttentionArgs, AttentionResult>;
  attentionAsync: Async<AttentionArgs, AttentionResult>;
  attentionBackward: Sync<AttentionBackwardArgs, AttentionBackwardResult>;
  attentionBackwardAsync: Async<AttentionBackwardArgs, AttentionBackwardResult>;
  clipGradNorm: Sync<ClipArgs, number>;
  clipGradNormAsync: Async<ClipArgs, number>;
  scale: Sync<[tensors: NativeTensor[], factor: number], void>;
  scaleAsync: Async<[tensors: NativeTensor[], factor: number], void>;
  copy: Sync<[target: NativeTensor, source: NativeTensor], void>;
  copyAsync: Async<[target: NativeTensor, source: NativeTensor], void>;
  rmsnormForward: Sync<RmsNormForwardArgs, RmsNormForwardResult>;
  rmsnormForwardAsync: Async<RmsNormForwardArgs, RmsNormForwardResult>;
  rmsnormBackward: Sync<RmsNormBackwardArgs, RmsNormBackwardResult>;
  rmsnormBackwardAsync: Async<RmsNormBackwardArgs, RmsNormBackwardResult>;
  layernormForward: Sync<LayerNormForwardArgs, LayerNormForwardResult>;
  layernormForwardAsync: Async<LayerNormForwardArgs, LayerNormForwardResult>;
  layernormBackward: Sync<LayerNormBackwardArgs, LayerNormBackwardResult>;
  layernormBackwardAsync: Async<LayerNormBackwardArgs, LayerNormBackwardResult>;
  rope: Sync<RopeArgs, NativeTensor>;
  ropeAsync: Async<RopeArgs, NativeTensor>;
  swigluForward: Sync<[gate: NativeTensor, up: NativeTensor], NativeTensor>;
  swigluForwardAsync: Async<[gate: NativeTensor, up: NativeTensor], NativeTensor>;
  swigluBackward: Sync<[dh: NativeTensor, gate: NativeTensor, up: NativeTensor], SwiGluBackwardResult>;
  swigluBackwardAsync: Async<[dh: NativeTensor, gate: NativeTensor, up: NativeTensor], SwiGluBackwardResult>;
  geluForward: Sync<[x: NativeTensor], NativeTensor>;
  geluForwardAsync: Async<[x: NativeTensor], NativeTensor>;
  geluBackward: Sync<[dy: NativeTensor, x: NativeTensor], NativeTensor>;
  geluBackwardAsync: Async<[dy: NativeTensor, x: NativeTensor], NativeTensor>;
  crossEntropy: Sync<CrossEntropyArgs, CrossEntropyResult>;
  crossEntropyAsync: Async<CrossEntropyArgs, CrossEntropyResult>;
  embeddingForward: Sync<[ids: NativeTensor, table: NativeTensor], NativeTensor>;
  embeddingForwardAsync: Async<[ids: NativeTensor, table: NativeTensor], NativeTensor>;
  embeddingBackward: Sync<EmbeddingBackwardArgs, NativeTensor>;
  embeddingBackwardAsync: Async<EmbeddingBackwardArgs, NativeTensor>;
  quantize4: Sync<Quantize4Args, NativeQuant4>;
  quantize4Async: Async<Quantize4Args, NativeQuant4>;
  dequantize4: Sync<Dequantize4Args, NativeTensor>;
  dequantize4Async: Async<Dequantize4Args, NativeTensor>;
  quant4Matmul: Sync<Quant4MatmulArgs, NativeTensor>;
  quant4MatmulAsync: Async<Quant4MatmulArgs, NativeTensor>;
  ggmlQuantize: Sync<[x: NativeTensor, type: string], NativeTensor>;
  ggmlQuantizeAsync: Async<[x: NativeTensor, type: string], NativeTensor>;
  ggmlDequantize: Sync<[data: NativeTensor, type: string, shape: number[]], NativeTensor>;
  ggmlDequantizeAsync: Async<[data: NativeTensor, type: string, shape: number[]], NativeTensor>;
  ggmlMatmul: Sync<GgmlMatmulArgs, NativeTensor>;
  ggmlMatmulAsync: Async<GgmlMatmulArgs, NativeTensor>;
  ggmlFormats(): NativeGgmlFormat[];
  /** Sets the floats per dequantized panel of the compressed-weight products; returns the previous. */
  setPanelFloats(floats: number): number;
  /** Per tensor: the count of NaN / ±infinity elements, the flat index of the first (-1: none) and its value. */
  findNonFinite: Sync<[tensors: NativeTensor[]], NonFiniteResult>;
  findNonFiniteAsync: Async<[tensors: NativeTensor[]], NonFiniteResult>;
}

/** @internal */
export interface NonFiniteResult {
  counts: number[];
  firsts: number[];
  values: number[];
}

/** The package root (holds binding.gyp, build/ and prebuilds/), from lib/ or dist/. */
const packageRoot = path.resolve(__dirname, '..');

function loadAddon(): NativeAddon {
  let addon: NativeAddon;
  try {
    // PEFT_NATIVE_BINARY points at a specific build (the cmake-js or sanitizer build, for example).
    const explicit = process.env.PEFT_NATIVE_BINARY;
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    addon = explicit ? require(path.resolve(explicit)) : require('node-gyp-build')(packageRoot);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new PeftError(
      `Could not load the peft-native binary (${reason}). Reinstall the package, or build it from source with ` +
        '`npm run build:native` (needs python3, make and a C++17 compiler).',
      'E_LOAD',
    );
  }
  addon.init(PeftError); // applies PEFT_ISA; throws E_UNSUPPORTED for a variant this CPU cannot run
  return addon;
}

/** @internal */
export const native: NativeAddon = loadAddon();
