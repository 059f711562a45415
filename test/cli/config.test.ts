import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { flagOf, parseAssignment, resolveConfig, type ConfigSchema } from '../../lib/cli/config';
import { TRAIN_SCHEMA } from '../../lib/cli/commands/train';
import { ensureBuilt } from '../helpers/built';
import { runCli } from '../helpers/cli';

const SCHEMA = {
  model: { type: 'string', description: 'model', required: true },
  learning_rate: { type: 'number', description: 'lr', default: 2e-4, min: 0, exclusiveMin: true },
  max_steps: { type: 'integer', description: 'steps', min: 1 },
  packing: { type: 'boolean', description: 'pack', default: false },
  schedule: { type: 'string', description: 'schedule', default: 'linear', choices: ['constant', 'linear', 'cosine'] },
  peft: {
    description: 'peft',
    fields: {
      r: { type: 'integer', description: 'rank', default: 8, min: 1 },
      target_modules: { type: 'string[]', description: 'targets', default: ['q_proj', 'v_proj'] },
    },
  },
} as const satisfies ConfigSchema;

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-cli-config-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, text);
  return p;
}

const error = (code: string, message: string | RegExp) => expect.objectContaining({ code, message: typeof message === 'string' ? expect.stringContaining(message) : expect.stringMatching(message) });

