import * as fs from 'node:fs';
import * as path from 'node:path';

import { loadDataset, loadDatasets, PeftError } from '../../lib';
import { stories, tempDir, writeJsonl } from './fixtures';

const tok = stories();

async function failure(promise: Promise<unknown>): Promise<PeftError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(PeftError);
    return err as PeftError;
  }
  throw new Error('expected a PeftError');
}

describe('malformed lines are E_FORMAT errors naming the file and the 1-based line', () => {
  it('bad JSON (blank lines count as lines)', async () => {
    const file = writeJsonl('train.jsonl', [{ text: 'a' }, '', '{"text": "b"', { text: 'c' }]);
    const err = await failure(loadDataset(file, tok));
    expect(err.code).toBe('E_FORMAT');
    expect(err.message).toMatch(new RegExp(`^Expected a JSON object on ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} line 3 but received invalid JSON \\(`));
  });

  it('missing and wrongly typed fields, non-objects', async () => {
    const file = writeJsonl('pc.jsonl', [{ prompt: 'a', completion: 'b' }, { prompt: 'a', completion: 'b' }, { prompt: 'a' }]);
    expect((await failure(loadDataset(file, tok))).message).toBe(`Expected a string for "completion" on ${file} line 3 but received undefined`);
    const typed = writeJsonl('typed.jsonl', [{ text: 'a' }, { text: 42 }]);
    expect((await failure(loadDataset(typed, tok))).message).toBe(`Expected a string for "text" on ${typed} line 2 but received the number 42`);
    const arr = writeJsonl('arr.jsonl', [{ text: 'a' }, '[1, 2]']);
    const e = await failure(loadDataset(arr, tok));
    expect(e.code).toBe('E_FORMAT');
    expect(e.message).toMatch(/^Expected a JSON object with the keys \{"text"\}, .* for .* but received an array of length 2$/);
    expect(e.message).toContain(`for ${arr} line 2 but`);
    const alpaca = writeJsonl('alpaca.jsonl', [{ instruction: 'a', output: 'b' }, { instruction: 'a', input: 5, output: 'b' }]);
    expect((await failure(loadDataset(alpaca, tok))).message).toBe(`Expected a string for "input" on ${alpaca} line 2 but received the number 5`);
  });

  it('a first record of no known format', async () => {
    const file = writeJsonl('odd.jsonl', [{ question: 'a', answer: 'b' }]);
    const err = await failure(loadDataset(file, tok));
    expect(err.code).toBe('E_FORMAT');
    expect(err.message).toBe(
      `Expected a record with the keys {"text"}, {"prompt","completion"}, {"messages"}, {"instruction","input","output"} or {"text","label"} on ${file} line 1 but received the keys "question", "answer"`,
    );
  });

  it('records in memory are numbered from 1 as <records>', async () => {
    const err = await failure(loadDataset([{ text: 'a' }, { text: null }], tok));
    expect(err.message).toBe('Expected a string for "text" on <records> line 2 but received null');
  });
});

describe('files and sets that cannot be used', () => {
  it('a missing file or a folder is E_IO naming it', async () => {
    const missing = path.join(tempDir(), 'nope.jsonl');
    const err = await failure(loadDataset(missing, tok));
    expect([err.code, err.message]).toEqual(['E_IO', expect.stringContaining(`Could not read the data file ${missing}`)]);
    const dir = tempDir();
    expect((await failure(loadDataset(dir, tok))).code).toBe('E_IO');
  });

  it('an empty file (or only blank lines) is E_FORMAT', async () => {
    const file = path.join(tempDir(), 'empty.jsonl');
    fs.writeFileSync(file, '\n  \n');
    const err = await failure(loadDataset(file, tok));
    expect([err.code, err.message]).toEqual(['E_FORMAT', `Expected JSON records in ${file} but it holds none: put one JSON object per line`]);
    expect((await failure(loadDataset([], tok))).code).toBe('E_FORMAT');
  });

  it('a set where no record has a loss token after truncation is E_FORMAT', async () => {
    const err = await failure(loadDataset([{ prompt: 'Once upon a time there was a dog.', completion: ' It ran.' }], tok, { maxSeqLength: 4 }));
    expect(err.code).toBe('E_FORMAT');
    expect(err.message).toMatch(/No record of <records> has a token that counts towards the loss/);
  });

  it('reads CRLF line ends and a byte-order mark', async () => {
    const file = path.join(tempDir(), 'crlf.jsonl');
    fs.writeFileSync(file, '\ufeff{"text": "One"}\r\n{"text": "Two"}\r\n');
    const ds = await loadDataset(file, tok);
    expect(ds.examples.map((e) => tok.decode(e.inputIds))).toEqual(['One', 'Two']);
  });

  it('bad options are PeftErrors', async () => {
    const data = [{ text: 'a' }];
    expect((await failure(loadDataset(data, tok, { maxSeqLength: 0 }))).code).toBe('E_RANGE');
    expect((await failure(loadDataset(data, tok, { packing: 'yes' as never }))).code).toBe('E_ARGUMENT');
    expect((await failure(loadDataset(data, tok, { labels: ['a', 'a'] }))).code).toBe('E_CONFIG');
    expect((await failure(loadDataset([{ text: 'a', label: 'x' }], tok, { packing: true }))).code).toBe('E_CONFIG');
    expect((await failure(loadDataset(42 as never, tok))).code).toBe('E_ARGUMENT');
    expect((await failure(loadDatasets({ data: data, validFraction: 1.5 }, tok))).code).toBe('E_RANGE');
    expect((await failure(loadDatasets({ data: data, validFraction: 0.5 }, tok))).code).toBe('E_CONFIG');
  });
});
