/**
 * The package as users get it: prebuilt with prebuildify, packed with npm pack, installed from the
 * tarball into an empty project, then used with require and import. Also the source-build fallback.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { copyProject, run } from './helpers/workspace';

jest.setTimeout(10 * 60 * 1000);

const USE_LIBRARY = `
  const c = lib.ops.matmul(lib.tensor([[1, 2], [3, 4]]), lib.tensor([[5], [6]]));
  const err = (() => { try { lib.tensor([1, 2], [3]); } catch (e) { return e; } })();
  console.log(JSON.stringify({ values: Array.from(c.toFloat32Array()), isa: lib.runtime.getIsa(), code: err.code, isPeftError: err instanceof lib.PeftError }));
`;

function useFrom(appDir: string) {
  fs.writeFileSync(path.join(appDir, 'use.cjs'), `const lib = require('peft-native');\n${USE_LIBRARY}`);
  fs.writeFileSync(
    path.join(appDir, 'use.mjs'),
    `import * as named from 'peft-native';\nimport lib from 'peft-native';\nif (named.tensor !== lib.tensor) throw new Error('two instances');\n${USE_LIBRARY}`,
  );
  const cjs = JSON.parse(run(process.execPath, ['use.cjs'], appDir));
  const esm = JSON.parse(run(process.execPath, ['use.mjs'], appDir));
  return { cjs, esm };
}

function freshApp(root: string, name: string): string {
  const app = path.join(root, name);
  fs.mkdirSync(app);
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name, version: '1.0.0', private: true }));
  return app;
}

describe('npm package', () => {
  let work: string;
  let tarball: string;

  beforeAll(() => {
    work = copyProject('peft-native-pack-');
    run('npm', ['run', 'prebuild'], work);
    expect(fs.existsSync(path.join(work, 'prebuilds', 'linux-x64', 'peft-native.node'))).toBe(true);
    const packed = run('npm', ['pack', '--json', '--pack-destination', work], work);
    tarball = path.join(work, JSON.parse(packed)[0].filename);
  });

  afterAll(() => {
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it('ships compiled JS, declarations, the ESM entry, the prebuild and the sources for a fallback build', () => {
    const listing = run('tar', ['-tzf', tarball], work).split('\n');
    for (const file of [
      'package/dist/index.js',
      'package/dist/index.d.ts',
      'package/dist/index.mjs',
      'package/prebuilds/linux-x64/peft-native.node',
      'package/binding.gyp',
      'package/CMakeLists.txt',
      'package/native/sources.json',
      'package/native/kernels/cpu/gemm_driver.cpp',
      'package/scripts/build/sources.js',
    ]) {
      expect(listing).toContain(file);
    }
    expect(listing.some((f) => f.startsWith('package/test/'))).toBe(false);
    expect(listing.some((f) => f.startsWith('package/build/'))).toBe(false);
  });

  it('installs from the tarball using the prebuilt binary, and works with require and import', () => {
    const app = freshApp(work, 'app-prebuilt');
    run('npm', ['install', tarball, '--prefer-offline', '--no-audit', '--no-fund'], app);
    const installed = path.join(app, 'node_modules', 'peft-native');
    // node-gyp-build found a matching prebuild, so nothing was compiled.
    expect(fs.existsSync(path.join(installed, 'build'))).toBe(false);
    const { cjs, esm } = useFrom(app);
    for (const r of [cjs, esm]) {
      expect(r).toMatchObject({ values: [17, 39], code: 'E_SHAPE', isPeftError: true });
    }
  });

  it('builds from source when asked to (or when no prebuild matches)', () => {
    const app = freshApp(work, 'app-source');
    run('npm', ['install', tarball, '--build-from-source', '--prefer-offline', '--no-audit', '--no-fund'], app);
    const installed = path.join(app, 'node_modules', 'peft-native');
    expect(fs.existsSync(path.join(installed, 'build', 'Release', 'peft_native.node'))).toBe(true);
    const { cjs } = useFrom(app);
    expect(cjs).toMatchObject({ values: [17, 39], code: 'E_SHAPE', isPeftError: true });
  });
});
