// The table of ggml block formats (ggml-common.h's block sizes) and lookups by id, type and name,
// so callers (GGUF reading, the binding) can size rows and reject types without kernels here.
#include <cstring>
#include <string>

#include "core/error.h"
#include "kernels/ggml_quant.h"

namespace peft::kernels {

namespace {

// Bytes per block are the struct sizes of ggml-common.h (f16 scales count 2 bytes each).
constexpr GgmlBlockFormat kFormats[] = {
    {GgmlType::Q4_0, "Q4_0", 32, 18, true},     // d, qs[16]
    {GgmlType::Q4_1, "Q4_1", 32, 20, true},     // d, m, qs[16]
    {GgmlType::Q5_0, "Q5_0", 32, 22, true},     // d, qh[4], qs[16]
    {GgmlType::Q5_1, "Q5_1", 32, 24, true},     // d, m, qh[4], qs[16]
    {GgmlType::Q8_0, "Q8_0", 32, 34, true},     // d, qs[32]
    {GgmlType::Q2_K, "Q2_K", 256, 84, true},    // scales[16], qs[64], d, dmin
    {GgmlType::Q3_K, "Q3_K", 256, 110, true},   // hmask[32], qs[64], scales[12], d
    {GgmlType::Q4_K, "Q4_K", 256, 144, true},   // d, dmin, scales[12], qs[128]
    {GgmlType::Q5_K, "Q5_K", 256, 176, true},   // d, dmin, scales[12], qh[32], qs[128]
    {GgmlType::Q6_K, "Q6_K", 256, 210, true},   // ql[128], qh[64], scales[16], d
    {GgmlType::IQ4_NL, "IQ4_NL", 32, 18, true}, // d, qs[16]
    {GgmlType::IQ4_XS, "IQ4_XS", 256, 136, true},  // d, scales_h, scales_l[4], qs[128]
};

}  // namespace

const GgmlBlockFormat* ggml_block_format(uint32_t id) {
  for (const GgmlBlockFormat& f : kFormats) {
    if (static_cast<uint32_t>(f.type) == id) return &f;
  }
  return nullptr;
}

const GgmlBlockFormat& ggml_block_format(GgmlType type) {
  const GgmlBlockFormat* f = ggml_block_format(static_cast<uint32_t>(type));
  // Every enumerator has a row; another value got here through a cast that skipped the id check.
  PEFT_CHECK(f != nullptr, ErrorCode::Internal,
             "No block format for ggml type id " + std::to_string(static_cast<uint32_t>(type)));
  return *f;
}

const GgmlBlockFormat* ggml_block_format_named(const char* name) {
  if (name == nullptr) return nullptr;
  for (const GgmlBlockFormat& f : kFormats) {
    if (std::strcmp(f.name, name) == 0) return &f;
  }
  return nullptr;
}

int64_t ggml_row_bytes(GgmlType type, int64_t n) {
  const GgmlBlockFormat& f = ggml_block_format(type);
  return n / f.block * f.bytes;
}

}  // namespace peft::kernels
