#include "io/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace peft::io {

std::shared_ptr<MappedFile> MappedFile::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(ErrorCode::IO, "Could not open " + path + ": " + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    const std::string reason = S_ISDIR(st.st_mode) ? "it is a directory" : std::strerror(errno);
    ::close(fd);
    throw Error(ErrorCode::IO, "Could not read " + path + ": " + reason);
  }
  const size_t size = static_cast<size_t>(st.st_size);
  uint8_t* data = nullptr;
  if (size > 0) {
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      throw Error(ErrorCode::IO, "Could not map " + path + " into memory: " + std::strerror(err));
    }
    data = static_cast<uint8_t*>(p);
  }
  ::close(fd);  // the mapping stays valid
  return std::shared_ptr<MappedFile>(new MappedFile(path, data, size, true));
}

std::shared_ptr<MappedFile> MappedFile::from_bytes(const std::string& name, const uint8_t* bytes, size_t size) {
  // Exactly `size` bytes (none spare), so a sanitizer sees any read past the end.
  uint8_t* data = size > 0 ? new uint8_t[size] : nullptr;
  if (size > 0) std::memcpy(data, bytes, size);
  return std::shared_ptr<MappedFile>(new MappedFile(name, data, size, false));
}

MappedFile::~MappedFile() {
  if (data_ == nullptr) return;
  if (mapped_) ::munmap(data_, size_);
  else delete[] data_;
}

void ByteReader::seek(size_t offset) {
  PEFT_CHECK(offset <= size_, ErrorCode::Format,
             what_ + ": offset " + std::to_string(offset) + " is past the end (" + std::to_string(size_) + " bytes)");
  offset_ = offset;
}

const uint8_t* ByteReader::take(size_t n, const char* field) {
  PEFT_CHECK(n <= size_ - offset_, ErrorCode::Format,
             what_ + ": truncated while reading " + field + " (needs " + std::to_string(n) + " bytes at offset " +
                 std::to_string(offset_) + ", " + std::to_string(size_ - offset_) + " left)");
  const uint8_t* p = data_ + offset_;
  offset_ += n;
  return p;
}

}  // namespace peft::io
