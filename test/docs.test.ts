import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { repoRoot, run } from './helpers/workspace';

jest.setTimeout(120000);

it('npm run docs builds the API reference with TypeDoc', () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-docs-'));
  try {
    run('npx', ['typedoc', '--out', out], repoRoot);
    const index = fs.readFileSync(path.join(out, 'index.html'), 'utf8');
    expect(index).toContain('peft-native');
    const pages = fs.readdirSync(path.join(out, 'functions'));
    expect(pages.some((p) => p.includes('matmul'))).toBe(true);
    expect(pages.some((p) => p.includes('tensor'))).toBe(true);
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});
