// GGUF reader (versions 2 and 3), as llama.cpp writes the format: header, typed metadata, tensor
// infos, then the aligned data section. Every count and length read from the file is checked against
// the bytes that remain before anything is allocated, so a truncated, corrupt or hostile file is an
// E_FORMAT naming the file, the field and the numbers, never a crash or a huge allocation.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "io/mapped_file.h"
#include "kernels/ggml_quant.h"

namespace peft::io {

// Metadata value types, numbered as in the GGUF specification.
enum class GgufType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, Bool = 7,
  String = 8, Array = 9, U64 = 10, I64 = 11, F64 = 12,
};

const char* gguf_type_name(GgufType type);  // "u8", ..., "string", "array"

// One metadata value. Scalars are widened to u (unsigned), i (signed) or f (floating); arrays of
// scalars keep their little-endian bytes (one copy, no per-element objects: a hostile array of
// millions of u8 costs millions of bytes, not millions of structs).
struct GgufValue {
  GgufType type = GgufType::U8;
  uint64_t u = 0;
  int64_t i = 0;
  double f = 0;
  bool b = false;
  std::string str;
  // Arrays only.
  GgufType elem_type = GgufType::U8;
  uint64_t count = 0;
  std::vector<uint8_t> raw;             // count scalars of elem_type, little-endian
  std::vector<std::string> strings;     // elem_type == String
  std::vector<GgufValue> items;         // elem_type == Array (nested arrays)
};

// ggml tensor types: the numbering and block layouts of ggml.h.
struct GgmlTypeTraits {
  uint32_t id;
  const char* name;     // "F32", "Q8_0", ...
  uint32_t block_size;  // elements per block
  uint32_t type_size;   // bytes per block
};
const GgmlTypeTraits* ggml_type_traits(uint32_t id);  // null for an id ggml does not define

struct GgufTensorInfo {
  std::string name;
  Shape shape;          // row-major, outermost first (GGUF stores ne[] innermost first)
  uint32_t type;        // ggml type id
  uint64_t offset;      // from the start of the data section
  uint64_t nbytes;
};

class GgufFile {
 public:
  // Maps and parses `path`: E_IO when it cannot be read, E_FORMAT for bad content, E_UNSUPPORTED
  // for a version or ggml type this reader does not know.
  static std::shared_ptr<GgufFile> open(const std::string& path);
  // Parses an already mapped file (the tensors it returns keep `file` alive).
  explicit GgufFile(std::shared_ptr<MappedFile> file);

  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // absolute start of the data section
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return metadata_; }  // file order
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }  // file order
  const GgufTensorInfo* find(const std::string& name) const;  // null when absent
  const std::string& path() const { return file_->path(); }

  // F32 / F16 / BF16 / I32: a zero-copy view of the mapped bytes (dtype f32 / f16 / bf16 / i32).
  // ggml block types with kernels (Q4_0 ... Q6_K, IQ4_NL, IQ4_XS): dequantized into a new f32 tensor.
  // Other types: E_UNSUPPORTED naming the type.
  Tensor load(const GgufTensorInfo& info) const;
  // A block-type tensor's bytes as they are: a zero-copy u8 [nbytes] view (E_UNSUPPORTED for other
  // types; with check_finite, E_NONFINITE for a NaN or infinite block scale).
  Tensor load_blocks(const GgufTensorInfo& info, bool check_finite) const;
  // True when t's bytes lie inside this file's mapping (a zero-copy view).
  bool is_view(const Tensor& t) const;

 private:
  void parse();
  void parse_tensor_infos(ByteReader& r, uint64_t count);
  void check_layout();
  void check_scales(const GgufTensorInfo& info, const kernels::GgmlBlockFormat& f, const uint8_t* bytes) const;

  std::shared_ptr<MappedFile> file_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::vector<GgufTensorInfo> tensors_;
  std::unordered_map<std::string, size_t> by_name_;
};

}  // namespace peft::io
