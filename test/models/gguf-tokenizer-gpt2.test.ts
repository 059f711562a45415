/**
 * GGUF `gpt2` (byte-level BPE) vocabularies. A small vocabulary is trained here with the published
 * byte-level BPE algorithm (GPT-2's bytes→unicode table, merges learned by pair frequency), then
 * written twice: as the Hugging Face tokenizer.json each model family ships (GPT-2, SmolLM, Llama 3,
 * Qwen2) and as GGUF metadata the way llama.cpp's converter stores it. Both must give the ids of an
 * encoder written here from the same published algorithm (regex pre-tokenization, lowest-rank
 * merge first).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { loadTokenizer, PeftError, readGguf } from '../../lib';
import { tokenizerFromGguf } from '../../lib/models/gguf-tokenizer';
import { writeGguf, type MetaValue } from '../helpers/gguf';
import { rng } from '../helpers/random';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-gpt2-vocab-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** GPT-2's bytes_to_unicode (encoder.py): printable Latin-1 bytes stand for themselves, the rest for 256 + n. */
function bytesToUnicode(): string[] {
  const map: string[] = new Array(256);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    map[b] = String.fromCodePoint(printable ? b : 256 + n++);
  }
  return map;
}
const BYTE_CHAR = bytesToUnicode();
const toByteLevel = (s: string) => [...Buffer.from(s, 'utf8')].map((b) => BYTE_CHAR[b]).join('');

// Pre-tokenization regexes of the published tokenizers (JavaScript syntax).
const GPT2_RE = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;
const LLAMA3_RE = /(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+/gu;
const QWEN2_RE = /(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+/gu;
// Hugging Face's Digits(individual_digits) first, then GPT-2's regex on each piece.
const digitsThenGpt2 = (s: string) => (s.match(/[^0-9]+|[0-9]/gu) ?? []).flatMap((p) => p.match(GPT2_RE) ?? []);

const CORPUS = [
  'Once upon a time, there was a little girl named Lily. She loved to play outside in the sun.',
  'The quick brown fox jumps over the lazy dog; the dog didn\'t mind, and they\'re friends now.',
  'In 2024 there were 365 days, 12 months and 52 weeks: 1 + 1 = 2, 10 * 10 = 100.',
  'Café, naïve, über, straße — les élèves mangent des crêpes. 東京は大きい。 🐶🐱',
  'def main():\n    print("hello world")\n    return 0\n\n\tindented\ttext  with   spaces',
].join('\n');

/** A byte-level BPE vocabulary learned from CORPUS: the 256 byte symbols, then one token per merge. */
function train(numMerges: number): { vocab: string[]; merges: [string, string][] } {
  const counts = new Map<string, number>();
  for (const w of CORPUS.match(GPT2_RE) ?? []) counts.set(toByteLevel(w), (counts.get(toByteLevel(w)) ?? 0) + 1);
  const words = [...counts].map(([w, c]) => ({ symbols: [...w], count: c }));
  const vocab = [...BYTE_CHAR];
  const known = new Set(vocab);
  const merges: [string, string][] = [];
  while (merges.length < numMerges) {
    const pairs = new Map<string, number>();
    for (const { symbols, count } of words) {
      for (let i = 0; i + 1 < symbols.length; i++) {
        const key = `${symbols[i]}\u0000${symbols[i + 1]}`;
        pairs.set(key, (pairs.get(key) ?? 0) + count);
      }
    }
    if (!pairs.size) break;
    // The most frequent pair; ties go to the smallest pair, so the vocabulary is deterministic.
    const [best] = [...pairs].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0];
    const [left, right] = best.split('\u0000');
    merges.push([left, right]);
    if (!known.has(left + right)) (known.add(left + right), vocab.push(left + right));
    for (const w of words) w.symbols = mergeAll(w.symbols, left, right);
  }
  return { vocab, merges };
}

function mergeAll(symbols: string[], left: string, right: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < symbols.length; i++) {
    if (i + 1 < symbols.length && symbols[i] === left && symbols[i + 1] === right) (out.push(left + right), i++);
    else out.push(symbols[i]);
  }
  return out;
}

