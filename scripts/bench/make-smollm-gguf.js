'use strict';
// Writes a random-weight Llama GGUF with SmolLM-135M's shapes (hidden 576, 30 layers, 9 heads / 3 KV
// heads of 64, FFN 1536, vocabulary 49152, tied embeddings) for the forward benchmark, with a
// byte-level BPE vocabulary (tokenizer.ggml.model "gpt2", pre "smollm") that llama.cpp accepts: the
// special tokens, all 256 byte symbols, then merges that build letter strings.
//
//   node scripts/bench/make-smollm-gguf.js [--dtype=f32|f16] [--out=PATH]
const fs = require('node:fs');
const path = require('node:path');

const { writeGgufFile } = require('./gguf-writer');

const SMOLLM_135M = { hidden: 576, layers: 30, heads: 9, kvHeads: 3, headDim: 64, ffn: 1536, vocab: 49152, context: 2048 };
const SPECIALS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'];

/** GPT-2's bytes→unicode table: printable Latin-1 bytes stand for themselves, the others for 256 + n. */
function byteSymbols() {
  const out = [];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    out.push(String.fromCodePoint(printable ? b : 256 + n++));
  }
  return out;
}

/** Tokens and merges: specials, byte symbols, then breadth-first merges (word start 'Ġ' or a letter) + a letter. */
function vocabulary(size) {
  const tokens = [...SPECIALS, ...byteSymbols()];
  const known = new Set(tokens);
  const merges = [];
  const letters = [...'etaoinshrdlucmfwypvbgkjqxz'];
  const queue = ['Ġ', ...letters, ...letters.map((c) => c.toUpperCase())];
  for (let q = 0; tokens.length < size && q < queue.length; q++) {
    for (const c of letters) {
      if (tokens.length >= size) break;
      const merged = queue[q] + c;
      if (known.has(merged)) continue;
      known.add(merged);
      tokens.push(merged);
      merges.push(`${queue[q]} ${c}`);
      queue.push(merged);
    }
  }
  if (tokens.length !== size) throw new Error(`could not build ${size} tokens`);
  return { tokens, merges, types: tokens.map((_, i) => (i < SPECIALS.length ? 3 : 1)) };
}

/** IEEE binary16 bits of a float32 (round to nearest, ties to even). */
function f16Bits(bits) {
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  let mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 112; // rebias 127 → 15
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rest > half || (rest === half && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && h & 1)) h++; // a carry rounds up into the exponent, as it should
  return sign | h;
}

/** n values uniform with standard deviation `std` (an LCG: fast and reproducible). */
function randomValues(n, std, seed) {
  const out = new Float32Array(n);
  const a = std * Math.sqrt(3);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = ((s >>> 8) / 8388608 - 1) * a;
  }
  return out;
}

/** The ggml type of each matrix in a `fileType` file of shapes `s` (llama-quantize's rules). */
function quantTypes(fileType, s, untiedHead) {
  const { quantMix } = require(path.resolve(__dirname, '..', '..', 'dist', 'io', 'gguf-quant-mix.js'));
  const q = s.heads * s.headDim, kv = s.kvHeads * s.headDim;
  const infos = [{ name: 'token_embd.weight', shape: [s.vocab, s.hidden] }];
  if (untiedHead) infos.push({ name: 'output.weight', shape: [s.vocab, s.hidden] });
  for (let l = 0; l < s.layers; l++) {
    for (const [n, shape] of [['attn_q', [q, s.hidden]], ['attn_k', [kv, s.hidden]], ['attn_v', [kv, s.hidden]], ['attn_output', [s.hidden, q]],
      ['ffn_gate', [s.ffn, s.hidden]], ['ffn_up', [s.ffn, s.hidden]], ['ffn_down', [s.hidden, s.ffn]]]) infos.push({ name: `blk.${l}.${n}.weight`, shape });
  }
  const mix = quantMix(fileType, infos, { layers: s.layers, gqa: s.heads / s.kvHeads, experts: 0, is70B: false });
  return (name) => mix.get(name) ?? 'F32';
}

/** values [shape] as the bytes of a `type` tensor (F32, F16, or a block type quantized by the library). */
function encodeAs(values, shape, type) {
  if (type === 'F32' || type === 'F16') return encode(values, type);
  const { tensor, quantizeGgml } = require(path.resolve(__dirname, '..', '..', 'dist'));
  const t = tensor(values, shape);
  const q = quantizeGgml(t, type);
  const bytes = q.data.toTypedArray();
  t.dispose();
  q.dispose();
  return bytes;
}

function encode(values, dtype) {
  if (dtype === 'F32') return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const u32 = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const half = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) half[i] = f16Bits(u32[i]);
  return new Uint8Array(half.buffer);
}

