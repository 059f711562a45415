/**
 * Bounded fuzzing of command configuration files (YAML, and JSON, which is YAML too) and --set
 * assignments: a real training config is mutated a few thousand times, as values (wrong types, huge,
 * negative or non-finite numbers, prototype names such as `__proto__` and `constructor`, deep nesting,
 * long strings, keys removed or added) and as YAML text (anchors and alias bombs, merge keys, tags,
 * several documents, duplicate keys, YAML 1.1 spellings, deep flow nesting, BOM, NUL, invalid UTF-8,
 * broken characters), then resolved against the train command's schema.
 *
 * Every resolution must give a configuration that fits the schema (every key a field, every value of
 * its field's type, choice and range) or raise a PeftError, and must never touch Object.prototype.
 * Seeded; see test/helpers/fuzz-loop.ts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { stringify as yamlStringify } from 'yaml';

import { isGroup, resolveConfig, type ConfigSchema, type FieldSpec, type RawConfig } from '../../lib/cli/config';
import { TRAIN_SCHEMA } from '../../lib/cli/commands/train';
import { countOf, fuzzLoop, peftOutcome, type FuzzCase } from '../helpers/fuzz-loop';
import { jsonText, mutateBytes, mutateJsonText, mutateJsonValue, pick, STRANGE_STRINGS, strangeJsonValue, type Random } from '../helpers/mutate';

const CONFIG = {
  model: './stories260K-hf',
  train_file: 'train.jsonl',
  valid_file: 'valid.jsonl',
  output_dir: 'out',
  max_seq_length: 256,
  batch_size: 8,
  max_steps: 200,
  learning_rate: 2e-4,
  lr_scheduler_type: 'cosine',
  warmup_ratio: 0.1,
  packing: true,
  seed: 7,
  peft: { peft_type: 'LORA', r: 16, lora_alpha: 32, lora_dropout: 0.05, target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj'] },
};
const KEYS = [...Object.keys(TRAIN_SCHEMA), ...Object.keys(TRAIN_SCHEMA.peft.fields)];

// YAML constructs that have hurt YAML readers: resource bombs, merges, tags, documents, 1.1 spellings.
const BOMB = `a: &a ["x","x","x","x","x","x","x","x","x","x"]\n${Array.from({ length: 8 }, (_, i) =>
  `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [${Array(10).fill(`*${String.fromCharCode(97 + i)}`).join(',')}]`).join('\n')}\n`;
const YAML_SNIPPETS = [
  BOMB,
  'base: &base\n  r: 4\npeft:\n  <<: *base\n  lora_alpha: 8\n',
  'peft: &p\n  r: 4\nextra: *p\n',
  'seed: !!binary aGVsbG8=\n',
  'seed: !!str 12\n',
  'learning_rate: !!float .nan\n',
  'learning_rate: .inf\n',
  'max_steps: 0x10\n',
  'max_steps: 0o17\n',
  'max_steps: 1e400\n',
  'max_steps: 99999999999999999999999\n',
  'packing: yes\n',
  'packing: ~\n',
  'model: !custom/tag x\n',
  'peft: !!set {a, b}\n',
  'peft: !!omap [{r: 1}]\n',
  '--- \nmodel: a\n---\nmodel: b\n',
  'model: a\nmodel: b\n',
  `peft: ${'['.repeat(300)}${']'.repeat(300)}\n`,
  `peft: ${'['.repeat(3000)}${']'.repeat(3000)}\n`,
  `peft: ${'{a: '.repeat(300)}1${'}'.repeat(300)}\n`,
  '__proto__: {polluted: 1}\n',
  'peft:\n  __proto__:\n    polluted: 1\n',
  'constructor: 1\n',
  'toString: {a: 1}\n',
  'hasOwnProperty: x\n',
  'peft:\n\tr: 4\n',
  'model: "unterminated\n',
  `model: ${'x'.repeat(1 << 16)}\n`,
  '? [complex, key]\n: value\n',
  '%YAML 1.1\n---\npacking: on\n',
  '&a a: *a\n',
];
const SET_PATHS = [...KEYS, 'peft.r', 'peft.target_modules', 'peft.__proto__', '__proto__', 'constructor', 'toString', 'peft.constructor', 'a.b.c', '', 'peft.', '.r'];

interface ConfigCase extends FuzzCase {
  file: string;
  sets: string[];
}

function makeCase(i: number, random: Random, dir: string): ConfigCase {
  const json = random() < 0.3;
  const r = random();
  let bytes: Buffer;
  let what: string;
  if (r < 0.5) {
    what = 'values';
    const value = random() < 0.05 ? strangeJsonValue(random) : mutateJsonValue(CONFIG as never, random, () => false, KEYS);
    const plain = jsonText(value);
    let text: string;
    // YAML text too, unless the value is large (yaml writes deep nesting slowly, and JSON is YAML).
    text = json || plain.length > 4096 ? plain : yamlStringify(value);
    bytes = Buffer.from(text);
  } else if (r < 0.75) {
    what = 'YAML constructs';
    const base = yamlStringify(CONFIG);
    const snippet = pick(random, YAML_SNIPPETS);
    bytes = Buffer.from(random() < 0.5 ? snippet : `${base}${snippet}`);
  } else if (r < 0.9) {
    what = 'text';
    bytes = Buffer.from(mutateJsonText(json ? JSON.stringify(CONFIG, null, 2) : yamlStringify(CONFIG), random));
  } else {
    what = 'bytes';
    const base = Buffer.from(yamlStringify(CONFIG));
    bytes = Buffer.from(mutateBytes(new Uint8Array(base), random, { hot: base.length }));
    if (random() < 0.3) bytes = Buffer.concat([Buffer.from(pick(random, [[0xef, 0xbb, 0xbf], [0xff, 0xfe], [0x00]])), bytes]);
  }
  const file = path.join(dir, json ? 'config.json' : 'config.yaml');
  fs.writeFileSync(file, bytes);
  const sets = random() < 0.3
    ? [`${pick(random, SET_PATHS)}=${pick(random, ['1', '-1', '1e999', 'NaN', 'true', '[a, b]', '[[[[', '{a: 1}', '', ...STRANGE_STRINGS])}`]
    : [];
  return { description: `${json ? 'JSON' : 'YAML'} config, ${what} mutated${sets.length ? `, --set ${sets[0]}` : ''}`, file, sets };
}

/** Throws unless `config` holds only fields of `schema`, each of its type, choices and range. */
function checkFits(schema: ConfigSchema, config: RawConfig, where = ''): void {
  for (const [key, value] of Object.entries(config)) {
    if (!Object.prototype.hasOwnProperty.call(schema, key)) throw new Error(`resolved config has key ${where}${key}, which is no field`);
    const spec = schema[key];
    if (isGroup(spec)) {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`group ${where}${key} is ${typeof value}`);
      checkFits(spec.fields, value as RawConfig, `${where}${key}.`);
      continue;
    }
    const f = spec as FieldSpec;
    const ok =
      f.type === 'string' ? typeof value === 'string' && (!f.choices || f.choices.includes(value))
        : f.type === 'boolean' ? typeof value === 'boolean'
          : f.type === 'string[]' ? Array.isArray(value) && value.every((v) => typeof v === 'string')
            : typeof value === 'number' && Number.isFinite(value) && (f.type !== 'integer' || Number.isInteger(value)) &&
              (f.min === undefined || (f.exclusiveMin ? value > f.min : value >= f.min)) && (f.max === undefined || value <= f.max);
    if (!ok) throw new Error(`${where}${key} = ${String(value).slice(0, 80)} does not fit its field (${f.type})`);
  }
}

