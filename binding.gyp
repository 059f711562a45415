# Sources and flags come from native/sources.json (shared with CMakeLists.txt).
# Each instruction-set variant is its own static library so that its flags
# (e.g. -mavx512bf16) apply to those files only; the addon still loads on CPUs without them.
{
  "target_defaults": {
    "include_dirs": [
      "<!(node -p \"require('node-addon-api').include_dir\")",
      "<!@(node scripts/build/sources.js include_dirs)"
    ],
    "defines": ["<!@(node scripts/build/sources.js defines)"],
    "cflags!": ["-fno-exceptions", "-O2", "-O3"],
    "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++20", "-std=c++17", "-std=c++20"],
    "cflags_cc": ["<!@(node scripts/build/sources.js cflags)"],
    "cflags": ["-O3", "-fPIC"],
    "xcode_settings": { "GCC_ENABLE_CPP_EXCEPTIONS": "YES", "CLANG_CXX_LANGUAGE_STANDARD": "c++17" }
  },
  "targets": [
    {
      "target_name": "peft_isa_avx2",
      "type": "static_library",
      "sources": ["<!@(node scripts/build/sources.js isa-sources avx2)"],
      "cflags_cc": ["<!@(node scripts/build/sources.js isa-flags avx2)"]
    },
    {
      "target_name": "peft_isa_avx512",
      "type": "static_library",
      "sources": ["<!@(node scripts/build/sources.js isa-sources avx512)"],
      "cflags_cc": ["<!@(node scripts/build/sources.js isa-flags avx512)"]
    },
    {
      "target_name": "peft_isa_avx512bf16",
      "type": "static_library",
      "sources": ["<!@(node scripts/build/sources.js isa-sources avx512bf16)"],
      "cflags_cc": ["<!@(node scripts/build/sources.js isa-flags avx512bf16)"]
    },
    {
      "target_name": "peft_native",
      "sources": ["<!@(node scripts/build/sources.js common)"],
      "dependencies": ["peft_isa_avx2", "peft_isa_avx512", "peft_isa_avx512bf16"],
      "libraries": ["-lpthread"]
    }
  ]
}
