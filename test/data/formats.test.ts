import { loadDataset, PeftError } from '../../lib';
import { lossIds, stories, writeJsonl } from './fixtures';

const tok = stories();
const BOS = tok.bosId as number;
const EOS = tok.eosId as number;
const enc = (text: string) => tok.encode(text, { addSpecialTokens: false });
const masked = (n: number) => new Array<number>(n).fill(-100);

describe('text records', () => {
  it('are <s> + the text + </s>, with loss on every token after the first', async () => {
    const text = 'Once upon a time, there was a little girl named Lily.';
    const file = writeJsonl('text.jsonl', [{ text }, { text: 'She liked to play.' }]);
    const ds = await loadDataset(file, tok);
    const ids = [BOS, ...enc(text), EOS];
    expect(ds.examples[0].inputIds).toEqual(ids);
    expect(ds.examples[0].labels).toEqual([-100, ...ids.slice(1)]);
    expect(ds.examples[0].sources).toEqual([{ file, line: 1 }]);
    expect(ds.format).toBe('text');
    const stats = ds.stats();
    expect(stats).toMatchObject({ format: 'text', records: 2, examples: 2, truncated: 0, dropped: 0, packed: false });
    expect(stats.tokens).toBe(ids.length + enc('She liked to play.').length + 2);
    expect(stats.lossTokens).toBe(stats.tokens - 2);
  });

  it('follow addBos / addEos', async () => {
    const ds = await loadDataset([{ text: 'The sun was hot.' }], tok, { addBos: false, addEos: false });
    expect(ds.examples[0].inputIds).toEqual(enc('The sun was hot.'));
    expect(ds.examples[0].labels[0]).toBe(-100);
  });
});

describe('prompt / completion records', () => {
  const prompt = 'Q: Who found the ball?\nA:';
  const completion = ' Lily found the ball under the tree.';

  it('have loss on the completion and </s> only; the prompt tokens are the prompt encoded alone', async () => {
    const ds = await loadDataset([{ prompt, completion }], tok);
    // Independent: the prompt alone, and the whole text; their tokens agree on the prompt here.
    const p = enc(prompt);
    const whole = enc(prompt + completion);
    expect(whole.slice(0, p.length)).toEqual(p);
    const c = whole.slice(p.length);
    const ex = ds.examples[0];
    expect(ex.inputIds).toEqual([BOS, ...whole, EOS]);
    expect(ex.labels).toEqual([...masked(1 + p.length), ...c, EOS]);
    expect(tok.decode(lossIds(ex.labels))).toBe(completion.trimStart());
    expect(ds.format).toBe('completion');
  });

  it('train on the prompt too with trainOnPrompt', async () => {
    const ds = await loadDataset([{ prompt, completion }], tok, { trainOnPrompt: true });
    const ids = [BOS, ...enc(prompt + completion), EOS];
    expect(ds.examples[0].labels).toEqual([-100, ...ids.slice(1)]);
  });

  it('give a token that straddles the join to the completion', async () => {
    // "…a ti" + "me": the whole text has the single token ▁time where the prompt alone ends in pieces.
    const ds = await loadDataset([{ prompt: 'Once upon a ti', completion: 'me' }], tok);
    const ex = ds.examples[0];
    const tokens = ex.inputIds.map((id) => tok.idToToken(id));
    expect(tokens).toEqual(['<s>', '▁Once', '▁upon', '▁a', '▁time', '</s>']);
    expect(ex.labels).toEqual([-100, -100, -100, -100, tok.tokenToId('▁time'), EOS]);
  });
});