describe('config layer', () => {
  it('maps snake_case fields to kebab-case flags', () => {
    expect(flagOf('learning_rate')).toBe('--learning-rate');
    expect(flagOf('gradient_accumulation_steps')).toBe('--gradient-accumulation-steps');
  });

  it('fills defaults, and a YAML file overrides them (1e-4 is a number in YAML 1.2)', () => {
    const yaml = file('a.yaml', 'model: ./m\nlearning_rate: 1e-4\npeft:\n  r: 16\n');
    const c = resolveConfig(SCHEMA, { file: yaml });
    expect(c).toEqual({ model: './m', learning_rate: 1e-4, packing: false, schedule: 'linear', peft: { r: 16, target_modules: ['q_proj', 'v_proj'] } });
    expect(c.max_steps).toBeUndefined();
  });

  it('precedence: defaults < file < --set < named flags, field by field', () => {
    const json = file('b.json', JSON.stringify({ model: 'file-model', learning_rate: 0.001, max_steps: 10, peft: { r: 4, target_modules: ['o_proj'] } }));
    const c = resolveConfig(SCHEMA, {
      file: json,
      sets: ['max_steps=20', 'learning_rate=0.002', 'peft.r=32'],
      flags: { learning_rate: '5e-4', packing: true, model: undefined },
    });
    expect(c).toEqual({ model: 'file-model', learning_rate: 5e-4, max_steps: 20, packing: true, schedule: 'linear', peft: { r: 32, target_modules: ['o_proj'] } });
    // Later --set wins over an earlier one.
    expect(resolveConfig(SCHEMA, { flags: { model: 'm' }, sets: ['max_steps=3', 'max_steps=4'] }).max_steps).toBe(4);
  });

  it('parses --set values by the field type: lists as a,b or [a, b]; strings stay strings', () => {
    expect(parseAssignment(SCHEMA, 'peft.target_modules=q_proj,k_proj')).toEqual({ peft: { target_modules: ['q_proj', 'k_proj'] } });
    expect(parseAssignment(SCHEMA, 'peft.target_modules=[gate_proj, up_proj]')).toEqual({ peft: { target_modules: ['gate_proj', 'up_proj'] } });
    expect(parseAssignment(SCHEMA, 'model=123')).toEqual({ model: '123' });
    expect(parseAssignment(SCHEMA, 'packing=true')).toEqual({ packing: true });
    expect(parseAssignment(SCHEMA, 'model=a=b')).toEqual({ model: 'a=b' });
  });

  it('names unknown keys, where they came from, a close match and the valid keys', () => {
    const bad = file('c.yaml', 'model: m\nlearning_rat: 0.1\n');
    expect(() => resolveConfig(SCHEMA, { file: bad })).toThrow(
      error('E_CONFIG', `Unknown config key "learning_rat" in ${bad}. Did you mean learning_rate? Valid keys: model, learning_rate, max_steps, packing, schedule, peft`),
    );
    const nested = file('d.yaml', 'model: m\npeft:\n  rank: 4\n');
    expect(() => resolveConfig(SCHEMA, { file: nested })).toThrow(error('E_CONFIG', 'Unknown config key "peft.rank"'));
    expect(() => resolveConfig(SCHEMA, { file: nested })).toThrow(error('E_CONFIG', 'Valid keys: peft.r, peft.target_modules'));
    // kebab-case in a file is a mistake with a hint.
    const kebab = file('e.yaml', 'model: m\nmax-steps: 3\n');
    expect(() => resolveConfig(SCHEMA, { file: kebab })).toThrow(error('E_CONFIG', 'Did you mean max_steps?'));
    expect(() => parseAssignment(SCHEMA, 'peft.alpha=3')).toThrow(error('E_CONFIG', 'Unknown config key "peft.alpha" in --set (group peft)'));
    expect(() => parseAssignment(SCHEMA, 'peft=3')).toThrow(error('E_CONFIG', 'Expected a field of the group, such as peft.r=… for --set peft'));
    expect(() => parseAssignment(SCHEMA, 'max_steps.x=3')).toThrow(error('E_CONFIG', 'max_steps has no fields'));
    expect(() => parseAssignment(SCHEMA, 'max_steps')).toThrow(error('E_CONFIG', 'Expected key=value (e.g. --set peft.r=16) for --set'));
  });

  it('gives the standard message for wrong types and ranges, naming the source', () => {
    const f = file('f.yaml', 'model: m\nlearning_rate: "fast"\n');
    expect(() => resolveConfig(SCHEMA, { file: f })).toThrow(error('E_CONFIG', `Expected a finite number for learning_rate in ${f} but received the string "fast"`));
    const g = file('g.yaml', 'model: m\npeft:\n  r: 2.5\n');
    expect(() => resolveConfig(SCHEMA, { file: g })).toThrow(error('E_CONFIG', `Expected an integer for peft.r in ${g} but received the number 2.5`));
    const h = file('h.yaml', 'model: m\npeft:\n  target_modules: q_proj\n');
    expect(() => resolveConfig(SCHEMA, { file: h })).toThrow(error('E_CONFIG', `Expected a list of strings for peft.target_modules in ${h} but received the string "q_proj"`));
    const i = file('i.yaml', 'model: m\npacking: yes\n');
    expect(() => resolveConfig(SCHEMA, { file: i })).toThrow(error('E_CONFIG', `Expected a boolean (true or false) for packing in ${i} but received the string "yes"`));
    expect(() => resolveConfig(SCHEMA, { flags: { model: 'm', learning_rate: 'abc' } })).toThrow(
      error('E_CONFIG', 'Expected a number for --learning-rate but received the string "abc"'),
    );
    expect(() => resolveConfig(SCHEMA, { flags: { model: 'm', learning_rate: '0' } })).toThrow(
      error('E_CONFIG', 'Expected a number in (0, ∞] for --learning-rate but received the number 0'),
    );
    expect(() => resolveConfig(SCHEMA, { flags: { model: 'm', schedule: 'step' } })).toThrow(
      error('E_CONFIG', 'Expected one of constant, linear, cosine for --schedule but received the string "step"'),
    );
    expect(() => resolveConfig(SCHEMA, { flags: { model: 'm' }, sets: ['max_steps=0'] })).toThrow(
      error('E_CONFIG', 'Expected a number in [1, ∞] for --set max_steps but received the number 0'),
    );
    expect(() => resolveConfig(SCHEMA, { flags: { model: 'm' }, sets: ['packing=1'] })).toThrow(
      error('E_CONFIG', 'Expected a boolean (true or false) for --set packing but received the string "1"'),
    );
    const list = file('j.yaml', '- model\n- m\n');
    expect(() => resolveConfig(SCHEMA, { file: list })).toThrow(error('E_CONFIG', `Expected an object of fields for the configuration in ${list} but received an array of length 2`));
  });

  it('requires required fields, saying how to give them', () => {
    expect(() => resolveConfig(SCHEMA, {})).toThrow(error('E_CONFIG', 'Missing model (model): give --model <text> or set model in a config file'));
  });

  it('reports unreadable and malformed files', () => {
    expect(() => resolveConfig(SCHEMA, { file: path.join(dir, 'none.yaml') })).toThrow(error('E_IO', 'Could not read the config file'));
    const broken = file('k.yaml', 'model: [unclosed\n');
    expect(() => resolveConfig(SCHEMA, { file: broken })).toThrow(error('E_FORMAT', `The config file ${broken} is not valid YAML or JSON`));
  });

  it('an empty file or a null value leaves the defaults', () => {
    expect(resolveConfig(SCHEMA, { file: file('l.yaml', ''), flags: { model: 'm' } }).learning_rate).toBe(2e-4);
    expect(resolveConfig(SCHEMA, { file: file('m.yaml', 'learning_rate:\n'), flags: { model: 'm' } }).learning_rate).toBe(2e-4);
  });
});

