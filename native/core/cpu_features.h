// What the CPU (and the OS, for the wide register state) supports, read once with cpuid/xgetbv.
#pragma once

namespace peft {

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512dq = false;
  bool avx512bf16 = false;
};

const CpuFeatures& cpu_features();

}  // namespace peft
