/**
 * Command configurations: a schema per command, a YAML or JSON config file, and flags on top.
 *
 * Precedence, lowest first: the schema's defaults, the config file (`--config`), `--set key=value`
 * (dotted keys reach nested fields), then the named flags. Fields are snake_case as in Hugging Face
 * and mlx-lm configs; a field's flag is its kebab-case name (`learning_rate` → `--learning-rate`).
 * Every source is validated on its own, so an error names where the bad value came from.
 */
import * as fs from 'node:fs';

import { parse as parseYaml } from 'yaml';

import { PeftError } from '../errors';
import { fail } from '../validate';
import { lineExceedingNesting, MAX_YAML_NESTING } from './yaml-nesting';

/** The value types a field can have. */
export type FieldType = 'string' | 'number' | 'integer' | 'boolean' | 'string[]';

/** One configuration field. */
export interface FieldSpec {
  type: FieldType;
  /** One line for --help. */
  description: string;
  /** For a boolean that defaults to true: the help of its --no- flag. */
  offDescription?: string;
  default?: string | number | boolean | readonly string[];
  /** Must be given by some source. */
  required?: boolean;
  /** Allowed values of a string field. */
  choices?: readonly string[];
  min?: number;
  max?: number;
  /** `min` itself is not allowed. */
  exclusiveMin?: boolean;
  /** A one-letter alias of the flag, e.g. 'm' for -m. */
  short?: string;
  /** The name in the flag's help, e.g. 'path' in `--model <path>`. */
  placeholder?: string;
  /** Also the command's positional argument. */
  positional?: boolean;
}

/** Nested fields, written `group.field` on the command line. */
export interface GroupSpec {
  description: string;
  fields: ConfigSchema;
}

/** The fields of one command. */
export type ConfigSchema = { readonly [key: string]: FieldSpec | GroupSpec };

type LeafValue<F extends FieldSpec> = F['type'] extends 'string'
  ? string
  : F['type'] extends 'number' | 'integer'
    ? number
    : F['type'] extends 'boolean'
      ? boolean
      : string[];
type Always<F> = F extends { default: unknown } ? true : F extends { required: true } ? true : false;

/** The validated configuration of a schema: fields with a default or `required` are always set. */
export type ConfigOf<S extends ConfigSchema> = {
  -readonly [K in keyof S]: S[K] extends GroupSpec
    ? ConfigOf<S[K]['fields']>
    : S[K] extends FieldSpec
      ? Always<S[K]> extends true
        ? LeafValue<S[K]>
        : LeafValue<S[K]> | undefined
      : never;
};

/** A plain configuration object (what a file holds). */
export type RawConfig = Record<string, unknown>;

export function isGroup(spec: FieldSpec | GroupSpec): spec is GroupSpec {
  return (spec as GroupSpec).fields !== undefined;
}

const PLACEHOLDER: Record<FieldType, string> = { string: 'text', number: 'number', integer: 'n', boolean: '', 'string[]': 'a,b,...' };

/** The value's name in help text: `<path>` in `--model <path>`. */
export function placeholderOf(spec: FieldSpec): string {
  return spec.placeholder ?? PLACEHOLDER[spec.type];
}

/** snake_case field → kebab-case flag: learning_rate → --learning-rate. */
export function flagOf(key: string): string {
  return `--${key.replace(/_/g, '-')}`;
}

/** Every leaf field with its dotted path: [['peft.r', spec], ...]. */
export function leafFields(schema: ConfigSchema, prefix = ''): Array<[string, FieldSpec]> {
  return Object.entries(schema).flatMap(([key, spec]) =>
    isGroup(spec) ? leafFields(spec.fields, `${prefix}${key}.`) : [[`${prefix}${key}`, spec] as [string, FieldSpec]],
  );
}

/** The field `key` of a schema: an own entry only (`constructor` or `__proto__` in a file is no field). */
function fieldOf(schema: ConfigSchema, key: string): FieldSpec | GroupSpec | undefined {
  return Object.prototype.hasOwnProperty.call(schema, key) ? schema[key] : undefined;
}

/** Levenshtein distance, for "did you mean" hints. */
function distance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) next.push(Math.min(row[j] + 1, next[j - 1] + 1, row[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1)));
    row = next;
  }
  return row[b.length];
}

function unknownKey(key: string, where: string, valid: string[]): never {
  const normalized = key.replace(/-/g, '_');
  const near = valid.filter((v) => v === normalized || distance(v, normalized) <= Math.max(1, Math.floor(v.length / 4)));
  const hint = near.length ? ` Did you mean ${near.join(' or ')}?` : '';
  throw new PeftError(`Unknown config key "${key}" ${where}.${hint} Valid keys: ${valid.join(', ')}`, 'E_CONFIG');
}

