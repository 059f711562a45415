// Tensor: dtype, shape, strides, device and a shared, 64-byte aligned storage.
// Kernels take raw pointers; modules and the binding pass Tensors around.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/allocator.h"
#include "core/dtype.h"

namespace peft {

// One aligned allocation from an allocator (and so on its device). Freed by that allocator when the
// last Tensor sharing it goes away.
class Storage {
 public:
  // zero_fill = false leaves the bytes undefined, for outputs a kernel overwrites in full.
  explicit Storage(size_t nbytes, bool zero_fill = true, Allocator& allocator = host_allocator());  // E_MEMORY on failure
  // A view of host memory owned elsewhere (a memory-mapped file): `owner` is kept alive while the
  // storage is, and nothing is freed here.
  Storage(void* data, size_t nbytes, std::shared_ptr<const void> owner);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  bool is_view() const { return owner_ != nullptr; }  // memory owned elsewhere (e.g. a mapped file)
  Device device() const { return device_; }

  // Use counting for async calls: readers share, a writer is exclusive. Conflicts throw E_BUSY.
  void acquire(bool write, const char* what);
  void release(bool write);
  bool busy() const { return users_.load() != 0; }

  // Process-wide count of live storages (all threads and worker_threads together), for leak checks.
  struct LiveCounts {
    int64_t storages;  // owned allocations
    int64_t bytes;     // their bytes
    int64_t views;     // views of memory owned elsewhere (each keeps e.g. a file mapping alive)
  };
  static LiveCounts live();

 private:
  void* data_;
  size_t nbytes_;
  Allocator* allocator_ = nullptr;     // null for views
  Device device_ = Device::CPU;
  std::shared_ptr<const void> owner_;  // set for views; data_ is then not ours to free
  std::atomic<int> users_{0};  // >0: number of readers; -1: one writer
};

using Shape = std::vector<int64_t>;

std::string shape_to_string(const Shape& shape);
// Number of elements; throws E_SHAPE for negative dimensions or an overflowing product.
int64_t shape_numel(const Shape& shape);

class Tensor {
 public:
  Tensor(DType dtype, Shape shape, Allocator& allocator = host_allocator());  // new zero-filled contiguous storage
  // New contiguous storage left uninitialised: only for outputs that are written in full.
  static Tensor uninitialized(DType dtype, Shape shape, Allocator& allocator = host_allocator());
  Tensor(DType dtype, Shape shape, std::shared_ptr<Storage> storage, int64_t offset_bytes = 0);

  DType dtype() const { return dtype_; }
  Device device() const { return storage_->device(); }
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }  // in elements
  int64_t dim(int i) const { return shape_[i < 0 ? shape_.size() + i : i]; }
  int ndim() const { return static_cast<int>(shape_.size()); }
  int64_t numel() const { return numel_; }
  size_t nbytes() const { return static_cast<size_t>(numel_) * dtype_size(dtype_); }
  bool is_contiguous() const;

  void* data() const { return static_cast<char*>(storage_->data()) + offset_bytes_; }
  template <typename T>
  T* data_as() const { return static_cast<T*>(data()); }
  const std::shared_ptr<Storage>& storage() const { return storage_; }

 private:
  DType dtype_;
  Shape shape_;
  Shape strides_;
  int64_t numel_;
  std::shared_ptr<Storage> storage_;
  int64_t offset_bytes_;
};

}  // namespace peft
