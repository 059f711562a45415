/**
 * PEFT method configurations with Hugging Face PEFT's field names and defaults, validated with one
 * message format. `normalizeConfig` fills defaults, checks every field, and warns about keys it
 * does not know (as PEFT does when a newer adapter_config.json is read by an older version).
 */
import { PeftError } from '../errors';
import { describe, preview } from '../validate';
import { MAX_PATTERN_LENGTH, patternProblem } from './patterns';

export type PeftType = 'LORA' | 'IA3' | 'PROMPT_TUNING' | 'PREFIX_TUNING' | 'P_TUNING' | 'LN_TUNING' | 'BITFIT' | 'BOTTLENECK';
export type TaskType = 'CAUSAL_LM' | 'SEQ_CLS' | 'SEQ_2_SEQ_LM' | 'TOKEN_CLS' | 'QUESTION_ANS' | 'FEATURE_EXTRACTION';
/** A list of names (exact or name suffixes), a regular expression (full match), or 'all-linear'. */
export type TargetModules = string[] | string;

interface BaseConfig {
  peft_type: PeftType;
  task_type?: TaskType | null;
  base_model_name_or_path?: string | null;
  revision?: string | null;
  inference_mode?: boolean;
  /** Modules (by name or suffix) trained in full and saved with the adapter, e.g. ['lm_head']. */
  modules_to_save?: string[] | null;
}

export interface LoraConfig extends BaseConfig {
  peft_type: 'LORA';
  r?: number;
  lora_alpha?: number;
  lora_dropout?: number;
  target_modules?: TargetModules | null;
  exclude_modules?: TargetModules | null;
  bias?: 'none' | 'all' | 'lora_only';
  use_rslora?: boolean;
  use_dora?: boolean;
  fan_in_fan_out?: boolean;
  init_lora_weights?: boolean | 'gaussian' | 'pissa' | 'olora';
  layers_to_transform?: number[] | number | null;
  layers_pattern?: string[] | string | null;
  rank_pattern?: Record<string, number>;
  alpha_pattern?: Record<string, number>;
  /**
   * Fused expert parameters to adapt (PEFT ≥ 0.17's ParamWrapper): full names or suffixes of
   * model.layers.N.mlp.experts.gate_up_proj / .down_proj. With these and no target_modules, no
   * module is targeted besides them.
   */
  target_parameters?: string[] | null;
}

export interface IA3Config extends BaseConfig {
  peft_type: 'IA3';
  target_modules?: TargetModules | null;
  exclude_modules?: TargetModules | null;
  feedforward_modules?: TargetModules | null;
  fan_in_fan_out?: boolean;
  init_ia3_weights?: boolean;
}

export interface PromptTuningConfig extends BaseConfig {
  peft_type: 'PROMPT_TUNING';
  num_virtual_tokens: number;
  token_dim?: number | null;
  num_transformer_submodules?: number | null;
  num_attention_heads?: number | null;
  num_layers?: number | null;
  prompt_tuning_init?: 'RANDOM' | 'TEXT' | 'SAMPLE_VOCAB';
  prompt_tuning_init_text?: string | null;
  tokenizer_name_or_path?: string | null;
}

/** Prefix tuning: learned keys and values prepended in every layer's attention. */
export interface PrefixTuningConfig extends BaseConfig {
  peft_type: 'PREFIX_TUNING';
  num_virtual_tokens: number;
  /** Train them through embedding → Linear → tanh → Linear (default false: train them directly). */
  prefix_projection?: boolean;
  /** Width of the projection's hidden layer (default: the model's hidden size). */
  encoder_hidden_size?: number | null;
  token_dim?: number | null;
  num_layers?: number | null;
  num_attention_heads?: number | null;
  num_transformer_submodules?: number | null;
}

