// Every op of a backend's table against the CPU backend at the scalar instruction set, on the same
// random inputs, as ggml's test-backend-ops does: the check a new backend or variant must pass.
#pragma once
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "kernels/isa.h"

namespace peft::kernels {

struct OpComparison {
  std::string op;     // the table entry (a few entries have several cases, e.g. "gemm/bf16_nt")
  double max_abs;     // largest |backend − reference| over the op's outputs
  double ref_scale;   // largest |reference| (so callers can judge max_abs relative to it)
  int64_t outputs;    // values compared
};

// Runs each op's cases on `backend` at `isa` and on the CPU backend at the scalar variant. The
// active variant is restored afterwards. Throws E_UNSUPPORTED when the CPU cannot run `isa`.
std::vector<OpComparison> compare_backend_ops(const Backend& backend, Isa isa, uint64_t seed);
// The number of op entries in a Backend (its function pointers), to check every op has a case.
int backend_op_count();

}  // namespace peft::kernels
