/**
 * The Trainer's options, with Hugging Face TrainingArguments' snake_case names and defaults where
 * it has them, validated into one resolved object. A wrong type or range is an E_CONFIG error naming
 * the field.
 */
import type { Dataset } from '../data/dataset';
import { PeftError } from '../errors';
import { describe, fail } from '../validate';
import type { TrainerCallbacks } from './callbacks';
import { LOSS_SPIKE_POLICIES, NAN_POLICIES, type LossSpikePolicy, type NanPolicy } from './health';
import { OPTIMIZERS, type OptimizerName } from './optimizer';
import type { ProgressStream } from './progress';
import { SCHEDULE_TYPES, type ScheduleType } from './schedule';

/** Options of {@link Trainer}. */
export interface TrainingArguments {
  /** The training data (see {@link loadDataset}); or give `train_file`. */
  train_dataset?: Dataset;
  /** Validation data for evaluations and early stopping; or give `valid_file`. */
  eval_dataset?: Dataset;
  /** A JSONL file to train on, tokenized with the model's tokenizer (any format {@link loadDataset} reads). */
  train_file?: string;
  /** A JSONL file of validation data. */
  valid_file?: string;
  /** With train_file / valid_file: longest sequence in tokens. Default 2048 (at most the model's context). */
  max_seq_length?: number;
  /** With train_file / valid_file: pack short examples into full sequences. Default false. */
  packing?: boolean;

  /** Where checkpoints (checkpoint-<step>/), run.jsonl and report.html go. Default: none (nothing written). */
  output_dir?: string;
  /** Remove checkpoints a previous run left in output_dir instead of refusing to start. Default false. */
  overwrite_output_dir?: boolean;

  /** 'adamw' (default) or 'sgd'. */
  optimizer?: OptimizerName;
  /** Peak learning rate. Default 5e-5. */
  learning_rate?: number;
  /** Decoupled weight decay (AdamW) or L2 penalty (SGD); never on biases and norms. Default 0. */
  weight_decay?: number;
  /** Default 0.9. */
  adam_beta1?: number;
  /** Default 0.999. */
  adam_beta2?: number;
  /** Default 1e-8. */
  adam_epsilon?: number;
  /** SGD momentum. Default 0. */
  momentum?: number;
  /** LoRA+: lora_B (and 1-D) parameters learn at learning_rate × this ratio (e.g. 16). Default: off. */
  loraplus_lr_ratio?: number;
  /** LoRA+: learning rate of embedding LoRA weights. Default 1e-6 (as PEFT). */
  loraplus_lr_embedding?: number;

  /** Default 'linear'. */
  lr_scheduler_type?: ScheduleType;
  /** Warmup steps (wins over warmup_ratio). Default 0. */
  warmup_steps?: number;
  /** Warmup as a fraction of all steps. Default 0. */
  warmup_ratio?: number;

  /** Sequences per micro-batch. Default 8. */
  per_device_train_batch_size?: number;
  /** Sequences per evaluation batch. Default: per_device_train_batch_size. */
  per_device_eval_batch_size?: number;
  /** Micro-batches per optimizer step; the step's gradient is the mean over all their tokens. Default 1. */
  gradient_accumulation_steps?: number;
  /** Clip the global gradient norm to this; 0 turns clipping off. Default 1. */
  max_grad_norm?: number;
  /** Optimizer steps; wins over num_train_epochs. */
  max_steps?: number;
  /** Passes over the training data (fractions allowed). Default 3. */
  num_train_epochs?: number;
  /** Leave out the last, smaller batch of each epoch. Default false. */
  dataloader_drop_last?: boolean;

  /** Evaluate every this many steps (and at the end). Default: at the end only. */
  eval_steps?: number;
  /** Also evaluate before the first step (logged as step 0), to see where training starts. Default false. */
  eval_on_start?: boolean;
  /** Stop after this many evaluations without an improvement of the eval loss. Default: off. */
  early_stopping_patience?: number;
  /** An improvement must lower the eval loss by more than this. Default 0. */
  early_stopping_threshold?: number;
  /** At the end, put the weights of the best evaluation back. Default: true with early stopping. */
  load_best_model_at_end?: boolean;

