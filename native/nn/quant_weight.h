// A frozen quantized linear weight, in one of two layouts:
// - bitsandbytes' 4-bit (QLoRA's base): packed NF4 / FP4 codes, one scale per block (plain f32, or
//   double-quantized), and the code tables (kernels/nf4.h);
// - a ggml block format as a GGUF file stores it (Q4_0 ... Q6_K, IQ4_NL, IQ4_XS: kernels/ggml_quant.h),
//   the bytes kept as they are in the file.
// A Param holds one in place of a dense value; Linear multiplies by it panel by panel and never
// dequantizes the whole matrix, except to merge an adapter into it.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "kernels/ggml_quant.h"
#include "kernels/nf4.h"

namespace peft::nn {

enum class QuantLayout : uint8_t { Bnb4, Ggml };

struct QuantWeight {
  QuantLayout layout = QuantLayout::Bnb4;
  kernels::Quant4Type type = kernels::Quant4Type::NF4;  // Bnb4
  kernels::GgmlType ggml_type = kernels::GgmlType::Q8_0;  // Ggml
  Shape shape;                          // the weight's shape, [out, in]
  DType source_dtype = DType::F32;      // what it was quantized from (bitsandbytes' quant_state "dtype")
  DType compute_dtype = DType::F32;     // products see the dequantized values in this dtype (f32 or bf16)
  int64_t blocksize = kernels::kQuant4DefaultBlock;
  // Bnb4: u8 [ceil(n/2)] (or [ceil(n/2), 1]): element 2j in the high nibble of byte j.
  // Ggml: u8 [out · row bytes]: the blocks, row after row, as the file stores them.
  std::shared_ptr<Tensor> packed;
  // The rest are Bnb4's only.
  std::shared_ptr<Tensor> absmax;       // f32 [blocks], or u8 [blocks] codes of them when double-quantized
  std::shared_ptr<Tensor> quant_map;    // f32 [16]: the code table
  std::shared_ptr<Tensor> nested_absmax;     // f32 [ceil(blocks / nested_blocksize)], or null
  std::shared_ptr<Tensor> nested_quant_map;  // f32 [256], or null
  int64_t nested_blocksize = kernels::kNestedDefaultBlock;
  float offset = 0.0f;                  // mean of the scales, added back after dequantizing them

  int64_t numel() const { return shape_numel(shape); }
  int64_t rows() const { return shape[0]; }
  int64_t cols() const { return shape[1]; }
  bool nested() const { return nested_absmax != nullptr; }
  bool ggml() const { return layout == QuantLayout::Ggml; }
  // "nf4", "fp4" or the ggml type's name ("Q4_K").
  std::string format_name() const;
  // Bytes of every part (codes, scales, nested scales, code tables): what the weight keeps resident.
  int64_t nbytes() const;
  // The raw views the kernels take (valid while this object lives), one per layout.
  kernels::Quant4Tensor view() const;
  kernels::GgmlQuantTensor ggml_view() const;
  // Throws E_SHAPE / E_DTYPE / E_RANGE naming `what` unless every part fits the shape and settings.
  void validate(const std::string& what) const;

  // out: [r1 - r0, in] f32 = rows [r0, r1) dequantized, in the compute dtype's values.
  void dequantize_rows(int64_t r0, int64_t r1, float* out) const;
  // The whole weight [out, in] f32 as the products see it (for merging only).
  std::vector<float> dequantize_all() const;

  // values: [out, in] f32 quantized with this weight's type, block sizes, nesting and dtypes
  // (the same settings, new codes and scales): what merging into a 4-bit weight stores.
  std::shared_ptr<QuantWeight> requantized(const std::vector<float>& values) const;
};

using QuantWeightPtr = std::shared_ptr<QuantWeight>;
using QuantWeightMap = std::map<std::string, QuantWeightPtr>;  // by parameter name

}  // namespace peft::nn
