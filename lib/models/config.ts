/**
 * Model configurations: the decoder-only Llama family (Llama 2/3, Mistral, Mixtral, Qwen2, Qwen3, Phi-3, SmolLM, Gemma 2/3), read from
 * a Hugging Face `config.json` or from GGUF metadata, with RoPE frequencies as transformers computes
 * them (`default`, `linear` and `llama3` rope_scaling).
 */
import { PeftError } from '../errors';
import { preview } from '../validate';

/** RoPE scaling as in config.json's `rope_scaling`. */
export type RopeScaling =
  | { type: 'linear'; factor: number }
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositionEmbeddings: number }
  /** Explicit per-frequency multipliers of the inverse frequencies, [headDim / 2] (a GGUF file's rope_freqs tensor, inverted). */
  | { type: 'factors'; factors: number[] };

/**
 * A decoder's configuration: the Llama family, or GPT-2 (learned positions, LayerNorm with
 * `layerNormEps`, GELU; `numKvHeads` = `numHeads`, the RoPE fields unused, the head tied).
 */
export interface LlamaConfig {
  architecture: 'llama' | 'gpt2' | 'bert';
  /** config.json's model_type: 'llama', 'mistral', 'qwen2', ... */
  modelType: string;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling?: RopeScaling;
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
  /** q/k/v projections have biases (Qwen2). */
  attentionBias: boolean;
  /** Each query and key head is RMS-normalized before RoPE (Qwen3's q_norm / k_norm). */
  qkNorm?: boolean;
  /** Mistral's sliding window: a query attends to the last this many positions only. Absent: all. */
  slidingWindow?: number;
  /** Phi-3: q/k/v are one projection (self_attn.qkv_proj) and so are the MLP's gate and up (mlp.gate_up_proj). */
  fusedProjections?: boolean;
  /** Mixtral: a mixture of numExperts SwiGLU experts in place of the MLP, numExpertsPerTok per token. */
  numExperts?: number;
  numExpertsPerTok?: number;
  /** Gemma: scores scale by queryPreAttnScalar^-½ (instead of headDim^-½). */
  queryPreAttnScalar?: number;
  /** Gemma 2: attention scores and final logits soft-capped at these (cap · tanh(x / cap)). */
  attnLogitSoftcapping?: number;
  finalLogitSoftcapping?: number;
  /** Gemma 2/3: which layers use the sliding window (the others attend to everything), [numLayers]. */
  slidingLayers?: boolean[];
  /** Gemma 3: RoPE base of the sliding-window layers (rope_local_base_freq), unscaled. */
  ropeLocalTheta?: number;
  mlpBias: boolean;
  bosTokenId?: number;
  eosTokenId?: number | number[];
  /** GPT-2, BERT: LayerNorm epsilon. */
  layerNormEps?: number;
  /** BERT: token types (segments). */
  typeVocabSize?: number;
  /** BERT sequence classification: classes (1 = regression). */
  numLabels?: number;
  /** BERT: class names by id, from id2label. */
  id2label?: Record<number, string>;
}

/** A BERT encoder with a sequence-classification head (BertForSequenceClassification). */
function bertConfigFromHf(json: Record<string, unknown>, source: string): LlamaConfig {
  const act = json.hidden_act ?? 'gelu';
  if (act !== 'gelu') bad(source, 'hidden_act', '"gelu"', act);
  const hiddenSize = positiveInt(source, json, 'hidden_size', undefined, LIMITS.width);
  const numHeads = positiveInt(source, json, 'num_attention_heads', undefined, LIMITS.heads);
  if (hiddenSize % numHeads !== 0) bad(source, 'num_attention_heads', `a divisor of hidden_size (${hiddenSize})`, numHeads);
  const id2label = typeof json.id2label === 'object' && json.id2label !== null && !Array.isArray(json.id2label)
    ? (json.id2label as Record<number, string>) : undefined;
  const numLabels = json.num_labels !== undefined ? positiveInt(source, json, 'num_labels', undefined, 1 << 20)
    : id2label ? Object.keys(id2label).length : 2;
  return {
    architecture: 'bert',
    modelType: 'bert',
    hiddenSize,
    intermediateSize: positiveInt(source, json, 'intermediate_size', undefined, LIMITS.width),
    numLayers: positiveInt(source, json, 'num_hidden_layers', undefined, LIMITS.layers),
    numHeads,
    numKvHeads: numHeads,
    headDim: hiddenSize / numHeads,
    vocabSize: positiveInt(source, json, 'vocab_size', undefined, LIMITS.vocab),
    rmsNormEps: 0,
    layerNormEps: positiveNumber(source, json, 'layer_norm_eps', 1e-12),
    ropeTheta: 0,
    maxPositionEmbeddings: positiveInt(source, json, 'max_position_embeddings', 512, 1 << 20),
    typeVocabSize: positiveInt(source, json, 'type_vocab_size', 2, 1 << 16),
    numLabels,
    id2label,
    tieWordEmbeddings: false,
    attentionBias: true,
    mlpBias: true,
  };
}