describe('alpaca records', () => {
  // The prompts as the Stanford Alpaca README publishes them, written out here.
  const withInput = (instruction: string, input: string) =>
    'Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.\n\n' +
    `### Instruction:\n${instruction}\n\n### Input:\n${input}\n\n### Response:\n`;
  const noInput = (instruction: string) =>
    'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n' +
    `### Instruction:\n${instruction}\n\n### Response:\n`;

  it('use the Alpaca prompt (with and without input) and have loss on the output', async () => {
    const records = [
      { instruction: 'Name the dog.', input: 'The dog was big and brown.', output: 'The dog was named Max.' },
      { instruction: 'Say hello.', input: '', output: 'Hello!' },
      { instruction: 'Say bye.', output: 'Bye!' },
    ];
    const ds = await loadDataset(records, tok);
    expect(ds.format).toBe('alpaca');
    const prompts = [withInput(records[0].instruction, records[0].input as string), noInput('Say hello.'), noInput('Say bye.')];
    ds.examples.forEach((ex, i) => {
      const p = enc(prompts[i]);
      const whole = enc(prompts[i] + records[i].output);
      expect(whole.slice(0, p.length)).toEqual(p);
      expect(ex.inputIds).toEqual([BOS, ...whole, EOS]);
      expect(ex.labels).toEqual([...masked(1 + p.length), ...whole.slice(p.length), EOS]);
      expect(tok.decode(lossIds(ex.labels))).toBe(records[i].output);
    });
  });
});

describe('classification records', () => {
  it('map string labels to ids in sorted order, with no loss tokens and no </s>', async () => {
    const file = writeJsonl('cls.jsonl', [
      { text: 'I love this story.', label: 'positive' },
      { text: 'The end was sad.', label: 'negative' },
      { text: 'It was a story.', label: 'neutral' },
      { text: 'Great fun!', label: 'positive' },
    ]);
    const ds = await loadDataset(file, tok);
    expect(ds.format).toBe('classification');
    expect(ds.labelSet).toEqual(['negative', 'neutral', 'positive']);
    expect(ds.stats().labelSet).toEqual(['negative', 'neutral', 'positive']);
    expect(ds.examples.map((e) => e.label)).toEqual([2, 0, 1, 2]);
    expect(ds.examples[0].inputIds).toEqual([BOS, ...enc('I love this story.')]);
    expect(ds.examples.every((e) => e.labels.every((l) => l === -100))).toBe(true);
    const [batch] = ds.batches(4, { shuffle: false });
    expect(batch.classLabels).toEqual([2, 0, 1, 2]);
  });

  it('keep integer labels as class ids, and refuse mixed or unknown labels', async () => {
    const ds = await loadDataset([{ text: 'a', label: 3 }, { text: 'b', label: 0 }, { text: 'c', label: 3 }], tok);
    expect(ds.labelSet).toEqual([0, 3]);
    expect(ds.examples.map((e) => e.label)).toEqual([3, 0, 3]);
    await expect(loadDataset([{ text: 'a', label: 'x' }, { text: 'b', label: 1 }], tok)).rejects.toThrow(
      'Expected a string like the label on line 1 for "label" on <records> line 2 but received the number 1',
    );
    await expect(loadDataset([{ text: 'a', label: 'x' }, { text: 'b', label: 'z' }], tok, { labels: ['x', 'y'] })).rejects.toThrow(
      'Expected one of the labels ["x","y"] for "label" on <records> line 2 but received the string "z"',
    );
    await expect(loadDataset([{ text: 'a', label: 1.5 }], tok)).rejects.toMatchObject({ code: 'E_FORMAT' });
    // Given labels fix the ids (index = id).
    const fixed = await loadDataset([{ text: 'a', label: 'x' }, { text: 'b', label: 'y' }], tok, { labels: ['y', 'x'] });
    expect(fixed.examples.map((e) => e.label)).toEqual([1, 0]);
  });
});

describe('format selection', () => {
  it('detects from the first record and checks later ones against it', async () => {
    await expect(loadDataset([{ prompt: 'a', completion: 'b' }, { text: 'c' }], tok)).rejects.toThrow(
      'Expected a string for "prompt" on <records> line 2 but received undefined',
    );
    // Extra keys are ignored.
    const ds = await loadDataset([{ text: 'Hi.', id: 7, meta: {} }], tok);
    expect(ds.format).toBe('text');
  });

  it('takes an explicit format', async () => {
    const ds = await loadDataset([{ text: 'Hi.', label: 'x' }], tok, { format: 'text' });
    expect(ds.format).toBe('text');
    await expect(loadDataset([{ text: 'Hi.' }], tok, { format: 'completion' })).rejects.toThrow(/for "prompt" on <records> line 1/);
    await expect(loadDataset([{ text: 'Hi.' }], tok, { format: 'csv' as never })).rejects.toMatchObject({ code: 'E_CONFIG' });
    await expect(loadDataset([{ text: 'Hi.' }], {} as never)).rejects.toThrow(PeftError);
  });
});
