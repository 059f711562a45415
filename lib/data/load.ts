/** Reading JSONL files (or records in memory) into tokenized data sets, whole or split. */
import { PeftError } from '../errors';
import { Tokenizer } from '../models/tokenizer';
import { fail, optionalBoolean, optionalNumber, optionsObject, preview } from '../validate';
import { Dataset } from './dataset';
import { encodeSegments, IGNORE_INDEX } from './encode';
import { fromRecords, IN_MEMORY, readJsonl, type SourcedValue } from './jsonl';
import { packExamples } from './pack';
import { deriveSeed, permutation } from './random';
import { detectFormat, parseRecord } from './records';
import { recordSegments } from './render';
import { DATA_FORMATS, type ClassLabel, type DataFormat, type DataOptions, type DatasetStats, type Example } from './types';

/** A JSONL file path, or the records themselves (one object per example, as a line would hold). */
export type DataSource = string | readonly unknown[];

/** Separate files (or record arrays) for training, validation and test. */
export interface DataFiles {
  train: DataSource;
  valid?: DataSource;
  test?: DataSource;
}

/** One file split into training, validation and test records by a seeded shuffle. */
export interface DataSplit {
  data: DataSource;
  /** Fraction of the records for validation, in [0, 1). At least one record when above 0. Default 0. */
  validFraction?: number;
  /** Fraction of the records for test, in [0, 1). Default 0. */
  testFraction?: number;
  /** Seed of the split. Default 0. */
  seed?: number;
}

/** The data sets {@link loadDatasets} returns. */
export interface Datasets {
  train: Dataset;
  valid?: Dataset;
  test?: Dataset;
}

const SPLIT_SALT = 0x5350; // 'SP'

interface Settings {
  format: DataFormat | 'auto';
  maxSeqLength: number;
  trainOnPrompt: boolean;
  addBos: boolean;
  addEos: boolean | undefined;
  packing: boolean;
  keepEmpty: boolean;
  labels: readonly ClassLabel[] | undefined;
}

function settings(options: DataOptions | undefined): Settings {
  const o = optionsObject(options);
  const format = o.format ?? 'auto';
  if (format !== 'auto' && !DATA_FORMATS.includes(format as DataFormat)) {
    fail('option format', `'auto' or one of ${DATA_FORMATS.map((f) => `'${f}'`).join(', ')}`, format, 'E_CONFIG');
  }
  let labels: readonly ClassLabel[] | undefined;
  if (o.labels !== undefined) {
    const l = o.labels;
    const strings = Array.isArray(l) && l.length > 0 && l.every((x) => typeof x === 'string' && x !== '');
    const ints = Array.isArray(l) && l.length > 0 && l.every((x) => Number.isInteger(x) && (x as number) >= 0);
    if ((!strings && !ints) || new Set(l as unknown[]).size !== (l as unknown[]).length) {
      fail('option labels', 'a non-empty array of distinct strings or of distinct non-negative integers', l, 'E_CONFIG');
    }
    labels = l as ClassLabel[];
  }
  const addEos = o.addEos;
  if (addEos !== undefined && typeof addEos !== 'boolean') fail('option addEos', 'a boolean', addEos);
  return {
    format: format as DataFormat | 'auto',
    maxSeqLength: optionalNumber(o, 'maxSeqLength', 2048, { min: 1, integer: true }),
    trainOnPrompt: optionalBoolean(o, 'trainOnPrompt', false),
    addBos: optionalBoolean(o, 'addBos', true),
    addEos,
    packing: optionalBoolean(o, 'packing', false),
    keepEmpty: optionalBoolean(o, 'keepEmpty', false),
    labels,
  };
}

/** Examples of every record in a source, one per record and in order, before dropping and packing. */
interface ReadResult {
  source: string;
  format: DataFormat;
  examples: Example[];
  labelSet?: ClassLabel[];
}

function sourceValues(source: DataSource): { name: string; values: AsyncGenerator<SourcedValue> } {
  if (typeof source === 'string') {
    if (source === '') fail('the data source', 'a JSONL file path or an array of records', source);
    return { name: source, values: readJsonl(source) };
  }
  if (Array.isArray(source)) return { name: IN_MEMORY, values: fromRecords(source) };
  return fail('the data source', 'a JSONL file path or an array of records', source);
}

