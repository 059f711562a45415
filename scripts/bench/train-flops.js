'use strict';
// The arithmetic of one training step, counted analytically (a multiply-add = 2 flops), for
// "achieved GFLOP/s". Only the products count: norms, RoPE, SwiGLU, softmax, the loss and the
// optimizer are a few flops per element and are left out.
//
//   linear layer y = x·Wᵀ (M tokens, W [n, k]): forward 2·M·n·k; backward dx = dy·W, 2·M·n·k, where
//     a gradient has to flow below the layer (something under it trains); dW never (frozen bases).
//   LoRA (rank r): forward x·Aᵀ and (x·Aᵀ)·Bᵀ, 2·M·r·(k + n); backward dB and d(x·Aᵀ), 2·M·n·r each,
//     dA, 2·M·r·k, and dx's share through A, 2·M·r·k, where dx flows.
//   DoRA: LoRA plus the row norms' B·A product, 2·n·k·r, once per forward (the norms are constants
//     for the gradient, as in PEFT, so they add no backward products).
//   attention (causal, per layer): Q·Kᵀ and P·V forward, dP = dO·Vᵀ, dV = Pᵀ·dO, dQ = dS·K and
//     dK = dSᵀ·Q backward, each 2·B·heads·T²·D counted over the lower triangle only (half), the
//     work a causal kernel has to do.
//   output head (tied, frozen): logits 2·L·hidden·vocab and their dx as much again, over the L
//     positions that have a label, the rows a head has to compute (ours skips the others): seq − 1
//     per row, as the last token predicts nothing; with prompt tuning seq, as the last virtual
//     token predicts the first real one and the others predict nothing.
// M counts every position the model runs, virtual tokens included.

const BLOCK_LINEARS = [
  // [module, out features, in features] as functions of the shape
  ['q_proj', (s) => s.heads * s.headDim, (s) => s.hidden],
  ['k_proj', (s) => s.kvHeads * s.headDim, (s) => s.hidden],
  ['v_proj', (s) => s.kvHeads * s.headDim, (s) => s.hidden],
  ['o_proj', (s) => s.hidden, (s) => s.heads * s.headDim],
  ['gate_proj', (s) => s.ffn, (s) => s.hidden],
  ['up_proj', (s) => s.ffn, (s) => s.hidden],
  ['down_proj', (s) => s.hidden, (s) => s.ffn],
];
const ATTENTION_INPUTS = new Set(['q_proj', 'k_proj', 'v_proj']);

/**
 * @param shape { hidden, layers, heads, kvHeads, headDim, ffn, vocab }
 * @param batch rows; seq tokens per row (without virtual tokens)
 * @param c a case: { method: 'lora'|'dora'|'qlora'|'prompt', r, targets, virtualTokens }
 * @returns flops by part { linear, adapter, attention, head, total } (forward + backward)
 */
function stepFlops(shape, batch, seq, c) {
  const T = seq + (c.method === 'prompt' ? c.virtualTokens : 0);
  const M = batch * T;
  const adapted = (name) => c.method !== 'prompt' && c.targets.includes(name);
  // Everything trains from layer 0's attention inputs up (LoRA-type targets include q_proj), or from
  // the input embeddings (prompt tuning): only layer 0's q/k/v then pass no gradient further down.
  const dxFlows = (layer, name) => c.method === 'prompt' || layer > 0 || !ATTENTION_INPUTS.has(name);
  let linear = 0, adapter = 0;
  for (let l = 0; l < shape.layers; l++) {
    for (const [name, outOf, inOf] of BLOCK_LINEARS) {
      const n = outOf(shape), k = inOf(shape);
      const dx = dxFlows(l, name);
      linear += 2 * M * n * k * (dx ? 2 : 1);
      if (!adapted(name)) continue;
      const r = c.r;
      adapter += 2 * M * r * (k + n) + 2 * (2 * M * n * r) + 2 * M * r * k + (dx ? 2 * M * r * k : 0);
      if (c.method === 'dora') adapter += 2 * n * k * r;
    }
  }
  const attention = shape.layers * 6 * (2 * batch * shape.heads * T * T * shape.headDim) / 2;
  const labelled = batch * (c.method === 'prompt' ? seq : seq - 1);
  const head = 2 * (2 * labelled * shape.hidden * shape.vocab);
  return { linear, adapter, attention, head, total: linear + adapter + attention + head };
}

module.exports = { stepFlops };
