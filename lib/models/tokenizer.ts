/**
 * Tokenizers: Hugging Face `tokenizer.json` (through @huggingface/tokenizers) with the special
 * tokens and chat template of `tokenizer_config.json` (templates rendered with @huggingface/jinja).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { Template } from '@huggingface/jinja';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';

import { PeftError } from '../errors';
import { fail, optionalBoolean, optionsObject, preview } from '../validate';

/** A chat message, as chat templates expect it. */
export interface ChatMessage {
  role: string;
  content: string;
}

/** Options of {@link Tokenizer.encode}. */
export interface EncodeOptions {
  /** Add the model's special tokens (e.g. a leading `<s>`). Default true. */
  addSpecialTokens?: boolean;
}

/** Options of {@link Tokenizer.decode}. */
export interface DecodeOptions {
  /** Leave out special tokens such as `<s>`. Default true. */
  skipSpecialTokens?: boolean;
}

type TokenizerConfig = Record<string, unknown>;

function readJson(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new PeftError(`Could not read ${file}: ${(err as Error).message}`, 'E_IO');
  }
  try {
    const value = JSON.parse(text);
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new SyntaxError('not an object');
    return value;
  } catch (err) {
    throw new PeftError(`${file} is not a JSON object: ${(err as Error).message}`, 'E_FORMAT');
  }
}

/** A special token given as a string or as an AddedToken object `{ content }`. */
function tokenText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && value !== null && typeof (value as { content?: unknown }).content === 'string') {
    return (value as { content: string }).content;
  }
  return undefined;
}

/**
 * One more than the largest id of the model's vocabulary and the added tokens, read from the JSON:
 * the library's get_vocab() walks every id up to the largest, which a corrupt id (say 10^8) turns
 * into minutes.
 */
function vocabSizeOf(json: Record<string, unknown>): number {
  const model = json.model as { vocab?: unknown } | undefined;
  const vocab = model?.vocab;
  let size = Array.isArray(vocab) ? vocab.length : 0;
  const ids = [
    ...(vocab && typeof vocab === 'object' && !Array.isArray(vocab) ? Object.values(vocab) : []),
    ...(Array.isArray(json.added_tokens) ? json.added_tokens.map((t) => (t as { id?: unknown })?.id) : []),
  ];
  for (const id of ids) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= 2 ** 32) {
      throw new PeftError(`Expected token ids that are integers in [0, 2^32) in tokenizer.json but received ${preview(id)}`, 'E_FORMAT');
    }
    size = Math.max(size, id + 1);
  }
  return size;
}

/** Text encoded once when a tokenizer is built: letters, punctuation, digits, spaces, non-ASCII. */
const PROBE_TEXT = 'Hello, world! 123  naïve\n';

/** Text to token ids and back, with the model's special tokens and chat template. */
export class Tokenizer {
  private readonly hf: HfTokenizer;
  private readonly config: TokenizerConfig;
  /** Id of the beginning-of-sequence token, if the model has one. */
  readonly bosId: number | undefined;
  /** Id of the end-of-sequence token, if the model has one. */
  readonly eosId: number | undefined;
  /** Id of the padding token, if the model has one. */
  readonly padId: number | undefined;
  /** Number of ids (the base vocabulary plus added tokens). */
  readonly vocabSize: number;

  /** @internal Use {@link loadTokenizer} or {@link Tokenizer.fromJSON}. */
  constructor(tokenizerJson: Record<string, unknown>, config: TokenizerConfig = {}) {
    try {
      this.hf = new HfTokenizer(tokenizerJson as never, config as never);
    } catch (err) {
      throw new PeftError(`Could not build the tokenizer: ${(err as Error).message}`, 'E_FORMAT');
    }
    this.config = config;
    const id = (key: string) => {
      const text = tokenText(config[key]);
      return text === undefined ? undefined : this.hf.token_to_id(text) ?? undefined;
    };
    this.bosId = id('bos_token');
    this.eosId = id('eos_token');
    this.padId = id('pad_token');
    this.vocabSize = vocabSizeOf(tokenizerJson);
    // Parts of a corrupt tokenizer.json fail only when used: use them once now, so that loading fails.
    const probe = this.library('encode text', () => this.hf.encode(PROBE_TEXT).ids).filter((i) => Number.isInteger(i) && i >= 0 && i < this.vocabSize);
    if (probe.length) this.library('decode ids', () => this.hf.decode(probe));
  }

