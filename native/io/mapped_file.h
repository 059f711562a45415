// A whole file mapped into memory, copy-on-write: tensors can view it without copying, and a
// write through such a view stays private to the process (the file never changes).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace peft::io {

class MappedFile {
 public:
  // Maps `path`; throws E_IO naming the file and the OS error.
  static std::shared_ptr<MappedFile> open(const std::string& path);
  // The same interface over a private copy of bytes already in memory (fuzzers and tests feed the
  // readers this way, so they run the very code a mapped file goes through). `name` stands in for
  // the path in messages.
  static std::shared_ptr<MappedFile> from_bytes(const std::string& name, const uint8_t* bytes, size_t size);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  uint8_t* mutable_data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile(std::string path, uint8_t* data, size_t size, bool mapped)
      : path_(std::move(path)), data_(data), size_(size), mapped_(mapped) {}
  std::string path_;
  uint8_t* data_;
  size_t size_;
  bool mapped_;  // data_ came from mmap (else from new[])
};

// Bounds-checked little-endian reads over a byte range; every overrun is an E_FORMAT naming `what`.
class ByteReader {
 public:
  ByteReader(const uint8_t* data, size_t size, std::string what) : data_(data), size_(size), what_(std::move(what)) {}
  size_t offset() const { return offset_; }
  size_t remaining() const { return size_ - offset_; }
  void seek(size_t offset);
  const uint8_t* take(size_t n, const char* field);  // pointer to n bytes, advancing past them
  template <typename T>
  T read(const char* field) {
    T value;
    const uint8_t* p = take(sizeof(T), field);
    __builtin_memcpy(&value, p, sizeof(T));
    return value;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t offset_ = 0;
  std::string what_;
};

}  // namespace peft::io
