'use strict';
// The libFuzzer targets: harness, the native sources each links (native/io and native/core, and for
// GGUF the scalar ggml block-format kernels; no node), the largest input tried and a dictionary.
const TARGETS = {
  json: {
    harness: 'fuzz/json_fuzzer.cpp',
    sources: ['native/core/error.cpp', 'native/io/json.cpp'],
    maxLen: 32768,
  },
  safetensors: {
    harness: 'fuzz/safetensors_fuzzer.cpp',
    sources: ['native/core/error.cpp', 'native/core/dtype.cpp', 'native/core/tensor.cpp', 'native/core/allocator.cpp', 'native/core/host_memory.cpp',
      'native/io/mapped_file.cpp', 'native/io/json.cpp', 'native/io/safetensors.cpp'],
    maxLen: 65536,
  },
  gguf: {
    harness: 'fuzz/gguf_fuzzer.cpp',
    sources: ['native/core/error.cpp', 'native/core/dtype.cpp', 'native/core/tensor.cpp', 'native/core/allocator.cpp', 'native/core/host_memory.cpp',
      'native/core/thread_pool.cpp', 'native/io/mapped_file.cpp', 'native/io/gguf.cpp', 'native/io/gguf_types.cpp', 'native/io/gguf_metadata.cpp', 'native/io/gguf_dequant.cpp',
      // the scalar block-format code the reader dequantizes and checks with (no instruction-set variants)
      'native/kernels/cpu/ggml_formats.cpp', 'native/kernels/cpu/ggml_dequant_scalar.cpp', 'native/kernels/cpu/ggml_scales.cpp'],
    maxLen: 65536,
  },
};

module.exports = { TARGETS };
