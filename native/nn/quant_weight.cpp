#include "nn/quant_weight.h"

#include <algorithm>
#include <string>

#include "core/error.h"

namespace peft::nn {

namespace {

void expect_part(const std::shared_ptr<Tensor>& t, DType dtype, int64_t numel, const std::string& what) {
  PEFT_CHECK(t != nullptr, ErrorCode::Argument, "Missing " + what);
  PEFT_CHECK(t->dtype() == dtype, ErrorCode::DType,
             "Expected " + std::string(dtype_name(dtype)) + " for " + what + " but received " + dtype_name(t->dtype()));
  PEFT_CHECK(t->numel() == numel && t->is_contiguous(), ErrorCode::Shape,
             "Expected " + std::to_string(numel) + " contiguous elements for " + what + " but received shape " +
                 shape_to_string(t->shape()));
}

std::shared_ptr<Tensor> new_tensor(DType dtype, int64_t n) {
  return std::make_shared<Tensor>(Tensor::uninitialized(dtype, {n}));
}

}  // namespace

int64_t QuantWeight::nbytes() const {
  int64_t total = 0;
  for (const auto* t : {&packed, &absmax, &quant_map, &nested_absmax, &nested_quant_map})
    if (*t) total += static_cast<int64_t>((*t)->nbytes());
  return total;
}

std::string QuantWeight::format_name() const {
  if (ggml()) return kernels::ggml_block_format(ggml_type).name;
  return type == kernels::Quant4Type::NF4 ? "nf4" : "fp4";
}

kernels::GgmlQuantTensor QuantWeight::ggml_view() const {
  PEFT_CHECK(ggml(), ErrorCode::Internal, "ggml_view of a 4-bit bitsandbytes weight");
  return kernels::GgmlQuantTensor{ggml_type, packed->data_as<uint8_t>(), rows(), cols()};
}

kernels::Quant4Tensor QuantWeight::view() const {
  PEFT_CHECK(!ggml(), ErrorCode::Internal, "view of a ggml block weight");
  kernels::Quant4Tensor q{};
  q.packed = packed->data_as<uint8_t>();
  q.code = quant_map->data_as<float>();
  q.blocksize = blocksize;
  q.numel = numel();
  if (nested()) {
    q.scales.codes = absmax->data_as<uint8_t>();
    q.scales.nested_absmax = nested_absmax->data_as<float>();
    q.scales.nested_code = nested_quant_map->data_as<float>();
    q.scales.nested_blocksize = nested_blocksize;
    q.scales.offset = offset;
  } else {
    q.scales.absmax = absmax->data_as<float>();
  }
  return q;
}

void QuantWeight::validate(const std::string& what) const {
  PEFT_CHECK(shape.size() == 2 && shape[0] > 0 && shape[1] > 0, ErrorCode::Shape,
             "Expected a 2-D shape [out, in] for the 4-bit weight " + what + " but received " + shape_to_string(shape));
  PEFT_CHECK(compute_dtype == DType::F32 || compute_dtype == DType::BF16, ErrorCode::DType,
             "Expected compute dtype f32 or bf16 for " + what + " but received " + dtype_name(compute_dtype));
  if (ggml()) {
    const kernels::GgmlBlockFormat& f = kernels::ggml_block_format(ggml_type);
    PEFT_CHECK(cols() % f.block == 0, ErrorCode::Shape,
               "Expected rows of a multiple of " + std::to_string(f.block) + " elements for the " + f.name + " weight " +
                   what + " but received " + shape_to_string(shape));
    expect_part(packed, DType::U8, rows() * kernels::ggml_row_bytes(ggml_type, cols()), what + " (" + f.name + " blocks)");
    return;
  }
  PEFT_CHECK(source_dtype == DType::F32 || source_dtype == DType::BF16 || source_dtype == DType::F16, ErrorCode::DType,
             "Expected source dtype f32, bf16 or f16 for " + what + " but received " + dtype_name(source_dtype));
  kernels::check_quant_blocksize(blocksize, (what + " blocksize").c_str());
  const int64_t n = numel(), blocks = kernels::quant_blocks(n, blocksize);
  expect_part(packed, DType::U8, (n + 1) / 2, what + " (packed codes)");
  expect_part(quant_map, DType::F32, 16, what + ".quant_map");
  if (!nested()) {
    expect_part(absmax, DType::F32, blocks, what + ".absmax");
    return;
  }
  kernels::check_quant_blocksize(nested_blocksize, (what + " nested_blocksize").c_str());
  expect_part(absmax, DType::U8, blocks, what + ".absmax (double-quantized)");
  expect_part(nested_absmax, DType::F32, kernels::quant_blocks(blocks, nested_blocksize), what + ".nested_absmax");
  expect_part(nested_quant_map, DType::F32, 256, what + ".nested_quant_map");
}

void QuantWeight::dequantize_rows(int64_t r0, int64_t r1, float* out) const {
  if (ggml()) kernels::ggml_dequantize_rows(ggml_view(), r0, r1, out);
  else kernels::dequantize4_rows(view(), cols(), r0, r1, out);
  if (compute_dtype == DType::BF16) kernels::round_to_bf16(out, (r1 - r0) * cols());
}

std::vector<float> QuantWeight::dequantize_all() const {
  std::vector<float> out(static_cast<size_t>(numel()));
  dequantize_rows(0, rows(), out.data());
  return out;
}

std::shared_ptr<QuantWeight> QuantWeight::requantized(const std::vector<float>& values) const {
  const int64_t n = numel();
  PEFT_CHECK(static_cast<int64_t>(values.size()) == n, ErrorCode::Internal, "requantized: wrong number of values");
  auto q = std::make_shared<QuantWeight>(*this);
  if (ggml()) {  // the same block format, by llama.cpp's reference quantizer
    q->packed = std::make_shared<Tensor>(Tensor::uninitialized(DType::U8, packed->shape()));
    kernels::ggml_quantize_rows(ggml_type, values.data(), rows(), cols(), q->packed->data_as<uint8_t>());
    return q;
  }
  const int64_t blocks = kernels::quant_blocks(n, blocksize);
  q->packed = std::make_shared<Tensor>(Tensor::uninitialized(DType::U8, packed->shape()));
  auto scales = new_tensor(DType::F32, blocks);  // [blocks] f32
  kernels::quantize4(type, blocksize, values.data(), DType::F32, n, q->packed->data_as<uint8_t>(),
                     scales->data_as<float>());
  // quantize4 searches the published table of `type`: the new codes index that table.
  q->quant_map = new_tensor(DType::F32, 16);
  std::copy(kernels::quant4_code(type), kernels::quant4_code(type) + 16, q->quant_map->data_as<float>());
  if (!nested()) {
    q->absmax = scales;
    return q;
  }
  q->absmax = new_tensor(DType::U8, blocks);
  q->nested_absmax = new_tensor(DType::F32, kernels::quant_blocks(blocks, nested_blocksize));
  q->offset = kernels::quantize_absmax_nested(scales->data_as<float>(), blocks, nested_blocksize,
                                              nested_quant_map->data_as<float>(), q->absmax->data_as<uint8_t>(),
                                              q->nested_absmax->data_as<float>());
  return q;
}

}  // namespace peft::nn
