/**
 * Kernels for tests and advanced users: matrix products, the fused LoRA linear, fused optimizers, in-place
 * scaling and copying, and the
 * transformer layers (RMSNorm, LayerNorm, RoPE, SwiGLU, GELU, cross-entropy, embedding), each with its backward.
 * @module ops
 */
export { matmul, matmulAsync, type MatmulOptions } from './matmul';
export {
  lowrankForward,
  lowrankForwardAsync,
  lowrankBackward,
  lowrankBackwardAsync,
  type LowRankForwardOptions,
  type LowRankForwardResult,
  type LowRankBackwardOptions,
  type LowRankBackwardResult,
} from './lowrank';
export { loraBatchForward, loraBatchForwardAsync, type LoraBatchAdapter, type LoraBatchOptions } from './lora-batch';
export {
  adamw,
  adamwAsync,
  sgd,
  sgdAsync,
  clipGradNorm,
  clipGradNormAsync,
  type AdamWOptions,
  type AdamWState,
  type SgdOptions,
} from './optim';
export { findNonFinite, findNonFiniteAsync, type NonFiniteReport } from './finite';
export { scale, scaleAsync, copy, copyAsync } from './elementwise';
export {
  attention,
  attentionAsync,
  attentionBackward,
  type AttentionOptions,
  type AttentionResult,
  type AttentionGradients,
} from './attention';
export {
  rmsnormForward,
  rmsnormForwardAsync,
  rmsnormBackward,
  rmsnormBackwardAsync,
  layernormForward,
  layernormForwardAsync,
  layernormBackward,
  layernormBackwardAsync,
  type NormOptions,
  type NormBackwardOptions,
  type RmsNormForwardResult,
  type RmsNormBackwardResult,
  type LayerNormForwardResult,
  type LayerNormBackwardResult,
} from './norm';
export { rope, ropeAsync, ropeBackward, ropeBackwardAsync, ropeFrequencyScale, type RopeOptions, type RopeScaling } from './rope';
export {
  swigluForward,
  swigluForwardAsync,
  swigluBackward,
  swigluBackwardAsync,
  geluForward,
  geluForwardAsync,
  geluBackward,
  geluBackwardAsync,
  type SwiGluBackwardResult,
} from './activation';
export { crossEntropy, crossEntropyAsync, type CrossEntropyOptions, type CrossEntropyResult } from './loss';
export {
  embeddingForward,
  embeddingForwardAsync,
  embeddingBackward,
  embeddingBackwardAsync,
  type EmbeddingBackwardOptions,
} from './embedding';
