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
  if (Array.isArray(value)) return `an array of length ${value.length}`;
  if (ArrayBuffer.isView(value)) return `a ${value.constructor.name}`;
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'object') return `an object (${(value as object).constructor?.name ?? 'Object'})`;
  return typeof value;
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
  range: { min?: number; max?: number; integer?: boolean } = {},
): number {
  const value = options[key];
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value)) fail(`option ${key}`, 'a finite number', value);
  if (range.integer && !Number.isInteger(value)) fail(`option ${key}`, 'an integer', value);
  if ((range.min !== undefined && value < range.min) || (range.max !== undefined && value > range.max)) {
    fail(`option ${key}`, `a number in [${range.min ?? '-∞'}, ${range.max ?? '∞'}]`, value, 'E_RANGE');
  }
  return value;
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