const { vocab: learned, merges: MERGES } = train(300);
// A token no merge sequence builds (as in vocabularies converted from tiktoken): only a tokenizer
// that looks whole pre-tokens up first (Llama 3's ignore_merges) ever emits it.
const SHORTCUT = toByteLevel(' zebra');
const TOKENS = [...learned, SHORTCUT, '<|endoftext|>', '<|begin_of_text|>', '<|user|>'];
const ID = new Map(TOKENS.map((t, i) => [t, i]));
const [EOT, BOT, USER] = ['<|endoftext|>', '<|begin_of_text|>', '<|user|>'].map((t) => ID.get(t)!);
const TYPES = TOKENS.map((t, id) => (id === USER ? 4 : id === EOT || id === BOT ? 3 : 1)); // normal, control, user-defined
const RANK = new Map(MERGES.map(([a, b], i) => [`${a}\u0000${b}`, i]));

/** GPT-2's bpe(): merge the lowest-ranked adjacent pair everywhere, until no pair has a rank. */
function bpe(word: string): string[] {
  let symbols = [...word];
  for (;;) {
    let best = -1;
    for (let i = 0; i + 1 < symbols.length; i++) {
      const r = RANK.get(`${symbols[i]}\u0000${symbols[i + 1]}`);
      if (r !== undefined && (best < 0 || r < RANK.get(`${symbols[best]}\u0000${symbols[best + 1]}`)!)) best = i;
    }
    if (best < 0) return symbols;
    symbols = mergeAll(symbols, symbols[best], symbols[best + 1]);
  }
}

interface Family {
  pre: string;
  preTokenize: (text: string) => string[];
  hfPreTokenizer: object;
  ignoreMerges: boolean;
  bos?: number;
  cleanSpaces: boolean;
}

const byteLevel = (useRegex: boolean) => ({ type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: useRegex });
const hfSplit = (regex: string) => ({ type: 'Split', pattern: { Regex: regex }, behavior: 'Isolated', invert: false });
// The regexes as the models' tokenizer.json files write them.
const LLAMA3_JSON = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2_JSON = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

const FAMILIES: Family[] = [
  { pre: 'gpt-2', preTokenize: (s) => s.match(GPT2_RE) ?? [], hfPreTokenizer: byteLevel(true), ignoreMerges: false, cleanSpaces: true },
  {
    pre: 'smollm',
    preTokenize: digitsThenGpt2,
    hfPreTokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Digits', individual_digits: true }, byteLevel(true)] },
    ignoreMerges: false,
    cleanSpaces: false,
  },
  {
    pre: 'llama-bpe',
    preTokenize: (s) => s.match(LLAMA3_RE) ?? [],
    hfPreTokenizer: { type: 'Sequence', pretokenizers: [hfSplit(LLAMA3_JSON), byteLevel(false)] },
    ignoreMerges: true,
    bos: BOT,
    cleanSpaces: true,
  },
  {
    pre: 'qwen2',
    preTokenize: (s) => s.match(QWEN2_RE) ?? [],
    hfPreTokenizer: { type: 'Sequence', pretokenizers: [hfSplit(QWEN2_JSON), byteLevel(false)] },
    ignoreMerges: false,
    cleanSpaces: false,
  },
];

/** The reference encoder: split off added tokens, pre-tokenize, map bytes, BPE (or a whole-word lookup). */
function referenceEncode(text: string, f: Family): number[] {
  const ids: number[] = f.bos === undefined ? [] : [f.bos];
  for (const part of text.split(/(<\|endoftext\|>|<\|begin_of_text\|>|<\|user\|>)/)) {
    if (ID.has(part) && part.startsWith('<|')) {
      ids.push(ID.get(part)!);
      continue;
    }
    for (const word of f.preTokenize(part).map(toByteLevel)) {
      const pieces = f.ignoreMerges && ID.has(word) ? [word] : bpe(word);
      for (const p of pieces) ids.push(ID.get(p)!);
    }
  }
  return ids;
}

/** The tokenizer.json the original model would ship with this vocabulary. */
function hfTokenizerJson(f: Family): object {
  const added = (id: number, special: boolean) => ({ id, content: TOKENS[id], single_word: false, lstrip: false, rstrip: false, normalized: false, special });
  const bos = f.bos === undefined ? undefined : TOKENS[f.bos];
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [added(EOT, true), added(BOT, true), added(USER, false)],
    normalizer: null,
    pre_tokenizer: f.hfPreTokenizer,
    post_processor: bos
      ? {
          type: 'TemplateProcessing',
          single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
          pair: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: bos, type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
          special_tokens: { [bos]: { id: bos, ids: [f.bos], tokens: [bos] } },
        }
      : { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: f.ignoreMerges,
      vocab: Object.fromEntries(TOKENS.map((t, i) => [t, i])),
      merges: MERGES.map(([a, b]) => `${a} ${b}`),
    },
  };
}

