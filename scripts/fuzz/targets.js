'use strict';
// The libFuzzer targets: harness, the native sources each links (native/io and native/core only,
// no node), the largest input tried and a dictionary.
const TARGETS = {
  json: {
    harness: 'fuzz/json_fuzzer.cpp',
    sources: ['native/core/error.cpp', 'native/io/json.cpp'],
    maxLen: 32768,
  },
  safetensors: {
    harness: 'fuzz/safetensors_fuzzer.cpp',
    sources: ['native/core/error.cpp', 'native/core/dtype.cpp', 'native/core/tensor.cpp', 'native/io/mapped_file.cpp', 'native/io/json.cpp',
      'native/io/safetensors.cpp'],
    maxLen: 65536,
  },
  gguf: {
    harness: 'fuzz/gguf_fuzzer.cpp',
    sources: ['native/core/error.cpp', 'native/core/dtype.cpp', 'native/core/tensor.cpp', 'native/core/thread_pool.cpp', 'native/io/mapped_file.cpp',
      'native/io/gguf.cpp', 'native/io/gguf_types.cpp', 'native/io/gguf_metadata.cpp', 'native/io/gguf_dequant.cpp'],
    maxLen: 65536,
  },
};

module.exports = { TARGETS };
