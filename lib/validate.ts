/**
 * Argument checks with one message format: "Expected <what was expected> for <argument> but received <value>".
 * @internal
 */
import { PeftError, type PeftErrorCode } from './errors';

export function describe(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (value === null) return 'null';
  if (typeof value === 'number') return `the number ${value}`;
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value)}`;
  if (typeof value === 'boolean') return `the boolean ${value}`;
  if (typeof value === 'bigint') return `the bigint ${value}n`;
  if (typeof value === 'symbol') return 'a symbol';
  if (Array.isArray(value)) return `an array of length ${value.length}`;
  if (ArrayBuffer.isView(value)) return `a ${value.constructor.name}`;
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'object') return `an object (${(value as object).constructor?.name ?? 'Object'})`;
  return typeof value;
}

/**
 * A value read from a file, as JSON text for a message: at most `max` characters, and never a throw
 * (a value nested thousands deep overflows JSON.stringify's stack).
 */
export function preview(value: unknown, max = 120): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch {
    return describe(value);
  }
  if (text === undefined) return describe(value);
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

export function fail(argument: string, expectation: string, received: unknown, code: PeftErrorCode = 'E_ARGUMENT'): never {
  throw new PeftError(`Expected ${expectation} for ${argument} but received ${describe(received)}`, code);
}

export function expectObject(value: unknown, argument: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(argument, 'an object', value);
  return value as Record<string, unknown>;
}

/** An optional options object: undefined becomes {}. */
export function optionsObject(value: unknown, argument = 'options'): Record<string, unknown> {
  return value === undefined ? {} : expectObject(value, argument);
}

export function optionalNumber(
  options: Record<string, unknown>,
  key: string,
  fallback: number,
  range: { min?: number; max?: number; integer?: boolean; exclusiveMin?: boolean } = {},
): number {
  const value = options[key];
  if (value === undefined) return fallback;
  return expectNumber(value, `option ${key}`, range);
}

export function optionalBoolean(options: Record<string, unknown>, key: string, fallback: boolean): boolean {
  const value = options[key];
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') fail(`option ${key}`, 'a boolean', value);
  return value;
}

export function expectArray(value: unknown, argument: string): unknown[] {
  if (!Array.isArray(value)) fail(argument, 'an array', value);
  return value;
}

/** A required number: finite (E_ARGUMENT), an integer if asked (E_ARGUMENT), within range (E_RANGE). */
export function expectNumber(
  value: unknown,
  argument: string,
  range: { min?: number; max?: number; integer?: boolean; exclusiveMin?: boolean } = {},
): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) fail(argument, 'a finite number', value);
  if (range.integer && !Number.isInteger(value)) fail(argument, 'an integer', value);
  const low = range.min === undefined ? false : range.exclusiveMin ? value <= range.min : value < range.min;
  const high = range.max !== undefined && value > range.max;
  if (low || high) {
    const lo = range.min === undefined ? '-∞' : String(range.min);
    const hi = range.max === undefined ? '∞' : String(range.max);
    fail(argument, `a number in ${range.exclusiveMin ? '(' : '['}${lo}, ${hi}]`, value, 'E_RANGE');
  }
  return value;
}