function expectation(spec: FieldSpec): string {
  if (spec.choices) return `one of ${spec.choices.join(', ')}`;
  return { string: 'a string', number: 'a number', integer: 'an integer', boolean: 'a boolean (true or false)', 'string[]': 'a list of strings' }[spec.type];
}

/** Checks one value against its field; `argument` names where it came from. */
export function checkValue(spec: FieldSpec, value: unknown, argument: string): unknown {
  switch (spec.type) {
    case 'string':
      if (typeof value !== 'string') fail(argument, expectation(spec), value, 'E_CONFIG');
      if (spec.choices && !spec.choices.includes(value)) fail(argument, expectation(spec), value, 'E_CONFIG');
      return value;
    case 'boolean':
      if (typeof value !== 'boolean') fail(argument, expectation(spec), value, 'E_CONFIG');
      return value;
    case 'string[]':
      if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) fail(argument, expectation(spec), value, 'E_CONFIG');
      return [...value];
    default: {
      if (typeof value !== 'number' || !Number.isFinite(value)) fail(argument, spec.type === 'integer' ? 'an integer' : 'a finite number', value, 'E_CONFIG');
      if (spec.type === 'integer' && !Number.isInteger(value)) fail(argument, 'an integer', value, 'E_CONFIG');
      const low = spec.min !== undefined && (spec.exclusiveMin ? value <= spec.min : value < spec.min);
      const high = spec.max !== undefined && value > spec.max;
      if (low || high) {
        const range = `${spec.exclusiveMin ? '(' : '['}${spec.min ?? '-∞'}, ${spec.max ?? '∞'}]`;
        fail(argument, `a number in ${range}`, value, 'E_CONFIG');
      }
      return value;
    }
  }
}

/**
 * Validates a configuration object from `source` (e.g. 'in train.yaml'): no unknown keys, every
 * value of its field's type. Returns a copy.
 */
export function validateConfig(schema: ConfigSchema, raw: unknown, source: string, prefix = ''): RawConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    fail(prefix ? `${prefix.slice(0, -1)} ${source}` : `the configuration ${source}`, 'an object of fields', raw, 'E_CONFIG');
  }
  const out: RawConfig = {};
  for (const [key, value] of Object.entries(raw as RawConfig)) {
    const spec = fieldOf(schema, key);
    if (spec === undefined) unknownKey(`${prefix}${key}`, source, Object.keys(schema).map((k) => `${prefix}${k}`));
    if (isGroup(spec)) out[key] = validateConfig(spec.fields, value, source, `${prefix}${key}.`);
    else if (value !== null) out[key] = checkValue(spec, value, `${prefix}${key} ${source}`);
  }
  return out;
}

/** Reads a YAML or JSON config file (JSON is YAML too). */
export function loadConfigFile(file: string): unknown {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (err) {
    throw new PeftError(`Could not read the config file ${file}: ${(err as Error).message}`, 'E_IO');
  }
  let text: string;
  try {
    // Strict: invalid bytes would otherwise become U+FFFD inside a path or a name.
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new PeftError(`The config file ${file} is not UTF-8 text (it holds invalid bytes)`, 'E_FORMAT');
  }
  const deep = lineExceedingNesting(text);
  if (deep) throw new PeftError(`The config file ${file} nests deeper than ${MAX_YAML_NESTING} levels (line ${deep})`, 'E_FORMAT');
  try {
    // YAML 1.2 core schema: 1e-4 is a number, yes/no are strings.
    return parseYaml(text) ?? {};
  } catch (err) {
    const why = err instanceof RangeError ? 'nested too deeply' : (err as Error).message.split('\n')[0];
    throw new PeftError(`The config file ${file} is not valid YAML or JSON: ${why}`, 'E_FORMAT');
  }
}

/** Turns text from the command line into a value of the field's type. */
export function parseFlagValue(spec: FieldSpec, text: string, argument: string): unknown {
  switch (spec.type) {
    case 'string':
      return checkValue(spec, text, argument);
    case 'boolean':
      if (text === 'true' || text === 'false') return text === 'true';
      return fail(argument, expectation(spec), text, 'E_CONFIG');
    case 'string[]': {
      const trimmed = text.trim();
      // A YAML/JSON list ([a, b]) or comma-separated names (a,b); empty text is an empty list.
      const list = trimmed.startsWith('[') ? safeYaml(trimmed) : trimmed === '' ? [] : trimmed.split(',').map((s) => s.trim());
      return checkValue(spec, list, argument);
    }
    default: {
      const n = text.trim() === '' ? NaN : Number(text);
      if (!Number.isFinite(n)) fail(argument, spec.type === 'integer' ? 'an integer' : 'a number', text, 'E_CONFIG');
      return checkValue(spec, n, argument);
    }
  }
}

function safeYaml(text: string): unknown {
  if (lineExceedingNesting(text)) return text; // refused as "a list of strings" by checkValue
  try {
    return parseYaml(text);
  } catch {
    return text;
  }
}

