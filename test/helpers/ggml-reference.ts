/**
 * An independent JS reference for ggml's block formats (the layouts of ggml-common.h and the element
 * formulas of ggml-quants.c's dequantize_row_*), used to check our native dequantizers bit for bit.
 *
 * ggml computes every element in f32: the f16 scales widened exactly, then e.g. for Q4_K
 * `d1 = d * sc; m1 = dmin * m; y = d1 * q - m1`, each operation rounded to f32 in that order. Here
 * each f32 operation is a float64 operation followed by Math.fround; for one +, -, × of f32 operands
 * that is exactly f32 rounding (53 ≥ 2·24 + 2 bits, so the double rounding is harmless).
 */

const f = Math.fround;

/** Block facts of each type: elements and bytes per block, and the byte offsets of its f16 fields. */
export interface GgmlBlockLayout {
  block: number;
  bytes: number;
  /** Offsets of the f16 scale fields (d, and dmin / m where the format has one). */
  halves: number[];
}

/** Struct sizes as in ggml-common.h (written out here, not read from the library under test). */
export const GGML_LAYOUTS = {
  Q4_0: { block: 32, bytes: 2 + 16, halves: [0] }, // d; qs[16]
  Q4_1: { block: 32, bytes: 2 + 2 + 16, halves: [0, 2] }, // d; m; qs[16]
  Q5_0: { block: 32, bytes: 2 + 4 + 16, halves: [0] }, // d; qh[4]; qs[16]
  Q5_1: { block: 32, bytes: 2 + 2 + 4 + 16, halves: [0, 2] }, // d; m; qh[4]; qs[16]
  Q8_0: { block: 32, bytes: 2 + 32, halves: [0] }, // d; qs[32] int8
  Q2_K: { block: 256, bytes: 16 + 64 + 2 + 2, halves: [80, 82] }, // scales[16]; qs[64]; d; dmin
  Q3_K: { block: 256, bytes: 32 + 64 + 12 + 2, halves: [108] }, // hmask[32]; qs[64]; scales[12]; d
  Q4_K: { block: 256, bytes: 2 + 2 + 12 + 128, halves: [0, 2] }, // d; dmin; scales[12]; qs[128]
  Q5_K: { block: 256, bytes: 2 + 2 + 12 + 32 + 128, halves: [0, 2] }, // d; dmin; scales[12]; qh[32]; qs[128]
  Q6_K: { block: 256, bytes: 128 + 64 + 16 + 2, halves: [208] }, // ql[128]; qh[64]; scales[16] int8; d
  IQ4_NL: { block: 32, bytes: 2 + 16, halves: [0] }, // d; qs[16]
  IQ4_XS: { block: 256, bytes: 2 + 2 + 4 + 128, halves: [0] }, // d; scales_h u16; scales_l[4]; qs[128]
} as const satisfies Record<string, GgmlBlockLayout>;

export type GgmlRefType = keyof typeof GGML_LAYOUTS;
export const GGML_REF_TYPES = Object.keys(GGML_LAYOUTS) as GgmlRefType[];

/** ggml-common.h's kvalues_iq4nl: the 16 levels an IQ4 nibble selects. */
export const KVALUES_IQ4NL = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];

// ---- f16 / bf16 ----

/** The value of the IEEE binary16 bit pattern h (exact). */
export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant ? NaN : sign * Infinity;
  return sign * (1024 + mant) * 2 ** (exp - 25);
}

/** Round half to even of a non-negative v. */
function roundHalfEven(v: number): number {
  const fl = Math.floor(v);
  const diff = v - fl;
  if (diff > 0.5) return fl + 1;
  if (diff < 0.5) return fl;
  return fl % 2 === 0 ? fl : fl + 1;
}

/** The binary16 bit pattern nearest to x (round to nearest even; overflow to infinity; NaN 0x7e00). */
export function f32ToF16(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(f(x));
  if (a === Infinity) return sign | 0x7c00;
  if (a < 2 ** -14) return sign | roundHalfEven(a * 2 ** 24); // subnormal (1024 rounds up to the smallest normal)
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e -= 1;
  if (2 ** (e + 1) <= a) e += 1;
  let mant = roundHalfEven(a * 2 ** (10 - e)); // in [1024, 2048]
  if (mant === 2048) {
    mant = 1024;
    e += 1;
  }
  if (e > 15) return sign | 0x7c00;
  return sign | ((e + 15) << 10) | (mant - 1024);
}

