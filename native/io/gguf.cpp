#include "io/gguf.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "io/gguf_dequant.h"
#include "io/gguf_metadata.h"

namespace peft::io {

using gguf_detail::fail_format;

namespace {

constexpr uint32_t kMaxDims = 4;  // GGML_MAX_DIMS
constexpr uint64_t kDefaultAlignment = 32;
constexpr uint64_t kMaxAlignment = uint64_t{1} << 30;
// Least bytes a metadata entry (key length, value type, a u8) and a tensor info (name length,
// n_dims, type, offset) take: bounds the counts the header may claim.
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 4 + 8;
// Dimensions reach JS as Numbers; larger ones cannot be exact there (and no file holds them).
constexpr uint64_t kMaxDim = (uint64_t{1} << 53) - 1;

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

uint64_t align_up(uint64_t x, uint64_t alignment) { return (x + alignment - 1) / alignment * alignment; }

// The alignment from general.alignment: an unsigned integer, a power of two.
uint64_t alignment_from(const GgufValue& v, const std::string& where) {
  const bool unsigned_int = v.type == GgufType::U8 || v.type == GgufType::U16 || v.type == GgufType::U32 ||
                            v.type == GgufType::U64;
  const bool signed_int = v.type == GgufType::I8 || v.type == GgufType::I16 || v.type == GgufType::I32 ||
                          v.type == GgufType::I64;
  if (!unsigned_int && !signed_int) {
    fail_format(where, std::string("Expected an integer (u32) for general.alignment but received a ") + gguf_type_name(v.type));
  }
  const uint64_t a = unsigned_int ? v.u : (v.i < 0 ? 0 : static_cast<uint64_t>(v.i));
  if (a == 0 || (a & (a - 1)) != 0 || a > kMaxAlignment) {
    fail_format(where, "Expected a power of two up to 2^30 for general.alignment but received " +
                           (unsigned_int ? std::to_string(v.u) : std::to_string(v.i)));
  }
  return a;
}

}  // namespace

std::shared_ptr<GgufFile> GgufFile::open(const std::string& path) {
  return std::make_shared<GgufFile>(MappedFile::open(path));
}

GgufFile::GgufFile(std::shared_ptr<MappedFile> file) : file_(std::move(file)) { parse(); }

void GgufFile::parse() {
  const std::string where = "GGUF file " + file_->path();
  ByteReader r(file_->data(), file_->size(), where);

  if (file_->size() < 4 || std::memcmp(file_->data(), "GGUF", 4) != 0) {
    std::string got = file_->size() < 4 ? "a file of " + std::to_string(file_->size()) + " bytes" : "other bytes";
    fail_format(where, "Expected the magic \"GGUF\" at the start for a GGUF file but received " + got);
  }
  r.take(4, "magic");
  version_ = r.read<uint32_t>("version");
  if (version_ != 2 && version_ != 3) {
    const uint32_t swapped = __builtin_bswap32(version_);
    fail_format(where, "Expected GGUF version 2 or 3 for version but received " + std::to_string(version_) +
                           (swapped == 2 || swapped == 3 ? " (a big-endian file, which this reader does not read)" : ""));
  }
  const uint64_t n_tensors = r.read<uint64_t>("tensor count");
  const uint64_t n_kv = r.read<uint64_t>("metadata count");
  if (n_kv > r.remaining() / kMinKvBytes) {
    fail_format(where, "Expected a metadata count that fits in the " + std::to_string(r.remaining()) +
                           " bytes after the header for metadata count but received " + std::to_string(n_kv));
  }
  if (n_tensors > r.remaining() / kMinTensorInfoBytes) {
    fail_format(where, "Expected a tensor count that fits in the " + std::to_string(r.remaining()) +
                           " bytes after the header for tensor count but received " + std::to_string(n_tensors));
  }

  metadata_.reserve(static_cast<size_t>(n_kv));
  std::unordered_map<std::string, size_t> keys;
  uint64_t nested_left = gguf_detail::kMaxNestedItems;
  for (uint64_t k = 0; k < n_kv; ++k) {
    std::string key = gguf_detail::read_string(r, where, "metadata key #" + std::to_string(k));
    const std::string field = "metadata " + quoted(key);
    if (!gguf_detail::is_valid_utf8(key)) fail_format(where, "Expected UTF-8 text for metadata key #" + std::to_string(k) + " but received invalid bytes");
    if (!keys.emplace(key, metadata_.size()).second) fail_format(where, "Expected unique metadata keys but " + field + " appears twice");
    const GgufType type = gguf_detail::read_value_type(r, where, field);
    metadata_.emplace_back(std::move(key), gguf_detail::read_value(r, type, where, field, 0, &nested_left));
  }
  auto align = keys.find("general.alignment");
  if (align != keys.end()) alignment_ = alignment_from(metadata_[align->second].second, where);

  if (n_tensors > r.remaining() / kMinTensorInfoBytes) {
    fail_format(where, "Expected a tensor count that fits in the " + std::to_string(r.remaining()) +
                           " bytes after the metadata for tensor count but received " + std::to_string(n_tensors));
  }
  parse_tensor_infos(r, n_tensors);
  data_offset_ = align_up(r.offset(), alignment_);
  check_layout();
}

void GgufFile::parse_tensor_infos(ByteReader& r, uint64_t count) {
  const std::string where = "GGUF file " + file_->path();
  tensors_.reserve(static_cast<size_t>(count));
  for (uint64_t k = 0; k < count; ++k) {
    GgufTensorInfo info;
    info.name = gguf_detail::read_string(r, where, "tensor name #" + std::to_string(k));
    const std::string field = "tensor " + quoted(info.name);
    if (!gguf_detail::is_valid_utf8(info.name)) fail_format(where, "Expected UTF-8 text for tensor name #" + std::to_string(k) + " but received invalid bytes");
    const uint32_t n_dims = r.read<uint32_t>("tensor dimension count");
    if (n_dims > kMaxDims) {
      fail_format(where, "Expected at most 4 dimensions for " + field + " but received " + std::to_string(n_dims));
    }
    uint64_t ne[kMaxDims] = {1, 1, 1, 1};
    uint64_t numel = 1, nonzero = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      ne[d] = r.read<uint64_t>("tensor dimension");
      if (ne[d] > kMaxDim) {
        fail_format(where, "Expected dimensions below 2^53 for " + field + " but received " + std::to_string(ne[d]) +
                               " in ne[" + std::to_string(d) + "]");
      }
      // The product of the non-zero dimensions must fit too, or a shape like [2^40, 2^40, 0] passes.
      if (ne[d] != 0 && (__builtin_mul_overflow(nonzero, ne[d], &nonzero) ||
                         nonzero > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / 8)) {
        fail_format(where, "Expected dimensions whose product fits in 63 bits for " + field + " but they overflow at ne[" +
                               std::to_string(d) + "] = " + std::to_string(ne[d]));
      }
      numel *= ne[d];
    }
    info.type = r.read<uint32_t>("tensor type");
    const GgmlTypeTraits* traits = ggml_type_traits(info.type);
    if (traits == nullptr) {
      throw Error(ErrorCode::Unsupported, where + ": Expected a ggml type this reader knows for " + field +
                                              " but received type " + std::to_string(info.type));
    }
    if (ne[0] % traits->block_size != 0) {
      fail_format(where, "Expected an innermost dimension that is a multiple of " + std::to_string(traits->block_size) +
                             " (the " + traits->name + " block size) for " + field + " but received " + std::to_string(ne[0]));
    }
    info.nbytes = numel / traits->block_size * traits->type_size;  // < 2^63 / 8 * 292 / 256: no overflow
    info.offset = r.read<uint64_t>("tensor data offset");
    for (uint32_t d = n_dims; d-- > 0;) info.shape.push_back(static_cast<int64_t>(ne[d]));
    if (!by_name_.emplace(info.name, tensors_.size()).second) {
      fail_format(where, "Expected unique tensor names but " + field + " appears twice");
    }
    tensors_.push_back(std::move(info));
  }
}

