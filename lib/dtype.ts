/** Element types of tensors. */
import { fail } from './validate';

/** A tensor's element type. bf16 and f16 are stored as raw 16-bit patterns. */
export type DType = 'f32' | 'bf16' | 'f16' | 'i32' | 'u8';

export const DTYPES: readonly DType[] = ['f32', 'bf16', 'f16', 'i32', 'u8'];

/** The TypedArray that holds a dtype's raw values. */
export type RawArray<D extends DType = DType> = D extends 'f32'
  ? Float32Array
  : D extends 'bf16' | 'f16'
    ? Uint16Array
    : D extends 'i32'
      ? Int32Array
      : D extends 'u8'
        ? Uint8Array
        : never;

/** Bytes per element. */
export function dtypeSize(dtype: DType): number {
  return dtype === 'f32' || dtype === 'i32' ? 4 : dtype === 'u8' ? 1 : 2;
}

export function checkDType(value: unknown, argument = 'dtype'): DType {
  if (typeof value !== 'string' || !(DTYPES as readonly string[]).includes(value)) {
    fail(argument, `one of ${DTYPES.join(', ')}`, value, 'E_DTYPE');
  }
  return value as DType;
}