/** Sets `value` at a dotted path, creating groups on the way. */
function setPath(target: RawConfig, path: string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    if (typeof node[key] !== 'object' || node[key] === null) node[key] = {};
    node = node[key] as RawConfig;
  }
  node[path[path.length - 1]] = value;
}

/** Deep merge of validated configs; later sources win field by field. */
function merge(base: RawConfig, over: RawConfig): RawConfig {
  const out: RawConfig = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const b = out[key];
    const nested = typeof value === 'object' && value !== null && !Array.isArray(value);
    out[key] = nested && typeof b === 'object' && b !== null && !Array.isArray(b) ? merge(b as RawConfig, value as RawConfig) : value;
  }
  return out;
}

/** Parses one `--set key.path=value` into a config fragment. */
export function parseAssignment(schema: ConfigSchema, assignment: string): RawConfig {
  const eq = assignment.indexOf('=');
  if (eq <= 0) fail('--set', 'key=value (e.g. --set peft.r=16)', assignment, 'E_CONFIG');
  const key = assignment.slice(0, eq).trim();
  const text = assignment.slice(eq + 1);
  const path = key.split('.');
  let fields = schema;
  path.forEach((part, i) => {
    const spec = fieldOf(fields, part);
    const where = i === 0 ? 'in --set' : `in --set (group ${path.slice(0, i).join('.')})`;
    if (spec === undefined) unknownKey(path.slice(0, i + 1).join('.'), where, Object.keys(fields).map((k) => [...path.slice(0, i), k].join('.')));
    if (i < path.length - 1) {
      if (!isGroup(spec)) fail(`--set ${key}`, `a field path (${path.slice(0, i + 1).join('.')} has no fields)`, assignment, 'E_CONFIG');
      fields = spec.fields;
    } else if (isGroup(spec)) {
      const example = Object.keys(spec.fields)[0];
      fail(`--set ${key}`, `a field of the group, such as ${key}.${example}=…`, assignment, 'E_CONFIG');
    }
  });
  const leaf = fields[path[path.length - 1]] as FieldSpec;
  const out: RawConfig = {};
  setPath(out, path, parseFlagValue(leaf, text, `--set ${key}`));
  return out;
}

/** Fills defaults and checks that required fields are there. */
function complete(schema: ConfigSchema, config: RawConfig, prefix = ''): RawConfig {
  const out: RawConfig = {};
  for (const [key, spec] of Object.entries(schema)) {
    if (isGroup(spec)) {
      out[key] = complete(spec.fields, (config[key] as RawConfig | undefined) ?? {}, `${prefix}${key}.`);
      continue;
    }
    const value = config[key] ?? (Array.isArray(spec.default) ? [...spec.default] : spec.default);
    if (value === undefined && spec.required) {
      const how = prefix ? `--set ${prefix}${key}=…` : spec.positional ? `the <${spec.placeholder ?? key}> argument` : `${flagOf(key)} <${placeholderOf(spec)}>`;
      throw new PeftError(`Missing ${prefix}${key} (${spec.description.replace(/\.$/, '')}): give ${how} or set ${prefix}${key} in a config file`, 'E_CONFIG');
    }
    if (value !== undefined) out[key] = value;
  }
  return out;
}

/** The sources of one command's configuration. */
export interface ConfigSources {
  /** Path of a YAML or JSON file. */
  file?: string;
  /** `key.path=value` assignments, in order. */
  sets?: readonly string[];
  /** Named flags and positional arguments by field key, as the command line gave them (text; booleans as booleans). */
  flags?: Readonly<Record<string, string | boolean | undefined>>;
}

/** Merges defaults, file, --set and flags into a validated configuration. */
export function resolveConfig<S extends ConfigSchema>(schema: S, sources: ConfigSources): ConfigOf<S> {
  let config: RawConfig = {};
  if (sources.file !== undefined) config = merge(config, validateConfig(schema, loadConfigFile(sources.file), `in ${sources.file}`));
  for (const assignment of sources.sets ?? []) config = merge(config, parseAssignment(schema, assignment));
  for (const [key, value] of Object.entries(sources.flags ?? {})) {
    if (value === undefined) continue;
    const spec = fieldOf(schema, key);
    if (spec === undefined || isGroup(spec)) throw new PeftError(`Internal: no field ${key} for a flag`, 'E_INTERNAL');
    config[key] = typeof value === 'boolean' ? checkValue(spec, value, flagOf(key)) : parseFlagValue(spec, value, spec.positional ? `<${spec.placeholder ?? key}>` : flagOf(key));
  }
  return complete(schema, config) as ConfigOf<S>;
}

/** How a value reads in help text. */
export function showValue(value: unknown): string {
  if (Array.isArray(value)) return value.join(',');
  return typeof value === 'string' ? value : String(value);
}

