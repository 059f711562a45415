// libFuzzer target: the GGUF reader (header, typed metadata incl. nested arrays, tensor infos,
// layout checks) and tensor loading (zero-copy views, dequantization of every ggml block type, the
// block bytes with their scale check) over arbitrary bytes, through the same code as a mapped file.
// A refusal must be E_FORMAT or E_UNSUPPORTED (E_NONFINITE for a block scale that is NaN or Inf).
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "core/tensor.h"
#include "fuzz_common.h"
#include "io/gguf.h"

using namespace peft;

namespace {

size_t scalar_size(io::GgufType t) {
  switch (t) {
    case io::GgufType::U8: case io::GgufType::I8: case io::GgufType::Bool: return 1;
    case io::GgufType::U16: case io::GgufType::I16: return 2;
    case io::GgufType::U32: case io::GgufType::I32: case io::GgufType::F32: return 4;
    case io::GgufType::U64: case io::GgufType::I64: case io::GgufType::F64: return 8;
    default: return 0;
  }
}

// Array values must hold exactly `count` elements of their element type.
void check_value(const io::GgufValue& v) {
  if (v.type != io::GgufType::Array) return;
  const size_t elem = scalar_size(v.elem_type);
  if (elem) FUZZ_ASSERT(v.raw.size() == v.count * elem);
  else if (v.elem_type == io::GgufType::String) FUZZ_ASSERT(v.strings.size() == v.count);
  else {
    FUZZ_ASSERT(v.items.size() == v.count);
    for (const auto& item : v.items) check_value(item);
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  setenv("PEFT_NUM_THREADS", "2", 0);  // dequantization runs on the pool, as in the addon
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::shared_ptr<io::GgufFile> g;
  try {
    g = std::make_shared<io::GgufFile>(io::MappedFile::from_bytes("fuzz.gguf", data, size));
  } catch (const Error& e) {
    fuzz::expect_code(e, {ErrorCode::Format, ErrorCode::Unsupported});
    return 0;
  }
  FUZZ_ASSERT(g->version() == 2 || g->version() == 3);
  FUZZ_ASSERT(g->alignment() != 0 && (g->alignment() & (g->alignment() - 1)) == 0);
  for (const auto& [key, value] : g->metadata()) check_value(value);
  for (const auto& info : g->tensors()) {
    FUZZ_ASSERT(g->find(info.name) == &info);
    FUZZ_ASSERT(info.shape.size() <= 4);
    FUZZ_ASSERT(g->data_offset() + info.offset + info.nbytes <= size);
    try {
      Tensor t = g->load(info);
      FUZZ_ASSERT(t.shape() == info.shape);
      fuzz::touch(t.data(), t.nbytes());
    } catch (const Error& e) {
      fuzz::expect_code(e, {ErrorCode::Unsupported});
    }
    try {
      Tensor b = g->load_blocks(info, true);
      FUZZ_ASSERT(static_cast<uint64_t>(b.numel()) == info.nbytes);
      fuzz::touch(b.data(), b.nbytes());
    } catch (const Error& e) {
      fuzz::expect_code(e, {ErrorCode::Unsupported, ErrorCode::NonFinite});
    }
  }
  if (fuzz::verbose()) std::fprintf(stderr, "accepted: %zu metadata, %zu tensors\n", g->metadata().size(), g->tensors().size());
  return 0;
}
