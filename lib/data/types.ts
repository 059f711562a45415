/** Types shared by the data pipeline: formats, examples, options, statistics. */

/**
 * The JSONL formats, named by the keys of a record:
 * - `text`: `{"text"}`, loss on every token;
 * - `completion`: `{"prompt","completion"}`, loss on the completion;
 * - `chat`: `{"messages":[{"role","content"}]}`, rendered with the tokenizer's chat template, loss on assistant turns;
 * - `alpaca`: `{"instruction","input","output"}` (`input` may be missing or empty), loss on the output;
 * - `classification`: `{"text","label"}`, one class id per example.
 */
export type DataFormat = 'text' | 'completion' | 'chat' | 'alpaca' | 'classification';

/** The formats in the order auto-detection tries them (the most specific first). */
export const DATA_FORMATS: readonly DataFormat[] = ['chat', 'alpaca', 'completion', 'classification', 'text'];

/** Where a record came from, for error messages and debugging. */
export interface RecordSource {
  /** The file name, or `<records>` for records passed in memory. */
  file: string;
  /** 1-based line number (the array index + 1 for records in memory). */
  line: number;
}

/**
 * One training sequence. `labels[t]` is `inputIds[t]` where position t counts towards the loss and -100
 * elsewhere; the model shifts (position t predicts labels[t + 1]), as Hugging Face causal LMs do.
 * `labels[0]` is always -100: nothing predicts the first token.
 */
export interface Example {
  inputIds: number[];
  labels: number[];
  /** The record(s) this came from: one, or several for a packed sequence. */
  sources: RecordSource[];
  /** Start offsets of the packed examples in `inputIds` (`[0]` when not packed). */
  segments: number[];
  /** The class id, for the classification format. */
  label?: number;
  /** True when the sequence was cut to the maximum length. */
  truncated: boolean;
}

/** A class label as written in the file: a string (mapped to ids in sorted order) or an integer id. */
export type ClassLabel = string | number;

/** Options of {@link loadDataset}. */
export interface DataOptions {
  /** The record format; `'auto'` (default) detects it from the keys of the first record. */
  format?: DataFormat | 'auto';
  /** Longest sequence in tokens; longer ones are cut at the end (counted in {@link DatasetStats.truncated}). Default 2048. */
  maxSeqLength?: number;
  /** Also compute the loss on prompts (completion, alpaca) and non-assistant turns (chat). Default false. */
  trainOnPrompt?: boolean;
  /** Put the tokenizer's BOS token first (not for chat, whose template decides). Default true when it has one. */
  addBos?: boolean;
  /** End each sequence with the EOS token (text, completion, alpaca; chat templates end turns themselves). Default true; false for classification. */
  addEos?: boolean;
  /** Concatenate consecutive examples into sequences of up to `maxSeqLength` tokens. Default false. */
  packing?: boolean;
  /**
   * The class labels of a classification set, index = class id (e.g. the training set's
   * {@link DatasetStats.labelSet}, so that validation ids match). Default: the labels found, sorted.
   */
  labels?: readonly ClassLabel[];
  /** Keep sequences with no loss token (e.g. a prompt cut by truncation). Default false: they are dropped and counted. */
  keepEmpty?: boolean;
}

/** What {@link Dataset.stats} reports. */
export interface DatasetStats {
  /** The file, or `<records>`. */
  source: string;
  format: DataFormat;
  /** Records read (non-blank lines). */
  records: number;
  /** Sequences in the data set (after dropping and packing). */
  examples: number;
  /** Tokens over all sequences (no padding). */
  tokens: number;
  /** Tokens that count towards the loss. */
  lossTokens: number;
  /** Records cut to `maxSeqLength`. */
  truncated: number;
  /** Records dropped because no token counted towards the loss. */
  dropped: number;
  packed: boolean;
  maxSeqLength: number;
  /** Shortest, longest and mean sequence length in tokens (0 for an empty set). */
  minLength: number;
  maxLength: number;
  meanLength: number;
  /** Classification only: the labels, index = class id. */
  labelSet?: ClassLabel[];
}

/** Where a pass over the data stands: the epoch and the index of the next batch in it. Serializable as JSON. */
export interface DataPosition {
  epoch: number;
  index: number;
}

/** A padded batch, padded on the right. */
export interface Batch {
  /** [batch, seq] token ids, `padId` after each sequence's end. */
  ids: number[][];
  /** [batch, seq] labels, -100 on padding. */
  labels: number[][];
  /** [batch, seq] 1 on tokens, 0 on padding. */
  attentionMask: number[][];
  /** [batch] class ids, for the classification format. */
  classLabels?: number[];
  /** Indices of the examples in {@link Dataset.examples}. */
  indices: number[];
  /** Where this batch was: its epoch and index. */
  position: DataPosition;
  /** Where the next batch is: save this to resume after this batch. */
  next: DataPosition;
}