/** GGUF metadata as llama.cpp's converter writes a gpt2 vocabulary. */
function ggufMetadata(f: Family, extra: [string, MetaValue][] = []): [string, MetaValue][] {
  return [
    ['general.architecture', { type: 'string', value: 'llama' }],
    ['tokenizer.ggml.model', { type: 'string', value: 'gpt2' }],
    ['tokenizer.ggml.pre', { type: 'string', value: f.pre }],
    ['tokenizer.ggml.tokens', { type: 'array', elem: 'string', value: TOKENS }],
    ['tokenizer.ggml.token_type', { type: 'array', elem: 'i32', value: TYPES }],
    ['tokenizer.ggml.merges', { type: 'array', elem: 'string', value: MERGES.map(([a, b]) => `${a} ${b}`) }],
    ['tokenizer.ggml.bos_token_id', { type: 'u32', value: f.bos ?? EOT }],
    ['tokenizer.ggml.eos_token_id', { type: 'u32', value: EOT }],
    ...extra,
  ];
}

function ggufMetadataFile(name: string, metadata: [string, MetaValue][]): Record<string, unknown> {
  const file = path.join(tmp, `${name}.gguf`);
  fs.writeFileSync(file, writeGguf({ metadata }).bytes);
  const g = readGguf(file);
  const m = { ...g.metadata } as Record<string, unknown>;
  g.dispose();
  return m;
}

function hfTokenizer(f: Family) {
  const dir = path.join(tmp, `hf-${f.pre}`);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(hfTokenizerJson(f)));
  const special = (id: number | undefined) => (id === undefined ? undefined : TOKENS[id]);
  fs.writeFileSync(
    path.join(dir, 'tokenizer_config.json'),
    JSON.stringify({ bos_token: special(f.bos ?? EOT), eos_token: '<|endoftext|>', clean_up_tokenization_spaces: f.cleanSpaces }),
  );
  return loadTokenizer(dir);
}

function texts(): string[] {
  const random = rng(23);
  const alphabet = [...'abcdefghijklmnopqrstuvwxyz ABCXYZ.,!?\'"\n\t\r0123456789éüß東京🐶—  '];
  return [
    CORPUS,
    'Once upon a time, there was a little girl named Lily.',
    '  leading, trailing and   repeated spaces  ',
    'Numbers: 3.14159, 1000000, 2024-01-01, 12345678901234567890',
    'She said "I\'ll go", he\'d stay; THEY\'RE HERE, it\'S fine.',
    'Lines\nand\n\nblank lines\r\n\twith tabs\t\n',
    'Unicode: naïve café 🐶 — über straße 東京 😀😀',
    'a zebra, two zebras and AZEBRA',
    'special <|endoftext|> tokens <|user|> in<|begin_of_text|>text',
    '',
    ' ',
    ...Array.from({ length: 60 }, () => Array.from({ length: 1 + Math.floor(random() * 50) }, () => alphabet[Math.floor(random() * alphabet.length)]).join('')),
  ];
}

describe.each(FAMILIES)('a GGUF gpt2 vocabulary with tokenizer.ggml.pre = $pre', (family) => {
  const fromGguf = tokenizerFromGguf(ggufMetadataFile(family.pre, ggufMetadata(family)));
  const fromHf = hfTokenizer(family);

  it('gives the ids of the published byte-level BPE algorithm and of the model\'s tokenizer.json', () => {
    for (const text of texts()) {
      const expected = referenceEncode(text, family);
      expect([text, fromGguf.encode(text)]).toEqual([text, expected]);
      expect([text, fromHf.encode(text)]).toEqual([text, expected]);
    }
    expect(fromGguf.encode('hi', { addSpecialTokens: false })).toEqual(referenceEncode('hi', { ...family, bos: undefined }));
  });

  it('decodes as the model\'s tokenizer.json does, and byte-level text round-trips', () => {
    for (const text of texts().filter((t) => !t.includes('<|'))) {
      const ids = fromGguf.encode(text);
      expect(fromGguf.decode(ids)).toBe(fromHf.decode(ids));
      if (!family.cleanSpaces) expect(fromGguf.decode(ids)).toBe(text);
    }
    const withAdded = [USER, ...fromGguf.encode(' ok', { addSpecialTokens: false })];
    expect(fromGguf.decode(withAdded)).toBe(fromHf.decode(withAdded));
    expect(fromGguf.decode(withAdded)).toBe('<|user|> ok');
    expect([fromGguf.bosId, fromGguf.eosId, fromGguf.vocabSize]).toEqual([family.bos ?? EOT, EOT, TOKENS.length]);
  });
});