/** Any decoder configuration this library runs. */
export type ModelConfig = LlamaConfig;

/** GPT-2 from config.json (n_embd, n_layer, n_head, n_inner, n_positions, layer_norm_epsilon). */
function gpt2ConfigFromHf(json: Record<string, unknown>, source: string): LlamaConfig {
  const act = json.activation_function ?? 'gelu_new';
  if (act !== 'gelu_new' && act !== 'gelu_pytorch_tanh') bad(source, 'activation_function', '"gelu_new" (GELU, tanh approximation)', act);
  const hiddenSize = positiveInt(source, json, 'n_embd', undefined, LIMITS.width);
  const numHeads = positiveInt(source, json, 'n_head', undefined, LIMITS.heads);
  if (hiddenSize % numHeads !== 0) bad(source, 'n_head', `a divisor of n_embd (${hiddenSize})`, numHeads);
  return {
    architecture: 'gpt2',
    modelType: 'gpt2',
    hiddenSize,
    intermediateSize: json.n_inner === null || json.n_inner === undefined ? 4 * hiddenSize : positiveInt(source, json, 'n_inner', undefined, LIMITS.width),
    numLayers: positiveInt(source, json, 'n_layer', undefined, LIMITS.layers),
    numHeads,
    numKvHeads: numHeads,
    headDim: hiddenSize / numHeads,
    vocabSize: positiveInt(source, json, 'vocab_size', undefined, LIMITS.vocab),
    rmsNormEps: 0,
    layerNormEps: positiveNumber(source, json, 'layer_norm_epsilon', 1e-5),
    ropeTheta: 0,
    maxPositionEmbeddings: positiveInt(source, json, 'n_positions', 1024, 1 << 20),
    tieWordEmbeddings: true,
    attentionBias: true,
    mlpBias: true,
    bosTokenId: typeof json.bos_token_id === 'number' ? json.bos_token_id : undefined,
    eosTokenId: typeof json.eos_token_id === 'number' ? json.eos_token_id : undefined,
  };
}

const LLAMA_TYPES = ['llama', 'mistral', 'mixtral', 'qwen2', 'qwen3', 'phi3', 'smollm'];

function bad(source: string, field: string, expectation: string, value: unknown): never {
  throw new PeftError(`Expected ${expectation} for ${field} in ${source} but received ${preview(value)}`, 'E_CONFIG');
}

/**
 * Upper bounds far above any published model (the largest have ~128 layers, width 16384, 256k
 * tokens), so that a corrupt size is refused here rather than sizing loops and buffers.
 */
const LIMITS = { layers: 1 << 12, width: 1 << 20, heads: 1 << 12, vocab: 1 << 24, positions: 2 ** 31 - 1 };

function positiveInt(source: string, obj: Record<string, unknown>, field: string, fallback?: number, max = LIMITS.positions): number {
  const v = obj[field] ?? fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) bad(source, field, 'a positive integer', v);
  if (v > max) bad(source, field, `at most ${max} (larger than any known model)`, v);
  return v;
}

function positiveNumber(source: string, obj: Record<string, unknown>, field: string, fallback?: number): number {
  const v = obj[field] ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) bad(source, field, 'a positive number', v);
  return v;
}