  /** Write a checkpoint every this many steps (needs output_dir). A checkpoint is also written at each new best evaluation and at the end. */
  save_steps?: number;
  /** Keep at most this many checkpoints (the best one is always kept). Default: all. */
  save_total_limit?: number;

  /** Seed of the data order and the dropout masks. Default 42. */
  seed?: number;
  /** Write the mean loss of the last steps to the run log and progress every this many steps. Default 1. */
  logging_steps?: number;
  /**
   * Activation checkpointing: each layer keeps only its input and the backward pass recomputes the
   * rest (about one more forward pass of compute for most of the activation memory); the losses and
   * gradients stay exactly the same. Decoder architectures (Llama family, GPT-2); E_UNSUPPORTED for BERT.
   * Default false.
   */
  gradient_checkpointing?: boolean;

  /**
   * A step whose loss or gradient norm is NaN or infinite: 'stop' (default) ends the run with an
   * E_NONFINITE error naming the step and the first parameter with a non-finite gradient, before any
   * update (the weights and the last checkpoint stay as they were); 'skip' leaves that step's update
   * out (weights and optimizer state untouched; the step still counts towards max_steps and the
   * schedule) and logs it. Hugging Face's Trainer has no such switch (only logging_nan_inf_filter,
   * which hides such losses from the logged mean, as the skipped steps are here).
   */
  nan_policy?: NanPolicy;
  /** With nan_policy 'skip': stop (E_NONFINITE) when this many steps in a row were skipped. Default 5. */
  max_consecutive_nan_steps?: number;
  /**
   * A loss spike (see loss_spike_threshold): 'warn' (default) logs a warning and trains on; 'stop'
   * ends the run before that step's update, with reason 'loss_spike'; 'ignore' does nothing.
   */
  loss_spike_policy?: LossSpikePolicy;
  /**
   * A step's loss is a spike when it exceeds the mean of the last loss_spike_window losses by more
   * than this many standard deviations (counting the deviation as at least 5% of the mean, so a
   * flat curve does not flag noise). Judged once 10 losses (or the whole window) are in. Default 4.
   */
  loss_spike_threshold?: number;
  /** Steps the loss-spike statistics look back over; spikes and skipped steps stay out. Default 50. */
  loss_spike_window?: number;
  /**
   * Before training, refuse (E_NONFINITE, naming the tensor) a model whose weights (trainable or
   * frozen) hold NaN or infinities: one native scan, about as long as reading the weights once.
   * Default true.
   */
  check_finite_weights?: boolean;

  /** Functions called after each step, evaluation and checkpoint. */
  callbacks?: TrainerCallbacks | TrainerCallbacks[];
  /** Aborting stops training cleanly after the current step; checkpoints already written stay intact. */
  signal?: AbortSignal;
  /** Show a progress bar (a live bar on a terminal, plain lines otherwise). Default false. */
  progress?: boolean | ProgressStream;
  /** Write run.jsonl and report.html into output_dir. Default true when output_dir is set. */
  run_log?: boolean;
  /** Receives warnings. Default process.emitWarning. */
  warn?: (message: string) => void;
}

/** The arguments with every default filled in. */
export interface ResolvedArguments {
  output_dir?: string;
  overwrite_output_dir: boolean;
  optimizer: OptimizerName;
  learning_rate: number;
  weight_decay: number;
  adam_beta1: number;
  adam_beta2: number;
  adam_epsilon: number;
  momentum: number;
  loraplus_lr_ratio?: number;
  loraplus_lr_embedding: number;
  lr_scheduler_type: ScheduleType;
  warmup_steps: number;
  warmup_ratio: number;
  per_device_train_batch_size: number;
  per_device_eval_batch_size: number;
  gradient_accumulation_steps: number;
  max_grad_norm: number;
  max_steps?: number;
  num_train_epochs: number;
  dataloader_drop_last: boolean;
  eval_steps?: number;
  eval_on_start: boolean;
  early_stopping_patience?: number;
  early_stopping_threshold: number;
  load_best_model_at_end: boolean;
  save_steps?: number;
  save_total_limit?: number;
  seed: number;
  logging_steps: number;
  gradient_checkpointing: boolean;
  nan_policy: NanPolicy;
  max_consecutive_nan_steps: number;
  loss_spike_policy: LossSpikePolicy;
  loss_spike_threshold: number;
  loss_spike_window: number;
  check_finite_weights: boolean;
  max_seq_length?: number;
  packing: boolean;
  run_log: boolean;
}