/** P-tuning: virtual tokens produced by a small prompt encoder (an MLP). */
export interface PromptEncoderConfig extends BaseConfig {
  peft_type: 'P_TUNING';
  num_virtual_tokens: number;
  encoder_reparameterization_type?: 'MLP' | 'LSTM';
  /** Default: the model's hidden size. */
  encoder_hidden_size?: number | null;
  encoder_num_layers?: number;
  encoder_dropout?: number;
  token_dim?: number | null;
  num_layers?: number | null;
  num_attention_heads?: number | null;
  num_transformer_submodules?: number | null;
}

/** LayerNorm tuning: only the weights of the targeted norm layers train. */
export interface LNTuningConfig extends BaseConfig {
  peft_type: 'LN_TUNING';
  target_modules?: TargetModules | null;
  exclude_modules?: TargetModules | null;
}

/** BitFit (Ben Zaken et al. 2021): only bias terms train. Not a Hugging Face PEFT type. */
export interface BitFitConfig extends BaseConfig {
  peft_type: 'BITFIT';
  target_modules?: TargetModules | null;
}

/**
 * Bottleneck adapters (not a Hugging Face PEFT type; AdapterHub's names): Houlsby places one after
 * the attention and one after the MLP of every layer, Pfeiffer one after the MLP. Sequential adapters
 * read the sublayer's output, parallel ones (He et al. 2022) its input. delta = scaling ·
 * up(act(down(x))); `up` starts at zero so the model starts unchanged.
 */
export interface BottleneckConfig extends BaseConfig {
  peft_type: 'BOTTLENECK';
  bottleneck_type?: 'houlsby' | 'pfeiffer';
  /** hidden / reduction_factor is the bottleneck width (default 16). */
  reduction_factor?: number;
  /** Default 'swish' for Houlsby, 'relu' for Pfeiffer, as AdapterHub. */
  non_linearity?: 'relu' | 'gelu' | 'swish' | 'tanh';
  mode?: 'sequential' | 'parallel';
  scaling?: number;
  layers_to_transform?: number[] | number | null;
}

export type PeftConfig = LoraConfig | IA3Config | PromptTuningConfig | PrefixTuningConfig | PromptEncoderConfig | LNTuningConfig | BitFitConfig | BottleneckConfig;

const COMMON_KEYS = ['peft_type', 'task_type', 'base_model_name_or_path', 'revision', 'inference_mode', 'modules_to_save', 'auto_mapping'];
// Keys PEFT writes that change nothing here at their default values.
const INERT_KEYS = [
  'layer_replication', 'loftq_config', 'megatron_config', 'megatron_core', 'lora_bias', 'eva_config', 'corda_config',
  'trainable_token_indices', 'use_qalora', 'qalora_group_size', 'runtime_config', 'alora_invocation_tokens',
  'arrow_config', 'ensure_weight_tying', 'peft_version', 'tokenizer_kwargs', 'layers_pattern_is_regex',
];
const KEYS: Record<PeftType, string[]> = {
  LORA: ['r', 'lora_alpha', 'lora_dropout', 'target_modules', 'exclude_modules', 'bias', 'use_rslora', 'use_dora', 'fan_in_fan_out',
    'init_lora_weights', 'layers_to_transform', 'layers_pattern', 'rank_pattern', 'alpha_pattern', 'target_parameters'],
  IA3: ['target_modules', 'exclude_modules', 'feedforward_modules', 'fan_in_fan_out', 'init_ia3_weights'],
  PROMPT_TUNING: ['num_virtual_tokens', 'token_dim', 'num_transformer_submodules', 'num_attention_heads', 'num_layers',
    'prompt_tuning_init', 'prompt_tuning_init_text', 'tokenizer_name_or_path'],
  PREFIX_TUNING: ['num_virtual_tokens', 'prefix_projection', 'encoder_hidden_size', 'token_dim', 'num_layers', 'num_attention_heads',
    'num_transformer_submodules'],
  P_TUNING: ['num_virtual_tokens', 'encoder_reparameterization_type', 'encoder_hidden_size', 'encoder_num_layers', 'encoder_dropout',
    'token_dim', 'num_layers', 'num_attention_heads', 'num_transformer_submodules'],
  LN_TUNING: ['target_modules', 'exclude_modules'],
  BITFIT: ['target_modules'],
  BOTTLENECK: ['bottleneck_type', 'reduction_factor', 'non_linearity', 'mode', 'scaling', 'layers_to_transform'],
};