/** The labels of a classification set (the given ones, or the ones found, sorted) and each example's class id. */
function assignClassIds(examples: Example[], raw: ClassLabel[], given: readonly ClassLabel[] | undefined): ClassLabel[] {
  const first = examples[0].sources[0];
  const kind = typeof raw[0];
  raw.forEach((label, i) => {
    if (typeof label !== kind) {
      const s = examples[i].sources[0];
      fail(`"label" on ${s.file} line ${s.line}`, `a ${kind} like the label on line ${first.line}`, label, 'E_FORMAT');
    }
  });
  let labelSet: ClassLabel[];
  if (given) {
    if (typeof given[0] !== kind) fail('option labels', `${kind}s like the labels of ${first.file}`, given[0], 'E_CONFIG');
    labelSet = [...given];
  } else {
    const distinct = [...new Set(raw)];
    labelSet = kind === 'number' ? (distinct as number[]).sort((a, b) => a - b) : (distinct as string[]).sort();
  }
  const ids = new Map(labelSet.map((label, i) => [label, kind === 'number' ? (label as number) : i]));
  raw.forEach((label, i) => {
    const id = ids.get(label);
    if (id === undefined) {
      const s = examples[i].sources[0];
      fail(`"label" on ${s.file} line ${s.line}`, `one of the labels ${preview(labelSet, 200)}`, label, 'E_FORMAT');
    }
    examples[i].label = id;
  });
  return labelSet;
}

async function readExamples(source: DataSource, tokenizer: Tokenizer, s: Settings): Promise<ReadResult> {
  const { name, values } = sourceValues(source);
  let format: DataFormat | undefined = s.format === 'auto' ? undefined : s.format;
  const examples: Example[] = [];
  const rawLabels: ClassLabel[] = [];
  for await (const { value, source: where } of values) {
    if (format === undefined) format = detectFormat(value, where);
    if (examples.length === 0 && format === 'chat' && !tokenizer.hasChatTemplate) {
      throw new PeftError(
        `${name} holds chat records but the tokenizer has no chat_template: use a model whose tokenizer_config.json ` +
          'has one, or convert the data to the completion format',
        'E_CONFIG',
      );
    }
    const record = parseRecord(value, format, where);
    const chat = format === 'chat';
    const addEos = s.addEos ?? format !== 'classification';
    const encoded = encodeSegments(tokenizer, recordSegments(record, tokenizer, s.trainOnPrompt, where), {
      bosId: s.addBos && !chat ? tokenizer.bosId : undefined,
      eosId: addEos && !chat ? tokenizer.eosId : undefined,
      maxSeqLength: s.maxSeqLength,
    });
    examples.push({ ...encoded, sources: [where], segments: [0] });
    if (record.format === 'classification') rawLabels.push(record.label);
  }
  if (format === undefined) throw new PeftError(`Expected JSON records in ${name} but it holds none: put one JSON object per line`, 'E_FORMAT');
  const labelSet = format === 'classification' ? assignClassIds(examples, rawLabels, s.labels) : undefined;
  return { source: name, format, examples, labelSet };
}

function lossTokens(ex: Example): number {
  return ex.labels.reduce((n, l) => n + (l === IGNORE_INDEX ? 0 : 1), 0);
}

/** Drops examples without loss tokens, packs, and counts. */
function finish(read: ReadResult, examples: Example[], tokenizer: Tokenizer, s: Settings): Dataset {
  const classification = read.format === 'classification';
  if (s.packing && classification) {
    throw new PeftError('Packing does not apply to classification data (one label per sequence): set packing to false', 'E_CONFIG');
  }
  const kept = classification || s.keepEmpty ? examples : examples.filter((ex) => lossTokens(ex) > 0);
  if (kept.length === 0) {
    throw new PeftError(
      `No record of ${read.source} has a token that counts towards the loss ` +
        `(${examples.length} records; is maxSeqLength ${s.maxSeqLength} shorter than the prompts?)`,
      'E_FORMAT',
    );
  }
  const sequences = s.packing ? packExamples(kept, s.maxSeqLength) : kept;
  const lengths = sequences.map((ex) => ex.inputIds.length);
  const tokens = lengths.reduce((a, b) => a + b, 0);
  const stats: DatasetStats = {
    source: read.source,
    format: read.format,
    records: examples.length,
    examples: sequences.length,
    tokens,
    lossTokens: sequences.reduce((n, ex) => n + lossTokens(ex), 0),
    truncated: examples.filter((ex) => ex.truncated).length,
    dropped: examples.length - kept.length,
    packed: s.packing,
    maxSeqLength: s.maxSeqLength,
    minLength: Math.min(...lengths),
    maxLength: Math.max(...lengths),
    meanLength: tokens / sequences.length,
  };
  if (read.labelSet) stats.labelSet = read.labelSet;
  return new Dataset(sequences, stats, tokenizer.padId ?? tokenizer.eosId ?? 0);
}