// Each tensor's bytes must be aligned, inside the file and apart from every other tensor's.
void GgufFile::check_layout() {
  const std::string where = "GGUF file " + file_->path();
  const uint64_t size = file_->size();
  // The padding before the data section is part of the file: a file cut inside it is truncated,
  // even when every tensor is empty (their views would point past the end of the mapping).
  if (!tensors_.empty() && data_offset_ > size) {
    fail_format(where, "Expected the data section (from byte " + std::to_string(data_offset_) + ", after the alignment padding) to start within the file of " +
                           std::to_string(size) + " bytes but the file ends before it");
  }
  const uint64_t available = size - std::min(size, data_offset_);
  for (const GgufTensorInfo& t : tensors_) {
    const std::string field = "tensor " + quoted(t.name);
    if (t.offset % alignment_ != 0) {
      fail_format(where, "Expected a data offset that is a multiple of the alignment " + std::to_string(alignment_) +
                             " for " + field + " but received " + std::to_string(t.offset));
    }
    if (t.offset > available || t.nbytes > available - t.offset) {
      fail_format(where, "Expected " + field + " (" + std::to_string(t.nbytes) + " bytes at data offset " +
                             std::to_string(t.offset) + ") to lie within the " + std::to_string(available) +
                             " bytes of the data section (file of " + std::to_string(size) + " bytes, data from " +
                             std::to_string(data_offset_) + ") but it runs past the end of the file");
    }
  }
  std::vector<const GgufTensorInfo*> order;
  for (const GgufTensorInfo& t : tensors_) {
    if (t.nbytes > 0) order.push_back(&t);
  }
  std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
  for (size_t k = 1; k < order.size(); ++k) {
    const GgufTensorInfo& a = *order[k - 1];
    const GgufTensorInfo& b = *order[k];
    if (a.offset + a.nbytes > b.offset) {
      fail_format(where, "Expected tensors that do not overlap but tensor " + quoted(a.name) + " (bytes " +
                             std::to_string(a.offset) + ".." + std::to_string(a.offset + a.nbytes) + ") overlaps tensor " +
                             quoted(b.name) + " (from " + std::to_string(b.offset) + ")");
    }
  }
}

