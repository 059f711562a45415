/**
 * GGUF vocabularies of type `gpt2` (byte-level BPE: GPT-2, Llama 3, Qwen2, SmolLM, StarCoder, ...)
 * rebuilt as the Hugging Face `tokenizer.json` that llama.cpp's converter read them from: the tokens
 * (byte-level strings such as `Ġthe`), the merges by rank, the special tokens from the token types,
 * and the pre-tokenizer that `tokenizer.ggml.pre` names.
 */
import { PeftError } from '../errors';
import { flag, list, tokenAt, TOKEN_TYPE } from './gguf-vocab';
import { Tokenizer } from './tokenizer';
import { preview } from '../validate';

/** The pre-tokenizers of the original tokenizer.json files, by the family llama.cpp groups them in. */
const BYTE_LEVEL = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
const BYTE_LEVEL_NO_REGEX = { ...BYTE_LEVEL, use_regex: false };
// The regexes as written in the models' tokenizer.json (Oniguruma syntax, which @huggingface/tokenizers translates).
const LLAMA3_REGEX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2_REGEX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const split = (regex: string) => ({ type: 'Split', pattern: { Regex: regex }, behavior: 'Isolated', invert: false });

const PRE_TOKENIZERS = {
  gpt2: BYTE_LEVEL,
  digits: { type: 'Sequence', pretokenizers: [{ type: 'Digits', individual_digits: true }, BYTE_LEVEL] },
  llama3: { type: 'Sequence', pretokenizers: [split(LLAMA3_REGEX), BYTE_LEVEL_NO_REGEX] },
  qwen2: { type: 'Sequence', pretokenizers: [split(QWEN2_REGEX), BYTE_LEVEL_NO_REGEX] },
};

interface PreType {
  family: keyof typeof PRE_TOKENIZERS;
  /** Decoding removes the space before punctuation (llama.cpp's clean_spaces). */
  cleanSpaces: boolean;
  /** A pre-token that is itself in the vocabulary is one token, whatever the merges say. */
  ignoreMerges?: boolean;
  /** A BOS token is added unless tokenizer.ggml.add_bos_token says otherwise. */
  addBos?: boolean;
}

/** `tokenizer.ggml.pre` values, with the flags llama.cpp (llama-vocab.cpp) gives each. */
const PRE_TYPES: Record<string, PreType> = {
  'default': { family: 'gpt2', cleanSpaces: true },
  'gpt-2': { family: 'gpt2', cleanSpaces: true },
  'phi-2': { family: 'gpt2', cleanSpaces: true },
  'roberta-bpe': { family: 'gpt2', cleanSpaces: true },
  'mpt': { family: 'gpt2', cleanSpaces: true },
  'olmo': { family: 'gpt2', cleanSpaces: true },
  'jais': { family: 'gpt2', cleanSpaces: true },
  'starcoder': { family: 'digits', cleanSpaces: true },
  'refact': { family: 'digits', cleanSpaces: true },
  'codeshell': { family: 'digits', cleanSpaces: true },
  'exaone': { family: 'digits', cleanSpaces: true },
  'minerva-7b': { family: 'digits', cleanSpaces: true },
  'command-r': { family: 'digits', cleanSpaces: false },
  'smollm': { family: 'digits', cleanSpaces: false },
  'llama3': { family: 'llama3', cleanSpaces: true, ignoreMerges: true, addBos: true },
  'llama-v3': { family: 'llama3', cleanSpaces: true, ignoreMerges: true, addBos: true },
  'llama-bpe': { family: 'llama3', cleanSpaces: true, ignoreMerges: true, addBos: true },
  'falcon3': { family: 'llama3', cleanSpaces: true, ignoreMerges: true, addBos: true },
  'dbrx': { family: 'llama3', cleanSpaces: true },
  'smaug-bpe': { family: 'llama3', cleanSpaces: true },
  'qwen2': { family: 'qwen2', cleanSpaces: false },
  'stablelm2': { family: 'qwen2', cleanSpaces: true },
  'megrez': { family: 'qwen2', cleanSpaces: true },
};

/** The `tokenizer.ggml.pre` names this converter knows. */
export const GPT2_PRE_TYPES: readonly string[] = Object.keys(PRE_TYPES);

function preType(metadata: Record<string, unknown>): PreType {
  const pre = metadata['tokenizer.ggml.pre'];
  // Files written before llama.cpp recorded the pre-tokenizer: GPT-2's own regex (llama.cpp guesses
  // a different "default"; neither can know the original).
  if (pre === undefined || pre === '') return PRE_TYPES['gpt-2'];
  if (typeof pre !== 'string') throw new PeftError(`Expected a string for tokenizer.ggml.pre in the GGUF metadata but received ${typeof pre}`, 'E_FORMAT');
  const known = Object.prototype.hasOwnProperty.call(PRE_TYPES, pre) ? PRE_TYPES[pre] : undefined;
  if (!known) {
    throw new PeftError(
      `The GGUF pre-tokenizer type ${JSON.stringify(pre)} is not supported (supported: ${GPT2_PRE_TYPES.join(', ')}); pass { tokenizer: dir } instead`,
      'E_UNSUPPORTED',
    );
  }
  return known;
}

