// Inverted dropout whose mask is a pure function of (seed, stream, element index), so a backward
// pass regenerates it instead of keeping an [m, k] mask per adapter.
#pragma once
#include <cstdint>
#include <string>

namespace peft::nn {

// A stable 64-bit stream id for a (module, adapter) pair.
uint64_t dropout_stream(const std::string& module, const std::string& adapter);

// y[i, j] = x[i, j] * keep(i, j) / (1 - p) for rows [row0, row0 + rows) of a `cols`-wide matrix;
// x, y: [rows, cols] f32 (may alias). p in [0, 1).
void dropout_rows(uint64_t seed, uint64_t stream, float p, int64_t row0, int64_t rows, int64_t cols, const float* x,
                  float* y);

}  // namespace peft::nn