const bf16Float = new Float32Array(1);
const bf16Bits = new Uint32Array(bf16Float.buffer);

/** x rounded to bfloat16 (round to nearest even), as an f32 value. */
export function toBf16(x: number): number {
  bf16Float[0] = x;
  const b = bf16Bits[0];
  if ((b & 0x7f800000) === 0x7f800000) return bf16Float[0]; // Inf / NaN unchanged
  bf16Bits[0] = ((b + 0x7fff + ((b >>> 16) & 1)) >>> 0) & 0xffff0000;
  return bf16Float[0];
}

// ---- dequantization, one block at a time ----

type BlockFn = (b: Uint8Array, o: number, y: Float32Array, yo: number) => void;

const half = (b: Uint8Array, o: number): number => f16ToF32(b[o] | (b[o + 1] << 8));
const i8 = (v: number): number => (v << 24) >> 24;

/** get_scale_min_k4: the 6-bit scale and min of pair j < 8 of a K-quant's 12 scale bytes at s. */
function scaleMinK4(b: Uint8Array, s: number, j: number): [number, number] {
  if (j < 4) return [b[s + j] & 63, b[s + j + 4] & 63];
  return [(b[s + j + 4] & 0xf) | ((b[s + j - 4] >> 6) << 4), (b[s + j + 4] >> 4) | ((b[s + j] >> 6) << 4)];
}

/** Q3_K's 16 six-bit scales (before the -32) from its 12 scale bytes at s. */
function q3kScales(b: Uint8Array, s: number): number[] {
  const out: number[] = [];
  for (let j = 0; j < 16; j++) {
    // Low 4 bits: bytes 0-7 give low nibbles for scales 0-7, high nibbles for 8-15; high 2 bits: bytes 8-11.
    const low = j < 8 ? b[s + j] & 0xf : b[s + j - 8] >> 4;
    const high = (b[s + 8 + (j % 4)] >> (2 * Math.floor(j / 4))) & 3;
    out.push(low | (high << 4));
  }
  return out;
}