  /** A call into @huggingface/tokenizers, whose own failures become E_FORMAT. */
  private library<T>(what: string, call: () => T): T {
    try {
      return call();
    } catch (err) {
      if (err instanceof PeftError) throw err;
      throw new PeftError(`The tokenizer failed to ${what}: ${err instanceof Error ? err.message : String(err)}`, 'E_FORMAT');
    }
  }

  /** Builds a tokenizer from parsed `tokenizer.json` (and `tokenizer_config.json`) objects. */
  static fromJSON(tokenizerJson: Record<string, unknown>, config: TokenizerConfig = {}): Tokenizer {
    return new Tokenizer(tokenizerJson, config);
  }

  /** Token ids of `text`. */
  encode(text: string, options?: EncodeOptions): number[] {
    if (typeof text !== 'string') fail('text', 'a string', text);
    const o = optionsObject(options);
    const addSpecialTokens = optionalBoolean(o, 'addSpecialTokens', true);
    const ids = this.library('encode text', () => this.hf.encode(text, { add_special_tokens: addSpecialTokens }).ids);
    const bad = ids.findIndex((id) => !Number.isInteger(id) || id < 0 || id >= this.vocabSize);
    if (bad >= 0) throw new PeftError(`The tokenizer gave no valid id for a piece of the text (it has no unknown token): ${JSON.stringify(ids[bad])}`, 'E_FORMAT');
    return ids;
  }

  /** The text of `ids`. */
  decode(ids: readonly number[], options?: DecodeOptions): string {
    if (!Array.isArray(ids)) fail('ids', 'an array of token ids', ids);
    ids.forEach((id, i) => {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) fail(`ids[${i}]`, `a token id in [0, ${this.vocabSize})`, id, 'E_RANGE');
    });
    const o = optionsObject(options);
    // @huggingface/tokenizers refuses an empty list (a gpt2 vocabulary encodes '' as no ids).
    if (ids.length === 0) return '';
    const skipSpecialTokens = optionalBoolean(o, 'skipSpecialTokens', true);
    return this.library('decode ids', () => this.hf.decode([...ids], { skip_special_tokens: skipSpecialTokens }));
  }

  /** The token string of one id (e.g. '▁Once'). */
  idToToken(id: number): string {
    const token = this.hf.id_to_token(id);
    if (token === undefined) fail('id', `a token id in [0, ${this.vocabSize})`, id, 'E_RANGE');
    return token;
  }

  /** The id of a token string, or undefined. */
  tokenToId(token: string): number | undefined {
    return this.hf.token_to_id(token) ?? undefined;
  }

  /** True when `tokenizer_config.json` has a chat template. */
  get hasChatTemplate(): boolean {
    return typeof this.config.chat_template === 'string';
  }

  /**
   * Renders chat messages with the model's chat template (Jinja, as in transformers'
   * `apply_chat_template`). `addGenerationPrompt` appends the opening of the assistant's turn.
   */
  applyChatTemplate(messages: ChatMessage[], options: { addGenerationPrompt?: boolean } = {}): string {
    const template = this.config.chat_template;
    if (typeof template !== 'string') {
      throw new PeftError('This tokenizer has no chat_template in its tokenizer_config.json', 'E_CONFIG');
    }
    if (!Array.isArray(messages)) fail('messages', 'an array of { role, content }', messages);
    messages.forEach((m, i) => {
      if (typeof m?.role !== 'string' || typeof m?.content !== 'string') fail(`messages[${i}]`, 'an object { role: string, content: string }', m);
    });
    const o = optionsObject(options);
    try {
      return new Template(template).render({
        messages,
        add_generation_prompt: optionalBoolean(o, 'addGenerationPrompt', false),
        bos_token: tokenText(this.config.bos_token) ?? '',
        eos_token: tokenText(this.config.eos_token) ?? '',
      });
    } catch (err) {
      throw new PeftError(`The chat template failed to render: ${(err as Error).message}`, 'E_FORMAT');
    }
  }
}

/** Loads `tokenizer.json` and, when present, `tokenizer_config.json` from a model directory. */
export function loadTokenizer(dir: string): Tokenizer {
  if (typeof dir !== 'string' || dir === '') fail('dir', 'a model directory', dir);
  const json = path.join(dir, 'tokenizer.json');
  if (!fs.existsSync(json)) throw new PeftError(`Expected a tokenizer.json in ${dir} but found none`, 'E_IO');
  const configPath = path.join(dir, 'tokenizer_config.json');
  const config = fs.existsSync(configPath) ? readJson(configPath) : {};
  return new Tokenizer(readJson(json), config);
}