function ropeScalingFrom(source: string, raw: unknown): RopeScaling | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (typeof raw !== 'object') bad(source, 'rope_scaling', 'an object', raw);
  const r = raw as Record<string, unknown>;
  const type = r.rope_type ?? r.type;
  if (type === 'default') return undefined;
  const factor = positiveNumber(source, r, 'factor');
  if (type === 'linear') return { type, factor };
  if (type === 'llama3') {
    return {
      type,
      factor,
      lowFreqFactor: positiveNumber(source, r, 'low_freq_factor'),
      highFreqFactor: positiveNumber(source, r, 'high_freq_factor'),
      originalMaxPositionEmbeddings: positiveInt(source, r, 'original_max_position_embeddings'),
    };
  }
  throw new PeftError(`rope_scaling type ${preview(type)} in ${source} is not supported (default, linear and llama3 are)`, 'E_UNSUPPORTED');
}

function checkHeads(source: string, c: LlamaConfig): LlamaConfig {
  if (c.numHeads % c.numKvHeads !== 0) bad(source, 'num_key_value_heads', `a divisor of num_attention_heads (${c.numHeads})`, c.numKvHeads);
  if (c.headDim % 2 !== 0) bad(source, 'head_dim', 'an even number (RoPE rotates pairs)', c.headDim);
  if (c.numHeads * c.headDim > LIMITS.width) bad(source, 'head_dim', `at most ${LIMITS.width} / num_attention_heads (${c.numHeads})`, c.headDim);
  return c;
}

/**
 * The sliding window of a config.json: Mistral's, Mixtral's and Phi-3's `sliding_window` (null or absent: none). Qwen2 and
 * Qwen3 apply theirs only with `use_sliding_window`, and then to the layers past `max_window_layers`
 * alone: refused. Other Llama types have none.
 */
function slidingWindowFrom(source: string, json: Record<string, unknown>, modelType: string): number | undefined {
  if (modelType === 'mistral' || modelType === 'mixtral' || modelType === 'phi3') {
    return json.sliding_window === null || json.sliding_window === undefined ? undefined : positiveInt(source, json, 'sliding_window', undefined, 1 << 30);
  }
  if ((modelType === 'qwen2' || modelType === 'qwen3') && json.use_sliding_window === true) {
    throw new PeftError(`use_sliding_window true in ${source} is not supported (per-layer windows past max_window_layers)`, 'E_UNSUPPORTED');
  }
  return undefined;
}

/** The sizes, norm epsilon, RoPE and special tokens every Llama-layout config.json names alike. */
function decoderSizes(source: string, json: Record<string, unknown>, maxPositionsDefault: number) {
  const hiddenSize = positiveInt(source, json, 'hidden_size', undefined, LIMITS.width);
  const numHeads = positiveInt(source, json, 'num_attention_heads', undefined, LIMITS.heads);
  return {
    hiddenSize,
    intermediateSize: positiveInt(source, json, 'intermediate_size', undefined, LIMITS.width),
    numLayers: positiveInt(source, json, 'num_hidden_layers', undefined, LIMITS.layers),
    numHeads,
    numKvHeads: positiveInt(source, json, 'num_key_value_heads', numHeads, LIMITS.heads),
    headDim: positiveInt(source, json, 'head_dim', hiddenSize / numHeads, LIMITS.width),
    vocabSize: positiveInt(source, json, 'vocab_size', undefined, LIMITS.vocab),
    rmsNormEps: positiveNumber(source, json, 'rms_norm_eps', 1e-6),
    ropeTheta: positiveNumber(source, json, 'rope_theta', 10000),
    ropeScaling: ropeScalingFrom(source, json.rope_scaling),
    maxPositionEmbeddings: positiveInt(source, json, 'max_position_embeddings', maxPositionsDefault),
    bosTokenId: typeof json.bos_token_id === 'number' ? json.bos_token_id : undefined,
    eosTokenId: typeof json.eos_token_id === 'number' || Array.isArray(json.eos_token_id) ? (json.eos_token_id as number | number[]) : undefined,
  };
}

/**
 * Gemma 2 / Gemma 3 (text): the Llama fields, GeGLU (tanh-GELU), query_pre_attn_scalar, the soft-caps
 * (Gemma 2), the sliding-window layers (`layer_types`, else every other layer for Gemma 2 and all but
 * every `sliding_window_pattern`-th for Gemma 3) and Gemma 3's local RoPE base.
 */
