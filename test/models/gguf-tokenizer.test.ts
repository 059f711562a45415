import { loadModel, loadTokenizer, readGguf } from '../../lib';
import { tokenizerFromGguf } from '../../lib/models/gguf-tokenizer';
import { STORIES_GGUF, STORIES_HF_DIR } from '../helpers/models';
import { rng } from '../helpers/random';

describe('the tokenizer embedded in stories260K.gguf', () => {
  const fromGguf = tokenizerFromGguf(readGguf(STORIES_GGUF).metadata as Record<string, unknown>);
  const fromHf = loadTokenizer(STORIES_HF_DIR);

  it('gives the same ids as the model\'s tokenizer.json, on stories, odd spacing, bytes and random text', () => {
    const random = rng(11);
    const alphabet = 'abcdefghijklmnopqrstuvwxyz ABC.,!?\'"\n\t0123456789éü🐶—';
    const chars = [...alphabet];
    const texts = [
      'Once upon a time, there was a little girl named Lily. She loved to play outside in the sun.',
      '  leading and trailing spaces  ',
      'Tim said, "I can\'t find my red ball!"\n\nMom smiled.',
      'naïve café 🐶 — über straße',
      '',
      ...Array.from({ length: 50 }, () => Array.from({ length: 1 + Math.floor(random() * 40) }, () => chars[Math.floor(random() * chars.length)]).join('')),
    ];
    for (const text of texts) {
      expect([text, fromGguf.encode(text)]).toEqual([text, fromHf.encode(text)]);
      expect(fromGguf.decode(fromGguf.encode(text))).toBe(fromHf.decode(fromHf.encode(text)));
    }
    expect([fromGguf.bosId, fromGguf.eosId]).toEqual([fromHf.bosId, fromHf.eosId]);
  });

  it('lets a GGUF model generate text on its own', async () => {
    const model = await loadModel(STORIES_GGUF);
    const { text } = await model.generate('Once upon a time', { maxNewTokens: 12 });
    expect(text).toMatch(/^Once upon a time, there was a little girl named Lily/);
  });
});
