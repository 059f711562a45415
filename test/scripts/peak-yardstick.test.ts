/**
 * The benches' "% of peak" yardstick (scripts/bench/peak.js, withYardsticks): a run whose kernels
 * are forced to a narrower instruction set is measured against that set's own peak.
 */
interface Peak {
  single: number;
  all: number;
}
const peak = require('../../scripts/bench/peak.js') as {
  withYardsticks(variants: Record<string, Partial<Peak> & { what: string; missing?: string }>, isa?: string): {
    f32: Peak | null;
    bf16: (Peak & { via: string }) | null;
  };
  maxPeaks(a: { variants: Record<string, unknown> }, b: { variants: Record<string, unknown> }, isa?: string): { f32: Peak | null };
};

const measured = {
  avx2: { what: 'f32 FMA, 256-bit', single: 105, all: 209 },
  avx512: { what: 'f32 FMA, 512-bit', single: 218, all: 431 },
  avx512bf16: { what: 'dpbf16ps', single: 436, all: 860 },
};

it('takes the widest FMA and dpbf16ps by default, and the forced set peak otherwise', () => {
  const widest = peak.withYardsticks(measured);
  expect(widest.f32).toEqual({ single: 218, all: 431 });
  expect(widest.bf16).toEqual({ single: 436, all: 860, via: 'avx512bf16' });

  const avx2 = peak.withYardsticks(measured, 'avx2');
  expect(avx2.f32).toEqual({ single: 105, all: 209 });
  expect(avx2.bf16).toEqual({ single: 105, all: 209, via: 'f32 FMA' });

  const avx512 = peak.withYardsticks(measured, 'avx512');
  expect(avx512.f32?.all).toBe(431);
  expect(avx512.bf16?.via).toBe('f32 FMA');

  const dot = peak.withYardsticks(measured, 'avx512bf16');
  expect(dot.f32?.all).toBe(431);
  expect(dot.bf16?.via).toBe('avx512bf16');
});

it('falls back to the widest measured set where the forced one was not measured', () => {
  const noAvx512 = { avx2: measured.avx2, avx512: { what: 'f32 FMA, 512-bit', missing: 'n/a' }, avx512bf16: { what: 'dpbf16ps', missing: 'n/a' } };
  expect(peak.withYardsticks(noAvx512, 'avx512').f32?.all).toBe(209);
  expect(peak.withYardsticks(noAvx512).bf16).toEqual({ single: 105, all: 209, via: 'f32 FMA' });
  expect(peak.withYardsticks(noAvx512, 'scalar').f32?.all).toBe(209);
});

it('keeps the forced set when merging the runs before and after the GEMMs (maxPeaks)', () => {
  const later = { avx2: { ...measured.avx2, all: 214 }, avx512: { ...measured.avx512, all: 425 }, avx512bf16: measured.avx512bf16 };
  expect(peak.maxPeaks({ variants: measured }, { variants: later }, 'avx2').f32).toEqual({ single: 105, all: 214 });
  expect(peak.maxPeaks({ variants: measured }, { variants: later }).f32).toEqual({ single: 218, all: 431 });
});