function gemmaConfigFromHf(json: Record<string, unknown>, source: string, modelType: 'gemma2' | 'gemma3_text'): LlamaConfig {
  const act = json.hidden_activation ?? json.hidden_act ?? 'gelu_pytorch_tanh';
  if (act !== 'gelu_pytorch_tanh') bad(source, 'hidden_activation', '"gelu_pytorch_tanh"', act);
  const sizes = decoderSizes(source, json, 8192);
  const numLayers = sizes.numLayers;
  const optionalNumber = (field: string) => (json[field] === null || json[field] === undefined ? undefined : positiveNumber(source, json, field));
  let slidingLayers: boolean[];
  if (json.layer_types !== undefined) {
    const types = json.layer_types;
    if (!Array.isArray(types) || types.length !== numLayers || types.some((t) => t !== 'sliding_attention' && t !== 'full_attention')) {
      bad(source, 'layer_types', `${numLayers} entries of "sliding_attention" or "full_attention"`, types);
    }
    slidingLayers = (types as string[]).map((t) => t === 'sliding_attention');
  } else if (modelType === 'gemma2') {
    slidingLayers = Array.from({ length: numLayers }, (_, l) => l % 2 === 0);
  } else {
    const pattern = positiveInt(source, json, 'sliding_window_pattern', 6, LIMITS.layers);
    slidingLayers = Array.from({ length: numLayers }, (_, l) => (l + 1) % pattern !== 0);
  }
  const window = json.sliding_window === null || json.sliding_window === undefined ? undefined : positiveInt(source, json, 'sliding_window', undefined, 1 << 30);
  return checkHeads(source, {
    architecture: 'llama',
    modelType,
    ...sizes,
    tieWordEmbeddings: json.tie_word_embeddings !== false,
    attentionBias: json.attention_bias === true,
    mlpBias: false,
    qkNorm: modelType === 'gemma3_text',
    slidingWindow: window,
    fusedProjections: false,
    queryPreAttnScalar: optionalNumber('query_pre_attn_scalar'),
    attnLogitSoftcapping: optionalNumber('attn_logit_softcapping'),
    finalLogitSoftcapping: optionalNumber('final_logit_softcapping'),
    slidingLayers,
    ropeLocalTheta: modelType === 'gemma3_text' ? positiveNumber(source, json, 'rope_local_base_freq', 10000) : undefined,
  });
}

/** Mixtral's experts: num_local_experts and num_experts_per_tok (the router's top k). */
function expertsFrom(source: string, json: Record<string, unknown>, modelType: string): Pick<LlamaConfig, 'numExperts' | 'numExpertsPerTok'> {
  if (modelType !== 'mixtral') return {};
  const numExperts = positiveInt(source, json, 'num_local_experts', 8, 1024);
  const numExpertsPerTok = positiveInt(source, json, 'num_experts_per_tok', 2, numExperts);
  if (json.router_jitter_noise !== undefined && json.router_jitter_noise !== 0) {
    throw new PeftError(`router_jitter_noise ${preview(json.router_jitter_noise)} in ${source} is not supported (0 is)`, 'E_UNSUPPORTED');
  }
  return { numExperts, numExpertsPerTok };
}

