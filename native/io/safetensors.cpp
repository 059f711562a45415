#include "io/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>

#include "core/error.h"
#include "io/json.h"

namespace peft::io {

namespace {

// A header larger than this is refused before it is read (real headers are kilobytes to a few MB).
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

[[noreturn]] void bad(const std::string& path, const std::string& why) {
  throw Error(ErrorCode::Format, path + ": " + why);
}

Shape parse_shape(const JsonValue& v, const std::string& path, const std::string& name) {
  if (v.kind != JsonValue::Kind::Array) bad(path, "tensor \"" + name + "\" has no shape array");
  Shape shape;
  for (const JsonValue& d : v.items) {
    if (d.kind != JsonValue::Kind::Number || !d.is_integer || d.integer < 0) {
      bad(path, "tensor \"" + name + "\" has a shape entry that is not a non-negative integer");
    }
    shape.push_back(d.integer);
  }
  return shape;
}

}  // namespace

size_t safetensors_dtype_size(const std::string& dtype) {
  if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
  if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 2;
  if (dtype == "I8" || dtype == "U8" || dtype == "BOOL" || dtype == "F8_E4M3" || dtype == "F8_E5M2") return 1;
  return 0;
}

const char* safetensors_dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F32: return "F32";
    case DType::BF16: return "BF16";
    case DType::F16: return "F16";
    case DType::I32: return "I32";
    case DType::U8: return "U8";
  }
  return "?";
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) { return parse(MappedFile::open(path)); }

std::shared_ptr<SafetensorsFile> SafetensorsFile::parse(std::shared_ptr<MappedFile> file) {
  auto st = std::shared_ptr<SafetensorsFile>(new SafetensorsFile());
  st->file_ = std::move(file);
  const std::string& path = st->file_->path();
  ByteReader reader(st->file_->data(), st->file_->size(), path);
  const uint64_t header_len = reader.read<uint64_t>("the header length");
  if (header_len > kMaxHeaderBytes || header_len > reader.remaining()) {
    bad(path, "header length " + std::to_string(header_len) + " exceeds " +
                  (header_len > kMaxHeaderBytes ? "the 100 MiB limit" : "the file size (" + std::to_string(st->file_->size()) + " bytes)"));
  }
  const char* text = reinterpret_cast<const char*>(reader.take(header_len, "the header"));
  st->data_start_ = reader.offset();
  const size_t data_size = st->file_->size() - st->data_start_;

  const JsonValue header = parse_json(text, header_len, path + " header");
  if (header.kind != JsonValue::Kind::Object) bad(path, "the header is not a JSON object");
  // A name given twice would be read as whichever entry a reader happens to take.
  std::set<std::string> names;
  for (const auto& [name, value] : header.members) {
    if (!names.insert(name).second) bad(path, (name == "__metadata__" ? "__metadata__" : "tensor \"" + name + "\"") + " appears twice in the header");
    if (name == "__metadata__") {
      if (value.kind != JsonValue::Kind::Object) bad(path, "__metadata__ is not an object");
      for (const auto& [k, v] : value.members) {
        if (v.kind != JsonValue::Kind::String) bad(path, "__metadata__ value \"" + k + "\" is not a string");
        if (!st->metadata_.emplace(k, v.string).second) bad(path, "__metadata__ key \"" + k + "\" appears twice");
      }
      continue;
    }
    if (value.kind != JsonValue::Kind::Object) bad(path, "tensor \"" + name + "\" is not described by an object");
    const JsonValue* dtype = value.find("dtype");
    const JsonValue* shape = value.find("shape");
    const JsonValue* offsets = value.find("data_offsets");
    if (!dtype || dtype->kind != JsonValue::Kind::String) bad(path, "tensor \"" + name + "\" has no dtype string");
    if (!shape) bad(path, "tensor \"" + name + "\" has no shape");
    if (!offsets || offsets->kind != JsonValue::Kind::Array || offsets->items.size() != 2) {
      bad(path, "tensor \"" + name + "\" has no [begin, end] data_offsets");
    }
    SafetensorsEntry e{name, dtype->string, parse_shape(*shape, path, name), 0, 0};
    for (int i = 0; i < 2; ++i) {
      const JsonValue& o = offsets->items[i];
      if (o.kind != JsonValue::Kind::Number || !o.is_integer || o.integer < 0) {
        bad(path, "tensor \"" + name + "\" has a data offset that is not a non-negative integer");
      }
    }
    e.begin = static_cast<size_t>(offsets->items[0].integer);
    e.end = static_cast<size_t>(offsets->items[1].integer);
    const size_t elem = safetensors_dtype_size(e.dtype);
    if (elem == 0) bad(path, "tensor \"" + name + "\" has unknown dtype \"" + e.dtype + "\"");
    int64_t numel;
    try {
      numel = shape_numel(e.shape);
    } catch (const Error&) {
      bad(path, "tensor \"" + name + "\" has an oversized shape " + shape_to_string(e.shape));
    }
    if (e.begin > e.end || e.end > data_size) {
      bad(path, "tensor \"" + name + "\" has data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
                    "] outside the " + std::to_string(data_size) + "-byte data section");
    }
    if (e.end - e.begin != static_cast<size_t>(numel) * elem) {
      bad(path, "tensor \"" + name + "\" of shape " + shape_to_string(e.shape) + " and dtype " + e.dtype + " needs " +
                    std::to_string(static_cast<size_t>(numel) * elem) + " bytes but its data_offsets span " +
                    std::to_string(e.end - e.begin));
    }
    st->entries_.push_back(std::move(e));
  }
  // Byte ranges may not overlap (the format also forbids holes; we tolerate them).
  std::vector<const SafetensorsEntry*> by_offset;
  for (const auto& e : st->entries_) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    if (by_offset[i]->begin < by_offset[i - 1]->end) {
      bad(path, "tensors \"" + by_offset[i - 1]->name + "\" and \"" + by_offset[i]->name + "\" overlap");
    }
  }
  return st;
}

