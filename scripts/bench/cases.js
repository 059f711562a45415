'use strict';
// The benchmark's problems. A shape is a linear layer seen in training: M tokens, N output
// features, K input features (x [M,K], W [N,K], dy [M,N]); the defaults are SmolLM-135M's
// (hidden 576, MLP 1536, vocabulary 49152) with 2048 tokens, plus the classic 4096³ square.
// Each of the layer's three products does 2·M·N·K flops but hands the GEMM different dimensions:
//   fwd  y  = x·Wᵀ   a = x  [M,K], b = W [N,K] (transB)   GEMM m=M, n=N, k=K
//   dx   dx = dy·W   a = dy [M,N], b = W [N,K]            GEMM m=M, n=K, k=N
//   dW   dW = dyᵀ·x  a = dy [M,N] (transA), b = x [M,K]   GEMM m=N, n=K, k=M

const SHAPES = [
  [4096, 4096, 4096],
  [2048, 576, 576],
  [2048, 1536, 576],
  [2048, 576, 1536],
  [2048, 49152, 576],
].map(([m, n, k]) => ({ m, n, k }));

const CASES = [
  {
    id: 'fwd',
    label: 'y = x·Wᵀ',
    operands: ({ m, n, k }) => ({ a: { name: 'x', shape: [m, k] }, b: { name: 'W', shape: [n, k] }, transA: false, transB: true, gemm: { m, n, k } }),
  },
  {
    id: 'dx',
    label: 'dx = dy·W',
    operands: ({ m, n, k }) => ({ a: { name: 'dy', shape: [m, n] }, b: { name: 'W', shape: [n, k] }, transA: false, transB: false, gemm: { m, n: k, k: n } }),
  },
  {
    id: 'dW',
    label: 'dW = dyᵀ·x',
    operands: ({ m, n, k }) => ({ a: { name: 'dy', shape: [m, n] }, b: { name: 'x', shape: [m, k] }, transA: true, transB: false, gemm: { m: n, n: k, k: m } }),
  },
];

// The LoRA table's default shapes: the SmolLM layers (a 4096³ LoRA layer says nothing new and
// would double the run time).
const LOWRANK_SHAPES = SHAPES.filter((s) => s.m === 2048);

const DTYPES = ['f32', 'bf16'];
const RANKS = [8, 16, 32, 64];

const shapeName = ({ m, n, k }) => `${m}x${n}x${k}`;

/** The GEMM problem as the ops.matmul options and dims, with transA/transB at top level. */
function gemmOf(caseDef, shape) {
  const o = caseDef.operands(shape);
  return { ...o.gemm, transA: o.transA, transB: o.transB };
}

module.exports = { SHAPES, LOWRANK_SHAPES, CASES, DTYPES, RANKS, shapeName, gemmOf };
