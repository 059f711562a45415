/** `peft-native generate`: continue a prompt with a model, streaming the text to stdout. */
import { PeftError } from '../../errors';
import type { GenerateOptions, Model } from '../../models/model';
import type { PeftModel } from '../../peft/peft-model';
import { defineCommand, type CommandSpec } from '../command';
import type { ConfigOf } from '../config';
import { ADAPTER_FIELD, MODEL_FIELD, TOKENIZER_FIELD } from '../fields';

export const GENERATE_SCHEMA = {
  model: MODEL_FIELD,
  tokenizer: TOKENIZER_FIELD,
  adapter: ADAPTER_FIELD,
  prompt: { type: 'string', description: 'the text to continue', required: true, short: 'p' },
  max_new_tokens: { type: 'integer', description: 'tokens to generate at most', default: 100, min: 0 },
  temperature: { type: 'number', description: '0 picks the most likely token; above 0 samples', default: 0, min: 0 },
  top_k: { type: 'integer', description: 'sample from the k most likely tokens only (0: all)', default: 0, min: 0 },
  top_p: { type: 'number', description: 'sample from the smallest set of tokens whose probability reaches p', default: 1, min: 0, max: 1 },
  repetition_penalty: { type: 'number', description: 'above 1 makes tokens already seen less likely', default: 1, min: 0, exclusiveMin: true },
  seed: { type: 'integer', description: 'seed of the sampler, for reproducible samples' },
  stop: { type: 'string[]', description: 'stop when the text contains one of these' },
  echo: { type: 'boolean', description: 'print the prompt before the continuation', default: true, offDescription: 'print only the continuation' },
} as const;

/** The resolved configuration of `peft-native generate`. */
export type GenerateConfig = ConfigOf<typeof GENERATE_SCHEMA>;

/** Loads an adapter onto `model` for inference (dropout off). */
export async function loadAdapterFor(model: Model, dir: string): Promise<PeftModel> {
  const { loadAdapter } = await import('../../peft/peft-model');
  const peft = await loadAdapter(model, dir, { warn: (m) => process.stderr.write(`warning: ${m}\n`) });
  return peft.eval();
}

/** Loads the model and streams the continuation of the prompt to stdout. */
export async function runGenerate(config: GenerateConfig): Promise<void> {
  // Loaded here, not at the top: --help should not need the native addon.
  const { loadModel } = await import('../../models/model');
  const model = await loadModel(config.model, { tokenizer: config.tokenizer });
  const peft = config.adapter === undefined ? undefined : await loadAdapterFor(model, config.adapter);
  const tokenizer = model.tokenizer;
  if (!tokenizer) throw new PeftError(`${config.model} has no tokenizer; give --tokenizer <dir with tokenizer.json>`, 'E_CONFIG');
  const options: GenerateOptions = {
    maxNewTokens: config.max_new_tokens,
    temperature: config.temperature,
    topK: config.top_k,
    topP: config.top_p,
    repetitionPenalty: config.repetition_penalty,
    seed: config.seed,
    stop: config.stop,
  };
  // The prompt as the model reads it back (what model.generate's text starts with).
  if (config.echo) process.stdout.write(tokenizer.decode(tokenizer.encode(config.prompt)));
  for await (const piece of (peft ?? model).stream(config.prompt, options)) process.stdout.write(piece);
  process.stdout.write('\n');
}

export const generateCommand: CommandSpec<typeof GENERATE_SCHEMA> = defineCommand({
  name: 'generate',
  summary: 'continue a prompt with a model (optionally with an adapter), streaming to stdout',
  description: 'Loads a model and continues the prompt, printing text as it is produced. Greedy by default; --temperature above 0 samples.',
  schema: GENERATE_SCHEMA,
  examples: [
    'peft-native generate --model ./stories260K-hf --prompt "Once upon a time" --max-new-tokens 40',
    'peft-native generate -m model.gguf -p "Lily saw" --temperature 0.8 --top-p 0.9 --seed 1',
  ],
  run: runGenerate,
});
