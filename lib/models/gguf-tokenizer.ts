/**
 * A tokenizer from the vocabulary embedded in a GGUF file, built as the Hugging Face
 * `tokenizer.json` that transformers' converter makes from the same model, so both give the same
 * ids. Supported: `tokenizer.ggml.model = "llama"` (SentencePiece BPE, byte fallback) and `"gpt2"`
 * (byte-level BPE, see gguf-tokenizer-gpt2.ts).
 */
import { PeftError } from '../errors';
import { preview } from '../validate';
import { gpt2TokenizerFiles } from './gguf-tokenizer-gpt2';
import { list, tokenAt, TOKEN_TYPE } from './gguf-vocab';
import { Tokenizer } from './tokenizer';

/**
 * BPE merges from SentencePiece scores: every split of a vocabulary piece into two pieces that are
 * themselves in the vocabulary, ranked by the merged piece's score (higher first), ties in
 * vocabulary order.
 */
function mergesFromScores(tokens: string[], scores: number[], vocab: Map<string, number>): [string, string][] {
  const merges: { left: string; right: string; score: number; order: [number, number] }[] = [];
  tokens.forEach((piece, id) => {
    const local: typeof merges = [];
    const chars = [...piece];
    for (let i = 1; i < chars.length; i++) {
      const left = chars.slice(0, i).join('');
      const right = chars.slice(i).join('');
      if (vocab.has(left) && vocab.has(right)) local.push({ left, right, score: scores[id], order: [vocab.get(left)!, vocab.get(right)!] });
    }
    local.sort((a, b) => a.order[0] - b.order[0] || a.order[1] - b.order[1]);
    merges.push(...local);
  });
  // A stable sort keeps the vocabulary order within equal scores.
  return merges.sort((a, b) => b.score - a.score).map((m) => [m.left, m.right]);
}

/** The tokenizer of a GGUF file's metadata. */
export function tokenizerFromGguf(metadata: Record<string, unknown>): Tokenizer {
  const { tokenizer, tokenizerConfig } = ggufTokenizerFiles(metadata);
  return Tokenizer.fromJSON(tokenizer, tokenizerConfig);
}

/** The `tokenizer.json` and `tokenizer_config.json` objects of a GGUF file's vocabulary. */
export function ggufTokenizerFiles(metadata: Record<string, unknown>): { tokenizer: Record<string, unknown>; tokenizerConfig: Record<string, unknown> } {
  const model = metadata['tokenizer.ggml.model'];
  if (model === 'gpt2') return gpt2TokenizerFiles(metadata);
  if (model !== 'llama') {
    throw new PeftError(`The GGUF vocabulary type ${preview(model)} is not supported (llama and gpt2 are); pass { tokenizer: dir } instead`, 'E_UNSUPPORTED');
  }
  const tokens = list<string>(metadata, 'tokenizer.ggml.tokens', 'string');
  const scores = list<number>(metadata, 'tokenizer.ggml.scores', 'number');
  const types = list<number>(metadata, 'tokenizer.ggml.token_type', 'number');
  if (scores.length !== tokens.length || types.length !== tokens.length) {
    throw new PeftError(`Expected as many scores and token types as tokens (${tokens.length}) in the GGUF metadata`, 'E_FORMAT');
  }
  const vocab = new Map(tokens.map((t, i) => [t, i]));
  const name = (key: string) => tokenAt(metadata, key, tokens);
  const bos = name('tokenizer.ggml.bos_token_id');
  const eos = name('tokenizer.ggml.eos_token_id');
  const unk = name('tokenizer.ggml.unknown_token_id') ?? '<unk>';
  const addBos = metadata['tokenizer.ggml.add_bos_token'] !== false && bos !== undefined;
  const special = (id: number) => ({ id, content: tokens[id], single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  const sequence = (id: string, typeId: number) => ({ Sequence: { id, type_id: typeId } });
  const bosToken = (typeId: number) => ({ SpecialToken: { id: bos, type_id: typeId } });
  const json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: types.flatMap((t, id) => (t === TOKEN_TYPE.CONTROL || t === TOKEN_TYPE.UNKNOWN ? [special(id)] : [])),
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: '▁' },
        { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
      ],
    },
    pre_tokenizer: null,
    post_processor: addBos
      ? {
          type: 'TemplateProcessing',
          single: [bosToken(0), sequence('A', 0)],
          pair: [bosToken(0), sequence('A', 0), bosToken(1), sequence('B', 1)],
          special_tokens: { [bos]: { id: bos, ids: [vocab.get(bos)], tokens: [bos] } },
        }
      : null,
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: unk,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab: Object.fromEntries(vocab),
      merges: mergesFromScores(tokens, scores, vocab),
    },
  };
  // SentencePiece text keeps its spaces as they are (no clean-up before punctuation).
  return { tokenizer: json, tokenizerConfig: { bos_token: bos, eos_token: eos, unk_token: unk, clean_up_tokenization_spaces: false } };
}
