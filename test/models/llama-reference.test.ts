/**
 * Checks the float64 reference itself on the real model before anything is compared with it:
 * greedy decoding from "Once upon a time" must read as a children's story.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { configFromHf, loadTokenizer, readSafetensorsModel, ropeInverseFrequencies } from '../../lib';
import { llamaReferenceLogits } from '../helpers/llama-reference';
import { STORIES_HF_DIR } from '../helpers/models';

const HF_DIR = STORIES_HF_DIR;

it('the float64 reference Llama continues "Once upon a time" with a story', () => {
  const config = configFromHf(JSON.parse(fs.readFileSync(path.join(HF_DIR, 'config.json'), 'utf8')));
  const weights = readSafetensorsModel(HF_DIR);
  const cache = new Map<string, Float32Array>();
  const get = (name: string) => {
    if (!cache.has(name)) cache.set(name, weights.tensor(name).toFloat32Array());
    return cache.get(name)!;
  };
  const tok = loadTokenizer(HF_DIR);
  const ids = tok.encode('Once upon a time');
  const invFreq = ropeInverseFrequencies(config);
  for (let step = 0; step < 20; step++) {
    const logits = llamaReferenceLogits(config, get, ids, invFreq);
    const last = logits[logits.length - 1];
    let best = 0;
    for (let i = 1; i < last.length; i++) if (last[i] > last[best]) best = i;
    ids.push(best);
  }
  const text = tok.decode(ids);
  expect(text.startsWith('Once upon a time')).toBe(true);
  // Fluent story English: real words, mostly from the TinyStories vocabulary.
  const words = text.toLowerCase().match(/[a-z]+/g) ?? [];
  expect(words.length).toBeGreaterThan(10);
  const common = ['there', 'was', 'a', 'little', 'girl', 'boy', 'named', 'she', 'he', 'the', 'and', 'to', 'day', 'one', 'lily', 'tim', 'play', 'her', 'his', 'in', 'with', 'big', 'saw', 'very', 'liked', 'loved', 'went', 'upon', 'time', 'once'];
  expect(words.filter((w) => common.includes(w)).length / words.length).toBeGreaterThan(0.5);
  console.log(`reference greedy continuation: ${text}`);
});
