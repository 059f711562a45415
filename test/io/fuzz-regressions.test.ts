/**
 * Every input kept by fuzzing (test/fixtures/fuzz-regressions/index.json) is refused with the
 * PeftError code and message it gets since its fix, and leaves nothing behind. These inputs once
 * crashed a reader, corrupted a model or were accepted with absurd values; `before` in the index says how.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { loadAdapter, loadDataset, loadModel, loadTokenizer, PeftError, readGguf, readSafetensors, type Model } from '../../lib';
import { resolveConfig } from '../../lib/cli/config';
import { TRAIN_SCHEMA } from '../../lib/cli/commands/train';
import { assertFiniteTensors, quantizedScales } from '../../lib/models/finite-weights';
import { readQuantizedWeights } from '../../lib/quant/model-weights';
import { STORIES_HF_DIR } from '../helpers/models';

const DIR = path.join(__dirname, '..', 'fixtures', 'fuzz-regressions');
interface Regression {
  path: string;
  kind: 'gguf' | 'safetensors' | 'json' | 'adapter' | 'bnb' | 'jsonl' | 'config';
  code: string;
  message: string;
  found: string;
  before: string;
}
const CASES = (JSON.parse(fs.readFileSync(path.join(DIR, 'index.json'), 'utf8')) as { cases: Regression[] }).cases;

let model: Model | undefined;
const stories = async () => (model ??= await loadModel(STORIES_HF_DIR));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-fuzz-regressions-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Reads the input the way its reader is used; resolves when it is accepted. */
async function read(c: Regression, file: string): Promise<void> {
  switch (c.kind) {
    case 'gguf': {
      const g = readGguf(file);
      try {
        for (const t of g.tensorInfos) g.tensor(t.name).dispose();
      } finally {
        g.dispose();
      }
      return;
    }
    case 'safetensors': {
      const f = readSafetensors(file);
      for (const k of f.keys()) f.tensor(k);
      return;
    }
    case 'json': {
      // The native JSON reader is reached through a safetensors header.
      const text = fs.readFileSync(file);
      const wrapped = path.join(tmp, `${path.basename(file)}.safetensors`);
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(text.length));
      fs.writeFileSync(wrapped, Buffer.concat([len, text]));
      readSafetensors(wrapped);
      return;
    }
    case 'adapter': {
      const m = await stories();
      const before = m.nativeModel.parameters().map((p) => p.name).join();
      try {
        (await loadAdapter(m, file, { adapterName: 'regression', warn: () => {} })).deleteAdapter('regression');
      } finally {
        // Refused or not, the model holds what it held before.
        expect(m.nativeModel.parameters().map((p) => p.name).join()).toBe(before);
      }
      return;
    }
    case 'bnb': {
      // As loadModel reads a 4-bit checkpoint: the parts, then the finite check of the scales.
      const { weights } = readQuantizedWeights(readSafetensors(file));
      await assertFiniteTensors(quantizedScales(weights), 'loadModel', '');
      return;
    }
    case 'jsonl':
      await loadDataset(file, loadTokenizer(STORIES_HF_DIR));
      return;
    case 'config':
      resolveConfig(TRAIN_SCHEMA, { file });
      return;
  }
}

describe('inputs kept by fuzzing', () => {
  it.each(CASES.map((c) => [c.path, c] as const))('%s is refused', async (_, c) => {
    const file = path.join(DIR, c.path);
    expect(fs.existsSync(file)).toBe(true);
    const error = await read(c, file).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(PeftError);
    expect(error).toMatchObject({ code: c.code, message: expect.stringContaining(c.message) });
  });

  it('lists every kept file', () => {
    const listed = new Set(CASES.map((c) => c.path.split('/').slice(0, 2).join('/')));
    for (const target of fs.readdirSync(DIR).filter((d) => fs.statSync(path.join(DIR, d)).isDirectory())) {
      for (const entry of fs.readdirSync(path.join(DIR, target))) expect(listed).toContain(`${target}/${entry}`);
    }
  });
});
