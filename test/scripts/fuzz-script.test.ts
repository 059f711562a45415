// npm run fuzz without a usable clang says so and fails; the seeds it makes from the real model
// files are well-formed files our readers accept (so libFuzzer starts from valid inputs).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { readGguf, readSafetensors } from '../../lib';
import { MODELS_DIR } from '../helpers/models';
import { repoRoot } from '../helpers/workspace';

const { writeSeeds } = require('../../scripts/fuzz/seeds.js') as { writeSeeds(models: string, out: string): Record<string, number> };

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-fuzz-script-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

it('fails with a clear message where no clang with libFuzzer is found', () => {
  const r = spawnSync(process.execPath, [path.join(repoRoot, 'scripts', 'fuzz', 'run.js'), '--replay'], {
    encoding: 'utf8',
    env: { ...process.env, CXX_FUZZ: path.join(tmp, 'no-such-clang++'), PEFT_FUZZ_OUT: path.join(tmp, 'out') },
  });
  expect(r.status).toBe(1);
  expect(r.stderr).toContain('npm run fuzz needs clang++ with libFuzzer');
  expect(r.stderr).toContain('no-such-clang++: not found');
  expect(r.stderr).toContain('apt-get install clang-14 libclang-rt-14-dev');
});

it('makes small seeds from the real model files that the readers accept', () => {
  const counts = writeSeeds(MODELS_DIR, tmp);
  expect(counts).toEqual({ gguf: 4, safetensors: 4, json: 9 });
  for (const f of fs.readdirSync(path.join(tmp, 'gguf'))) {
    const p = path.join(tmp, 'gguf', f);
    expect(fs.statSync(p).size).toBeLessThan(65536);
    const g = readGguf(p);
    expect(g.metadata['general.architecture']).toBe('llama');
    for (const t of g.tensorInfos) if (!['Q4_K'].includes(t.type)) g.tensor(t.name).dispose();
    g.dispose();
  }
  for (const f of fs.readdirSync(path.join(tmp, 'safetensors'))) {
    const p = path.join(tmp, 'safetensors', f);
    expect(fs.statSync(p).size).toBeLessThan(65536);
    const s = readSafetensors(p);
    for (const k of s.keys()) if (['F32', 'F16', 'BF16', 'I32', 'U8'].includes(s.info(k).dtype)) s.tensor(k);
  }
  for (const f of fs.readdirSync(path.join(tmp, 'json'))) expect(() => JSON.parse(fs.readFileSync(path.join(tmp, 'json', f), 'utf8'))).not.toThrow();
});
