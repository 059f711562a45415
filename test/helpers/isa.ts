/** Runs kernel tests once per instruction-set variant; variants this CPU lacks are reported as skipped. */
import { runtime, type Isa } from '../../lib';

export const ALL_ISAS: Isa[] = ['scalar', 'avx2', 'avx512', 'avx512bf16'];
export const SUPPORTED_ISAS: Isa[] = runtime.supportedIsas();
export const UNSUPPORTED_ISAS: Isa[] = ALL_ISAS.filter((i) => !SUPPORTED_ISAS.includes(i));

/** Runs fn with isa active, restoring the previous variant afterwards. */
export function withIsa<T>(isa: Isa, fn: () => T): T {
  const previous = runtime.getIsa();
  runtime.setIsa(isa);
  try {
    return fn();
  } finally {
    runtime.setIsa(previous);
  }
}

/** Declares a skipped test per variant this CPU cannot run, so the report says what was not covered. */
export function reportUnsupported(what: string): void {
  for (const isa of UNSUPPORTED_ISAS) {
    it.skip(`${what} on ${isa} (this CPU does not support ${isa})`, () => undefined);
  }
}
