import { Dataset, loadDataset, loadDatasets, type Batch } from '../../lib';
import { stories, writeJsonl } from './fixtures';

const tok = stories();
const EOS = tok.eosId as number;

const SENTENCES = [
  'Once upon a time there was a little dog.',
  'The dog liked to run in the park.',
  'One day it saw a big red ball.',
  'Lily came to play with the dog.',
  'They were happy and laughed.',
  'Then the sun went down and they went home.',
  'Mom gave them a warm cake.',
];
// Forty records of 1..7 sentences.
const RECORDS = Array.from({ length: 40 }, (_, i) => ({ text: SENTENCES.slice(0, (i * 3) % 7 + 1).join(' ') }));
const fullIds = (text: string) => tok.encode(text); // <s> + text, as the tokenizer frames it

describe('truncation', () => {
  it('cuts sequences to maxSeqLength and counts them', async () => {
    const max = 30;
    const ds = await loadDataset(RECORDS, tok, { maxSeqLength: max });
    const expectedTruncated = RECORDS.filter((r) => fullIds(r.text).length + 1 > max).length;
    expect(expectedTruncated).toBeGreaterThan(5);
    expect(ds.stats().truncated).toBe(expectedTruncated);
    ds.examples.forEach((ex, i) => {
      const whole = [...fullIds(RECORDS[i].text), EOS];
      expect(ex.inputIds).toEqual(whole.slice(0, max));
      expect(ex.truncated).toBe(whole.length > max);
    });
    expect(ds.stats().maxLength).toBe(max);
  });
});

describe('packing', () => {
  it('concatenates whole examples in order into sequences no longer than maxSeqLength', async () => {
    const max = 64;
    const plain = await loadDataset(RECORDS, tok, { maxSeqLength: max });
    const packed = await loadDataset(RECORDS, tok, { maxSeqLength: max, packing: true });
    const flat = (d: Dataset, key: 'inputIds' | 'labels') => d.examples.flatMap((e) => e[key]);
    // Same tokens and labels in the same order; nothing lost or added.
    expect(flat(packed, 'inputIds')).toEqual(flat(plain, 'inputIds'));
    expect(flat(packed, 'labels')).toEqual(flat(plain, 'labels'));
    expect(packed.stats()).toMatchObject({ records: 40, tokens: plain.stats().tokens, lossTokens: plain.stats().lossTokens, packed: true });
    expect(packed.length).toBeLessThan(plain.length);
    let next = 0;
    for (const seq of packed.examples) {
      expect(seq.inputIds.length).toBeLessThanOrEqual(max);
      expect(seq.sources).toEqual(RECORDS.slice(next, next + seq.sources.length).map((_, k) => ({ file: '<records>', line: next + k + 1 })));
      // Segments start where each example starts, with label -100: no token predicts across a join.
      let offset = 0;
      seq.sources.forEach((_, k) => {
        expect(seq.segments[k]).toBe(offset);
        expect(seq.labels[offset]).toBe(-100);
        offset += plain.examples[next + k].inputIds.length;
      });
      expect(offset).toBe(seq.inputIds.length);
      // Greedy: the next example would not have fit.
      if (next + seq.sources.length < plain.length) {
        expect(seq.inputIds.length + plain.examples[next + seq.sources.length].inputIds.length).toBeGreaterThan(max);
      }
      next += seq.sources.length;
    }
    expect(next).toBe(40);
  });
});

