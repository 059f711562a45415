/**
 * An independent implementation of bitsandbytes' 4-bit quantization for tests, written from its
 * published algorithm and constants (functional.py get_4bit_type, create_dynamic_map,
 * quantize_4bit; the CUDA kernels' dQuantizeNF4 / dQuantizeFP4 decision trees and dQuantize
 * search). Float32 arithmetic is emulated with Math.fround. Shares no code with lib/ or native/.
 */
const f = Math.fround;

/** bitsandbytes' NF4 values (get_4bit_type('nf4')), as float32. */
export const NF4_CODE: number[] = [
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334,
  -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
  0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
].map(f);

/**
 * FP4 from its bit layout (sign, two exponent bits, one mantissa bit, bias 3, as bitsandbytes'
 * test_4bit_quant builds it), divided by its largest magnitude (12) in float32.
 */
export const FP4_CODE: number[] = (() => {
  const code: number[] = [];
  for (let idx = 0; idx < 16; idx++) {
    const sign = idx & 8 ? -1 : 1;
    const exp = ((idx >> 2) & 1) * 2 + ((idx >> 1) & 1);
    const p1 = idx & 1;
    const magnitude = exp === 0 ? (p1 ? 0.0625 : 0) : 2 ** (-exp + 3 + 1) * (p1 ? 1.5 : 1.0);
    code.push(f(f(sign * magnitude) / 12));
  }
  return code;
})();

/** dQuantizeNF4: bitsandbytes' decision tree with its published thresholds. */
export function nf4Code(x: number): number {
  const gt = (t: number) => x > f(t);
  if (gt(0.03979014977812767)) {
    if (gt(0.3893125355243683)) {
      if (gt(0.6427869200706482)) return gt(0.8614784181118011) ? 0b1111 : 0b1110;
      return gt(0.5016634166240692) ? 0b1101 : 0b1100;
    }
    if (gt(0.2035212516784668)) return gt(0.2920137718319893) ? 0b1011 : 0b1010;
    return gt(0.1202552504837513) ? 0b1001 : 0b1000;
  }
  if (gt(-0.33967943489551544)) {
    if (gt(-0.13791173323988914)) return gt(-0.045525018125772476) ? 0b0111 : 0b0110;
    return gt(-0.23460740596055984) ? 0b0101 : 0b0100;
  }
  if (gt(-0.6106329262256622)) return gt(-0.4599952697753906) ? 0b0011 : 0b0010;
  return gt(-0.8480964004993439) ? 0b0001 : 0b0000;
}

/** dQuantizeFP4: sign bit, then bitsandbytes' tree on |x| with its published thresholds. */
export function fp4Code(x: number): number {
  const sign = x < 0 ? 0b1000 : 0;
  const a = Math.abs(x);
  const gt = (t: number) => a > f(t);
  if (gt(0.29166667)) {
    if (gt(0.583333)) return (gt(0.8333333) ? 0b0011 : 0b0010) + sign;
    return (gt(0.4166667) ? 0b101 : 0b100) + sign;
  }
  if (gt(0.0859375)) return (gt(0.20833333) ? 0b0111 : 0b0110) + sign;
  return (gt(0.00260417) ? 0b0001 : 0b0000) + sign;
}

export interface RefQuant4 {
  packed: Uint8Array;
  absmax: Float32Array;
}

/**
 * quantize_4bit: blocks over the flattened values, absmax per block, codes of x · (1/absmax)
 * (an all-zero block gives NaN and so code 0), element 2j in the high nibble; an odd length pads
 * with a 0 in the last block.
 */
export function quantize4Ref(x: Float32Array, blocksize: number, type: 'nf4' | 'fp4'): RefQuant4 {
  const n = x.length;
  const blocks = Math.ceil(n / blocksize);
  const absmax = new Float32Array(blocks);
  const codes = new Uint8Array(n + (n % 2));
  const codeOf = type === 'nf4' ? nf4Code : fp4Code;
  for (let b = 0; b < blocks; b++) {
    const begin = b * blocksize;
    const end = Math.min(n, begin + blocksize);
    let m = 0;
    for (let i = begin; i < end; i++) m = Math.max(m, Math.abs(x[i]));
    absmax[b] = m;
    const inv = f(1 / m);
    for (let i = begin; i < end; i++) codes[i] = codeOf(f(x[i] * inv));
    if (end === n && n % 2 === 1) codes[n] = codeOf(f(0 * inv));
  }
  const packed = new Uint8Array(Math.ceil(n / 2));
  for (let j = 0; j < packed.length; j++) packed[j] = (codes[2 * j] << 4) | codes[2 * j + 1];
  return { packed, absmax };
}