/** A Llama-family config from a Hugging Face config.json object. */
export function configFromHf(json: Record<string, unknown>, source = 'config.json'): LlamaConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new PeftError(`Expected a JSON object in ${source} but received ${preview(json)}`, 'E_FORMAT');
  }
  const modelType = json.model_type;
  if (modelType === 'gpt2') return gpt2ConfigFromHf(json, source);
  if (modelType === 'gemma2' || modelType === 'gemma3_text') return gemmaConfigFromHf(json, source, modelType);
  if (modelType === 'gemma3') {
    throw new PeftError(`model_type gemma3 in ${source} is the multimodal Gemma 3; load a text-only checkpoint (model_type gemma3_text)`, 'E_UNSUPPORTED');
  }
  if (modelType === 'bert') return bertConfigFromHf(json, source);
  if (typeof modelType !== 'string' || !LLAMA_TYPES.includes(modelType)) {
    throw new PeftError(
      `Expected a model_type of ${[...LLAMA_TYPES, 'gemma2', 'gemma3_text', 'gpt2', 'bert'].join(', ')} in ${source} but received ${preview(modelType)}`,
      'E_UNSUPPORTED',
    );
  }
  if (json.hidden_act !== undefined && json.hidden_act !== 'silu') bad(source, 'hidden_act', '"silu"', json.hidden_act);
  if (json.partial_rotary_factor !== undefined && json.partial_rotary_factor !== 1) {
    throw new PeftError(`partial_rotary_factor ${preview(json.partial_rotary_factor)} in ${source} is not supported (RoPE over the whole head only)`, 'E_UNSUPPORTED');
  }
  return checkHeads(source, {
    architecture: 'llama',
    modelType,
    ...decoderSizes(source, json, 2048),
    tieWordEmbeddings: json.tie_word_embeddings === true,
    attentionBias: json.attention_bias === true || modelType === 'qwen2',
    mlpBias: json.mlp_bias === true,
    qkNorm: modelType === 'qwen3',
    slidingWindow: slidingWindowFrom(source, json, modelType),
    fusedProjections: modelType === 'phi3',
    ...expertsFrom(source, json, modelType),
  });
}

/** Mixtral in a GGUF file (a llama-architecture file with expert_count and expert_used_count). */
function expertsFromGguf(source: string, num: (key: string) => unknown): Pick<LlamaConfig, 'numExperts' | 'numExpertsPerTok'> {
  const count = num('expert_count');
  if (count === undefined || count === 0) return {};
  const numExperts = positiveInt(source, { expert_count: count }, 'expert_count', undefined, 1024);
  return { numExperts, numExpertsPerTok: positiveInt(source, { expert_used_count: num('expert_used_count') }, 'expert_used_count', undefined, numExperts) };
}

/**
 * Gemma 2's fields in a GGUF file as llama.cpp reads them (src/models/gemma2.cpp): the soft-caps, the
 * window (4096 when the file has none) on all but every `attention.sliding_window_pattern`-th layer
 * (default 2: every other layer), and queries scaled by head_dim^-½ except at 46 layers (27B), where
 * llama.cpp, like the published config's query_pre_attn_scalar, uses (hidden / heads)^-½.
 */
function gemma2FromGguf(source: string, num: (key: string) => unknown, sizes: { layers: number; hidden: number; heads: number; headDim: number }): Partial<LlamaConfig> {
  const optional = (key: string) => {
    const v = num(key);
    return v === undefined || v === 0 ? undefined : positiveNumber(source, { [key]: v }, key);
  };
  const rawPattern = num('attention.sliding_window_pattern');
  const pattern = rawPattern === undefined || Array.isArray(rawPattern) ? 2 : nonNegativeInt(source, 'gemma2.attention.sliding_window_pattern', rawPattern);
  const window = num('attention.sliding_window');
  return {
    attnLogitSoftcapping: optional('attn_logit_softcapping'),
    finalLogitSoftcapping: optional('final_logit_softcapping'),
    slidingWindow: window ? positiveInt(source, { sliding_window: window }, 'sliding_window', undefined, 1 << 30) : 4096,
    slidingLayers: Array.from({ length: sizes.layers }, (_, l) => pattern === 0 || l % pattern < pattern - 1),
    queryPreAttnScalar: sizes.layers === 46 ? sizes.hidden / sizes.heads : sizes.headDim,
  };
}

/**
 * Gemma 3's fields in a `gemma3` GGUF file as llama.cpp reads them (src/models/gemma3.cpp), under
 * the names the HF gemma3_text path gives them. The window (attention.sliding_window; absent or 0:
 * none, every layer global) falls on all but every `attention.sliding_window_pattern`-th layer
 * (default 6, as transformers' sliding_window_pattern; llama.cpp takes it only as a scalar and
 * falls back to 6 for an array, and so do we). Those layers use rope.freq_base_swa (default 10000)
 * without rope.scaling, which applies to the global layers only. Queries scale by head_dim^-½ except
 * at 62 layers (27B), where llama.cpp, like the published config, uses (hidden / heads)^-½: set
 * explicitly so the config equals the HF one. No attention soft-cap; the final one is optional.
 */