describe('config on the command line', () => {
  beforeAll(() => ensureBuilt());

  it('train --print-config shows the file, --set and flags merged in order of precedence', () => {
    const cfg = file(
      'train.yaml',
      ['model: ./stories', 'train_file: data/train.jsonl', 'learning_rate: 1e-3', 'max_steps: 10', 'lr_scheduler_type: cosine', 'peft:', '  r: 4', '  target_modules: [q_proj, k_proj, v_proj]', ''].join('\n'),
    );
    const r = runCli(['train', '--config', cfg, '--set', 'max_steps=20', '--set', 'peft.lora_alpha=8', '--learning-rate', '5e-4', '--packing', '--print-config']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const c = JSON.parse(r.stdout);
    expect(c).toMatchObject({
      model: './stories',
      train_file: 'data/train.jsonl',
      learning_rate: 5e-4,
      max_steps: 20,
      lr_scheduler_type: 'cosine',
      packing: true,
      batch_size: 4,
      peft: { peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: ['q_proj', 'k_proj', 'v_proj'] },
    });
    // Every field of the schema is there or has no default.
    for (const [key, spec] of Object.entries(TRAIN_SCHEMA)) if ('default' in spec) expect(c).toHaveProperty(key);
    // The printed config is itself a valid config file.
    const again = file('again.json', r.stdout);
    expect(JSON.parse(runCli(['train', '--config', again, '--print-config']).stdout)).toEqual(c);
  });

  it.each([
    [['--config', 'MISSING'], /^peft-native: Could not read the config file .*MISSING.* \[E_IO\]\n$/],
    [['--set', 'peft.lora_alph=3'], /^peft-native: Unknown config key "peft\.lora_alph" in --set \(group peft\)\. Did you mean peft\.lora_alpha\?.* \[E_CONFIG\]\n$/],
    [['--max-steps', 'ten'], /^peft-native: Expected an integer for --max-steps but received the string "ten" \[E_CONFIG\]\n$/],
    [['--lr-scheduler-type', 'step'], /^peft-native: Expected one of constant, linear, cosine for --lr-scheduler-type but received the string "step" \[E_CONFIG\]\n$/],
  ])('a bad config (%j) is one line on stderr and exit code 1', (args, message) => {
    const r = runCli(['train', '--model', 'm', '--train-file', 't', ...(args as string[]), '--print-config']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.replace(path.join(dir, ''), '')).toMatch(message as RegExp);
  });

  it('a config file with a wrong type names the file and the field', () => {
    const cfg = file('bad.yaml', 'model: m\ntrain_file: t\nbatch_size: four\n');
    const r = runCli(['train', '-c', cfg, '--print-config']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`peft-native: Expected an integer for batch_size in ${cfg} but received the string "four" [E_CONFIG]\n`);
  });
});
