/**
 * Python's `json.dumps` text for the flat dicts bitsandbytes packs into its quant_state tensor, so
 * that the bytes we write equal the ones bitsandbytes writes (", " and ": " separators, Python's
 * float repr).
 * @internal
 */

/** Python's repr() of a float: shortest round-trip digits, exponent form below 1e-4 or from 1e16. */
export function pythonFloatRepr(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (!Number.isFinite(x)) return x > 0 ? 'Infinity' : '-Infinity';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const [mantissa, exponentText] = x.toExponential().split('e'); // shortest digits that round-trip
  const exponent = Number(exponentText);
  const sign = x < 0 ? '-' : '';
  const digits = mantissa.replace('-', '').replace('.', '');
  if (exponent < -4 || exponent >= 16) {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    return `${sign}${m}e${exponent < 0 ? '-' : '+'}${String(Math.abs(exponent)).padStart(2, '0')}`;
  }
  if (exponent < 0) return `${sign}0.${'0'.repeat(-exponent - 1)}${digits}`;
  if (digits.length <= exponent + 1) return `${sign}${digits}${'0'.repeat(exponent + 1 - digits.length)}.0`;
  return `${sign}${digits.slice(0, exponent + 1)}.${digits.slice(exponent + 1)}`;
}

/** A value that Python holds as a float (json.dumps writes 1.0, not 1). */
export class PythonFloat {
  constructor(readonly value: number) {}
}

export type PythonJsonValue = string | number | PythonFloat | PythonJsonValue[];

function dumpValue(v: PythonJsonValue): string {
  if (v instanceof PythonFloat) return pythonFloatRepr(v.value);
  if (Array.isArray(v)) return `[${v.map(dumpValue).join(', ')}]`;
  if (typeof v === 'number') return String(v); // Python ints
  return JSON.stringify(v); // ASCII names only: json.dumps' ensure_ascii escaping is the same
}

/** json.dumps(dict) for a flat dict in insertion order. */
export function pythonJsonDumps(entries: [string, PythonJsonValue][]): string {
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}: ${dumpValue(v)}`).join(', ')}}`;
}