/** "Ġt he" → ["Ġt", "he"]: split at the first space after the first character, as llama.cpp does. */
function mergePairs(merges: string[]): [string, string][] {
  return merges.map((merge, i) => {
    const at = merge.indexOf(' ', 1);
    if (at < 0) throw new PeftError(`Expected two tokens separated by a space for tokenizer.ggml.merges[${i}] but received ${preview(merge)}`, 'E_FORMAT');
    return [merge.slice(0, at), merge.slice(at + 1)];
  });
}

/** The tokenizer of a GGUF file whose `tokenizer.ggml.model` is `gpt2`. */
export function gpt2TokenizerFromGguf(metadata: Record<string, unknown>): Tokenizer {
  const { tokenizer, tokenizerConfig } = gpt2TokenizerFiles(metadata);
  return Tokenizer.fromJSON(tokenizer, tokenizerConfig);
}

/** The `tokenizer.json` and `tokenizer_config.json` objects of a `gpt2` GGUF vocabulary. */
export function gpt2TokenizerFiles(metadata: Record<string, unknown>): { tokenizer: Record<string, unknown>; tokenizerConfig: Record<string, unknown> } {
  const pre = preType(metadata);
  const tokens = list<string>(metadata, 'tokenizer.ggml.tokens', 'string');
  const types = metadata['tokenizer.ggml.token_type'] === undefined
    ? tokens.map(() => TOKEN_TYPE.NORMAL)
    : list<number>(metadata, 'tokenizer.ggml.token_type', 'number');
  if (types.length !== tokens.length) {
    throw new PeftError(`Expected as many token types as tokens (${tokens.length}) in the GGUF metadata but received ${types.length}`, 'E_FORMAT');
  }
  if (metadata['tokenizer.ggml.merges'] === undefined) throw new PeftError('Expected tokenizer.ggml.merges in the GGUF metadata of a gpt2 vocabulary but found none', 'E_FORMAT');
  const merges = mergePairs(list<string>(metadata, 'tokenizer.ggml.merges', 'string'));
  // llama.cpp names empty tokens the same way, so that every id keeps a distinct string.
  const names = tokens.map((t, id) => (t === '' ? `[EMPTY_${id}]` : t));
  const bos = tokenAt(metadata, 'tokenizer.ggml.bos_token_id', names);
  const eos = tokenAt(metadata, 'tokenizer.ggml.eos_token_id', names);
  const unk = tokenAt(metadata, 'tokenizer.ggml.unknown_token_id', names);
  const pad = tokenAt(metadata, 'tokenizer.ggml.padding_token_id', names);
  const addBos = (flag(metadata, 'tokenizer.ggml.add_bos_token') ?? pre.addBos ?? false) && bos !== undefined;
  const addEos = (flag(metadata, 'tokenizer.ggml.add_eos_token') ?? false) && eos !== undefined;
  const added = (id: number, special: boolean) => ({ id, content: names[id], single_word: false, lstrip: false, rstrip: false, normalized: false, special });
  const piece = (id: string, typeId: number) => ({ Sequence: { id, type_id: typeId } });
  const specials = (typeId: number, which: (string | undefined)[]) => which.flatMap((t) => (t === undefined ? [] : [{ SpecialToken: { id: t, type_id: typeId } }]));
  const around = (id: string, typeId: number) => [...specials(typeId, [addBos ? bos : undefined]), piece(id, typeId), ...specials(typeId, [addEos ? eos : undefined])];
  const vocab: Record<string, number> = {};
  names.forEach((t, id) => (vocab[t] = id));
  const json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: types.flatMap((t, id) => {
      if (t === TOKEN_TYPE.CONTROL || t === TOKEN_TYPE.UNKNOWN) return [added(id, true)];
      return t === TOKEN_TYPE.USER_DEFINED ? [added(id, false)] : [];
    }),
    normalizer: null,
    pre_tokenizer: PRE_TOKENIZERS[pre.family],
    post_processor: addBos || addEos
      ? {
          type: 'TemplateProcessing',
          single: around('A', 0),
          pair: [...around('A', 0), ...around('B', 1)],
          special_tokens: Object.fromEntries(
            [addBos ? bos : undefined, addEos ? eos : undefined].flatMap((t) => (t === undefined ? [] : [[t, { id: t, ids: [vocab[t]], tokens: [t] }]])),
          ),
        }
      : { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: unk ?? null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: pre.ignoreMerges ?? false,
      vocab,
      merges,
    },
  };
  return { tokenizer: json, tokenizerConfig: { bos_token: bos, eos_token: eos, unk_token: unk, pad_token: pad, clean_up_tokenization_spaces: pre.cleanSpaces } };
}