describe('batches', () => {
  it('pad on the right with the pad id (EOS when the tokenizer has none), labels -100 and mask 0', async () => {
    const ds = await loadDataset(RECORDS.slice(0, 5), tok);
    expect(tok.padId).toBeUndefined();
    expect(ds.padId).toBe(EOS);
    const [batch, ...rest] = ds.batches(5, { shuffle: false });
    expect(rest).toEqual([]);
    const width = Math.max(...ds.examples.map((e) => e.inputIds.length));
    batch.ids.forEach((row, r) => {
      const ex = ds.examples[r];
      const n = ex.inputIds.length;
      expect(row).toEqual([...ex.inputIds, ...new Array(width - n).fill(EOS)]);
      expect(batch.labels[r]).toEqual([...ex.labels, ...new Array(width - n).fill(-100)]);
      expect(batch.attentionMask[r]).toEqual([...new Array(n).fill(1), ...new Array(width - n).fill(0)]);
    });
    const custom = [...ds.batches(2, { shuffle: false, padId: 0 })];
    expect(custom.map((b) => b.ids.length)).toEqual([2, 2, 1]);
    expect(custom[0].ids.flat().filter((id) => id === 0).length).toBeGreaterThan(0);
    expect([...ds.batches(2, { dropLast: true, shuffle: false })].length).toBe(2);
  });

  it('shuffle deterministically by seed and epoch, each epoch a permutation', async () => {
    const ds = await loadDataset(RECORDS, tok);
    const indices = (bs: Iterable<Batch>) => [...bs].flatMap((b) => b.indices);
    const a = indices(ds.batches(8, { seed: 7, epoch: 0 }));
    expect(indices(ds.batches(8, { seed: 7, epoch: 0 }))).toEqual(a);
    expect([...a].sort((x, y) => x - y)).toEqual(Array.from({ length: 40 }, (_, i) => i));
    expect(a).not.toEqual(Array.from({ length: 40 }, (_, i) => i));
    expect(indices(ds.batches(8, { seed: 7, epoch: 1 }))).not.toEqual(a);
    expect(indices(ds.batches(8, { seed: 8, epoch: 0 }))).not.toEqual(a);
    expect(indices(ds.batches(8, { shuffle: false }))).toEqual(Array.from({ length: 40 }, (_, i) => i));
    // The batch contents follow the indices.
    const [first] = ds.batches(8, { seed: 7 });
    expect(first.ids[3].slice(0, ds.examples[first.indices[3]].inputIds.length)).toEqual(ds.examples[first.indices[3]].inputIds);
  });

  it('shuffle without a visible bias: each record lands first about equally often over many seeds', () => {
    // 5 records, 20000 seeds: each count is Binomial(20000, 0.2), sd ≈ 57; allow 5 sd.
    const ds = new Dataset(
      Array.from({ length: 5 }, () => ({ inputIds: [1], labels: [-100], sources: [], segments: [0], truncated: false })),
      {} as never,
      0,
    );
    const counts = new Array(5).fill(0);
    for (let seed = 0; seed < 20000; seed++) counts[ds.order(0, { seed })[0]]++;
    counts.forEach((c) => expect(Math.abs(c - 4000)).toBeLessThan(5 * 57));
  });

  it('resume exactly from a saved position, across epochs', async () => {
    const ds = await loadDataset(RECORDS, tok);
    const run = (from?: { epoch: number; index: number }, take = 20) => {
      const out: Batch[] = [];
      for (const b of ds.iterate(6, { seed: 3, from })) {
        out.push(b);
        if (out.length === take) break;
      }
      return out;
    };
    const whole = run(); // 7 batches per epoch (40 / 6), so this spans three epochs
    expect(whole.map((b) => b.position)).toEqual(Array.from({ length: 20 }, (_, k) => ({ epoch: Math.floor(k / 7), index: k % 7 })));
    expect(whole[6].next).toEqual({ epoch: 1, index: 0 });
    const saved = JSON.parse(JSON.stringify(whole[9].next));
    const resumed = run(saved, 10);
    expect(resumed.map((b) => b.indices)).toEqual(whole.slice(10).map((b) => b.indices));
    expect(resumed.map((b) => b.ids)).toEqual(whole.slice(10).map((b) => b.ids));
    // Epoch 1 of iterate is the same as batches(epoch 1).
    expect([...ds.batches(6, { seed: 3, epoch: 1 })].map((b) => b.indices)).toEqual(whole.slice(7, 14).map((b) => b.indices));
    expect(() => ds.iterate(0).next()).toThrow(/batchSize/);
  });
});

describe('train / valid / test', () => {
  it('split one file by a seeded shuffle: disjoint, complete, in file order, reproducible', async () => {
    const file = writeJsonl('all.jsonl', RECORDS);
    const lines = (d?: Dataset) => (d as Dataset).examples.map((e) => e.sources[0].line);
    const a = await loadDatasets({ data: file, validFraction: 0.1, testFraction: 0.2, seed: 5 }, tok);
    expect([a.train.length, a.valid?.length, a.test?.length]).toEqual([28, 4, 8]);
    const all = [...lines(a.train), ...lines(a.valid), ...lines(a.test)].sort((x, y) => x - y);
    expect(all).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    for (const part of [a.train, a.valid, a.test]) expect(lines(part)).toEqual([...lines(part)].sort((x, y) => x - y));
    const again = await loadDatasets({ data: file, validFraction: 0.1, testFraction: 0.2, seed: 5 }, tok);
    expect([lines(again.train), lines(again.valid), lines(again.test)]).toEqual([lines(a.train), lines(a.valid), lines(a.test)]);
    const other = await loadDatasets({ data: file, validFraction: 0.1, testFraction: 0.2, seed: 6 }, tok);
    expect(lines(other.valid)).not.toEqual(lines(a.valid));
    // The examples are those of the whole file.
    const whole = await loadDataset(file, tok);
    a.valid?.examples.forEach((e) => expect(e.inputIds).toEqual(whole.examples[e.sources[0].line - 1].inputIds));
    const small = await loadDatasets({ data: RECORDS.slice(0, 3), validFraction: 0.01 }, tok);
    expect([small.train.length, small.valid?.length, small.test]).toEqual([2, 1, undefined]);
  });

  it('read separate files; classification sets share the training labels', async () => {
    const train = writeJsonl('train.jsonl', [
      { text: 'A happy dog.', label: 'happy' },
      { text: 'A sad cat.', label: 'sad' },
      { text: 'A big sun.', label: 'calm' },
    ]);
    const valid = writeJsonl('valid.jsonl', [{ text: 'A sad bird.', label: 'sad' }]);
    const test = writeJsonl('test.jsonl', [{ text: 'An odd fish.', label: 'odd' }]);
    const sets = await loadDatasets({ train, valid }, tok);
    expect(sets.train.labelSet).toEqual(['calm', 'happy', 'sad']);
    expect(sets.valid?.labelSet).toEqual(['calm', 'happy', 'sad']);
    expect(sets.valid?.examples[0].label).toBe(2);
    expect(sets.test).toBeUndefined();
    await expect(loadDatasets({ train, valid, test }, tok)).rejects.toThrow(`for "label" on ${test} line 1`);
  });
});