function gemma3FromGguf(source: string, num: (key: string) => unknown, sizes: { layers: number; hidden: number; heads: number; headDim: number; window: boolean }): Partial<LlamaConfig> {
  const optional = (key: string) => {
    const v = num(key);
    return v === undefined || v === 0 ? undefined : positiveNumber(source, { [key]: v }, key);
  };
  const rawPattern = num('attention.sliding_window_pattern');
  const pattern = rawPattern === undefined || Array.isArray(rawPattern) ? 6 : nonNegativeInt(source, 'gemma3.attention.sliding_window_pattern', rawPattern);
  // llama_hparams::set_swa_pattern: layer l slides when l % pattern < pattern − 1 (pattern 0: all do).
  const slides = (l: number) => sizes.window && (pattern === 0 || l % pattern < pattern - 1);
  return {
    slidingLayers: Array.from({ length: sizes.layers }, (_, l) => slides(l)),
    ropeLocalTheta: optional('rope.freq_base_swa') ?? 10000,
    queryPreAttnScalar: sizes.layers === 62 ? sizes.hidden / sizes.heads : sizes.headDim,
    finalLogitSoftcapping: optional('final_logit_softcapping'),
  };
}

function nonNegativeInt(source: string, field: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) bad(source, field, 'a non-negative integer', v);
  return v;
}

/**
 * A Llama-family config from GGUF metadata (`general.architecture` and `<arch>.*` keys). The vocabulary
 * size comes from the embedded token list; `hasOutputWeight` says whether the file has a separate
 * output head (otherwise it is tied to the embeddings).
 */
export function configFromGguf(metadata: Record<string, unknown>, hasOutputWeight: boolean, source = 'the GGUF file'): LlamaConfig {
  const arch = metadata['general.architecture'];
  if (typeof arch !== 'string' || !['llama', 'mistral', 'qwen2', 'qwen3', 'phi3', 'gemma2', 'gemma3'].includes(arch)) {
    throw new PeftError(`Expected general.architecture llama, mistral, qwen2, qwen3, phi3, gemma2 or gemma3 in ${source} but received ${preview(arch)}`, 'E_UNSUPPORTED');
  }
  const num = (key: string) => {
    const v = metadata[`${arch}.${key}`];
    return typeof v === 'bigint' ? Number(v) : v;
  };
  const tokens = metadata['tokenizer.ggml.tokens'];
  if (!Array.isArray(tokens)) bad(source, 'tokenizer.ggml.tokens', 'the vocabulary array', tokens);
  const get: Record<string, unknown> = {
    hidden_size: num('embedding_length'),
    intermediate_size: num('feed_forward_length'),
    num_hidden_layers: num('block_count'),
    num_attention_heads: num('attention.head_count'),
    num_key_value_heads: num('attention.head_count_kv') ?? num('attention.head_count'),
    rms_norm_eps: num('attention.layer_norm_rms_epsilon'),
    rope_theta: num('rope.freq_base') ?? 10000,
    max_position_embeddings: num('context_length'),
    head_dim: num('attention.key_length'),
    vocab_size: tokens.length,
  };
  const hiddenSize = positiveInt(source, get, 'hidden_size', undefined, LIMITS.width);
  const numHeads = positiveInt(source, get, 'num_attention_heads', undefined, LIMITS.heads);
  const numLayers = positiveInt(source, get, 'num_hidden_layers', undefined, LIMITS.layers);
  const headDim = positiveInt(source, get, 'head_dim', hiddenSize / numHeads, LIMITS.width);
  const window = num('attention.sliding_window');
  const scalingType = metadata[`${arch}.rope.scaling.type`];
  const scalingFactor = num('rope.scaling.factor');
  const bos = num('tokenizer.ggml.bos_token_id') ?? metadata['tokenizer.ggml.bos_token_id'];
  const eos = metadata['tokenizer.ggml.eos_token_id'];
  return checkHeads(source, {
    architecture: 'llama',
    // The native side picks Gemma 3's spec by the HF name (a gemma3 GGUF holds the text model only).
    modelType: arch === 'gemma3' ? 'gemma3_text' : arch,
    hiddenSize,
    intermediateSize: positiveInt(source, get, 'intermediate_size', undefined, LIMITS.width),
    numLayers,
    numHeads,
    numKvHeads: positiveInt(source, get, 'num_key_value_heads', undefined, LIMITS.heads),
    headDim,
    vocabSize: positiveInt(source, get, 'vocab_size', undefined, LIMITS.vocab),
    rmsNormEps: positiveNumber(source, get, 'rms_norm_eps'),
    ropeTheta: positiveNumber(source, get, 'rope_theta'),
    // As llama.cpp: a missing or zero factor means no scaling.
    ropeScaling: scalingType === 'linear' && scalingFactor !== undefined && scalingFactor !== 0
      ? { type: 'linear', factor: positiveNumber(source, { [`${arch}.rope.scaling.factor`]: scalingFactor }, `${arch}.rope.scaling.factor`) }
      : undefined,
    maxPositionEmbeddings: positiveInt(source, get, 'max_position_embeddings', 2048),
    tieWordEmbeddings: !hasOutputWeight,
    attentionBias: arch === 'qwen2',
    mlpBias: false,
    qkNorm: arch === 'qwen3' || arch === 'gemma3',
    // llama.cpp's llama-architecture files carry none; phi3 and gemma3 files may.
    slidingWindow: window ? positiveInt(source, { sliding_window: window }, 'sliding_window', undefined, 1 << 30) : undefined,
    fusedProjections: arch === 'phi3',
    ...expertsFromGguf(source, num),
    ...(arch === 'gemma2' ? gemma2FromGguf(source, num, { layers: numLayers, hidden: hiddenSize, heads: numHeads, headDim }) : {}),
    ...(arch === 'gemma3' ? gemma3FromGguf(source, num, { layers: numLayers, hidden: hiddenSize, heads: numHeads, headDim, window: Boolean(window) }) : {}),
    bosTokenId: typeof bos === 'number' ? bos : typeof bos === 'bigint' ? Number(bos) : undefined,
    eosTokenId: typeof eos === 'number' ? eos : typeof eos === 'bigint' ? Number(eos) : undefined,
  });
}