function expectTokenizer(tokenizer: unknown): Tokenizer {
  if (!(tokenizer instanceof Tokenizer)) fail('tokenizer', 'a Tokenizer (loadTokenizer or model.tokenizer)', tokenizer);
  return tokenizer;
}

/**
 * Reads a JSONL file (line by line) or an array of records, detects or checks the format, and tokenizes
 * every record into input ids and labels (-100 where no loss).
 *
 * @example
 * ```ts
 * const tokenizer = loadTokenizer('models/stories260K-hf');
 * const train = await loadDataset('train.jsonl', tokenizer, { maxSeqLength: 256, packing: true });
 * console.log(train.stats());
 * for (const batch of train.batches(8, { seed: 1, epoch: 0 })) { batch.ids; batch.labels; batch.attentionMask; }
 * ```
 * @throws PeftError E_IO (unreadable file), E_FORMAT (a malformed line: names the file and 1-based line;
 *   no records), E_CONFIG (bad options; chat data without a chat template), E_UNSUPPORTED (a chat template
 *   that cannot be rendered incrementally).
 */
export async function loadDataset(source: DataSource, tokenizer: Tokenizer, options?: DataOptions): Promise<Dataset> {
  const t = expectTokenizer(tokenizer);
  const s = settings(options);
  const read = await readExamples(source, t, s);
  return finish(read, read.examples, t, s);
}

function isSplit(spec: DataFiles | DataSplit): spec is DataSplit {
  return 'data' in spec;
}

/**
 * Training, validation and test sets: from separate sources (`{ train, valid, test }`), or from one
 * source split by a seeded shuffle (`{ data, validFraction, testFraction, seed }`; each part keeps file
 * order). Classification sets share the training set's labels.
 */
export async function loadDatasets(spec: DataFiles | DataSplit, tokenizer: Tokenizer, options?: DataOptions): Promise<Datasets> {
  const t = expectTokenizer(tokenizer);
  optionsObject(spec, 'the data sources');
  const s = settings(options);
  if (!isSplit(spec)) {
    if (spec.train === undefined) {
      fail('the data sources', 'an object { train, valid?, test? } or { data, validFraction?, testFraction? }', spec, 'E_CONFIG');
    }
    const trainRead = await readExamples(spec.train, t, s);
    const train = finish(trainRead, trainRead.examples, t, s);
    const shared: Settings = { ...s, labels: s.labels ?? trainRead.labelSet };
    const other = async (source: DataSource | undefined) => {
      if (source === undefined) return undefined;
      const read = await readExamples(source, t, shared);
      return finish(read, read.examples, t, shared);
    };
    return { train, valid: await other(spec.valid), test: await other(spec.test) };
  }
  const o = spec as unknown as Record<string, unknown>;
  const validFraction = optionalNumber(o, 'validFraction', 0, { min: 0, max: 1 });
  const testFraction = optionalNumber(o, 'testFraction', 0, { min: 0, max: 1 });
  const seed = optionalNumber(o, 'seed', 0, { integer: true, min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER });
  const read = await readExamples(spec.data, t, s);
  const n = read.examples.length;
  const count = (f: number) => (f > 0 ? Math.max(1, Math.round(f * n)) : 0);
  const nValid = count(validFraction);
  const nTest = count(testFraction);
  if (nValid + nTest >= n) {
    throw new PeftError(
      `Expected validFraction + testFraction to leave training records but ${read.source} has ${n} records and the split takes ${nValid + nTest}`,
      'E_CONFIG',
    );
  }
  const order = permutation(n, deriveSeed(seed, SPLIT_SALT));
  const part = (from: number, to: number) => order.slice(from, to).sort((a, b) => a - b).map((i) => read.examples[i]);
  return {
    train: finish(read, part(nValid + nTest, n), t, s),
    valid: nValid > 0 ? finish(read, part(0, nValid), t, s) : undefined,
    test: nTest > 0 ? finish(read, part(nValid, nValid + nTest), t, s) : undefined,
  };
}
