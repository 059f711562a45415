/**
 * Tokenizers: Hugging Face `tokenizer.json` (through @huggingface/tokenizers) with the special
 * tokens and chat template of `tokenizer_config.json` (templates rendered with @huggingface/jinja).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { Template } from '@huggingface/jinja';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';

import { PeftError } from '../errors';
import { fail, optionalBoolean, optionsObject } from '../validate';

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
    const vocab = this.hf.get_vocab() as unknown as Map<string, number> | Record<string, number>;
    const ids = vocab instanceof Map ? [...vocab.values()] : Object.values(vocab);
    this.vocabSize = ids.length ? Math.max(...ids) + 1 : 0;
  }

  /** Builds a tokenizer from parsed `tokenizer.json` (and `tokenizer_config.json`) objects. */
  static fromJSON(tokenizerJson: Record<string, unknown>, config: TokenizerConfig = {}): Tokenizer {
    return new Tokenizer(tokenizerJson, config);
  }

  /** Token ids of `text`. */
  encode(text: string, options?: EncodeOptions): number[] {
    if (typeof text !== 'string') fail('text', 'a string', text);
    const o = optionsObject(options);
    return this.hf.encode(text, { add_special_tokens: optionalBoolean(o, 'addSpecialTokens', true) }).ids;
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
    return this.hf.decode([...ids], { skip_special_tokens: optionalBoolean(o, 'skipSpecialTokens', true) });
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