/**
 * Writes the model to `out`; `shapes` overrides SmolLM-135M's (tests use a tiny one). Matrices are
 * `dtype` (F32 or F16), norms stay F32 as llama.cpp keeps them. `arch` 'qwen3' adds Qwen3's per-head
 * q/k norms (attn_q_norm / attn_k_norm, weights 1 ± 0.3); 'phi3' fuses q/k/v (attn_qkv) and gate/up
 * (ffn_up, gate rows first); 'gemma2' has four norms per block (stored as 1 + w, as llama.cpp's
 * converter writes them), a window of 4 on every other layer and soft-capped scores (5) and logits (3);
 * 'gemma3' has Gemma 3's six norms per block (the four of Gemma 2 and per-head attn_q_norm / attn_k_norm),
 * every one random and stored as 1 + w as llama.cpp's converter writes them (any tensor named *norm.weight),
 * a window of 4 on all but every sixth layer (llama.cpp's default pattern; no
 * attention.sliding_window_pattern key, as the converter writes none), global RoPE base 1e6 with linear
 * scaling 2 and local base (rope.freq_base_swa) 1000, and no soft-caps;
 * `experts` > 0 makes a Mixtral (a llama-architecture file with the top 2 of `experts` SwiGLU experts,
 * stacked as ffn_{gate,up,down}_exps, and the router ffn_gate_inp); `std` is the matrices' standard deviation;
 * `overrides` replaces the values of `<arch>.*` keys, by name without the prefix (tests perturb
 * rope.freq_base with it).
 */
