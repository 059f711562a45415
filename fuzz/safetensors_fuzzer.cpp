// libFuzzer target: the safetensors reader (header length, JSON header, dtypes, shapes, offsets)
// over arbitrary bytes, through the same code as a mapped file. Every tensor it accepts must be a
// view of exactly shape x dtype bytes inside the data section; a refusal must be E_FORMAT (or
// E_UNSUPPORTED for a dtype it lists but does not load).
#include <cstddef>
#include <cstdint>

#include "fuzz_common.h"
#include "io/safetensors.h"

using namespace peft;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::shared_ptr<io::SafetensorsFile> st;
  auto bytes = io::MappedFile::from_bytes("fuzz.safetensors", data, size);
  try {
    st = io::SafetensorsFile::parse(bytes);
  } catch (const Error& e) {
    fuzz::expect_code(e, {ErrorCode::Format});
    return 0;
  }
  FUZZ_ASSERT(size >= 8);
  uint64_t header_len;
  __builtin_memcpy(&header_len, data, 8);
  const size_t data_start = 8 + header_len;
  FUZZ_ASSERT(data_start <= size);
  for (const auto& e : st->entries()) {
    FUZZ_ASSERT(e.begin <= e.end && e.end <= size - data_start);
    FUZZ_ASSERT(st->find(e.name) != nullptr);
    try {
      Tensor t = st->tensor(e);
      FUZZ_ASSERT(t.shape() == e.shape);
      FUZZ_ASSERT(t.nbytes() == e.end - e.begin);
      FUZZ_ASSERT(t.nbytes() == 0 || static_cast<const uint8_t*>(t.data()) == bytes->data() + data_start + e.begin);
      fuzz::touch(t.data(), t.nbytes());
    } catch (const Error& err) {
      fuzz::expect_code(err, {ErrorCode::Unsupported});
    }
  }
  for (const auto& [k, v] : st->metadata()) fuzz::touch(v.data(), v.size());
  if (fuzz::verbose()) std::fprintf(stderr, "accepted: %zu tensors\n", st->entries().size());
  return 0;
}
