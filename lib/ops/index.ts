/**
 * Kernels for tests and advanced users: matrix products, the fused LoRA linear, fused optimizers.
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
export {
  attention,
  attentionAsync,
  attentionBackward,
  type AttentionOptions,
  type AttentionResult,
  type AttentionGradients,
} from './attention';
