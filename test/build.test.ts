/**
 * The native build: one source list for node-gyp and cmake-js, the cmake-js build works, and
 * instruction-set flags stay on the variant files so the binary runs on CPUs without AVX-512.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { repoRoot, run } from './helpers/workspace';

jest.setTimeout(10 * 60 * 1000);

interface SourceSpec {
  common: string[];
  isa: Record<string, { flags: string[]; sources: string[] }>;
}
const spec: SourceSpec = JSON.parse(fs.readFileSync(path.join(repoRoot, 'native', 'sources.json'), 'utf8'));
const isaSources = Object.values(spec.isa).flatMap((v) => v.sources);

function cppFilesUnder(dir: string): string[] {
  return fs.readdirSync(path.join(repoRoot, dir), { withFileTypes: true }).flatMap((entry) => {
    const rel = path.join(dir, entry.name);
    if (entry.isDirectory()) return cppFilesUnder(rel);
    return entry.name.endsWith('.cpp') ? [rel] : [];
  });
}

/** Disassembly split into functions: name -> instruction text. */
function functionsOf(file: string): Map<string, string> {
  const text = execFileSync('objdump', ['-d', '-C', '--no-show-raw-insn', file], { encoding: 'utf8', maxBuffer: 256 << 20 });
  const functions = new Map<string, string>();
  let current = '';
  for (const line of text.split('\n')) {
    const header = /^[0-9a-f]+ <(.+)>:$/.exec(line);
    if (header) {
      current = header[1];
      functions.set(current, '');
    } else if (current) {
      functions.set(current, functions.get(current) + line + '\n');
    }
  }
  return functions;
}

const usesZmm = (code: string) => /%zmm|%k[1-7]\b/.test(code);
const usesYmm = (code: string) => /%ymm/.test(code);

describe('source list', () => {
  it('binding.gyp and CMakeLists.txt both read native/sources.json', () => {
    expect(fs.readFileSync(path.join(repoRoot, 'binding.gyp'), 'utf8')).toContain('scripts/build/sources.js');
    expect(fs.readFileSync(path.join(repoRoot, 'CMakeLists.txt'), 'utf8')).toContain('native/sources.json');
  });

  it('lists every native .cpp file exactly once, and only files that exist', () => {
    const listed = [...spec.common, ...isaSources].sort();
    expect(new Set(listed).size).toBe(listed.length);
    expect(listed).toEqual(cppFilesUnder('native').sort());
  });
});

describe('cmake-js build (npm run build:cmake)', () => {
  const out = path.join(repoRoot, 'build-cmake');
  const binary = path.join(out, 'Release', 'peft_native.node');

  beforeAll(() => {
    run('npm', ['run', 'build:cmake'], repoRoot);
  });

  it('produces an addon that the library loads and uses', () => {
    const script = `
      const lib = require(${JSON.stringify(path.join(repoRoot, 'dist'))});
      const c = lib.ops.matmul(lib.tensor([[1, 2, 3]]), lib.tensor([[1], [1], [1]]));
      process.stdout.write(JSON.stringify(Array.from(c.toFloat32Array())));`;
    const result = run(process.execPath, ['-e', script], repoRoot, { PEFT_NATIVE_BINARY: binary });
    expect(JSON.parse(result)).toEqual([6]);
  });

  it('compiles AVX-512 instructions only into the avx512 variant files', () => {
    const objectOf = (src: string) => path.join(out, 'CMakeFiles', 'peft_native.dir', `${src}.o`);
    for (const src of spec.common) {
      const code = [...functionsOf(objectOf(src)).values()].join('');
      expect([src, usesZmm(code), usesYmm(code)]).toEqual([src, false, false]);
    }
    for (const src of spec.isa.avx2.sources) {
      const code = [...functionsOf(objectOf(src)).values()].join('');
      expect([src, usesZmm(code), usesYmm(code)]).toEqual([src, false, true]);
    }
    for (const src of [...spec.isa.avx512.sources, ...spec.isa.avx512bf16.sources]) {
      expect([src, usesZmm([...functionsOf(objectOf(src)).values()].join(''))]).toEqual([src, true]);
    }
  });

  it('links no wide-register copy of a function that common code calls (no shared inline copies)', () => {
    // The linker keeps one copy of each inline or template function. If a variant file's copy
    // (compiled with -mavx512f) were the one kept, common code calling it would crash on older CPUs.
    const objectOf = (src: string) => path.join(out, 'CMakeFiles', 'peft_native.dir', `${src}.o`);
    const commonFunctions = new Set(spec.common.flatMap((src) => [...functionsOf(objectOf(src)).keys()]));
    const linked = functionsOf(binary);
    const offenders = [...linked]
      .filter(([name, code]) => commonFunctions.has(name) && (usesZmm(code) || usesYmm(code)))
      .map(([name]) => name);
    expect(offenders).toEqual([]);
    // The check has teeth: the linked binary does hold wide-register variant code.
    expect([...linked.values()].some(usesYmm)).toBe(true);
    expect(commonFunctions.size).toBeGreaterThan(100);
  });
});
