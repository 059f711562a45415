// safetensors files: an 8-byte little-endian header length, a JSON header naming each tensor's
// dtype, shape and byte range, then the raw data. Read through a memory map (tensors whose dtype
// we keep are views, not copies); written atomically (temporary file, fsync, rename).
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/mapped_file.h"

namespace peft::io {

struct SafetensorsEntry {
  std::string name;
  std::string dtype;  // as in the file: "F32", "BF16", "F16", "I32", "U8", "I64", ...
  Shape shape;
  size_t begin;  // byte range within the data section
  size_t end;
};

class SafetensorsFile {
 public:
  // Maps and validates the file; throws E_IO / E_FORMAT naming the file and the problem.
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);
  // Validates an already mapped file (or bytes in memory, see MappedFile::from_bytes).
  static std::shared_ptr<SafetensorsFile> parse(std::shared_ptr<MappedFile> file);

  const std::string& path() const { return file_->path(); }
  const std::vector<SafetensorsEntry>& entries() const { return entries_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const SafetensorsEntry* find(const std::string& name) const;
  // The tensor as stored (a view of the mapped file) for F32 / BF16 / F16 / I32 / U8;
  // E_UNSUPPORTED for other dtypes.
  Tensor tensor(const SafetensorsEntry& entry) const;

 private:
  std::shared_ptr<MappedFile> file_;
  size_t data_start_ = 0;
  std::vector<SafetensorsEntry> entries_;
  std::map<std::string, std::string> metadata_;
};

// Bytes per element of a safetensors dtype name, 0 when unknown.
size_t safetensors_dtype_size(const std::string& dtype);
const char* safetensors_dtype_name(DType dtype);

struct NamedTensor {
  std::string name;
  std::shared_ptr<Tensor> tensor;
};

// Writes tensors (in the given order) and string metadata to `path` atomically: nothing is left
// half-written if this fails. Throws E_IO.
void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata);

}  // namespace peft::io
