// The fixed part of `npm run test:asan` that CI runs (`npm run test:asan -- --ci`): every native layer
// (kernels and their ISA variants, the safetensors / GGUF readers and their fuzz tests, 4-bit quantization,
// the three model families, the PEFT methods, adapters and exports, the Trainer, the serving step and engine, the Tensor binding and the
// bad-input checks) without the suites that mostly time child processes (test/cli/, the demo, async).
// Measured: 7.0 min on a shared, loaded 2-core machine (the whole test:asan: 11.9 min), plus the sanitized
// build (about 8 CPU-minutes). Paths are jest path patterns.
'use strict';
module.exports = [
  'test/kernels/',
  'test/io/',
  'test/quant/',
  'test/models/',
  'test/peft/',
  'test/train/trainer.test.ts',
  'test/serve/serve-step.test.ts',
  'test/serve/engine.test.ts',
  'test/tensor.test.ts',
  'test/errors.test.ts',
];