const GgufTensorInfo* GgufFile::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

Tensor GgufFile::load(const GgufTensorInfo& info) const {
  // Inside the mapping: check_layout placed every tensor there (an empty one at most at its end).
  uint8_t* bytes = file_->mutable_data() + data_offset_ + info.offset;
  DType dtype;
  switch (info.type) {
    case 0: dtype = DType::F32; break;
    case 1: dtype = DType::F16; break;
    case 30: dtype = DType::BF16; break;
    case 26: dtype = DType::I32; break;
    default: {
      const kernels::GgmlBlockFormat* f = kernels::ggml_block_format(info.type);
      if (f == nullptr) {
        throw Error(ErrorCode::Unsupported,
                    "GGUF file " + file_->path() +
                        ": Expected a tensor type this reader can load (F32, F16, BF16, I32, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, "
                        "Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS) for tensor " +
                        quoted(info.name) + " but received " + ggml_type_traits(info.type)->name);
      }
      Tensor out = Tensor::uninitialized(DType::F32, info.shape);
      dequantize_blocks(f->type, bytes, out.numel(), out.data_as<float>());
      return out;
    }
  }
  if (info.nbytes == 0) return Tensor(dtype, info.shape);
  // A view needs element-aligned bytes (compilers may assume it); general.alignment 1 or 2 can
  // place a tensor anywhere, and then it is copied.
  if (reinterpret_cast<uintptr_t>(bytes) % dtype_size(dtype) != 0) {
    Tensor out = Tensor::uninitialized(dtype, info.shape);
    std::memcpy(out.data(), bytes, info.nbytes);
    return out;
  }
  auto storage = std::make_shared<Storage>(bytes, static_cast<size_t>(info.nbytes), std::shared_ptr<const void>(file_));
  return Tensor(dtype, info.shape, std::move(storage));
}

void GgufFile::check_scales(const GgufTensorInfo& info, const kernels::GgmlBlockFormat& f, const uint8_t* bytes) const {
  const int64_t blocks = static_cast<int64_t>(info.nbytes) / f.bytes;
  const int64_t bad = kernels::ggml_first_nonfinite_block(f.type, bytes, blocks);
  if (bad >= 0) {
    throw Error(ErrorCode::NonFinite, "GGUF file " + file_->path() + ": tensor " + quoted(info.name) + " has a NaN or infinite " +
                                          f.name + " block scale (block " + std::to_string(bad) + " of " +
                                          std::to_string(blocks) + "); the file is damaged");
  }
}

Tensor GgufFile::load_blocks(const GgufTensorInfo& info, bool check_finite) const {
  const kernels::GgmlBlockFormat* f = kernels::ggml_block_format(info.type);
  if (f == nullptr) {
    throw Error(ErrorCode::Unsupported, "GGUF file " + file_->path() + ": tensor " + quoted(info.name) + " is " +
                                            ggml_type_traits(info.type)->name +
                                            ", not one of the ggml block types with kernels here");
  }
  uint8_t* bytes = file_->mutable_data() + data_offset_ + info.offset;
  if (check_finite) check_scales(info, *f, bytes);
  const Shape shape{static_cast<int64_t>(info.nbytes)};
  if (info.nbytes == 0) return Tensor(DType::U8, shape);
  auto storage = std::make_shared<Storage>(bytes, static_cast<size_t>(info.nbytes), std::shared_ptr<const void>(file_));
  return Tensor(DType::U8, shape, std::move(storage));
}

bool GgufFile::is_view(const Tensor& t) const {
  const auto* p = static_cast<const uint8_t*>(t.data());
  return file_->size() > 0 && p >= file_->data() && p < file_->data() + file_->size();
}

}  // namespace peft::io