async function exercise(c: ConfigCase): Promise<string> {
  const protoKeys = Object.getOwnPropertyNames(Object.prototype).join();
  let outcome: string;
  try {
    const config = resolveConfig(TRAIN_SCHEMA, { file: c.file, sets: c.sets });
    checkFits(TRAIN_SCHEMA, config as unknown as RawConfig);
    outcome = 'resolved';
  } catch (e) {
    outcome = peftOutcome(e);
  }
  if (Object.getOwnPropertyNames(Object.prototype).join() !== protoKeys || ({} as Record<string, unknown>).polluted !== undefined) {
    throw new Error('Object.prototype was changed');
  }
  return outcome;
}

describe('resolving mutated config files', () => {
  it('answers every mutation with a configuration that fits the schema or a PeftError', async () => {
    const run = await fuzzLoop({ name: 'config', seed: 6, budgetMs: 12000, maxCases: 4000, minCases: 301 }, makeCase, exercise);
    if (run.replay) return;
    expect(run.cases).toBeGreaterThan(300);
    expect(countOf(run, 'resolved')).toBeGreaterThan(0);
    expect(countOf(run, 'E_CONFIG')).toBeGreaterThan(0);
    expect(countOf(run, 'E_FORMAT')).toBeGreaterThan(0);
  }, Number(process.env.PEFT_FUZZ_MS ?? 12000) + 60000);
});
