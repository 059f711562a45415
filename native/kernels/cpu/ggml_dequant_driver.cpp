// ggml_dequantize_row: one row of ggml blocks through the active instruction set's loop, or the
// scalar loop for a type that set has none for (variants.h). Both give the same bits.
#include <string>

#include "core/error.h"
#include "kernels/cpu/variants.h"
#include "kernels/ggml_quant.h"

namespace peft::kernels {

void ggml_dequantize_row(GgmlType type, const uint8_t* blocks, int64_t n, float* out) {
  const GgmlBlockFormat& format = ggml_block_format(type);
  const uint32_t id = static_cast<uint32_t>(type);
  cpu::GgmlDequantLoop loop = cpu::ggml_dequant_loop(cpu::active_ggml_dequant_spans(), id);
  if (loop == nullptr) loop = cpu::ggml_dequant_loop(cpu::ggml_dequant_spans_scalar(), id);
  PEFT_CHECK(loop != nullptr, ErrorCode::Internal, std::string("No dequantizer for ") + format.name);
  loop(blocks, n / format.block, out);
}

}  // namespace peft::kernels