const BLOCKS: Record<GgmlRefType, BlockFn> = {
  Q4_0(b, o, y, yo) {
    const d = half(b, o);
    for (let j = 0; j < 16; j++) {
      const q = b[o + 2 + j];
      y[yo + j] = f(((q & 0xf) - 8) * d);
      y[yo + j + 16] = f(((q >> 4) - 8) * d);
    }
  },
  Q4_1(b, o, y, yo) {
    const d = half(b, o);
    const m = half(b, o + 2);
    for (let j = 0; j < 16; j++) {
      const q = b[o + 4 + j];
      y[yo + j] = f(f((q & 0xf) * d) + m);
      y[yo + j + 16] = f(f((q >> 4) * d) + m);
    }
  },
  Q5_0(b, o, y, yo) {
    const d = half(b, o);
    const qh = (b[o + 2] | (b[o + 3] << 8) | (b[o + 4] << 16) | (b[o + 5] << 24)) >>> 0;
    for (let j = 0; j < 16; j++) {
      const q = b[o + 6 + j];
      const lo = (q & 0xf) | (((qh >>> j) & 1) << 4);
      const hi = (q >> 4) | (((qh >>> (j + 16)) & 1) << 4);
      y[yo + j] = f((lo - 16) * d);
      y[yo + j + 16] = f((hi - 16) * d);
    }
  },
  Q5_1(b, o, y, yo) {
    const d = half(b, o);
    const m = half(b, o + 2);
    const qh = (b[o + 4] | (b[o + 5] << 8) | (b[o + 6] << 16) | (b[o + 7] << 24)) >>> 0;
    for (let j = 0; j < 16; j++) {
      const q = b[o + 8 + j];
      const lo = (q & 0xf) | (((qh >>> j) & 1) << 4);
      const hi = (q >> 4) | (((qh >>> (j + 16)) & 1) << 4);
      y[yo + j] = f(f(lo * d) + m);
      y[yo + j + 16] = f(f(hi * d) + m);
    }
  },
  Q8_0(b, o, y, yo) {
    const d = half(b, o);
    for (let j = 0; j < 32; j++) y[yo + j] = f(i8(b[o + 2 + j]) * d);
  },
  Q2_K(b, o, y, yo) {
    const d = half(b, o + 80);
    const dmin = half(b, o + 82);
    let is = 0;
    let out = yo;
    for (let n = 0; n < 2; n++) {
      const q = o + 16 + 32 * n;
      for (let shift = 0; shift < 8; shift += 2) {
        for (let part = 0; part < 2; part++) {
          const sc = b[o + is++];
          const dl = f(d * (sc & 0xf));
          const ml = f(dmin * (sc >> 4));
          for (let l = 0; l < 16; l++) y[out++] = f(f(dl * ((b[q + 16 * part + l] >> shift) & 3)) - ml);
        }
      }
    }
  },
  Q3_K(b, o, y, yo) {
    const d = half(b, o + 108);
    const scales = q3kScales(b, o + 96);
    let is = 0;
    let m = 1; // hmask bit: shifts once per group of 32 across both halves (bits 0-3, then 4-7)
    let out = yo;
    for (let n = 0; n < 2; n++) {
      const q = o + 32 + 32 * n;
      for (let shift = 0; shift < 8; shift += 2, m <<= 1) {
        for (let part = 0; part < 2; part++) {
          const dl = f(d * (scales[is++] - 32));
          for (let l = 0; l < 16; l++) {
            const i = 16 * part + l;
            const v = ((b[q + i] >> shift) & 3) - (b[o + i] & m ? 0 : 4);
            y[out++] = f(dl * v);
          }
        }
      }
    }
  },
  Q4_K(b, o, y, yo) {
    const d = half(b, o);
    const dmin = half(b, o + 2);
    let out = yo;
    for (let c = 0; c < 4; c++) {
      const q = o + 16 + 32 * c;
      const [sc1, m1i] = scaleMinK4(b, o + 4, 2 * c);
      const [sc2, m2i] = scaleMinK4(b, o + 4, 2 * c + 1);
      const d1 = f(d * sc1), m1 = f(dmin * m1i), d2 = f(d * sc2), m2 = f(dmin * m2i);
      for (let l = 0; l < 32; l++) y[out++] = f(f(d1 * (b[q + l] & 0xf)) - m1);
      for (let l = 0; l < 32; l++) y[out++] = f(f(d2 * (b[q + l] >> 4)) - m2);
    }
  },
  Q5_K(b, o, y, yo) {
    const d = half(b, o);
    const dmin = half(b, o + 2);
    const qh = o + 16;
    let out = yo;
    for (let c = 0; c < 4; c++) {
      const q = o + 48 + 32 * c;
      const [sc1, m1i] = scaleMinK4(b, o + 4, 2 * c);
      const [sc2, m2i] = scaleMinK4(b, o + 4, 2 * c + 1);
      const d1 = f(d * sc1), m1 = f(dmin * m1i), d2 = f(d * sc2), m2 = f(dmin * m2i);
      const u1 = 1 << (2 * c), u2 = 2 << (2 * c);
      for (let l = 0; l < 32; l++) y[out++] = f(f(d1 * ((b[q + l] & 0xf) + (b[qh + l] & u1 ? 16 : 0))) - m1);
      for (let l = 0; l < 32; l++) y[out++] = f(f(d2 * ((b[q + l] >> 4) + (b[qh + l] & u2 ? 16 : 0))) - m2);
    }
  },
  Q6_K(b, o, y, yo) {
    const d = half(b, o + 208);
    for (let n = 0; n < 2; n++) {
      const ql = o + 64 * n;
      const qh = o + 128 + 32 * n;
      const sc = o + 192 + 8 * n;
      const base = yo + 128 * n;
      for (let l = 0; l < 32; l++) {
        const is = l >> 4;
        const h = b[qh + l];
        const q1 = ((b[ql + l] & 0xf) | ((h & 3) << 4)) - 32;
        const q2 = ((b[ql + l + 32] & 0xf) | (((h >> 2) & 3) << 4)) - 32;
        const q3 = ((b[ql + l] >> 4) | (((h >> 4) & 3) << 4)) - 32;
        const q4 = ((b[ql + l + 32] >> 4) | (((h >> 6) & 3) << 4)) - 32;
        // d * sc[is] * q: left to right, so (d · scale) is rounded before it meets the quant.
        y[base + l] = f(f(d * i8(b[sc + is])) * q1);
        y[base + l + 32] = f(f(d * i8(b[sc + is + 2])) * q2);
        y[base + l + 64] = f(f(d * i8(b[sc + is + 4])) * q3);
        y[base + l + 96] = f(f(d * i8(b[sc + is + 6])) * q4);
      }
    }
  },
  IQ4_NL(b, o, y, yo) {
    const d = half(b, o);
    for (let j = 0; j < 16; j++) {
      const q = b[o + 2 + j];
      y[yo + j] = f(d * KVALUES_IQ4NL[q & 0xf]);
      y[yo + j + 16] = f(d * KVALUES_IQ4NL[q >> 4]);
    }
  },
  IQ4_XS(b, o, y, yo) {
    const d = half(b, o);
    const scalesH = b[o + 2] | (b[o + 3] << 8);
    for (let ib = 0; ib < 8; ib++) {
      const ls = ((b[o + 4 + (ib >> 1)] >> (4 * (ib % 2))) & 0xf) | (((scalesH >> (2 * ib)) & 3) << 4);
      const dl = f(d * (ls - 32));
      const qs = o + 8 + 16 * ib;
      const out = yo + 32 * ib;
      for (let j = 0; j < 16; j++) {
        y[out + j] = f(dl * KVALUES_IQ4NL[b[qs + j] & 0xf]);
        y[out + j + 16] = f(dl * KVALUES_IQ4NL[b[qs + j] >> 4]);
      }
    }
  },
};

