#include "core/tensor.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "core/error.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define PEFT_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define PEFT_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define PEFT_POISON(p, n) ((void)(p), (void)(n))
#define PEFT_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace peft {

namespace {
constexpr size_t kAlignment = 64;
std::atomic<int64_t> g_live_storages{0};
std::atomic<int64_t> g_live_bytes{0};
std::atomic<int64_t> g_live_views{0};
// aligned_alloc wants a multiple of the alignment (and something to point at for an empty tensor).
size_t padded_size(size_t nbytes) { return nbytes == 0 ? kAlignment : (nbytes + kAlignment - 1) / kAlignment * kAlignment; }
}  // namespace

Storage::LiveCounts Storage::live() { return {g_live_storages.load(), g_live_bytes.load(), g_live_views.load()}; }

Storage::Storage(size_t nbytes, bool zero_fill, Allocator& allocator)
    : data_(nullptr), nbytes_(nbytes), allocator_(&allocator), device_(allocator.device()) {
  const size_t rounded = padded_size(nbytes);
  data_ = allocator.allocate(rounded, zero_fill);
  PEFT_CHECK(data_ != nullptr, ErrorCode::Memory,
             "Could not allocate " + std::to_string(nbytes) + " bytes for a tensor in " + allocator.name() + " memory");
  g_live_storages.fetch_add(1, std::memory_order_relaxed);
  g_live_bytes.fetch_add(static_cast<int64_t>(nbytes_), std::memory_order_relaxed);
  // In the sanitizer build (npm run test:asan) the rounding pad is unreadable, so a kernel that runs past
  // a tensor's end is caught there: views of mapped files have no such pad to run into.
  PEFT_POISON(static_cast<char*>(data_) + nbytes, rounded - nbytes);
}

Storage::Storage(void* data, size_t nbytes, std::shared_ptr<const void> owner)
    : data_(data), nbytes_(nbytes), owner_(std::move(owner)) {
  g_live_views.fetch_add(1, std::memory_order_relaxed);
}

Storage::~Storage() {
  if (owner_) {
    g_live_views.fetch_sub(1, std::memory_order_relaxed);
    return;
  }
  PEFT_UNPOISON(data_, padded_size(nbytes_));
  allocator_->free(data_, padded_size(nbytes_));
  g_live_storages.fetch_sub(1, std::memory_order_relaxed);
  g_live_bytes.fetch_sub(static_cast<int64_t>(nbytes_), std::memory_order_relaxed);
}

void Storage::acquire(bool write, const char* what) {
  int current = users_.load();
  for (;;) {
    bool conflict = write ? current != 0 : current < 0;
    if (conflict) {
      throw Error(ErrorCode::Busy, std::string("Tensor ") + what +
                                       " is in use by a running asynchronous call; await it first");
    }
    if (users_.compare_exchange_weak(current, write ? -1 : current + 1)) return;
  }
}

void Storage::release(bool write) {
  if (write) {
    users_.store(0);
  } else {
    users_.fetch_sub(1);
  }
}

std::string shape_to_string(const Shape& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(shape[i]);
  }
  return out + "]";
}

int64_t shape_numel(const Shape& shape) {
  int64_t numel = 1;
  for (int64_t d : shape) {
    PEFT_CHECK(d >= 0, ErrorCode::Shape,
               "Expected non-negative dimensions for shape but received " + shape_to_string(shape));
    PEFT_CHECK(d == 0 || numel <= std::numeric_limits<int64_t>::max() / d / 8, ErrorCode::Shape,
               "Expected a shape whose size fits in memory but received " + shape_to_string(shape));
    numel *= d;
  }
  return numel;
}

static Shape contiguous_strides(const Shape& shape) {
  Shape strides(shape.size());
  int64_t stride = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = stride;
    stride *= shape[i];
  }
  return strides;
}

Tensor::Tensor(DType dtype, Shape shape, Allocator& allocator)
    : dtype_(dtype), shape_(std::move(shape)), numel_(shape_numel(shape_)), offset_bytes_(0) {
  strides_ = contiguous_strides(shape_);
  storage_ = std::make_shared<Storage>(static_cast<size_t>(numel_) * dtype_size(dtype_), true, allocator);
}

Tensor::Tensor(DType dtype, Shape shape, std::shared_ptr<Storage> storage, int64_t offset_bytes)
    : dtype_(dtype),
      shape_(std::move(shape)),
      numel_(shape_numel(shape_)),
      storage_(std::move(storage)),
      offset_bytes_(offset_bytes) {
  strides_ = contiguous_strides(shape_);
  PEFT_CHECK(offset_bytes_ >= 0 && static_cast<size_t>(offset_bytes_) + nbytes() <= storage_->nbytes(),
             ErrorCode::Shape,
             "Tensor of shape " + shape_to_string(shape_) + " does not fit in its storage");
}

Tensor Tensor::uninitialized(DType dtype, Shape shape, Allocator& allocator) {
  const int64_t numel = shape_numel(shape);
  auto storage = std::make_shared<Storage>(static_cast<size_t>(numel) * dtype_size(dtype), false, allocator);
  return Tensor(dtype, std::move(shape), std::move(storage));
}

bool Tensor::is_contiguous() const { return strides_ == contiguous_strides(shape_); }

}  // namespace peft
