/**
 * Random mutations of model files for fuzz tests: bytes (bit flips, overwrites, truncation, length
 * fields set to extreme values), JSON text (broken syntax) and JSON values (a random member replaced,
 * removed or given an extreme value). Every function draws only from the `random` it is given, so a
 * seed reproduces a case.
 */
export type Random = () => number;

export const pick = <T>(random: Random, a: readonly T[]): T => a[Math.floor(random() * a.length)];
const below = (random: Random, n: number) => Math.floor(random() * n);

export const INTERESTING_U64 = [0n, 1n, 2n, 3n, 7n, 8n, 31n, 32n, 255n, 256n, 4096n, 65535n, 1n << 31n, (1n << 32n) - 1n, 1n << 32n,
  1n << 40n, 1n << 53n, (1n << 53n) + 1n, 1n << 62n, 1n << 63n, (1n << 63n) - 1n, (1n << 64n) - 1n, (1n << 64n) - 8n];
export const INTERESTING_U32 = [0, 1, 2, 3, 4, 7, 8, 9, 12, 26, 30, 31, 64, 255, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff];
export const INTERESTING_NUMBERS = [0, 1, -1, 2, 3, 7, 8, 63, 64, 65, 511, 512, 513, 0.5, -0.5, 1e-30, 1e30, 1e308, -1e308,
  2 ** 31, 2 ** 32, 2 ** 53, 2 ** 53 + 2, 2 ** 63, 2 ** 64, 1e20, 123456789];

/** Bytes of `base` with one mutation; `hot` bytes at the start (the header) get most of them. */
export function mutateBytes(base: Uint8Array, random: Random, fields: { hot: number; u32?: number[]; u64?: number[] }): Uint8Array {
  const hot = Math.max(1, Math.min(fields.hot, base.length));
  const at = () => below(random, random() < 0.85 ? hot : base.length);
  const kind = random();
  if (kind < 0.12) return base.slice(0, below(random, random() < 0.7 ? hot : base.length)); // truncation
  const out = base.slice();
  const view = new DataView(out.buffer);
  if (kind < 0.4) {
    for (let k = 1 + below(random, 4); k > 0; k--) out[at()] ^= 1 << below(random, 8); // bit flips
  } else if (kind < 0.55) {
    for (let k = 1 + below(random, 3); k > 0; k--) out[at()] = below(random, 256); // byte overwrites
  } else if (kind < 0.6) {
    const start = at(); // a run of random bytes
    for (let i = start; i < Math.min(out.length, start + 1 + below(random, 64)); i++) out[i] = below(random, 256);
  } else if (kind < 0.85 && fields.u64?.length) {
    const v = random() < 0.7 ? pick(random, INTERESTING_U64) : BigInt(below(random, 2 ** 32)) * BigInt(1 + below(random, 2 ** 20));
    view.setBigUint64(pick(random, fields.u64), v & ((1n << 64n) - 1n), true); // a length, count or offset
  } else if (fields.u32?.length) {
    view.setUint32(pick(random, fields.u32), random() < 0.8 ? pick(random, INTERESTING_U32) : below(random, 2 ** 32), true);
  } else {
    out[at()] ^= 0xff;
  }
  return out;
}

/** JSON text broken at the character level: truncated, a character changed, a span deleted or duplicated. */
export function mutateJsonText(text: string, random: Random): string {
  const i = below(random, text.length + 1);
  const kind = random();
  if (kind < 0.25) return text.slice(0, i);
  if (kind < 0.5) return text.slice(0, i) + pick(random, [...'{}[]",:0123456789.eE-+ntfu\\\u0000\u00ff\ud800x ']) + text.slice(i + 1);
  if (kind < 0.75) return text.slice(0, i) + text.slice(i + 1 + below(random, 32));
  return text.slice(0, i) + text.slice(i, i + below(random, 64)) + text.slice(i);
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/**
 * Strings that have tripped parsers: names of Object.prototype members (a lookup `table[value]` finds
 * them), numbers and non-finite values spelled as text, path tricks, control and non-BMP characters.
 */
export const STRANGE_STRINGS = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'prototype', 'NaN', 'Infinity', '-Infinity', '1e999', '0x10',
  '-1', '../x', '/etc/passwd', 'a/b', '.', '\u0000', 'x\u0000y', '\ud800', '\u{1F600}', ' ', '\n', '(', '(.*)*X', '[a-', '\\'];

/** Arrays (or objects) nested `depth` deep around `leaf`. */
export function nested(depth: number, leaf: Json = 0, object = false): Json {
  let v = leaf;
  for (let i = 0; i < depth; i++) v = object ? { a: v } : [v];
  return v;
}

/** Stands for a value nested too deep for JSON.stringify; {@link jsonText} writes it out. */
export const DEEP = '\u0001deeply nested\u0001';

/** JSON.stringify, with each {@link DEEP} written as arrays nested 20000 deep. */
export function jsonText(value: unknown): string {
  const deep = `${'['.repeat(20000)}1${']'.repeat(20000)}`;
  return JSON.stringify(value).split(JSON.stringify(DEEP)).join(deep);
}