describe('GGUF gpt2 vocabulary details', () => {
  const gpt2 = FAMILIES[0];
  const llama3 = FAMILIES[2];

  it('looks whole pre-tokens up first only where the pre-tokenizer says so (Llama 3)', () => {
    const viaMerges = tokenizerFromGguf(ggufMetadataFile('g', ggufMetadata(gpt2))).encode(' zebra');
    const whole = tokenizerFromGguf(ggufMetadataFile('l', ggufMetadata(llama3))).encode(' zebra', { addSpecialTokens: false });
    expect(whole).toEqual([ID.get(SHORTCUT)]);
    expect(viaMerges.length).toBeGreaterThan(1);
  });

  it('follows tokenizer.ggml.add_bos_token and add_eos_token over the pre-tokenizer\'s default', () => {
    const noBos = tokenizerFromGguf(ggufMetadataFile('nb', ggufMetadata(llama3, [['tokenizer.ggml.add_bos_token', { type: 'bool', value: false }]])));
    expect(noBos.encode('hi')).toEqual(referenceEncode('hi', { ...llama3, bos: undefined }));
    const both = tokenizerFromGguf(
      ggufMetadataFile('be', ggufMetadata(gpt2, [
        ['tokenizer.ggml.add_bos_token', { type: 'bool', value: true }],
        ['tokenizer.ggml.add_eos_token', { type: 'bool', value: true }],
      ])),
    );
    expect(both.encode('hi')).toEqual([EOT, ...referenceEncode('hi', gpt2), EOT]);
  });

  it('treats a file without tokenizer.ggml.pre as GPT-2', () => {
    const metadata = Object.fromEntries(ggufMetadata(gpt2).filter(([k]) => k !== 'tokenizer.ggml.pre').map(([k, v]) => [k, v.value]));
    expect(tokenizerFromGguf(metadata).encode(CORPUS)).toEqual(referenceEncode(CORPUS, gpt2));
  });

  const code = (fn: () => unknown) => {
    try {
      fn();
    } catch (e) {
      if (e instanceof PeftError) return e.code;
      throw e;
    }
    return 'no error';
  };
  const base = () => Object.fromEntries(ggufMetadata(gpt2).map(([k, v]) => [k, v.value])) as Record<string, unknown>;

  it('rejects unknown vocabulary and pre-tokenizer types with E_UNSUPPORTED', () => {
    expect(code(() => tokenizerFromGguf({ ...base(), 'tokenizer.ggml.model': 'rwkv' }))).toBe('E_UNSUPPORTED');
    expect(code(() => tokenizerFromGguf({ ...base(), 'tokenizer.ggml.model': undefined }))).toBe('E_UNSUPPORTED');
    expect(code(() => tokenizerFromGguf({ ...base(), 'tokenizer.ggml.pre': 'tekken' }))).toBe('E_UNSUPPORTED');
    expect(code(() => tokenizerFromGguf({ ...base(), 'tokenizer.ggml.pre': 'toString' }))).toBe('E_UNSUPPORTED');
  });

  it('rejects malformed vocabularies with E_FORMAT', () => {
    const b = base();
    expect(code(() => tokenizerFromGguf({ ...b, 'tokenizer.ggml.merges': undefined }))).toBe('E_FORMAT');
    expect(code(() => tokenizerFromGguf({ ...b, 'tokenizer.ggml.merges': ['nospace'] }))).toBe('E_FORMAT');
    expect(code(() => tokenizerFromGguf({ ...b, 'tokenizer.ggml.merges': [1, 2] }))).toBe('E_FORMAT');
    expect(code(() => tokenizerFromGguf({ ...b, 'tokenizer.ggml.tokens': [1, 2, 3] }))).toBe('E_FORMAT');
    expect(code(() => tokenizerFromGguf({ ...b, 'tokenizer.ggml.token_type': [1] }))).toBe('E_FORMAT');
    expect(code(() => tokenizerFromGguf({ ...b, 'tokenizer.ggml.pre': 7 }))).toBe('E_FORMAT');
  });
});
