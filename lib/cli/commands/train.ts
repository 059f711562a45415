/** `peft-native train`: fine-tune a model with a PEFT method on JSONL data. */
import { SCHEDULE_TYPES } from '../../train/schedule';
import { defineCommand, type CommandSpec } from '../command';
import type { ConfigOf } from '../config';
import { MODEL_FIELD, TOKENIZER_FIELD } from '../fields';
import { notBuiltYet } from './not-built';

export const TRAIN_SCHEMA = {
  model: MODEL_FIELD,
  tokenizer: TOKENIZER_FIELD,
  train_file: { type: 'string', description: 'training data, JSONL', required: true, placeholder: 'file' },
  valid_file: { type: 'string', description: 'validation data, JSONL', placeholder: 'file' },
  test_file: { type: 'string', description: 'test data, JSONL, evaluated once at the end', placeholder: 'file' },
  valid_split: { type: 'number', description: 'without valid_file: the fraction of train_file held out for validation', default: 0, min: 0, max: 0.5 },
  output_dir: { type: 'string', description: 'where the adapter, checkpoints, run.jsonl and report.html go', default: 'peft-output', short: 'o', placeholder: 'dir' },
  max_seq_length: { type: 'integer', description: 'longer examples are truncated', default: 512, min: 1 },
  packing: { type: 'boolean', description: 'pack short examples together into full-length sequences', default: false },
  batch_size: { type: 'integer', description: 'sequences per step', default: 4, min: 1 },
  gradient_accumulation_steps: { type: 'integer', description: 'batches summed before each optimizer step', default: 1, min: 1 },
  max_steps: { type: 'integer', description: 'optimizer steps; overrides num_train_epochs', min: 1 },
  num_train_epochs: { type: 'number', description: 'passes over the training data', default: 1, min: 0, exclusiveMin: true },
  learning_rate: { type: 'number', description: 'peak learning rate', default: 2e-4, min: 0, exclusiveMin: true },
  lr_scheduler_type: { type: 'string', description: 'learning-rate schedule after warmup', default: 'linear', choices: SCHEDULE_TYPES },
  warmup_steps: { type: 'integer', description: 'linear warmup steps (wins over warmup_ratio)', default: 0, min: 0 },
  warmup_ratio: { type: 'number', description: 'linear warmup as a fraction of all steps', default: 0, min: 0, max: 1 },
  optimizer: { type: 'string', description: 'the optimizer', default: 'adamw', choices: ['adamw', 'sgd'] },
  weight_decay: { type: 'number', description: 'decoupled weight decay', default: 0, min: 0 },
  adam_beta1: { type: 'number', description: 'AdamW beta1', default: 0.9, min: 0, max: 1 },
  adam_beta2: { type: 'number', description: 'AdamW beta2', default: 0.999, min: 0, max: 1 },
  adam_epsilon: { type: 'number', description: 'AdamW epsilon', default: 1e-8, min: 0, exclusiveMin: true },
  max_grad_norm: { type: 'number', description: 'clip the gradient norm to this (0: no clipping)', default: 1, min: 0 },
  loraplus_lr_ratio: { type: 'number', description: 'LoRA+: learning rate of B over that of A (e.g. 16)', min: 0, exclusiveMin: true },
  eval_steps: { type: 'integer', description: 'evaluate every this many steps', default: 50, min: 1 },
  save_steps: { type: 'integer', description: 'write a checkpoint every this many steps', default: 100, min: 1 },
  logging_steps: { type: 'integer', description: 'log the loss every this many steps', default: 1, min: 1 },
  early_stopping_patience: { type: 'integer', description: 'stop after this many evaluations without improvement; the best checkpoint is kept', min: 1 },
  resume_from_checkpoint: { type: 'string', description: 'continue a run from its checkpoint directory', placeholder: 'dir' },
  gradient_checkpointing: { type: 'boolean', description: 'recompute block activations in the backward pass to save memory', default: false },
  seed: { type: 'integer', description: 'seed for initialization, data order and dropout', default: 42 },
  progress: { type: 'boolean', description: 'show a live progress bar (plain lines when not a terminal)', default: true, offDescription: 'no progress display' },
  peft: {
    description: 'the PEFT method, with Hugging Face PEFT field names',
    fields: {
      peft_type: { type: 'string', description: 'the method', default: 'LORA', choices: ['LORA', 'IA3', 'PROMPT_TUNING', 'PREFIX_TUNING', 'P_TUNING'] },
      r: { type: 'integer', description: 'LoRA rank', default: 8, min: 1 },
      lora_alpha: { type: 'number', description: 'LoRA scaling numerator (scale = lora_alpha / r)', default: 16 },
      lora_dropout: { type: 'number', description: 'dropout on the LoRA input', default: 0, min: 0, max: 1 },
      target_modules: { type: 'string[]', description: 'module names to adapt', default: ['q_proj', 'v_proj'] },
      use_rslora: { type: 'boolean', description: 'rank-stabilized scaling lora_alpha / sqrt(r)', default: false },
      use_dora: { type: 'boolean', description: 'DoRA: weight-decomposed LoRA', default: false },
      num_virtual_tokens: { type: 'integer', description: 'prompt / prefix tuning: virtual tokens', default: 20, min: 1 },
    },
  },
} as const;

/** The resolved configuration of `peft-native train`. */
export type TrainConfig = ConfigOf<typeof TRAIN_SCHEMA>;

/** Runs a training run from a resolved configuration. */
export async function runTrain(config: TrainConfig): Promise<void> {
  void config;
  notBuiltYet('train', 'the Trainer (lib/train) and getPeftModel (lib/peft)');
}

export const trainCommand: CommandSpec<typeof TRAIN_SCHEMA> = defineCommand({
  name: 'train',
  summary: 'fine-tune a model with LoRA (or another PEFT method) on JSONL data',
  description:
    'Fine-tunes a model with a PEFT method on JSONL data ({"text"}, {"prompt","completion"}, chat {"messages"}, ...).\n' +
    'Writes the adapter, checkpoints, a JSON-lines log (run.jsonl) and report.html to --output-dir.',
  schema: TRAIN_SCHEMA,
  examples: [
    'peft-native train --model ./stories260K-hf --train-file train.jsonl --valid-file valid.jsonl --max-steps 200',
    'peft-native train --config lora.yaml --learning-rate 1e-4 --set peft.r=16',
  ],
  run: runTrain,
});