/** Length of the long strings strangeJsonValue makes (a test whose reader tokenizes them lowers it). */
export const LIMITS = { longString: 1 << 16 };

/** An extreme or wrongly typed JSON value. */
export function strangeJsonValue(random: Random): Json {
  const r = random();
  if (r < 0.4) return pick(random, INTERESTING_NUMBERS) * (random() < 0.1 ? -1 : 1);
  if (r < 0.5) return pick(random, ['', 'x', 'llama', 'gpt2', 'F32', 'F16', 'BF16', 'I64', 'silu', 'linear', 'llama3', 'BPE', 'Unigram', '<unk>', 'a'.repeat(1000)]);
  if (r < 0.58) return pick(random, STRANGE_STRINGS);
  if (r < 0.6) return pick(random, ['x'.repeat(LIMITS.longString), nested(64, 1, random() < 0.5), nested(1000, 1, random() < 0.5), DEEP]);
  if (r < 0.7) return pick(random, [null, true, false]);
  if (r < 0.8) return pick(random, [[], [0], [1, 2], [-1, 5], [1e20, 1e20], [[]], ['a', 'b'], [0, 0, 0, 0, 0, 0, 0, 0, 0]]);
  return pick<Json>(random, [{}, { type: 'linear', factor: 0 }, { rope_type: 'llama3', factor: 8 }, { a: 1 }]);
}

/** Every path to a value inside `root` (object keys and array indices). */
function paths(root: Json, limit: number): (string | number)[][] {
  const out: (string | number)[][] = [];
  const walk = (v: Json, p: (string | number)[]) => {
    if (out.length >= limit) return;
    if (p.length) out.push(p);
    if (Array.isArray(v)) v.forEach((x, i) => walk(x, [...p, i]));
    else if (v && typeof v === 'object') for (const k of Object.keys(v)) walk(v[k], [...p, k]);
  };
  walk(root, []);
  return out;
}

/**
 * A deep copy of `root` with 1-3 members changed: replaced by a strange value, removed, (for numbers)
 * scaled, or a member added beside it (one of `extraKeys`, or a prototype name such as `__proto__`,
 * made an own property as JSON.parse would); `focus` lists paths worth hitting more often (e.g.
 * shapes and offsets).
 */
export function mutateJsonValue(root: Json, random: Random, focus: (p: (string | number)[]) => boolean = () => false,
  extraKeys: readonly string[] = []): Json {
  let copy: Json;
  let all: (string | number)[][];
  try {
    copy = JSON.parse(JSON.stringify(root)) as Json;
    all = paths(copy, 200000);
  } catch {
    return strangeJsonValue(random); // nested too deep to walk (an earlier mutation's DEEP)
  }
  const focused = all.filter(focus);
  for (let k = 1 + below(random, 3); k > 0; k--) {
    const p = focused.length && random() < 0.6 ? pick(random, focused) : pick(random, all);
    if (!p) break;
    let parent = copy as Record<string | number, Json>;
    for (const key of p.slice(0, -1)) parent = parent?.[key] as Record<string | number, Json>;
    if (!parent || typeof parent !== 'object') continue;
    const last = p[p.length - 1];
    const current = parent[last];
    const r = random();
    if (r < 0.2) {
      if (Array.isArray(parent)) parent.splice(last as number, 1);
      else delete parent[last];
    } else if (r < 0.3 && !Array.isArray(parent)) {
      const key = extraKeys.length && random() < 0.6 ? pick(random, extraKeys) : pick(random, STRANGE_STRINGS.slice(0, 5));
      Object.defineProperty(parent, key, { value: strangeJsonValue(random), enumerable: true, writable: true, configurable: true });
    } else if (r < 0.4 && typeof current === 'number') {
      parent[last] = pick(random, [current + 1, current - 1, current * 2, Math.floor(current / 2), -current, current * 1e9]);
    } else {
      parent[last] = strangeJsonValue(random);
    }
  }
  return copy;
}

/**
 * A safetensors file with one mutation: its header JSON rewritten (a member replaced, removed or
 * added, `focus` favouring shapes, offsets and dtypes; sometimes also broken as text) or its bytes
 * mutated (the header length and header bytes most often).
 */
export function mutateSafetensors(file: Uint8Array, random: Random): Uint8Array {
  const headerLen = Number(new DataView(file.buffer, file.byteOffset).getBigUint64(0, true));
  if (random() < 0.4) return mutateBytes(file, random, { hot: 8 + headerLen, u64: [0] });
  const header = JSON.parse(Buffer.from(file.subarray(8, 8 + headerLen)).toString('utf8'));
  const mutated = mutateJsonValue(header, random, (p) => p.length >= 2 && ['shape', 'data_offsets', 'dtype'].includes(String(p[1])),
    ['dtype', 'shape', 'data_offsets', '__metadata__']);
  let text = jsonText(mutated);
  if (random() < 0.2) text = mutateJsonText(text, random);
  const bytes = Buffer.from(text, 'utf8');
  const data = file.subarray(8 + headerLen);
  const out = new Uint8Array(8 + bytes.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(bytes.length), true);
  out.set(bytes, 8);
  out.set(data, 8 + bytes.length);
  return out;
}
