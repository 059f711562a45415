/**
 * The native runtime: which instruction-set variant the kernels use, and the thread pool.
 * @module runtime
 */
import { PeftError } from './errors';
import { native, type BackendComparison } from './native';
import { expectNumber, fail } from './validate';

/** Instruction-set variants of the CPU kernels. `scalar` is the reference. */
export type Isa = 'scalar' | 'avx2' | 'avx512' | 'avx512bf16';

const ISAS: readonly Isa[] = ['scalar', 'avx2', 'avx512', 'avx512bf16'];

/**
 * The variant in use: PEFT_ISA when set, else AVX-512 on CPUs that have it (avx512bf16 is opt-in
 * with PEFT_ISA or {@link setIsa}), else AVX2, else scalar.
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

/** The kernel backends this build has (native/kernels/backend.h); `cpu` is always first. */
export function backends(): string[] {
  return native.backends();
}

/**
 * Runs every op of `backend`'s table at instruction set `isa` and again on the CPU backend's scalar
 * kernels, on the same random inputs (from `seed`), and reports each op's largest difference: the
 * check a new backend or variant must pass (as ggml's test-backend-ops). The active variant is
 * restored afterwards.
 */
export function compareBackendOps(backend: string, isa: Isa, seed = 1): BackendComparison {
  if (!backends().includes(backend)) fail('backend', `one of ${backends().join(', ')}`, backend);
  if (!ISAS.includes(isa)) fail('isa', `one of ${ISAS.join(', ')}`, isa);
  return native.compareBackendOps(backend, isa, expectNumber(seed, 'seed', { min: 0, max: 2 ** 32, integer: true }));
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

/**
 * @internal The floats of one dequantized panel in the products with a quantized weight (default
 * 2^22): tests use small panels to take the multi-panel paths on small weights. Returns the previous.
 */
export function setPanelFloats(floats: number): number {
  return native.setPanelFloats(floats);
}