/** The n = blocks · block f32 values of consecutive blocks of `type`, as ggml's dequantize_row_* gives them. */
export function dequantizeRef(type: GgmlRefType, bytes: Uint8Array): Float32Array {
  const { block, bytes: size } = GGML_LAYOUTS[type];
  if (bytes.length % size !== 0) throw new Error(`${bytes.length} bytes are not whole ${type} blocks of ${size}`);
  const nb = bytes.length / size;
  const y = new Float32Array(nb * block);
  for (let i = 0; i < nb; i++) BLOCKS[type](bytes, i * size, y, i * block);
  return y;
}

// ---- random inputs ----

/**
 * A random finite f16 bit pattern for a scale field: mostly moderate normal values (|v| in
 * [2^-12, 4), either sign), with some subnormals (~8%) and signed zeros (~6%).
 */
export function randomScaleHalf(random: () => number): number {
  const sign = random() < 0.5 ? 0x8000 : 0;
  const u = random();
  if (u < 0.06) return sign; // ±0
  if (u < 0.14) return sign | (1 + Math.floor(random() * 0x3ff)); // subnormal, nonzero mantissa
  const exp = 15 - 12 + Math.floor(random() * 14); // biased exponents 3..16: 2^-12 ≤ |v| < 4
  return sign | (exp << 10) | Math.floor(random() * 1024);
}

/** nblocks random blocks of `type`: random bytes, with every f16 field a finite randomScaleHalf(). */
export function randomBlocks(random: () => number, type: GgmlRefType, nblocks: number): Uint8Array {
  const { bytes, halves } = GGML_LAYOUTS[type];
  const out = new Uint8Array(nblocks * bytes);
  for (let i = 0; i < out.length; i++) out[i] = Math.floor(random() * 256);
  for (let b = 0; b < nblocks; b++) {
    for (const at of halves) {
      const h = randomScaleHalf(random);
      out[b * bytes + at] = h & 0xff;
      out[b * bytes + at + 1] = h >> 8;
    }
  }
  return out;
}

/** A standard normal sample (Box-Muller). */
export function gaussian(random: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}
