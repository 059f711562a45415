/**
 * A plain float64 Gemma 2 / Gemma 3 (text) forward pass written from the published architecture:
 * embeddings × √hidden; per layer RMSNorm scaling by (1 + w), attention (Gemma 3: each query / key
 * head RMS-normalized with its own (1 + w) weights before RoPE; the sliding-window layers use the
 * local RoPE base) with scores scaled by query_pre_attn_scalar^-½ and (Gemma 2) soft-capped, causal
 * with a sliding window on the sliding layers, the attention output normalized (post_attention_layernorm)
 * and added; then pre_feedforward_layernorm, a GeGLU MLP (tanh-GELU), post_feedforward_layernorm, added;
 * a final norm, the tied head and (Gemma 2) soft-capped logits. Slow and simple on purpose.
 */
import type { LlamaConfig } from '../../lib';

export type Weights = (name: string) => Float32Array;

function matvec(w: Float32Array, x: Float64Array, rows: number, cols: number): Float64Array {
  const y = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let c = 0; c < cols; c++) s += w[r * cols + c] * x[c];
    y[r] = s;
  }
  return y;
}

/** Gemma's RMSNorm: x / rms(x) · (1 + w). */
function rmsnorm1p(x: Float64Array, w: Float32Array, eps: number): Float64Array {
  let ms = 0;
  for (const v of x) ms += v * v;
  const inv = 1 / Math.sqrt(ms / x.length + eps);
  return x.map((v, i) => v * inv * (1 + w[i]));
}

function rope(x: Float64Array, offset: number, D: number, pos: number, invFreq: ArrayLike<number>): void {
  const half = D / 2;
  for (let i = 0; i < half; i++) {
    const c = Math.cos(pos * invFreq[i]), s = Math.sin(pos * invFreq[i]);
    const a = x[offset + i], b = x[offset + i + half];
    x[offset + i] = a * c - b * s;
    x[offset + i + half] = b * c + a * s;
  }
}

const gelu = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
const cap = (x: number, c: number | undefined) => (c ? c * Math.tanh(x / c) : x);

/** Logits [T][vocab] of one sequence. globalInvFreq: the full-attention layers' RoPE frequencies. */
export function gemmaReferenceLogits(c: LlamaConfig, weights: Weights, ids: number[], globalInvFreq: ArrayLike<number>): Float64Array[] {
  const H = c.hiddenSize, D = c.headDim, Hq = c.numHeads, Hkv = c.numKvHeads, F = c.intermediateSize, eps = c.rmsNormEps;
  const gemma3 = c.modelType === 'gemma3_text';
  const localInvFreq = Array.from({ length: D / 2 }, (_, i) => 1 / (c.ropeLocalTheta ?? c.ropeTheta) ** ((2 * i) / D));
  const embed = weights('model.embed_tokens.weight');
  let hidden = ids.map((id) => Float64Array.from(embed.subarray(id * H, (id + 1) * H), (v) => v * Math.sqrt(H)));
  const scale = 1 / Math.sqrt(c.queryPreAttnScalar ?? D);
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}.`;
    const sliding = Boolean(c.slidingWindow) && (c.slidingLayers?.[l] ?? true);
    const invFreq = sliding && gemma3 ? localInvFreq : globalInvFreq;
    const normed = hidden.map((h) => rmsnorm1p(h, weights(p + 'input_layernorm.weight'), eps));
    const q = normed.map((x) => matvec(weights(p + 'self_attn.q_proj.weight'), x, Hq * D, H));
    const k = normed.map((x) => matvec(weights(p + 'self_attn.k_proj.weight'), x, Hkv * D, H));
    const v = normed.map((x) => matvec(weights(p + 'self_attn.v_proj.weight'), x, Hkv * D, H));
    if (gemma3) {
      const headNorm = (x: Float64Array, heads: number, w: Float32Array) => {
        for (let h = 0; h < heads; h++) x.set(rmsnorm1p(x.subarray(h * D, (h + 1) * D), w, eps), h * D);
      };
      q.forEach((x) => headNorm(x, Hq, weights(p + 'self_attn.q_norm.weight')));
      k.forEach((x) => headNorm(x, Hkv, weights(p + 'self_attn.k_norm.weight')));
    }
    q.forEach((x, t) => { for (let h = 0; h < Hq; h++) rope(x, h * D, D, t, invFreq); });
    k.forEach((x, t) => { for (let h = 0; h < Hkv; h++) rope(x, h * D, D, t, invFreq); });
    const attn = q.map((qt, t) => {
      const out = new Float64Array(Hq * D);
      const first = sliding ? Math.max(0, t - c.slidingWindow! + 1) : 0;
      for (let h = 0; h < Hq; h++) {
        const hk = Math.floor(h / (Hq / Hkv));
        const scores: number[] = [];
        for (let s = first; s <= t; s++) {
          let dot = 0;
          for (let d = 0; d < D; d++) dot += qt[h * D + d] * k[s][hk * D + d];
          scores.push(cap(dot * scale, c.attnLogitSoftcapping));
        }
        const max = Math.max(...scores);
        const e = scores.map((x) => Math.exp(x - max));
        const z = e.reduce((a, b) => a + b, 0);
        for (let s = first; s <= t; s++) for (let d = 0; d < D; d++) out[h * D + d] += (e[s - first] / z) * v[s][hk * D + d];
      }
      return out;
    });
    hidden = hidden.map((h, t) => {
      const o = rmsnorm1p(matvec(weights(p + 'self_attn.o_proj.weight'), attn[t], H, Hq * D), weights(p + 'post_attention_layernorm.weight'), eps);
      return h.map((x, i) => x + o[i]);
    });
    hidden = hidden.map((h) => {
      const x = rmsnorm1p(h, weights(p + 'pre_feedforward_layernorm.weight'), eps);
      const gate = matvec(weights(p + 'mlp.gate_proj.weight'), x, F, H);
      const up = matvec(weights(p + 'mlp.up_proj.weight'), x, F, H);
      const down = matvec(weights(p + 'mlp.down_proj.weight'), gate.map((g, i) => gelu(g) * up[i]), H, F);
      const m = rmsnorm1p(down, weights(p + 'post_feedforward_layernorm.weight'), eps);
      return h.map((v0, i) => v0 + m[i]);
    });
  }
  const head = c.tieWordEmbeddings ? embed : weights('lm_head.weight');
  return hidden.map((h) => matvec(head, rmsnorm1p(h, weights('model.norm.weight'), eps), c.vocabSize, H).map((x) => cap(x, c.finalLogitSoftcapping)));
}
