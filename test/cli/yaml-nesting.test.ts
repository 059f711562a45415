// The nesting bound checked before YAML is parsed: deep text is refused (the yaml package overflows
// its stack on a few hundred levels, and V8 may then abort the process), real configs pass.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { stringify } from 'yaml';

import { loadConfigFile } from '../../lib/cli/config';
import { lineExceedingNesting, MAX_YAML_NESTING } from '../../lib/cli/yaml-nesting';

const lines = (n: number, line: (i: number) => string) => Array.from({ length: n }, (_, i) => line(i)).join('\n');

describe('lineExceedingNesting', () => {
  it('passes real configs, brackets inside scalars, quotes, comments and block scalars', () => {
    const config = stringify({ model: './m', peft: { r: 4, target_modules: ['q_proj', 'v_proj'], extra: { a: [1, [2, [3]]] } } });
    expect(lineExceedingNesting(config)).toBe(0);
    expect(lineExceedingNesting(JSON.stringify({ a: { b: [[1], { c: [] }] } }))).toBe(0);
    expect(lineExceedingNesting(lines(300, (i) => `k${i}: a[b{c`))).toBe(0);
    expect(lineExceedingNesting(`a: "${'['.repeat(200)}"\nb: '${'{'.repeat(200)}'\nc: 1 # ${'['.repeat(200)}\n`)).toBe(0);
    expect(lineExceedingNesting(`text: |\n${lines(300, () => '  [[[[ {{{{ - - - ? ?')}\nmodel: x\n`)).toBe(0);
  });

  it('finds the line where flow brackets, block indicators or indentation go past the limit', () => {
    const at = MAX_YAML_NESTING;
    expect(lineExceedingNesting(`a: ${'['.repeat(at - 1)}${']'.repeat(at - 1)}`)).toBe(0);
    expect(lineExceedingNesting(`a: ${'['.repeat(at)}${']'.repeat(at)}`)).toBe(1);
    expect(lineExceedingNesting(`ok: 1\nb: ${'{c: '.repeat(at)}1${'}'.repeat(at)}`)).toBe(2);
    expect(lineExceedingNesting(`a:\n${lines(at + 5, () => '  [')}`)).toBeGreaterThan(1); // a flow collection over many lines
    expect(lineExceedingNesting(`${'- '.repeat(at + 1)}1`)).toBe(1);
    expect(lineExceedingNesting(`${'? '.repeat(at + 1)}a`)).toBe(1);
    expect(lineExceedingNesting(lines(at + 1, (i) => `${' '.repeat(i)}a:`))).toBe(at + 1);
  });

  it('refuses a deep config file every time, with the process alive', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-yaml-nesting-'));
    try {
      const file = path.join(dir, 'deep.yaml');
      fs.writeFileSync(file, `peft: ${'['.repeat(20000)}${']'.repeat(20000)}\n`);
      // Before the bound, the second parse of such a file aborted node (FATAL ERROR: RegExpCompiler Allocation failed).
      for (let i = 0; i < 3; i++) expect(() => loadConfigFile(file)).toThrow(expect.objectContaining({ code: 'E_FORMAT', message: expect.stringContaining('nests deeper than 64 levels (line 1)') }));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
