import { loadModel, PeftError, Sampler, type Model } from '../../lib';
import { STORIES_HF_DIR } from '../helpers/models';

describe('generation with a KV cache (stories260K)', () => {
  let model: Model;
  beforeAll(async () => {
    model = await loadModel(STORIES_HF_DIR);
  });

  /** Greedy decoding without a cache: a full forward pass per new token. */
  async function greedyWithoutCache(ids: number[], n: number): Promise<number[]> {
    const out = [...ids];
    for (let i = 0; i < n; i++) {
      const logits = (await model.forward([out])).toFloat32Array().subarray((out.length - 1) * 512, out.length * 512);
      let best = 0;
      for (let j = 1; j < 512; j++) if (logits[j] > logits[best]) best = j;
      out.push(best);
    }
    return out.slice(ids.length);
  }

  it('greedy decoding with the cache equals full recomputation', async () => {
    const prompt = model.tokenizer!.encode('Once upon a time');
    const cached = await model.generate(prompt, { maxNewTokens: 30, stopTokens: [] });
    expect(cached.tokens).toEqual(await greedyWithoutCache(prompt, cached.tokens.length));
    expect(cached.text).toMatch(/^Once upon a time, there was a little girl named Lily\. She/);
  });

  it('samples reproducibly with a seed; top-k 1 is greedy', async () => {
    const opts = { maxNewTokens: 20, temperature: 1, topP: 0.9, seed: 7 };
    const a = await model.generate('Once upon a time', opts);
    const b = await model.generate('Once upon a time', opts);
    expect(a.tokens).toEqual(b.tokens);
    const greedy = await model.generate('Once upon a time', { maxNewTokens: 20 });
    const topK1 = await model.generate('Once upon a time', { maxNewTokens: 20, temperature: 1.5, topK: 1, seed: 3 });
    expect(topK1.tokens).toEqual(greedy.tokens);
  });

  it('streams pieces that add up to the generated text, and stops at stop strings', async () => {
    let streamed = '';
    for await (const piece of model.stream('Once upon a time', { maxNewTokens: 25 })) streamed += piece;
    const whole = await model.generate('Once upon a time', { maxNewTokens: 25 });
    expect('Once upon a time' + streamed).toBe(whole.text);
    const stopped = await model.generate('Once upon a time', { maxNewTokens: 40, stop: ['Lily'] });
    expect(stopped.text).toBe('Once upon a time, there was a little girl named ');
  });

  it('applies the repetition penalty as transformers does', () => {
    const sampler = new Sampler({ repetitionPenalty: 2 });
    // Token 0 leads, but it was already generated: 3 / 2 = 1.5 < 2; a negative score is multiplied.
    expect(sampler.next(Float32Array.from([3, 2, -1]), [0])).toBe(1);
    expect(sampler.next(Float32Array.from([-1, -1.5, -3]), [0])).toBe(1);
  });

  it('refuses prompts past the context and ids outside the vocabulary', async () => {
    await expect(model.generate([1, 600])).rejects.toBeInstanceOf(PeftError);
    await expect(model.generate('Once', { maxNewTokens: 100000 })).rejects.toMatchObject({ code: 'E_RANGE' });
  });
});
