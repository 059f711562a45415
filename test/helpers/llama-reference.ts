/**
 * A plain float64 Llama forward pass written from the Hugging Face modeling code's definitions
 * (RMSNorm, rotate-half RoPE, grouped-query causal attention, SwiGLU MLP, tied or separate head;
 * Qwen3's RMSNorm of each query and key head before RoPE; Mistral's sliding window, in which
 * query t sees keys s with t − window < s ≤ t; Mixtral's mixture of experts: the softmax of the
 * router's scores, the top k renormalized, their SwiGLU experts summed),
 * used as the independent reference for the native model. Slow and simple on purpose.
 */
import type { LlamaConfig } from '../../lib';

export type Weights = (name: string) => Float32Array;

function matvec(w: Float32Array, x: Float64Array, rows: number, cols: number, bias?: Float32Array): Float64Array {
  // w: [rows, cols] (a linear layer's weight, y = W·x)
  const y = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = bias ? bias[r] : 0;
    for (let c = 0; c < cols; c++) s += w[r * cols + c] * x[c];
    y[r] = s;
  }
  return y;
}

function rmsnorm(x: Float64Array, w: Float32Array, eps: number): Float64Array {
  let ms = 0;
  for (const v of x) ms += v * v;
  const inv = 1 / Math.sqrt(ms / x.length + eps);
  return x.map((v, i) => v * inv * w[i]);
}

/** Rotates one head's vector [D] in place: pairs (i, i + D/2) by angle pos · invFreq[i]. */
function rope(x: Float64Array, offset: number, D: number, pos: number, invFreq: Float32Array): void {
  const half = D / 2;
  for (let i = 0; i < half; i++) {
    const angle = pos * invFreq[i];
    const c = Math.cos(angle);
    const s = Math.sin(angle);
    const a = x[offset + i];
    const b = x[offset + i + half];
    x[offset + i] = a * c - b * s;
    x[offset + i + half] = b * c + a * s;
  }
}

/** Logits [T][vocab] for one sequence of ids. */
export function llamaReferenceLogits(c: LlamaConfig, weights: Weights, ids: number[], invFreq: Float32Array): Float64Array[] {
  const H = c.hiddenSize, D = c.headDim, Hq = c.numHeads, Hkv = c.numKvHeads, F = c.intermediateSize;
  const embed = weights('model.embed_tokens.weight');
  let hidden = ids.map((id) => Float64Array.from(embed.subarray(id * H, (id + 1) * H)));
  const optional = (name: string) => {
    try {
      return weights(name);
    } catch {
      return undefined;
    }
  };
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}.`;
    const normed = hidden.map((h) => rmsnorm(h, weights(p + 'input_layernorm.weight'), c.rmsNormEps));
    const q = normed.map((x) => matvec(weights(p + 'self_attn.q_proj.weight'), x, Hq * D, H, optional(p + 'self_attn.q_proj.bias')));
    const k = normed.map((x) => matvec(weights(p + 'self_attn.k_proj.weight'), x, Hkv * D, H, optional(p + 'self_attn.k_proj.bias')));
    const v = normed.map((x) => matvec(weights(p + 'self_attn.v_proj.weight'), x, Hkv * D, H, optional(p + 'self_attn.v_proj.bias')));
    if (c.qkNorm) {  // each head's [D] vector on its own, with the shared [D] weight
      const headNorm = (x: Float64Array, heads: number, w: Float32Array) => {
        for (let h = 0; h < heads; h++) x.set(rmsnorm(x.subarray(h * D, (h + 1) * D), w, c.rmsNormEps), h * D);
      };
      q.forEach((x) => headNorm(x, Hq, weights(p + 'self_attn.q_norm.weight')));
      k.forEach((x) => headNorm(x, Hkv, weights(p + 'self_attn.k_norm.weight')));
    }
    q.forEach((x, t) => { for (let h = 0; h < Hq; h++) rope(x, h * D, D, t, invFreq); });
    k.forEach((x, t) => { for (let h = 0; h < Hkv; h++) rope(x, h * D, D, t, invFreq); });
    const attn = q.map((qt, t) => {
      const out = new Float64Array(Hq * D);
      for (let h = 0; h < Hq; h++) {
        const hk = Math.floor(h / (Hq / Hkv));
        const first = c.slidingWindow ? Math.max(0, t - c.slidingWindow + 1) : 0;
        const scores: number[] = [];
        for (let s = first; s <= t; s++) {
          let dot = 0;
          for (let d = 0; d < D; d++) dot += qt[h * D + d] * k[s][hk * D + d];
          scores.push(dot / Math.sqrt(D));
        }
        const max = Math.max(...scores);
        const e = scores.map((x) => Math.exp(x - max));
        const z = e.reduce((a, b) => a + b, 0);
        for (let s = first; s <= t; s++) for (let d = 0; d < D; d++) out[h * D + d] += (e[s - first] / z) * v[s][hk * D + d];
      }
      return out;
    });
    hidden = hidden.map((h, t) => {
      const o = matvec(weights(p + 'self_attn.o_proj.weight'), attn[t], H, Hq * D);
      return h.map((x, i) => x + o[i]);
    });
    hidden = hidden.map((h) => {
      const x = rmsnorm(h, weights(p + 'post_attention_layernorm.weight'), c.rmsNormEps);
      const swiglu = (gateName: string, upName: string, downName: string) => {
        const gate = matvec(weights(gateName), x, F, H);
        const up = matvec(weights(upName), x, F, H);
        return matvec(weights(downName), gate.map((g, i) => (g / (1 + Math.exp(-g))) * up[i]), H, F);
      };
      if (!c.numExperts) {
        const down = swiglu(p + 'mlp.gate_proj.weight', p + 'mlp.up_proj.weight', p + 'mlp.down_proj.weight');
        return h.map((v0, i) => v0 + down[i]);
      }
      // Mixtral: softmax over the router's scores, the top k kept and renormalized, their experts summed.
      const scores = matvec(weights(p + 'block_sparse_moe.gate.weight'), x, c.numExperts, H);
      const max = Math.max(...scores);
      const prob = scores.map((s) => Math.exp(s - max));
      const z = prob.reduce((a, b) => a + b, 0);
      const top = Array.from(prob.keys()).sort((a, b) => prob[b] - prob[a]).slice(0, c.numExpertsPerTok!);
      const kept = top.reduce((a, e) => a + prob[e] / z, 0);
      const out = new Float64Array(H);
      for (const e of top) {
        const q = `${p}block_sparse_moe.experts.${e}.`;
        const y = swiglu(q + 'w1.weight', q + 'w3.weight', q + 'w2.weight');
        for (let i = 0; i < H; i++) out[i] += (prob[e] / z / kept) * y[i];
      }
      return h.map((v0, i) => v0 + out[i]);
    });
  }
  const head = c.tieWordEmbeddings ? embed : weights('lm_head.weight');
  return hidden.map((h) => matvec(head, rmsnorm(h, weights('model.norm.weight'), c.rmsNormEps), c.vocabSize, H));
}