/** Keys that are not hyper-parameters (data, functions, streams): left out of logs and checkpoints. */
const NOT_CONFIG = new Set(['train_dataset', 'eval_dataset', 'callbacks', 'signal', 'progress', 'warn']);

const KNOWN = new Set([
  ...NOT_CONFIG,
  'train_file', 'valid_file', 'max_seq_length', 'packing', 'output_dir', 'overwrite_output_dir', 'optimizer',
  'learning_rate', 'weight_decay', 'adam_beta1', 'adam_beta2', 'adam_epsilon', 'momentum', 'loraplus_lr_ratio',
  'loraplus_lr_embedding', 'lr_scheduler_type', 'warmup_steps', 'warmup_ratio', 'per_device_train_batch_size',
  'per_device_eval_batch_size', 'gradient_accumulation_steps', 'max_grad_norm', 'max_steps', 'num_train_epochs',
  'dataloader_drop_last', 'eval_steps', 'eval_on_start', 'early_stopping_patience', 'early_stopping_threshold', 'load_best_model_at_end',
  'save_steps', 'save_total_limit', 'seed', 'logging_steps', 'gradient_checkpointing', 'run_log',
  'nan_policy', 'max_consecutive_nan_steps', 'loss_spike_policy', 'loss_spike_threshold', 'loss_spike_window', 'check_finite_weights',
]);

type Range = { min?: number; max?: number; exclusiveMin?: boolean; integer?: boolean };

function num(o: Record<string, unknown>, key: string, fallback: number, range: Range): number;
function num(o: Record<string, unknown>, key: string, fallback: undefined, range: Range): number | undefined;
function num(o: Record<string, unknown>, key: string, fallback: number | undefined, range: Range): number | undefined {
  const v = o[key];
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v)) fail(key, range.integer ? 'an integer' : 'a finite number', v, 'E_CONFIG');
  if (range.integer && !Number.isInteger(v)) fail(key, 'an integer', v, 'E_CONFIG');
  const low = range.min !== undefined && (range.exclusiveMin ? v <= range.min : v < range.min);
  if (low || (range.max !== undefined && v > range.max)) {
    fail(key, `a number in ${range.exclusiveMin ? '(' : '['}${range.min ?? '-∞'}, ${range.max ?? '∞'}]`, v, 'E_CONFIG');
  }
  return v;
}

function bool(o: Record<string, unknown>, key: string, fallback: boolean): boolean {
  const v = o[key];
  if (v === undefined) return fallback;
  if (typeof v !== 'boolean') fail(key, 'a boolean', v, 'E_CONFIG');
  return v;
}

function choice<T extends string>(o: Record<string, unknown>, key: string, choices: readonly T[], fallback: T): T {
  const v = o[key];
  if (v === undefined) return fallback;
  if (!choices.includes(v as T)) fail(key, `one of ${choices.join(', ')}`, v, 'E_CONFIG');
  return v as T;
}

function str(o: Record<string, unknown>, key: string): string | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v === '') fail(key, 'a non-empty string (a path)', v, 'E_CONFIG');
  return v;
}

const POSITIVE_INT: Range = { min: 1, integer: true };