function bad(field: string, expected: string, value: unknown): never {
  throw new PeftError(`Expected ${expected} for ${field} but received ${describe(value)}`, 'E_CONFIG');
}

function integer(c: Record<string, unknown>, key: string, fallback: number, min: number): number {
  const v = c[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) bad(key, `an integer ≥ ${min}`, c[key]);
  return v;
}

function number(c: Record<string, unknown>, key: string, fallback: number, check: (v: number) => boolean, expected: string): number {
  const v = c[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || !check(v)) bad(key, expected, v);
  return v;
}

function boolean(c: Record<string, unknown>, key: string, fallback: boolean): boolean {
  const v = c[key] ?? fallback;
  if (typeof v !== 'boolean') bad(key, 'a boolean', v);
  return v;
}

function parameterNames(c: Record<string, unknown>, key: string): string[] | null {
  const v = c[key];
  if (v === undefined || v === null) return null;
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string' || !x)) bad(key, 'a list of parameter names', v);
  return [...(v as string[])];
}

function targets(c: Record<string, unknown>, key: string): TargetModules | null {
  const v = c[key];
  if (v === undefined || v === null) return null;
  if (typeof v === 'string') {
    if (v !== 'all-linear') {
      const problem = patternProblem(v, (p) => `^(?:${p})$`);
      if (problem) bad(key, problem, v);
    }
    return v;
  }
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string' || !x)) bad(key, 'a list of module names, a regular expression or "all-linear"', v);
  return [...(v as string[])];
}

function stringList(c: Record<string, unknown>, key: string): string[] | null {
  const v = c[key];
  if (v === undefined || v === null) return null;
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string' || !x)) bad(key, 'a list of module names', v);
  return [...(v as string[])];
}

function patternMap(c: Record<string, unknown>, key: string, check: (v: number) => boolean, expected: string): Record<string, number> {
  const v = c[key] ?? {};
  if (typeof v !== 'object' || v === null || Array.isArray(v)) bad(key, 'an object of pattern → number', v);
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    const problem = patternProblem(k, (p) => `(?:^|\\.)(?:${p})$`);
    if (problem) bad(`the key ${preview(k, 40)} of ${key}`, problem, k);
    if (typeof x !== 'number' || !check(x)) bad(`${key}[${preview(k, 40)}]`, expected, x);
  }
  return { ...(v as Record<string, number>) };
}

function oneOf<T extends string | boolean>(c: Record<string, unknown>, key: string, allowed: readonly T[], fallback: T): T {
  const v = (c[key] ?? fallback) as T;
  if (!allowed.includes(v)) bad(key, `one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}`, v);
  return v;
}