/**
 * The per-frequency factors that rope_scaling applies to RoPE's inverse frequencies, [headDim / 2]:
 * 1/factor for `linear`; for `llama3`, 1 in the high-frequency band, 1/factor in the low one and a
 * smooth blend between (transformers' _compute_llama3_parameters). All 1 without scaling.
 */
export function ropeScalingFactors(headDim: number, theta: number, scaling: RopeScaling | undefined): Float32Array {
  const half = headDim / 2;
  const out = new Float32Array(half).fill(1);
  if (scaling?.type === 'linear') return out.fill(1 / scaling.factor);
  if (scaling?.type === 'factors') return Float32Array.from(scaling.factors);
  if (scaling?.type === 'llama3') {
    const lowWavelen = scaling.originalMaxPositionEmbeddings / scaling.lowFreqFactor;
    const highWavelen = scaling.originalMaxPositionEmbeddings / scaling.highFreqFactor;
    for (let i = 0; i < half; i++) {
      const wavelen = 2 * Math.PI * theta ** ((2 * i) / headDim); // 2π / inv_freq
      if (wavelen > lowWavelen) {
        out[i] = 1 / scaling.factor;
      } else if (wavelen >= highWavelen) {
        const smooth = (scaling.originalMaxPositionEmbeddings / wavelen - scaling.lowFreqFactor) / (scaling.highFreqFactor - scaling.lowFreqFactor);
        out[i] = (1 - smooth) / scaling.factor + smooth;
      }
    }
  }
  return out;
}

/** RoPE inverse frequencies, [headDim / 2]: 1 / θ^(2i/d) times {@link ropeScalingFactors}. */
export function ropeInverseFrequencies(config: Pick<LlamaConfig, 'headDim' | 'ropeTheta' | 'ropeScaling'>): Float32Array {
  const factors = ropeScalingFactors(config.headDim, config.ropeTheta, config.ropeScaling);
  return factors.map((f, i) => f / config.ropeTheta ** ((2 * i) / config.headDim));
}