/** Validates the Trainer's options and fills in the defaults. */
export function resolveArguments(args: TrainingArguments): ResolvedArguments {
  if (typeof args !== 'object' || args === null || Array.isArray(args)) fail('the Trainer options', 'an object', args, 'E_CONFIG');
  const o = args as unknown as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!KNOWN.has(key)) throw new PeftError(`Unknown Trainer option "${key}" (received ${describe(o[key])}); see TrainingArguments for the names`, 'E_CONFIG');
  }
  const batch = num(o, 'per_device_train_batch_size', 8, POSITIVE_INT);
  const r: ResolvedArguments = {
    output_dir: str(o, 'output_dir'),
    overwrite_output_dir: bool(o, 'overwrite_output_dir', false),
    optimizer: choice(o, 'optimizer', OPTIMIZERS, 'adamw'),
    learning_rate: num(o, 'learning_rate', 5e-5, { min: 0, exclusiveMin: true }),
    weight_decay: num(o, 'weight_decay', 0, { min: 0 }),
    adam_beta1: num(o, 'adam_beta1', 0.9, { min: 0, max: 0.999999999 }),
    adam_beta2: num(o, 'adam_beta2', 0.999, { min: 0, max: 0.999999999 }),
    adam_epsilon: num(o, 'adam_epsilon', 1e-8, { min: 0, max: 1 }),
    momentum: num(o, 'momentum', 0, { min: 0, max: 1 }),
    loraplus_lr_ratio: num(o, 'loraplus_lr_ratio', undefined, { min: 0, exclusiveMin: true }),
    loraplus_lr_embedding: num(o, 'loraplus_lr_embedding', 1e-6, { min: 0 }),
    lr_scheduler_type: choice(o, 'lr_scheduler_type', SCHEDULE_TYPES, 'linear'),
    warmup_steps: num(o, 'warmup_steps', 0, { min: 0, integer: true }),
    warmup_ratio: num(o, 'warmup_ratio', 0, { min: 0, max: 1 }),
    per_device_train_batch_size: batch,
    per_device_eval_batch_size: num(o, 'per_device_eval_batch_size', batch, POSITIVE_INT),
    gradient_accumulation_steps: num(o, 'gradient_accumulation_steps', 1, POSITIVE_INT),
    max_grad_norm: num(o, 'max_grad_norm', 1, { min: 0 }),
    max_steps: num(o, 'max_steps', undefined, POSITIVE_INT),
    num_train_epochs: num(o, 'num_train_epochs', 3, { min: 0, exclusiveMin: true }),
    dataloader_drop_last: bool(o, 'dataloader_drop_last', false),
    eval_steps: num(o, 'eval_steps', undefined, POSITIVE_INT),
    eval_on_start: bool(o, 'eval_on_start', false),
    early_stopping_patience: num(o, 'early_stopping_patience', undefined, POSITIVE_INT),
    early_stopping_threshold: num(o, 'early_stopping_threshold', 0, { min: 0 }),
    load_best_model_at_end: bool(o, 'load_best_model_at_end', o.early_stopping_patience !== undefined),
    save_steps: num(o, 'save_steps', undefined, POSITIVE_INT),
    save_total_limit: num(o, 'save_total_limit', undefined, POSITIVE_INT),
    seed: num(o, 'seed', 42, { min: 0, max: Number.MAX_SAFE_INTEGER, integer: true }),
    logging_steps: num(o, 'logging_steps', 1, POSITIVE_INT),
    gradient_checkpointing: bool(o, 'gradient_checkpointing', false),
    nan_policy: choice(o, 'nan_policy', NAN_POLICIES, 'stop'),
    max_consecutive_nan_steps: num(o, 'max_consecutive_nan_steps', 5, POSITIVE_INT),
    loss_spike_policy: choice(o, 'loss_spike_policy', LOSS_SPIKE_POLICIES, 'warn'),
    loss_spike_threshold: num(o, 'loss_spike_threshold', 4, { min: 0, exclusiveMin: true }),
    loss_spike_window: num(o, 'loss_spike_window', 50, { min: 2, integer: true }),
    check_finite_weights: bool(o, 'check_finite_weights', true),
    max_seq_length: num(o, 'max_seq_length', undefined, POSITIVE_INT),
    packing: bool(o, 'packing', false),
    run_log: bool(o, 'run_log', o.output_dir !== undefined),
  };
  str(o, 'train_file');
  str(o, 'valid_file');
  if (r.save_steps !== undefined && r.output_dir === undefined) {
    throw new PeftError('save_steps needs output_dir: give the folder the checkpoints go to', 'E_CONFIG');
  }
  if (r.run_log && r.output_dir === undefined) throw new PeftError('run_log needs output_dir: give the folder run.jsonl goes to', 'E_CONFIG');
  return r;
}

/** The hyper-parameters as plain JSON, for the run log and checkpoints. */
export function argumentsJson(args: TrainingArguments): Record<string, unknown> {
  return Object.fromEntries(Object.entries(args).filter(([k, v]) => !NOT_CONFIG.has(k) && v !== undefined));
}
