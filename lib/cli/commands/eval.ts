/** `peft-native eval`: a model's loss and perplexity on a JSONL file of texts. */
import { PeftError } from '../../errors';
import type { Model } from '../../models/model';
import { defineCommand, type CommandSpec } from '../command';
import type { ConfigOf } from '../config';
import { ADAPTER_FIELD, JSON_FIELD, MODEL_FIELD, TOKENIZER_FIELD } from '../fields';
import type { Forwarder } from '../../train/forward-loss';
import { readTextJsonl } from '../text-jsonl';
import { loadAdapterFor } from './generate';

export const EVAL_SCHEMA = {
  model: MODEL_FIELD,
  tokenizer: TOKENIZER_FIELD,
  adapter: ADAPTER_FIELD,
  data_file: { type: 'string', description: 'JSONL with one {"text": ...} per line', required: true, short: 'd', placeholder: 'file' },
  max_seq_length: { type: 'integer', description: "window length in tokens (default: the model's context)", min: 2 },
  max_samples: { type: 'integer', description: 'evaluate only the first n texts', min: 1 },
  json: JSON_FIELD,
} as const;

/** The resolved configuration of `peft-native eval`. */
export type EvalConfig = ConfigOf<typeof EVAL_SCHEMA>;

/** What {@link evaluateTexts} measures. */
export interface EvalResult {
  /** Mean next-token cross-entropy over every predicted token. */
  loss: number;
  perplexity: number;
  /** Tokens predicted (each text's tokens but the first). */
  tokens: number;
  windows: number;
  texts: number;
}

/**
 * Mean loss over texts: each text is tokenized (with the model's special tokens) and cut into
 * windows of `window` tokens that overlap by one, so that every token after the first is predicted
 * exactly once; a window's loss counts once per token it predicts.
 */
export async function evaluateTexts(model: Model, texts: readonly string[], window: number, scorer: Forwarder = model): Promise<EvalResult> {
  const tokenizer = model.tokenizer;
  if (!tokenizer) throw new PeftError('This model has no tokenizer; give --tokenizer <dir with tokenizer.json>', 'E_CONFIG');
  const { forwardLoss } = await import('../../train/forward-loss');
  let sum = 0;
  let tokens = 0;
  let windows = 0;
  for (const text of texts) {
    const ids = tokenizer.encode(text);
    for (let start = 0; start + 1 < ids.length; start += window - 1) {
      const piece = ids.slice(start, start + window);
      // An inference forward: no gradients (see lib/train/forward-loss.ts).
      const { loss } = await forwardLoss(scorer, [piece], [piece]);
      sum += loss * (piece.length - 1);
      tokens += piece.length - 1;
      windows++;
    }
  }
  if (tokens === 0) throw new PeftError('The texts are too short to evaluate: each needs at least two tokens', 'E_FORMAT');
  const loss = sum / tokens;
  return { loss, perplexity: Math.exp(loss), tokens, windows, texts: texts.length };
}

/** Loads the model, evaluates the data file and prints the loss and perplexity. */
export async function runEval(config: EvalConfig): Promise<void> {
  const texts = readTextJsonl(config.data_file, config.max_samples);
  // Loaded here, not at the top: --help should not need the native addon.
  const { loadModel } = await import('../../models/model');
  const model = await loadModel(config.model, { tokenizer: config.tokenizer });
  const context = model.config.maxPositionEmbeddings;
  const window = config.max_seq_length ?? context;
  if (window > context) throw new PeftError(`Expected --max-seq-length at most ${context} (the model's context) but received ${window}`, 'E_RANGE');
  const peft = config.adapter === undefined ? undefined : await loadAdapterFor(model, config.adapter);
  const result = await evaluateTexts(model, texts, window, peft ?? model);
  if (config.json) {
    process.stdout.write(`${JSON.stringify({ data_file: config.data_file, ...(config.adapter ? { adapter: config.adapter } : {}), window, ...result })}\n`);
    return;
  }
  process.stdout.write(
    `data        ${config.data_file}: ${result.texts} texts, ${result.tokens} tokens predicted in ${result.windows} windows of up to ${window}\n` +
      `loss        ${result.loss.toFixed(4)}\n` +
      `perplexity  ${result.perplexity.toFixed(3)}\n`,
  );
}

export const evalCommand: CommandSpec<typeof EVAL_SCHEMA> = defineCommand({
  name: 'eval',
  summary: 'loss and perplexity of a model (optionally with an adapter) on JSONL text',
  description:
    "Computes the mean next-token loss and the perplexity exp(loss) over a JSONL file of {\"text\"} lines, in windows of the model's context.",
  schema: EVAL_SCHEMA,
  examples: ['peft-native eval --model ./stories260K-hf --data-file valid.jsonl', 'peft-native eval -m model.gguf -d test.jsonl --max-seq-length 256 --json'],
  run: runEval,
});