const SafetensorsEntry* SafetensorsFile::find(const std::string& name) const {
  for (const auto& e : entries_) {
    if (e.name == name) return &e;
  }
  return nullptr;
}

Tensor SafetensorsFile::tensor(const SafetensorsEntry& e) const {
  DType dtype;
  if (e.dtype == "F32") dtype = DType::F32;
  else if (e.dtype == "BF16") dtype = DType::BF16;
  else if (e.dtype == "F16") dtype = DType::F16;
  else if (e.dtype == "I32") dtype = DType::I32;
  else if (e.dtype == "U8") dtype = DType::U8;
  else throw Error(ErrorCode::Unsupported, path() + ": tensor \"" + e.name + "\" has dtype " + e.dtype +
                                               ", which is not supported (F32, BF16, F16, I32, U8 are)");
  uint8_t* data = file_->mutable_data() + data_start_ + e.begin;
  // The format does not align the data section (the header length is free), and reading a float
  // through a misaligned pointer is undefined behaviour: such tensors are copied, not viewed.
  if (reinterpret_cast<uintptr_t>(data) % dtype_size(dtype) != 0) {
    Tensor out = Tensor::uninitialized(dtype, e.shape);
    std::memcpy(out.data(), data, e.end - e.begin);
    return out;
  }
  auto storage = std::make_shared<Storage>(data, e.end - e.begin, file_);
  return Tensor(dtype, e.shape, std::move(storage));
}

void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  // Header: tensors in the given order, data packed back to back.
  std::string header = "{";
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [k, v] : metadata) {
      header += (first ? "" : ",") + json_quote(k) + ":" + json_quote(v);
      first = false;
    }
    header += "}";
  }
  size_t offset = 0;
  for (const auto& nt : tensors) {
    const Tensor& t = *nt.tensor;
    PEFT_CHECK(t.is_contiguous(), ErrorCode::Argument, "Tensor \"" + nt.name + "\" is not contiguous");
    std::string shape = "[";
    for (int i = 0; i < t.ndim(); ++i) shape += (i ? "," : "") + std::to_string(t.dim(i));
    shape += "]";
    if (header.size() > 1) header += ",";
    header += json_quote(nt.name) + ":{\"dtype\":\"" + safetensors_dtype_name(t.dtype()) + "\",\"shape\":" + shape +
              ",\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + t.nbytes()) + "]}";
    offset += t.nbytes();
  }
  header += "}";
  header.append((8 - header.size() % 8) % 8, ' ');  // keeps the data section 8-byte aligned

  // A fresh hidden name beside the file (two writes of one path at once do not share it), created
  // exclusively: a link planted at that name is never followed.
  static std::atomic<uint64_t> counter{0};
  const size_t slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash == 0 ? 1 : slash);
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  const std::string tmp = dir + "/." + base + ".part-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(ErrorCode::IO, "Could not create " + tmp + ": " + std::strerror(errno));
  auto write_all = [&](const void* data, size_t n) {
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
      const ssize_t w = ::write(fd, p, n);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return false;
      p += w;
      n -= static_cast<size_t>(w);
    }
    return true;
  };
  const uint64_t header_len = header.size();
  bool ok = write_all(&header_len, 8) && write_all(header.data(), header.size());
  for (const auto& nt : tensors) ok = ok && write_all(nt.tensor->data(), nt.tensor->nbytes());
  ok = ok && ::fsync(fd) == 0;
  const int err = errno;
  ok = (::close(fd) == 0) && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int rename_err = errno;
    std::remove(tmp.c_str());
    throw Error(ErrorCode::IO, "Could not write " + path + ": " + std::strerror(ok ? rename_err : err));
  }
  // The rename itself reaches the disk only with the folder's entries.
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
}

}  // namespace peft::io