function makeSmollmGguf({ out, dtype = 'F32', shapes = {}, seed = 135, arch = 'llama', std = 0.02, experts = 0, overrides = {}, quant, untiedHead = false }) {
  const s = { ...SMOLLM_135M, ...shapes };
  // quant: a llama.cpp file type ('Q4_K_M', ...): the matrices get llama-quantize's types, quantized
  // as it quantizes them (the built library's quantizers and type rules).
  const typeOf = quant ? quantTypes(quant, s, untiedHead) : () => dtype;
  const gemma3 = arch === 'gemma3';
  const { tokens, merges, types } = vocabulary(s.vocab);
  const key = (name) => `${arch}.${name}`;
  const metadata = [
    ['general.architecture', { type: 'string', value: arch }],
    ['general.name', { type: 'string', value: `random SmolLM-135M-shaped (${dtype})` }],
    ['general.file_type', { type: 'u32', value: dtype === 'F16' ? 1 : 0 }],
    [key('context_length'), { type: 'u32', value: s.context }],
    [key('embedding_length'), { type: 'u32', value: s.hidden }],
    [key('feed_forward_length'), { type: 'u32', value: s.ffn }],
    [key('block_count'), { type: 'u32', value: s.layers }],
    [key('attention.head_count'), { type: 'u32', value: s.heads }],
    [key('attention.head_count_kv'), { type: 'u32', value: s.kvHeads }],
    [key('attention.key_length'), { type: 'u32', value: s.headDim }],
    [key('attention.value_length'), { type: 'u32', value: s.headDim }],
    [key('rope.dimension_count'), { type: 'u32', value: s.headDim }],
    [key('rope.freq_base'), { type: 'f32', value: gemma3 ? 1e6 : 10000 }],
    [key('attention.layer_norm_rms_epsilon'), { type: 'f32', value: 1e-5 }],
    [key('vocab_size'), { type: 'u32', value: s.vocab }],
    ...(experts ? [[key('expert_count'), { type: 'u32', value: experts }], [key('expert_used_count'), { type: 'u32', value: 2 }]] : []),
    ...(arch === 'gemma2'
      ? [
          [key('attention.sliding_window'), { type: 'u32', value: 4 }],
          [key('attn_logit_softcapping'), { type: 'f32', value: 5 }],
          [key('final_logit_softcapping'), { type: 'f32', value: 3 }],
        ]
      : []),
    ...(gemma3
      ? [
          [key('attention.sliding_window'), { type: 'u32', value: 4 }],
          [key('rope.freq_base_swa'), { type: 'f32', value: 1000 }],
          [key('rope.scaling.type'), { type: 'string', value: 'linear' }],
          [key('rope.scaling.factor'), { type: 'f32', value: 2 }],
        ]
      : []),
    ['tokenizer.ggml.model', { type: 'string', value: 'gpt2' }],
    ['tokenizer.ggml.pre', { type: 'string', value: 'smollm' }],
    ['tokenizer.ggml.tokens', { type: 'array', elem: 'string', value: tokens }],
    ['tokenizer.ggml.token_type', { type: 'array', elem: 'i32', value: types }],
    ['tokenizer.ggml.merges', { type: 'array', elem: 'string', value: merges }],
    ['tokenizer.ggml.bos_token_id', { type: 'u32', value: 0 }],
    ['tokenizer.ggml.eos_token_id', { type: 'u32', value: 0 }],
    ['tokenizer.ggml.add_bos_token', { type: 'bool', value: false }],
  ];
  for (const [name, value] of Object.entries(overrides)) {
    const entry = metadata.find(([k]) => k === key(name));
    if (!entry) throw new Error(`no metadata key ${key(name)} to override`);
    entry[1] = { ...entry[1], value };
  }
  let seedOf = seed;
  const matrix = (name, rows, cols) => {
    const type = typeOf(name, [rows, cols]);
    return { name, shape: [rows, cols], type, bytes: () => encodeAs(randomValues(rows * cols, std, seedOf++), [rows, cols], type) };
  };
  const randomNorm = (name) => ({ name, shape: [s.hidden], type: 'F32', bytes: () => encode(randomValues(s.hidden, 0.3, seedOf++).map((v) => 1 + v), 'F32') });
  const headNorm = (name) => ({ name, shape: [s.headDim], type: 'F32', bytes: () => encode(randomValues(s.headDim, 0.3, seedOf++).map((v) => 1 + v), 'F32') });
  // Gemma 3's norms are all random, so that a missed 1 + w shift on any of them shows.
  const norm = gemma3 ? randomNorm : (name) => ({ name, shape: [s.hidden], type: 'F32', bytes: () => encode(new Float32Array(s.hidden).fill(1), 'F32') });
  const q = s.heads * s.headDim;
  const kv = s.kvHeads * s.headDim;
  const tensors = [matrix('token_embd.weight', s.vocab, s.hidden)];
  for (let l = 0; l < s.layers; l++) {
    const attention = arch === 'phi3'
      ? [matrix(`blk.${l}.attn_qkv.weight`, q + 2 * kv, s.hidden)]
      : [matrix(`blk.${l}.attn_q.weight`, q, s.hidden), matrix(`blk.${l}.attn_k.weight`, kv, s.hidden), matrix(`blk.${l}.attn_v.weight`, kv, s.hidden)];
    const stacked = (name, rows, cols) => ({ name, shape: [experts, rows, cols], type: dtype, bytes: () => encode(randomValues(experts * rows * cols, std, seedOf++), dtype) });
    const mlp = experts
      ? [matrix(`blk.${l}.ffn_gate_inp.weight`, experts, s.hidden), stacked(`blk.${l}.ffn_gate_exps.weight`, s.ffn, s.hidden),
         stacked(`blk.${l}.ffn_up_exps.weight`, s.ffn, s.hidden)]
      : arch === 'phi3'
        ? [matrix(`blk.${l}.ffn_up.weight`, 2 * s.ffn, s.hidden)]
        : [matrix(`blk.${l}.ffn_gate.weight`, s.ffn, s.hidden), matrix(`blk.${l}.ffn_up.weight`, s.ffn, s.hidden)];
    tensors.push(
      norm(`blk.${l}.attn_norm.weight`),
      ...attention,
      matrix(`blk.${l}.attn_output.weight`, s.hidden, q),
      ...(arch === 'qwen3' || gemma3 ? [headNorm(`blk.${l}.attn_q_norm.weight`), headNorm(`blk.${l}.attn_k_norm.weight`)] : []),
      ...(arch === 'gemma2' || gemma3 ? [randomNorm(`blk.${l}.post_attention_norm.weight`)] : []),
      norm(`blk.${l}.ffn_norm.weight`),
      ...mlp,
      experts ? stacked(`blk.${l}.ffn_down_exps.weight`, s.hidden, s.ffn) : matrix(`blk.${l}.ffn_down.weight`, s.hidden, s.ffn),
      ...(arch === 'gemma2' || gemma3 ? [randomNorm(`blk.${l}.post_ffw_norm.weight`)] : []),
    );
  }
  tensors.push(norm('output_norm.weight')); // no output.weight: tied to the embeddings, unless untiedHead
  if (untiedHead) tensors.push(matrix('output.weight', s.vocab, s.hidden));
  fs.mkdirSync(path.dirname(out), { recursive: true });
  writeGgufFile(out, metadata, tensors);
  return out;
}

function defaultPath(dtype) {
  return path.resolve(__dirname, '..', '..', '.bench-out', `smollm-135m-random-${dtype.toLowerCase()}.gguf`);
}

if (require.main === module) {
  const arg = (name) => process.argv.slice(2).find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
  const dtype = (arg('dtype') ?? 'f32').toUpperCase();
  if (dtype !== 'F32' && dtype !== 'F16') throw new Error(`Expected --dtype=f32 or f16 but received ${dtype}`);
  const out = path.resolve(arg('out') ?? defaultPath(dtype));
  const t0 = Date.now();
  makeSmollmGguf({ out, dtype });
  console.log(`wrote ${out} (${(fs.statSync(out).size / 2 ** 20).toFixed(0)} MiB) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

module.exports = { makeSmollmGguf, defaultPath, SMOLLM_135M, f16Bits };