/** dequantize_4bit: code value × block scale in float32. */
export function dequantize4Ref(packed: Uint8Array, scales: Float32Array, code: number[], blocksize: number, n: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const byte = packed[i >> 1];
    const c = i % 2 === 0 ? byte >> 4 : byte & 15;
    out[i] = f(code[c] * scales[Math.floor(i / blocksize)]);
  }
  return out;
}

/** torch.linspace(start, end, steps) in float32, as its scalar CPU loop computes it. */
function linspaceF32(start: number, end: number, steps: number): number[] {
  const s = f(start);
  const e = f(end);
  const step = f(f(e - s) / (steps - 1));
  const half = Math.floor(steps / 2);
  const out: number[] = [];
  for (let i = 0; i < steps; i++) out.push(i < half ? f(s + f(step * i)) : f(e - f(step * (steps - i - 1))));
  return out;
}

/** create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8) in float32. */
export function createDynamicMap(): number[] {
  const maxExponentBits = 7;
  const nonSignBits = 7;
  const data: number[] = [];
  for (let i = 0; i < maxExponentBits; i++) {
    const fractionItems = 2 ** (i + nonSignBits - maxExponentBits) + 1;
    const boundaries = linspaceF32(0.1, 1, fractionItems);
    const means = boundaries.slice(0, -1).map((b, j) => f(f(b + boundaries[j + 1]) / 2));
    const scale = f(10 ** (-(maxExponentBits - 1) + i));
    for (const m of means) data.push(f(scale * m));
    for (const m of means) data.push(f(-scale * m));
  }
  data.push(0, 1);
  return data.sort((a, b) => a - b);
}

export interface RefNested {
  offset: number;
  codes: Uint8Array;
  nestedAbsmax: Float32Array;
  /** The scaled value each code was chosen for (NaN for an all-equal block). */
  scaled: Float32Array;
}

/** The nearest entry of a sorted map (ties: either neighbour is acceptable). */
export function nearestIndices(map: number[], x: number): number[] {
  if (Number.isNaN(x)) return [0];
  let best = Infinity;
  let indices: number[] = [];
  map.forEach((v, i) => {
    const d = Math.abs(x - v);
    if (d < best) {
      best = d;
      indices = [i];
    } else if (d === best) {
      indices.push(i);
    }
  });
  return indices;
}

/** compress_statistics: offset = mean, (absmax − offset) quantized blockwise with the dynamic map. */
export function quantizeNestedRef(absmax: Float32Array, blocksize: number, map: number[]): RefNested {
  const n = absmax.length;
  let sum = 0;
  for (const a of absmax) sum += a;
  const offset = n === 0 ? 0 : f(sum / n);
  const blocks = Math.ceil(n / blocksize);
  const nestedAbsmax = new Float32Array(blocks);
  const codes = new Uint8Array(n);
  const scaled = new Float32Array(n);
  for (let b = 0; b < blocks; b++) {
    const begin = b * blocksize;
    const end = Math.min(n, begin + blocksize);
    let m = 0;
    for (let i = begin; i < end; i++) m = Math.max(m, Math.abs(f(absmax[i] - offset)));
    nestedAbsmax[b] = m;
    const inv = f(1 / m);
    for (let i = begin; i < end; i++) {
      scaled[i] = f(f(absmax[i] - offset) * inv);
      codes[i] = nearestIndices(map, scaled[i])[0];
    }
  }
  return { offset, codes, nestedAbsmax, scaled };
}

/** dequantize_blockwise then + offset, in float32. */
export function dequantizeNestedRef(codes: Uint8Array, nestedAbsmax: Float32Array, map: number[], offset: number, blocksize: number): Float32Array {
  return Float32Array.from(codes, (c, i) => f(f(map[c] * nestedAbsmax[Math.floor(i / blocksize)]) + offset));
}

/** Normal-ish values (sum of uniforms), deterministic. */
export function gaussianArray(random: () => number, n: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (random() + random() + random() + random() - 2) * scale * 1.7;
  return out;
}
