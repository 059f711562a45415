/**
 * Every op of every backend's table, at every instruction set this CPU runs, against the CPU
 * backend's scalar kernels on the same random inputs (native/kernels/backend_compare.cpp), as
 * ggml's test-backend-ops checks its backends.
 */
import { PeftError, runtime } from '../../lib';
import { reportUnsupported, SUPPORTED_ISAS } from '../helpers/isa';

// f32 kernels that reorder sums (vector lanes, blocked K) differ from the scalar loops by a few
// ulps of the largest value: measured at most 5e-7 of it here; 1e-5 leaves room for other CPUs
// while a wrong index, mask or constant is off by far more.
const RELATIVE_TOLERANCE = 1e-5;

describe('backend op table', () => {
  it('lists the CPU backend first', () => {
    expect(runtime.backends()[0]).toBe('cpu');
  });

  for (const backend of runtime.backends()) {
    for (const isa of SUPPORTED_ISAS) {
      it(`${backend} at ${isa}: every op matches the scalar reference`, () => {
        const { ops, results } = runtime.compareBackendOps(backend, isa, 11);
        // Each entry of the table has at least one case.
        expect(new Set(results.map((r) => r.op.split('/')[0])).size).toBe(ops);
        for (const r of results) {
          expect(r.outputs).toBeGreaterThan(0);
          expect(Number.isFinite(r.refScale) && r.refScale > 0).toBe(true);
          const bound = isa === 'scalar' && backend === 'cpu' ? 0 : RELATIVE_TOLERANCE * Math.max(1, r.refScale);
          if (!(r.maxAbs <= bound)) throw new Error(`${backend}/${isa} ${r.op}: max |Δ| ${r.maxAbs} > ${bound}`);
        }
      });
    }
  }
  reportUnsupported('backend op comparison');

  it('restores the active instruction set', () => {
    const before = runtime.getIsa();
    runtime.compareBackendOps('cpu', SUPPORTED_ISAS[SUPPORTED_ISAS.length - 1], 3);
    expect(runtime.getIsa()).toBe(before);
  });

  it('refuses an unknown backend by name', () => {
    expect(() => runtime.compareBackendOps('cuda', 'scalar')).toThrow(PeftError);
    expect(() => runtime.compareBackendOps('cuda', 'scalar')).toThrow(/one of cpu for backend/);
  });
});
