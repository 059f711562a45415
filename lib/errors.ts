/**
 * The one error class of peft-native. Native failures arrive as PeftErrors too, with the same codes.
 */

/** Stable error codes; see {@link PeftError.code}. */
export type PeftErrorCode =
  | 'E_SHAPE'
  | 'E_DTYPE'
  | 'E_ARGUMENT'
  | 'E_RANGE'
  | 'E_FORMAT'
  | 'E_IO'
  | 'E_CONFIG'
  | 'E_BUSY'
  | 'E_DISPOSED'
  | 'E_UNSUPPORTED'
  | 'E_MEMORY'
  | 'E_LOAD'
  | 'E_NONFINITE'
  | 'E_INTERNAL';

/** An error raised by peft-native, with a machine-readable {@link PeftError.code}. */
export class PeftError extends Error {
  /** What went wrong, e.g. `E_SHAPE` for tensor shapes that do not fit together. */
  readonly code: PeftErrorCode;

  constructor(message: string, code: PeftErrorCode) {
    super(message);
    this.name = 'PeftError';
    this.code = code;
  }
}

/**
 * Runs an async native call so that a rejection carries the stack of the JS call site
 * (a native worker thread has no JS stack of its own).
 * @internal
 */
export async function withCallSite<T>(promise: () => Promise<T>): Promise<T> {
  const site = new Error();
  try {
    return await promise();
  } catch (err) {
    if (err instanceof Error && site.stack) {
      const frames = site.stack.split('\n').slice(1).join('\n');
      err.stack = `${err.name}: ${err.message}\n${frames}`;
    }
    throw err;
  }
}
