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

it('links every target from its listed sources (a stub main in place of libFuzzer) and runs it on an empty and a seed input', () => {
  const { TARGETS } = require('../../scripts/fuzz/targets.js') as { TARGETS: Record<string, { harness: string; sources: string[] }> };
  const stub = path.join(tmp, 'stub_main.cpp');
  fs.writeFileSync(stub, [
    '#include <cstdio>',
    '#include <vector>',
    'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long);',
    'extern "C" int LLVMFuzzerInitialize(int*, char***) __attribute__((weak));',
    'int main(int argc, char** argv) {',
    '  if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);',
    '  std::vector<unsigned char> bytes;',
    '  if (argc > 1) { FILE* f = std::fopen(argv[1], "rb"); int c; while (f && (c = std::fgetc(f)) != EOF) bytes.push_back((unsigned char)c); if (f) std::fclose(f); }',
    '  return LLVMFuzzerTestOneInput(bytes.data(), bytes.size());',
    '}',
  ].join('\n'));
  const seeds = path.join(tmp, 'link-seeds');
  writeSeeds(MODELS_DIR, seeds);
  for (const [name, target] of Object.entries(TARGETS)) {
    const exe = path.join(tmp, `${name}-linked`);
    const cc = spawnSync('c++', ['-std=c++17', '-O0', '-I', path.join(repoRoot, 'native'), '-I', path.join(repoRoot, 'fuzz'), path.join(repoRoot, target.harness), ...target.sources.map((s) => path.join(repoRoot, s)), stub, '-lpthread', '-o', exe], { encoding: 'utf8' });
    expect([name, cc.status, cc.stderr.slice(0, 2000)]).toEqual([name, 0, expect.any(String)]);
    expect(spawnSync(exe, [], { encoding: 'utf8' }).status).toBe(0);
    const seed = fs.readdirSync(path.join(seeds, name))[0];
    expect(spawnSync(exe, [path.join(seeds, name, seed)], { encoding: 'utf8' }).status).toBe(0);
  }
}, 240_000);

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