/** Fills PEFT's defaults and validates; `warn` receives one message per unknown key. */
export function normalizeConfig(config: unknown, warn: (message: string) => void = (m) => process.emitWarning(m)): PeftConfig {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) bad('config', 'a PEFT config object', config);
  const c = config as Record<string, unknown>;
  const type = c.peft_type;
  // An own key only: 'constructor' or 'toString' are in every object.
  if (typeof type !== 'string' || !Object.prototype.hasOwnProperty.call(KEYS, type)) bad('peft_type', `one of ${Object.keys(KEYS).join(', ')}`, type);
  const peftType = type as PeftType;
  const known = new Set([...COMMON_KEYS, ...INERT_KEYS, ...KEYS[peftType]]);
  for (const key of Object.keys(c)) if (!known.has(key)) warn(`Unknown key ${key} in the ${peftType} config is ignored`);
  const base = {
    task_type: (c.task_type ?? null) as TaskType | null,
    base_model_name_or_path: (c.base_model_name_or_path ?? null) as string | null,
    revision: (c.revision ?? null) as string | null,
    inference_mode: boolean(c, 'inference_mode', false),
    modules_to_save: stringList(c, 'modules_to_save'),
  };
  if (base.task_type !== null && !['CAUSAL_LM', 'SEQ_CLS', 'SEQ_2_SEQ_LM', 'TOKEN_CLS', 'QUESTION_ANS', 'FEATURE_EXTRACTION'].includes(base.task_type)) {
    bad('task_type', 'a PEFT task type such as "CAUSAL_LM" or "SEQ_CLS"', base.task_type);
  }
  switch (peftType) {
    case 'LORA': {
      const layers = c.layers_to_transform;
      if (layers !== undefined && layers !== null && !(Number.isInteger(layers) && (layers as number) >= 0) &&
        !(Array.isArray(layers) && layers.every((l) => Number.isInteger(l) && l >= 0))) {
        bad('layers_to_transform', 'a layer index or a list of layer indices', layers);
      }
      const pattern = c.layers_pattern;
      if (pattern !== undefined && pattern !== null && typeof pattern !== 'string' &&
        !(Array.isArray(pattern) && pattern.every((p) => typeof p === 'string'))) bad('layers_pattern', 'a string or a list of strings', pattern);
      // Matched as literal text inside one regular expression, which V8 refuses past a size.
      const long = [pattern].flat().find((p) => typeof p === 'string' && p.length > MAX_PATTERN_LENGTH);
      if (long !== undefined) bad('layers_pattern', `names of at most ${MAX_PATTERN_LENGTH} characters`, long);
      const init = c.init_lora_weights ?? true;
      if (![true, false, 'gaussian', 'pissa', 'olora'].includes(init as string | boolean)) bad('init_lora_weights', 'true, false, "gaussian", "pissa" or "olora"', init);
      return {
        peft_type: 'LORA', ...base,
        r: integer(c, 'r', 8, 1),
        lora_alpha: number(c, 'lora_alpha', 8, (v) => v > 0, 'a positive number'),
        lora_dropout: number(c, 'lora_dropout', 0, (v) => v >= 0 && v < 1, 'a probability in [0, 1)'),
        target_modules: targets(c, 'target_modules'),
        exclude_modules: targets(c, 'exclude_modules'),
        bias: oneOf(c, 'bias', ['none', 'all', 'lora_only'] as const, 'none'),
        use_rslora: boolean(c, 'use_rslora', false),
        use_dora: boolean(c, 'use_dora', false),
        fan_in_fan_out: boolean(c, 'fan_in_fan_out', false),
        init_lora_weights: init as LoraConfig['init_lora_weights'],
        layers_to_transform: (layers ?? null) as number[] | number | null,
        layers_pattern: (pattern ?? null) as string[] | string | null,
        rank_pattern: patternMap(c, 'rank_pattern', (v) => Number.isInteger(v) && v >= 1, 'an integer rank ≥ 1'),
        alpha_pattern: patternMap(c, 'alpha_pattern', (v) => Number.isFinite(v) && v > 0, 'a positive alpha'),
        target_parameters: parameterNames(c, 'target_parameters'),
      };
    }
    case 'IA3':
      return {
        peft_type: 'IA3', ...base,
        target_modules: targets(c, 'target_modules'),
        exclude_modules: targets(c, 'exclude_modules'),
        feedforward_modules: targets(c, 'feedforward_modules'),
        fan_in_fan_out: boolean(c, 'fan_in_fan_out', false),
        init_ia3_weights: boolean(c, 'init_ia3_weights', true),
      };
    case 'PROMPT_TUNING': {
      const init = oneOf(c, 'prompt_tuning_init', ['RANDOM', 'TEXT', 'SAMPLE_VOCAB'] as const, 'RANDOM');
      const text = c.prompt_tuning_init_text ?? null;
      if (init === 'TEXT' && (typeof text !== 'string' || !text)) bad('prompt_tuning_init_text', 'a non-empty text (prompt_tuning_init is "TEXT")', text);
      return {
        peft_type: 'PROMPT_TUNING', ...base,
        num_virtual_tokens: integer(c, 'num_virtual_tokens', Number.NaN, 1),
        token_dim: (c.token_dim ?? null) as number | null,
        num_transformer_submodules: (c.num_transformer_submodules ?? null) as number | null,
        num_attention_heads: (c.num_attention_heads ?? null) as number | null,
        num_layers: (c.num_layers ?? null) as number | null,
        prompt_tuning_init: init,
        prompt_tuning_init_text: text as string | null,
        tokenizer_name_or_path: (c.tokenizer_name_or_path ?? null) as string | null,
      };
    }
    case 'PREFIX_TUNING':
      return {
        peft_type: 'PREFIX_TUNING', ...base,
        num_virtual_tokens: integer(c, 'num_virtual_tokens', Number.NaN, 1),
        prefix_projection: boolean(c, 'prefix_projection', false),
        encoder_hidden_size: c.encoder_hidden_size === undefined || c.encoder_hidden_size === null ? null : integer(c, 'encoder_hidden_size', 1, 1),
        token_dim: (c.token_dim ?? null) as number | null,
        num_layers: (c.num_layers ?? null) as number | null,
        num_attention_heads: (c.num_attention_heads ?? null) as number | null,
        num_transformer_submodules: (c.num_transformer_submodules ?? null) as number | null,
      };
    case 'P_TUNING': {
      const kind = oneOf(c, 'encoder_reparameterization_type', ['MLP', 'LSTM'] as const, 'MLP');
      return {
        peft_type: 'P_TUNING', ...base,
        num_virtual_tokens: integer(c, 'num_virtual_tokens', Number.NaN, 1),
        encoder_reparameterization_type: kind,
        encoder_hidden_size: c.encoder_hidden_size === undefined || c.encoder_hidden_size === null ? null : integer(c, 'encoder_hidden_size', 1, 1),
        encoder_num_layers: integer(c, 'encoder_num_layers', 2, 1),
        encoder_dropout: number(c, 'encoder_dropout', 0, (v) => v >= 0 && v < 1, 'a probability in [0, 1)'),
        token_dim: (c.token_dim ?? null) as number | null,
        num_layers: (c.num_layers ?? null) as number | null,
        num_attention_heads: (c.num_attention_heads ?? null) as number | null,
        num_transformer_submodules: (c.num_transformer_submodules ?? null) as number | null,
      };
    }
    case 'LN_TUNING':
      return { peft_type: 'LN_TUNING', ...base, target_modules: targets(c, 'target_modules'), exclude_modules: targets(c, 'exclude_modules') };
    case 'BITFIT':
      return { peft_type: 'BITFIT', ...base, target_modules: targets(c, 'target_modules') };
    case 'BOTTLENECK': {
      const kind = oneOf(c, 'bottleneck_type', ['houlsby', 'pfeiffer'] as const, 'pfeiffer');
      const layers = c.layers_to_transform;
      if (layers !== undefined && layers !== null && !(Number.isInteger(layers) && (layers as number) >= 0) &&
        !(Array.isArray(layers) && layers.every((l) => Number.isInteger(l) && l >= 0))) {
        bad('layers_to_transform', 'a layer index or a list of layer indices', layers);
      }
      return {
        peft_type: 'BOTTLENECK', ...base,
        bottleneck_type: kind,
        reduction_factor: number(c, 'reduction_factor', 16, (v) => v >= 1, 'a number ≥ 1'),
        non_linearity: oneOf(c, 'non_linearity', ['relu', 'gelu', 'swish', 'tanh'] as const, kind === 'houlsby' ? 'swish' : 'relu'),
        mode: oneOf(c, 'mode', ['sequential', 'parallel'] as const, 'sequential'),
        scaling: number(c, 'scaling', 1, (v) => v !== 0, 'a non-zero number'),
        layers_to_transform: (layers ?? null) as number[] | number | null,
      };
    }
  }
}
