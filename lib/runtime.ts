/**
 * The native runtime: which instruction-set variant the kernels use, and the thread pool.
 * @module runtime
 */
import { PeftError } from './errors';
import { native } from './native';
import { expectNumber, fail } from './validate';

/** Instruction-set variants of the CPU kernels. `scalar` is the reference. */
export type Isa = 'scalar' | 'avx2' | 'avx512' | 'avx512bf16';

const ISAS: readonly Isa[] = ['scalar', 'avx2', 'avx512', 'avx512bf16'];

/**
 * The variant in use: PEFT_ISA when set, else AVX2 on CPUs that have it (the AVX-512 variants are
 * opt-in with PEFT_ISA or {@link setIsa} until they have been verified on AVX-512 hardware), else scalar.
 */
export function getIsa(): Isa {
  return native.getIsa() as Isa;
}

/** Switches every later kernel call to `isa`; `E_UNSUPPORTED` if this CPU cannot run it. */
export function setIsa(isa: Isa): void {
  if (!ISAS.includes(isa)) fail('isa', `one of ${ISAS.join(', ')}`, isa);
  if (!supportedIsas().includes(isa)) {
    throw new PeftError(
      `Expected an instruction set this CPU supports (${supportedIsas().join(', ')}) for isa but received the string ${JSON.stringify(isa)}`,
      'E_UNSUPPORTED',
    );
  }
  native.setIsa(isa);
}

/** The variants this CPU can run, slowest first. */
export function supportedIsas(): Isa[] {
  return native.supportedIsas() as Isa[];
}

/** CPU features that select the variants, and the number of physical cores. */
export function cpuFeatures(): Record<string, boolean | number> {
  return native.cpuFeatures();
}

/** Bytes of native memory reported to V8's garbage collector (tensors and other native objects). */
export function externalMemory(): number {
  return native.externalMemory();
}

/**
 * Native tensor memory alive now in this process (all worker threads included): `storages` owned
 * allocations holding `bytes`, and `views` of memory owned elsewhere (memory-mapped files). After
 * `Model.dispose()` / `Tensor.dispose()` (or a garbage collection) these fall back: a number
 * that keeps growing over repeated work is a leak.
 */
export function liveStorages(): { storages: number; bytes: number; views: number } {
  return native.liveStorages();
}

/** Threads used by one kernel call (physical cores, or PEFT_NUM_THREADS). */
export function numThreads(): number {
  return native.numThreads();
}

/** Resizes the native thread pool. */
export function setNumThreads(threads: number): void {
  native.setNumThreads(expectNumber(threads, 'threads', { min: 1, max: 1024, integer: true }));
}
